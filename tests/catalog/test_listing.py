"""The command line's small catalog reads (catalog.listing), on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session

from catalog import DEFAULT_CASE_PATTERN, DEFAULT_CASE_TYPES, Recording, RetentionPolicy, create_case
from catalog.case_models import Disposal, DisposalBatch
from catalog.cases import case_number_exists
from catalog.listing import count_tombstones, disposal_batches
from catalog.models import DockSession, Sighting
from catalog.recordings import ensure_station
from catalog.sightings import dock_session_recording_ids

T0 = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
POLICY = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")


def _recording(session: Session, n: int) -> Recording:
    recording = Recording(sha256=f"{n:064x}", size_bytes=100 + n, media_kind="video", original_name=f"clip{n}.mp4",
                          station_code="station-1", captured_start=T0, captured_end=T0 + timedelta(seconds=30),
                          time_source="filename", integrity_status="ok", state="archived", ingested_at=T0,
                          retain_until=T0 + timedelta(days=182))
    session.add(recording)
    session.flush()
    return recording


def _dock(session: Session) -> DockSession:
    dock = DockSession(station_code="station-1", device_serial="CAM-1", profile="generic", source_path="/media/cam",
                       started_at=T0)
    session.add(dock)
    session.flush()
    return dock


def _sighting(session: Session, recording: Recording, dock: DockSession, path: str) -> None:
    assert recording.id is not None and dock.id is not None
    session.add(Sighting(recording_id=recording.id, dock_session_id=dock.id, device_serial="CAM-1", device_path=path,
                         size_bytes=recording.size_bytes, mtime_ns=0, seen_at=T0))
    session.flush()


def _batch(session: Session) -> DisposalBatch:
    batch = DisposalBatch(status="done", created_by="clerk-li", created_at=T0)
    session.add(batch)
    session.flush()
    return batch


def _tombstone(session: Session, batch: DisposalBatch, recording: Recording) -> None:
    assert recording.id is not None and batch.id is not None
    session.add(Disposal(recording_id=recording.id, batch_id=batch.id, sha256=recording.sha256,
                         size_bytes=recording.size_bytes, original_name=recording.original_name, media_kind="video",
                         rule="routine", retain_until=T0, disposed_at=T0, operator="clerk-li"))
    session.flush()


def test_dock_session_recording_ids_lists_each_recording_once_in_id_order_and_filters_by_device_path(engine):
    with Session(engine) as session:
        # Given two dock sessions; the first saw recording 2 at two paths and recording 1 at one
        ensure_station(session, "station-1")
        session.flush()
        first, other = _dock(session), _dock(session)
        one, two, three = _recording(session, 1), _recording(session, 2), _recording(session, 3)
        _sighting(session, two, first, "DCIM/b.mp4")
        _sighting(session, two, first, "DCIM/copy-of-b.mp4")
        _sighting(session, one, first, "DCIM/a.mp4")
        _sighting(session, three, other, "DCIM/c.mp4")
        assert first.id is not None
        # Then all of the session's recordings, once each, by id; or only those seen at the paths asked for
        assert dock_session_recording_ids(session, first.id) == [one.id, two.id]
        assert dock_session_recording_ids(session, first.id, device_paths=("DCIM/copy-of-b.mp4",)) == [two.id]
        assert dock_session_recording_ids(session, first.id, device_paths=("DCIM/c.mp4",)) == []
        assert dock_session_recording_ids(session, 9999) == []


def test_case_number_exists_only_for_a_registered_case(engine):
    with Session(engine) as session:
        create_case(session, number="京朝城管罚字〔2026〕第00123号", title="无照经营", case_type="penalty-general",
                    unit="城管", opened_on=date(2026, 11, 1), by="clerk:李四", case_pattern=DEFAULT_CASE_PATTERN,
                    policy=POLICY, today=date(2026, 11, 23))
        session.commit()
        assert case_number_exists(session, "京朝城管罚字〔2026〕第00123号") is True
        assert case_number_exists(session, "京朝城管罚字〔2026〕第00124号") is False
        assert case_number_exists(session, "1") is False  # a recording id is not a case


def test_disposal_batches_are_listed_newest_first(engine):
    with Session(engine) as session:
        assert disposal_batches(session) == []
        older, newer = _batch(session), _batch(session)
        session.commit()
        assert [b.id for b in disposal_batches(session)] == [newer.id, older.id]


def test_count_tombstones_counts_only_the_batch_s_disposals_of_the_recordings_asked_for(engine):
    with Session(engine) as session:
        # Given a batch that disposed of recordings 1 and 2, and another batch that disposed of 3
        ensure_station(session, "station-1")
        session.flush()
        one, two, three = _recording(session, 1), _recording(session, 2), _recording(session, 3)
        batch, other = _batch(session), _batch(session)
        _tombstone(session, batch, one)
        _tombstone(session, batch, two)
        _tombstone(session, other, three)
        session.commit()
        assert one.id is not None and two.id is not None and three.id is not None
        # Then only this batch's tombstones among the ids given count
        assert count_tombstones(session, batch, [one.id, two.id, three.id]) == 2
        assert count_tombstones(session, batch, [two.id]) == 1
        assert count_tombstones(session, other, [one.id, two.id]) == 0
        assert count_tombstones(session, batch, []) == 0
