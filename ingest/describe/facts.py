"""What was read about a staged file, as plain values: the fact dataclasses and their pure parsers.

`ingest.describe.probe` gathers the raw inputs (ffprobe JSON, EXIF tags, the sidecar's JSON, the filename, the
file's own time); the functions here turn EXIF tags, a sidecar and a filename into the facts the description
(`ingest.describe.metadata`) is decided from. Nothing here touches a file, a process or the clock.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from device_profiles import FilenameRule
from ingest.describe.structure import Structure

__all__ = ["ExifFacts", "Facts", "FilenameFacts", "SidecarFacts", "exif_facts", "parse_filename", "sidecar_facts"]


@dataclass(frozen=True)
class FilenameFacts:
    text: str
    serial: str | None = None
    officer: str | None = None
    local_time: datetime | None = None  # naive: the device's wall clock
    important: bool = False


@dataclass(frozen=True)
class ExifFacts:
    datetime_original: str | None = None  # "YYYY:MM:DD HH:MM:SS", device wall clock
    offset_time_original: str | None = None  # "+08:00"
    lat: float | None = None
    lon: float | None = None
    gps_utc: datetime | None = None
    make: str | None = None
    model: str | None = None
    serial: str | None = None


@dataclass(frozen=True)
class SidecarFacts:
    start_utc: datetime | None = None
    end_utc: datetime | None = None
    device_time: str | None = None
    lat: float | None = None
    lon: float | None = None
    serial: str | None = None
    officer_number: str | None = None
    track_points: int = 0


@dataclass(frozen=True)
class Facts:
    """Everything read about one staged file."""

    name: str
    size_bytes: int
    mtime_ns: int  # the file's time on the device
    structure: Structure
    probe: Mapping[str, Any] | None = None  # ffprobe -show_format -show_streams JSON
    probe_error: str | None = None
    image_size: tuple[int, int] | None = None  # photos: width, height (from the image header)
    image_error: str | None = None
    exif: ExifFacts | None = None
    sidecar: SidecarFacts | None = None
    sidecar_error: str | None = None


def parse_filename(rule: FilenameRule | None, name: str) -> FilenameFacts | None:
    """Apply a profile's filename rule; None when the name does not follow it."""
    if rule is None:
        return None
    match = rule.pattern.fullmatch(name)
    if match is None:
        return None
    groups = match.groupdict()
    local_time = None
    if groups.get("date") and groups.get("time"):
        try:
            local_time = datetime.strptime(groups["date"] + groups["time"], "%Y%m%d%H%M%S")
        except ValueError:
            local_time = None  # 20261340_256100: a name that only looks like a time
    important = bool(groups.get("important")) or bool(
        rule.important_suffix and name.rsplit(".", 1)[0].upper().endswith(rule.important_suffix.upper()))
    text = f"{groups['date']}_{groups['time']}" if groups.get("date") and groups.get("time") else name
    return FilenameFacts(text=text, serial=groups.get("serial"), officer=groups.get("officer"),
                         local_time=local_time, important=important)


def _dms(values: Any, ref: Any, negative: str) -> float | None:
    if not isinstance(values, list | tuple) or len(values) != 3:
        return None
    try:
        deg = float(values[0]) + float(values[1]) / 60 + float(values[2]) / 3600
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return -deg if str(ref).strip().upper().startswith(negative) else deg


def _exif_position(tags: Mapping[str, Any]) -> tuple[float | None, float | None]:
    lat = _dms(tags.get("GPS GPSLatitude"), tags.get("GPS GPSLatitudeRef", "N"), "S")
    lon = _dms(tags.get("GPS GPSLongitude"), tags.get("GPS GPSLongitudeRef", "E"), "W")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    if lat == 0.0 and lon == 0.0:
        lat = lon = None  # "null island": receivers write zeros before their first fix
    if lat is not None and lon is not None:
        lat, lon = round(lat, 7), round(lon, 7)  # ~1 cm; drops the noise of degree/minute/second ratios
    return lat, lon


def _exif_gps_time(tags: Mapping[str, Any]) -> datetime | None:
    stamp, date = tags.get("GPS GPSTimeStamp"), tags.get("GPS GPSDate")
    if not (isinstance(stamp, list | tuple) and len(stamp) == 3 and isinstance(date, str)):
        return None
    try:
        day = datetime.strptime(date.strip(), "%Y:%m:%d").replace(tzinfo=UTC)
        return day + timedelta(hours=float(stamp[0]), minutes=float(stamp[1]), seconds=float(stamp[2]))
    except (ValueError, TypeError, ZeroDivisionError):
        return None


def exif_facts(tags: Mapping[str, Any]) -> ExifFacts:
    """EXIF tags (exifread names; ratios as floats) -> the facts we use."""
    lat, lon = _exif_position(tags)

    def text(key: str) -> str | None:
        value = tags.get(key)
        return str(value).strip() or None if value is not None else None

    return ExifFacts(
        datetime_original=text("EXIF DateTimeOriginal") or text("Image DateTime"),
        offset_time_original=text("EXIF OffsetTimeOriginal") or text("EXIF OffsetTime"),
        lat=lat, lon=lon, gps_utc=_exif_gps_time(tags), make=text("Image Make"), model=text("Image Model"),
        serial=text("EXIF BodySerialNumber"),
    )


def _aware_utc(text: str) -> datetime | None:
    """An ISO time with a zone, in UTC; None without a zone or when UTC cannot hold it (year 1 / 9999 at an
    offset)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return value.astimezone(UTC) if value.tzinfo else None
    except (ValueError, OverflowError):
        return None


def _sidecar_time(data: Mapping[str, Any], key: str) -> datetime | None:
    if data.get(key) is None:
        return None
    value = _aware_utc(str(data[key]))
    if value is None:
        raise ValueError(f"{key} {data[key]!r} is not an ISO time with a zone")
    return value


def sidecar_facts(data: Any) -> SidecarFacts:
    """Validate a recorder's JSON sidecar. Raises ValueError naming the first bad field."""
    if not isinstance(data, dict):
        raise ValueError(f"sidecar is a {type(data).__name__}, expected an object")
    start, end = _sidecar_time(data, "start_utc"), _sidecar_time(data, "end_utc")
    track = data.get("track") or []
    if not isinstance(track, list):
        raise ValueError("track is not a list of points")
    lat = lon = None
    for point in track:
        try:
            plat, plon = float(point["lat"]), float(point["lon"])
        except (KeyError, TypeError, ValueError):
            continue
        if -90 <= plat <= 90 and -180 <= plon <= 180 and (plat, plon) != (0.0, 0.0):
            lat, lon = plat, plon
            if start is None and point.get("utc"):
                start = _aware_utc(str(point["utc"]))
            break
    return SidecarFacts(start_utc=start, end_utc=end, device_time=data.get("device_time"), lat=lat, lon=lon,
                        serial=data.get("serial"), officer_number=data.get("officer_number"),
                        track_points=len(track))
