"""The device clock at a dock: measured where the profile can (its clock file, the time of the file it writes when
docked, its GPS sidecars), and set to the station's (校时) where the profile says how, each write a custody event.

Attacked as the field does it: a file of the device's own under the time file's name (never overwritten, kept as
evidence), a folder or a link in its place, the station's own file found again at the next dock (left, listed, not
taken for evidence), a profile that would write outside the device or over its clock file, a camera that cannot be
set (never written to), EVIDENCE_CLOCK_SET off, and a drifted clock raising the register's alert.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from catalog import CustodyEvent, DockSession, Recording, find_chain_breaks, load_chain
from catalog.custody_words import event_sentence
from catalog.device_alerts import AlertRules, device_alerts
from catalog.report_values import Values
from device_profiles import ClockSetRule, ProfileInvalid, load_profiles, parse_profile
from ingest.clock_set import clock_set_text, is_station_time_file, write_station_time
from ingest.errors import CopyFailed
from ingest.pipeline import IngestOptions, closing, ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.pipeline.device import dock_file_offset
from ingest.samples import SIDE_CLOCK_DRIFT_S, make_clip
from ingest.transfer import copy_and_hash

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

RULE = ClockSetRule(file="TIME.TXT")
USB_LOG_PROFILE = """
name: usb-log-recorder
recognise: {any_files: [USB.LOG]}
recordings: ["*.mp4"]
time_sources: [container]
clock: {zone: Asia/Shanghai, container_time_is_local: true, dock_file: USB.LOG}
clear_after_archive: false
"""


def _ingest(path, settings, engine, store, **options):
    return ingest_folder(path, settings=settings, engine=engine, store=store, options=IngestOptions(**options))


def _events(engine, kind: str) -> list[CustodyEvent]:
    with Session(engine) as session:
        return list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == kind)
                                 .order_by(col(CustodyEvent.id))))


# ----------------------------------------------------------------------------- the rules, without a device


def test_the_time_written_is_the_stations_on_the_devices_wall_clock_across_midnight():
    just_before = datetime(2026, 12, 5, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Beijing
    assert clock_set_text(RULE, just_before, "Asia/Shanghai") == "2026-12-05 23:59:59"
    assert clock_set_text(RULE, just_before + timedelta(seconds=1), "Asia/Shanghai") == "2026-12-06 00:00:00"
    assert clock_set_text(RULE, just_before, "UTC") == "2026-12-05 15:59:59"


def test_only_the_very_bytes_the_station_wrote_are_its_file(tmp_path):
    done = write_station_time(tmp_path, RULE, zone="Asia/Shanghai", written=frozenset())
    data = (tmp_path / "TIME.TXT").read_bytes()
    assert is_station_time_file(data, frozenset({done.sha256}))
    assert not is_station_time_file(data, frozenset())  # a time line the station never wrote: the device's
    assert not is_station_time_file(b"2026-12-06 08:00:00\r\n", frozenset({done.sha256}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TIME.TXT"]  # no temporary file left


def test_a_profile_that_would_write_outside_the_device_or_over_its_clock_is_refused_with_every_problem():
    base = {"name": "bad", "recognise": {"any_files": ["X"]}, "recordings": ["*.mp4"], "time_sources": ["container"],
            "clear_after_archive": False}
    with pytest.raises(ProfileInvalid) as caught:
        parse_profile({**base, "clock": {"zone": "Asia/Shanghai", "file": "CLOCK.TXT",
                                         "set": {"file": "../../etc/cron.d/x", "format": "%H", "zone": "Mars/Base",
                                                 "line_end": "cr"}}})
    text = str(caught.value)
    for problem in ("clock.set.file: expected a file's path on the device", "cannot write the time",
                    "'Mars/Base' is not a known IANA time zone", "clock.set.line_end: 'cr'"):
        assert problem in text, problem
    with pytest.raises(ProfileInvalid, match="where the device shows its own clock"):
        parse_profile({**base, "clock": {"zone": None, "file": "clock.txt", "set": {"file": "CLOCK.TXT"}}})
    with pytest.raises(ProfileInvalid, match=r"clock\.dock_file: expected a file's path"):
        parse_profile({**base, "clock": {"zone": None, "dock_file": "/var/log/syslog"}})
    for path in ("C:\\TIME.TXT", "TIME.TXT:stream", " TIME.TXT", "SYS/../TIME.TXT", "TIME\0.TXT"):
        with pytest.raises(ProfileInvalid, match="expected a file's path on the device"):
            parse_profile({**base, "clock": {"zone": None, "set": {"file": path}}})
    with pytest.raises(ProfileInvalid, match="is the device's identity file"):
        parse_profile({**base, "identity": {"file": "ID.TXT", "fields": {"serial": "sn"}},
                       "clock": {"zone": None, "set": {"file": "id.txt"}}})


def test_each_built_in_profile_says_how_its_clock_is_measured_and_whether_it_can_be_set():
    profiles = load_profiles()
    said = {name: (p.clock_measures, p.clock.set_rule is not None) for name, p in profiles.items()}
    assert said == {"cn-enforcement-recorder": ((), True), "generic-dcim-camera": ((), False),
                    "gps-sidecar-recorder": (("sidecar_gps",), False)}


def test_the_time_of_a_file_the_device_wrote_at_the_dock_measures_its_clock(tmp_path):
    now = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    log = tmp_path / "USB.LOG"
    log.write_text("usb mode\n")
    device_wall = (now + timedelta(seconds=300)).astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=UTC)
    os.utime(log, (device_wall.timestamp(), device_wall.timestamp()))  # FAT: its wall clock, shown as if UTC
    assert dock_file_offset(log, zone="Asia/Shanghai", local=True, now=now) == -300.0
    os.utime(log, ((now - timedelta(seconds=42)).timestamp(),) * 2)
    assert dock_file_offset(log, zone="Asia/Shanghai", local=False, now=now) == 42.0
    assert dock_file_offset(tmp_path / "missing", zone="UTC", local=True, now=now) is None


def test_something_in_the_way_is_never_overwritten_and_the_write_never_leaves_the_device(tmp_path):
    device, outside = tmp_path / "device", tmp_path / "outside"
    device.mkdir()
    outside.mkdir()
    (device / "TIME.TXT").write_text("2026-12-06 08:00:00\r\n")  # looks like ours; the station never wrote it
    with pytest.raises(FileExistsError, match="not a time file the station wrote"):
        write_station_time(device, RULE, zone="Asia/Shanghai", written=frozenset())
    assert (device / "TIME.TXT").read_text() == "2026-12-06 08:00:00\n"
    (device / "TIME.TXT").unlink()
    (device / "TIME.TXT").symlink_to(outside / "target")
    with pytest.raises(FileExistsError):
        write_station_time(device, RULE, zone="Asia/Shanghai", written=frozenset())
    (device / "SYS").symlink_to(outside)  # a folder on the way that is a link
    with pytest.raises(OSError, match=r"Too many levels of symbolic links|Not a directory"):
        write_station_time(device, ClockSetRule(file="SYS/TIME.TXT"), zone="UTC", written=frozenset())
    assert list(outside.iterdir()) == []


def test_a_write_cut_short_leaves_nothing_behind(tmp_path, monkeypatch):
    """A full card (ENOSPC) mid-write: no time file, no temporary one; the next write is whole."""
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        write_station_time(tmp_path, RULE, zone="UTC", written=frozenset())
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "write", real_write)
    done = write_station_time(tmp_path, RULE, zone="UTC", written=frozenset())
    assert (tmp_path / "TIME.TXT").read_bytes() == (done.written + "\r\n").encode()


def test_the_custody_sentence_says_which_way_the_clock_was_off_or_that_it_was_not_measured():
    words = {None: ("未测量", "not measured"), -95: ("快 95 秒", "95 s ahead of the station's"),
             30: ("慢 30 秒", "30 s behind the station's")}
    for offset, (zh, en) in words.items():
        event = {"kind": "device_clock_set", "details": {"device_serial": "A1", "written": "2026-12-06 08:00:00",
                                                         "zone": "Asia/Shanghai", "file": "TIME.TXT",
                                                         "offset_before_s": offset}}
        assert event_sentence(event, Values("zh", "Asia/Shanghai")).endswith(f"写入前设备时钟{zh}")
        assert event_sentence(event, Values("en", "Asia/Shanghai")).endswith(f"before, its clock was {en}")


# ----------------------------------------------------------------------------- docked for real


def test_a_recorder_that_reads_a_time_file_is_set_at_each_dock_and_each_setting_is_in_the_custody_chain(
        samples, settings, engine, store):
    device = samples.cn_recorder
    first = _ingest(device, settings, engine, store)
    line = (device / "TIME.TXT").read_bytes()
    written = datetime.strptime(line.decode().removesuffix("\r\n"), "%Y-%m-%d %H:%M:%S")
    station_now = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert line.endswith(b"\r\n") and abs((station_now - written).total_seconds()) < 120  # Beijing time, not UTC
    assert any(n.startswith("clock set (校时)") for n in first.notes)
    [event] = _events(engine, "device_clock_set")
    assert event.dock_session_id == first.dock_session_id and event.details["file"] == "TIME.TXT"
    assert event.details["written"] == line.decode().strip() and event.details["zone"] == "Asia/Shanghai"
    assert event.details["device_serial"] == first.device_serial

    # The next dock, before the recorder read it: the station's file is left, listed, and written anew.
    second = _ingest(device, settings, engine, store)
    assert {"file": "TIME.TXT", "reason": second.discarded[0]["reason"]} in second.discarded
    assert "the station's own time file" in second.discarded[0]["reason"]
    assert second.recordings == [] and len(_events(engine, "device_clock_set")) == 2
    with Session(engine) as session:
        assert not session.exec(select(Recording).where(Recording.original_name == "TIME.TXT")).all()
        assert find_chain_breaks(load_chain(session)) == []


def test_a_file_of_the_devices_own_under_the_time_files_name_is_kept_and_not_overwritten(
        samples, settings, engine, store):
    device = samples.cn_recorder
    (device / "TIME.TXT").write_bytes(b"2026-12-06 08:00:00\r\nGPS lost 3 times\r\n")  # the device's own log
    report = _ingest(device, settings, engine, store)
    assert (device / "TIME.TXT").read_bytes() == b"2026-12-06 08:00:00\r\nGPS lost 3 times\r\n"
    assert any("clock not set (校时)" in n and "TIME.TXT" in n for n in report.notes)
    assert _events(engine, "device_clock_set") == []
    assert "TIME.TXT" in {r["original_name"] for r in report.recordings}  # kept as evidence, as any file


def test_no_write_when_the_profile_cannot_or_the_agency_says_never(samples, settings, engine, store):
    _ingest(samples.dcim_camera, settings, engine, store)
    _ingest(samples.cn_recorder, dataclasses.replace(settings, clock_set=False), engine, store)
    assert not (samples.dcim_camera / "TIME.TXT").exists() and not (samples.cn_recorder / "TIME.TXT").exists()
    assert _events(engine, "device_clock_set") == []


def test_a_gps_recorder_has_its_drift_measured_from_its_sidecars_and_raises_the_drift_alert(
        samples, settings, engine, store):
    report = _ingest(samples.sidecar_recorder, settings, engine, store)
    with Session(engine) as session:
        dock = session.get(DockSession, report.dock_session_id)
        assert dock is not None and dock.clock_offset_s == -SIDE_CLOCK_DRIFT_S  # its clock runs 95 s fast
        [alert] = [a for a in device_alerts(session, AlertRules(drift_s=60), datetime.now(UTC))
                   if a.kind == "clock_drift"]
    assert alert.serial == report.device_serial and alert.values["offset_s"] == -SIDE_CLOCK_DRIFT_S
    assert any("measured against GPS" in n for n in report.notes)


def test_a_recorder_measured_by_the_file_it_writes_when_docked(tmp_path, settings_with_profile, engine, store):
    settings = settings_with_profile("usb-log.yaml", USB_LOG_PROFILE)
    device = tmp_path / "dev"
    make_clip(device / "CLIP0001.mp4", seconds=1, creation_time="2026-12-06T09:00:00Z")
    (device / "USB.LOG").write_text("usb\n")
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=UTC)
    os.utime(device / "USB.LOG", (ahead.timestamp(), ahead.timestamp()))
    report = ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    with Session(engine) as session:
        dock = session.get(DockSession, report.dock_session_id)
        assert dock is not None and dock.clock_offset_s is not None and -605 <= dock.clock_offset_s <= -595
        [docked] = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "docked")).all()
        assert docked.details["device_clock_measured_by"] == "dock_file"
        clip = session.exec(select(Recording).where(Recording.original_name == "CLIP0001.mp4")).one()
    # The clip's container time (the device's wall clock, 09:00 Beijing, 01:00 UTC) is corrected by the ten
    # minutes measured.
    assert clip.captured_start is not None
    assert abs((clip.captured_start - datetime(2026, 12, 6, 0, 50, tzinfo=UTC)).total_seconds()) <= 5


def test_a_time_line_of_the_devices_own_is_kept_and_only_the_exact_name_the_station_wrote_is_left(
        samples, settings, engine, store):
    """With the setting off, a TIME.TXT no station wrote is evidence; on a case-sensitive card, the device's own
    time.txt beside the station's TIME.TXT is evidence too."""
    device = samples.cn_recorder
    (device / "TIME.TXT").write_bytes(b"2026-12-06 08:00:00\r\n")  # looks like a station's; none wrote it
    off = _ingest(device, dataclasses.replace(settings, clock_set=False), engine, store)
    assert "TIME.TXT" in {r["original_name"] for r in off.recordings} and off.discarded == []
    (device / "TIME.TXT").unlink()
    _ingest(device, settings, engine, store)  # the station writes TIME.TXT
    (device / "time.txt").write_bytes(b"2026-12-06 09:00:00\r\n")  # the device's own, in lower case
    again = _ingest(device, settings, engine, store)
    assert [d["file"] for d in again.discarded] == ["TIME.TXT"]
    assert [r["original_name"] for r in again.recordings] == ["time.txt"]


def test_a_dock_that_did_not_read_every_file_or_lost_its_device_sets_nothing(samples, settings, engine, store,
                                                                              monkeypatch):
    """A card returning errors is not written to; nor is another card mounted in the slot of a pulled one."""
    device = samples.cn_recorder
    real_copy = copy_and_hash

    def failing(source, *args, **kwargs):
        if str(source).endswith("_083000.mp4"):
            raise CopyFailed(source, "staging", reason="Input/output error", errno=errno.EIO)
        return real_copy(source, *args, **kwargs)

    monkeypatch.setattr(pipeline, "copy_and_hash", failing)
    partial = _ingest(device, settings, engine, store)
    assert partial.errors and not (device / "TIME.TXT").exists()
    assert any("did not read every file" in n for n in partial.notes)
    monkeypatch.setattr(pipeline, "copy_and_hash", real_copy)

    other = samples.dcim_camera.parent / "another-recorder"
    shutil.copytree(samples.cn_recorder, other)
    real_finish = pipeline.DockRun.finish

    def swapped(self):  # pulled at the end, and another card mounted where it was
        pulled = device.with_name("pulled")
        device.rename(pulled)
        other.rename(device)
        real_finish(self)

    monkeypatch.setattr(pipeline.DockRun, "finish", swapped)
    _ingest(device, settings, engine, store)
    assert not (device / "TIME.TXT").exists() and not (device.with_name("pulled") / "TIME.TXT").exists()
    assert _events(engine, "device_clock_set") == []


def test_a_write_whose_custody_event_cannot_be_committed_is_taken_back(samples, settings, engine, store,
                                                                        monkeypatch):
    real_set = closing.set_device_clock

    def failing_commit(session, dock, clock, **kwargs):
        def commit():
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))
        real_set(session, dock, clock, **{**kwargs, "commit": commit})

    monkeypatch.setattr(pipeline, "set_device_clock", failing_commit)
    with pytest.raises(OperationalError):
        _ingest(samples.cn_recorder, settings, engine, store)
    assert not (samples.cn_recorder / "TIME.TXT").exists()
    assert _events(engine, "device_clock_set") == []


def test_a_gps_sidecar_without_the_devices_own_reading_measures_nothing(samples, settings, engine, store):
    for sidecar in (samples.sidecar_recorder / "CLIPS").glob("CLIP000[12].json"):
        facts = json.loads(sidecar.read_text())
        del facts["device_time"]
        sidecar.write_text(json.dumps(facts))
    report = _ingest(samples.sidecar_recorder, settings, engine, store)
    with Session(engine) as session:
        dock = session.get(DockSession, report.dock_session_id)
        assert dock is not None and dock.clock_offset_s is None


def test_a_dock_file_the_device_did_not_write_at_this_dock_measures_nothing(tmp_path, settings_with_profile,
                                                                             engine, store):
    """A day-old USB log once moved every capture time 20 hours: a file newer than it shows it is stale."""
    settings = settings_with_profile("usb-log.yaml", USB_LOG_PROFILE)
    device = tmp_path / "dev"
    clip = make_clip(device / "CLIP0001.mp4", seconds=1, creation_time="2026-12-06T09:00:00Z")
    (device / "USB.LOG").write_text("usb\n")
    os.utime(device / "USB.LOG", ((datetime.now(UTC) - timedelta(hours=20)).timestamp(),) * 2)
    os.utime(clip, ((datetime.now(UTC) - timedelta(hours=2)).timestamp(),) * 2)
    report = ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    assert any("'USB.LOG' was not written at this dock (CLIP0001.mp4 is newer)" in n for n in report.notes)
    with Session(engine) as session:
        dock = session.get(DockSession, report.dock_session_id)
        assert dock is not None and dock.clock_offset_s is None
        row = session.exec(select(Recording).where(Recording.original_name == "CLIP0001.mp4")).one()
    assert row.captured_start == datetime(2026, 12, 6, 1, 0, tzinfo=UTC)  # its own time, uncorrected
