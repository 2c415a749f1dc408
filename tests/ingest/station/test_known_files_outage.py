"""A catalogue outage never re-reads the files of a device the station has already catalogued (issue 14, item 7):
the station keeps its own record of them (ingest.known_files) and trusts it as it trusts the catalogue's sightings."""
from __future__ import annotations

import hashlib
import os

import pytest
from sqlmodel import Session, col, select

from catalog import Recording, RecordingState, Sighting, open_catalog
from ingest import known_files
from ingest.config import Settings
from ingest.errors import CatalogueDeferred
from ingest.journal import load as load_journal
from ingest.pipeline import ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.samples import make_wav
from ingest.transfer import copy_and_hash
from storage import LocalStore

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


@pytest.mark.postgres
def test_outage_does_not_reread_known_files(samples, tmp_path, pg_outage, monkeypatch):
    url, down, _allow = pg_outage
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": url})
    store = LocalStore(settings.store_path)
    engine = open_catalog(url)
    device = samples.sidecar_recorder
    copies = []
    real = copy_and_hash

    def counting(source, *a, **k):
        copies.append(str(source))
        return real(source, *a, **k)

    monkeypatch.setattr(pipeline, "copy_and_hash", counting)
    try:
        first = ingest_folder(device, settings=settings, engine=engine, store=store)
        n = len(copies)
        assert n >= 4 and first.errors == []
        serial = first.device_serial
        known = known_files.load(settings.home, serial)
        assert len(known) == n, (len(known), n)
        # A new file arrives on the device; then the catalogue goes away and the device is docked again
        make_wav(device / "CLIPS" / "CLIP0009.wav", seconds=1.0)
        copies.clear()
        with down(), pytest.raises(CatalogueDeferred) as info:
            ingest_folder(device, settings=settings, engine=engine, store=store)
        assert [c.rsplit("/", 1)[1] for c in copies] == ["CLIP0009.wav"], copies
        assert info.value.journaled == 1
        # Back: the journaled file is catalogued from staging, nothing read again; the record grows by one
        copies.clear()
        third = ingest_folder(device, settings=settings, engine=engine, store=store)
        assert copies == [] and third.errors == []
        assert len(known_files.load(settings.home, serial)) == n + 1
        # A file removed from the device leaves the record at the next completed dock
        (device / "CLIPS" / "CLIP0009.wav").unlink()
        ingest_folder(device, settings=settings, engine=engine, store=store)
        assert len(known_files.load(settings.home, serial)) == n
    finally:
        engine.dispose()


def _counting_copies(monkeypatch) -> list[str]:
    copies: list[str] = []
    real = copy_and_hash

    def counting(source, *a, **k):
        copies.append(str(source).rsplit("/", 1)[1])
        return real(source, *a, **k)

    monkeypatch.setattr(pipeline, "copy_and_hash", counting)
    return copies


def _recordings_seen_at(engine, serial: str, device_path: str) -> set[str]:
    with Session(engine) as s:
        return set(s.exec(select(Recording.sha256).join(Sighting, col(Sighting.recording_id) == Recording.id)
                          .where(Sighting.device_serial == serial, Sighting.device_path == device_path)))


@pytest.mark.postgres
def test_a_journaled_copy_is_not_taken_for_another_file_with_its_name_size_and_time(
        samples, tmp_path, pg_outage, monkeypatch):
    """A recorder whose clock was reset writes a new recording under the name, size and time of one the station
    journaled during an outage: the new one is read and catalogued, and the journaled one is catalogued too."""
    url, down, _allow = pg_outage
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": url})
    store = LocalStore(settings.store_path)
    engine = open_catalog(url)
    device = samples.sidecar_recorder
    copies = _counting_copies(monkeypatch)
    try:
        serial = ingest_folder(device, settings=settings, engine=engine, store=store).device_serial
        clip = make_wav(device / "CLIPS" / "CLIP0009.wav", seconds=1.0)
        old = clip.read_bytes()
        with down(), pytest.raises(CatalogueDeferred):
            ingest_folder(device, settings=settings, engine=engine, store=store)
        # Behind the station's back: another recording, same name, same size, same modification time
        info = clip.stat()
        clip.write_bytes(old[:44] + old[44:][::-1])
        os.utime(clip, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert clip.stat().st_size == len(old) and clip.stat().st_mtime_ns == info.st_mtime_ns
        copies.clear()
        report = ingest_folder(device, settings=settings, engine=engine, store=store)
        assert report.errors == [] and copies == ["CLIP0009.wav"], (report.errors, copies)
        wanted = {hashlib.sha256(old).hexdigest(), hashlib.sha256(clip.read_bytes()).hexdigest()}
        assert _recordings_seen_at(engine, serial, "CLIPS/CLIP0009.wav") == wanted
        assert load_journal(settings.staging_dir, serial) == {}
        # The device's file is now known: the next dock reads nothing
        copies.clear()
        ingest_folder(device, settings=settings, engine=engine, store=store)
        assert copies == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_journaled_copy_whose_file_left_the_device_is_catalogued_at_the_next_dock(
        samples, tmp_path, pg_outage, monkeypatch):
    """Copied during an outage, then deleted from the device (loop recording, another station's clearing) before
    the catalogue came back while the device was docked again: the staged copy is still catalogued, never
    forgotten with the journal."""
    url, down, _allow = pg_outage
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": url})
    store = LocalStore(settings.store_path)
    engine = open_catalog(url)
    device = samples.sidecar_recorder
    copies = _counting_copies(monkeypatch)
    try:
        serial = ingest_folder(device, settings=settings, engine=engine, store=store).device_serial
        clip = make_wav(device / "CLIPS" / "CLIP0009.wav", seconds=1.0)
        sha = hashlib.sha256(clip.read_bytes()).hexdigest()
        with down(), pytest.raises(CatalogueDeferred):
            ingest_folder(device, settings=settings, engine=engine, store=store)
        clip.unlink()
        copies.clear()
        report = ingest_folder(device, settings=settings, engine=engine, store=store)
        assert report.errors == [] and copies == [], (report.errors, copies)
        assert _recordings_seen_at(engine, serial, "CLIPS/CLIP0009.wav") == {sha}
        assert load_journal(settings.staging_dir, serial) == {}
        with Session(engine) as s:
            assert s.exec(select(Recording).where(Recording.sha256 == sha)).one().state in (
                RecordingState.ARCHIVED, RecordingState.VERIFIED)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_where_the_file_time_is_no_evidence_a_journaled_copy_is_compared_byte_for_byte(
        samples, tmp_path, pg_outage, monkeypatch):
    """A recorder whose clock restarts at 2000-01-01: its file times say nothing, so a journaled copy stands for a
    device file only when every byte agrees; a change a sampled look would miss is read and catalogued."""
    from ingest.transfer import MATCH_EDGE_BYTES
    url, down, _allow = pg_outage
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": url})
    store = LocalStore(settings.store_path)
    engine = open_catalog(url)
    device = samples.sidecar_recorder
    copies = _counting_copies(monkeypatch)
    try:
        serial = ingest_folder(device, settings=settings, engine=engine, store=store).device_serial
        clip = make_wav(device / "CLIPS" / "CLIP0009.wav", seconds=150.0)
        reset = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z, where a reset clock starts
        os.utime(clip, ns=(reset, reset))
        old = clip.read_bytes()
        assert len(old) > 3 * MATCH_EDGE_BYTES
        with down(), pytest.raises(CatalogueDeferred):
            ingest_folder(device, settings=settings, engine=engine, store=store)
        at = MATCH_EDGE_BYTES + 70_000  # between the sampled slices
        clip.write_bytes(old[:at] + bytes([old[at] ^ 0xFF]) + old[at + 1:])
        os.utime(clip, ns=(reset, reset))
        copies.clear()
        report = ingest_folder(device, settings=settings, engine=engine, store=store)
        assert report.errors == [] and copies == ["CLIP0009.wav"], (report.errors, copies)
        wanted = {hashlib.sha256(old).hexdigest(), hashlib.sha256(clip.read_bytes()).hexdigest()}
        assert _recordings_seen_at(engine, serial, "CLIPS/CLIP0009.wav") == wanted
    finally:
        engine.dispose()
