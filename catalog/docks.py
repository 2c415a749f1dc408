"""Dock sessions end with a result that says what happened, even when the process that ran them could not say it.

A dock that ran to the end records its own result (ingest.pipeline). One whose station was killed, or whose
catalogue went away mid-dock, is left open; `close_open_sessions` closes such sessions as `interrupted`, with
the reason in words, when the station starts again or when the same device's journal or next dock is catalogued.
Each closing is an `undocked` custody event, as for a dock that ended by itself. What a dock session saw is in
catalog.sightings.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.models import DockResult, DockSession, Recording

__all__ = ["close_open_sessions", "sidecar_clock_offset"]


def sidecar_clock_offset(session: Session, recording_ids: Iterable[int]) -> float | None:
    """How far the device's clock was off (GPS time minus its own, seconds) by the newest of *recording_ids* whose
    time came from a GPS sidecar that also held the device's own reading (`device_time`); None when none did. The
    newest: a clock drifts, and the dock wants where it is now. A sidecar without the device's reading measures
    nothing: the offset such a recording carries is against its container's or name's time, which may be the
    clip's end (a review found a 10-minute clip taken for a 600 s drift)."""
    ids = list(recording_ids)
    found: list[Recording] = []
    for chunk in range(0, len(ids), 500):
        found += [r for r in session.exec(select(Recording).where(
            col(Recording.id).in_(ids[chunk:chunk + 500]), Recording.time_source == "sidecar",
            col(Recording.time_implausible).is_(False), col(Recording.captured_start).is_not(None)))
            if "device_time" in ((r.technical or {}).get("time_candidates") or {})]
    newest = max(found, key=lambda r: (r.captured_start, r.id or 0), default=None)
    return None if newest is None else float(round(newest.clock_offset_s))


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


