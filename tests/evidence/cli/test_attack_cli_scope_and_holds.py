"""Outside review of issue 13 (CLI identity): now that officers and unit supervisors can be bound to OS accounts
and use the command line, the command line must not let them do or see what the web app refuses them.

* `evidence tag` lets an officer take the important flag off their own recording, which lifts its pending-case
  hold. The web app (`POST /recordings/{id}/stamp`) and `evidence station tag` refuse that ("a clerk decides
  that"); `evidence tag` does not check `catalog.restamping.lifts_a_hold` at all.
* A supervisor limited to unit U2 is refused `evidence show` of a unit-U1 recording, and the web's case page,
  `/api/cases/{n}` and `/retention` hide it from them, but `evidence case show`, `case list`, `retention show`
  and `retention plan` print its id, SHA-256, name, purpose, retention and hold.

Fixed: the rule lives in `catalog.restamping.change_stamp` (HoldLiftRefused unless the caller's roles may manage
cases), which the web, `evidence tag`, `evidence station tag` and the kiosk all call; the CLI's case and retention
listings filter through `catalog.access.case_in_scope` / `disposal_in_scope`, as the web pages do, and
`retention show` checks view rights and scope first.

The real CLI (click, in-process) on SQLite and PostgreSQL, after a real `evidence ingest`.
"""
from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from catalog import open_catalog
from catalog.case_models import DisposalBatch
from catalog.models import CustodyEvent, Officer, Recording, Sighting
from catalog.types import utcnow
from catalog.users import add_user
from ingest.config import Settings
from tests.cli import bind_caller, invoke, run_cli
from tests.helpers.cli_archive import ingest_recorder

pytestmark = pytest.mark.usefixtures("ffmpeg_available")
CASE = "AB-2026-00777"


def _people(env: dict[str, str]) -> None:
    """Officer 010203 (who made the recordings) in unit U1, officer 030405 in U2; an officer account for 010203 and
    a supervisor limited to U2, as an administrator sets them up."""
    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            officer = session.exec(select(Officer).where(Officer.number == "010203")).first() or \
                Officer(number="010203", name="张三")
            officer.unit_number, officer.unit_name = "U1", "一中队"
            session.add(officer)
            session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
            add_user(session, "officer:张三", roles=["officer"], by="admin", officer_number="010203")
            add_user(session, "supervisor:U2", roles=["supervisor"], by="admin", units=["U2"])
            session.commit()
    finally:
        engine.dispose()


def test_an_officer_cannot_lift_the_pending_case_hold_of_their_own_recording_from_the_cli(env, tmp_path):
    [row] = ingest_recorder(env, tmp_path, "mine")
    flagged = run_cli(env, "tag", str(row["id"]), "--important", "--reason", "重要线索", "--by", "clerk-li", "--json")
    assert flagged.exit_code == 0, flagged.output
    assert json.loads(flagged.stdout)["legal_hold"] is True  # the important flag holds it pending a case
    _people(env)

    bind_caller(env, "officer:张三")
    lifted = invoke(env, "tag", str(row["id"]), "--not-important", "--reason", "误标", "--json")
    assert lifted.exit_code == 2, ("an officer lifted the pending-case hold of their own recording with "
                                   f"`evidence tag --not-important` (the web app refuses this): {lifted.output}")
    assert "clerk" in lifted.stderr
    assert f"recording {row['id']} ({row['original_name']}): this change removes the important flag" in lifted.stderr
    assert "not officer:张三 (roles: officer)" in lifted.stderr
    # The same through the station's command: refused for every recording of the dock session before any changes.
    session_id = _dock_session_of(env, row["id"])
    at_station = invoke(env, "station", "tag", "--session", str(session_id), "--not-important", "--reason", "误标")
    assert at_station.exit_code == 2 and "a clerk decides that" in at_station.stderr, at_station.output
    # Nothing changed: still important, still held, no new stamp revision.
    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            kept = session.get(Recording, row["id"])
            assert kept is not None and (kept.important, kept.legal_hold, kept.stamp_revision) == (True, True, 2)
    finally:
        engine.dispose()
    # An officer may still mark their own recording (adding a hold is no clerk's decision) ...
    purpose = invoke(env, "tag", str(row["id"]), "--purpose", "现场检查", "--reason", "补充", "--json")
    assert purpose.exit_code == 0, purpose.output
    # ... and a clerk lifts the hold, with a reason.
    cleared = run_cli(env, "tag", str(row["id"]), "--not-important", "--reason", "误标", "--by", "clerk-li", "--json")
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.stdout)["legal_hold"] is False


def _dock_session_of(env: dict[str, str], recording_id: int) -> int:
    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            sighting = session.exec(select(Sighting).where(Sighting.recording_id == recording_id)).first()
            assert sighting is not None
            return sighting.dock_session_id
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", [("case", "show", CASE, "--json"), ("case", "list", "--json"),
                                     ("retention", "show", "{id}", "--json"),
                                     ("retention", "plan", "--within", "36500", "--json"),
                                     ("case", "show", CASE), ("case", "list"), ("retention", "show", "{id}"),
                                     ("retention", "plan", "--within", "36500"),
                                     ("retention", "batches", "--json"), ("retention", "batches")])
def test_a_unit_supervisor_sees_nothing_of_other_units_from_the_cli(env, tmp_path, command):
    [row] = ingest_recorder(env, tmp_path, "u1", extra=("--purpose", "证明张三违法事实"))
    created = run_cli(env, "case", "create", CASE, "--title", "无照经营", "--type", "major", "--by", "clerk-li")
    assert created.exit_code == 0, created.output
    linked = run_cli(env, "case", "link", CASE, str(row["id"]), "--purpose", "证明违法事实", "--by", "clerk-li")
    assert linked.exit_code == 0, linked.output
    _people(env)
    _proposed_batch(env, row)

    bind_caller(env, "supervisor:U2")
    shown = invoke(env, "show", str(row["id"]), "--json")
    assert shown.exit_code == 2 and "outside what supervisor:U2 may view (unit U2)" in shown.stderr  # the rule
    args = [part.format(id=row["id"]) for part in command]
    result = invoke(env, *args)
    leaked = [secret for secret in (row["sha256"], row["original_name"], "证明违法事实") if secret in result.output]
    assert result.exit_code == 2 or not leaked, (
        f"`evidence {' '.join(args)}` showed a unit-U2 supervisor recording {row['id']} of unit U1 "
        f"({', '.join(leaked)}); the web app hides it and `evidence show` refuses it")


def _proposed_batch(env: dict[str, str], row: dict[str, object]) -> None:
    """A disposal batch awaiting approval that names the unit-U1 recording, as `retention sweep` writes one."""
    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            session.add(DisposalBatch(status="awaiting_approval", created_by="clerk-li", created_at=utcnow(),
                                      items=[{"recording_id": row["id"], "sha256": row["sha256"],
                                              "original_name": row["original_name"], "rule": "routine"}]))
            session.commit()
    finally:
        engine.dispose()


def test_what_a_unit_supervisor_is_shown_instead_is_a_count_and_a_refusal_is_recorded(env, tmp_path):
    [row] = ingest_recorder(env, tmp_path, "u1", extra=("--purpose", "证明张三违法事实"))
    assert run_cli(env, "case", "create", CASE, "--title", "无照经营", "--type", "major",
                   "--by", "clerk-li").exit_code == 0
    assert run_cli(env, "case", "link", CASE, str(row["id"]), "--purpose", "证明违法事实",
                   "--by", "clerk-li").exit_code == 0
    _people(env)
    _proposed_batch(env, row)

    bind_caller(env, "supervisor:U2")
    # a case holding nothing of theirs is not theirs to know of: not listed, and opening it is refused
    case_shown = invoke(env, "case", "show", CASE, "--json")
    assert case_shown.exit_code == 2 and "无照经营" not in case_shown.output
    assert f"case {CASE} is outside what supervisor:U2 may see (unit U2)" in case_shown.stderr
    assert json.loads(invoke(env, "case", "list", "--json").stdout)["cases"] == []
    plan = json.loads(invoke(env, "retention", "plan", "--within", "36500", "--json").stdout)
    assert plan["items"] == [] and plan["outside_scope"] >= 1  # every recording here is unit U1's
    [batch] = json.loads(invoke(env, "retention", "batches", "--json").stdout)["batches"]
    assert (batch["items"], batch["outside_scope"]) == ([], 1)

    refused = invoke(env, "retention", "show", str(row["id"]))
    assert refused.exit_code == 2
    assert f"recording {row['id']} is outside what supervisor:U2 may view (unit U2)" in refused.stderr
    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            events = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused",
                                                             CustodyEvent.recording_id == row["id"])).all()
            assert [(e.actor, e.details["why"]) for e in events] == [("supervisor:U2", "scope")]
    finally:
        engine.dispose()
    # A clerk (the whole archive) still sees everything.
    bind_caller(env, "clerk-li")
    full = json.loads(invoke(env, "case", "show", CASE, "--json").stdout)
    assert [r["sha256"] for r in full["recordings"]] == [row["sha256"]] and not any(full["outside_scope"].values())
    assert json.loads(invoke(env, "retention", "show", str(row["id"]), "--json").stdout)["sha256"] == row["sha256"]
