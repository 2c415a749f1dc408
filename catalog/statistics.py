"""Archive-wide figures: the supervisors' statistics (the web page and /api/statistics) and the operational
counts behind /metrics and /health.

Each function reads; none changes the catalogue. Figures over recordings count only those still kept
(staged, archived, verified), within the caller's scope when one is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict

from sqlalchemy import String, and_, case, cast, func, text
from sqlmodel import Session, col, select

from catalog.access import EVERYTHING, Scope, ambiguous_unit_names, scope_clause
from catalog.models import IN_ARCHIVE, MediaKind, Officer, Recording, RecordingState
from catalog.periods import Period
from catalog.sensitivity import CLASSES

__all__ = ["GroupFigures", "StagedBacklog", "Statistics", "check_catalogue", "recordings_by_state",
           "staged_backlog", "statistics", "unit_members"]

#: States of recordings the archive still holds (disposed-of ones are not counted).
KEPT_STATES = (RecordingState.STAGED.value, RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)
#: What a recording figure counts: what officers recorded, never a text record attached to a case.
RECORDED = col(Recording.media_kind) != MediaKind.DOCUMENT.value
#: Rows per grouping (officers, stations, units); days go back at most DAYS_SHOWN.
GROUP_ROWS = 20
DAYS_SHOWN = 30
#: A period longer than this is counted by month, not by day (a year's 365 bars read as nothing).
LONGEST_BY_DAY = 92
#: Disposals counted as upcoming: retention ending within this many days.
UPCOMING_DAYS = 30


class GroupFigures(TypedDict, total=False):
    key: Required[str]  # the officer number, station code, unit number or day (YYYY-MM-DD); "-" for none
    label: str  # by_unit only: the unit's name (with its number where two units carry it)
    count: Required[int]  # recordings
    hours: Required[float]  # their total duration in hours, rounded to 0.01
    tagged: Required[int]  # of them, those with a case number


class Statistics(TypedDict):
    total: int  # recordings kept (what officers recorded: no text record)
    hours: float  # their total duration, rounded to 0.01
    documents: int  # text records kept (attached to cases), counted apart
    tagged_share: float  # share of them with a case number, 0..1 rounded to 0.001
    pending_archive: int  # staged: not yet in WORM storage
    storage_bytes: int  # their total size
    upcoming_disposals_30d: int  # archived or verified, not on hold, retention ending within 30 days
    integrity: dict[str, int]  # integrity status -> recordings
    by_class: dict[str, int]  # sensitivity class -> kept recordings (every class, 0 where none)
    by_officer: list[GroupFigures]  # the GROUP_ROWS with most recordings, most first
    by_station: list[GroupFigures]
    by_unit: list[GroupFigures]
    by_day: list[GroupFigures]  # the period's days (or months) with recordings, else the latest DAYS_SHOWN
    by_day_unit: str  # "day", or "month" for a period longer than LONGEST_BY_DAY days
    scope: str  # what the figures cover, in words (Scope.describe)
    period: dict[str, str] | None  # the period asked for (kind, first, last), or None for all time
    unit: str | None  # the unit drilled into, or None


def _local_day(session: Session, zone: str) -> Any:
    """The calendar day of a recording's capture on *zone*'s clock (a recording at 00:30 +08:00 is that day's,
    not the day before's as its UTC date says)."""
    if session.get_bind().dialect.name == "postgresql":  # stored naive UTC: read as UTC, then on the zone's clock
        return func.date(func.timezone(zone, func.timezone("UTC", Recording.captured_start)))
    return func.agency_date(Recording.captured_start, zone)  # catalog.db registers it on every SQLite connection


def _grouped(session: Session, key: Any, scoped: list[Any], limit: int = GROUP_ROWS) -> list[GroupFigures]:
    hours = func.coalesce(func.sum(Recording.duration_s), 0) / 3600.0
    tagged = func.sum(case((col(Recording.case_number).is_not(None), 1), else_=0))
    rows = session.execute(select(key, func.count(), hours, tagged)
                           .where(col(Recording.state).in_(KEPT_STATES), RECORDED, *scoped)
                           .group_by(key).order_by(func.count().desc(), key).limit(limit))
    return [{"key": str(k) if k not in (None, "") else "-", "count": int(n), "hours": round(float(h), 2),
             "tagged": int(t or 0)} for k, n, h, t in rows]


def _totals(session: Session, scoped: list[Any], now: datetime) -> dict[str, Any]:
    kept = col(Recording.state).in_(KEPT_STATES)
    total, tagged, documents, seconds = session.execute(select(
        func.sum(case((RECORDED, 1), else_=0)),
        func.sum(case((and_(RECORDED, col(Recording.case_number).is_not(None)), 1), else_=0)),
        func.sum(case((RECORDED, 0), else_=1)),
        func.sum(case((RECORDED, func.coalesce(Recording.duration_s, 0)), else_=0))).where(kept, *scoped)).one()
    total, tagged, documents = int(total or 0), int(tagged or 0), int(documents or 0)
    size = session.execute(select(func.coalesce(func.sum(Recording.size_bytes), 0)).where(kept, *scoped)).scalar_one()
    pending = session.execute(select(func.count()).where(Recording.state == RecordingState.STAGED.value,
                                                         *scoped)).scalar_one()
    upcoming = session.execute(select(func.count()).where(
        col(Recording.state).in_(IN_ARCHIVE),
        col(Recording.retain_until) <= now + timedelta(days=UPCOMING_DAYS), col(Recording.legal_hold).is_(False),
        *scoped)).scalar_one()
    integrity = session.execute(select(Recording.integrity_status, func.count()).where(kept, RECORDED, *scoped)
                                .group_by(Recording.integrity_status)).all()
    return {"total": total, "hours": round(float(seconds or 0) / 3600, 2), "documents": documents,
            "tagged_share": round(tagged / total, 3) if total else 0.0,
            "pending_archive": int(pending), "storage_bytes": int(size), "upcoming_disposals_30d": int(upcoming),
            "integrity": {str(k): int(v) for k, v in integrity}}


def unit_members(unit: str) -> Any:
    """The officer numbers of *unit*: the unit numbered so, or else the one unit named so (a name two units carry,
    every 大队's 一中队, names neither: catalog.access.ambiguous_unit_names)."""
    numbered = select(Officer.number).where(Officer.unit_number == unit)
    named = select(Officer.number).where(Officer.unit_name == unit,
                                         col(Officer.unit_name).not_in(ambiguous_unit_names([unit])),
                                         ~select(Officer.number).where(Officer.unit_number == unit).exists())
    return numbered.union(named)


def _by_unit(session: Session, scoped: list[Any], rows: int) -> list[GroupFigures]:
    """Recordings per unit, told apart by unit number (two 一中队 of two 大队 are two rows), each named
    "<name> (<number>)" where its name is not unique, else by its name; the number stays the row's key."""
    number = select(Officer.unit_number).where(Officer.number == Recording.officer_number).scalar_subquery()
    figures = _grouped(session, number, scoped, rows)
    names: dict[str, set[str]] = {}
    for unit_number, unit_name in session.execute(select(Officer.unit_number, Officer.unit_name).distinct()):
        if unit_number:
            names.setdefault(str(unit_number), set()).add(str(unit_name or ""))
    carriers: dict[str, int] = {}
    for unit_names in names.values():
        for name in unit_names:
            carriers[name] = carriers.get(name, 0) + 1
    for row in figures:
        name = min(names.get(row["key"], {""}))
        row["label"] = name if name and carriers.get(name) == 1 else (f"{name} ({row['key']})" if name else row["key"])
    return figures


def statistics(session: Session, scope: Scope = EVERYTHING, *, now: datetime, zone: str = "UTC",
               period: Period | None = None, unit: str | None = None, rows: int = GROUP_ROWS) -> Statistics:
    """Every figure of the statistics page over the recordings in *scope* (a supervisor with units sees their
    units'); *now* is the moment upcoming disposals are counted from, and days are *zone*'s calendar days (the
    agency's, EVIDENCE_STATION_TZ). Recording figures count what officers recorded, never a text record
    (`documents` counts those); storage, the archive backlog and upcoming disposals cover everything kept.
    *period*: only what was captured in it (its calendar days in *zone*; longer than LONGEST_BY_DAY days, counted
    by month); *unit*: only its officers' (unit_members: the drill-down from a unit to its officers); *rows*: rows
    per grouping. Without a period, the days are the DAYS_SHOWN before the newest recording's."""
    clause = scope_clause(scope)
    scoped = [] if clause is None else [clause]
    if period is not None:
        start, end = period.bounds(zone)
        scoped += [col(Recording.captured_start) >= start, col(Recording.captured_start) < end]
    if unit:
        scoped.append(col(Recording.officer_number).in_(unit_members(unit)))
    day = _local_day(session, zone)
    by_month = period is not None and period.days > LONGEST_BY_DAY
    bucket = func.substr(cast(day, String), 1, 7) if by_month else day
    window = scoped
    if period is None:  # the latest days only: the day of every recording is not worked out on each page
        newest = session.execute(select(func.max(Recording.captured_start)).where(
            col(Recording.state).in_(KEPT_STATES), RECORDED, *scoped)).scalar_one()
        if newest is not None:
            window = [*scoped, col(Recording.captured_start) >= newest - timedelta(days=DAYS_SHOWN + 1)]
    by_day = [r for r in _grouped(session, bucket, window, 4000) if r["key"] != "-"]
    by_day.sort(key=lambda r: r["key"])
    totals = _totals(session, scoped, now)
    return {
        "total": totals["total"], "hours": totals["hours"], "documents": totals["documents"],
        "tagged_share": totals["tagged_share"],
        "pending_archive": totals["pending_archive"], "storage_bytes": totals["storage_bytes"],
        "upcoming_disposals_30d": totals["upcoming_disposals_30d"], "integrity": totals["integrity"],
        "by_class": _by_class(session, scoped),
        "by_officer": _grouped(session, Recording.officer_number, scoped, rows),
        "by_station": _grouped(session, Recording.station_code, scoped, rows),
        "by_unit": _by_unit(session, scoped, rows),
        "by_day": by_day if period is not None else by_day[-DAYS_SHOWN:],
        "by_day_unit": "month" if by_month else "day", "scope": scope.describe(),
        "period": period.as_json() if period is not None else None, "unit": unit or None,
    }


def _by_class(session: Session, scoped: list[Any]) -> dict[str, int]:
    counted = {str(name): int(n) for name, n in session.execute(select(Recording.sensitivity, func.count()).where(
        col(Recording.state).in_(KEPT_STATES), RECORDED, *scoped).group_by(Recording.sensitivity))}
    return {name: counted.get(name, 0) for name in CLASSES}


def recordings_by_state(session: Session) -> dict[str, int]:
    """Recordings in the catalogue counted by state (states no recording is in are absent)."""
    return {str(state): int(n) for state, n in session.execute(
        select(Recording.state, func.count()).group_by(Recording.state))}


@dataclass(frozen=True)
class StagedBacklog:
    """Recordings of every station still staged (not in WORM storage), and when the oldest was ingested."""

    count: int
    oldest: datetime | None

    def age_s(self, now: datetime) -> float:
        """Seconds the oldest staged recording has waited at *now* (0 when none waits)."""
        return max((now - self.oldest).total_seconds(), 0.0) if self.oldest else 0.0


def staged_backlog(session: Session) -> StagedBacklog:
    """The archive-wide staged backlog (catalog.alarms.station_backlog has one station's)."""
    count, oldest = session.execute(select(func.count(), func.min(Recording.ingested_at)).where(
        Recording.state == RecordingState.STAGED.value)).one()
    return StagedBacklog(count=int(count or 0), oldest=oldest)


def check_catalogue(session: Session) -> None:
    """Ask the database the cheapest question there is; raises (sqlalchemy's error) when it does not answer."""
    session.execute(text("SELECT 1"))
