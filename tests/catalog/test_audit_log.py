"""The auditor's reading of the custody log on SQLite and PostgreSQL: each filter narrows, they combine,
paging and order hold, and the verification state shows the chain head and the latest anchors."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from catalog.audit_log import ACCESS_KINDS, LOGS, AuditFilter, count_events, list_events, verification_state
from catalog.custody import CustodyKind, append_event
from catalog.models import CustodyAnchor
from tests.helpers.recordings import add_recording

T = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _log(engine) -> int:
    """Six events: two views by clerk and one by auditor of recording 1 (an hour apart), a refusal, a user
    change and a verification run. Returns recording 1's id."""
    with Session(engine) as session:
        recording = add_recording(session, 1)
        rid = recording.id
        for hour, (kind, actor, about) in enumerate([
                (CustodyKind.VIEWED, "clerk", rid), (CustodyKind.VIEWED, "clerk", rid),
                (CustodyKind.VIEWED, "auditor", rid), (CustodyKind.ACCESS_REFUSED, "officer", rid),
                (CustodyKind.USER_CHANGED, "admin", None), (CustodyKind.VERIFICATION_RUN, "admin", None)]):
            append_event(session, kind, actor=actor, recording_id=about, at=T + timedelta(hours=hour))
        session.commit()
    assert rid is not None
    return rid


def _kinds(events):
    return [(e.kind, e.actor) for e in events]


def test_each_filter_narrows_the_log_and_they_combine(engine):
    rid = _log(engine)
    with Session(engine) as session:
        assert count_events(session, AuditFilter(log="access")) == 4
        assert count_events(session, AuditFilter(log="admin")) == 1
        assert _kinds(list_events(session, AuditFilter(log="verification"))) == [("verification_run", "admin")]
        assert count_events(session, AuditFilter(kind="viewed", actor="clerk")) == 2
        assert count_events(session, AuditFilter(recording_id=rid, actor="officer")) == 1
        window = AuditFilter(since=T + timedelta(hours=1), until=T + timedelta(hours=2))
        assert _kinds(list_events(session, window)) == [("viewed", "clerk"), ("viewed", "auditor")]
        assert count_events(session, AuditFilter(log="no such log", actor="nobody")) == 0


def test_an_unknown_log_name_reads_the_whole_log(engine):
    _log(engine)
    with Session(engine) as session:
        everything = count_events(session, AuditFilter())
        assert count_events(session, AuditFilter(log="unknown")) == everything
        assert everything >= 6  # the recording's own stamp events may add to it


def test_events_page_newest_first_or_in_log_order(engine):
    _log(engine)
    where = AuditFilter(log="access")
    with Session(engine) as session:
        oldest_first = list_events(session, where)
        newest_first = list_events(session, where, newest_first=True)
        second_page = list_events(session, where, newest_first=True, offset=2, limit=2)
    assert [e.id for e in newest_first] == [e.id for e in reversed(oldest_first)]
    assert [e.id for e in second_page] == [e.id for e in newest_first[2:4]]
    assert set(LOGS["access"]) == set(ACCESS_KINDS)


def test_verification_state_shows_the_head_and_the_latest_anchors_newest_first(engine):
    with Session(engine) as session:
        empty = verification_state(session)
    assert empty.anchors == [] and (empty.head is None or empty.head.last_event_id is None)
    _log(engine)
    with Session(engine) as session:
        for n in range(3):
            session.add(CustodyAnchor(last_event_id=n + 1, last_hash=f"{n:064x}", written_at=T, written_by="test",
                                      record_name=f"anchors/{n}.json", key_fingerprint="f" * 64))
        session.commit()
        state = verification_state(session, anchors=2)
    assert state.head is not None and state.head.last_event_id is not None
    assert [a.record_name for a in state.anchors] == ["anchors/2.json", "anchors/1.json"]
