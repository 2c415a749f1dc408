"""Turn a staged copy and what was read about it into its catalogue row, whatever the file holds.

`staged_recording` is the one place a catalogue row is built for bytes just staged (a device recording here, an
attached document in ingest.documents). `new_recording` never raises on the file's content: a describe bug, an
impossible device clock or a retention date out of range becomes a flagged row (`unreadable`, `time_implausible`,
the reason kept), never a traceback that leaves a staged copy uncatalogued. Routine retention counts from the
later of capture end and the hand-off to the archive (`now`); a recording stamped with a case number, or marked
important, is held until a clerk decides (a pending-case hold). No I/O here: the caller reads the facts and writes
the row.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from catalog import Recording, RecordingState, RetentionPolicy, decide_retention
from catalog.integrity import worst
from catalog.retention import pending_case_holds, routine_base
from device_profiles import DeviceProfile
from ingest.describe.metadata import CaptureTime, Facts, RecordingMetadata, TimeBounds, describe, parse_filename
from ingest.scan import DeviceFile
from ingest.transfer import CopyResult

__all__ = ["Described", "RowContext", "fallback_metadata", "new_recording", "staged_recording"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowContext:
    """What one dock knows that every new row of it shares."""

    profile: DeviceProfile
    station: str
    station_zone: str
    station_place: tuple[float, float] | None
    policy: RetentionPolicy
    time_floor: datetime
    serial: str
    officer_option: str | None  # the collector named at ingest (--officer), which wins
    identity_officer_number: str | None
    identity_officer_name: str | None
    case_number: str | None
    purpose: str | None
    clock_offset_s: float | None
    defer_archive: bool


@dataclass(frozen=True)
class Described:
    """What is known of staged bytes beyond the bytes themselves: the descriptive columns of their row (the
    defaults are the catalogue's own)."""

    media_kind: str
    container: str | None
    time_source: str
    integrity_status: str
    integrity_detail: str = ""
    video_codec: str | None = None
    audio_codec: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    device_serial: str | None = None
    officer_number: str | None = None
    officer_name: str | None = None
    captured_start: datetime | None = None
    captured_end: datetime | None = None
    raw_device_time: str | None = None
    time_implausible: bool = False
    zone_assumed: str | None = None
    clock_offset_s: float = 0.0
    lat: float | None = None
    lon: float | None = None
    place_source: str | None = None
    case_number: str | None = None
    purpose: str | None = None
    important: bool = False


def staged_recording(copy: CopyResult, described: Described, *, original_name: str, station: str, now: datetime,
                     retain_until: datetime, retention_rule: str, technical: dict[str, Any],
                     legal_hold: bool = False, archived_at: datetime | None = None) -> Recording:
    """The catalogue row (state `staged`, entered *now*) of the bytes *copy* staged, as *described*.

    *archived_at* is set ahead only when the caller archives the copy inline right after cataloguing it.
    """
    d = described
    return Recording(
        sha256=copy.sha256, size_bytes=copy.size_bytes, media_kind=d.media_kind, container=d.container,
        video_codec=d.video_codec, audio_codec=d.audio_codec, duration_s=d.duration_s, width=d.width,
        height=d.height, original_name=original_name, device_serial=d.device_serial,
        officer_number=d.officer_number, officer_name=d.officer_name, station_code=station,
        captured_start=d.captured_start, captured_end=d.captured_end, raw_device_time=d.raw_device_time,
        time_source=d.time_source, time_implausible=d.time_implausible, zone_assumed=d.zone_assumed,
        clock_offset_s=d.clock_offset_s, lat=d.lat, lon=d.lon, place_source=d.place_source,
        case_number=d.case_number, purpose=d.purpose, important=d.important, integrity_status=d.integrity_status,
        integrity_detail=d.integrity_detail, state=RecordingState.STAGED.value, retain_until=retain_until,
        retention_rule=retention_rule, legal_hold=legal_hold, ingested_at=now, archived_at=archived_at,
        technical=technical)


def fallback_metadata(file: DeviceFile, facts: Facts | None, reason: str, now: datetime) -> RecordingMetadata:
    """A description that says only what is certain: the bytes are kept, what they are is not known."""
    when = CaptureTime(start=now, end=now, raw_device_time=None, source="docked", zone_assumed=None,
                       clock_offset_s=0.0, implausible=True, problem=f"not described ({reason}); the docking time "
                                                                     "stands in for the capture time")
    return RecordingMetadata(
        media_kind="other", container=facts.structure.format if facts else "unknown", video_codec=None,
        audio_codec=None,
        duration_s=None, width=None, height=None, capture=when, place=None, integrity_status="unreadable",
        integrity_detail=f"describing the file failed: {reason}"[:2000], important=False, serial_hint=None,
        officer_hint=None, technical={"describe_error": reason[:2000], "time_problem": when.problem})


def _describe(file: DeviceFile, facts: Facts, ctx: RowContext, now: datetime) -> RecordingMetadata:
    names = parse_filename(ctx.profile.filename, file.name)
    try:
        return describe(facts, profile=ctx.profile, station_zone=ctx.station_zone, station_place=ctx.station_place,
                        clock_offset_s=ctx.clock_offset_s, names=names,
                        bounds=TimeBounds(floor=ctx.time_floor, now=now),
                        role="housekeeping" if file.role in ("housekeeping", "identity") else file.role)
    except Exception as exc:
        logger.exception("Describing %r failed; it is catalogued as found.", file.relative)
        return fallback_metadata(file, facts, f"{type(exc).__name__}: {exc}", now)


def new_recording(file: DeviceFile, copy: CopyResult, facts: Facts | None, *, ctx: RowContext, now: datetime,
                  case_registered: bool, sidecar_note: str | None = None) -> Recording:
    """The catalogue row of a newly staged file (state `staged`); never raises on what the file holds.

    *facts* is None when reading the file failed outright. *case_registered*: a case with the stamped number exists
    here (only the wording of the pending-case hold depends on it).
    """
    meta = (fallback_metadata(file, None, "the file could not be read", now) if facts is None
            else _describe(file, facts, ctx, now))
    technical: dict[str, Any] = dict(meta.technical)
    technical["device_role"] = file.role
    if sidecar_note:
        technical["sidecar_note"] = sidecar_note
    if file.warnings:
        technical["name_warnings"] = list(file.warnings)
        technical["original_name_bytes_hex"] = os.fsencode(file.path.name).hex()
    if file.companion:
        technical["belongs_to_device_path"] = file.companion
    important = meta.important and file.role in ("recording", "unlisted")
    integrity, detail = meta.integrity_status, meta.integrity_detail
    if copy.size_bytes != file.size_bytes:
        # The device listed one size and gave another: the file changed while it was read, or the read ended early.
        integrity = worst(integrity, "damaged")
        detail = "; ".join(filter(None, [detail, f"the device listed {file.size_bytes} bytes but {copy.size_bytes} "
                                                 "were read (the file changed while it was copied, or the read "
                                                 "ended early); the copy is kept as read"]))
    pending = pending_case_holds(case_number=ctx.case_number, case_registered=case_registered,
                                 ever_linked_to_it=False, important=important, linked_now=False)
    base = routine_base(captured_end=meta.capture.end, entered_at=now, time_implausible=meta.capture.implausible)
    decision = decide_retention(base_time=base, current=None, cases=[], policy=ctx.policy, pending=pending)
    officer = ctx.officer_option or meta.officer_hint or ctx.identity_officer_number
    officer_name = ctx.identity_officer_name if officer and officer == ctx.identity_officer_number else None
    described = Described(
        media_kind=meta.media_kind, container=meta.container, video_codec=meta.video_codec,
        audio_codec=meta.audio_codec, duration_s=meta.duration_s, width=meta.width, height=meta.height,
        device_serial=meta.serial_hint or ctx.serial, officer_number=officer, officer_name=officer_name,
        captured_start=meta.capture.start, captured_end=meta.capture.end,
        raw_device_time=(meta.capture.raw_device_time or "")[:64] or None, time_source=meta.capture.source,
        time_implausible=meta.capture.implausible, zone_assumed=meta.capture.zone_assumed,
        clock_offset_s=meta.capture.clock_offset_s,
        lat=meta.place.lat if meta.place else None, lon=meta.place.lon if meta.place else None,
        place_source=meta.place.source if meta.place else None, case_number=ctx.case_number,
        purpose=ctx.purpose, important=important, integrity_status=integrity, integrity_detail=detail[:2000])
    return staged_recording(copy, described, original_name=file.name, station=ctx.station, now=now,
                            retain_until=decision.retain_until, retention_rule=decision.rule,
                            legal_hold=decision.legal_hold, archived_at=None if ctx.defer_archive else now,
                            technical=technical)
