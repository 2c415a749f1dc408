"""Operational alarms a person must see: recordings that have not reached WORM storage in time.

A recording stays `staged` (hashed, catalogued, but only on the station's disk) while the archive is away; that
is store-and-forward working as designed. Staged for longer than the configured time (EVIDENCE_STAGED_ALARM_S,
default one hour) it is an alarm: the station status, `evidence station status`, the web app's `/health` and the
`evidence_staged_overdue_recordings` Prometheus gauge all show it.

`station_backlog` and `failures_by_stage` feed the gauges of `ingest.station.health` (a station's own endpoint) and
the web app's `/metrics` (the whole archive): counts and ages, so an alert rule can say how long something has
waited rather than only that it has.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from catalog.custody import CustodyKind
from catalog.models import CustodyEvent, DockSession, Recording, RecordingState

__all__ = ["StagedAlarm", "StationBacklog", "failures_by_stage", "staged_overdue", "station_backlog"]

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

    def message(self, *, with_ids: bool = True) -> str:
        if not self.raised:
            return f"no recording has waited in staging longer than {self.older_than_s:g} s"
        assert self.oldest is not None
        ids = f" (ids {', '.join(map(str, self.recording_ids))})" if with_ids else ""
        return (f"{self.count} recording(s) still staged (not in WORM storage) after more than "
                f"{self.older_than_s:g} s; the oldest since {self.oldest.isoformat(timespec='seconds')}{ids}; "
                "check the archive store and the workers")

    def as_json(self, *, with_ids: bool = True) -> dict[str, Any]:
        """The alarm; without *with_ids*, for someone not signed in: how many and since when, not which."""
        out = {"kind": "staged_overdue", "raised": self.raised, "count": self.count,
               "older_than_s": self.older_than_s, "oldest": self.oldest.isoformat() if self.oldest else None,
               "recording_ids": self.recording_ids, "message": self.message(with_ids=with_ids)}
        if not with_ids:
            out.pop("recording_ids")
        return out


def staged_overdue(session: Session, *, now: datetime, older_than_s: float, station: str | None = None,
                   within: ColumnElement[bool] | None = None) -> StagedAlarm:
    """Recordings staged since before *now* − *older_than_s* (only *station*'s when given; only those *within*
    matches when given: a caller's scope, `catalog.access.scope_clause`)."""
    cutoff = now - timedelta(seconds=older_than_s)
    where: tuple[Any, ...] = (Recording.state == RecordingState.STAGED.value, col(Recording.ingested_at) < cutoff)
    if station is not None:
        where += (Recording.station_code == station,)
    if within is not None:
        where += (within,)
    count, oldest = session.exec(select(func.count(), func.min(Recording.ingested_at)).where(*where)).one()
    ids = [rid for rid in session.exec(select(Recording.id).where(*where)
                                       .order_by(col(Recording.ingested_at), col(Recording.id)).limit(NAMED))
           if rid is not None]
    return StagedAlarm(older_than_s=older_than_s, count=int(count or 0), oldest=oldest, recording_ids=ids)


@dataclass(frozen=True)
class StationBacklog:
    """What one station still holds: recordings only in its staging area, and dock sessions not yet ended."""

    staged: int
    staged_oldest: datetime | None
    docks_open: int

    def staged_age_s(self, now: datetime) -> float:
        """Seconds the oldest staged recording has waited (0 when none waits)."""
        return max((now - self.staged_oldest).total_seconds(), 0.0) if self.staged_oldest else 0.0


def station_backlog(session: Session, station: str) -> StationBacklog:
    """*station*'s staged recordings (count, oldest ingest time) and its open dock sessions."""
    count, oldest = session.exec(select(func.count(), func.min(Recording.ingested_at)).where(
        Recording.state == RecordingState.STAGED.value, Recording.station_code == station)).one()
    docks = session.exec(select(func.count()).select_from(DockSession).where(
        DockSession.station_code == station, col(DockSession.finished_at).is_(None))).one()
    return StationBacklog(staged=int(count or 0), staged_oldest=oldest, docks_open=int(docks or 0))


def failures_by_stage(session: Session, *, since: datetime) -> dict[str, int]:
    """`ingest_failed` custody events since *since*, counted by their "stage" ("unknown" when an event names none).

    Cheap: the kind is indexed and failures are rare; the stage is read from the event's JSON details in SQL."""
    details = CustodyEvent.__table__.c.details  # type: ignore[attr-defined]
    stage = func.coalesce(details["stage"].as_string(), "unknown")
    rows = session.execute(select(stage, func.count()).where(
        CustodyEvent.kind == CustodyKind.INGEST_FAILED.value, col(CustodyEvent.at) >= since).group_by(stage))
    return {str(name): int(n) for name, n in rows}
