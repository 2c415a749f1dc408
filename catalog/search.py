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

from sqlalchemy import ColumnElement, and_, union
from sqlmodel import Session, col, func, not_, or_, select
from sqlmodel.sql.expression import SelectOfScalar

from catalog.access import EVERYTHING, Scope, scope_clause
from catalog.case_models import Case, CaseLink
from catalog.models import IN_ARCHIVE, Officer, Recording, RecordingState
from catalog.types import utcnow

__all__ = ["MAX_RADIUS_M", "RETENTION_STATES", "SORTS", "Near", "SearchFilters", "bounding_box", "build_search",
           "count_search", "haversine_m", "matching_ids", "run_search"]

EARTH_RADIUS_M = 6_371_008.8
Q = TypeVar("Q", bound=SelectOfScalar[Any])


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    metres: float


#: The widest circle a search takes (the flat-earth distance stays within 0.1 % of the true one).
MAX_RADIUS_M = 100_000.0

#: held: under legal hold; kept: within its retention period; due: period over, awaiting disposal;
#: disposed: lawfully deleted (a tombstone); staged: not yet in WORM storage.
RETENTION_STATES = ("held", "kept", "due", "disposed", "staged")

#: Sort orders by name ("-" first: descending); the id breaks ties so pages never overlap.
SORTS = ("captured", "-captured", "ingested", "-ingested", "size", "-size", "officer")


@dataclass(frozen=True)
class SearchFilters:
    case_number: str | None = None
    officer: str | None = None  # officer number or name
    device: str | None = None
    start: datetime | None = None  # recordings overlapping [start, end]
    end: datetime | None = None
    near: Near | None = None
    purpose: str | None = None  # substring, case-insensitive
    kind: str | None = None
    station: str | None = None
    unit: str | None = None  # the officer's unit number or name
    important: bool | None = None
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


def _order(sort: str) -> list[Any]:
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


def _who_and_where(filters: SearchFilters) -> list[ColumnElement[bool]]:
    """Conditions on the case, officer, unit, device and station."""
    conditions: list[ColumnElement[bool]] = []
    if filters.case_number:
        # Stamped with the number at collection, or linked to the case in the archive.
        # One id list from two index lookups (an OR across them would scan the whole table).
        stamped = select(Recording.id).where(Recording.case_number == filters.case_number)
        linked = (select(CaseLink.recording_id).where(CaseLink.case_id == Case.id, Case.number == filters.case_number,
                                                      col(CaseLink.unlinked_at).is_(None)))
        conditions.append(col(Recording.id).in_(union(stamped, linked)))
    if filters.officer:
        conditions.append(or_(col(Recording.officer_number) == filters.officer,
                              col(Recording.officer_name) == filters.officer))
    if filters.unit:
        members = select(Officer.number).where(or_(Officer.unit_number == filters.unit,
                                                   Officer.unit_name == filters.unit))
        conditions.append(col(Recording.officer_number).in_(members))
    equal = ((Recording.device_serial, filters.device), (Recording.station_code, filters.station),
             (Recording.media_kind, filters.kind), (Recording.integrity_status, filters.integrity))
    conditions.extend(col(column) == value for column, value in equal if value)
    return conditions


def _what_and_when(filters: SearchFilters) -> list[ColumnElement[bool]]:
    """Conditions on the capture time, purpose, flags, retention state and place."""
    conditions: list[ColumnElement[bool]] = []
    if filters.start:
        conditions.append(col(Recording.captured_end) >= filters.start)
    if filters.end:
        conditions.append(col(Recording.captured_start) <= filters.end)
    if filters.purpose:
        conditions.append(col(Recording.purpose).ilike(_like(filters.purpose), escape="\\"))
    if filters.important is not None:
        conditions.append(col(Recording.important).is_(filters.important))
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
