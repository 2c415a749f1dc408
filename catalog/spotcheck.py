"""双随机 spot checks: a reproducible random sample of recordings, and the reviewer's outcome for each.

`draw` is pure: the same population and seed always give the same sample, so an auditor can redraw a
past check from its recorded criteria and seed and confirm nobody picked the recordings by hand.
"""
from __future__ import annotations

import hashlib
import random
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.errors import CatalogError
from catalog.models import Officer, Recording, RecordingState, SpotCheck, SpotCheckItem

__all__ = ["OUTCOMES", "SpotCheckCriteria", "SpotCheckError", "draw", "new_spot_check", "population",
           "record_outcome"]

OUTCOMES = ("compliant", "issue")
MAX_SAMPLE = 500


class SpotCheckError(CatalogError):
    """A spot check cannot be drawn or reviewed as asked."""


@dataclass(frozen=True)
class SpotCheckCriteria:
    unit: str | None = None  # officer's unit number or name
    officer: str | None = None  # officer number
    kind: str | None = None
    start: datetime | None = None  # captured at or after
    end: datetime | None = None  # captured before

    def as_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "officer": self.officer, "kind": self.kind,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}


def draw(population_ids: list[int], size: int, seed: str) -> list[int]:
    """The sample: *size* ids from the sorted population, chosen by a generator seeded with SHA-256(seed)."""
    ordered = sorted(set(population_ids))
    rng = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big"))
    return sorted(rng.sample(ordered, min(size, len(ordered))))


def population(session: Session, criteria: SpotCheckCriteria) -> list[int]:
    query = select(Recording.id).where(col(Recording.state).in_((RecordingState.ARCHIVED.value,
                                                                   RecordingState.VERIFIED.value)))
    if criteria.officer:
        query = query.where(Recording.officer_number == criteria.officer)
    if criteria.kind:
        query = query.where(Recording.media_kind == criteria.kind)
    if criteria.start:
        query = query.where(col(Recording.captured_start) >= criteria.start)
    if criteria.end:
        query = query.where(col(Recording.captured_start) < criteria.end)
    if criteria.unit:
        units = select(Officer.number).where((Officer.unit_number == criteria.unit)
                                             | (Officer.unit_name == criteria.unit))
        query = query.where(col(Recording.officer_number).in_(units))
    return [rid for rid in session.exec(query) if rid is not None]


def new_spot_check(session: Session, criteria: SpotCheckCriteria, size: int, *, by: str, now: datetime,
                   seed: str | None = None) -> SpotCheck:
    if not 1 <= size <= MAX_SAMPLE:
        raise SpotCheckError(f"a spot check draws 1 to {MAX_SAMPLE} recordings, not {size}")
    ids = population(session, criteria)
    if not ids:
        raise SpotCheckError(f"no archived recording matches {criteria.as_json()}")
    seed = seed or secrets.token_hex(16)
    chosen = draw(ids, size, seed)
    check = SpotCheck(created_by=by, created_at=now, seed=seed, criteria=criteria.as_json(), population=len(ids),
                      sample_size=len(chosen))
    session.add(check)
    session.flush()
    assert check.id is not None
    session.add_all(SpotCheckItem(check_id=check.id, recording_id=rid) for rid in chosen)
    append_event(session, CustodyKind.SPOT_CHECK_DRAWN, actor=by, details={
        "check": check.id, "criteria": check.criteria, "seed": seed, "population": len(ids), "recordings": chosen})
    session.commit()
    return check


def record_outcome(session: Session, item_id: int, *, outcome: str, notes: str, by: str,
                   now: datetime) -> SpotCheckItem:
    if outcome not in OUTCOMES:
        raise SpotCheckError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if outcome == "issue" and not notes.strip():
        raise SpotCheckError("describe the issue found")
    item = session.get(SpotCheckItem, item_id)
    if item is None:
        raise SpotCheckError(f"no spot-check item {item_id}")
    item.outcome, item.notes, item.reviewed_by, item.reviewed_at = outcome, notes.strip(), by, now
    session.add(item)
    append_event(session, CustodyKind.REVIEWED, actor=by, recording_id=item.recording_id, at=now, details={
        "check": item.check_id, "outcome": outcome, "notes": item.notes})
    session.commit()
    return item
