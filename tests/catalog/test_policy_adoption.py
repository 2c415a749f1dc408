"""The policy in force is the one the custody chain adopted (catalog.policy_adoption): its terms, fingerprint and
the refusals of the functions that write retention and dispose."""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from catalog import PolicyInvalid, PolicyNotAdopted
from catalog.disposal import Signer, start_sweep
from catalog.models import CustodyEvent
from catalog.policy_adoption import (
    PolicyTerms,
    adopt_policy,
    adopted_policy,
    ensure_policy,
    policy_differences,
    require_policy,
)
from catalog.retention import DEFAULT_CASE_TYPES, CaseType, RetentionPolicy
from catalog.retention_job import apply_retention
from catalog.signing import load_or_create_key
from catalog.verification import verify_archive
from ingest.config import Settings
from ingest.services import check_policy_at_start
from tests.conftest import as_attacker

BASE = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")


def _terms(policy: RetentionPolicy = BASE, approval: str = "required") -> PolicyTerms:
    return PolicyTerms.of(policy, disposal_approval=approval)


def test_every_term_changes_the_fingerprint_and_is_named_as_a_difference():
    base = _terms()
    assert base.fingerprint == _terms().fingerprint and len(base.fingerprint) == 64
    shorter = dict(DEFAULT_CASE_TYPES)
    shorter["major"] = CaseType("major", "重大案件", "Major case", 1)
    variants = {
        "routine_months: adopted 6, here 7": _terms(replace(BASE, routine_months=7)),
        "zone: adopted 'Asia/Shanghai', here 'UTC'": _terms(replace(BASE, zone="UTC")),
        "disposal_approval: adopted 'required', here 'none'": _terms(approval="none"),
        "case type major: adopted permanent (重大案件), here 1 years (重大案件)": _terms(replace(BASE,
                                                                                      case_types=shorter)),
    }
    for words, other in variants.items():
        assert other.fingerprint != base.fingerprint
        assert policy_differences(base, other) == [words]
    fewer = {k: v for k, v in DEFAULT_CASE_TYPES.items() if k != "inspection"}
    assert policy_differences(base, _terms(replace(BASE, case_types=fewer))) == [
        "case type inspection: adopted 10 years, missing here"]
    assert PolicyTerms.from_json(base.as_json()) == base
    with pytest.raises(PolicyInvalid, match="disposal approval 'maybe'"):
        _terms(approval="maybe")


def test_the_station_adopts_first_and_later_other_terms_are_refused_by_what_writes_retention(engine, store,
                                                                                              tmp_path):
    with Session(engine) as session:
        require_policy(session, replace(BASE, routine_months=24), doing="x")  # nothing adopted: nothing compared
        # A user's command never adopts: refused while nothing is adopted; the web app starts without
        with pytest.raises(PolicyNotAdopted, match="has adopted no retention policy yet"):
            ensure_policy(session, _terms(replace(BASE, routine_months=24)), command="`evidence retention apply`")
        assert ensure_policy(session, _terms(), command="the web application", required=False) is None
        assert adopted_policy(session) is None
        first = ensure_policy(session, _terms(), command="the station", adopt_as="station:ST1")
        assert first is not None and (first.by, first.terms) == ("station:ST1", _terms())
        again = ensure_policy(session, _terms(), command="the station", adopt_as="station:ST1")
        assert again is not None and again.event_id == first.event_id
        with pytest.raises(PolicyNotAdopted) as refused:
            ensure_policy(session, _terms(replace(BASE, routine_months=7)), command="the worker", adopt_as="station")
        assert refused.value.differences == ["routine_months: adopted 6, here 7"]
        assert "the worker refused" in str(refused.value) and first.terms.fingerprint[:16] in str(refused.value)
        with pytest.raises(PolicyNotAdopted, match="applying retention refused"):
            apply_retention(session, store, replace(BASE, routine_months=7), actor="clerk")
        signer = Signer("ST1", load_or_create_key(tmp_path / "key"))
        with pytest.raises(PolicyNotAdopted, match="disposal_approval: adopted 'required', here 'none'"):
            start_sweep(session, store, BASE, now=datetime.now(UTC), by="clerk", approval_required=False,
                        signer=signer)
        # An administrator's adoption: a custody event naming what it replaces
        later = adopt_policy(session, _terms(replace(BASE, routine_months=12)), by="admin-wu", reason="新规定")
        session.commit()
        assert adopted_policy(session) == later
        event = session.get(CustodyEvent, later.event_id)
        assert event is not None and event.details["replaces"] == first.terms.fingerprint
        apply_retention(session, store, replace(BASE, routine_months=12), actor="clerk")  # the new terms apply


def test_an_adoption_event_edited_behind_the_application_s_back_is_refused(engine, store):
    with Session(engine) as session:
        adopted = ensure_policy(session, _terms(), command="the station", adopt_as="station:ST1")
        assert adopted is not None
    as_attacker(engine)  # the owner's rights: the append-only guard dropped
    with Session(engine) as session:
        event = session.get(CustodyEvent, adopted.event_id)
        assert event is not None
        event.details = {**event.details, "terms": {**event.details["terms"], "disposal_approval": "none"}}
        session.add(event)
        session.commit()
        with pytest.raises(PolicyInvalid, match="the event was edited"):
            adopted_policy(session)
        # verify names it (and the broken link), it does not stop at it
        report = verify_archive(session, store, [], policy=BASE)
        found = [str(p) for p in report.problems]
        assert any(p.startswith("[policy] adopted retention policy: custody event") for p in found), found
        assert any(p.startswith(f"[chain] event {adopted.event_id} ") for p in found), found


def test_a_catalogue_away_at_start_is_an_outage_not_a_refusal(tmp_path, caplog):
    away = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"),
                              "EVIDENCE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"})
    with caplog.at_level(logging.WARNING):
        assert check_policy_at_start(away, "the station", adopt_as="station:ST1") is False
    assert "the station starts although the catalogue does not answer" in caplog.text


def test_adopting_terms_without_a_case_type_cases_use_is_refused(engine):
    from catalog.cases import create_case

    with Session(engine) as session:
        ensure_policy(session, _terms(), command="the station", adopt_as="station:ST1")
        create_case(session, number="AB-2026-00001", title="重大案件", case_type="major", unit="执法一队",
                    opened_on=datetime(2026, 11, 1).date(), by="clerk-li", case_pattern=r".+", policy=BASE,
                    today=datetime(2026, 12, 1).date())
        session.commit()
        fewer = {k: v for k, v in DEFAULT_CASE_TYPES.items() if k != "major"}
        with pytest.raises(PolicyInvalid, match="no case type major, which cases here have"):
            adopt_policy(session, _terms(replace(BASE, case_types=fewer)), by="admin-wu", reason="精简")
