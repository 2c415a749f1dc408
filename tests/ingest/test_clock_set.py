"""The device clock at a dock: measured where the profile can (its clock file, the time of the file it writes when
docked, its GPS sidecars), and set to the station's (校时) where the profile says how, each write a custody event.

Attacked as the field does it: a file of the device's own under the time file's name (never overwritten, kept as
evidence), a folder or a link in its place, the station's own file found again at the next dock (left, listed, not
taken for evidence), a profile that would write outside the device or over its clock file, a camera that cannot be
set (never written to), EVIDENCE_CLOCK_SET off, and a drifted clock raising the register's alert.
"""
from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from catalog import CustodyEvent, DockSession, Recording, find_chain_breaks, load_chain
from catalog.device_alerts import AlertRules, device_alerts
from device_profiles import ClockSetRule, ProfileInvalid, load_profiles, parse_profile
from ingest.clock_set import clock_set_text, is_station_time_file, write_station_time
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.pipeline.device import dock_file_offset
from ingest.samples import SIDE_CLOCK_DRIFT_S, make_clip

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

RULE = ClockSetRule(file="TIME.TXT")


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


def test_only_a_file_holding_one_time_in_the_format_is_the_stations():
    assert is_station_time_file(b"2026-12-06 08:00:00\r\n", RULE)
    assert not is_station_time_file(b"2026-12-06 08:00:00\r\nmore\r\n", RULE)  # a second line: the device's
    assert not is_station_time_file(b"08:00:00 2026-12-06\r\n", RULE)
    assert not is_station_time_file(b"2026-12-06 08:00:00" + b" " * 200, RULE)  # too big for one line of ours
    assert not is_station_time_file("２０２６-12-06 08:00:00\r\n".encode(), RULE)  # not ASCII
    assert not is_station_time_file(b"", RULE)


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


def test_something_in_the_way_is_never_overwritten(tmp_path):
    (tmp_path / "TIME.TXT").write_text("device log: do not touch\n")
    with pytest.raises(FileExistsError, match="not a time file the station wrote"):
        write_station_time(tmp_path, RULE, zone="Asia/Shanghai")
    assert (tmp_path / "TIME.TXT").read_text() == "device log: do not touch\n"
    (tmp_path / "TIME.TXT").unlink()
    (tmp_path / "elsewhere").write_text("x")
    (tmp_path / "TIME.TXT").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        write_station_time(tmp_path, RULE, zone="Asia/Shanghai")
    assert (tmp_path / "elsewhere").read_text() == "x"


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
    settings = settings_with_profile("usb-log.yaml", """
name: usb-log-recorder
recognise: {any_files: [USB.LOG]}
recordings: ["*.mp4"]
time_sources: [container]
clock: {zone: Asia/Shanghai, container_time_is_local: true, dock_file: USB.LOG}
clear_after_archive: false
""")
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
