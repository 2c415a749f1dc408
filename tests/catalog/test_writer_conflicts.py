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
from datetime import date, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from catalog import (
    DEFAULT_CASE_PATTERN,
    Recording,
    ensure_station,
    ensure_station_key,
    find_chain_breaks,
    load_chain,
    load_or_create_key,
    open_catalog,
)
from catalog.cases import create_case, get_case
from catalog.custody import CustodyKind, NewEvent, append_event, append_events
from catalog.db import begin_write, is_conflict
from catalog.devices import assign_device, device_docked
from catalog.models import Device
from catalog.recordings import lock_recording_state
from catalog.restamping import CONFLICT_TRIES, change_stamp
from catalog.retention import DEFAULT_CASE_TYPES, RetentionPolicy
from catalog.sign_in import sign_in
from catalog.types import utcnow
from catalog.user_models import User
from catalog.users import add_user, set_password, set_roles
from device_profiles.loader import load_profiles
from ingest.config import Settings
from ingest.describe.identity import DeviceIdentity
from ingest.documents import attach_document
from ingest.pipeline.dock import DockStart
from ingest.pipeline.options import IngestOptions
from ingest.pipeline.report import IngestReport
from ingest.redaction.derivative import _catalogue_copy
from ingest.redaction.spec import Box, RedactionSpec
from ingest.transfer import copy_and_hash
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


def _race(engine: Engine, writer: Callable[[Session], Any], *,
          holder_takes_head: Callable[[Session], Any] = begin_write,
          holder_goes_on: Callable[[Session], Any] = lambda _holder: None) -> None:
    """*holder_takes_head* (a real head-first operation, its row changes still pending, or `begin_write` as the
    archive step does) in one session; *writer* (its own session, committed) on a thread; once the database says
    the writer waits for a lock, *holder_goes_on* and the holder commits. Both must finish without error, and the
    chain stay linked. Before a fix the writer already holds the row the holder goes on to: PostgreSQL detects the
    cycle (deadlock_timeout, 1 s) and kills one."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with Session(engine) as session:
                writer(session)
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    with Session(engine) as holder:
        holder_takes_head(holder)
        thread = threading.Thread(target=run)
        thread.start()
        try:
            wait_for(lambda: _waiting_for_a_lock(engine) or not thread.is_alive(), 30, "the writer to wait")
            holder_goes_on(holder)
            holder.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            thread.join(timeout=60)
    assert not thread.is_alive()
    assert failures == [], [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in failures]
    with Session(engine) as session:
        assert find_chain_breaks(load_chain(session)) == []


def _archive_step_locks(recording_id: int) -> Callable[[Session], Any]:
    """The archive step going on to the recording: the head (held), then the row, as `lock_recording_state`."""
    return lambda holder: lock_recording_state(holder, recording_id)


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

    _race(pg_engine, writer, holder_goes_on=_archive_step_locks(recording_id))
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

    _race(pg_engine, writer, holder_goes_on=_archive_step_locks(recording_id))
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
    _race(pg_engine, writer, holder_goes_on=_archive_step_locks(recording_id))
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


# A review of the first fix (appends under no_autoflush) found writers that still wrote a row before the head, and
# two that the fix itself had made deadlock: each raced here against a head-first writer of the same row.


def _a_user(engine: Engine, name: str = "xiaoli") -> None:
    with Session(engine) as session:
        add_user(session, name, roles=["clerk"], by="admin")
        session.commit()
        set_password(session, name, "correct horse battery", by="admin")
        session.commit()


def _roles_changed(holder: Session) -> None:
    """An administrator changes xiaoli's roles: the `user_changed` event takes the head, the row is written at
    commit."""
    set_roles(holder, "xiaoli", ["clerk", "reviewer"], by="admin-a")


def test_a_password_reset_while_another_administrator_changes_the_users_roles(pg_engine):
    _a_user(pg_engine)
    _race(pg_engine, lambda s: set_password(s, "xiaoli", "another long password", by="admin-b"),
          holder_takes_head=_roles_changed)
    with Session(pg_engine) as session:
        assert sorted(session.exec(select(User).where(User.name == "xiaoli")).one().roles) == ["clerk", "reviewer"]


def test_a_user_signs_in_while_an_administrator_changes_their_roles(pg_engine):
    _a_user(pg_engine)
    _race(pg_engine, lambda s: sign_in(s, "xiaoli", "correct horse battery", now=utcnow(), source="127.0.0.1"),
          holder_takes_head=_roles_changed)


def test_a_device_docked_while_an_administrator_assigns_it(pg_engine, tmp_path):
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"),
                                  "EVIDENCE_DATABASE_URL": pg_engine.url.render_as_string(hide_password=False)})
    with Session(pg_engine) as session:  # the device docked before; the station's key registered
        ensure_station(session, settings.station, name=settings.station_name)
        device_docked(session, "A123456", profile="cn-enforcement-recorder", officer_number=None, now=utcnow())
        ensure_station_key(session, settings.station, load_or_create_key(settings.station_key_path), actor="station")
        session.commit()
    dock = DockStart(pg_engine, settings, IngestOptions(), root=tmp_path,
                     profile=load_profiles()["cn-enforcement-recorder"], identity=DeviceIdentity(), serial="A123456",
                     report=IngestReport())

    def docked(_session: Session) -> None:
        dock._begin(None, False)  # the dock's registration (its own session, committed)
        assert dock._begun_dock_id is not None

    # the administrator assigns the device to a unit (`registry_changed` takes the head; the row written at commit)
    _race(pg_engine, docked, holder_takes_head=lambda holder: assign_device(
        holder, "A123456", officer_number=None, unit_number="U1", unit_name="一中队", by="admin", now=utcnow()))
    with Session(pg_engine) as session:
        assert session.exec(select(Device).where(Device.serial == "A123456")).one().unit_number == "U1"


def test_a_redacted_copy_catalogued_while_its_original_is_read_back(pg_engine, tmp_path):
    # The copy's foreign key takes a key-share lock on the original's row; the read-back locked that row FOR UPDATE
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"),
                                  "EVIDENCE_DATABASE_URL": pg_engine.url.render_as_string(hide_password=False)})
    store = LocalStore(tmp_path / "store")
    key = Ed25519PrivateKey.generate()
    with Session(pg_engine) as session:
        ensure_station(session, "station-1")
        ensure_station(session, settings.station)
        ensure_station_key(session, settings.station, key, actor="station", store=store)
        original = add_recording(session, 1, state="archived", retain_until=utcnow() + timedelta(days=30))
        add_user(session, "redactor", roles=["clerk"], by="admin")
        session.commit()
        original_id = original.id
        assert original_id is not None
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    rendered = tmp_path / "rendered.mp4"
    rendered.write_bytes(b"a rendered copy" * 100)
    copy = copy_and_hash(rendered, settings.staging_dir, part_name="redact-x", resume=False)

    def catalogued(session: Session) -> None:
        original = session.get(Recording, original_id)
        user = session.exec(select(User).where(User.name == "redactor")).one()
        assert original is not None
        _catalogue_copy(session, store, settings, original, copy, RedactionSpec(boxes=(Box(0, 1, 0, 0, 8, 8),)),
                        key=key, user=user, why="a request for publication", version=1, photo=False, size=(320, 240))

    _race(pg_engine, catalogued, holder_goes_on=_archive_step_locks(original_id))


class _PausingStore:
    """The local store, pausing after put_file (an attached document's upload) until the test lets it go on."""

    def __init__(self, store: LocalStore) -> None:
        self._store, self.uploaded, self.go_on = store, threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def put_file(self, *args: Any, **kwargs: Any) -> Any:
        stored = self._store.put_file(*args, **kwargs)
        self.uploaded.set()
        assert self.go_on.wait(30)
        return stored


def test_a_document_attached_while_the_archive_step_locks_it(pg_engine, tmp_path):
    # mark_archived set the row's state, then archive_now's query wrote it before the `archived` event took the head
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"),
                                  "EVIDENCE_DATABASE_URL": pg_engine.url.render_as_string(hide_password=False)})
    store = _PausingStore(LocalStore(tmp_path / "store"))
    key = Ed25519PrivateKey.generate()
    number = "京朝城管罚字〔2026〕第00123号"
    with Session(pg_engine) as session:
        create_case(session, number=number, title="无照经营", case_type="penalty-general", unit="朝阳区城管执法局",
                    opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY,
                    today=date(2026, 11, 23))
        session.commit()
    document = tmp_path / "statement.txt"
    document.write_text("询问笔录 " * 50, encoding="utf-8")
    failures: list[BaseException] = []

    def attach() -> None:
        try:
            with Session(pg_engine) as session:
                attach_document(session, store, settings, get_case(session, number), document, title="询问笔录",
                                by="clerk", key=key)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
            store.uploaded.set()

    thread = threading.Thread(target=attach)
    thread.start()
    try:
        assert store.uploaded.wait(30)  # catalogued as staged and committed; the upload done
        with Session(pg_engine) as holder:
            begin_write(holder)  # the archive step (or a retention pass over the case) takes the head ...
            [staged_id] = [r.id for r in holder.exec(select(Recording).where(Recording.state == "staged"))]
            store.go_on.set()
            wait_for(lambda: _waiting_for_a_lock(pg_engine) or not thread.is_alive(), 30, "the attach to wait")
            assert staged_id is not None
            lock_recording_state(holder, staged_id)  # ... then the row
            holder.commit()
    finally:
        store.go_on.set()
        thread.join(timeout=60)
    assert failures == [], [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in failures]
    with Session(pg_engine) as session:
        assert find_chain_breaks(load_chain(session)) == []
        assert [r.state for r in session.exec(select(Recording))] == ["archived"]
