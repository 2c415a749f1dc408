"""Dock sessions end with a result that says what happened, even when the process that ran them could not say it.

A dock that ran to the end records its own result (ingest.pipeline). One whose station was killed, or whose
catalogue went away mid-dock, is left open; `close_open_sessions` closes such sessions as `interrupted`, with
the reason in words, when the station starts again or when the same device's journal or next dock is catalogued.
Each closing is an `undocked` custody event, as for a dock that ended by itself. `sightings_of_dock` lists
what a dock session catalogued (the files an officer tags at the station); `sighting_at` and `last_sighting_at`
answer what was found at one path of a device (a dock recording a file seen again, a companion file finding the
recording it serves).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.models import DockResult, DockSession, Sighting

__all__ = ["close_open_sessions", "last_sighting_at", "sighting_at", "sightings_of_dock"]


def close_open_sessions(session: Session, *, station: str, now: datetime, note: str, actor: str,
                        device_serial: str | None = None, exclude: Iterable[int] = (),
                        live: Callable[[str], bool] = lambda _serial: False) -> list[int]:
    """Close *station*'s dock sessions that never ended (of *device_serial* only, when given), except *exclude* and
    those of a device some run is still ingesting (*live*), as `interrupted` with *note*; return their ids. The
    caller commits."""
    query = select(DockSession).where(DockSession.station_code == station, col(DockSession.finished_at).is_(None))
    if device_serial is not None:
        query = query.where(DockSession.device_serial == device_serial)
    skip = set(exclude)
    closed = []
    for dock in session.exec(query.order_by(col(DockSession.id))):
        if dock.id in skip or live(dock.device_serial):
            continue
        dock.finished_at, dock.result, dock.result_note = now, DockResult.INTERRUPTED.value, note[:2000]
        session.add(dock)
        append_event(session, CustodyKind.UNDOCKED, actor=actor, dock_session_id=dock.id, details={
            "result": DockResult.INTERRUPTED.value, "note": note[:2000], "files_seen": dock.files_seen,
            "files_new": dock.files_new, "files_known": dock.files_known, "files_failed": dock.files_failed})
        assert dock.id is not None
        closed.append(dock.id)
    return closed


def sightings_of_dock(session: Session, dock_session_id: int) -> list[Sighting]:
    """The sightings recorded in dock session *dock_session_id* (one per file catalogued there), in order."""
    return list(session.exec(select(Sighting).where(Sighting.dock_session_id == dock_session_id)
                             .order_by(col(Sighting.id))))


def sighting_at(session: Session, recording_id: int, *, device_serial: str, device_path: str) -> Sighting | None:
    """The sighting of recording *recording_id* at *device_path* on device *device_serial*, if it was seen there
    before (at most one: a place is recorded once per recording, `uq_sighting_place`; a dock seeing it again
    updates that row)."""
    return session.exec(select(Sighting).where(Sighting.recording_id == recording_id,
                                               Sighting.device_serial == device_serial,
                                               Sighting.device_path == device_path)).first()


def last_sighting_at(session: Session, *, device_serial: str, device_path: str) -> Sighting | None:
    """The latest sighting at *device_path* on device *device_serial*, whichever recording it was of (a path can
    hold other bytes over time): what a companion file there (a thumbnail, a sidecar) belongs to."""
    return session.exec(select(Sighting).where(Sighting.device_serial == device_serial,
                                               Sighting.device_path == device_path)
                        .order_by(col(Sighting.id).desc())).first()
