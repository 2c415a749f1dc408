"""The retention pass after a case link changes (catalog.case_links), on SQLite and PostgreSQL with a local WORM
store."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from catalog import (
    DEFAULT_CASE_PATTERN,
    DEFAULT_CASE_TYPES,
    Recording,
    RetentionPolicy,
    create_case,
    link_recording,
)
from catalog.case_links import retain_after_link_change
from catalog.case_models import Case
from catalog.recordings import ensure_station
from catalog.types import utcnow

POLICY = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")


def _stored(session: Session, store, tmp_path: Path, n: int, *, in_store: bool = True) -> Recording:
    """An archived recording; its bytes in *store* unless *in_store* is false."""
    data = f"recording {n} {tmp_path}".encode() * 50
    sha = hashlib.sha256(data).hexdigest()
    now = utcnow()
    retain_until = now + timedelta(days=180)
    if in_store:
        path = tmp_path / f"{n}.bin"
        path.write_bytes(data)
        retain_until = store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=retain_until).retain_until
    recording = Recording(sha256=sha, size_bytes=len(data), media_kind="video", original_name=f"clip{n}.mp4",
                          station_code="station-1", captured_start=now - timedelta(days=1, minutes=1),
                          captured_end=now - timedelta(days=1), time_source="container", integrity_status="ok",
                          state="verified", ingested_at=now, archived_at=now, retain_until=retain_until,
                          store_name=store.name, store_key=sha, purpose="巡查")
    session.add(recording)
    session.flush()
    return recording


def _open_case(session: Session) -> Case:
    today = datetime.now(UTC).date()
    return create_case(session, number="AB-2026-00042", title="无照经营", case_type="penalty-general", unit="城管",
                       opened_on=today - timedelta(days=30), by="clerk:李四", case_pattern=DEFAULT_CASE_PATTERN,
                       policy=POLICY, today=today)


def test_retain_after_link_change_holds_the_linked_recordings_on_the_store_and_only_them(engine, store, tmp_path):
    with Session(engine) as session:
        # Given two stored recordings, both linked to an open case (the link committed)
        ensure_station(session, "station-1")
        session.flush()
        linked, also_linked = _stored(session, store, tmp_path, 1), _stored(session, store, tmp_path, 2)
        case = _open_case(session)
        link_recording(session, case, linked, purpose="证明违法事实", by="clerk:李四")
        link_recording(session, case, also_linked, purpose="证明违法事实", by="clerk:李四")
        session.commit()
        assert linked.id is not None

        # When the retention pass runs for the first one only
        changes = retain_after_link_change(session, store, POLICY, [linked.id], by="clerk:李四")

        # Then it is held, in the catalogue and on the store; the other waits for its own pass
        assert [(c.recording_id, c.new_hold, c.error) for c in changes] == [(linked.id, True, None)]
        assert store.head(linked.sha256).legal_hold is True
        session.refresh(linked)
        session.refresh(also_linked)
        assert linked.legal_hold is True and also_linked.legal_hold is False
        assert store.head(also_linked.sha256).legal_hold is False
        # and a second pass finds nothing to change
        assert retain_after_link_change(session, store, POLICY, [linked.id], by="clerk:李四") == []


def test_retain_after_link_change_with_no_recordings_changes_nothing(engine, store, tmp_path):
    with Session(engine) as session:
        ensure_station(session, "station-1")
        session.flush()
        recording = _stored(session, store, tmp_path, 1)
        link_recording(session, _open_case(session), recording, purpose="证明违法事实", by="clerk:李四")
        session.commit()
        assert retain_after_link_change(session, store, POLICY, [], by="clerk:李四") == []
        session.refresh(recording)
        assert recording.legal_hold is False and store.head(recording.sha256).legal_hold is False


def test_retain_after_link_change_reports_a_store_refusal_on_the_change(engine, store, tmp_path):
    with Session(engine) as session:
        # Given a linked recording whose object the store does not have
        ensure_station(session, "station-1")
        session.flush()
        recording = _stored(session, store, tmp_path, 1, in_store=False)
        link_recording(session, _open_case(session), recording, purpose="证明违法事实", by="clerk:李四")
        session.commit()
        assert recording.id is not None

        changes = retain_after_link_change(session, store, POLICY, [recording.id], by="clerk:李四")

        # Then the change carries the store's error, and the catalogue does not claim a hold the store lacks
        assert [(c.recording_id, c.new_hold) for c in changes] == [(recording.id, True)]
        assert changes[0].error is not None and recording.sha256 in changes[0].error
        session.refresh(recording)
        assert recording.legal_hold is False
