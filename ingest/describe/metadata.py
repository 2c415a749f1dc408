"""Turn what was read about a file into its description: pure functions only.

Inputs are plain values gathered by `ingest.describe.probe` (ffprobe JSON, EXIF
values, the sidecar, the filename, the file's own time); the output is a
`RecordingMetadata`: media kind, technical facts, capture time with its
source / zone / clock offset, place with its source, and an integrity
verdict. Nothing here touches a file, a process or the clock.

The parts live beside it: the facts and their parsers in `ingest.describe.facts`, the capture time in
`ingest.describe.capture_time`, the place in `ingest.describe.place`; their public names are re-exported here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from device_profiles import DeviceProfile
from ingest.describe.capture_time import (
    FUTURE_TOLERANCE,
    CaptureTime,
    RawTime,
    TimeBounds,
    collect_time_candidates,
    implausible_reason,
    measure_clock_offset,
    resolve_capture_time,
)
from ingest.describe.facts import (
    ExifFacts,
    Facts,
    FilenameFacts,
    SidecarFacts,
    exif_facts,
    parse_filename,
    sidecar_facts,
)
from ingest.describe.place import Place, choose_place, parse_iso6709
from ingest.describe.structure import AUDIO_BRANDS, AUDIO_FORMATS, MOVIE_FORMATS, PHOTO_FORMATS, RAW_STREAMS

__all__ = [
    "FUTURE_TOLERANCE", "MAX_DURATION_S", "CaptureTime", "ExifFacts", "Facts", "FilenameFacts", "Place", "RawTime",
    "RecordingMetadata", "SidecarFacts", "TimeBounds", "describe", "exif_facts", "implausible_reason",
    "measure_clock_offset", "parse_filename", "parse_iso6709", "plausible_duration", "resolve_capture_time",
    "sidecar_facts",
]

#: No recorder makes one file longer than this: a container claiming more (4,294,967,295 s is an unset or wrapped
#: 32-bit field) lies, and its duration is neither stored nor used for the capture end (which sets retention).
MAX_DURATION_S = 7 * 24 * 3600.0

_IMAGE_CODECS = {"mjpeg", "png", "bmp", "gif", "tiff", "webp"}


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


# ----------------------------------------------------------------------------- content


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
    if claimed is None or (claimed == claimed and claimed <= MAX_DURATION_S):
        return claimed, None
    said = f"the container claims a duration of {claimed:.0f} s ({claimed / 86400:.0f} days), more than " \
           f"{MAX_DURATION_S / 86400:.0f} days"
    usable = [d for d in streams if d is not None and d == d and 0 < d <= MAX_DURATION_S]
    if usable:
        return max(usable), f"{said}: its streams' {max(usable):g} s is used"
    return None, f"{said}: no duration is used and the capture end is taken as its start"


def _dimensions(video: dict[str, Any] | None, image_size: tuple[int, int] | None) -> tuple[Any, Any]:
    if video is not None:
        return video.get("width"), video.get("height")
    if image_size is not None:
        return image_size
    return None, None


def _container_name(fmt_info: Mapping[str, Any], sniffed: str) -> str | None:
    return fmt_info.get("format_name") or (sniffed if sniffed not in ("unknown", "empty") else None)


# ----------------------------------------------------------------------------- integrity


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


# ----------------------------------------------------------------------------- the whole


def _hints(facts: Facts, names: FilenameFacts | None) -> tuple[str | None, str | None]:
    """(serial, officer) the file names: the sidecar's first, then the filename's, then (serial) the EXIF's."""
    side = facts.sidecar
    serial = (side.serial if side else None) or (names.serial if names else None) or (
        facts.exif.serial if facts.exif else None)
    officer = (side.officer_number if side else None) or (names.officer if names else None)
    return serial, officer


def _exif_summary(exif: ExifFacts) -> dict[str, Any]:
    return {"make": exif.make, "model": exif.model, "serial": exif.serial,
            "gps_utc": exif.gps_utc.isoformat() if exif.gps_utc else None}


def _technical(facts: Facts, video: dict[str, Any] | None, audio: dict[str, Any] | None,
               times: Mapping[str, RawTime], unusable: Mapping[str, str], *, time_problem: str | None,
               duration_claimed_s: float | None) -> dict[str, Any]:
    """The technical facts kept with the recording (the key order is the order they are shown in)."""
    fmt_info = (facts.probe or {}).get("format", {})
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
    optional: dict[str, Any] = {
        "time_problem": time_problem,
        "duration_claimed_s": duration_claimed_s,
        "exif": _exif_summary(facts.exif) if facts.exif is not None else None,
        "audio": {"sample_rate": audio.get("sample_rate"), "channels": audio.get("channels")}
        if audio is not None else None,
        "video": {"frame_rate": video.get("avg_frame_rate"), "pix_fmt": video.get("pix_fmt")}
        if video is not None else None,
    }
    technical.update({k: v for k, v in optional.items() if v is not None})
    return technical


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

    times, unusable = collect_time_candidates(facts, names, zone=profile.clock.zone or station_zone,
                                              container_time_is_local=profile.clock.container_time_is_local)
    capture = resolve_capture_time(times, profile.time_sources, duration_s=duration,
                                   explicit_offset_s=clock_offset_s,
                                   sidecar_end=facts.sidecar.end_utc if facts.sidecar else None, bounds=bounds,
                                   unusable=unusable)
    if duration_problem:  # flagged like a wrong clock: the time needs a person's look
        capture = replace(capture, implausible=True,
                          problem="; ".join(filter(None, [capture.problem, duration_problem])))
    tags = {k: str(v) for k, v in (fmt_info.get("tags") or {}).items()}
    place = choose_place(facts.sidecar, facts.exif, tags, station_place)

    status, detail = _integrity(facts, content_kind, role)
    sidecar_note = f"sidecar ignored: {facts.sidecar_error}" if facts.sidecar_error else None
    detail = "; ".join(filter(None, [detail, sidecar_note, duration_problem]))
    serial, officer = _hints(facts, names)
    width, height = _dimensions(video, facts.image_size)
    return RecordingMetadata(
        media_kind=kind, container=_container_name(fmt_info, facts.structure.format),
        video_codec=video.get("codec_name") if video else None,
        audio_codec=audio.get("codec_name") if audio else None,
        duration_s=duration, width=width, height=height, capture=capture, place=place,
        integrity_status=status, integrity_detail=detail, important=bool(names and names.important),
        serial_hint=serial, officer_hint=officer,
        technical=_technical(facts, video, audio, times, unusable, time_problem=capture.problem,
                             duration_claimed_s=claimed if duration_problem else None),
    )
