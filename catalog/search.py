"""Search the catalog: pure query building plus a distance filter.

`build_search` turns filters into a SELECT (a bounding box narrows `--near`
in SQL); `within_radius` finishes the circle in Python with the haversine
distance, so both SQLite and PostgreSQL answer the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import union
from sqlmodel import Session, col, or_, select
from sqlmodel.sql.expression import SelectOfScalar

from catalog.models import Case, CaseLink, Recording

__all__ = ["Near", "SearchFilters", "bounding_box", "build_search", "haversine_m", "run_search",
           "within_radius"]

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    metres: float


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
    limit: int = 500


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


def build_search(filters: SearchFilters) -> SelectOfScalar[Recording]:
    query = select(Recording)
    if filters.case_number:
        # Stamped with the number at collection, or linked to the case in the archive.
        # One id list from two index lookups (an OR across them would scan the whole table).
        stamped = select(Recording.id).where(Recording.case_number == filters.case_number)
        linked = (select(CaseLink.recording_id).where(CaseLink.case_id == Case.id, Case.number == filters.case_number,
                                                      col(CaseLink.unlinked_at).is_(None)))
        query = query.where(col(Recording.id).in_(union(stamped, linked)))
    if filters.officer:
        query = query.where(or_(col(Recording.officer_number) == filters.officer,
                                col(Recording.officer_name) == filters.officer))
    if filters.device:
        query = query.where(Recording.device_serial == filters.device)
    if filters.start:
        query = query.where(col(Recording.captured_end) >= filters.start)
    if filters.end:
        query = query.where(col(Recording.captured_start) <= filters.end)
    if filters.purpose:
        query = query.where(col(Recording.purpose).ilike(f"%{filters.purpose}%"))
    if filters.kind:
        query = query.where(Recording.media_kind == filters.kind)
    if filters.near:
        min_lat, max_lat, min_lon, max_lon = bounding_box(filters.near)
        query = query.where(col(Recording.lat).between(min_lat, max_lat),
                            col(Recording.lon).between(min_lon, max_lon))
    return query.order_by(col(Recording.captured_start), col(Recording.id)).limit(filters.limit)


def within_radius(recordings: list[Recording], near: Near | None) -> list[Recording]:
    if near is None:
        return recordings
    return [r for r in recordings
            if r.lat is not None and r.lon is not None
            and haversine_m(near.lat, near.lon, r.lat, r.lon) <= near.metres]


def run_search(session: Session, filters: SearchFilters) -> list[Recording]:
    return within_radius(list(session.exec(build_search(filters))), filters.near)
