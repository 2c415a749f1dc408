"""When a recording was made: every time reading a file holds, and the one capture time decided from them.

Readings come from the sidecar's GPS time, the recorder's own clock (sidecar device time, container tags,
EXIF, the filename) and the file's own time; `resolve_capture_time` picks the first plausible one in the
profile's order, applies the clock correction and says what was wrong with the others. Pure functions only:
the station's clock comes in as `TimeBounds.now`.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

from ingest.describe.facts import ExifFacts, Facts, FilenameFacts, SidecarFacts

__all__ = [
    "FUTURE_TOLERANCE", "CaptureTime", "RawTime", "TimeBounds", "collect_time_candidates", "implausible_reason",
    "measure_clock_offset", "resolve_capture_time",
]

#: How far after the station's own clock a capture time may lie before it is a wrong device clock.
FUTURE_TOLERANCE = timedelta(days=1)

#: Zone-less date-time layouts seen in container tags (ffprobe's IDIT rendering, ID3v2.3 TYER+TDAT+TIME, EXIF-like).
_WALL_CLOCK_FORMATS = ("%a %b %d %H:%M:%S %Y", "%Y:%m:%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M")
#: Tags holding when the recording was made, best first. ffprobe names them: creation_time (MP4/MOV/3GP/M4A
#: mvhd, Matroska DateUTC, AVI IDIT without a zone), modification_date (MXF identification set),
#: date (AVI ICRD, ID3 TDRC / TYER+TDAT+TIME), date_recorded (Matroska tag).
_DATE_TAGS = ("creation_time", "date_recorded", "modification_date", "date")


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


# ----------------------------------------------------------------------------- reading the times in a file


def _local_to_utc(naive: datetime, zone: str) -> datetime:
    """Raises OverflowError when the result is outside Python's range (year 1 east of UTC, year 9999 west)."""
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _strptime(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt)
    except ValueError:
        return None


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


def _container_tags(probe: Mapping[str, Any] | None) -> dict[str, str]:
    """The container's tags, then its streams' (the container's win), with lower-case names."""
    tags = {k.lower(): str(v) for k, v in ((probe or {}).get("format", {}).get("tags") or {}).items()}
    for stream in (probe or {}).get("streams", []):
        for k, v in (stream.get("tags") or {}).items():
            tags.setdefault(k.lower(), str(v))
    return tags


def _container_time(probe: Mapping[str, Any] | None, embedded: str | None = None) -> tuple[str, datetime, bool] | None:
    """(text, value, has_zone) from the container's own date tags, else from *embedded* (a wall-clock time the
    framing holds that ffprobe does not show: DV VAUX, AVCHD MDPM recording time). has_zone False: the
    value is the recorder's local wall clock."""
    tags = _container_tags(probe)
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


#: One reading before it is converted: (source, text, how to get its UTC value, zone assumed, device clock).
_Reading = tuple[str, str, Callable[[], datetime], str | None, bool]


def _sidecar_readings(side: SidecarFacts | None, zone: str) -> Iterator[_Reading]:
    if side is None:
        return
    start = side.start_utc
    if start is not None:
        yield "sidecar", start.isoformat(), lambda: start, None, False
    if side.device_time:
        naive = _strptime(side.device_time.strip()[:19], "%Y-%m-%d %H:%M:%S")
        if naive is not None:  # the recorder's own clock reading, written beside the GPS time
            yield "device_time", side.device_time, lambda: _local_to_utc(naive, zone), zone, True


def _container_readings(facts: Facts, zone: str, time_is_local: bool) -> Iterator[_Reading]:
    container = _container_time(facts.probe, facts.structure.embedded_time)
    if container is None:
        return
    text, value, has_zone = container
    if has_zone and not time_is_local:
        yield "container", text, lambda: value, None, True
    else:
        # Labelled UTC (or unlabelled) but holding the device's local wall clock.
        yield "container", text, lambda: _local_to_utc(value.replace(tzinfo=None), zone), zone, True


def _exif_readings(exif: ExifFacts | None, zone: str) -> Iterator[_Reading]:
    if exif is None or not exif.datetime_original:
        return
    naive = _strptime(exif.datetime_original[:19], "%Y:%m:%d %H:%M:%S")
    if naive is None:
        return
    offset = exif.offset_time_original
    if offset and re.fullmatch(r"[+-]\d\d:\d\d", offset):
        yield ("exif", f"{exif.datetime_original} {offset}",
               lambda: datetime.fromisoformat(naive.isoformat() + offset).astimezone(UTC), None, True)
    else:
        yield "exif", exif.datetime_original, lambda: _local_to_utc(naive, zone), zone, True


def _filename_readings(names: FilenameFacts | None, zone: str) -> Iterator[_Reading]:
    if names is not None and names.local_time is not None:
        local = names.local_time
        yield "filename", names.text, lambda: _local_to_utc(local, zone), zone, True


def collect_time_candidates(facts: Facts, names: FilenameFacts | None, *, zone: str,
                            container_time_is_local: bool) -> tuple[dict[str, RawTime], dict[str, str]]:
    """Every capture-time reading in the file (source -> reading), and the readings outside Python's range
    (source -> why): a device clock set to 0001 or 9999 must never stop an ingest.

    *zone* is the device's local zone, applied to wall-clock readings; *container_time_is_local* is the profile's
    word that the container's UTC label is wrong.
    """
    found: dict[str, RawTime] = {}
    unusable: dict[str, str] = {}
    readings = chain(_sidecar_readings(facts.sidecar, zone),
                     _container_readings(facts, zone, container_time_is_local),
                     _exif_readings(facts.exif, zone), _filename_readings(names, zone))
    for source, text, make, zone_assumed, device_clock in readings:
        try:
            value = make()
        except (OverflowError, ValueError) as exc:
            unusable[source] = f"{source} time {text!r} is outside the representable range ({exc})"
            continue
        found[source] = RawTime(source, text, value, zone_assumed, device_clock)
    try:
        mtime = datetime.fromtimestamp(facts.mtime_ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        unusable["file_mtime"] = f"file_mtime {facts.mtime_ns} ns is outside the representable range ({exc})"
    else:
        found["file_mtime"] = RawTime("file_mtime", mtime.isoformat(), mtime, None, True)
    return found, unusable


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


# ----------------------------------------------------------------------------- deciding the capture time


def _shift(value: datetime, seconds: float) -> datetime | None:
    try:
        return value + timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # past the calendar's end, or not a number (nan, inf)
        return None


def _choose(ordered: list[RawTime], offset_s: float | None, bounds: TimeBounds | None, rejected: list[str],
            fallback: datetime | None) -> tuple[RawTime, datetime, str | None]:
    """The first plausible reading (corrected by *offset_s*), else the first usable one, else the docking time;
    with what was wrong (each rejected reading is added to *rejected*)."""
    first_usable: tuple[RawTime, datetime] | None = None
    for candidate in ordered:
        corrected = _shift(candidate.utc, offset_s or 0.0) if candidate.device_clock else candidate.utc
        if corrected is None:
            rejected.append(f"{candidate.source} time {candidate.text!r} + clock offset "
                            f"{offset_s or 0:g} s is outside the representable range")
            continue
        first_usable = first_usable or (candidate, corrected)
        why = implausible_reason(corrected, bounds)
        if why is None:
            problem = f"used the {candidate.source} time because " + "; ".join(rejected) if rejected else None
            return candidate, corrected, problem
        rejected.append(f"{candidate.source} time {candidate.text!r} = {why}")
    if first_usable is not None:
        chosen, start = first_usable
        return chosen, start, (f"no plausible capture time; kept the device's {chosen.source} time as found: "
                               + "; ".join(rejected))
    when = fallback or (bounds.now if bounds else datetime(1970, 1, 1, tzinfo=UTC))
    return (RawTime("docked", when.isoformat(), when, None, False), when,
            "no usable capture time; the docking time is used: " + "; ".join(rejected))


def _device_offset(chosen: RawTime, start: datetime, ordered: list[RawTime], candidates: Mapping[str, RawTime],
                   offset_s: float | None) -> tuple[RawTime | None, float]:
    """The device clock's reading and how far it was from the time used."""
    if chosen.device_clock:
        return chosen, offset_s or 0.0
    # An independent clock won: measure the device clock against it. A file's mtime is
    # too loose (copies, FAT's local time) to measure a drift with.
    readings = [c for c in ordered if c.device_clock and c.source != "file_mtime"]
    device = candidates.get("device_time") or (readings[0] if readings else None)
    try:
        return device, round((start - device.utc).total_seconds(), 3) if device is not None else 0.0
    except OverflowError:
        return device, 0.0


def _capture_end(start: datetime, end: datetime | None, bounds: TimeBounds | None) -> tuple[datetime, str | None]:
    """The end to record, and why a claimed *end* was not used."""
    if end is not None and bounds is not None and end > bounds.latest and start <= bounds.latest:
        # A plausible start with an end past the station's clock: the header's duration (or the sidecar's end)
        # lies; it must not stretch retention, so the end is taken as the start.
        length = (end - start).total_seconds()
        return start, (f"end {implausible_reason(end, bounds)} (a duration of {length:g} s); "
                       "the end is taken as the start")
    return max(start, end or start), None


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
    ordered = [candidates[s] for s in order if s in candidates]
    if not ordered and "file_mtime" in candidates:
        ordered = [candidates["file_mtime"]]
    rejected = [unusable[s] for s in order if s in unusable]
    chosen, start, problem = _choose(ordered, explicit_offset_s, bounds, rejected, fallback)
    device, offset = _device_offset(chosen, start, ordered, candidates, explicit_offset_s)
    claimed_end = sidecar_end if sidecar_end is not None and chosen.source == "sidecar" else _shift(
        start, duration_s or 0.0)
    end, end_problem = _capture_end(start, claimed_end, bounds)
    problem = "; ".join(filter(None, [problem, end_problem])) or None
    return CaptureTime(start=start, end=end, raw_device_time=(device or chosen).text,
                       source=chosen.source, zone_assumed=chosen.zone_assumed, clock_offset_s=offset,
                       implausible=problem is not None, problem=problem)
