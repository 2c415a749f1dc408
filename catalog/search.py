"""Search the catalog: pure query building, shared by the command line, the web pages and the API.

`build_search` turns filters into one SELECT: every filter is a bound parameter (never text pasted into
SQL), a caller's scope (catalog.access) is part of the WHERE, and "near a point" is a bounding box (for
the (lat, lon) index) plus an equirectangular distance around the point, computed in SQL so paging and
counts are exact on SQLite and PostgreSQL alike (within 0.1 % of the great-circle distance for radii up
to MAX_RADIUS_M).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Boolean, ColumnElement, and_, case, literal, union
from sqlalchemy.ext.compiler import compiles
from sqlmodel import Session, col, func, not_, or_, select
from sqlmodel.sql.expression import SelectOfScalar

from catalog.access import EVERYTHING, Scope, scope_clause
from catalog.case_models import Case, CaseLink
from catalog.models import IN_ARCHIVE, Officer, Recording, RecordingState, Station
from catalog.types import utcnow

__all__ = ["MAX_RADIUS_M", "PARTIAL_FROM", "RETENTION_STATES", "SORTS", "Near", "SearchFilters", "bounding_box",
           "build_search",
           "count_search", "haversine_m", "matching_ids", "run_search", "untagged"]

EARTH_RADIUS_M = 6_371_008.8
Q = TypeVar("Q", bound=SelectOfScalar[Any])


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    metres: float


#: From this many characters on, a case number typed into a search matches anywhere in the number, in any letter
#: case (PostgreSQL answers from trigram indexes: catalog.db.TRIGRAM_INDEXES); shorter, the whole number. A purpose
#: matches in part at any length (its index serves three characters or more); officers, units and stations are
#: matched in their registers (a few thousand rows) at any length.
PARTIAL_FROM = 3

#: The widest circle a search takes (the flat-earth distance stays within 0.1 % of the true one).
MAX_RADIUS_M = 100_000.0

#: held: under legal hold; kept: within its retention period; due: period over, awaiting disposal;
#: disposed: lawfully deleted (a tombstone); staged: not yet in WORM storage.
RETENTION_STATES = ("held", "kept", "due", "disposed", "staged")

#: Sort orders by name ("-" first: descending); the id breaks ties so pages never overlap.
SORTS = ("captured", "-captured", "ingested", "-ingested", "size", "-size", "officer", "untagged")


@dataclass(frozen=True)
class SearchFilters:
    case_number: str | None = None  # stamped or linked; part of it from PARTIAL_FROM characters, any letter case
    officer: str | None = None  # part of an officer's number or name (the register's), or a stamped number or name
    device: str | None = None
    start: datetime | None = None  # recordings overlapping [start, end]
    end: datetime | None = None
    near: Near | None = None
    purpose: str | None = None  # part of it, in any letter case
    kind: str | None = None
    station: str | None = None  # a station's code, or part of a registered station's code or name
    unit: str | None = None  # part of the officer's unit number or name
    important: bool | None = None
    tagged: bool | None = None  # given a case number, a purpose or the important flag (untagged: none of them)
    sensitivity: str | None = None  # one of catalog.sensitivity.CLASSES
    integrity: str | None = None  # ok | damaged | unreadable
    retention: str | None = None  # one of RETENTION_STATES
    sort: str = "captured"
    offset: int = 0
    limit: int = 500
    scope: Scope = EVERYTHING
    now: datetime | None = None  # "due" is judged at this time (default: now)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(near: Near) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) enclosing the circle (generous near the poles)."""
    dlat = math.degrees(near.metres / EARTH_RADIUS_M)
    cos_lat = max(math.cos(math.radians(near.lat)), 1e-6)
    dlon = min(180.0, math.degrees(near.metres / (EARTH_RADIUS_M * cos_lat)))
    return near.lat - dlat, near.lat + dlat, near.lon - dlon, near.lon + dlon


def _like(text: str) -> str:
    """A LIKE pattern matching *text* literally (its % and _ escaped with \\)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _holds(text: str, *columns: Any) -> ColumnElement[bool]:
    """Any of *columns* holds *text* anywhere, in any letter case, taken literally (% and _ are characters)."""
    like = _like(text)
    return or_(*(col(column).ilike(like, escape="\\") for column in columns))


def _near(near: Near) -> ColumnElement[bool]:
    min_lat, max_lat, min_lon, max_lon = bounding_box(near)
    k = math.cos(math.radians(near.lat))
    limit = math.degrees(near.metres / EARTH_RADIUS_M) ** 2
    dlat, dlon = col(Recording.lat) - near.lat, (col(Recording.lon) - near.lon) * k
    return and_(col(Recording.lat).between(min_lat, max_lat), col(Recording.lon).between(min_lon, max_lon),
                dlat * dlat + dlon * dlon <= limit)


def _retention(state: str, now: datetime) -> ColumnElement[bool]:
    kept = col(Recording.state).in_(IN_ARCHIVE)
    if state == "held":
        return col(Recording.legal_hold).is_(True)
    if state == "kept":
        return and_(kept, not_(col(Recording.legal_hold)), or_(col(Recording.retain_until).is_(None),
                                                                col(Recording.retain_until) > now))
    if state == "due":
        return and_(kept, not_(col(Recording.legal_hold)), col(Recording.retain_until) <= now)
    if state == "disposed":
        return col(Recording.state) == RecordingState.DISPOSED.value
    if state == "staged":
        return col(Recording.state) == RecordingState.STAGED.value
    raise ValueError(f"retention state must be one of {', '.join(RETENTION_STATES)}, not {state!r}")


def untagged() -> ColumnElement[bool]:
    """Not yet tagged: no case number, no purpose, not marked important, serving no case (a clerk's link says what
    it is), and still here to tag (not disposed of): what an officer still has to do."""
    serving = select(CaseLink.id).where(CaseLink.recording_id == Recording.id, col(CaseLink.unlinked_at).is_(None))
    return and_(col(Recording.case_number).is_(None), col(Recording.purpose).is_(None),
                not_(col(Recording.important)), col(Recording.state) != RecordingState.DISPOSED.value,
                not_(serving.exists()))


def _order(sort: str) -> list[Any]:
    if sort == "untagged":  # an officer's own first: what is still to tag, then everything newest first
        return [case((untagged(), 0), else_=1), col(Recording.captured_start).desc().nulls_first(),
                col(Recording.id).desc()]
    columns = {"captured": col(Recording.captured_start), "ingested": col(Recording.ingested_at),
               "size": col(Recording.size_bytes), "officer": col(Recording.officer_number)}
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    column = columns[sort.lstrip("-")]
    # NULLs (no capture time, no officer) go where PostgreSQL's b-tree keeps them, so either direction is an
    # index scan: last going up, first going down.
    if sort.startswith("-"):
        return [column.desc().nulls_first(), col(Recording.id).desc()]
    then = [col(Recording.captured_start), col(Recording.id)] if sort == "officer" else [col(Recording.id)]
    return [column.asc().nulls_last(), *then]


class _InList(ColumnElement[bool]):
    """*column* IN (*values*), where *values* is a subquery of a few rows (the officers a text names). PostgreSQL
    gets `column = ANY(ARRAY(subquery))`: the subquery runs once, first, and the planner then reads *column*'s
    index for those few values; as `IN (subquery)` it guessed the subquery large and walked a time index over
    tens of thousands of rows instead (250 ms at 1M recordings, bench/search_speed.py). Elsewhere plain IN."""

    inherit_cache = True
    type = Boolean()

    def __init__(self, column: Any, values: Any) -> None:
        self.column = column
        self.values = values


@compiles(_InList)
def _in_list(element: _InList, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} IN ({compiler.process(element.values, **kw)})"


@compiles(_InList, "postgresql")
def _in_list_postgresql(element: _InList, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY(ARRAY({compiler.process(element.values, **kw)}))"


def _text(column: Any, text: str) -> ColumnElement[bool]:
    """*column* holds *text*: anywhere in it, in any letter case, from PARTIAL_FROM characters on; the whole value
    below that (one or two characters match too much to be a search, and a trigram index cannot answer them)."""
    if len(text) >= PARTIAL_FROM:
        return _holds(text, column)
    return col(column) == text


def _who_and_where(filters: SearchFilters) -> list[ColumnElement[bool]]:
    """Conditions on the case, officer, unit, device and station: forgiving (part of a case number, officer number
    or name, unit, station code or name, in any letter case), each answered from an index."""
    conditions: list[ColumnElement[bool]] = []
    if filters.case_number:
        # Stamped with the number at collection, or linked to the case in the archive.
        # One id list from two index lookups (an OR across them would scan the whole table).
        stamped = select(Recording.id).where(_text(Recording.case_number, filters.case_number))
        linked = (select(CaseLink.recording_id).where(CaseLink.case_id == Case.id, _text(Case.number,
                                                                                         filters.case_number),
                                                      col(CaseLink.unlinked_at).is_(None)))
        conditions.append(col(Recording.id).in_(union(stamped, linked)))
    if filters.officer:
        # The register's officers whose number or name holds the text, and any number stamped with exactly that
        # name (an officer the register does not know): a few numbers, each read from (officer, time)
        registered = select(Officer.number).where(_holds(filters.officer, Officer.number, Officer.name))
        stamped_as = select(Recording.officer_number).where(Recording.officer_name == filters.officer)
        conditions.append(_InList(col(Recording.officer_number),
                                  union(registered, stamped_as, select(literal(filters.officer)))))
    if filters.unit:
        members = select(Officer.number).where(_holds(filters.unit, Officer.unit_number, Officer.unit_name))
        conditions.append(_InList(col(Recording.officer_number), members))
    if filters.station:
        named = select(Station.code).where(_holds(filters.station, Station.code, Station.name))
        conditions.append(_InList(col(Recording.station_code), union(named, select(literal(filters.station)))))
    equal = ((Recording.device_serial, filters.device), (Recording.media_kind, filters.kind),
             (Recording.integrity_status, filters.integrity))
    conditions.extend(col(column) == value for column, value in equal if value)
    return conditions


def _what_and_when(filters: SearchFilters) -> list[ColumnElement[bool]]:
    """Conditions on the capture time, purpose, flags, retention state and place."""
    conditions: list[ColumnElement[bool]] = []
    if filters.start:
        conditions.append(col(Recording.captured_end) >= filters.start)
    if filters.end:
        conditions.append(col(Recording.captured_start) <= filters.end)
    if filters.purpose:  # any part, at any length: a purpose is words, and 巡查 is two characters
        conditions.append(_holds(filters.purpose, Recording.purpose))
    if filters.important is not None:
        conditions.append(col(Recording.important).is_(filters.important))
    if filters.tagged is not None:
        conditions.append(not_(untagged()) if filters.tagged else untagged())
    if filters.sensitivity:
        conditions.append(col(Recording.sensitivity) == filters.sensitivity)
    if filters.retention:
        conditions.append(_retention(filters.retention, filters.now or utcnow()))
    if filters.near:
        conditions.append(_near(filters.near))
    return conditions


def _filtered(query: Q, filters: SearchFilters) -> Q:
    conditions = _who_and_where(filters) + _what_and_when(filters)
    scoped = scope_clause(filters.scope)
    if scoped is not None:
        conditions.append(scoped)
    return query.where(*conditions) if conditions else query


def build_search(filters: SearchFilters) -> SelectOfScalar[Recording]:
    """The page of recordings the filters select, in the asked order. ValueError for an unknown sort or
    retention state.

    The page's ids are chosen first (from the covering indexes alone where one fits) and only those rows are
    read: a unit's month of footage is sorted from the index, not from thousands of scattered table rows."""
    order = _order(filters.sort)
    page = _filtered(select(Recording.id), filters).order_by(*order).offset(filters.offset).limit(filters.limit)
    return select(Recording).where(col(Recording.id).in_(page.scalar_subquery())).order_by(*order)


def run_search(session: Session, filters: SearchFilters) -> list[Recording]:
    return list(session.exec(build_search(filters)))


def count_search(session: Session, filters: SearchFilters, *, cap: int = 10_000) -> int:
    """How many recordings match, counting no further than *cap* + 1 (a page says "more than 10,000")."""
    ids = _filtered(select(Recording.id), filters).limit(cap + 1).subquery()
    return int(session.exec(select(func.count()).select_from(ids)).one())


def matching_ids(session: Session, filters: SearchFilters, *, cap: int) -> list[int]:
    """The ids of every recording the filters select (the caller's scope applied), in the asked order, no more than
    *cap* + 1 of them (a caller acting on "all matching" refuses more than *cap*); the page and size are ignored."""
    query = _filtered(select(Recording.id), filters).order_by(*_order(filters.sort)).limit(cap + 1)
    return [int(i) for i in session.exec(query) if i is not None]
