"""Where recordings were seen: one `Sighting` per recording and device place, the device file's size and time,
the dock session that saw it, and whether the station has since cleared it from the device.

The pipeline asks these to know a device file it has catalogued already; the CLI and web to show a recording's
history or a dock's files.
"""
from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, col, select

from catalog.db import MAX_ROW_ID
from catalog.models import Recording, Sighting

__all__ = ["dock_session_recording_ids", "find_known_sighting", "last_sighting_at", "seen_there", "sighting_at",
           "sightings_of", "sightings_of_dock"]


def find_known_sighting(session: Session, *, device_serial: str, device_path: str, size_bytes: int,
                        mtime_ns: int) -> Sighting | None:
    """The latest sighting of the same file (same device, path, size and mtime) still on the device: already
    ingested.

    A sighting the station has since cleared from the device does not count: whatever that path holds now is
    another file, even with the same size and time (a recorder whose clock restarts at 2000-01-01 every day).
    """
    query = select(Sighting).where(Sighting.device_serial == device_serial,
                                   Sighting.device_path == device_path,
                                   Sighting.size_bytes == size_bytes, Sighting.mtime_ns == mtime_ns,
                                   col(Sighting.cleared_at).is_(None))
    return session.exec(query.order_by(col(Sighting.id).desc())).first()


def seen_there(session: Session, *, sha256: str, device_serial: str, device_path: str) -> bool:
    """Whether the recording of bytes *sha256* is catalogued as seen at *device_path* on *device_serial* (a journaled
    staged copy catalogued before: size and time cannot say it, another file may have taken that path since)."""
    query = (select(Sighting.id).join(Recording, col(Recording.id) == Sighting.recording_id)
             .where(Recording.sha256 == sha256, Sighting.device_serial == device_serial,
                    Sighting.device_path == device_path))
    return session.exec(query.limit(1)).first() is not None


def sightings_of(session: Session, recording_id: int) -> list[Sighting]:
    """Where recording *recording_id* was seen (one row per device place), in order."""
    return list(session.exec(select(Sighting).where(Sighting.recording_id == recording_id)
                             .order_by(col(Sighting.id))))


def sightings_of_dock(session: Session, dock_session_id: int) -> list[Sighting]:
    """The sightings recorded in dock session *dock_session_id* (one per file catalogued there), in order; none
    for a number no dock session can have (`catalog.db.MAX_ROW_ID`)."""
    if not 1 <= dock_session_id <= MAX_ROW_ID:
        return []
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


def dock_session_recording_ids(session: Session, dock_session_id: int, *,
                               device_paths: Collection[str] = ()) -> list[int]:
    """The recordings seen in dock session *dock_session_id*, in id order; with *device_paths*, only those seen
    at one of these paths on the device."""
    return sorted({s.recording_id for s in sightings_of_dock(session, dock_session_id)
                   if not device_paths or s.device_path in device_paths})
