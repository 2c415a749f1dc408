"""What an outside review broke, kept broken-proof: each test is an input that once destroyed, hid or released
evidence early. (The review's reproducers, turned into tests against the real pipeline, stores and catalogue.)"""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlmodel import Session, select

from catalog import Recording, StampInvalid, plan_disposal
from catalog.disposal import Signer, start_sweep
from catalog.restamping import HoldLiftRefused
from catalog.verification import verify_archive
from device_profiles import load_profiles
from ingest.describe.structure import check_structure
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.samples import make_amr, make_clip, make_wav
from ingest.station.clearing import clear_device
from ingest.station.tagging import tag_dock_session
from ingest.transfer import CopyResult, copy_and_hash
from storage import object_key
from tests import media
from tests.helpers.retention import one_person_disposal

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

IDENTITY = "产品序号=A123456\r\n警员编号=010203\r\n".encode("gbk")
FAR = datetime(2099, 1, 1, tzinfo=UTC)


def _set_mtime(path: Path, when: datetime) -> None:
    import os

    os.utime(path, (when.timestamp(), when.timestamp()))


def _recorder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ZFYINFO.TXT").write_bytes(IDENTITY)
    return root


def _ingest(device: Path, settings, engine, store, **options):
    return ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions(**options))


def test_a_reset_clock_never_lets_clearing_delete_a_recording_nobody_copied(tmp_path, settings, engine, store):
    # A recorder whose clock restarts at 2000-01-01 every power-up; fixed-rate AMR: day 2's recording has day 1's
    # name, size and file time, and other bytes.
    profile = load_profiles()["cn-enforcement-recorder"]
    device = _recorder(tmp_path / "recorder")
    name = "ZFY_A123456_010203_20000101_080000.amr"
    days = []
    for seed in (1, 2):
        clip = make_amr(device / "RECORD" / name, seconds=2.0, seed=seed)
        _set_mtime(clip, datetime(2000, 1, 1, 0, 10, tzinfo=UTC))
        days.append(clip.read_bytes())
        report = _ingest(device, settings, engine, store)
        assert [r["device_path"] for r in report.recordings
                if r["ingest"] == "new" and r["device_path"].endswith(".amr")] == [f"RECORD/{name}"]
        cleared = clear_device(engine, store, device, profile, device_serial="A123456", actor="station:test")
        assert cleared.cleared == [f"RECORD/{name}"]
    with Session(engine) as session:
        hashes = {r.sha256 for r in session.exec(select(Recording))}
    assert {hashlib.sha256(day).hexdigest() for day in days} <= hashes  # both days archived before each clearing


def test_clearing_refuses_a_file_whose_bytes_are_not_the_archived_ones(tmp_path, settings, engine, store):
    profile = load_profiles()["cn-enforcement-recorder"]
    device = _recorder(tmp_path / "recorder")
    clip = make_wav(device / "RECORD" / "ZFY_A123456_010203_20261120_080000.wav", seconds=1.0)
    _ingest(device, settings, engine, store)
    import os

    stat = clip.stat()
    data = bytearray(clip.read_bytes())
    data[-1] ^= 0xFF  # the device rewrote the file in place: same name, size and time, other bytes
    clip.write_bytes(bytes(data))
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    result = clear_device(engine, store, device, profile, device_serial="A123456", actor="station:test")
    assert result.cleared == [] and clip.exists()
    assert "its bytes on the device hash to" in result.kept[f"RECORD/{clip.name}"]


def test_a_read_that_ends_early_is_flagged_and_the_whole_file_is_archived_before_clearing(
        tmp_path, settings, engine, store, monkeypatch):
    profile = load_profiles()["cn-enforcement-recorder"]
    device = _recorder(tmp_path / "recorder")
    clip = make_clip(device / "RECORD" / "ZFY_A123456_010203_20261120_083000.mp4", seconds=2,
                     creation_time="2026-11-20T08:30:00Z")
    whole = clip.read_bytes()
    real = copy_and_hash

    def short_read(source, staging, **kw):
        if source.suffix != ".mp4":
            return real(source, staging, **kw)
        cut = tmp_path / "cut.bin"  # what a USB reset at 40 % delivers: EOF early, no error
        cut.write_bytes(whole[: len(whole) * 4 // 10])
        done = real(cut, staging, **kw)
        return CopyResult(source=source, destination=done.destination, size_bytes=done.size_bytes,
                          sha256=done.sha256, resumed_from=0)

    monkeypatch.setattr(pipeline, "copy_and_hash", short_read)
    first = _ingest(device, settings, engine, store)
    monkeypatch.setattr(pipeline, "copy_and_hash", real)
    cut_row = next(r for r in first.recordings if r["original_name"] == clip.name)
    assert cut_row["integrity"]["status"] == "damaged"
    assert f"the device listed {len(whole)} bytes but {len(whole) * 4 // 10} were read" in \
        cut_row["integrity"]["detail"]
    # the sighting records what was read, so the next dock reads the whole file again
    second = _ingest(device, settings, engine, store)
    assert [r["sha256"] for r in second.recordings if r["ingest"] == "new"] == [hashlib.sha256(whole).hexdigest()]
    clear_device(engine, store, device, profile, device_serial="A123456", actor="station:test")
    with store.open(hashlib.sha256(whole).hexdigest()) as fh:
        assert fh.read() == whole


def test_a_second_anonymous_card_in_the_same_slot_is_read_not_skipped(tmp_path, settings, engine, store):
    slot = tmp_path / "media" / "usb0"
    found = []
    for seed in (1, 2):
        wav = make_wav(tmp_path / f"w{seed}.wav", seconds=1.0)
        data = bytearray(wav.read_bytes())
        data[-1] = seed  # same length, same name, same time: other bytes
        target = slot / "DCIM" / "REC0001.WAV"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(data))
        _set_mtime(target, datetime(2026, 11, 20, 8, tzinfo=UTC))
        report = _ingest(slot, settings, engine, store, profile="generic-dcim-camera")
        found += [r["sha256"] for r in report.recordings if r["ingest"] == "new"]
    assert len(set(found)) == 2


def test_an_important_marker_on_a_file_the_profile_does_not_list_still_holds_it(tmp_path, settings, engine,
                                                                               store):
    device = _recorder(tmp_path / "recorder")
    audio = device / "RECORD" / "ZFY_A123456_010203_20261120_083500_IMP.m4a"
    audio.parent.mkdir(parents=True, exist_ok=True)
    media.make_m4a(audio.parent).rename(audio)
    report = _ingest(device, settings, engine, store)
    row = next(r for r in report.recordings if r["original_name"] == audio.name)
    assert (row["media_kind"], row["important"], row["legal_hold"]) == ("audio", True, True)
    with Session(engine) as session:
        plan = {i.recording_id: i.status for i in plan_disposal(session, settings.retention_policy, as_of=FAR)}
    assert plan[row["id"]] == "held"


def test_the_station_cannot_lift_a_hold_only_a_clerk_can(tmp_path, settings, engine, store):
    device = _recorder(tmp_path / "recorder")
    make_clip(device / "RECORD" / "ZFY_A123456_010203_20261120_083500_IMP.mp4", seconds=1,
              creation_time="2026-11-20T08:35:00Z")
    report = _ingest(device, settings, engine, store)
    clip = next(r for r in report.recordings if r["original_name"].endswith("_IMP.mp4"))
    with pytest.raises(HoldLiftRefused, match="removes the important flag, which lifts its hold: a clerk decides"):
        tag_dock_session(engine, store, Ed25519PrivateKey.generate(), session_id=report.dock_session_id,
                         by="anyone", reason="tagged at the station kiosk", case_pattern=settings.case_pattern,
                         changes={"important": False}, policy=settings.retention_policy)
    assert store.head(clip["sha256"]).legal_hold is True


def test_one_date_no_calendar_can_hold_never_blocks_a_dock(tmp_path, settings, engine, store):
    card = tmp_path / "card" / "DCIM" / "100MEDIA"
    card.mkdir(parents=True)
    poison = card / "AAA0001.MP4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
                    "-metadata", "date=9999-12-31T23:00:00-12:00", "-movflags", "use_metadata_tags", str(poison)],
                   check=True)
    _set_mtime(poison, datetime(1980, 1, 1, tzinfo=UTC))  # a FAT volume's epoch
    for i in range(3):
        make_clip(card / f"ZZZ000{i}.MP4", seconds=1 + i / 10, creation_time="2026-11-20T08:00:00Z")
    report = _ingest(tmp_path / "card", settings, engine, store, profile="generic-dcim-camera")
    assert report.errors == [] and len(report.recordings) == 4
    row = next(r for r in report.recordings if r["original_name"] == "AAA0001.MP4")
    assert row["time_implausible"] is True and row["state"] == "archived"


def test_a_sidecar_or_header_claiming_the_year_9999_neither_locks_for_ever_nor_hides_the_clip(
        tmp_path, settings, engine, store):
    device = tmp_path / "rec"
    (device / "CLIPS").mkdir(parents=True)
    (device / "RECORDER.JSON").write_text(json.dumps({"serial": "GPS0001"}), encoding="utf-8")
    now = datetime.now(UTC)
    make_clip(device / "CLIPS" / "C0001.mp4", seconds=1)
    (device / "CLIPS" / "C0001.json").write_text(json.dumps({"start_utc": (now - timedelta(hours=1)).isoformat(),
                                                             "end_utc": "9999-12-31T00:00:00Z"}), encoding="utf-8")
    make_clip(device / "CLIPS" / "C0002.mp4", seconds=1.5)
    (device / "CLIPS" / "C0002.json").write_text(json.dumps({"start_utc": "9999-12-31T23:00:00-05:00"}),
                                                 encoding="utf-8")
    report = _ingest(device, settings, engine, store)
    rows = {r["original_name"]: r for r in report.recordings}
    end_liar = rows["C0001.mp4"]
    assert end_liar["time_implausible"] is True and "the end is taken as the start" in end_liar["time_problem"]
    assert store.head(end_liar["sha256"]).retain_until < now + timedelta(days=200)
    start_liar = rows["C0002.mp4"]
    assert (start_liar["media_kind"], start_liar["integrity"]["status"]) == ("video", "ok")
    with pytest.raises(StampInvalid, match="clock offset nan s"):
        _ingest(device, settings, engine, store, clock_offset_s=float("nan"))


def test_known_bytes_seen_again_as_important_become_a_sealed_revision_with_a_hold(tmp_path, settings, engine,
                                                                                 store):
    first, second = _recorder(tmp_path / "a"), _recorder(tmp_path / "b")
    clip = make_clip(first / "RECORD" / "ZFY_A123456_010203_20261120_083500.mp4", seconds=1,
                     creation_time="2026-11-20T08:35:00Z")
    _ingest(first, settings, engine, store)
    (second / "RECORD").mkdir()
    (second / "RECORD" / "ZFY_A123456_010203_20261120_083500_IMP.mp4").write_bytes(clip.read_bytes())
    report = _ingest(second, settings, engine, store)
    row = next(r for r in report.recordings if r["original_name"].endswith(".mp4"))
    assert (row["ingest"], row["important"], row["legal_hold"], row["stamp_revision"]) == ("known", True, True, 2)
    assert store.head(row["sha256"]).legal_hold is True
    with Session(engine) as session:
        assert verify_archive(session, store, [row["id"]], chain=True).problems == []


def test_a_row_and_lock_file_edited_behind_the_applications_back_are_caught_and_never_disposed(
        tmp_path, settings, engine, store):
    make_clip(tmp_path / "card" / "DCIM" / "100MEDIA" / "MOV0001.MP4", seconds=1,
              creation_time="2026-11-20T08:00:00Z")
    row = _ingest(tmp_path / "card", settings, engine, store, profile="generic-dcim-camera").recordings[0]
    past = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:  # an insider with database access
        conn.execute(text("UPDATE recording SET retain_until=:p, archived_at=:p, ingested_at=:p, captured_end=:p "
                          "WHERE id=:i"), {"p": past, "i": row["id"]})
    lock = store.root / "retention" / f"{object_key(row['sha256'])}.json"  # and the lock file beside the object
    lock.write_text(json.dumps({"retain_until": "2020-06-01T00:00:00+00:00", "legal_hold": False}))
    with Session(engine) as session:
        problems = verify_archive(session, store, [row["id"]], chain=False).problems
        assert any("earlier than the" in p.detail and "signed in this manifest" in p.detail for p in problems)
        one_person_disposal(session, settings.retention_policy)
        batch = start_sweep(session, store, settings.retention_policy, now=datetime.now(UTC), by="clerk",
                            approval_required=False, signer=Signer("station-1", Ed25519PrivateKey.generate()))
        assert batch is not None and batch.status == "partial"
        # Refused before anything else: the row disagrees with the retain-until its custody events recorded.
        assert batch.outcome[0]["result"] == "refused" and batch.outcome[0]["reason"].startswith(
            "the catalogue disagrees with the custody chain: retain_until: the catalogue row says "
            f"{past.isoformat()}, the custody chain says ")
    assert store.exists(row["sha256"])


def test_an_empty_moof_box_appended_to_a_cut_movie_does_not_switch_the_sample_check_off(tmp_path):
    cut = media.make_mp4_past_eof(tmp_path)
    disguised = tmp_path / "disguised.mp4"
    disguised.write_bytes(cut.read_bytes() + struct.pack(">I4s", 8, b"moof"))
    problem = check_structure(disguised).problem
    assert problem is not None and "ends past the end of the" in problem


def test_files_whose_names_once_showed_alike_are_each_kept(samples, settings, engine, store):
    """A review's device: the byte 0xFF and the four characters "\\xff" in otherwise equal names, and two names in
    a folder so deep that the shown path was cut at 1,024 characters, each pair of the same size and time. The
    second of each, docked later, was skipped as "already ingested" (the recorder's identity lets a known path,
    size and time stand for its bytes)."""
    import os

    device = samples.cn_recorder
    folder = os.fsencode(device / "RECORD" / "20261120")
    deep = folder + b"".join(b"/" + bytes([c]) * 250 for c in b"defgh")
    os.makedirs(deep)
    files = {folder + b"/\xff_CLIP.mp4": b"A" * 100_000, folder + b"/\\xff_CLIP.mp4": b"B" * 100_000,
             deep + b"/a_clip.mp4": b"C" * 100_000, deep + b"/c_clip.mp4": b"D" * 100_000}
    when = datetime(2026, 11, 20, 8, 30, tzinfo=UTC).timestamp()

    def put(items: list[tuple[bytes, bytes]]) -> None:
        for path, data in items:
            with open(path, "wb") as fh:
                fh.write(data)
            os.utime(path, (when, when))

    put(list(files.items())[0::2])
    ingest_folder(device, settings=settings, engine=engine, store=store)
    put(list(files.items())[1::2])  # the second of each pair, in a later dock (the recorder went on recording)
    report = ingest_folder(device, settings=settings, engine=engine, store=store)
    assert report.new_count == 2, report.skipped
    with Session(engine) as session:
        stored = {r.sha256 for r in session.exec(select(Recording))}
    assert {hashlib.sha256(data).hexdigest() for data in files.values()} <= stored


def test_a_folder_the_walk_cannot_enter_makes_the_dock_partial_not_complete(samples, settings, engine, store):
    # A review's folder that could not be listed (or one deeper than the walk goes) was reported as skipped and
    # the dock recorded `complete`, though recordings may be in it.
    deep = samples.cn_recorder / "RECORD"
    for level in range(70):
        deep = deep / f"d{level}"
    deep.mkdir(parents=True)
    (deep / "ZFY_A123456_010203_20261120_093000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    report = ingest_folder(samples.cn_recorder, settings=settings, engine=engine, store=store)
    [error] = [e for e in report.errors if e["stage"] == "scan"]
    assert error["reason"] == "folder deeper than 64 levels not walked" and not error["preserved"]
    with Session(engine) as session:
        from catalog import DockSession

        dock = session.get(DockSession, report.dock_session_id)
        assert dock is not None and dock.result == "partial"
        assert "folder deeper than 64 levels not walked" in (dock.result_note or "")


def test_an_identity_file_naming_a_serial_no_catalogue_can_hold_never_stops_the_dock(tmp_path, settings, engine,
                                                                                      store):
    """A serial of 300 characters, or one holding a NUL, once stopped the dock on PostgreSQL (a review): the
    device is named by its file names instead, the identity's problem said, and every file kept."""
    for n, serial in enumerate(["S" * 300, "A12\x003456"]):
        device = tmp_path / f"zfy{n}"
        make_clip(device / "RECORD" / f"ZFY_B76543{n}_010203_20261120_092000.mp4", seconds=1 + n)
        (device / "ZFYINFO.TXT").write_bytes(f"产品序号={serial}\r\n警员编号=010203\r\n".encode("gbk"))
        report = ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
        assert report.all_preserved and report.device_serial == f"B76543{n}"
        assert [r["original_name"] for r in report.recordings] == [
            f"ZFY_B76543{n}_010203_20261120_092000.mp4", "ZFYINFO.TXT"]
        assert any("identity field serial" in s["reason"] for s in report.skipped)
