"""Every custody writer takes the chain head before the rows it changes: two writers never deadlock; and a stamp
change's retention pass that the database rolls back to resolve a conflict anyway is done again.

CI's run on 1790961 failed on this: at the station, an officer tagged a recording (a case number: a pending-case
hold) while the archive step was locking the same recording. The tag's retention pass had changed the row and then
appended its `legal_hold` event; SQLAlchemy's autoflush wrote the row (its lock) before the append asked for the
head, while the archive step held the head and asked for the row (`lock_recording_state`, head first as documented).
PostgreSQL killed the tag (`deadlock detected`): its hold was never applied and the kiosk's connection dropped.

Each test holds the head in one transaction, starts a writer in another, waits until the database says that writer
is waiting for a lock, then locks the recording's row the way the archive step does. Before the fix the row was the
writer's and PostgreSQL resolved the cycle by killing one. (SQLite has one write lock for the whole database: no
order to get wrong, so these run on PostgreSQL only.)
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from catalog import DEFAULT_CASE_PATTERN, Recording, find_chain_breaks, load_chain, open_catalog
from catalog.custody import CustodyKind, NewEvent, append_event, append_events
from catalog.db import begin_write, is_conflict
from catalog.recordings import lock_recording_state
from catalog.restamping import CONFLICT_TRIES, change_stamp
from catalog.retention import DEFAULT_CASE_TYPES, RetentionPolicy
from storage import LocalStore
from tests.conftest import postgres_database, wait_for
from tests.helpers.recordings import add_recording

pytestmark = pytest.mark.postgres

POLICY = RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai")


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    for url in postgres_database():
        engine = open_catalog(url)
        yield engine
        engine.dispose()


def _waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'")).scalar_one())


def _race(engine: Engine, recording_id: int, writer: Callable[[Session], Any]) -> None:
    """Hold the head, let *writer* (its own session, committed) start, lock the row as the archive step does once
    the writer waits, commit; the writer must then finish without error."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with Session(engine) as session:
                writer(session)
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    with Session(engine) as archive:
        begin_write(archive)
        thread = threading.Thread(target=run)
        thread.start()
        try:
            wait_for(lambda: _waiting_for_a_lock(engine) or not thread.is_alive(), 30, "the writer to wait")
            lock_recording_state(archive, recording_id)  # the head, then the row FOR UPDATE, as archiving does
            archive.commit()
        finally:
            thread.join(timeout=60)
    assert not thread.is_alive()
    assert failures == [], failures
    with Session(engine) as session:
        assert find_chain_breaks(load_chain(session)) == []


def _a_recording(engine: Engine) -> int:
    with Session(engine) as session:
        # staged: not yet in any store, so a retention pass changes only the catalogue
        recording = add_recording(session, 1, case_number=None, state="staged")
        session.commit()
        assert recording.id is not None
        return recording.id


def test_a_row_changed_then_an_event_appended_waits_for_the_head_without_holding_the_row(pg_engine):
    recording_id = _a_recording(pg_engine)

    def writer(session: Session) -> None:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        recording.legal_hold = True  # pending in the session when the event is appended
        session.add(recording)
        append_event(session, CustodyKind.LEGAL_HOLD, actor="clerk", recording_id=recording_id, details={"on": True})

    _race(pg_engine, recording_id, writer)
    with Session(pg_engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None and recording.legal_hold  # the change was kept, written after the append
        assert [e.kind for e in load_chain(session)][-1] == "legal_hold"


def test_a_batch_of_events_after_a_row_change_waits_for_the_head_without_holding_the_row(pg_engine):
    recording_id = _a_recording(pg_engine)

    def writer(session: Session) -> None:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        recording.purpose = "证明"
        session.add(recording)
        append_events(session, [NewEvent(CustodyKind.VIEWED, "clerk", recording_id=recording_id),
                                NewEvent(CustodyKind.ACCESSED, "clerk", recording_id=recording_id)])

    _race(pg_engine, recording_id, writer)
    with Session(pg_engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None and recording.purpose == "证明"


def test_a_case_number_tagged_while_the_archive_step_locks_the_recording_is_held(pg_engine, tmp_path):
    """CI's failure itself: the one stamp change every front end calls, with a case number no case has yet."""
    recording_id = _a_recording(pg_engine)
    store = LocalStore(tmp_path / "store")

    def writer(session: Session) -> None:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        change_stamp(session, store, recording, by="020304", reason="tagged at the station kiosk",
                     case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY, key=None,
                     case_number="AB-2026-00042")

    with Session(pg_engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None and recording.captured_start is not None
        recording.retain_until = recording.captured_start + timedelta(days=1)
        session.add(recording)
        session.commit()
    _race(pg_engine, recording_id, writer)
    with Session(pg_engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        assert recording.case_number == "AB-2026-00042" and recording.legal_hold
        kinds = [e.kind for e in load_chain(session) if e.recording_id == recording_id]
        assert "restamped" in kinds and "legal_hold" in kinds


def _conflicts_on_legal_hold(engine: Engine, times: int) -> None:
    """PostgreSQL refuses the next *times* `legal_hold` events with a real serialization failure (SQLSTATE 40001,
    what it answers a transaction it rolls back to resolve a conflict); a sequence counts, as a rollback does not
    undo it."""
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SEQUENCE conflict_count MAXVALUE {times + 1000}"))
        conn.execute(text(f"""
            CREATE FUNCTION conflict_on_hold() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.kind = 'legal_hold' AND nextval('conflict_count') <= {times} THEN
                    RAISE EXCEPTION 'could not serialize access (a test)' USING ERRCODE = 'serialization_failure';
                END IF;
                RETURN NEW;
            END $$"""))
        conn.execute(text("CREATE TRIGGER conflict_on_hold BEFORE INSERT ON custody_event FOR EACH ROW "
                          "EXECUTE FUNCTION conflict_on_hold()"))


def _tag(engine: Engine, recording_id: int, store: LocalStore) -> None:
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        change_stamp(session, store, recording, by="020304", reason="tagged at the station kiosk",
                     case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY, key=None, case_number="AB-2026-00042")


def test_a_stamp_changes_retention_pass_rolled_back_by_a_conflict_is_done_again(pg_engine, tmp_path):
    # Given a conflict the database resolves by rolling the retention pass back, twice
    recording_id = _a_recording(pg_engine)
    _conflicts_on_legal_hold(pg_engine, 2)
    # When an officer tags the recording with a case number no case has yet
    _tag(pg_engine, recording_id, LocalStore(tmp_path / "store"))
    # Then the third pass holds it, with one `legal_hold` event (the rolled-back ones left nothing)
    with Session(pg_engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None and recording.legal_hold and recording.case_number == "AB-2026-00042"
        chain = load_chain(session)
        assert [e.kind for e in chain if e.recording_id == recording_id].count("legal_hold") == 1
        assert find_chain_breaks(chain) == []


def test_a_conflict_that_keeps_coming_back_is_raised_with_the_revision_kept(pg_engine, tmp_path):
    recording_id = _a_recording(pg_engine)
    _conflicts_on_legal_hold(pg_engine, CONFLICT_TRIES)
    with pytest.raises(DBAPIError) as raised:
        _tag(pg_engine, recording_id, LocalStore(tmp_path / "store"))
    assert is_conflict(raised.value)
    with Session(pg_engine) as session:
        recording = session.get(Recording, recording_id)
        # the revision stands (committed first); the hold waits for the next retention pass
        assert recording is not None and recording.case_number == "AB-2026-00042" and not recording.legal_hold
        assert find_chain_breaks(load_chain(session)) == []
