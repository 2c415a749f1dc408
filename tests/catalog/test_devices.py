"""The recorder register (catalog.devices) and its alerts (catalog.device_alerts): devices added before first use
or by an unknown serial's dock (flagged, never refused), assignments and statuses with their history, and the
alerts a supervisor acts on, decided by a pure function and gathered for a unit on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from catalog import ensure_station
from catalog.custody import CustodyKind
from catalog.device_alerts import AlertRules, DeviceFacts, alert_counts, decide_alerts, device_alerts
from catalog.devices import (
    add_device,
    assign_device,
    assignments_of,
    device_docked,
    device_register,
    get_device,
    review_device,
    set_device_status,
    statuses_of,
)
from catalog.models import CustodyEvent, DockSession, Officer, Station
from catalog.registry import RegistryInvalid
from catalog.said import said_in
from evidence.web.i18n import gettext_for
from tests.cli import run_cli, station_adopts_policy
from tests.helpers.recordings import add_recording

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
RULES = AlertRules(silent_days=7, drift_s=60)


def _facts(**changes: object) -> DeviceFacts:
    facts = {"serial": "DSJ-1", "status": "in_service", "officer_number": "010203", "unit_number": "U1",
             "unreviewed": False, "docked": True, "since": NOW - timedelta(days=1), "last_offset_s": 2.0}
    return DeviceFacts(**{**facts, **changes})  # type: ignore[arg-type]


def _kinds(facts: DeviceFacts, now: datetime = NOW) -> list[str]:
    return [a.kind for a in decide_alerts(facts, RULES, now)]


def test_a_recorder_in_order_raises_nothing():
    assert _kinds(_facts()) == []


def test_silent_counts_whole_days_and_only_for_an_assigned_recorder_in_service():
    assert _kinds(_facts(since=NOW - timedelta(days=7))) == ["silent"]
    assert _kinds(_facts(since=NOW - timedelta(days=6, hours=23, minutes=59))) == []  # not yet 7 whole days
    assert _kinds(_facts(since=NOW - timedelta(days=30), officer_number=None)) == []  # a unit's pool device
    for status in ("lost", "repair", "retired"):
        assert _kinds(_facts(since=NOW - timedelta(days=30), status=status)) == []
    [never] = decide_alerts(_facts(since=NOW - timedelta(days=9), docked=False), RULES, NOW)
    assert str(never.message) == "recorder DSJ-1 (officer 010203) was added 9 days ago and has never docked"
    assert said_in(never.message, gettext_for("zh_CN")) == \
        "执法记录仪 DSJ-1（执法人员 010203）登记已 9 天，从未接入采集站"


def test_clock_drift_either_way_beyond_the_threshold_only():
    assert _kinds(_facts(last_offset_s=60.0)) == []
    assert _kinds(_facts(last_offset_s=-60.5)) == ["clock_drift"]
    [fast] = decide_alerts(_facts(last_offset_s=3600 * 22), RULES, NOW)  # local time written as UTC (field fact)
    assert fast.values == {"offset_s": 79200} and "+79200 s off" in fast.message
    assert _kinds(_facts(last_offset_s=None)) == []  # a profile that cannot measure it


def test_another_units_station_a_lost_recorders_recordings_and_an_unknown_serial_each_raise_their_own():
    when = NOW - timedelta(days=2)
    facts = _facts(foreign_docks=(("station-9", "U9", when),), lost_recordings=(4, 5), unreviewed=True,
                   docked_by="030405", since=NOW - timedelta(days=8), last_offset_s=-300)
    alerts = decide_alerts(facts, RULES, NOW)
    assert [a.kind for a in alerts] == ["silent", "clock_drift", "foreign_station", "recorded_while_lost",
                                        "unreviewed"]
    assert alerts[2].since == when and alerts[2].values["station_unit"] == "U9"
    assert alerts[3].values == {"recording_ids": [4, 5]}
    assert "(docked by 030405)" in alerts[4].message
    assert alert_counts(alerts) == dict.fromkeys(("silent", "clock_drift", "foreign_station",
                                                   "recorded_while_lost", "unreviewed"), 1)
    assert json.loads(json.dumps([a.as_json() for a in alerts]))[0]["kind"] == "silent"


def _fleet(session: Session) -> None:
    """Two units, a station each; four recorders: one in order, one silent, one docked at the other unit's
    station with a drifting clock, one lost that went on recording."""
    for code, unit in (("station-1", "U1"), ("station-2", "U2")):
        ensure_station(session, code, name=code)
        row = session.get(Station, code)
        assert row is not None
        row.unit_number = unit
        session.add(row)
    for number, unit in (("010203", "U1"), ("020304", "U1"), ("030405", "U2"), ("040506", "U1")):
        session.add(Officer(number=number, name=f"警员{number}", unit_number=unit))
    session.flush()
    for serial, officer, unit in (("OK-1", "010203", "U1"), ("QUIET-1", "020304", "U1"),
                                  ("AWAY-2", "030405", "U2"), ("LOST-1", "040506", "U1")):
        add_device(session, serial, profile="cn-enforcement-recorder", model="DSJ-V9", officer_number=officer,
                   unit_number=unit, by="admin", now=NOW - timedelta(days=40))
    for serial, station, days_ago, offset in (("OK-1", "station-1", 1, 3.0), ("QUIET-1", "station-1", 10, 1.0),
                                              ("AWAY-2", "station-2", 20, 1.0), ("AWAY-2", "station-1", 3, -95.0),
                                              ("LOST-1", "station-1", 2, None)):
        when = NOW - timedelta(days=days_ago)
        device_docked(session, serial, profile="cn-enforcement-recorder", officer_number=None, now=when)
        session.add(DockSession(station_code=station, device_serial=serial, profile="cn-enforcement-recorder",
                                source_path="/media/x", started_at=when, clock_offset_s=offset, files_seen=4))
    set_device_status(session, "LOST-1", status="lost", by="admin", reason="报失", now=NOW - timedelta(days=6))
    session.flush()


def test_a_fleet_raises_each_alert_once_for_the_right_recorder_and_a_supervisor_sees_their_units(engine):
    with Session(engine) as session:
        _fleet(session)
        before = add_recording(session, 1, device_serial="LOST-1", captured_start=NOW - timedelta(days=8))
        during = add_recording(session, 2, device_serial="LOST-1", captured_start=NOW - timedelta(days=3))
        session.commit()
        alerts = device_alerts(session, RULES, NOW)
        assert sorted((a.serial, a.kind) for a in alerts) == [
            ("AWAY-2", "clock_drift"), ("AWAY-2", "foreign_station"), ("LOST-1", "recorded_while_lost"),
            ("QUIET-1", "silent")]
        lost = next(a for a in alerts if a.kind == "recorded_while_lost")
        assert lost.values["recording_ids"] == [during.id] and before.id not in lost.values["recording_ids"]
        away = next(a for a in alerts if a.kind == "foreign_station")
        assert (away.values["station"], away.values["station_unit"]) == ("station-1", "U1")
        assert [a.serial for a in device_alerts(session, RULES, NOW, units=frozenset({"U2"}))] == ["AWAY-2"] * 2
        # found again and the recorder back in service: the lost period ends, its recordings stay an alert
        set_device_status(session, "LOST-1", status="in_service", by="admin", reason="找回",
                          now=NOW - timedelta(days=1))
        session.commit()
        assert [a.kind for a in device_alerts(session, RULES, NOW) if a.serial == "LOST-1"] == ["recorded_while_lost"]
        rows = {r.device.serial: r for r in device_register(session)}
        assert (rows["AWAY-2"].docks, rows["AWAY-2"].last_station, rows["AWAY-2"].last_offset_s) == (2, "station-1",
                                                                                                     -95.0)
        assert rows["LOST-1"].last_offset_s is None and rows["OK-1"].last_files == 4
        assert [r.device.serial for r in device_register(session, units=frozenset({"U2"}))] == ["AWAY-2"]
        # a supervisor scoped by the unit's name, and a device known only by its officer's unit, are found too
        assign_device(session, "QUIET-1", officer_number="020304", unit_number="", unit_name="", by="admin",
                      reason="单位待定", now=NOW)
        assert "QUIET-1" in [r.device.serial for r in device_register(session, units=frozenset({"U1"}))]
        officer = session.exec(select(Officer).where(Officer.number == "030405")).one()
        officer.unit_name = "二中队"
        session.add(officer)
        session.flush()
        assert [r.device.serial for r in device_register(session, units=frozenset({"二中队"}))] == ["AWAY-2"]


def test_an_unknown_serial_is_accepted_at_the_dock_flagged_and_reviewed_and_the_register_keeps_who_had_it(engine):
    with Session(engine) as session:
        session.add(Officer(number="010203", name="张三", unit_number="U1"))
        session.add(Officer(number="020304", name="李四", unit_number="U1"))
        session.flush()
        first = device_docked(session, "NEW-9", profile="generic-dcim", officer_number="010203", unit_number="U1",
                              now=NOW - timedelta(days=3))
        session.commit()
        assert first.unreviewed and first.added_by is None and first.officer_number == "010203"
        [unknown] = [a for a in device_alerts(session, RULES, NOW) if a.serial == "NEW-9"]
        assert unknown.kind == "unreviewed"
        # what the device says never overwrites the register's assignment
        assign_device(session, "NEW-9", officer_number="020304", unit_number="U1", unit_name="一中队", by="admin",
                      reason="换岗", now=NOW - timedelta(days=2))
        device_docked(session, "NEW-9", profile="generic-dcim", officer_number="010203", unit_number="U1",
                      now=NOW - timedelta(days=1))
        review_device(session, "NEW-9", by="admin")
        session.commit()
        assert device_alerts(session, RULES, NOW) == []
        history = [(a.officer_number, a.by, a.until is None) for a in assignments_of(session, "NEW-9")]
        assert history == [("010203", "device", False), ("020304", "admin", True)]
        with pytest.raises(RegistryInvalid, match="needs no review"):
            review_device(session, "NEW-9", by="admin")
        events = session.exec(select(CustodyEvent).where(CustodyEvent.kind == CustodyKind.REGISTRY_CHANGED.value)
                              ).all()
        assert [(e.details.get("action"), e.actor, e.details.get("source")) for e in events
                if e.details.get("register") == "device"] == [
            ("docked_unknown", "station", "device"), ("assigned", "admin", None), ("reviewed", "admin", None)]
        assert [c.status for c in statuses_of(session, "NEW-9")] == ["in_service"]  # its history starts at the dock


def test_the_register_refuses_what_it_cannot_hold_and_says_every_problem(engine):
    with Session(engine) as session:
        with pytest.raises(RegistryInvalid) as refused:
            add_device(session, " ", profile="", model="x" * 101, officer_number="999999", unit_number="U" * 65,
                       unit_name="", by="admin", now=NOW)
        assert len(refused.value.problems) == 5
        assert said_in(str(refused.value), gettext_for("zh_CN")).startswith("序列号须为 1 至 64 个可打印字符")
        add_device(session, "DSJ-1", profile="generic-dcim", by="admin", now=NOW)
        with pytest.raises(RegistryInvalid, match="registered already"):
            add_device(session, "DSJ-1", profile="generic-dcim", by="admin", now=NOW)
        with pytest.raises(RegistryInvalid, match="device 'DSJ-1' is registered already"):  # typed in lower case
            add_device(session, "dsj-1", profile="generic-dcim", by="admin", now=NOW)
        assert get_device(session, " dsj-1 ").serial == "DSJ-1"  # found in another letter case when only one is
        with pytest.raises(RegistryInvalid, match="needs a reason"):
            set_device_status(session, "DSJ-1", status="lost", by="admin", reason="  ", now=NOW)
        with pytest.raises(RegistryInvalid, match="one of in_service, lost, repair, retired"):
            set_device_status(session, "DSJ-1", status="stolen", by="admin", reason="x", now=NOW)
        with pytest.raises(RegistryInvalid, match="in_service already"):
            set_device_status(session, "DSJ-1", status="in_service", by="admin", reason="x", now=NOW)
        set_device_status(session, "DSJ-1", status="repair", by="admin", reason="屏幕损坏", now=NOW)
        assert [(c.status, c.reason) for c in statuses_of(session, "DSJ-1")] == [("in_service", "added"),
                                                                                  ("repair", "屏幕损坏")]
        assert device_alerts(session, RULES, NOW + timedelta(days=30)) == []  # a pool device in repair: nothing


def test_the_command_line_keeps_the_register_and_a_supervisor_reads_only_their_units_alerts(env):
    def cli(*args: str) -> Any:
        result = run_cli(env, "device", *args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    run_cli(env, "user", "list")  # the catalogue made, its first administrator bound
    added = cli("add", "DSJ-7", "--profile", "cn-enforcement-recorder", "--model", "DSJ-V9", "--unit", "U2",
                "--by", "tester")
    assert added == {"serial": "DSJ-7", "added": True}
    assert cli("status", "DSJ-7", "lost", "--reason", "巡逻时遗失", "--by", "tester") == {"serial": "DSJ-7",
                                                                                           "status": "lost"}
    shown = cli("show", "DSJ-7", "--by", "tester")
    assert shown["status"] == "lost" and [s["status"] for s in shown["statuses"]] == ["in_service", "lost"]
    assert shown["first_dock"] is None and shown["docks"] == 0
    refused = run_cli(env, "device", "add", "DSJ-7", "--profile", "x", "--by", "tester")
    assert refused.exit_code == 2 and "registered already" in refused.output
    assert cli("alerts", "--by", "tester") == {"alerts": []}  # a lost pool device that made nothing
    listed = cli("list", "--by", "tester")
    assert [d["serial"] for d in listed["devices"]] == ["DSJ-7"]


def test_a_recorder_nobody_registered_docks_is_kept_flagged_and_reviewed(env, tmp_path):
    """Through the real dock: nothing is refused, the unknown serial is an alert until an administrator reviews it."""
    card = tmp_path / "card" / "DCIM" / "100EVCAM"
    card.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:rate=10",
                    "-t", "1", "-pix_fmt", "yuv420p", "-metadata", "creation_time=2026-11-20T06:10:00Z",
                    str(card / "MVI_0001.MP4")], check=True)
    station_adopts_policy(env)
    ingested = run_cli(env, "ingest", str(tmp_path / "card"), "--no-derive", "--json")
    assert ingested.exit_code == 0, ingested.output
    listed = json.loads(run_cli(env, "device", "list", "--json", "--by", "tester").output)["devices"]
    [serial] = [d["serial"] for d in listed if d["unreviewed"]]
    assert listed[0]["docks"] == 1 and listed[0]["last_files"] == 1
    shown = json.loads(run_cli(env, "device", "show", serial, "--json", "--by", "tester").output)
    [dock] = shown["docks_latest"]  # each dock: what it read off the recorder, files and bytes
    assert (dock["files_seen"], dock["files_sighted"], dock["result"]) == (1, 1, "complete")
    assert dock["bytes_read"] == (card / "MVI_0001.MP4").stat().st_size
    alerts = json.loads(run_cli(env, "device", "alerts", "--json", "--by", "tester").output)["alerts"]
    assert [(a["kind"], a["serial"]) for a in alerts] == [("unreviewed", serial)]
    assert run_cli(env, "device", "review", serial, "--by", "tester").exit_code == 0
    assert json.loads(run_cli(env, "device", "alerts", "--json", "--by", "tester").output) == {"alerts": []}


def test_review_findings_scope_names_the_device_never_overrides_a_person_and_old_or_copied_facts_raise_nothing(engine):
    """What a hostile review of the register found, each checked:
    a supervisor scoped by a unit name two units share sees neither unit's recorders (as for recordings); the
    device never changes what an administrator assigned, not even a pool device's missing officer; a dock at
    another unit's station before the device moved there is no alert; a redacted copy is no recording made while
    lost; the clock offset is the latest dock's own; a lost period ends in the order the changes were made."""
    with Session(engine) as session:
        for number, unit, name in (("010203", "D1-1", "一中队"), ("020304", "D2-1", "一中队")):
            session.add(Officer(number=number, name="x", unit_number=unit, unit_name=name))
        ensure_station(session, "st-2", name="二号站")
        station = session.get(Station, "st-2")
        assert station is not None
        station.unit_number = "D2-1"
        session.add(station)
        session.flush()
        add_device(session, "A", profile="p", officer_number="010203", unit_number="D1-1", by="admin",
                   now=NOW - timedelta(days=40))
        add_device(session, "POOL", profile="p", unit_number="D1-1", by="admin", now=NOW - timedelta(days=40))
        assert device_register(session, units=frozenset({"一中队"})) == []  # ambiguous: nobody's
        assert [r.device.serial for r in device_register(session, units=frozenset({"D1-1"}))] == ["A", "POOL"]
        device_docked(session, "POOL", profile="p", officer_number="020304", unit_number="D2-1", unit_name="一中队",
                      now=NOW - timedelta(days=35))
        pool = device_register(session, serials=["POOL"])[0].device
        assert (pool.officer_number, pool.unit_number, pool.unit_name) == (None, "D1-1", "")
        # A docked at D2-1's station while it was D2-1's, then moved to D1-1: that dock is no alert
        assign_device(session, "A", officer_number="020304", unit_number="D2-1", unit_name="", by="admin",
                      now=NOW - timedelta(days=20))
        session.add(DockSession(station_code="st-2", device_serial="A", profile="p", source_path="/m",
                                started_at=NOW - timedelta(days=10), clock_offset_s=900.0))
        session.add(DockSession(station_code="st-2", device_serial="A", profile="p", source_path="/m",
                                started_at=NOW - timedelta(days=9), clock_offset_s=None))
        assign_device(session, "A", officer_number="010203", unit_number="D1-1", unit_name="", by="admin",
                      now=NOW - timedelta(days=5))
        # lost, then found with a clock behind (stamped earlier than the loss); a redacted copy of a recording
        set_device_status(session, "A", status="lost", by="admin", reason="遗失", now=NOW - timedelta(days=4))
        set_device_status(session, "A", status="in_service", by="admin", reason="找回", now=NOW - timedelta(days=6))
        original = add_recording(session, 1, device_serial="A", captured_start=NOW - timedelta(days=2))
        add_recording(session, 2, device_serial="A", captured_start=NOW - timedelta(days=2),
                      redacted_from_id=original.id)
        session.commit()
        kinds = {(a.serial, a.kind) for a in device_alerts(session, RULES, NOW)}
        assert ("A", "foreign_station") not in kinds and ("A", "clock_drift") not in kinds
        assert ("A", "recorded_while_lost") not in kinds  # found (in the order the changes were made) before it
        assert device_register(session, serials=["A"])[0].last_offset_s is None  # the latest dock measured nothing
