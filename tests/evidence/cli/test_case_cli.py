"""The archive clerk's whole case lifecycle from the command line, with real media and the local WORM store."""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from catalog import Recording, ensure_station_key, load_or_create_key, open_catalog, write_manifest
from catalog.custody import CustodyKind, append_event
from catalog.replay import ROW_KEY, row_values
from catalog.stamps import record_stamp
from catalog.types import utcnow
from ingest.config import Settings
from storage import LocalStore
from tests.cli import run_cli, station_adopts_policy
from tests.conftest import wait_for
from tests.helpers.documents import pdf_bytes

CASE = "京朝城管罚字〔2026〕第00123号"


_run = run_cli


def _json(env, *args):
    result = _run(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.usefixtures("ffmpeg_available")
def test_case_lifecycle_from_the_command_line(samples, env, tmp_path):
    stamped = _json(env, "ingest", str(samples.sidecar_recorder), "--case", CASE, "--purpose", "证明无照经营",
                    "--no-derive")["recordings"]
    other = _json(env, "ingest", str(samples.dcim_camera), "--no-derive")["recordings"]
    assert all(r["legal_hold"] for r in stamped)  # no such case yet: held pending the case

    created = _json(env, "case", "create", CASE, "--title", "张某无照经营案", "--type", "penalty-general",
                    "--unit", "朝阳区城管执法局", "--opened", "2026-11-01", "--by", "clerk:李四")
    assert {r["recording_id"] for r in created["case"]["recordings"]} == {r["id"] for r in stamped}
    # already held pending the case, they are now held by it: nothing to change on the store
    assert [c for c in created["retention"] if not c["legal_hold"]] == []
    for row in stamped:
        shown = _json(env, "retention", "show", str(row["id"]))
        assert shown["decision"]["hold_reasons"] == [f"case {CASE} is open"] and shown["legal_hold"] is True

    pdf = tmp_path / "询问笔录.pdf"
    pdf.write_bytes(pdf_bytes())
    junk = tmp_path / "附件.bin"
    junk.write_bytes(b"\x00\x01" * 500)
    attached = _json(env, "case", "attach", CASE, str(pdf), str(junk), "--title", "询问笔录", "--by", "clerk:李四")
    docs = {d["name"]: d for d in attached["documents"]}
    assert (docs["询问笔录.pdf"]["container"], docs["询问笔录.pdf"]["integrity"]) == ("pdf", "ok")
    assert docs["附件.bin"]["integrity"] == "unreadable"  # still kept, flagged
    assert docs["询问笔录.pdf"]["sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()

    photo = other[0]["id"]
    linked = _json(env, "case", "link", CASE, str(photo), "--purpose", "证明现场状况", "--by", "clerk:李四")
    assert [(c["recording_id"], c["legal_hold"]) for c in linked["retention"]] == [(photo, True)]

    shown = _json(env, "case", "show", CASE)
    assert len(shown["recordings"]) == len(stamped) + 1 and len(shown["documents"]) == 2
    assert all(item["legal_hold"] for item in shown["recordings"] + shown["documents"])
    found = _json(env, "search", "--case", CASE)["recordings"]
    assert {r["id"] for r in found} == {r["id"] for r in stamped} | {photo} | {d["recording_id"]
                                                                              for d in attached["documents"]}

    rule = _json(env, "retention", "show", str(photo))
    assert rule["in_line_with_rules"] and rule["legal_hold"]
    assert rule["decision"]["hold_reasons"] == [f"case {CASE} is open"]

    closed = _json(env, "case", "close", CASE, "--by", "clerk:李四", "--on", "2026-11-20")
    assert closed["case"]["status"] == "closed"
    assert {c["retain_until"] for c in closed["retention"]} == {"2056-11-20T16:00:00+00:00"}
    assert not any(c["legal_hold"] for c in closed["retention"])
    again = _run(env, "case", "close", CASE, "--by", "clerk:李四")
    assert again.exit_code == 2 and f"case {CASE} is already closed (on 2026-11-20 by clerk:李四)" in again.stderr
    late = _run(env, "case", "link", CASE, str(other[1]["id"]), "--purpose", "x", "--by", "clerk:李四")
    assert late.exit_code == 2 and "reopen it before linking" in late.stderr

    store = LocalStore(Settings.from_env(env).store_path)
    for item in shown["recordings"] + shown["documents"]:
        head = store.head(item["sha256"])
        assert head.retain_until == datetime(2056, 11, 20, 16, tzinfo=UTC) and not head.legal_hold
        assert _json(env, "retention", "show", item["sha256"][:12])["in_line_with_rules"]

    plan = _json(env, "retention", "plan", "--as-of", "2056-11-21")
    assert {i["recording_id"] for i in plan["items"] if i["status"] == "due"} >= {photo}
    assert all(i["rule"].startswith(f"case {CASE} closed 2026-11-20 + 30 years") for i in plan["items"]
               if i["recording_id"] == photo)
    assert _json(env, "retention", "plan")["items"] == []
    nothing = _run(env, "retention", "sweep", "--by", "clerk:李四")
    assert nothing.exit_code == 0 and "nothing is due for disposal" in nothing.stdout
    assert _json(env, "retention", "apply")["changed"] == 0  # idempotent: everything already applied

    reopened = _json(env, "case", "reopen", CASE, "--reason", "行政复议", "--by", "supervisor:王")
    assert all(c["legal_hold"] for c in reopened["retention"])


def test_case_errors_name_the_problem(env):
    station_adopts_policy(env)
    result = _run(env, "case", "create", "?", "--title", "t", "--type", "parking", "--by", "clerk")
    assert result.exit_code == 2
    assert "case number '?' does not match" in result.stderr and "unknown case type 'parking'" in result.stderr
    result = _run(env, "case", "show", "AB-404")
    assert result.exit_code == 2 and "no case 'AB-404' in the catalog" in result.stderr
    result = _run({**env, "EVIDENCE_CASE_TYPES": "/nowhere.toml"}, "case", "types")
    assert result.exit_code == 2 and "EVIDENCE_CASE_TYPES" in result.stderr and "/nowhere.toml" in result.stderr
    result = _run(env, "retention", "approve", "7", "--by", "x")
    assert result.exit_code == 2 and "no disposal batch 7" in result.stderr
    result = _run(env, "retention", "plan", "--as-of", "soon")
    assert result.exit_code == 2 and "'soon' is not a date" in result.output


def test_custom_case_types_replace_the_built_in_table(env, tmp_path):
    table = tmp_path / "case-types.toml"
    table.write_text('[case_types.traffic]\nname = "交通违法"\nname_en = "Traffic"\nyears = 15\n'
                     '[case_types.major]\nname = "重大案件"\npermanent = true\n', encoding="utf-8")
    env = {**env, "EVIDENCE_CASE_TYPES": str(table)}
    station_adopts_policy(env)
    types = _json(env, "case", "types")
    assert [(t["code"], t["years"], t["permanent"]) for t in types["case_types"]] == [  # the adopted terms, by code
        ("major", None, True), ("traffic", 15, False)]
    result = _run(env, "case", "create", "AB-2026-1", "--title", "t", "--type", "penalty-general", "--by", "c")
    assert result.exit_code == 2 and "unknown case type 'penalty-general'; known: major, traffic" in result.stderr


def test_sweep_and_approval_from_the_command_line(env, tmp_path):
    station_adopts_policy(env)
    settings = Settings.from_env(env)
    store = LocalStore(settings.store_path)
    engine = open_catalog(settings.database_url)
    soon = utcnow() + timedelta(seconds=1)
    try:
        with Session(engine) as session:
            data = b"routine footage past its time" * 100
            source = tmp_path / "old.mp4"
            source.write_bytes(data)
            sha = hashlib.sha256(data).hexdigest()
            stored = store.put_file(source, sha256=sha, size_bytes=len(data), retain_until=soon)
            old = Recording(sha256=sha, size_bytes=len(data), media_kind="video", original_name="old.mp4",
                            station_code="station-1", captured_start=datetime(2025, 1, 1, tzinfo=UTC),
                            captured_end=datetime(2025, 1, 1, 0, 1, tzinfo=UTC), time_source="container",
                            integrity_status="ok", state="archived",
                            ingested_at=datetime(2025, 1, 1, 0, 2, tzinfo=UTC),
                            archived_at=datetime(2025, 1, 1, 0, 2, tzinfo=UTC),
                            retain_until=stored.retain_until, store_name="local", store_key=stored.key)
            session.add(old)
            session.flush()
            # as ingest makes it: its `copied` event, its stamp, its manifest signed with the station's key
            append_event(session, CustodyKind.COPIED, actor="station:test", recording_id=old.id,
                         details={"sha256": sha, "size_bytes": len(data), ROW_KEY: row_values(old)})
            record_stamp(session, old, by="station:test", reason="ingest")
            key = load_or_create_key(settings.station_key_path)
            ensure_station_key(session, settings.station, key, actor="station:test", store=store)
            write_manifest(session, store, old, key, actor="station:test")
            session.commit()
            old_id = old.id
    finally:
        engine.dispose()
    wait_for(lambda: utcnow() > soon, 10, "the retention to pass")

    proposed = _json(env, "retention", "sweep", "--by", "clerk:李四")
    assert proposed["status"] == "awaiting_approval" and [i["recording_id"] for i in proposed["items"]] == [old_id]
    assert store.exists(sha)
    same = _run(env, "retention", "approve", str(proposed["batch"]), "--by", "clerk:李四")
    assert same.exit_code == 2 and "a different person must approve it" in same.stderr
    done = _json(env, "retention", "approve", str(proposed["batch"]), "--by", "supervisor:王")
    assert done["status"] == "done" and done["tombstones"] == 1 and done["record_key"]
    assert not store.exists(sha)
    shown = _json(env, "show", str(old_id))
    assert shown["state"] == "disposed"
    assert (shown["disposal"]["operator"], shown["disposal"]["approver"]) == ("clerk:李四", "supervisor:王")
    cat = _run(env, "cat", str(old_id), "--reason", "复核")
    assert cat.exit_code == 2 and "was disposed of on" in cat.stderr and "only its tombstone remains" in cat.stderr
    batches = _json(env, "retention", "batches")["batches"]
    assert [b["status"] for b in batches] == ["done"]
