"""Small reads the command line needs and no catalog module answered yet: which recordings a dock session saw,
whether a case number is registered, every disposal batch, and how many of a batch's recordings left a
tombstone.

They only read, so `evidence …` commands hold no SQL of their own (the web's listings are in
catalog.listings).
"""
from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlmodel import Session, col, func, select

from catalog.case_models import Disposal, DisposalBatch
from catalog.models import Sighting

__all__ = ["count_tombstones", "disposal_batches", "dock_session_recording_ids"]


def dock_session_recording_ids(session: Session, dock_session_id: int, *,
                               device_paths: Collection[str] = ()) -> list[int]:
    """The recordings seen in dock session *dock_session_id*, in id order; with *device_paths*, only those seen
    at one of these paths on the device."""
    sightings = session.exec(select(Sighting).where(Sighting.dock_session_id == dock_session_id))
    return sorted({s.recording_id for s in sightings if not device_paths or s.device_path in device_paths})


def disposal_batches(session: Session) -> list[DisposalBatch]:
    """Every disposal batch, newest first."""
    return list(session.exec(select(DisposalBatch).order_by(col(DisposalBatch.id).desc())))


def count_tombstones(session: Session, batch: DisposalBatch, recording_ids: Iterable[int]) -> int:
    """How many of *recording_ids* were disposed of by *batch* (their Disposal rows, the tombstones)."""
    wanted = list(recording_ids)
    if not wanted:
        return 0
    query = select(func.count()).select_from(Disposal).where(Disposal.batch_id == batch.id,
                                                             col(Disposal.recording_id).in_(wanted))
    return int(session.exec(query).one())
