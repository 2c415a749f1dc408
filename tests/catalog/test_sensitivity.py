"""Sensitivity classes (issue 18, part 1): who may view, play, download or export a recording of each class, with and
without a grant on its case; class changes only with a reason and the right role, each a custody event; a case's
class reaches its recordings; a class edited in the catalogue behind the application's back is found.

Every cell of the class × person × action table below is asserted against the real catalogue (SQLite and
PostgreSQL) through catalog.access.check_access, the function every read and export of evidence goes through.
"""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from catalog import DEFAULT_CASE_PATTERN, DEFAULT_CASE_TYPES, CustodyEvent, Officer, PermissionDenied, RetentionPolicy
from catalog.access import AccessRefused, check_access
from catalog.case_models import Case
from catalog.cases import create_case, link_recording
from catalog.classification import (
    classify_case,
    classify_recordings,
    grant_case_access,
    grant_findings,
    revoke_case_access,
)
from catalog.errors import CaseStateError
from catalog.models import Recording
from catalog.package.refusals import provenance_problems
from catalog.replay import load_case_replays, load_replays
from catalog.replay_compare import case_findings, row_findings
from catalog.sensitivity import CLASSES, LABELS, label, parse_class, parse_names
from catalog.types import utcnow
from catalog.user_models import User
from catalog.users import add_user
from tests.helpers.recordings import add_recording

POLICY = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")
CASE = "京朝城管罚字〔2026〕第00123号"
STEPS = ("view", "play", "download", "export")

#: What each person may do with officer 010203's recording of each class, without any grant (V P D E: view, play,
#: download, export; "-": refused). The officer is its collector; the supervisor is agency-wide.
WITHOUT_GRANT = {
    #                officer  clerk   supervisor auditor admin
    "public":       ("VPDE", "VPDE", "VPDE",    "V---", "VPDE"),
    "internal":     ("VPDE", "VPDE", "VPDE",    "V---", "VPDE"),
    "commercial":   ("VPDE", "VPDE", "V---",    "V---", "V---"),
    "personal":     ("VPDE", "VPDE", "V---",    "V---", "V---"),
    "state_secret": ("----", "----", "----",    "----", "----"),
}
#: The same with a live grant on the case the recording serves, for every person.
WITH_GRANT = {
    "public":       ("VPDE", "VPDE", "VPDE",    "V---", "VPDE"),
    "internal":     ("VPDE", "VPDE", "VPDE",    "V---", "VPDE"),
    "commercial":   ("VPDE", "VPDE", "VPDE",    "V---", "VPDE"),
    "personal":     ("VPDE", "VPDE", "VPDE",    "V---", "VPDE"),
    "state_secret": ("VPD-", "VPD-", "VPD-",    "V---", "VPD-"),
}
PEOPLE = ("officer", "clerk", "supervisor", "auditor", "admin")


def _people(session: Session) -> dict[str, User]:
    users = {"officer": add_user(session, "officer", roles=["officer"], officer_number="010203", by="test"),
             "clerk": add_user(session, "clerk", roles=["clerk"], by="test"),
             "supervisor": add_user(session, "supervisor", roles=["supervisor"], by="test"),
             "auditor": add_user(session, "auditor", roles=["auditor"], by="test"),
             "admin": add_user(session, "admin", roles=["admin"], by="test")}
    session.commit()
    return users


def _case(session: Session, number: str = CASE) -> Case:
    return create_case(session, number=number, title="无照经营", case_type="penalty-general", unit="朝阳区城管执法局",
                       opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY,
                       today=date(2026, 11, 23))


def _allowed(session: Session, user: User, recording: Recording, step: str) -> bool:
    try:
        if step == "export":  # as catalog.package.refusals checks a package's originals
            check_access(session, user, [recording], step="download", reason="移送", policy="download",
                         action="export")
        else:
            check_access(session, user, [recording], step=step, reason="调阅", policy="view")
    except AccessRefused:
        return False
    return True


def _row(session: Session, users: dict[str, User], recording: Recording) -> tuple[str, ...]:
    return tuple("".join(s[0].upper() if _allowed(session, users[p], recording, s) else "-" for s in STEPS)
                 for p in PEOPLE)


@pytest.mark.parametrize("sensitivity", CLASSES)
def test_what_each_person_may_do_with_each_class_with_and_without_a_grant(engine, sensitivity: str) -> None:
    with Session(engine) as session:
        users = _people(session)
        case = _case(session)
        recording = add_recording(session, 1)
        link_recording(session, case, recording, purpose="证明违法事实", by="clerk")
        classify_recordings(session, users["admin"], [recording], to=sensitivity, reason="含当事人面部")
        session.commit()
        # Given no grant: the table
        assert _row(session, users, recording) == WITHOUT_GRANT[sensitivity]
        # Given each person holds a grant on the case: the second table
        for name in PEOPLE:  # nobody grants themselves
            grant_case_access(session, users["supervisor" if name == "admin" else "admin"], case, to_user=name,
                              reason="办案需要")
        session.commit()
        assert _row(session, users, recording) == WITH_GRANT[sensitivity]
        # Revoked: back to the first
        for name in PEOPLE:
            revoke_case_access(session, users["supervisor" if name == "admin" else "admin"], case, to_user=name,
                               reason="办结")
        session.commit()
        assert _row(session, users, recording) == WITHOUT_GRANT[sensitivity]


def test_a_refusal_by_class_is_recorded_and_says_why(engine) -> None:
    with Session(engine) as session:
        users = _people(session)
        recording = add_recording(session, 1)
        classify_recordings(session, users["clerk"], [recording], to="personal", reason="含未成年人")
        session.commit()
        with pytest.raises(AccessRefused, match=r"personal privacy.*个人隐私.*to play it needs a grant") as refused:
            check_access(session, users["supervisor"], [recording], step="play", reason="抽检", policy="view")
        assert refused.value.recording_ids == [recording.id]
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused")
                             .order_by(col(CustodyEvent.id).desc())).first()
        assert event is not None and event.actor == "supervisor" and event.recording_id == recording.id
        assert event.details["why"] == "class" and event.details["action"] == "play"


def test_a_grant_that_expired_or_names_another_case_opens_nothing(engine) -> None:
    with Session(engine) as session:
        users = _people(session)
        case, other = _case(session), _case(session, "京朝城管罚字〔2026〕第00124号")
        recording = add_recording(session, 1)
        link_recording(session, case, recording, purpose="证明违法事实", by="clerk")
        classify_recordings(session, users["admin"], [recording], to="state_secret", reason="定密")
        grant_case_access(session, users["admin"], other, to_user="supervisor", reason="另案")
        grant = grant_case_access(session, users["admin"], case, to_user="clerk", reason="办案需要",
                                  expires_at=utcnow() + timedelta(hours=1))
        session.commit()
        assert not _allowed(session, users["supervisor"], recording, "play")  # a grant on another case
        assert _allowed(session, users["clerk"], recording, "play")
        # When the hour has passed (the row's time moved, as the clock would)
        session.execute(text("UPDATE case_grant SET expires_at = :t WHERE id = :i"),
                        {"t": utcnow() - timedelta(seconds=1), "i": grant.id})
        session.commit()
        assert not _allowed(session, users["clerk"], recording, "play")
        # and a grant in the past cannot be given
        with pytest.raises(CaseStateError, match="not in the future"):
            grant_case_access(session, users["admin"], case, to_user="clerk", reason="x",
                              expires_at=utcnow() - timedelta(minutes=1))


def test_only_a_supervisor_or_administrator_lowers_a_class_or_grants_access(engine) -> None:
    with Session(engine) as session:
        users = _people(session)
        case = _case(session)
        recording = add_recording(session, 1)
        # A clerk raises a class
        assert classify_recordings(session, users["clerk"], [recording], to="personal", reason="含个人信息") \
            == [recording.id]
        # but may not lower it, nor grant access
        with pytest.raises(PermissionDenied, match=r"may not lower recording .* from personal privacy"):
            classify_recordings(session, users["clerk"], [recording], to="public", reason="公示")
        with pytest.raises(PermissionDenied, match="may not grant access"):
            grant_case_access(session, users["clerk"], case, to_user="officer", reason="办案需要")
        # nobody grants themselves, and a grant names an active user
        with pytest.raises(PermissionDenied, match="may not grant themselves access"):
            grant_case_access(session, users["supervisor"], case, to_user="supervisor", reason="自己")
        with pytest.raises(CaseStateError, match="'nobody' is not an active user"):
            grant_case_access(session, users["supervisor"], case, to_user="nobody", reason="办案需要")
        # a change needs a reason, and a known class
        with pytest.raises(CaseStateError, match="needs a reason"):
            classify_recordings(session, users["admin"], [recording], to="public", reason="  ")
        with pytest.raises(CaseStateError, match="no sensitivity class"):
            classify_recordings(session, users["admin"], [recording], to="secret", reason="x")
        # a supervisor may lower it only once it is open to them (here: a grant on a case it serves, from another
        # person); the change is a custody event with from, to, reason and the row's new value
        with pytest.raises(PermissionDenied, match=r"may not lower recording .*: it is personal privacy"):
            classify_recordings(session, users["supervisor"], [recording], to="public", reason="已脱敏公示")
        link_recording(session, case, recording, purpose="现场", by="clerk")
        grant_case_access(session, users["admin"], case, to_user="supervisor", reason="复核定密")
        classify_recordings(session, users["supervisor"], [recording], to="public", reason="已脱敏公示")
        session.commit()
        events = list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == "classified")
                                   .order_by(col(CustodyEvent.id))))
        assert [(e.actor, e.details["from"], e.details["to"], e.details["reason"]) for e in events] == [
            ("clerk", "internal", "personal", "含个人信息"), ("supervisor", "personal", "public", "已脱敏公示")]
        assert events[-1].details["row"] == {"sensitivity": "public"}
        session.refresh(recording)
        assert recording.sensitivity == "public"


def test_a_case_class_reaches_the_recordings_it_holds_and_those_linked_later(engine) -> None:
    with Session(engine) as session:
        users = _people(session)
        case = _case(session)
        before, secret_one = add_recording(session, 1), add_recording(session, 2)
        link_recording(session, case, before, purpose="现场", by="clerk")
        classify_recordings(session, users["admin"], [secret_one], to="state_secret", reason="定密")
        # When the case is classified personal privacy
        raised = classify_case(session, users["clerk"], case, to="personal", reason="涉及当事人隐私")
        session.commit()
        # Then the recording it holds is raised (an event naming the case), never one of a higher class
        assert raised == [before.id]
        assert before.sensitivity == "personal" and case.sensitivity == "personal"
        link_recording(session, case, secret_one, purpose="询问", by="clerk")
        later = add_recording(session, 3)
        link_recording(session, case, later, purpose="询问", by="clerk")
        session.commit()
        assert (secret_one.sensitivity, later.sensitivity) == ("state_secret", "personal")
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "classified",
                                                        CustodyEvent.recording_id == later.id)).one()
        assert event.details["case"] == CASE and "linked to case" in event.details["reason"]
        # Lowering the case lowers no recording
        assert classify_case(session, users["supervisor"], case, to="internal", reason="复核") == []
        session.commit()
        assert (before.sensitivity, later.sensitivity) == ("personal", "personal")
        # and a public recording linked to an ordinary (internal) case stays public
        public = add_recording(session, 4)
        classify_recordings(session, users["admin"], [public], to="public", reason="已公示")
        link_recording(session, case, public, purpose="公示材料", by="clerk")
        assert public.sensitivity == "public"


def test_a_class_edited_behind_the_applications_back_is_found_and_blocks_an_export(engine) -> None:
    with Session(engine) as session:
        users = _people(session)
        case = _case(session)
        kept, never = add_recording(session, 1), add_recording(session, 2)
        classify_recordings(session, users["admin"], [kept], to="state_secret", reason="定密")
        classify_case(session, users["admin"], case, to="personal", reason="涉及隐私")
        session.commit()
        assert kept.id is not None and never.id is not None
        kept_id, never_id = kept.id, never.id
        ids = [kept_id, never_id]
        replays = load_replays(session, ids)[0]
        assert row_findings(kept, replays[kept_id]) == [] and row_findings(never, replays[never_id]) == []
        assert case_findings(load_case_replays(session), [case]) == []
    # When someone with database access declassifies both recordings and the case in SQL
    with engine.begin() as conn:  # no guard on these tables to remove (as_attacker: the custody log's)
        conn.execute(text("UPDATE recording SET sensitivity = 'public'"))
        conn.execute(text("UPDATE case_file SET sensitivity = 'internal'"))
    with Session(engine) as session:
        rows = {r.id: r for r in session.exec(select(Recording))}
        replays = load_replays(session, ids)[0]
        # Then the recording classified state secret, and the one never classified (internal by default), are named
        assert any(f.startswith("sensitivity: the catalogue row says 'public', the custody chain says "
                                "'state_secret'") for f in row_findings(rows[kept_id], replays[kept_id]))
        assert any("sensitivity" in f and "'internal'" in f and "never classified" in f
                   for f in row_findings(rows[never_id], replays[never_id]))
        case_row = session.exec(select(Case)).one()
        assert (CASE, "sensitivity: the case row says 'internal', the custody chain says 'personal' (changed behind "
                      "the application's back; retention follows the chain)") in case_findings(
            load_case_replays(session), [case_row])
        # and an export of them is refused before anything is written
        problems = provenance_problems(session, list(rows.values()))
        assert sorted(p.split(" ", 2)[1] for p in problems if "sensitivity: the catalogue row says" in p) == \
            sorted(str(i) for i in ids)


def test_class_names_in_chinese_and_english() -> None:
    assert [parse_class(t) for t in ("国家秘密", "state secret", "STATE_SECRET", "个人隐私", "commercial-secret",
                                     "公开", "internal")] == [
        "state_secret", "state_secret", "state_secret", "personal", "commercial", "public", "internal"]
    assert set(LABELS) == set(CLASSES)
    with pytest.raises(ValueError, match="'机密' is no sensitivity class; choose one of public \\(公开\\)"):
        parse_class("机密")


def test_an_agency_names_the_classes_its_own_way() -> None:
    names = parse_names({"state_secret": {"zh": "涉密", "en": "classified"}})
    assert names["state_secret"] == ("涉密", "classified") and names["personal"] == LABELS["personal"]
    assert [parse_class(t, names) for t in ("涉密", "Classified", "国家秘密")] == ["state_secret"] * 3
    assert label("state_secret", "zh", names) == "涉密" and label("state_secret", "en", names) == "classified"
    with pytest.raises(ValueError, match=r"^\[secret\] is no class") as bad:
        parse_names({"secret": {"zh": "机密", "en": "secret"}, "personal": {"zh": " ", "en": "x" * 21},
                     "public": {"zh": "内部", "en": "open"}})
    assert str(bad.value) == ("[secret] is no class; the classes are public, internal, commercial, personal, "
                              "state_secret; [personal] zh must be a name of 1-20 characters; [personal] en must be "
                              "a name of 1-20 characters; the zh name '内部' is given to both public and internal")


def test_a_state_secret_stays_closed_to_those_who_would_lower_it_or_link_it_elsewhere(engine) -> None:
    """Found by a review: a supervisor refused a state secret lowered it to public and read it; a clerk holding a
    grant on an ordinary case linked another case's state secret into it and read it."""
    with Session(engine) as session:
        users = _people(session)
        secret_case, other = _case(session), _case(session, "京朝城管罚字〔2026〕第00124号")
        secret = add_recording(session, 1)
        link_recording(session, secret_case, secret, purpose="询问", by="clerk")
        classify_case(session, users["admin"], secret_case, to="state_secret", reason="定密")
        grant_case_access(session, users["admin"], other, to_user="clerk", reason="办案需要")
        session.commit()
        # Lowering it needs the access it would open
        with pytest.raises(PermissionDenied, match=r"may not lower recording .*state secret"):
            classify_recordings(session, users["supervisor"], [secret], to="public", reason="解密")
        assert not _allowed(session, users["supervisor"], secret, "download")
        # A person may not link what its class keeps from them; the grant on the other case opens nothing
        with pytest.raises(PermissionDenied, match="may not link recording"):
            link_recording(session, other, secret, purpose="并案", by="clerk", linker=users["clerk"])
        session.rollback()
        assert not _allowed(session, users["clerk"], secret, "download")
        assert secret.sensitivity == "state_secret"


def test_a_unit_supervisor_grants_and_classes_only_cases_wholly_in_their_units(engine) -> None:
    with Session(engine) as session:
        users = _people(session)
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
        unit_1 = add_user(session, "u1-supervisor", roles=["supervisor"], units=["U1"], by="test")
        case = _case(session)
        ours, theirs = add_recording(session, 1), add_recording(session, 2, officer_number="030405")
        for recording in (ours, theirs):
            link_recording(session, case, recording, purpose="现场", by="clerk")
        classify_recordings(session, users["admin"], [theirs], to="state_secret", reason="定密")
        session.commit()
        with pytest.raises(PermissionDenied, match="holds recording\\(s\\) 2 outside what they may see"):
            grant_case_access(session, unit_1, case, to_user="clerk", reason="办案需要")
        with pytest.raises(PermissionDenied, match="may not classify case"):
            classify_case(session, unit_1, case, to="personal", reason="x")
        assert not _allowed(session, users["clerk"], theirs, "download")


def test_a_grant_made_or_revived_in_sql_opens_nothing_and_is_named_by_verify(engine) -> None:
    with Session(engine) as session:
        users = _people(session)
        case = _case(session)
        secret = add_recording(session, 1)
        link_recording(session, case, secret, purpose="询问", by="clerk")
        classify_recordings(session, users["admin"], [secret], to="state_secret", reason="定密")
        grant_case_access(session, users["admin"], case, to_user="clerk", reason="办案需要")
        revoke_case_access(session, users["admin"], case, to_user="clerk", reason="办结")
        session.commit()
        assert grant_findings(session) == []
        case_id = case.id
    # When someone with database access revives the revoked grant and writes a new one for the supervisor
    with engine.begin() as conn:
        conn.execute(text("UPDATE case_grant SET revoked_at = NULL, revoked_by = NULL"))
        conn.execute(text("INSERT INTO case_grant (case_id, user_name, granted_by, granted_at, reason) "
                          "VALUES (:c, 'supervisor', 'admin', :t, '伪造')"), {"c": case_id, "t": utcnow()})
    with Session(engine) as session:
        users = {u.name: u for u in session.exec(select(User))}
        secret = session.exec(select(Recording)).one()
        # Then neither opens the state secret
        assert not _allowed(session, users["clerk"], secret, "play")
        assert not _allowed(session, users["supervisor"], secret, "play")
        # and verify names both
        found = grant_findings(session)
        assert [text for _, text in found] == [
            "the custody chain revoked it, the row is live again",
            "no access_granted event in the custody chain accounts for it (added behind the application's back)"]


def test_a_court_report_says_class_changes_and_grants_in_words() -> None:
    from catalog.custody_words import event_sentence
    from catalog.report_values import Values

    changed = {"kind": "classified", "details": {"from": "internal", "to": "state_secret", "reason": "定密"}}
    granted = {"kind": "access_granted", "details": {"case": CASE, "user": "clerk", "reason": "办案需要",
                                                     "expires_at": None}}
    assert event_sentence(changed, Values(language="zh")) == "敏感类别由 内部 改为 国家秘密，理由：定密"
    assert event_sentence(changed, Values(language="en")) == \
        "Sensitivity class changed from internal to state secret; reason: 定密"
    assert event_sentence(granted, Values(language="en")) == \
        f"clerk granted access to the classed items of case {CASE} (until revoked); reason: 办案需要"
