"""The retention policy is the catalogue's, not the caller's environment (catalog.policy_adoption).

A review (2026-12-02) found every retention, disposal and verify command reading the policy from its own
environment: a clerk with a case-types file of their own lifted the hold of a permanent case, disposal ran
without a second person under `EVIDENCE_DISPOSAL_APPROVAL=none`, and verify, run the same way, agreed. These
tests are that clerk: real `evidence` commands on SQLite and PostgreSQL, the environment theirs to set.
"""
from __future__ import annotations

import json

import pytest
from sqlmodel import Session, col, select

from catalog.models import CustodyEvent, Recording
from catalog.policy_adoption import adopted_policy
from tests.cli import invoke, run_cli
from tests.helpers.cli_archive import ingest_recorder, problems_of, verify_all

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

CASE = "AB-2026-00077"


def _permanent_case(env, tmp_path) -> int:
    """A recording linked to a closed case of the permanent type `major`: held for good."""
    [row] = ingest_recorder(env, tmp_path, "major")
    assert run_cli(env, "case", "create", CASE, "--title", "重大案件", "--type", "major", "--opened", "2026-11-01",
                   "--by", "clerk-li").exit_code == 0
    assert run_cli(env, "case", "link", CASE, str(row["id"]), "--purpose", "证明违法事实",
                   "--by", "clerk-li").exit_code == 0
    closed = run_cli(env, "case", "close", CASE, "--on", "2026-11-20", "--by", "clerk-li")
    assert closed.exit_code == 0, closed.output
    return int(row["id"])


def _held(engine, recording_id: int) -> bool:
    with Session(engine) as session:
        row = session.get(Recording, recording_id)
        assert row is not None
        return row.legal_hold


def test_a_case_types_file_of_the_caller_s_own_lifts_no_hold(env, engine, tmp_path):
    rid = _permanent_case(env, tmp_path)
    assert _held(engine, rid)
    mine = tmp_path / "my-case-types.toml"
    mine.write_text('[case_types.major]\nname = "重大案件"\nname_en = "Major case"\nyears = 1\n', encoding="utf-8")
    hostile = {**env, "EVIDENCE_CASE_TYPES": str(mine)}

    applied = run_cli(hostile, "retention", "apply", "--by", "clerk-li")
    assert applied.exit_code == 2, applied.output
    assert "`evidence retention apply` refused" in applied.stderr
    assert "case type major: adopted permanent (重大案件), here 1 years (重大案件)" in applied.stderr
    assert "case type penalty-general: adopted 30 years, missing here" in applied.stderr
    assert _held(engine, rid)
    # Reopening and closing the case again under those terms is refused before anything changes
    reopened = run_cli(hostile, "case", "reopen", CASE, "--reason", "补充调查", "--by", "clerk-li")
    assert reopened.exit_code == 2 and "refused" in reopened.stderr
    # `retention policy` says what differs, and exits 2
    shown = invoke(hostile, "retention", "policy", "--json")
    assert shown.exit_code == 2
    said = json.loads(shown.stdout)
    assert said["adopted"]["terms"]["case_types"][3] == {"code": "major", "name": "重大案件",
                                                          "name_en": "Major case", "years": None}
    assert said["here"]["fingerprint"] != said["adopted"]["fingerprint"]
    # verify judges by the adopted terms, whatever the caller's environment: the hold is still due
    with Session(engine) as session:
        row = session.get(Recording, rid)
        assert row is not None
        row.legal_hold = False  # lifted behind the application's back
        session.add(row)
        session.commit()
    code, report = verify_all(hostile)
    assert code == 4
    assert any("legal_hold" in p and "kept permanently" in p for p in problems_of(report, rid)), \
        problems_of(report, rid)


def test_no_approval_in_the_environment_disposes_nothing_without_a_second_person(env, engine, tmp_path):
    ingest_recorder(env, tmp_path, "routine")
    swept = run_cli({**env, "EVIDENCE_DISPOSAL_APPROVAL": "none"}, "retention", "sweep", "--by", "clerk-li")
    assert swept.exit_code == 2, swept.output
    assert "disposal_approval: adopted 'required', here 'none'" in swept.stderr
    with Session(engine) as session:
        kinds = set(session.exec(select(CustodyEvent.kind)))
    assert not kinds & {"disposal_proposed", "disposal_approved", "disposed"}


def test_a_station_with_other_terms_refuses_to_start_and_reads_nothing(env, engine, tmp_path):
    ingest_recorder(env, tmp_path, "first")
    other = {**env, "EVIDENCE_ROUTINE_RETENTION_MONTHS": "7"}
    device = tmp_path / "recorder-first"
    result = run_cli(other, "ingest", str(device), "--no-derive")
    assert result.exit_code == 2
    assert "`evidence ingest` refused" in result.stderr and "routine_months: adopted 6, here 7" in result.stderr
    with Session(engine) as session:
        assert len(session.exec(select(CustodyEvent).where(CustodyEvent.kind == "docked")).all()) == 1


def test_an_administrator_adopts_new_terms_as_a_custody_event(env, engine, tmp_path):
    [row] = ingest_recorder(env, tmp_path, "routine")
    twelve = {**env, "EVIDENCE_ROUTINE_RETENTION_MONTHS": "12"}
    adopted = run_cli(twelve, "retention", "adopt", "--reason", "新规定", "--by", "clerk-li")  # has every role
    assert adopted.exit_code == 0, adopted.output
    with Session(engine) as session:
        first = adopted_policy(session)
        assert first is not None and first.terms.routine_months == 12
        events = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "policy_adopted")
                              .order_by(col(CustodyEvent.id))).all()
    assert events[1].actor == "clerk-li" and events[0].actor != "clerk-li"  # the first: the ingest's station
    assert events[0].details["reason"].startswith("first use: no retention policy was adopted yet; the terms "
                                                  "`evidence ingest` started with")
    assert events[1].details["replaces"] == events[0].details["fingerprint"]
    assert events[1].details["changes"] == ["routine_months: adopted 6, here 12"]
    assert events[1].details["reason"] == "新规定"
    # The old terms are refused now, the new ones apply, and retention grows to them
    assert run_cli(env, "retention", "apply").exit_code == 2
    applied = run_cli(twelve, "retention", "apply", "--json")
    assert applied.exit_code == 0, applied.output
    changed = json.loads(applied.stdout)["retention"]
    assert row["id"] in {c["recording_id"] for c in changed}
    # Adopting the same terms again adds nothing
    again = run_cli(twelve, "retention", "adopt", "--reason", "再次", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["changed"] is False
    code, report = verify_all(twelve)
    assert code == 0, problems_of(report)


def test_adopting_needs_an_administrator(env, tmp_path):
    from tests.cli import bind_caller

    ingest_recorder(env, tmp_path, "routine")
    bind_caller(env, "clerk-only", roles=("clerk",))
    refused = invoke({**env, "EVIDENCE_ROUTINE_RETENTION_MONTHS": "12"}, "retention", "adopt", "--reason", "x")
    assert refused.exit_code == 2 and "may not admin" in refused.stderr


def test_on_a_catalogue_that_never_adopted_a_policy_a_user_s_command_adopts_none(env, engine, tmp_path, samples):
    """An installation upgraded from before adoption existed, or a station never started yet: no `policy_adopted`
    event. A clerk's first command, with terms of their own, must not become the policy (a review found
    `retention apply` adopting them and lifting a permanent hold, and even a refused `case list` adopting them)."""
    mine = tmp_path / "my-case-types.toml"
    mine.write_text('[case_types.major]\nname = "重大案件"\nname_en = "Major"\nyears = 1\n', encoding="utf-8")
    hostile = {**env, "EVIDENCE_CASE_TYPES": str(mine), "EVIDENCE_DISPOSAL_APPROVAL": "none"}
    listed = run_cli(hostile, "case", "list", "--by", "clerk-li")
    assert listed.exit_code == 0, listed.output  # reading needs no policy, and adopts none
    for args in (("retention", "apply"), ("retention", "sweep"), ("case", "create", CASE, "--title", "t",
                                                                  "--type", "major", "--opened", "2026-11-01")):
        refused = run_cli(hostile, *args, "--by", "clerk-li")
        assert refused.exit_code == 2, (args, refused.output)
        assert "has adopted no retention policy yet" in refused.stderr, refused.stderr
    with Session(engine) as session:
        assert adopted_policy(session) is None
    # The station's next start adopts its own terms, named after it
    docked = run_cli(env, "ingest", str(samples.sidecar_recorder), "--no-derive")
    assert docked.exit_code == 0, docked.output
    with Session(engine) as session:
        adopted = adopted_policy(session)
    assert adopted is not None and adopted.terms.disposal_approval == "required"
    assert adopted.by != "first use" and "major" in {t.code for t in adopted.terms.case_types}
