"""The catalogue questions ingest asks (sightings, staged and undecoded recordings, manifests, derived media) and
the row locks the archive and decode steps take, on SQLite and PostgreSQL."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import NoResultFound, OperationalError
from sqlmodel import Session

from catalog import CustodyKind, DockSession, Recording, Sighting, append_event, ensure_station, find_known_sighting
from catalog.integrity import DECODE_CHECK, decode_revisions, record_integrity, undecoded_ids
from catalog.recordings import (
    has_manifest,
    lock_recording,
    lock_recording_state,
    recordings_by_sha256,
    staged_ids,
)
from catalog.sightings import last_sighting_at, sighting_at, sightings_of_dock

T0 = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
SERIAL = "A123456"


def _recording(session: Session, n: int, **kw) -> Recording:
    values: dict[str, Any] = dict(
        sha256=f"{n:064x}", size_bytes=100 + n, media_kind="video", original_name=f"clip{n}.mp4",
        station_code="station-1", captured_start=T0 + timedelta(hours=n),
        captured_end=T0 + timedelta(hours=n, seconds=30), time_source="filename",
        integrity_status="ok", state="archived", ingested_at=T0, device_serial=SERIAL)
    values.update(kw)
    recording = Recording(**values)
    session.add(recording)
    session.flush()
    return recording


def _dock(session: Session) -> int:
    ensure_station(session, "station-1")
    session.flush()
    dock = DockSession(station_code="station-1", device_serial=SERIAL, profile="generic", source_path="/media/cam",
                       started_at=T0)
    session.add(dock)
    session.flush()
    assert dock.id is not None
    return dock.id


def _sighting(session: Session, recording: Recording, dock_id: int, path: str, **kw) -> Sighting:
    assert recording.id is not None
    values: dict[str, Any] = dict(recording_id=recording.id, dock_session_id=dock_id, device_serial=SERIAL,
                                  device_path=path, size_bytes=1000, mtime_ns=7, seen_at=T0)
    values.update(kw)
    sighting = Sighting(**values)
    session.add(sighting)
    session.flush()
    return sighting


def test_find_known_sighting_returns_the_latest_sighting_still_on_the_device(engine):
    with Session(engine) as session:
        dock = _dock(session)
        first, second, cleared = (_recording(session, n) for n in (1, 2, 3))
        _sighting(session, first, dock, "DCIM/0001.MP4")
        latest = _sighting(session, second, dock, "DCIM/0001.MP4")
        _sighting(session, cleared, dock, "DCIM/0001.MP4", cleared_at=T0)
        _sighting(session, first, dock, "DCIM/0002.MP4")
        session.commit()

        found = find_known_sighting(session, device_serial=SERIAL, device_path="DCIM/0001.MP4", size_bytes=1000,
                                    mtime_ns=7)
        assert found is not None and found.id == latest.id
        assert find_known_sighting(session, device_serial=SERIAL, device_path="DCIM/0001.MP4", size_bytes=1000,
                                   mtime_ns=8) is None
        assert find_known_sighting(session, device_serial="B999", device_path="DCIM/0001.MP4", size_bytes=1000,
                                   mtime_ns=7) is None


def test_recordings_by_sha256_answers_every_hash_whatever_the_chunk_size(engine):
    with Session(engine) as session:
        rows = [_recording(session, 1), _recording(session, 2, state="staged", station_code="station-2"),
                _recording(session, 3, state="disposed")]
        session.commit()
        wanted = {r.sha256: (r.id, r.state, r.station_code) for r in rows}
        hashes = sorted([*wanted, "f" * 64])
        statements: list[str] = []

        def count(conn, cursor, statement, *args):
            if "FROM recording" in statement:
                statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            for chunk_size in (1, 2, 500):
                assert recordings_by_sha256(session, hashes, chunk_size=chunk_size) == wanted
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(statements) == 4 + 2 + 1
        assert recordings_by_sha256(session, []) == {}


def test_staged_ids_are_the_stations_own_staged_recordings_oldest_first(engine):
    with Session(engine) as session:
        later = _recording(session, 1, state="staged")
        _recording(session, 2, state="archived")
        _recording(session, 3, state="staged", station_code="station-2")
        earlier_id = later.id
        newer = _recording(session, 4, state="staged")
        session.commit()
        assert staged_ids(session, "station-1") == [earlier_id, newer.id]
        assert staged_ids(session, "station-9") == []


def test_has_manifest_only_once_a_manifested_event_is_recorded(engine):
    with Session(engine) as session:
        recording, other = _recording(session, 1), _recording(session, 2)
        assert recording.id is not None and other.id is not None
        append_event(session, CustodyKind.ARCHIVED, actor="station:test", recording_id=recording.id, details={})
        session.commit()
        assert not has_manifest(session, recording.id)
        append_event(session, CustodyKind.MANIFESTED, actor="station:test", recording_id=recording.id, details={})
        session.commit()
        assert has_manifest(session, recording.id)
        assert not has_manifest(session, other.id)


def test_decode_revisions_count_only_decode_verdicts(engine):
    with Session(engine) as session:
        recording = _recording(session, 1)
        assert recording.id is not None
        session.commit()
        assert decode_revisions(session, recording.id) == 0
        record_integrity(session, recording, check=DECODE_CHECK, status="ok", detail="decoded", by="decode-check")
        session.commit()
        assert decode_revisions(session, recording.id) == 1  # the ingest verdict written as revision 1 is not one
        record_integrity(session, recording, check=DECODE_CHECK, status="damaged", detail="bad", by="decode-check")
        session.commit()
        assert decode_revisions(session, recording.id) == 2


def test_undecoded_ids_are_archived_media_of_the_kinds_without_a_decode_verdict(engine):
    with Session(engine) as session:
        video = _recording(session, 1)
        photo = _recording(session, 2, media_kind="photo", state="verified")
        decoded = _recording(session, 3)
        _recording(session, 4, state="staged")
        _recording(session, 5, media_kind="other")
        record_integrity(session, decoded, check=DECODE_CHECK, status="ok", detail="decoded", by="decode-check")
        session.commit()
        assert undecoded_ids(session, media_kinds=("video", "audio", "photo")) == [video.id, photo.id]
        assert undecoded_ids(session, media_kinds=["photo"]) == [photo.id]
        assert undecoded_ids(session, media_kinds=()) == []


def test_sightings_of_dock_are_that_docks_sightings_in_order(engine):
    with Session(engine) as session:
        dock, other_dock = _dock(session), _dock(session)
        a, b = _recording(session, 1), _recording(session, 2)
        first = _sighting(session, a, dock, "DCIM/0001.MP4")
        _sighting(session, a, other_dock, "DCIM/0009.MP4")
        second = _sighting(session, b, dock, "DCIM/0002.MP4")
        session.commit()
        assert [s.id for s in sightings_of_dock(session, dock)] == [first.id, second.id]
        assert sightings_of_dock(session, other_dock + 1) == []


def test_sightings_at_a_device_path_of_one_recording_and_the_latest_of_any(engine):
    with Session(engine) as session:
        dock = _dock(session)
        a, b = _recording(session, 1), _recording(session, 2)
        of_a = _sighting(session, a, dock, "DCIM/0001.MP4")
        latest = _sighting(session, b, dock, "DCIM/0001.MP4", cleared_at=T0)
        _sighting(session, a, dock, "DCIM/0002.MP4")
        session.commit()
        assert a.id is not None and b.id is not None
        found = sighting_at(session, a.id, device_serial=SERIAL, device_path="DCIM/0001.MP4")
        assert found is not None and found.id == of_a.id
        assert sighting_at(session, b.id, device_serial=SERIAL, device_path="DCIM/0002.MP4") is None
        assert sighting_at(session, a.id, device_serial="OTHER", device_path="DCIM/0001.MP4") is None
        last = last_sighting_at(session, device_serial=SERIAL, device_path="DCIM/0001.MP4")
        assert last is not None and last.id == latest.id
        assert last_sighting_at(session, device_serial=SERIAL, device_path="DCIM/0003.MP4") is None


def _write_is_blocked(engine, recording_id: int) -> bool:
    """Whether another connection is kept from writing the recording (PostgreSQL: its row; SQLite: the file)."""
    if engine.dialect.name == "sqlite":
        other = sqlite3.connect(engine.url.database, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return True
        else:
            other.rollback()
            return False
        finally:
            other.close()
    with engine.connect() as conn:
        try:
            conn.execute(text("SELECT 1 FROM recording WHERE id = :id FOR UPDATE NOWAIT"), {"id": recording_id})
            return False
        except OperationalError:
            return True
        finally:
            conn.rollback()


def _head_is_locked(engine) -> bool:
    with engine.connect() as conn:
        try:
            conn.execute(text("SELECT 1 FROM custody_head WHERE id = 1 FOR UPDATE NOWAIT"))
            return False
        except OperationalError:
            return True
        finally:
            conn.rollback()


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements *engine* sends inside the block, whitespace folded."""
    statements: list[str] = []

    def note(conn, cursor, statement, *args):
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_lock_recording_takes_the_custody_head_then_the_row(engine):
    with Session(engine) as session:
        recording = _recording(session, 1)
        recording_id = recording.id
        assert recording_id is not None
        session.commit()
    with Session(engine) as session:
        with _statements(engine) as statements:
            locked = lock_recording(session, recording_id)
        assert (locked.id, locked.sha256) == (recording_id, f"{1:064x}")
        # The custody head first, as every custody writer takes it (no deadlock with a dock), then the row
        assert "custody_head" in statements[0]
        assert statements[1].startswith("SELECT recording.")
        if engine.dialect.name != "sqlite":
            # FOR NO KEY UPDATE: a row inserted meanwhile referring to this one (a redacted copy) takes a key-share
            # lock that FOR UPDATE would wait for (a deadlock a review found), and it still blocks every writer
            assert statements[1].endswith("FOR NO KEY UPDATE")
            assert _head_is_locked(engine)
        assert _write_is_blocked(engine, recording_id)
        session.rollback()
        assert not _write_is_blocked(engine, recording_id)
        with pytest.raises(NoResultFound):
            lock_recording(session, recording_id + 1)


def test_lock_recording_state_takes_the_custody_head_then_the_row(engine):
    # Given a recording whose retention this session has changed, not yet flushed
    with Session(engine) as session:
        recording_id = _recording(session, 1, state="staged").id
        assert recording_id is not None
        session.commit()
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        recording.retain_until = T0 + timedelta(days=30)
        session.add(recording)
        # When its state is read under the lock
        with _statements(engine) as statements:
            assert lock_recording_state(session, recording_id) == "staged"
        # Then the custody head is taken first, the pending change is written after it, then the row is read
        assert "custody_head" in statements[0]
        assert statements[1].startswith("UPDATE recording")
        assert statements[2].startswith("SELECT recording.state")
        if engine.dialect.name != "sqlite":
            assert statements[2].endswith("FOR NO KEY UPDATE")
            assert _head_is_locked(engine)
        assert _write_is_blocked(engine, recording_id)
        session.rollback()
        assert not _write_is_blocked(engine, recording_id)
        with pytest.raises(NoResultFound):
            lock_recording_state(session, recording_id + 1)
