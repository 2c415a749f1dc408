"""Recording coverage (全过程记录): what an officer's recorders recorded on each day of the agency's calendar, where
the gaps are, where two recordings overlap, and which recordings carry a time that cannot be trusted.

`day_coverage` is the pure decision on one day's recordings; `officers_coverage` gathers them from the catalogue
for several officers over a run of days in one query (`unit_coverage`: every officer of a unit, as a supervisor's
scope reads a unit; `officer_coverage`: one officer's days). A day is the agency's (EVIDENCE_STATION_TZ): 00:00
+08:00 to the next 00:00, so a recording from 23:50 to 00:10 is ten minutes on each day. A recording with no end
is counted as an instant; one whose time is implausible (a wrong device clock) is listed apart and not counted.

What counts: the originals of video and audio recordings (what records an action; never a photo, a text record,
a redacted copy or a device's housekeeping file), whatever their state. The query reads the partial index
`ix_recording_coverage` (officer, capture end; PostgreSQL answers it from the index alone) and, for the files
with an implausible time docked in the period, `ix_recording_implausible`.
"""
from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import CompoundSelect, Float, text, union_all
from sqlalchemy import select as select_columns
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select

from catalog.access import EVERYTHING, Scope, unit_members
from catalog.models import COVERED, Officer, Recording

__all__ = ["MAX_DAYS", "SLACK_S", "DayCoverage", "DevicePeriod", "ImplausibleFile", "OfficerCoverage", "Span",
           "UnitCoverage", "day_bounds", "day_coverage", "officer_coverage", "officers_coverage", "unit_coverage",
           "unit_officers"]

#: The longest run of days asked at once (a month); the web page and the API refuse more.
MAX_DAYS = 31
#: Recorders cut a long recording into files whose times, rounded to the second, may leave or share up to this
#: much between one file and the next: such a gap or overlap is not listed (the time recorded is still exact).
SLACK_S = 2.0


class Span(NamedTuple):
    """A recording's time: [start, end), its id and the recorder that made it."""

    start: datetime
    end: datetime
    recording_id: int
    device: str | None = None
    implausible: bool = False


#: A period one recorder recorded without a break on a day (its recordings merged), clipped to the day: (device,
#: start, end, recording ids).
DevicePeriod = tuple[str | None, datetime, datetime, tuple[int, ...]]


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class DayCoverage:
    """One day of an officer's recordings. Its times are held as seconds since 1970 (UTC), as they are read from
    the catalogue and as the page draws them (a unit's month is ~20,000 periods: floats are compared, subtracted
    and collected far faster than datetimes, and plain tuples of them are never tracked by the garbage collector);
    `recorded`, `gaps`, `overlaps` and `by_device` give them as datetimes."""

    day: date
    start_epoch: float  # the day's 00:00 on the agency's clock
    end_epoch: float  # the next day's 00:00
    recorded_epoch: tuple[tuple[float, float], ...]  # merged periods with at least one recording, in order
    gaps_epoch: tuple[tuple[float, float], ...]  # between the first recording's start and the last one's end
    overlaps_epoch: tuple[tuple[float, float, int, int], ...]  # (from, to, one recording, the other)
    implausible: tuple[int, ...]  # recordings of the day whose time is not to be trusted, not counted
    devices_epoch: tuple[tuple[str | None, float, float, tuple[int, ...]], ...] = ()  # each recorder's periods

    @property
    def recorded_s(self) -> float:
        return sum(end - start for start, end in self.recorded_epoch)

    @cached_property
    def recorded(self) -> tuple[tuple[datetime, datetime], ...]:
        return tuple((_at(a), _at(b)) for a, b in self.recorded_epoch)

    @cached_property
    def gaps(self) -> tuple[tuple[datetime, datetime], ...]:
        return tuple((_at(a), _at(b)) for a, b in self.gaps_epoch)

    @cached_property
    def overlaps(self) -> tuple[tuple[datetime, datetime, int, int], ...]:
        return tuple((_at(a), _at(b), one, other) for a, b, one, other in self.overlaps_epoch)

    @cached_property
    def by_device(self) -> tuple[DevicePeriod, ...]:
        """Each recorder's periods, by device then time."""
        return tuple((device, _at(a), _at(b), ids) for device, a, b, ids in self.devices_epoch)


@dataclass(frozen=True)
class ImplausibleFile:
    """A recording whose capture time is a wrong device clock: listed apart, never counted on a day."""

    recording_id: int
    name: str
    device: str | None
    start: datetime  # what the device said (not to be trusted)
    end: datetime
    ingested_at: datetime | None  # when it was docked


@dataclass(frozen=True)
class OfficerCoverage:
    """One officer's days, and the files with an implausible time that claim a time in them or were docked in
    them."""

    number: str
    name: str
    unit_number: str
    days: tuple[DayCoverage, ...]
    implausible: tuple[ImplausibleFile, ...] = ()

    @property
    def recorded_s(self) -> float:
        return sum(d.recorded_s for d in self.days)


@dataclass(frozen=True)
class UnitCoverage:
    """A unit's officers (those in the caller's scope) and how many of its officers lie outside it."""

    unit: str
    officers: tuple[OfficerCoverage, ...]
    outside_scope: int = 0
    known: bool = True  # False: no officer belongs to the unit (or its name is two units')


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The instants *day* begins and ends on the agency's clock (the next day's 00:00). Pure."""
    tz = ZoneInfo(zone)
    return datetime.combine(day, time(), tz), datetime.combine(day + timedelta(days=1), time(), tz)


def day_coverage(spans: Iterable[Span], day: date, zone: str, *, slack_s: float = SLACK_S) -> DayCoverage:
    """*spans* on *day* (each clipped to it): the periods recorded, the gaps between them and the overlaps (a gap or
    an overlap of at most *slack_s* seconds is not listed), and each recorder's periods. Pure."""
    begin, end = day_bounds(day, zone)
    return _cover([(s.start.timestamp(), s.end.timestamp(), s.recording_id, s.device, s.implausible) for s in spans],
                  day, begin.timestamp(), end.timestamp(), slack_s)


#: A span as seconds since 1970 (DayCoverage says why): (start, end, recording id, device, implausible).
_Span = tuple[float, float, int, str | None, bool]


def _cover(spans: Sequence[_Span], day: date, begin: float, end: float, slack: float) -> DayCoverage:
    """day_coverage with the day's bounds given, in seconds since 1970."""
    clipped: list[tuple[float, float, int, str]] = []
    implausible: list[int] = []
    for start, stop, rid, device, odd in spans:
        if odd:
            if start < end and stop >= begin:
                implausible.append(rid)
        elif start < end and (stop > begin or start == stop >= begin):
            clipped.append((begin if start < begin else start, end if stop > end else stop, rid, device or ""))
    clipped.sort()  # by start, end and recording (ids are unique: devices are never compared)
    recorded: list[tuple[float, float]] = []
    overlaps: list[tuple[float, float, int, int]] = []
    running: list[tuple[float, int]] = []  # (end, recording) of those not ended yet
    devices: dict[str, list[tuple[float, float, list[int]]]] = {}
    for start, stop, rid, device in clipped:
        if recorded and start < recorded[-1][1]:  # the latest end so far: something still running
            running = [r for r in running if r[0] > start]
            overlaps += [(start, min(stop, r[0]), r[1], rid) for r in running if min(stop, r[0]) - start > slack]
        else:
            running = []
        running.append((stop, rid))
        if recorded and start <= recorded[-1][1]:
            recorded[-1] = (recorded[-1][0], max(recorded[-1][1], stop))
        else:
            recorded.append((start, stop))
        runs = devices.setdefault(device, [])
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], stop), [*runs[-1][2], rid])
        else:
            runs.append((start, stop, [rid]))
    gaps = tuple((a[1], b[0]) for a, b in itertools.pairwise(recorded) if b[0] - a[1] > slack)
    by_device = tuple((device or None, a, b, tuple(ids)) for device in sorted(devices)
                      for a, b, ids in devices[device])
    return DayCoverage(day, begin, end, tuple(recorded), gaps, tuple(overlaps), tuple(sorted(implausible)),
                       by_device)


def officer_coverage(session: Session, officer_number: str, first: date, last: date,
                     zone: str) -> list[DayCoverage]:
    """Each day from *first* to *last* of *officer_number*'s recordings (video and audio: what records an action),
    on the agency's calendar."""
    found = officers_coverage(session, [Officer(number=officer_number)], first, last, zone)
    return list(found[0].days)


def unit_officers(session: Session, unit: str, scope: Scope = EVERYTHING) -> tuple[list[Officer], int]:
    """The officers of *unit* (its number, or a name only one unit carries, as catalog.access.unit_members reads
    a supervisor's unit) that *scope* may see, by number, and how many more of them it may not."""
    members = list(session.exec(select(Officer).where(col(Officer.number).in_(unit_members([unit])))
                                .order_by(col(Officer.number))))
    if scope.everything:
        return members, 0
    visible = set(scope.officers)
    if scope.units:
        visible |= set(session.exec(unit_members(scope.units)))
    inside = [o for o in members if o.number in visible]
    return inside, len(members) - len(inside)


def unit_coverage(session: Session, unit: str, first: date, last: date, zone: str, *,
                  scope: Scope = EVERYTHING) -> UnitCoverage:
    """Every officer of *unit* that *scope* may see (unit_officers), each with their days from *first* to *last*;
    the recordings of them all read in one query."""
    officers, outside = unit_officers(session, unit, scope)
    return UnitCoverage(unit, tuple(officers_coverage(session, officers, first, last, zone)), outside,
                        known=bool(officers) or outside > 0)


def officers_coverage(session: Session, officers: Sequence[Officer], first: date, last: date,
                      zone: str) -> list[OfficerCoverage]:
    """Each of *officers* (in the order given) with their days from *first* to *last* on the agency's calendar
    and their files with an implausible time; one query for all their recordings."""
    if not officers:
        return []
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    # each day's first instant, and the last day's end
    bounds = [day_bounds(day, zone)[0] for day in days] + [day_bounds(last, zone)[1]]
    edges = [b.timestamp() for b in bounds]
    begin, end = edges[0], edges[-1]
    by_officer: dict[str, list[list[_Span]]] = {o.number: [[] for _ in days] for o in officers}
    odd: dict[str, dict[int, _Span]] = defaultdict(dict)
    seen: set[int] = set()
    for rid, number, start, stop, device, implausible in session.execute(
            _recordings_query(sorted(by_officer), bounds[0], bounds[-1])):
        if rid in seen:  # an implausible file docked in the period that also claims a time in it
            continue
        seen.add(rid)
        if stop is None or stop < start:
            stop = start
        span = (start, stop, rid, device, bool(implausible))
        if implausible:
            odd[number][rid] = span
        if not (start < end and stop >= begin):  # an implausible file docked in the period only
            continue
        on = max(bisect.bisect_right(edges, start) - 1, 0)
        until = on if stop == start else min(bisect.bisect_left(edges, stop) - 1, len(days) - 1)
        for n in range(on, until + 1):
            by_officer[number][n].append(span)
    details = _details(session, [rid for spans in odd.values() for rid in spans])
    found = []
    for officer in officers:
        spans_of = by_officer[officer.number]
        files = _files(odd.get(officer.number, {}), details)
        found.append(OfficerCoverage(officer.number, officer.name, officer.unit_number,
                                     tuple(_cover(spans_of[n], day, edges[n], edges[n + 1], SLACK_S)
                                           for n, day in enumerate(days)), files))
    return found


class _Epoch(FunctionElement[float]):
    """A stored time (naive UTC) as seconds since 1970, a float, computed by the database from the index's own
    columns: faster to read and to compare than datetimes."""

    type = Float()
    inherit_cache = True
    name = "epoch"


@compiles(_Epoch, "postgresql")
def _epoch_postgresql(element: _Epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"


@compiles(_Epoch, "sqlite")
def _epoch_sqlite(element: _Epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # stored as text, 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format): whole seconds, then the fraction exactly
    column = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {column}) AS REAL) + COALESCE(CAST(substr({column}, 20) AS REAL), 0.0))"


def _recordings_query(numbers: list[str], begin: datetime, end: datetime) -> CompoundSelect[Any]:
    """One statement for the recordings of *numbers* that touch [begin, end), and their files with an implausible
    time docked in it: (id, officer, start, end, device, implausible), times as seconds since 1970, a file of both
    twice. COVERED is written
    out as the indexes' own predicate, so PostgreSQL and SQLite match it to them whatever the values bound."""
    columns = (col(Recording.id), col(Recording.officer_number), _Epoch(col(Recording.captured_start)),
               _Epoch(col(Recording.captured_end)), col(Recording.device_serial), col(Recording.time_implausible))
    mine = col(Recording.officer_number).in_(numbers)
    touching = select_columns(*columns).where(text(COVERED), mine, col(Recording.captured_end) >= begin,
                                      col(Recording.captured_start) < end)
    instants = select_columns(*columns).where(text(COVERED), mine, col(Recording.captured_end).is_(None),
                                      col(Recording.captured_start) >= begin, col(Recording.captured_start) < end)
    docked = select_columns(*columns).where(text(COVERED), mine, col(Recording.time_implausible),
                                    col(Recording.ingested_at) >= begin, col(Recording.ingested_at) < end)
    return union_all(touching, instants, docked)


def _files(spans: dict[int, _Span], details: dict[int, tuple[str, datetime | None]]) -> tuple[ImplausibleFile, ...]:
    found = []
    for rid, (start, stop, _rid, device, _odd) in sorted(spans.items()):
        name, docked = details.get(rid, ("", None))
        found.append(ImplausibleFile(rid, name, device, _at(start), _at(stop), docked))
    return tuple(found)


def _details(session: Session, ids: list[int]) -> dict[int, tuple[str, datetime | None]]:
    """The name and docking time of each of *ids* (the few files with an implausible time)."""
    if not ids:
        return {}
    return {rid: (name, docked) for rid, name, docked in session.execute(
        select_columns(col(Recording.id), col(Recording.original_name), col(Recording.ingested_at))
        .where(col(Recording.id).in_(sorted(set(ids)))))}
