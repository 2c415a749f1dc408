"""Small reads the command line needs and no catalog module answered yet: which recordings a dock session saw,
whether a case number is registered, every disposal batch, and how many of a batch's recordings left a
tombstone.

They only read, so `evidence …` commands hold no SQL of their own (the web's listings are in
catalog.listings).
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, func, select

from catalog.case_models import Disposal, DisposalBatch

__all__ = ["count_tombstones", "disposal_batches"]


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
