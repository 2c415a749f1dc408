"""Read-only listings the administration, search and retention pages show: officers, stations with their
signing keys and last docking, devices with their officers' names, station codes, recent disposal batches.

Changes to these records go through catalog.registry, catalog.users and catalog.disposal; this module only
reads, in a stable order (by number, code, serial; batches newest first).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from catalog.case_models import Case, CaseLink, DisposalBatch
from catalog.models import DerivedMedia, Device, DockSession, MediaWorkFailure, Officer, Station, StationKey

__all__ = ["ResultFacts", "StationsOverview", "list_devices", "list_officers", "officer_names",
           "recent_disposal_batches", "result_facts", "station_codes", "stations_overview"]

#: Rows an administration list shows at most.
LIST_LIMIT = 2000


def list_officers(session: Session, *, limit: int = LIST_LIMIT) -> list[Officer]:
    """Officers by number (at most *limit*)."""
    return list(session.exec(select(Officer).order_by(col(Officer.number)).limit(limit)))


def officer_names(session: Session) -> dict[str, str]:
    """Officer number -> name, for every officer."""
    return {number: name for number, name in session.exec(select(Officer.number, Officer.name))}


def list_devices(session: Session, *, limit: int = LIST_LIMIT) -> list[Device]:
    """Devices by serial (at most *limit*)."""
    return list(session.exec(select(Device).order_by(col(Device.serial)).limit(limit)))


def station_codes(session: Session) -> list[str]:
    """Every registered station's code, in order."""
    return list(session.exec(select(Station.code).order_by(col(Station.code))))


@dataclass(frozen=True)
class StationsOverview:
    stations: list[Station]  # by code
    keys: dict[str, list[StationKey]]  # station code -> its signing keys, oldest first (retired ones too)
    last_docked: dict[str, datetime]  # station code -> start of its latest dock session (absent: never docked)


def stations_overview(session: Session) -> StationsOverview:
    """Every station with its signing keys and when a device last docked there."""
    stations = list(session.exec(select(Station).order_by(col(Station.code))))
    keys = {s.code: list(session.exec(select(StationKey).where(StationKey.station_code == s.code)
                                      .order_by(col(StationKey.id)))) for s in stations}
    last = session.exec(select(DockSession.station_code, func.max(DockSession.started_at))
                        .group_by(DockSession.station_code)).all()
    return StationsOverview(stations=stations, keys=keys,
                            last_docked={code: when for code, when in last if when is not None})


def recent_disposal_batches(session: Session, *, limit: int = 50) -> list[DisposalBatch]:
    """The latest *limit* disposal batches, newest first."""
    return list(session.exec(select(DisposalBatch).order_by(col(DisposalBatch.id).desc()).limit(limit)))


@dataclass(frozen=True)
class ResultFacts:
    """What a search result shows beside its own row: the cases it serves now (linked, not only the stamped
    number), the derived files made for it (a thumbnail, a browser copy) and the media work that failed for good
    on it, with the reason (so a page says why instead of showing a broken image or promising a copy)."""

    cases: tuple[str, ...] = ()
    derived: frozenset[str] = frozenset()
    failed: tuple[tuple[str, str], ...] = ()  # (kind, reason)


def result_facts(session: Session, recording_ids: list[int]) -> dict[int, ResultFacts]:
    """ResultFacts for each of *recording_ids* (a page of results: three reads, whatever its size)."""
    cases: dict[int, set[str]] = {rid: set() for rid in recording_ids}
    derived: dict[int, set[str]] = {rid: set() for rid in recording_ids}
    failed: dict[int, list[tuple[str, str]]] = {rid: [] for rid in recording_ids}
    for start in range(0, len(recording_ids), 500):
        chunk = recording_ids[start:start + 500]
        for rid, number in session.exec(select(CaseLink.recording_id, Case.number).where(
                col(CaseLink.recording_id).in_(chunk), col(CaseLink.unlinked_at).is_(None),
                CaseLink.case_id == Case.id)):
            cases[rid].add(number)
        for rid, kind in session.exec(select(DerivedMedia.recording_id, DerivedMedia.kind).where(
                col(DerivedMedia.recording_id).in_(chunk))):
            derived[rid].add(kind)
        for rid, kind, reason in session.exec(select(MediaWorkFailure.recording_id, MediaWorkFailure.kind,
                                                     MediaWorkFailure.reason)
                                              .where(col(MediaWorkFailure.recording_id).in_(chunk))
                                              .order_by(col(MediaWorkFailure.kind))):
            failed[rid].append((kind, reason))
    return {rid: ResultFacts(tuple(sorted(cases[rid])), frozenset(derived[rid]), tuple(failed[rid]))
            for rid in recording_ids}
