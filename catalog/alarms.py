"""Operational alarms a person must see: recordings that have not reached WORM storage in time.

A recording stays `staged` (hashed, catalogued, but only on the station's disk) while the archive is away; that
is store-and-forward working as designed. Staged for longer than the configured time (EVIDENCE_STAGED_ALARM_S,
default one hour) it is an alarm: the station status, `evidence station status`, the web app's `/health` and the
`evidence_staged_overdue_recordings` Prometheus gauge all show it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from catalog.models import Recording, RecordingState

__all__ = ["StagedAlarm", "staged_overdue"]

#: Recordings named in an alarm (the count covers all of them).
NAMED = 20


@dataclass(frozen=True)
class StagedAlarm:
    older_than_s: float
    count: int
    oldest: datetime | None
    recording_ids: list[int] = field(default_factory=list)  # the NAMED oldest

    @property
    def raised(self) -> bool:
        return self.count > 0

    def message(self) -> str:
        if not self.raised:
            return f"no recording has waited in staging longer than {self.older_than_s:g} s"
        assert self.oldest is not None
        return (f"{self.count} recording(s) still staged (not in WORM storage) after more than "
                f"{self.older_than_s:g} s; the oldest since {self.oldest.isoformat(timespec='seconds')} "
                f"(ids {', '.join(map(str, self.recording_ids))}); check the archive store and the workers")

    def as_json(self) -> dict[str, Any]:
        return {"kind": "staged_overdue", "raised": self.raised, "count": self.count,
                "older_than_s": self.older_than_s, "oldest": self.oldest.isoformat() if self.oldest else None,
                "recording_ids": self.recording_ids, "message": self.message()}


def staged_overdue(session: Session, *, now: datetime, older_than_s: float) -> StagedAlarm:
    """Recordings staged since before *now* − *older_than_s*."""
    cutoff = now - timedelta(seconds=older_than_s)
    where = (Recording.state == RecordingState.STAGED.value, col(Recording.ingested_at) < cutoff)
    count, oldest = session.exec(select(func.count(), func.min(Recording.ingested_at)).where(*where)).one()
    ids = [rid for rid in session.exec(select(Recording.id).where(*where)
                                       .order_by(col(Recording.ingested_at), col(Recording.id)).limit(NAMED))
           if rid is not None]
    return StagedAlarm(older_than_s=older_than_s, count=int(count or 0), oldest=oldest, recording_ids=ids)
