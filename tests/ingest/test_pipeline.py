"""End to end: sample devices → staging → catalog (SQLite and PostgreSQL) → local WORM store."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta
from sqlmodel import Session, col, select

from catalog import (
    CustodyEvent,
    DockSession,
    Recording,
    Sighting,
    StampInvalid,
    StampRevision,
    find_chain_breaks,
    load_chain,
)
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.samples import HOSTILE_NAME, make_photo
from ingest.scan import scan_device
from storage import BackendUnavailable, LocalStore, object_key
from tests.conftest import as_attacker

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

CN_PREFIX = "ZFY_A123456_010203_20261120"


def _ingest(path, settings, engine, store, **options):
    return ingest_folder(path, settings=settings, engine=engine, store=store, options=IngestOptions(**options))


def _by_name(report):
    return {r["original_name"]: r for r in report.recordings}


def _snapshot(root: Path) -> dict[bytes, tuple[int, int, str]]:
    """Every entry under root: size, mtime and content hash (links described, not followed)."""
    found = {}
    for dirpath, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            found[path] = (info.st_size, info.st_mtime_ns, digest)
    return found


def test_enforcement_recorder_is_ingested_with_every_stamp_field(samples, settings, engine, store):
    report = _ingest(samples.cn_recorder, settings, engine, store, case_number="京朝城管罚字〔2026〕第00123号",
                     purpose="占道经营 现场执法")
    assert report.profile == "cn-enforcement-recorder" and report.device_serial == "A123456"
    assert report.errors == [] and report.all_preserved
    rows = _by_name(report)
    assert len(rows) == 12  # every file on the recorder, its identity file and a stray note included
    clip = rows[f"{CN_PREFIX}_083000.mp4"]
    assert clip["captured_start"] == "2026-11-20T00:30:00Z" and clip["captured_end"] == "2026-11-20T00:30:02Z"
    assert (clip["time_source"], clip["zone_assumed"], clip["raw_device_time"]) == (
        "filename", "Asia/Shanghai", "20261120_083000")
    assert clip["place"] == {"lat": 39.9042, "lon": 116.4074, "source": "container"}
    assert clip["officer"] == {"number": "010203", "name": "张三"}  # from the GBK identity file
    assert (clip["case_number"], clip["purpose"]) == ("京朝城管罚字〔2026〕第00123号", "占道经营 现场执法")
    assert (clip["media_kind"], clip["state"]) == ("video", "archived")
    assert clip["integrity"] == {"status": "ok", "detail": ""}
    # Routine retention runs from the later of capture end and archiving; the case number names no registered
    # case, so the clip is held until a clerk decides.
    archived = datetime.fromisoformat(clip["archived_at"].replace("Z", "+00:00"))
    assert clip["retain_until"] == (archived + relativedelta(months=6)).isoformat().replace("+00:00", "Z")
    assert clip["legal_hold"] is True and clip["time_implausible"] is False
    assert rows[f"{CN_PREFIX}_083500_IMP.mp4"]["important"] is True
    assert rows[f"{CN_PREFIX}_083000.mp4"]["important"] is False
    photo = rows[f"{CN_PREFIX}_084000.jpg"]
    assert photo["media_kind"] == "photo" and photo["place"]["source"] == "exif"
    assert photo["place"]["lat"] == pytest.approx(39.9042, abs=1e-6)
    assert rows[f"{CN_PREFIX}_084500.wav"]["media_kind"] == "audio"
    amr = rows[f"{CN_PREFIX}_085000.amr"]
    assert (amr["media_kind"], amr["integrity"]["status"], amr["technical"]["audio_codec"]) == ("audio", "ok", "amr_nb")
    skipped = {s["file"]: s["reason"] for s in report.skipped}
    assert skipped == {f"RECORD/20261120/{CN_PREFIX}_092000.mp4": "symbolic link to '/etc/passwd' not followed"}
    identity, note = rows["ZFYINFO.TXT"], rows["notes.txt"]
    assert (identity["media_kind"], identity["integrity"]["status"]) == ("other", "ok")
    assert (note["media_kind"], note["integrity"]["status"], note["state"]) == ("other", "ok", "archived")


def test_damaged_and_unreadable_files_are_preserved_byte_for_byte(samples, settings, engine, store):
    report = _ingest(samples.cn_recorder, settings, engine, store)
    rows = _by_name(report)
    expectations = {
        f"{CN_PREFIX}_090000.mp4": ("damaged", "box 'mdat' at offset 40 declares"),
        f"{CN_PREFIX}_090500.mp4": ("damaged", "box 'mdat' at offset"),
        f"{CN_PREFIX}_091000.mp4": ("unreadable", "empty file (0 bytes)"),
        f"{CN_PREFIX}_091500.mp4": ("unreadable", "named like a recording but its content is not a recognised "
                                                  "audiovisual format"),
    }
    for name, (status, detail) in expectations.items():
        row = rows[name]
        assert row["integrity"]["status"] == status, name
        assert row["integrity"]["detail"].startswith(detail), row["integrity"]["detail"]
        original = (samples.cn_recorder / "RECORD" / "20261120" / name).read_bytes()
        with store.open(row["sha256"]) as fh:
            assert fh.read() == original
        assert row["state"] == "archived" and row["size_bytes"] == len(original)
    assert rows[f"{CN_PREFIX}_091000.mp4"]["sha256"] == hashlib.sha256(b"").hexdigest()


def test_hostile_name_is_kept_as_data_and_never_becomes_a_path(samples, settings, engine, store):
    report = _ingest(samples.cn_recorder, settings, engine, store)
    hostile = next(r for r in report.recordings if r["original_name"].startswith(".."))
    assert hostile["original_name"] == "..\\x0a;rm -rf ~;$(reboot) \\xff\\xfe.mp4"
    assert hostile["integrity"]["status"] == "ok"
    with Session(engine) as session:
        row = session.exec(select(Recording).where(Recording.sha256 == hostile["sha256"])).one()
        assert bytes.fromhex(row.technical["original_name_bytes_hex"]) == HOSTILE_NAME
        assert "name contains control characters" in row.technical["name_warnings"]
    # Everything written lives under the station home, named by hash.
    for dirpath, _dirs, files in os.walk(settings.home):
        for name in files:
            path = Path(dirpath) / name
            assert path.is_relative_to(settings.home)
            assert name in ("catalog.db", "catalog.db-wal", "catalog.db-shm", "catalog.db.migrate-lock",
                            "station-1.ed25519.pem", "station-time-files.txt") \
                or name.endswith(".json") \
                or all(c in "0123456789abcdef" for c in name.removesuffix(".jsonl").removesuffix(".lock")), name


def test_the_device_is_never_written_to_but_for_the_station_time_its_profile_asks_for(
        samples, settings, engine, store):
    """Nothing on the device changes, but the time file its profile reads at start-up (校时, clock.set), written
    once at the dock's end; with EVIDENCE_CLOCK_SET off, nothing at all."""
    before = _snapshot(samples.cn_recorder)
    _ingest(samples.cn_recorder, dataclasses.replace(settings, clock_set=False), engine, store)
    assert _snapshot(samples.cn_recorder) == before
    _ingest(samples.cn_recorder, settings, engine, store)
    after = _snapshot(samples.cn_recorder)
    [written] = set(after) - set(before)
    assert written == os.fsencode(samples.cn_recorder / "TIME.TXT") and after.items() >= before.items()


def test_redocking_the_same_device_ingests_nothing_twice(samples, settings, engine, store):
    first = _ingest(samples.cn_recorder, settings, engine, store)
    second = _ingest(samples.cn_recorder, settings, engine, store)
    assert second.recordings == []
    assert len(second.skipped) == len(first.skipped) + 12
    assert all(s["reason"].startswith("already ingested as recording ") for s in second.skipped
               if "092000" not in s["file"])
    with Session(engine) as session:
        assert len(session.exec(select(Recording)).all()) == 12
        assert len(session.exec(select(Sighting)).all()) == 12
        sessions = session.exec(select(DockSession).order_by(col(DockSession.id))).all()
        assert [(s.files_new, s.files_known) for s in sessions] == [(12, 0), (0, 0)]


def test_same_bytes_on_two_devices_are_one_recording_with_two_sightings(samples, settings, engine, store, tmp_path):
    clip = samples.cn_recorder / "RECORD" / "20261120" / f"{CN_PREFIX}_083000.mp4"
    other = tmp_path / "other-camera" / "DCIM" / "100OTHER"
    other.mkdir(parents=True)
    shutil.copyfile(clip, other / "MVI_0100.MP4")
    first = _ingest(samples.cn_recorder, settings, engine, store)
    second = _ingest(tmp_path / "other-camera", settings, engine, store)
    assert [r["ingest"] for r in second.recordings] == ["known"]
    sha = second.recordings[0]["sha256"]
    assert sha == _by_name(first)[f"{CN_PREFIX}_083000.mp4"]["sha256"]
    with Session(engine) as session:
        recording = session.exec(select(Recording).where(Recording.sha256 == sha)).one()
        sightings = session.exec(select(Sighting).where(Sighting.recording_id == recording.id)).all()
        assert sorted(s.device_path for s in sightings) == [
            "DCIM/100OTHER/MVI_0100.MP4", f"RECORD/20261120/{CN_PREFIX}_083000.mp4"]
        assert recording.original_name == f"{CN_PREFIX}_083000.mp4"  # the first sighting names it
        kinds = [e.kind for e in session.exec(select(CustodyEvent).where(
            CustodyEvent.recording_id == recording.id).order_by(col(CustodyEvent.id)))]
        assert kinds == ["copied", "stamped", "archived", "manifested", "sighted"]


def test_camera_times_from_exif_with_and_without_offset(samples, tmp_path, catalog_url, store):
    from catalog import open_catalog
    from ingest.config import Settings

    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
                                  "EVIDENCE_STATION_PLACE": "31.2,121.5", "EVIDENCE_STATION_TZ": "Asia/Shanghai"})
    engine = open_catalog(settings.database_url)
    try:
        rows = _by_name(_ingest(samples.dcim_camera, settings, engine, LocalStore(settings.store_path)))
    finally:
        engine.dispose()
    first = rows["IMG_0001.JPG"]
    assert (first["captured_start"], first["zone_assumed"]) == ("2026-11-20T06:05:00Z", None)
    assert rows["IMG_0001.JPG"]["raw_device_time"] == "2026:11:20 14:05:00 +08:00"
    assert rows["IMG_0001.JPG"]["device_serial"] == "CAM998877"  # EXIF BodySerialNumber
    assert (rows["IMG_0002.JPG"]["captured_start"], rows["IMG_0002.JPG"]["zone_assumed"]) == (
        "2026-11-20T06:06:00Z", "Asia/Shanghai")
    assert rows["IMG_0002.JPG"]["place"] == {"lat": 31.2, "lon": 121.5, "source": "station"}
    assert rows["IMG_0004.JPG"]["integrity"] == {"status": "damaged",
                                                 "detail": "JPEG end-of-image marker missing (truncated)"}
    video = rows["MVI_0003.MP4"]
    assert (video["time_source"], video["captured_start"], video["place"]["source"]) == (
        "container", "2026-11-20T06:10:00Z", "container")


def test_file_time_is_used_when_nothing_else_dates_a_photo(tmp_path, settings, engine, store):
    folder = tmp_path / "cam" / "DCIM" / "100X"
    photo = make_photo(folder / "IMG_0009.JPG")  # no EXIF date at all
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    os.utime(photo, (when.timestamp(), when.timestamp()))
    row = _ingest(tmp_path / "cam", settings, engine, store).recordings[0]
    assert (row["time_source"], row["captured_start"]) == ("file_mtime", "2026-03-04T05:06:07Z")
    assert row["zone_assumed"] is None


def test_sidecar_recorder_uses_gps_time_and_records_the_clock_drift(samples, settings, engine, store):
    report = _ingest(samples.sidecar_recorder, settings, engine, store)
    rows = _by_name(report)
    clip = rows["CLIP0001.mp4"]
    assert (clip["time_source"], clip["captured_start"], clip["captured_end"]) == (
        "sidecar", "2026-11-20T02:10:00Z", "2026-11-20T02:10:02Z")
    assert (clip["clock_offset_s"], clip["raw_device_time"]) == (-95.0, "2026-11-20 10:11:35")
    assert clip["place"] == {"lat": 31.2304, "lon": 121.4737, "source": "sidecar"}
    assert clip["officer"] == {"number": "020304", "name": "李四"} and clip["device_serial"] == "GPS7788"
    assert rows["CLIP0002.wav"]["clock_offset_s"] == -95.0
    broken = rows["CLIP0003.mp4"]
    assert (broken["time_source"], broken["captured_start"]) == ("container", "2026-11-20T02:31:35Z")
    assert broken["integrity"]["detail"].startswith("sidecar ignored: not UTF-8 JSON")


def test_known_clock_offset_given_at_ingest_is_applied(samples, settings, engine, store):
    rows = _by_name(_ingest(samples.cn_recorder, settings, engine, store, clock_offset_s=-28800))
    clip = rows[f"{CN_PREFIX}_083000.mp4"]
    assert (clip["captured_start"], clip["clock_offset_s"]) == ("2026-11-19T16:30:00Z", -28800)


def test_invalid_case_number_is_refused_before_anything_is_read(samples, settings, engine, store):
    with pytest.raises(StampInvalid) as info:
        _ingest(samples.cn_recorder, settings, engine, store, case_number="x; DROP TABLE")
    assert info.value.details == [f"case number 'x; DROP TABLE' does not match the pattern {settings.case_pattern!r}"]
    with Session(engine) as session:
        assert session.exec(select(DockSession)).all() == []


def test_a_file_vanishing_mid_dock_is_reported_and_the_rest_continue(samples, settings, engine, store, monkeypatch):
    real_scan = scan_device
    victim = samples.cn_recorder / "AUDIO" / "20261120" / f"{CN_PREFIX}_084500.wav"

    def scan_then_lose_a_file(root, profile, **kwargs):
        result = real_scan(root, profile, **kwargs)
        victim.unlink()  # the officer pulled the card, or the device dropped the file
        return result

    monkeypatch.setattr(pipeline, "scan_device", scan_then_lose_a_file)
    report = _ingest(samples.cn_recorder, settings, engine, store)
    assert report.errors == [{"file": f"AUDIO/20261120/{CN_PREFIX}_084500.wav", "stage": "copy",
                              "reason": "No such file or directory", "preserved": False}]
    assert len(report.recordings) == 11 and not report.all_preserved
    with Session(engine) as session:
        failed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "ingest_failed")).one()
        assert failed.details["file"] == f"AUDIO/20261120/{CN_PREFIX}_084500.wav"


def test_a_device_unplugged_mid_dock_keeps_what_was_copied(samples, settings, engine, store, monkeypatch):
    real_scan = scan_device

    def scan_then_unplug(root, profile, **kwargs):
        result = real_scan(root, profile, **kwargs)
        shutil.rmtree(root)
        return result

    monkeypatch.setattr(pipeline, "scan_device", scan_then_unplug)
    report = _ingest(samples.sidecar_recorder, settings, engine, store)
    assert report.errors[-1]["stage"] == "device"
    assert "vanished while copying 'CLIPS/CLIP0001.json'" in report.errors[-1]["reason"]
    with Session(engine) as session:
        dock = session.exec(select(DockSession)).one()
        assert dock.finished_at is not None and dock.files_failed == 1


class _OutageStore(LocalStore):
    """The real local store behind a switch that simulates an outage."""

    down = True

    def put_file(self, path, **kw):
        if self.down:
            raise BackendUnavailable("local", "disk offline")
        return super().put_file(path, **kw)


def test_store_outage_leaves_recordings_staged_and_the_next_run_archives_them(samples, settings, engine):
    store = _OutageStore(settings.store_path)
    report = _ingest(samples.sidecar_recorder, settings, engine, store)
    assert {r["state"] for r in report.recordings} == {"staged"}
    assert all(e["preserved"] and e["stage"] == "archive" for e in report.errors) and report.all_preserved
    # The staged copies wait, with the journal that names them, for the next run.
    assert sorted(p.name for p in settings.staging_dir.iterdir()) == sorted(
        [r["sha256"] for r in report.recordings] + ["journal"])
    store.down = False
    again = _ingest(samples.sidecar_recorder, settings, engine, store)
    assert again.recordings == []
    with Session(engine) as session:
        states = {r.state for r in session.exec(select(Recording))}
    assert states == {"archived"}
    assert list(settings.staging_dir.iterdir()) == []
    for row in report.recordings:
        assert store.head(row["sha256"]).key == object_key(row["sha256"])


def test_custody_chain_covers_the_ingest_and_detects_tampering(samples, settings, engine, store):
    _ingest(samples.sidecar_recorder, settings, engine, store)
    with Session(engine) as session:
        chain = load_chain(session)
        # the first dock adopts the station's retention policy (catalog.policy_adoption), records the officer the
        # device names (catalog.recordings.ensure_officer) and the unknown device itself (catalog.devices), then
        # registers its key
        assert [e.kind for e in chain][:5] == ["policy_adopted", "registry_changed", "registry_changed",
                                               "key_registered", "docked"]
        assert chain[1].details["register"] == "officer" and chain[1].details["source"] == "device"
        assert (chain[2].details["register"], chain[2].details["action"], chain[2].details["source"]) == (
            "device", "docked_unknown", "device")
        assert chain[-1].kind == "undocked"
        assert find_chain_breaks(chain) == []
        victim = next(e for e in chain if e.kind == "copied")
        as_attacker(engine)  # past the database's append-only guard, as an owner could go
        victim.details = {**victim.details, "size_bytes": 1}
        session.add(victim)
        session.commit()
        problems = find_chain_breaks(load_chain(session))
    assert len(problems) == 1
    assert problems[0].startswith(f"event {victim.id} (copied): content does not match its hash")


def test_ingest_stamp_is_revision_one(samples, settings, engine, store):
    _ingest(samples.sidecar_recorder, settings, engine, store, officer="999001", purpose="巡查")
    with Session(engine) as session:
        revisions = session.exec(select(StampRevision)).all()
        assert len(revisions) == 7  # three recordings, their three sidecars, the recorder's identity file
        assert {(r.revision, r.collector, r.purpose, r.reason) for r in revisions} == {(1, "999001", "巡查", "ingest")}


@pytest.mark.s3
@pytest.mark.parametrize("readback", ["queued", "inline"])
def test_ingest_into_s3_object_lock_ends_verified(samples, tmp_path, catalog_url, s3_server, readback):
    from catalog import open_catalog
    from ingest.archiving import READ_BACK_ON_WRITE, READ_BACK_QUEUED
    from ingest.config import Settings
    from ingest.pipeline import IngestOptions
    from ingest.queue.workers import run_ingest
    from ingest.services import open_store
    from tests.conftest import make_bucket

    _client, bucket = make_bucket(s3_server)
    settings = Settings.from_env({
        "EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
        "EVIDENCE_STORE_URL": f"s3://{bucket}/bj", "EVIDENCE_S3_ENDPOINT": s3_server.endpoint,
        "EVIDENCE_S3_ACCESS_KEY": s3_server.access_key, "EVIDENCE_S3_SECRET_KEY": s3_server.secret_key,
        "EVIDENCE_S3_READBACK": readback})
    store = open_store(settings)
    report = run_ingest(samples.sidecar_recorder, settings, IngestOptions(), derive="later")
    engine = open_catalog(settings.database_url)
    try:
        assert {r["state"] for r in report.recordings} == {"verified"}
        assert {r["store"]["name"] for r in report.recordings} == {"s3"}
        assert all(str(r["store"]["key"]).startswith("bj/sha256/") for r in report.recordings)
        assert list(settings.staging_dir.iterdir()) == []  # staging cleared (part checksums too) once stored
        for row in report.recordings:
            # the server keeps whole seconds: rounded up, never shorter than the catalogue's date
            catalogued = datetime.fromisoformat(str(row["retain_until"]).replace("Z", "+00:00"))
            held = store.head(row["sha256"]).retain_until
            assert catalogued <= held < catalogued + timedelta(seconds=1)
            assert store.verify(row["sha256"]) == row["sha256"]
        with Session(engine) as session:
            assert {r.state for r in session.exec(select(Recording))} == {"verified"}
            events = list(session.exec(select(CustodyEvent).where(
                CustodyEvent.recording_id == report.recordings[0]["id"]).order_by(col(CustodyEvent.id))))
        kinds = [e.kind for e in events]
        verified = next(e for e in events if e.kind == "verified")
        if readback == "inline":  # read back in the upload, before the manifest
            assert kinds == ["copied", "stamped", "archived", "verified", "manifested"]
            assert verified.details["how"] == READ_BACK_ON_WRITE
        else:  # archived (every part checked by the server), sealed, then read back whole
            assert kinds == ["copied", "stamped", "archived", "manifested", "verified"]
            assert verified.details["how"] == READ_BACK_QUEUED
        assert verified.details["row"] == {"state": "verified"}
    finally:
        engine.dispose()


def test_the_same_bytes_twice_in_one_dock_are_archived_once(samples, settings, engine, store):
    folder = samples.cn_recorder / "RECORD" / "20261120"
    shutil.copyfile(folder / f"{CN_PREFIX}_083000.mp4", folder / f"{CN_PREFIX}_083001.mp4")
    report = _ingest(samples.cn_recorder, settings, engine, store)
    rows = [r for r in report.recordings if r["original_name"].endswith(("083000.mp4", "083001.mp4"))]
    assert sorted(r["ingest"] for r in rows) == ["known", "new"]
    assert len({r["sha256"] for r in rows}) == 1
    sha = rows[0]["sha256"]
    assert store.verify(sha) == sha  # the duplicate never took the staged copy away from the upload
    with Session(engine) as session:
        recording = session.exec(select(Recording).where(Recording.sha256 == sha)).one()
        assert recording.state == "archived"
        assert len(session.exec(select(Sighting).where(Sighting.recording_id == recording.id)).all()) == 2
    assert list(settings.staging_dir.iterdir()) == []
