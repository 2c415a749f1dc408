"""Turn what was read about a file into its description: pure functions only.

Inputs are plain values gathered by `ingest.describe.probe` (ffprobe JSON, EXIF
values, the sidecar, the filename, the file's own time); the output is a
`RecordingMetadata`: media kind, technical facts, capture time with its
source / zone / clock offset, place with its source, and an integrity
verdict. Nothing here touches a file, a process or the clock.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from device_profiles import DeviceProfile, FilenameRule
from ingest.describe.structure import AUDIO_BRANDS, AUDIO_FORMATS, MOVIE_FORMATS, PHOTO_FORMATS, RAW_STREAMS, Structure

__all__ = [
    "FUTURE_TOLERANCE", "MAX_DURATION_S", "CaptureTime", "ExifFacts", "Facts", "FilenameFacts", "Place", "RawTime",
    "RecordingMetadata", "SidecarFacts", "TimeBounds", "describe", "exif_facts", "implausible_reason",
    "measure_clock_offset", "parse_filename", "parse_iso6709", "plausible_duration", "resolve_capture_time",
    "sidecar_facts",
]

#: How far after the station's own clock a capture time may lie before it is a wrong device clock.
FUTURE_TOLERANCE = timedelta(days=1)
#: No recorder makes one file longer than this: a container claiming more (4,294,967,295 s is an unset or wrapped
#: 32-bit field) lies, and its duration is neither stored nor used for the capture end (which sets retention).
MAX_DURATION_S = 7 * 24 * 3600.0

_IMAGE_CODECS = {"mjpeg", "png", "bmp", "gif", "tiff", "webp"}
_LOCATION_TAGS = ("location", "location-eng", "com.apple.quicktime.location.ISO6709", "xyz")
_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?(?:CRS[^/]*)?/?\s*$")


@dataclass(frozen=True)
class RawTime:
    source: str  # sidecar | container | exif | filename | file_mtime
    text: str  # the value as the device wrote it
    utc: datetime  # the value read as UTC (zone applied when it was local time)
    zone_assumed: str | None  # the zone applied to a local time, None when the value carried one
    device_clock: bool  # True when it comes from the recorder's own clock


@dataclass(frozen=True)
class CaptureTime:
    start: datetime
    end: datetime
    raw_device_time: str | None
    source: str
    zone_assumed: str | None
    clock_offset_s: float  # corrected UTC minus the device clock's reading (0: none known/applied)
    implausible: bool = False  # a wrong device clock: no source, or not the preferred one, gave a sane time
    problem: str | None = None  # what was wrong, with the raw values


@dataclass(frozen=True)
class TimeBounds:
    """What a capture time may be: not before *floor*, not after the station's clock (*now*) + FUTURE_TOLERANCE."""

    floor: datetime
    now: datetime

    @property
    def latest(self) -> datetime:
        return self.now + FUTURE_TOLERANCE


@dataclass(frozen=True)
class Place:
    lat: float
    lon: float
    source: str  # sidecar | exif | container | station


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


@dataclass(frozen=True)
class RecordingMetadata:
    media_kind: str
    container: str | None
    video_codec: str | None
    audio_codec: str | None
    duration_s: float | None
    width: int | None
    height: int | None
    capture: CaptureTime
    place: Place | None
    integrity_status: str
    integrity_detail: str
    important: bool
    serial_hint: str | None
    officer_hint: str | None
    technical: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- parsers


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


def parse_iso6709(text: str) -> tuple[float, float] | None:
    """'+39.9042+116.4074+050.000/' -> (39.9042, 116.4074); None if not ISO 6709 decimal degrees."""
    match = _ISO6709.match(text)
    if not match:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def _dms(values: Any, ref: Any, negative: str) -> float | None:
    if not isinstance(values, list | tuple) or len(values) != 3:
        return None
    try:
        deg = float(values[0]) + float(values[1]) / 60 + float(values[2]) / 3600
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return -deg if str(ref).strip().upper().startswith(negative) else deg


def exif_facts(tags: Mapping[str, Any]) -> ExifFacts:
    """EXIF tags (exifread names; ratios as floats) -> the facts we use."""
    lat = _dms(tags.get("GPS GPSLatitude"), tags.get("GPS GPSLatitudeRef", "N"), "S")
    lon = _dms(tags.get("GPS GPSLongitude"), tags.get("GPS GPSLongitudeRef", "E"), "W")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    if lat == 0.0 and lon == 0.0:
        lat = lon = None  # "null island": receivers write zeros before their first fix
    if lat is not None and lon is not None:
        lat, lon = round(lat, 7), round(lon, 7)  # ~1 cm; drops the noise of degree/minute/second ratios
    gps_utc = None
    stamp, date = tags.get("GPS GPSTimeStamp"), tags.get("GPS GPSDate")
    if isinstance(stamp, list | tuple) and len(stamp) == 3 and isinstance(date, str):
        try:
            day = datetime.strptime(date.strip(), "%Y:%m:%d").replace(tzinfo=UTC)
            gps_utc = day + timedelta(hours=float(stamp[0]), minutes=float(stamp[1]), seconds=float(stamp[2]))
        except (ValueError, TypeError, ZeroDivisionError):
            gps_utc = None

    def text(key: str) -> str | None:
        value = tags.get(key)
        return str(value).strip() or None if value is not None else None

    return ExifFacts(
        datetime_original=text("EXIF DateTimeOriginal") or text("Image DateTime"),
        offset_time_original=text("EXIF OffsetTimeOriginal") or text("EXIF OffsetTime"),
        lat=lat, lon=lon, gps_utc=gps_utc, make=text("Image Make"), model=text("Image Model"),
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


def sidecar_facts(data: Any) -> SidecarFacts:
    """Validate a recorder's JSON sidecar. Raises ValueError naming the first bad field."""
    if not isinstance(data, dict):
        raise ValueError(f"sidecar is a {type(data).__name__}, expected an object")
    start = end = None
    if data.get("start_utc") is not None:
        start = _aware_utc(str(data["start_utc"]))
        if start is None:
            raise ValueError(f"start_utc {data['start_utc']!r} is not an ISO time with a zone")
    if data.get("end_utc") is not None:
        end = _aware_utc(str(data["end_utc"]))
        if end is None:
            raise ValueError(f"end_utc {data['end_utc']!r} is not an ISO time with a zone")
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


# ----------------------------------------------------------------------------- time


def _local_to_utc(naive: datetime, zone: str) -> datetime:
    """Raises OverflowError when the result is outside Python's range (year 1 east of UTC, year 9999 west)."""
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def implausible_reason(value: datetime, bounds: TimeBounds | None) -> str | None:
    """Why *value* cannot be a real capture time (None: it can)."""
    if bounds is None:
        return None
    if value < bounds.floor:
        return f"{value.isoformat()} is before {bounds.floor.date().isoformat()} (the earliest plausible time)"
    if value > bounds.latest:
        return (f"{value.isoformat()} is more than {FUTURE_TOLERANCE.days} day after the station's clock "
                f"({bounds.now.isoformat(timespec='seconds')})")
    return None


#: Zone-less date-time layouts seen in container tags (ffprobe's IDIT rendering, ID3v2.3 TYER+TDAT+TIME, EXIF-like).
_WALL_CLOCK_FORMATS = ("%a %b %d %H:%M:%S %Y", "%Y:%m:%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M")
#: Tags holding when the recording was made, best first. ffprobe names them: creation_time (MP4/MOV/3GP/M4A
#: mvhd, Matroska DateUTC, AVI IDIT without a zone), modification_date (MXF identification set),
#: date (AVI ICRD, ID3 TDRC / TYER+TDAT+TIME), date_recorded (Matroska tag).
_DATE_TAGS = ("creation_time", "date_recorded", "modification_date", "date")


def _parse_stamp(text: str) -> tuple[datetime, bool] | None:
    """A full date and time: (value, True) when it carries a zone (in UTC where representable), (naive wall
    clock, False) when not; None for a date alone, a time alone or anything else."""
    text = text.strip()
    if not re.search(r"\d{4}", text) or not re.search(r"\d{1,2}:\d{2}", text):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return next(((v, False) for fmt in _WALL_CLOCK_FORMATS if (v := _strptime(text, fmt)) is not None), None)
    try:
        return (value, False) if value.tzinfo is None else (value.astimezone(UTC), True)
    except OverflowError:
        return None  # year 1 / 9999 at an offset: UTC cannot hold it, so it cannot be a capture time


def _strptime(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt)
    except ValueError:
        return None


def _container_time(probe: Mapping[str, Any] | None, embedded: str | None = None) -> tuple[str, datetime, bool] | None:
    """(text, value, has_zone) from the container's own date tags, else from *embedded* (a wall-clock time the
    framing holds that ffprobe does not show: DV VAUX, AVCHD MDPM recording time). has_zone False: the
    value is the recorder's local wall clock."""
    tags = {k.lower(): str(v) for k, v in ((probe or {}).get("format", {}).get("tags") or {}).items()}
    for stream in (probe or {}).get("streams", []):
        for k, v in (stream.get("tags") or {}).items():
            tags.setdefault(k.lower(), str(v))
    # Apple's creationdate keeps the capture moment with its offset even after an edit re-stamps creation_time.
    for key in ("com.apple.quicktime.creationdate", "creation_time"):
        parsed = _parse_stamp(tags.get(key, ""))
        if parsed is not None and parsed[1]:
            return tags[key], parsed[0], True
    created, date = tags.get("creation_time", "").strip(), tags.get("date", "").strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) and re.fullmatch(r"\d{2}:\d{2}:\d{2}", created):
        # Broadcast-WAV bext origination date + time (ffprobe shows them as date / creation_time):
        # the recorder's local wall clock.
        text = f"{date} {created}"
        return text, datetime.strptime(text, "%Y-%m-%d %H:%M:%S"), False
    for text in [tags.get(key, "").strip() for key in _DATE_TAGS] + [embedded or ""]:
        if (parsed := _parse_stamp(text)) is not None:
            return text, parsed[0], parsed[1]
    return None


def _candidates(facts: Facts, names: FilenameFacts | None, profile: DeviceProfile, zone: str,
                unusable: dict[str, str]) -> dict[str, RawTime]:
    """Every capture-time reading in the file; a reading outside Python's range goes to *unusable* (source -> why)
    instead: a device clock set to 0001 or 9999 must never stop an ingest."""
    found: dict[str, RawTime] = {}

    def add(source: str, text: str, make: Any, zone_assumed: str | None, device_clock: bool) -> None:
        try:
            value = make()
        except (OverflowError, ValueError) as exc:
            unusable[source] = f"{source} time {text!r} is outside the representable range ({exc})"
            return
        found[source] = RawTime(source, text, value, zone_assumed, device_clock)

    side = facts.sidecar
    if side is not None and side.start_utc is not None:
        found["sidecar"] = RawTime("sidecar", side.start_utc.isoformat(), side.start_utc, None, False)
    if side is not None and side.device_time:
        try:
            naive = datetime.strptime(side.device_time.strip()[:19], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            naive = None
        if naive is not None:  # the recorder's own clock reading, written beside the GPS time
            add("device_time", side.device_time, lambda: _local_to_utc(naive, zone), zone, True)
    container = _container_time(facts.probe, facts.structure.embedded_time)
    if container is not None:
        text, value, has_zone = container
        if has_zone and not profile.clock.container_time_is_local:
            found["container"] = RawTime("container", text, value, None, True)
        else:
            # Labelled UTC (or unlabelled) but holding the device's local wall clock.
            add("container", text, lambda: _local_to_utc(value.replace(tzinfo=None), zone), zone, True)
    exif = facts.exif
    if exif is not None and exif.datetime_original:
        try:
            naive = datetime.strptime(exif.datetime_original[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            naive = None
        if naive is not None:
            offset = exif.offset_time_original
            if offset and re.fullmatch(r"[+-]\d\d:\d\d", offset):
                add("exif", f"{exif.datetime_original} {offset}",
                    lambda: datetime.fromisoformat(naive.isoformat() + offset).astimezone(UTC), None, True)
            else:
                add("exif", exif.datetime_original, lambda: _local_to_utc(naive, zone), zone, True)
    if names is not None and names.local_time is not None:
        local = names.local_time
        add("filename", names.text, lambda: _local_to_utc(local, zone), zone, True)
    try:
        mtime = datetime.fromtimestamp(facts.mtime_ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        unusable["file_mtime"] = f"file_mtime {facts.mtime_ns} ns is outside the representable range ({exc})"
    else:
        found["file_mtime"] = RawTime("file_mtime", mtime.isoformat(), mtime, None, True)
    return found


def measure_clock_offset(text: str, *, fmt: str, zone: str, station_now: datetime) -> float | None:
    """Seconds to add to the device clock to get UTC, from the device's own clock reading at docking.

    *text* is what the device shows (its first line is parsed with *fmt*, in *zone*); None if unreadable.
    Rounded to whole seconds: the reading itself is only that precise.
    """
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    try:
        device = datetime.strptime(line, fmt)
    except ValueError:
        return None
    device_utc = device.replace(tzinfo=ZoneInfo(zone)) if device.tzinfo is None else device
    try:
        return float(round((station_now - device_utc.astimezone(UTC)).total_seconds()))
    except OverflowError:  # a clock at year 1 / 9999: no usable offset, the files' own times are judged instead
        return None


def _shift(value: datetime, seconds: float) -> datetime | None:
    try:
        return value + timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # past the calendar's end, or not a number (nan, inf)
        return None


def resolve_capture_time(candidates: Mapping[str, RawTime], order: tuple[str, ...], *,
                         duration_s: float | None, explicit_offset_s: float | None = None,
                         sidecar_end: datetime | None = None, bounds: TimeBounds | None = None,
                         unusable: Mapping[str, str] | None = None, fallback: datetime | None = None) -> CaptureTime:
    """Pick the first source in *order* that gives a plausible time (within *bounds*) and apply the clock correction.

    A known offset (given at ingest) corrects device-clock sources. When an independent clock (GPS in a sidecar)
    wins, the offset recorded is how far the device clock was from it. When the preferred source is unusable or
    implausible (a clock reset to 2000, a name saying 9999) the next plausible one is used and the result is flagged
    `implausible` with every rejected reading in `problem`; when none is plausible the first usable one is kept as
    the device gave it (flagged), else *fallback* (the docking time). Never raises.
    """
    unusable = unusable or {}
    preferred = [s for s in order if s in candidates or s in unusable]
    ordered = [candidates[s] for s in order if s in candidates]
    if not ordered and "file_mtime" in candidates:
        ordered = [candidates["file_mtime"]]
    rejected: list[str] = [unusable[s] for s in preferred if s in unusable]
    chosen: RawTime | None = None
    start: datetime | None = None
    first_usable: tuple[RawTime, datetime] | None = None
    for candidate in ordered:
        corrected = _shift(candidate.utc, explicit_offset_s or 0.0) if candidate.device_clock else candidate.utc
        if corrected is None:
            rejected.append(f"{candidate.source} time {candidate.text!r} + clock offset "
                            f"{explicit_offset_s or 0:g} s is outside the representable range")
            continue
        first_usable = first_usable or (candidate, corrected)
        why = implausible_reason(corrected, bounds)
        if why is None:
            chosen, start = candidate, corrected
            break
        rejected.append(f"{candidate.source} time {candidate.text!r} = {why}")
    problem: str | None = None
    if chosen is None or start is None:
        if first_usable is not None:
            chosen, start = first_usable
            problem = "no plausible capture time; kept the device's " + chosen.source + " time as found: "
        else:
            when = fallback or (bounds.now if bounds else datetime(1970, 1, 1, tzinfo=UTC))
            chosen, start = RawTime("docked", when.isoformat(), when, None, False), when
            problem = "no usable capture time; the docking time is used: "
        problem += "; ".join(rejected)
    elif rejected:
        problem = f"used the {chosen.source} time because " + "; ".join(rejected)
    if chosen.device_clock:
        device: RawTime | None = chosen
        offset = explicit_offset_s or 0.0
    else:
        # An independent clock won: measure the device clock against it. A file's mtime is
        # too loose (copies, FAT's local time) to measure a drift with.
        readings = [c for c in ordered if c.device_clock and c.source != "file_mtime"]
        device = candidates.get("device_time") or (readings[0] if readings else None)
        try:
            offset = round((start - device.utc).total_seconds(), 3) if device is not None else 0.0
        except OverflowError:
            offset = 0.0
    end = sidecar_end if sidecar_end is not None and chosen.source == "sidecar" else _shift(start, duration_s or 0.0)
    if end is not None and bounds is not None and end > bounds.latest and start <= bounds.latest:
        # A plausible start with an end past the station's clock: the header's duration (or the sidecar's end)
        # lies; it must not stretch retention, so the end is taken as the start.
        length = (end - start).total_seconds()
        why = f"end {implausible_reason(end, bounds)} (a duration of {length:g} s); the end is taken as the start"
        problem = "; ".join(filter(None, [problem, why]))
        end = start
    return CaptureTime(start=start, end=max(start, end or start), raw_device_time=(device or chosen).text,
                       source=chosen.source, zone_assumed=chosen.zone_assumed, clock_offset_s=offset,
                       implausible=problem is not None, problem=problem)


# ----------------------------------------------------------------------------- the whole


def _streams(probe: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    video = audio = None
    for stream in (probe or {}).get("streams", []):
        attached = (stream.get("disposition") or {}).get("attached_pic")
        if stream.get("codec_type") == "video" and not attached and video is None:
            video = stream
        elif stream.get("codec_type") == "audio" and audio is None:
            audio = stream
    return video, audio


def _media_kind(fmt: str, video: dict[str, Any] | None, audio: dict[str, Any] | None,
                brand: str | None = None) -> str:
    """video / audio / photo / other from the content: the sniffed format and the streams ffprobe found."""
    if fmt in PHOTO_FORMATS:
        return "photo"
    if video is not None:
        # a still-image codec in something that is not a movie container (ffprobe's image demuxers)
        return "photo" if video.get("codec_name") in _IMAGE_CODECS and fmt not in MOVIE_FORMATS else "video"
    if audio is not None or fmt in AUDIO_FORMATS or (fmt == "mp4" and brand in AUDIO_BRANDS):
        return "audio"
    return "video" if fmt in MOVIE_FORMATS else "other"


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result >= 0 else None


def plausible_duration(claimed: float | None, streams: list[float | None]) -> tuple[float | None, str | None]:
    """The duration to use, and why the container's was not: a claim above MAX_DURATION_S (or not finite) is
    replaced by the longest plausible stream duration, else by none. Pure."""
    if claimed is None or claimed == claimed and claimed <= MAX_DURATION_S:
        return claimed, None
    said = f"the container claims a duration of {claimed:.0f} s ({claimed / 86400:.0f} days), more than " \
           f"{MAX_DURATION_S / 86400:.0f} days"
    usable = [d for d in streams if d is not None and d == d and 0 < d <= MAX_DURATION_S]
    if usable:
        return max(usable), f"{said}: its streams' {max(usable):g} s is used"
    return None, f"{said}: no duration is used and the capture end is taken as its start"


def _integrity(facts: Facts, kind: str, role: str) -> tuple[str, str]:
    """The verdict on the content (*kind* is what the content is, whatever the profile calls the file)."""
    structure = facts.structure
    ffprobe = f"; ffprobe: {facts.probe_error}" if facts.probe_error else ""
    if structure.format == "empty":
        return ("unreadable", structure.problem or "empty file (0 bytes)") if role == "recording" else (
            "ok", "empty file (0 bytes); not audiovisual media; kept as found")
    if kind == "other" and role != "recording":
        return "ok", "not audiovisual media; kept as found"
    if kind == "other":
        head = structure.first_bytes
        shown = f"first bytes {head.hex(' ')} = {head!r}" if head else "no bytes read"
        return "unreadable", ("named like a recording but its content is not a recognised audiovisual format "
                              f"({shown}){ffprobe}")
    if structure.problem:
        return "damaged", structure.problem + ffprobe
    if kind == "photo":
        if facts.image_error:
            return "damaged", f"image header unreadable: {facts.image_error}"
        return "ok", ""
    if facts.probe_error:
        return "damaged", f"ffprobe: {facts.probe_error}"
    if facts.probe is None:
        return "unreadable", f"unrecognised format ({structure.format})"
    if kind in ("video", "audio") and _float(facts.probe.get("format", {}).get("duration")) is None:
        if structure.format in RAW_STREAMS:
            return "ok", f"raw {RAW_STREAMS[structure.format]} stream without a container: no duration or date in it"
        return "damaged", "container gives no duration"
    return "ok", ""


def describe(facts: Facts, *, profile: DeviceProfile, station_zone: str,
             station_place: tuple[float, float] | None = None, clock_offset_s: float | None = None,
             names: FilenameFacts | None = None, bounds: TimeBounds | None = None,
             role: str = "recording") -> RecordingMetadata:
    """Everything the catalog records about a file, decided from *facts* alone.

    *bounds* (the sane floor and the station's clock at docking) decide which capture times are plausible.
    *role* is what the profile says of the file: `recording` (a recording pattern matched), `housekeeping` (a
    device-made derivative such as .THM/.LRV or a sidecar: kept as kind `other`) or `unlisted` (neither: its
    content alone says what it is).
    """
    video, audio = _streams(facts.probe)
    content_kind = _media_kind(facts.structure.format, video, audio, facts.structure.brand)
    kind = "other" if role == "housekeeping" else content_kind
    fmt_info = (facts.probe or {}).get("format", {})
    claimed = _float(fmt_info.get("duration")) if kind in ("video", "audio") else None
    duration, duration_problem = plausible_duration(
        claimed, [_float(s.get("duration")) for s in (facts.probe or {}).get("streams", [])])
    width = height = None
    if video is not None:
        width, height = video.get("width"), video.get("height")
    elif facts.image_size is not None:
        width, height = facts.image_size

    zone = profile.clock.zone or station_zone
    unusable: dict[str, str] = {}
    times = _candidates(facts, names, profile, zone, unusable)
    capture = resolve_capture_time(times, profile.time_sources, duration_s=duration,
                                   explicit_offset_s=clock_offset_s,
                                   sidecar_end=facts.sidecar.end_utc if facts.sidecar else None, bounds=bounds,
                                   unusable=unusable)
    if duration_problem:  # flagged like a wrong clock: the time needs a person's look
        capture = replace(capture, implausible=True,
                          problem="; ".join(filter(None, [capture.problem, duration_problem])))

    place = None
    tags = {k: str(v) for k, v in (fmt_info.get("tags") or {}).items()}
    container_place = next((p for t in _LOCATION_TAGS if t in tags and (p := parse_iso6709(tags[t]))), None)
    if facts.sidecar is not None and facts.sidecar.lat is not None and facts.sidecar.lon is not None:
        place = Place(facts.sidecar.lat, facts.sidecar.lon, "sidecar")
    elif facts.exif is not None and facts.exif.lat is not None and facts.exif.lon is not None:
        place = Place(facts.exif.lat, facts.exif.lon, "exif")
    elif container_place is not None:
        place = Place(container_place[0], container_place[1], "container")
    elif station_place is not None:
        place = Place(station_place[0], station_place[1], "station")

    status, detail = _integrity(facts, content_kind, role)
    if facts.sidecar_error:
        detail = "; ".join(filter(None, [detail, f"sidecar ignored: {facts.sidecar_error}"]))
    if duration_problem:
        detail = "; ".join(filter(None, [detail, duration_problem]))
    serial = (facts.sidecar.serial if facts.sidecar else None) or (names.serial if names else None) or (
        facts.exif.serial if facts.exif else None)
    officer = (facts.sidecar.officer_number if facts.sidecar else None) or (names.officer if names else None)
    technical: dict[str, Any] = {
        "format": facts.structure.format,
        "format_name": fmt_info.get("format_name"),
        "bit_rate": fmt_info.get("bit_rate"),
        "time_candidates": {k: {"text": v.text, "utc": v.utc.isoformat(), "zone_assumed": v.zone_assumed}
                            for k, v in times.items()}
                           | {k: {"utc": None, "problem": why} for k, why in unusable.items()},
    }
    streams = [str(s.get("codec_type")) for s in (facts.probe or {}).get("streams", [])]
    technical.update({k: v for k, v in (("brand", facts.structure.brand), ("structure_note", facts.structure.note),
                                        ("streams", {t: streams.count(t) for t in sorted(set(streams))})) if v})
    if capture.problem:
        technical["time_problem"] = capture.problem
    if duration_problem:
        technical["duration_claimed_s"] = claimed
    if facts.exif is not None:
        technical["exif"] = {"make": facts.exif.make, "model": facts.exif.model, "serial": facts.exif.serial,
                             "gps_utc": facts.exif.gps_utc.isoformat() if facts.exif.gps_utc else None}
    if audio is not None:
        technical["audio"] = {"sample_rate": audio.get("sample_rate"), "channels": audio.get("channels")}
    if video is not None:
        technical["video"] = {"frame_rate": video.get("avg_frame_rate"), "pix_fmt": video.get("pix_fmt")}
    return RecordingMetadata(
        media_kind=kind,
        container=fmt_info.get("format_name") or (facts.structure.format if facts.structure.format not in
                                                   ("unknown", "empty") else None),
        video_codec=video.get("codec_name") if video else None,
        audio_codec=audio.get("codec_name") if audio else None,
        duration_s=duration, width=width, height=height, capture=capture, place=place,
        integrity_status=status, integrity_detail=detail, important=bool(names and names.important),
        serial_hint=serial, officer_hint=officer, technical=technical,
    )
