"""Cases in the catalog (SQLite and PostgreSQL): lifecycle, links, adoption of stamped recordings, errors."""
from __future__ import annotations

from datetime import date, timedelta
from functools import partial
from typing import Any

import pytest
from sqlmodel import Session, col, select

from catalog import (
    DEFAULT_CASE_PATTERN,
    DEFAULT_CASE_TYPES,
    CaseInvalid,
    CaseLink,
    CaseStateError,
    CustodyEvent,
    RetentionPolicy,
    SearchFilters,
    case_as_json,
    close_case,
    create_case,
    find_chain_breaks,
    link_recording,
    load_chain,
    reopen_case,
    run_search,
    unlink_recording,
)
from catalog.cases import adopt_stamped
from catalog.custody import CustodyKind, append_event
from tests.helpers.recordings import T0, add_recording

POLICY = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")
TODAY = date(2026, 11, 23)
#: Recording rows kept for the routine six months.
_recording = partial(add_recording, retain_until=T0 + timedelta(days=182))


def _create(session: Session, number: str = "京朝城管罚字〔2026〕第00123号", **kw):
    values: dict[str, Any] = dict(number=number, title="无照经营", case_type="penalty-general", unit="朝阳区城管执法局",
                  opened_on=date(2026, 11, 1), by="clerk:李四", case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY,
                  today=TODAY)
    values.update(kw)
    return create_case(session, **values)


def _kinds(session: Session) -> list[str]:
    return [e.kind for e in session.exec(select(CustodyEvent).order_by(col(CustodyEvent.id)))]


def test_case_lifecycle_is_recorded_in_the_custody_chain(engine):
    with Session(engine) as session:
        rec = _recording(session, 1)
        case = _create(session)
        link_recording(session, case, rec, purpose="证明当事人无照经营", by="clerk:李四")
        close_case(session, case, by="clerk:李四", closed_on=date(2026, 11, 20), today=TODAY)
        reopen_case(session, case, by="supervisor:王", reason="复议")
        unlink_recording(session, case, rec, by="clerk:李四", reason="与本案无关")
        session.commit()
        assert case.status == "open" and case.closed_on is None
        assert _kinds(session)[-5:] == ["case_opened", "case_linked", "case_closed", "case_reopened",
                                        "case_unlinked"]
        assert find_chain_breaks(load_chain(session)) == []
        data = case_as_json(session, case, POLICY)
        assert data["recordings"] == []
        assert data["unlinked"][0]["reason"] == "与本案无关"
        assert data["case_type_name"] == "行政处罚（普通程序）" and data["case_retention"] == "30 years"


def test_bad_case_number_unknown_type_future_date_and_duplicates_are_refused(engine):
    with Session(engine) as session:
        with pytest.raises(CaseInvalid) as caught:
            _create(session, number="x", case_type="parking", title=" ", opened_on=date(2026, 12, 1))
        message = str(caught.value)
        assert "case number 'x' does not match the pattern" in message
        assert "unknown case type 'parking'" in message and "penalty-general" in message
        assert "title is blank" in message
        assert "opened date 2026-12-01 is in the future" in message
        _create(session, number="AB-2026-00042")
        with pytest.raises(CaseInvalid, match="case 'AB-2026-00042' already exists"):
            _create(session, number="AB-2026-00042")


def test_closing_a_closed_case_and_reopening_an_open_one_are_refused(engine):
    with Session(engine) as session:
        case = _create(session)
        with pytest.raises(CaseStateError, match="is open already"):
            reopen_case(session, case, by="x", reason="y")
        with pytest.raises(CaseInvalid, match="before the opened date 2026-11-01"):
            close_case(session, case, by="x", closed_on=date(2026, 10, 1), today=TODAY)
        close_case(session, case, by="clerk:李四", closed_on=TODAY, today=TODAY)
        with pytest.raises(CaseStateError, match=r"already closed \(on 2026-11-23 by clerk:李四\)"):
            close_case(session, case, by="x", closed_on=TODAY, today=TODAY)


def test_a_case_type_edited_in_its_row_is_neither_closed_under_nor_believed_from_the_close(engine):
    from sqlalchemy import text

    from catalog.replay import load_case_replays

    with Session(engine) as session:
        case = _create(session, case_type="major")  # kept for good once closed
        session.commit()
        # Given the case row's type changed behind the application's back to one kept for a short time
        session.execute(text("UPDATE case_file SET case_type = 'penalty-summary' WHERE id = :id"), {"id": case.id})
        session.commit()
        session.refresh(case)
        # When a clerk closes it: refused, naming both types; it stays open
        with pytest.raises(CaseStateError) as refused:
            close_case(session, case, by="clerk:李四", closed_on=TODAY, today=TODAY)
        assert "its row says type 'penalty-summary', the custody chain 'major'" in str(refused.value)
        session.rollback()
        # and a close event that names another type (appended behind the application's back) does not change
        # the type the chain gave it when it was opened
        append_event(session, CustodyKind.CASE_CLOSED, actor="clerk:李四", details={
            "case": case.number, "closed_on": TODAY.isoformat(), "case_type": "penalty-summary"})
        session.commit()
        stated = load_case_replays(session)[case.number]
        assert (stated.status, stated.case_type) == ("closed", "major")


def test_linking_needs_a_purpose_an_open_case_and_a_kept_recording(engine):
    with Session(engine) as session:
        case = _create(session)
        rec = _recording(session, 1)
        gone = _recording(session, 2, state="disposed")
        with pytest.raises(CaseInvalid, match="purpose"):
            link_recording(session, case, rec, purpose="  ", by="clerk")
        with pytest.raises(CaseStateError, match=r"recording \d+ \(clip2.mp4, sha256 000000000000…\) was disposed"):
            link_recording(session, case, gone, purpose="证明", by="clerk")
        first = link_recording(session, case, rec, purpose="证明", by="clerk")
        assert link_recording(session, case, rec, purpose="证明", by="clerk") is first  # the same link twice
        with pytest.raises(CaseStateError, match=r"already linked .* with purpose '证明'"):
            link_recording(session, case, rec, purpose="另一目的", by="clerk")
        with pytest.raises(CaseStateError, match="is not linked"):
            unlink_recording(session, case, gone, by="clerk", reason="r")
        close_case(session, case, by="clerk", closed_on=TODAY, today=TODAY)
        other = _recording(session, 3)
        with pytest.raises(CaseStateError, match=r"is closed .* reopen it before linking"):
            link_recording(session, case, other, purpose="证明", by="clerk")


def test_a_recording_may_serve_several_cases_and_search_finds_linked_ones(engine):
    with Session(engine) as session:
        rec = _recording(session, 1)
        unrelated = _recording(session, 2)
        a = _create(session, number="AB-2026-00001")
        b = _create(session, number="AB-2026-00002", case_type="inspection")
        link_recording(session, a, rec, purpose="证明违法事实", by="clerk")
        link_recording(session, b, rec, purpose="证明检查过程", by="clerk")
        session.commit()
        assert [r.id for r in run_search(session, SearchFilters(case_number="AB-2026-00002"))] == [rec.id]
        assert unrelated.id not in [r.id for r in run_search(session, SearchFilters(case_number="AB-2026-00001"))]


def test_recordings_stamped_with_the_number_join_the_case_once(engine):
    with Session(engine) as session:
        stamped = _recording(session, 1, case_number="AB-2026-00777", purpose="现场检查")
        _recording(session, 2, case_number="AB-2026-00888")
        case = _create(session, number="AB-2026-00777")
        session.commit()
        links = list(session.exec(select(CaseLink)))
        assert [(link.recording_id, link.source, link.purpose) for link in links] == [(stamped.id, "stamp", "现场检查")]
        unlink_recording(session, case, stamped, by="clerk", reason="误标")
        assert adopt_stamped(session, by="retention-job") == []  # a clerk's unlink is not undone
        late = _recording(session, 3, case_number="AB-2026-00777")
        assert late.id is not None
        made = adopt_stamped(session, by="retention-job", recording_ids=[late.id])
        assert [link.recording_id for link in made] == [late.id]
