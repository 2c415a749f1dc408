"""A catalogue outage never re-reads the files of a device the station has already catalogued (issue 14, item 7):
the station keeps its own record of them (ingest.known_files) and trusts it as it trusts the catalogue's sightings."""
from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from catalog import DockSession, Recording, RecordingState, Sighting, open_catalog
from ingest import known_files
from ingest.config import Settings
from ingest.errors import CatalogueDeferred, CopyFailed
from ingest.journal import load as load_journal
from ingest.pipeline import IngestOptions, IngestReport, ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.samples import make_wav
from ingest.transfer import MATCH_EDGE_BYTES, copy_and_hash
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


def _station(tmp_path, url: str) -> tuple[Settings, LocalStore, Engine]:
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": url})
    return settings, LocalStore(settings.store_path), open_catalog(url)


@dataclass
class _Journaled:
    """A device catalogued once, then CLIP0009.wav added and copied during a catalogue outage (journaled)."""

    settings: Settings
    store: LocalStore
    engine: Engine
    serial: str
    clip: Path
    old: bytes  # the bytes journaled
    copies: list[str]  # names of the device files copied since (cleared after the outage's dock)
    unreadable: set[str]  # names of device files whose reads fail (EIO) from now on

    def dock(self, options: IngestOptions | None = None) -> IngestReport:
        return ingest_folder(self.clip.parents[1], settings=self.settings, engine=self.engine, store=self.store,
                             options=options or IngestOptions())

    def recording(self, data: bytes) -> Recording:
        with Session(self.engine) as s:
            return s.exec(select(Recording).where(Recording.sha256 == hashlib.sha256(data).hexdigest())).one()

    def seen_at_clip(self) -> set[str]:
        """SHA-256 of every recording catalogued as seen at the clip's device path."""
        with Session(self.engine) as s:
            return set(s.exec(select(Recording.sha256).join(Sighting, col(Sighting.recording_id) == Recording.id)
                              .where(Sighting.device_serial == self.serial,
                                     Sighting.device_path == "CLIPS/CLIP0009.wav")))


@contextmanager
def _clip_journaled(samples, tmp_path, pg_outage, monkeypatch, *, seconds: float = 1.0, mtime_ns: int | None = None,
                    options: IngestOptions | None = None) -> Iterator[_Journaled]:
    url, down, _allow = pg_outage
    settings, store, engine = _station(tmp_path, url)
    device = samples.sidecar_recorder
    copies: list[str] = []
    unreadable: set[str] = set()
    real = copy_and_hash

    def counting(source, staging, *a, **k):
        name = str(source).rsplit("/", 1)[1]
        copies.append(name)
        if name in unreadable:  # a bad sector: no device here fails on its own
            raise CopyFailed(source, staging / f"{k['part_name']}.part", reason="Input/output error",
                             errno=errno.EIO)
        return real(source, staging, *a, **k)

    monkeypatch.setattr(pipeline, "copy_and_hash", counting)
    try:
        serial = ingest_folder(device, settings=settings, engine=engine, store=store).device_serial
        clip = make_wav(device / "CLIPS" / "CLIP0009.wav", seconds=seconds)
        if mtime_ns is not None:
            os.utime(clip, ns=(mtime_ns, mtime_ns))
        old = clip.read_bytes()
        with down(), pytest.raises(CatalogueDeferred):
            ingest_folder(device, settings=settings, engine=engine, store=store, options=options or IngestOptions())
        copies.clear()
        yield _Journaled(settings, store, engine, serial, clip, old, copies, unreadable)
    finally:
        engine.dispose()


def _rewrite_keeping_name_size_and_time(clip: Path, data: bytes) -> None:
    info = clip.stat()
    assert len(data) == info.st_size
    clip.write_bytes(data)
    os.utime(clip, ns=(info.st_atime_ns, info.st_mtime_ns))


@pytest.mark.postgres
def test_a_journaled_copy_is_not_taken_for_another_file_with_its_name_size_and_time(
        samples, tmp_path, pg_outage, monkeypatch):
    """A recorder whose clock was reset writes a new recording under the name, size and time of one the station
    journaled during an outage: the new one is read and catalogued, and the journaled one is catalogued too."""
    with _clip_journaled(samples, tmp_path, pg_outage, monkeypatch) as j:
        # Behind the station's back: another recording, same name, same size, same modification time
        _rewrite_keeping_name_size_and_time(j.clip, j.old[:44] + j.old[44:][::-1])
        report = j.dock()
        assert report.errors == [] and j.copies == ["CLIP0009.wav"], (report.errors, j.copies)
        assert j.seen_at_clip() == {hashlib.sha256(j.old).hexdigest(),
                                    hashlib.sha256(j.clip.read_bytes()).hexdigest()}
        assert load_journal(j.settings.staging_dir, j.serial) == {}
        # The device's file is now known: the next dock reads nothing
        j.copies.clear()
        j.dock()
        assert j.copies == []


@pytest.mark.postgres
def test_a_journaled_copy_whose_file_left_the_device_is_catalogued_at_the_next_dock(
        samples, tmp_path, pg_outage, monkeypatch):
    """Copied during an outage, then deleted from the device (loop recording, another station's clearing) before
    the catalogue came back while the device was docked again: the staged copy is still catalogued, never
    forgotten with the journal."""
    with _clip_journaled(samples, tmp_path, pg_outage, monkeypatch) as j:
        j.clip.unlink()
        report = j.dock()
        assert report.errors == [] and j.copies == [], (report.errors, j.copies)
        sha = hashlib.sha256(j.old).hexdigest()
        assert j.seen_at_clip() == {sha}
        assert load_journal(j.settings.staging_dir, j.serial) == {}
        with Session(j.engine) as s:
            assert s.exec(select(Recording).where(Recording.sha256 == sha)).one().state in (
                RecordingState.ARCHIVED, RecordingState.VERIFIED)


@pytest.mark.postgres
def test_where_the_file_time_is_no_evidence_a_journaled_copy_is_compared_byte_for_byte(
        samples, tmp_path, pg_outage, monkeypatch):
    """A recorder whose clock restarts at 2000-01-01: its file times say nothing, so a journaled copy stands for a
    device file only when every byte agrees; a change a sampled look would miss is read and catalogued."""
    reset = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z, where a reset clock starts
    with _clip_journaled(samples, tmp_path, pg_outage, monkeypatch, seconds=150.0, mtime_ns=reset) as j:
        assert len(j.old) > 3 * MATCH_EDGE_BYTES
        at = MATCH_EDGE_BYTES + 70_000  # between the sampled slices
        _rewrite_keeping_name_size_and_time(j.clip, j.old[:at] + bytes([j.old[at] ^ 0xFF]) + j.old[at + 1:])
        report = j.dock()
        assert report.errors == [] and j.copies == ["CLIP0009.wav"], (report.errors, j.copies)
        assert j.seen_at_clip() == {hashlib.sha256(j.old).hexdigest(),
                                    hashlib.sha256(j.clip.read_bytes()).hexdigest()}


@pytest.mark.postgres
def test_a_new_file_under_a_journaled_copy_s_name_size_and_time_is_read_later_when_its_first_read_fails(
        samples, tmp_path, pg_outage, monkeypatch):
    """The journaled copy is catalogued at once when the device's file turns out to be another; if reading that
    new file then fails (a bad sector, the device pulled), the next dock still reads it: the journaled copy's
    sighting, and the station's own record, never stand for the file the path holds now."""
    with _clip_journaled(samples, tmp_path, pg_outage, monkeypatch) as j:
        new = j.old[:44] + j.old[44:][::-1]
        _rewrite_keeping_name_size_and_time(j.clip, new)
        j.unreadable.add("CLIP0009.wav")
        first = j.dock()
        assert [e["file"] for e in first.errors] == ["CLIPS/CLIP0009.wav"], first.errors
        assert "Input/output error" in first.errors[0]["reason"]
        assert j.seen_at_clip() == {hashlib.sha256(j.old).hexdigest()}  # what was journaled is catalogued
        # The bad sector is gone (read again, it answers): the next dock reads the new file and catalogues it
        j.unreadable.clear()
        j.copies.clear()
        second = j.dock()
        assert second.errors == [] and j.copies == ["CLIP0009.wav"], (second.errors, j.copies)
        assert j.seen_at_clip() == {hashlib.sha256(j.old).hexdigest(), hashlib.sha256(new).hexdigest()}
        with Session(j.engine) as s:
            cleared = s.exec(select(Sighting).join(Recording, col(Recording.id) == Sighting.recording_id)
                             .where(Recording.sha256 == hashlib.sha256(j.old).hexdigest(),
                                    Sighting.device_path == "CLIPS/CLIP0009.wav")).one()
        assert cleared.cleared_at is not None  # the path no longer holds what was journaled under it


@pytest.mark.postgres
def test_a_journaled_copy_is_stamped_as_the_dock_that_copied_it_was(samples, tmp_path, pg_outage, monkeypatch):
    """Copied during an outage under case A by officer 1001; the file then left the device, and the next dock
    was tagged case B by officer 2002: the journaled recording still carries case A and officer 1001, the next
    dock's own recordings case B."""
    copied_under = IngestOptions(case_number="AB-2026-00041", officer="1001", purpose="占道经营")
    with _clip_journaled(samples, tmp_path, pg_outage, monkeypatch, seconds=1.3, options=copied_under) as j:
        j.clip.unlink()
        later = make_wav(j.clip.with_name("CLIP0010.wav"), seconds=1.7)
        report = j.dock(IngestOptions(case_number="AB-2026-00042", officer="2002", purpose="日常巡查"))
        assert report.errors == [], report.errors
        journaled, own = j.recording(j.old), j.recording(later.read_bytes())
        assert (journaled.case_number, journaled.officer_number, journaled.purpose) == (
            "AB-2026-00041", "1001", "占道经营")
        assert (own.case_number, own.officer_number, own.purpose) == ("AB-2026-00042", "2002", "日常巡查")
        with Session(j.engine) as s:
            dock = s.get(DockSession, report.dock_session_id)
        assert dock is not None and dock.result_note is not None
        note = dock.result_note
        assert "(1 of them copied at an earlier dock and journaled)" in note, note


@pytest.mark.postgres
def test_a_device_mounted_elsewhere_finds_its_journaled_copies(samples, tmp_path, pg_outage, monkeypatch):
    """Journaled while mounted at one path, docked again at another (another USB port): the journaled copy
    stands for its file (not read again, sighted once, as it is on the device)."""
    with _clip_journaled(samples, tmp_path, pg_outage, monkeypatch) as j:
        device = j.clip.parents[1]
        elsewhere = device.with_name(device.name + "-port2")
        device.rename(elsewhere)
        report = ingest_folder(elsewhere, settings=j.settings, engine=j.engine, store=j.store)
        assert report.errors == [] and j.copies == [], (report.errors, j.copies)
        with Session(j.engine) as s:
            sightings = s.exec(select(Sighting).where(Sighting.device_path == "CLIPS/CLIP0009.wav")).all()
        assert [(x.cleared_at, x.size_bytes) for x in sightings] == [(None, len(j.old))]


@pytest.mark.postgres
def test_a_journaled_copy_still_on_the_device_keeps_the_stamp_it_was_copied_under(
        samples, tmp_path, pg_outage, monkeypatch):
    """`evidence ingest --case A` ran during an outage; the station (no case) catalogues the copy at the next dock,
    the file still on the device: it is stamped with case A, not read again (a review found the station's options
    taking over, so the case and its pending-case hold were lost)."""
    copied_under = IngestOptions(case_number="AB-2026-00043", officer="1001", purpose="占道经营")
    with _clip_journaled(samples, tmp_path, pg_outage, monkeypatch, seconds=1.1, options=copied_under) as j:
        report = j.dock()
        assert report.errors == [] and j.copies == [], (report.errors, j.copies)
        recording = j.recording(j.old)
        assert (recording.case_number, recording.officer_number, recording.purpose) == (
            "AB-2026-00043", "1001", "占道经营")
        assert recording.legal_hold  # held pending its case, as at the dock that copied it
