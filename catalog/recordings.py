"""Register stations, devices, officers, dock sessions, recordings and sightings.

These are the write paths ingest uses, plus lookups, the row locks the archive
and decode steps take, and the public JSON shape of a recording (a contract
that agencies script against).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.db import begin_write, by_id
from catalog.errors import RecordingNotFound
from catalog.models import CustodyEvent, Officer, Recording, RecordingState, Sighting, Station
from catalog.registry import officer_json
from catalog.said import say
from catalog.types import utcnow

__all__ = [
    "SHA256_CHUNK",
    "RecordingJson",
    "ensure_officer",
    "ensure_station",
    "find_by_sha256",
    "find_by_sha256s",
    "get_recording",
    "has_manifest",
    "lock_recording",
    "lock_recording_state",
    "recording_as_json",
    "recordings_by_sha256",
    "staged_ids",
]

#: Hashes asked for in one query by `recordings_by_sha256` (an IN list well under every database's limit).
SHA256_CHUNK = 500


def ensure_station(session: Session, code: str, *, name: str = "", lat: float | None = None,
                   lon: float | None = None) -> Station:
    station = session.get(Station, code)
    if station is None:
        station = Station(code=code, name=name or code, default_lat=lat, default_lon=lon, created_at=utcnow())
    else:
        station.default_lat, station.default_lon = lat, lon
    session.add(station)
    return station


def ensure_officer(session: Session, number: str, *, name: str = "", unit_number: str = "",
                   unit_name: str = "", actor: str | None = None) -> Officer:
    """Find the officer or create them; only empty fields are filled from device data. With *actor* (the
    station), a new officer or a filled field is a `registry_changed` event (source `device`): the unit decides
    which supervisors see the officer's recordings, and `evidence verify --all` holds the row to the event."""
    officer = session.exec(select(Officer).where(Officer.number == number)).first()
    old = None if officer is None else officer_json(officer)
    if officer is None:
        officer = Officer(number=number, name=name, unit_number=unit_number, unit_name=unit_name)
    else:
        officer.name = officer.name or name
        officer.unit_number = officer.unit_number or unit_number
        officer.unit_name = officer.unit_name or unit_name
    session.add(officer)
    new = officer_json(officer)
    if actor is not None and new != old:
        append_event(session, CustodyKind.REGISTRY_CHANGED, actor=actor, details={
            "register": "officer", "key": number, "old": old, "new": new, "source": "device"})
    return officer


def _redaction(recording: Recording) -> dict[str, Any]:
    """What a redacted copy was made from and how: the original's id (the row's) and what its record says."""
    made = (recording.technical or {}).get("redaction") or {}
    return {"id": recording.redacted_from_id, "sha256": made.get("original_sha256"), "version": made.get("version"),
            "spec": made.get("spec"), "reason": made.get("reason"), "by": made.get("by"), "at": made.get("at")}


def redacted_copies(session: Session, original_id: int) -> list[Recording]:
    """The redacted copies made of recording *original_id*, oldest (version 1) first."""
    return list(session.exec(select(Recording).where(Recording.redacted_from_id == original_id)
                             .order_by(col(Recording.id))))


def find_by_sha256(session: Session, sha256: str) -> Recording | None:
    return session.exec(select(Recording).where(Recording.sha256 == sha256)).first()


def find_by_sha256s(session: Session, hashes: Sequence[str], *,
                    chunk_size: int = SHA256_CHUNK) -> dict[str, Recording]:
    """`find_by_sha256` for many: sha256 -> the recording holding those bytes (absent: none does), asked
    *chunk_size* hashes per query."""
    found: dict[str, Recording] = {}
    for start in range(0, len(hashes), chunk_size):
        chunk = hashes[start:start + chunk_size]
        found.update((row.sha256, row) for row in session.exec(select(Recording).where(
            col(Recording.sha256).in_(chunk))))
    return found


def recordings_by_sha256(session: Session, hashes: Sequence[str], *,
                         chunk_size: int = SHA256_CHUNK) -> dict[str, tuple[int, str, str]]:
    """sha256 -> (recording id, state, station code) of the recordings holding *hashes* (absent: none does),
    asked *chunk_size* hashes per query."""
    rows: dict[str, tuple[int, str, str]] = {}
    for start in range(0, len(hashes), chunk_size):
        chunk = hashes[start:start + chunk_size]
        for rid, sha, state, station in session.exec(
                select(Recording.id, Recording.sha256, Recording.state, Recording.station_code)
                .where(col(Recording.sha256).in_(chunk))):
            assert rid is not None
            rows[sha] = (rid, state, station)
    return rows


def staged_ids(session: Session, station: str) -> list[int]:
    """The ids of the recordings still `staged` at *station*, oldest first."""
    rows = session.exec(select(Recording.id).where(Recording.state == RecordingState.STAGED.value,
                                                   Recording.station_code == station).order_by(col(Recording.id)))
    return [row for row in rows if row is not None]


def has_manifest(session: Session, recording_id: int, *, revision: int | None = None) -> bool:
    """Whether a signed manifest of the recording (of stamp *revision*, given one) was recorded (a `manifested`
    custody event)."""
    query = select(CustodyEvent.id).where(CustodyEvent.recording_id == recording_id,
                                          CustodyEvent.kind == CustodyKind.MANIFESTED.value)
    if revision is not None:
        query = query.where(manifested_revision() == revision)
    return session.exec(query).first() is not None


def manifested_revision() -> Any:
    """The stamp revision a `manifested` custody event records (its details' `revision`), as an SQL integer."""
    return col(CustodyEvent.details)["revision"].as_integer()


def lock_recording(session: Session, recording_id: int) -> Recording:
    """The recording, read under the catalogue's write lock for a change that records custody (a decode verdict):
    the custody head first (`catalog.db.begin_write`; on SQLite the database write lock), then the row FOR UPDATE,
    both held until the transaction ends.

    FOR NO KEY UPDATE, not FOR UPDATE: a row inserted meanwhile that refers to this one (a redacted copy, a sighting)
    takes a key-share lock on it, which FOR UPDATE would wait for (a copy catalogued while its original was read back
    deadlocked so), and no change here touches the id.

    The head first, as in `lock_recording_state`, because every custody writer takes it first: the row first would
    invert the order on PostgreSQL. A dock holding the head while it inserts a sighting of these bytes (its foreign
    key takes a share lock on this row) and a caller holding this row while its `append_event` waits for the head
    would wait for each other: a deadlock. Taken together, a second caller waits and then reads what the first
    committed (a decode verdict recorded meanwhile). Changes pending in *session* are not flushed before the head.

    Raises:
      NoResultFound: no such recording.
    """
    begin_write(session)  # the head with the session's pending changes not yet written
    return session.exec(select(Recording).where(Recording.id == recording_id).with_for_update(key_share=True)).one()


def lock_recording_state(session: Session, recording_id: int) -> str:
    """The recording's state in the catalogue, read under the catalogue's write lock: the custody head first (as every
    writer takes it, `catalog.db.begin_write`; on SQLite the database write lock), then the row FOR UPDATE.

    That order is the one every custody writer keeps: a dock appending a sighting of the same bytes waits for the
    head and never deadlocks with this. Changes pending in *session* are not flushed before the head is taken.

    Raises:
      NoResultFound: no such recording.
    """
    begin_write(session)  # the head with the session's pending changes not yet written
    state = session.execute(select(Recording.state).where(col(Recording.id) == recording_id)
                            .with_for_update(key_share=True)).scalar_one()
    return str(state)


def get_recording(session: Session, ref: str | int) -> Recording:
    """By numeric id, or by a SHA-256 prefix of at least 8 hex digits.

    A prefix of digits only (one in 280 of 12 hex digits) is looked up as both: when it is an id and the prefix of
    another recording's hash, which was meant cannot be told, and neither is returned (RecordingNotFound saying so).
    """
    text = str(ref).strip().lower()
    by_number = by_id(session, Recording, int(text)) if text.isascii() and text.isdigit() and len(text) <= 18 else None
    by_hash = None
    if len(text) >= 8 and all(c in "0123456789abcdef" for c in text):
        matches = list(session.exec(select(Recording).where(col(Recording.sha256).startswith(text)).limit(2)))
        if len(matches) == 1:
            by_hash = matches[0]
    if by_number is not None and by_hash is not None and by_number.id != by_hash.id:
        raise RecordingNotFound(str(ref), ambiguous=say("recording {by_id} has that id and recording {by_hash}'s hash "
                                                        "begins with it; give more of the hash", by_id=by_number.id,
                                                        by_hash=by_hash.id))
    found = by_number or by_hash
    if found is None:
        raise RecordingNotFound(str(ref))
    return found


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


class RecordingJson(TypedDict):
    """The public JSON shape of a recording (docs/cli.md): `evidence search/show --json`, the web API, the ingest
    report's items. Nested objects are plain dicts; times are ISO 8601 UTC strings or null."""

    id: int
    sha256: str
    size_bytes: int
    media_kind: str
    original_name: str
    device_serial: str | None
    officer: dict[str, Any] | None
    station: str
    captured_start: str | None
    captured_end: str | None
    raw_device_time: str | None
    time_source: str
    time_implausible: bool
    time_problem: str | None
    zone_assumed: str | None
    clock_offset_s: float | None
    place: dict[str, Any] | None
    case_number: str | None
    purpose: str | None
    important: bool
    sensitivity: str
    integrity: dict[str, str]
    state: str
    ingested_at: str | None
    archived_at: str | None
    retain_until: str | None
    legal_hold: bool
    retention_rule: str | None
    technical: dict[str, Any]
    belongs_to: int | None
    redacted_from: dict[str, Any] | None
    stamp_revision: int
    store: dict[str, str | None]
    sightings: NotRequired[list[dict[str, Any]]]


def recording_as_json(recording: Recording, *, sightings: list[Sighting] | None = None) -> RecordingJson:
    """The public JSON shape of a recording."""
    assert recording.id is not None
    out: RecordingJson = {
        "id": recording.id,
        "sha256": recording.sha256,
        "size_bytes": recording.size_bytes,
        "media_kind": recording.media_kind,
        "original_name": recording.original_name,
        "device_serial": recording.device_serial,
        "officer": ({"number": recording.officer_number, "name": recording.officer_name}
                    if recording.officer_number else None),
        "station": recording.station_code,
        "captured_start": _iso(recording.captured_start),
        "captured_end": _iso(recording.captured_end),
        "raw_device_time": recording.raw_device_time,
        "time_source": recording.time_source,
        "time_implausible": recording.time_implausible,
        "time_problem": (recording.technical or {}).get("time_problem"),
        "zone_assumed": recording.zone_assumed,
        "clock_offset_s": recording.clock_offset_s,
        "place": ({"lat": recording.lat, "lon": recording.lon, "source": recording.place_source}
                  if recording.lat is not None else None),
        "case_number": recording.case_number,
        "purpose": recording.purpose,
        "important": recording.important,
        "sensitivity": recording.sensitivity,
        "integrity": {"status": recording.integrity_status, "detail": recording.integrity_detail},
        "state": recording.state,
        "ingested_at": _iso(recording.ingested_at),
        "archived_at": _iso(recording.archived_at),
        "retain_until": _iso(recording.retain_until),
        "legal_hold": recording.legal_hold,
        "retention_rule": recording.retention_rule,
        "technical": {
            "container": recording.container, "video_codec": recording.video_codec,
            "audio_codec": recording.audio_codec, "duration_s": recording.duration_s,
            "width": recording.width, "height": recording.height,
        },
        "belongs_to": recording.belongs_to_id,
        "redacted_from": (_redaction(recording) if recording.redacted_from_id is not None else None),
        "stamp_revision": recording.stamp_revision,
        "store": {"name": recording.store_name, "key": recording.store_key},
    }
    if sightings is not None:
        out["sightings"] = [
            {"device_serial": s.device_serial, "device_path": s.device_path, "seen_at": _iso(s.seen_at),
             "dock_session_id": s.dock_session_id, "important": s.important}
            for s in sightings
        ]
    return out
