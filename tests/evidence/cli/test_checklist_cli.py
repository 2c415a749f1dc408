"""`evidence case action add|import|list|types`: the action checklist from the command line (SQLite and
PostgreSQL), with recordings put in the catalogue directly (no media needed to decide what they cover)."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from catalog import open_catalog
from catalog.users import add_user
from ingest.config import Settings
from tests.cli import run_cli, station_adopts_policy
from tests.helpers.recordings import add_recording

CASE = "京朝城管罚字〔2026〕第00123号"
CST = ZoneInfo("Asia/Shanghai")


def _json(env, *args):
    result = run_cli(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _catalogue(env):
    """Two recordings stamped with CASE (09:00-09:40 and 10:00-10:30 on 2026-11-20, +08:00; staged: no bytes in
    the store for retention to lock) and a supervisor of another unit, bound to nobody yet."""
    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            add_recording(session, 1, state="staged", case_number=CASE,
                          captured_start=datetime(2026, 11, 20, 9, tzinfo=CST),
                          captured_end=datetime(2026, 11, 20, 9, 40, tzinfo=CST))
            add_recording(session, 2, state="staged", case_number=CASE,
                          captured_start=datetime(2026, 11, 20, 10, tzinfo=CST),
                          captured_end=datetime(2026, 11, 20, 10, 30, tzinfo=CST))
            add_user(session, "zhao", roles=["supervisor"], units=["U9"], by="test")
            session.commit()
    finally:
        engine.dispose()


def test_a_clerk_records_imports_and_lists_a_cases_actions(env, tmp_path):
    # Given a case holding two stamped recordings
    station_adopts_policy(env)
    _catalogue(env)
    _json(env, "case", "create", CASE, "--title", "无照经营", "--type", "penalty-general", "--unit", "朝阳区城管执法局",
          "--opened", "2026-11-01", "--by", "li4")

    # When a clerk enters the questioning and imports the rest from the case-handling system's CSV
    added = _json(env, "case", "action", "add", CASE, "--type", "询问", "--start", "2026-11-20T09:00:00+08:00",
                  "--end", "2026-11-20T09:40:00+08:00", "--officer", "010203", "--place", "执法站", "--by", "li4")
    assert (added["action"]["type"], added["action"]["verdict"], added["action"]["recordings"]) == (
        "questioning", "covered", [1])
    export = tmp_path / "办案系统导出.csv"
    export.write_bytes(("\ufeff案件编号,事项类型,开始时间,结束时间,执法人员,备注,外部编号\r\n"
                        f"{CASE},查封扣押,2026-11-20 10:00:00+08:00,2026-11-20 11:00:00+08:00,010203,"
                        "\"=cmd|' /C calc'!A0\",X-1\r\n"
                        f"{CASE},文书送达,2026-11-20 16:00:00+08:00,2026-11-20 16:05:00+08:00,,,X-2\r\n")
                       .encode())
    imported = _json(env, "case", "action", "import", str(export), "--by", "li4")
    assert (len(imported["added"]), imported["unchanged"], imported["source"]) == (2, [], "import:办案系统导出.csv")
    again = _json(env, "case", "action", "import", str(export), "--by", "li4")
    assert (again["added"], sorted(again["unchanged"])) == ([], sorted(imported["added"]))

    # Then the case lists each action's verdict and goes to legal review: the seizure is half recorded
    listed = _json(env, "case", "action", "list", CASE, "--by", "li4")
    assert [(a["type"], a["verdict"]) for a in listed["actions"]] == [
        ("questioning", "covered"), ("seizure", "partly_covered"), ("service", "not_recorded")]
    assert listed["needs_legal_review"] is True
    review = _json(env, "case", "action", "list", "--review", "--by", "li4")
    assert [(c["case"], c["required_counts"]) for c in review["cases"]] == [
        (CASE, {"covered": 1, "partly_covered": 1, "not_recorded": 0})]
    text = run_cli(env, "case", "action", "list", CASE, "--by", "li4")
    assert text.exit_code == 0 and "needs legal review (法制审核)" in text.stdout
    assert "not recorded 10:30:00+08:00 → 11:00:00+08:00" in text.stdout

    # and its CSV for a spreadsheet defuses the note a system could have filled with a formula
    sheet = run_cli(env, "case", "action", "list", CASE, "--csv", "--by", "li4")
    assert sheet.exit_code == 0 and sheet.stdout.startswith("\ufeff案件编号,外部编号,事项类型")
    assert ",'=cmd|' /C calc'!A0," in sheet.stdout


def test_bad_input_is_refused_whole_and_said(env, tmp_path):
    station_adopts_policy(env)
    _catalogue(env)
    _json(env, "case", "create", CASE, "--title", "无照经营", "--type", "penalty-general", "--opened", "2026-11-01",
          "--by", "li4")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([
        {"case": CASE, "type": "询问", "start": "2026-11-20 09:00", "end": "2026-11-20 10:00", "id": "1"},
        {"case": CASE, "type": "拘留", "start": "2026-11-20T09:00+08:00", "end": "2026-11-20T10:00+08:00", "id": "1"},
    ], ensure_ascii=False), encoding="utf-8")
    refused = run_cli(env, "case", "action", "import", str(bad), "--by", "li4")
    assert refused.exit_code == 2
    assert "import bad.json refused, nothing recorded: row 1: start 2026-11-20T09:00:00 has no time zone" in \
        refused.stderr and "row 2: unknown action type '拘留'" in refused.stderr
    # the same file, its zone named: row 2 is still refused, so nothing is recorded
    assert run_cli(env, "case", "action", "import", str(bad), "--zone", "Asia/Shanghai", "--by", "li4").exit_code == 2
    assert _json(env, "case", "action", "list", CASE, "--by", "li4")["actions"] == []

    huge = tmp_path / "huge.csv"
    huge.write_bytes(b"case,type,start,end\n" + b"x" * (10 * 1024 * 1024))
    too_big = run_cli(env, "case", "action", "import", str(huge), "--by", "li4")
    assert too_big.exit_code == 2 and f"the file is {huge.stat().st_size} bytes; at most 4194304" in too_big.stderr

    backwards = run_cli(env, "case", "action", "add", CASE, "--type", "询问", "--start", "2026-11-20T10:00+08:00",
                        "--end", "2026-11-20T09:00+08:00", "--by", "li4")
    assert backwards.exit_code == 2 and "is not after the start" in backwards.stderr
    no_zone = run_cli(env, "case", "action", "add", CASE, "--type", "询问", "--start", "2026-11-20T09:00",
                      "--end", "2026-11-20T10:00+08:00", "--by", "li4")
    assert no_zone.exit_code == 2 and "has no zone" in no_zone.stderr

    # a supervisor of another unit learns nothing of the case, and may not add to it
    outside = run_cli(env, "case", "action", "list", CASE, "--by", "zhao")
    assert outside.exit_code == 2 and "is outside what zhao may see" in outside.stderr
    assert run_cli(env, "case", "action", "add", CASE, "--type", "询问", "--start", "2026-11-20T09:00+08:00",
                   "--end", "2026-11-20T10:00+08:00", "--by", "zhao").exit_code == 2


def test_the_checklist_in_force_and_a_bad_one(env, tmp_path):
    shown = _json(env, "case", "action", "types")
    assert shown["source"] == "built-in" and shown["tolerance_s"] == 120
    assert [t["code"] for t in shown["action_types"] if t["full_recording"]] == [
        "seizure", "inspection", "questioning", "hearing", "enforcement"]
    own = tmp_path / "清单.yaml"
    own.write_text("action_types:\n  - {code: visit, name: 走访, name_en: Visit, full_recording: true}\n",
                   encoding="utf-8")
    mine = _json({**env, "EVIDENCE_ACTION_CHECKLIST": str(own), "EVIDENCE_ACTION_TOLERANCE_S": "30"},
                 "case", "action", "types")
    assert ([t["name"] for t in mine["action_types"]], mine["tolerance_s"]) == (["走访"], 30)
    own.write_text("action_types:\n  - {code: visit, name: 走访}\n", encoding="utf-8")
    bad = run_cli({**env, "EVIDENCE_ACTION_CHECKLIST": str(own)}, "case", "action", "types")
    assert bad.exit_code == 2 and str(own) in bad.stderr and "name_en must be a text" in bad.stderr
    assert run_cli({**env, "EVIDENCE_ACTION_TOLERANCE_S": "3600"}, "case", "action", "types").exit_code == 2


def test_a_time_no_database_can_hold_is_refused_not_crashed_on(env, tmp_path):
    # year 1 at +08:00 is before what UTC can hold: it passed the checks and crashed the write (OverflowError)
    station_adopts_policy(env)
    _catalogue(env)
    _json(env, "case", "create", CASE, "--title", "无照经营", "--type", "penalty-general", "--opened", "2026-11-01",
          "--by", "li4")
    old = tmp_path / "old.csv"
    old.write_text(f"case,type,start,end\n{CASE},询问,0001-01-01T00:00:00+08:00,0001-01-01T01:00:00+08:00\n",
                   encoding="utf-8")
    imported = run_cli(env, "case", "action", "import", str(old), "--by", "li4")
    assert imported.exit_code == 2, imported.output
    assert "row 2: start 0001-01-01T00:00:00+08:00 cannot be converted to UTC" in imported.stderr
    added = run_cli(env, "case", "action", "add", CASE, "--type", "询问", "--start", "0001-01-01T00:00+08:00",
                    "--end", "0001-01-01T01:00+08:00", "--by", "li4")
    assert added.exit_code == 2, added.output
    assert "start 0001-01-01T00:00:00+08:00 cannot be converted to UTC" in added.stderr
    offset = run_cli(env, "case", "action", "add", CASE, "--type", "询问", "--start", "2026-11-20T09:00+23:59",
                     "--end", "2026-11-20T10:00+23:59", "--by", "li4")
    assert offset.exit_code == 2 and "offsets run from -14:00 to +14:00" in offset.stderr
    listed = _json(env, "case", "action", "list", CASE, "--by", "li4")
    assert listed["actions"] == []
