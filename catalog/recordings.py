"""Register stations, devices, officers, dock sessions, recordings and sightings.

These are the write paths ingest uses, plus lookups and the public JSON
shape of a recording (a contract that agencies script against).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.errors import RecordingNotFound
from catalog.models import Device, Officer, Recording, Sighting, Station
from catalog.types import utcnow

__all__ = [
    "ensure_device", "ensure_officer", "ensure_station", "find_by_sha256", "find_known_sighting",
    "get_recording", "recording_as_json", "sightings_of",
]


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
                   unit_name: str = "") -> Officer:
    """Find the officer or create them; only empty fields are filled from device data."""
    officer = session.exec(select(Officer).where(Officer.number == number)).first()
    if officer is None:
        officer = Officer(number=number, name=name, unit_number=unit_number, unit_name=unit_name)
    else:
        officer.name = officer.name or name
        officer.unit_number = officer.unit_number or unit_number
        officer.unit_name = officer.unit_name or unit_name
    session.add(officer)
    return officer


def ensure_device(session: Session, serial: str, *, profile: str, officer_number: str | None,
                  unit_number: str = "", unit_name: str = "", now: datetime | None = None) -> Device:
    now = now or utcnow()
    device = session.exec(select(Device).where(Device.serial == serial)).first()
    if device is None:
        device = Device(serial=serial, profile=profile, officer_number=officer_number, unit_number=unit_number,
                        unit_name=unit_name, first_seen=now, last_seen=now)
    else:
        device.last_seen = now
        device.profile = profile
        device.officer_number = officer_number or device.officer_number
        device.unit_number = unit_number or device.unit_number
        device.unit_name = unit_name or device.unit_name
    session.add(device)
    return device


def find_known_sighting(session: Session, *, device_serial: str, device_path: str, size_bytes: int,
                        mtime_ns: int) -> Sighting | None:
    """A sighting of the same file (same device, path, size and mtime) still on the device: already ingested.

    A sighting the station has since cleared from the device does not count: whatever that path holds now is
    another file, even with the same size and time (a recorder whose clock restarts at 2000-01-01 every day).
    """
    query = select(Sighting).where(Sighting.device_serial == device_serial,
                                   Sighting.device_path == device_path,
                                   Sighting.size_bytes == size_bytes, Sighting.mtime_ns == mtime_ns,
                                   col(Sighting.cleared_at).is_(None))
    return session.exec(query).first()


def find_by_sha256(session: Session, sha256: str) -> Recording | None:
    return session.exec(select(Recording).where(Recording.sha256 == sha256)).first()


def get_recording(session: Session, ref: str | int) -> Recording:
    """By numeric id, or by a SHA-256 prefix of at least 8 hex digits."""
    text = str(ref).strip().lower()
    if text.isdigit():
        recording = session.get(Recording, int(text))
        if recording is not None:
            return recording
    if len(text) >= 8 and all(c in "0123456789abcdef" for c in text):
        matches = list(session.exec(select(Recording).where(col(Recording.sha256).startswith(text)).limit(2)))
        if len(matches) == 1:
            return matches[0]
    raise RecordingNotFound(str(ref))


def sightings_of(session: Session, recording_id: int) -> list[Sighting]:
    return list(session.exec(select(Sighting).where(Sighting.recording_id == recording_id)
                             .order_by(col(Sighting.id))))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def recording_as_json(recording: Recording, *, sightings: list[Sighting] | None = None) -> dict[str, Any]:
    """The public JSON shape of a recording."""
    out: dict[str, Any] = {
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
