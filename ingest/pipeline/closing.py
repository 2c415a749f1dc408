"""Ending a dock session: what the whole dock shows once every file is catalogued (companion links, _IMP marks as
stamp revisions), and its result in one word and in a sentence."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from catalog import CatalogError, CustodyKind, DockSession, Recording, append_event
from catalog.docks import sidecar_clock_offset
from catalog.models import DockResult
from catalog.policy_adoption import policy_in_force
from catalog.restamping import change_stamp
from catalog.sightings import last_sighting_at
from device_profiles import DeviceProfile
from ingest.clock_set import WrittenTimes, remove_station_time, write_station_time
from ingest.config import Settings
from ingest.pipeline.device import ClockReading
from ingest.pipeline.report import ErrorStage, IngestReport
from storage import EvidenceStore, StorageError

__all__ = ["ClockContext", "dock_result", "link_companions", "result_note", "set_device_clock",
           "stamp_marked_important"]

logger = logging.getLogger(__name__)


def link_companions(session: Session, serial: str, companions: list[tuple[int, str]], report: IngestReport) -> None:
    """Housekeeping files (thumbnails, sidecars) point at the recording they belong to, now every file of the
    dock is catalogued. *companions*: (new recording id, device path of the recording it serves)."""
    for recording_id, device_path in companions:
        sighting = last_sighting_at(session, device_serial=serial, device_path=device_path)
        row = session.get(Recording, recording_id)
        if sighting is not None and row is not None and row.belongs_to_id is None:
            row.belongs_to_id = sighting.recording_id
            session.add(row)
            report.refresh(row)


def stamp_marked_important(session: Session, store: EvidenceStore, marked: list[tuple[int, str]], *, serial: str,
                           actor: str, settings: Settings, key: Ed25519PrivateKey, report: IngestReport) -> None:
    """Known bytes seen again under an important (_IMP) name: the flag is a stamp revision by the station, sealed,
    with the pending-case hold applied at once (the same operation as a clerk's `evidence tag --important`).
    *marked*: (recording id, device path where it was seen marked)."""
    for recording_id, device_path in marked:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.important:
            continue
        try:
            change_stamp(session, store, recording, by=actor,
                         reason=f"seen again on device {serial} as {device_path}, marked important there",
                         case_pattern=settings.case_pattern,
                         policy=policy_in_force(session, settings.retention_policy),
                         key=key, important=True)
        except StorageError as exc:  # the revision stands; `evidence retention apply` completes the hold
            report.notes.append(f"recording {recording_id} marked important; its hold waits for the store: {exc}")
        except CatalogError as exc:  # the adopted policy cannot be read (an edited event): refused, before any write
            logger.error("Recording %s seen marked important on %s: not stamped (%s).", recording_id, serial, exc)
            report.notes.append(f"recording {recording_id} seen marked important as {device_path}; not stamped: {exc}")
        report.refresh(recording)


def dock_result(report: IngestReport, *, stopped: bool) -> str:
    """`interrupted` (the station stopped, the device went away), `partial` (some file failed) or `complete`."""
    if stopped or report.device_went_away:
        return DockResult.INTERRUPTED.value
    return DockResult.PARTIAL.value if report.errors else DockResult.COMPLETE.value


def result_note(dock: DockSession, report: IngestReport, *, stopped: bool, archive_messages: int,
                unsent_messages: int, from_journal: int) -> str:
    """What happened, in words: counts, why it did not complete, and where archiving stands.

    *from_journal*: how many of the files read are copies an earlier dock made and journaled during a catalogue
    outage (catalogued by this one; a file since replaced on the device is then counted twice, old and new),

    *archive_messages*: how many archive messages the dock wrote to the outbox (store-and-forward; 0 otherwise),
    *unsent_messages* of them not yet taken by the broker.
    """
    journaled = f" ({from_journal} of them copied at an earlier dock and journaled)" if from_journal else ""
    parts = [f"{dock.files_seen} file(s) read{journaled}: {dock.files_new} new, {dock.files_known} already known, "
             f"{len(report.skipped)} skipped, {dock.files_failed} failed"]
    if stopped:
        parts.append("the station stopped before the device was finished; the rest waits for the next dock")
    for error in report.errors:
        if error["stage"] == ErrorStage.DEVICE:
            parts.append(f"the device went away: {error['reason']}")
        elif error["stage"] == ErrorStage.STATION and not stopped:  # the run failed (ingest_folder)
            parts.append(f"the device was not read to its end: {error['reason']}")
    failed = report.file_errors()
    if failed:
        parts.append(f"{len(failed)} error(s), first: {failed[0]['file']}: {failed[0]['reason']}"[:400])
    if archive_messages:
        parts.append(f"{archive_messages} archive message(s) written to the outbox"
                     + (f", {unsent_messages} not yet taken by the broker when the dock ended (the relay hands them "
                        "over as soon as it answers)" if unsent_messages else ", all taken by the broker"))
    return "; ".join(parts)[:2000]


@dataclass(frozen=True)
class ClockContext:
    """What the dock's end needs to measure and set the device's clock."""

    root: Path
    profile: DeviceProfile
    settings: Settings
    serial: str
    measured: ClockReading | None  # what the dock's start measured, if it could
    same_device: Callable[[], bool]  # whether what is mounted at root now is the device docked
    written: WrittenTimes  # the time files this station wrote


def set_device_clock(session: Session, dock: DockSession, clock: ClockContext, *, new_ids: list[int], actor: str,
                     report: IngestReport, complete: bool, commit: Callable[[], None]) -> None:
    """The device's clock at the dock's end: measured from its GPS sidecars when nothing measured it at the start
    (`catalog.docks.sidecar_clock_offset`), then set to the station's (校时, `ingest.clock_set`) where the profile
    says how and EVIDENCE_CLOCK_SET allows, only after a *complete* dock (every file read: a card returning errors
    or pulled is not written to) and only to the very device docked (another card in the same slot, or the empty
    mount point, never). The `device_clock_set` event is committed at once (*commit*); when it cannot be, the file
    is taken back. A write that fails is a note of the dock's report and sets nothing."""
    measured_by = clock.measured.measured_by if clock.measured is not None else None
    if dock.clock_offset_s is None and "sidecar_gps" in clock.profile.clock_measures:
        offset = sidecar_clock_offset(session, new_ids)
        if offset is not None:
            dock.clock_offset_s, measured_by = offset, "sidecar_gps"
            report.notes.append(f"device clock measured against GPS: {offset:+g} s off the station's")
    rule = clock.profile.clock.set_rule
    if rule is None or not clock.settings.clock_set:
        return
    if not complete or not clock.same_device():
        report.notes.append("clock not set (校时): the dock did not read every file of the device, or the device "
                            "is no longer the one docked")
        return
    zone = rule.zone or clock.profile.clock.zone or clock.settings.station_tz
    try:
        done = write_station_time(clock.root, rule, zone=zone, written=clock.written.load())
    except OSError as exc:
        why = exc.strerror or str(exc)
        logger.warning("Clock of %s not set: %s could not be written: %s", clock.serial, rule.file, why)
        report.notes.append(f"clock not set (校时): {rule.file!r} could not be written on the device: {why}")
        return
    append_event(session, CustodyKind.DEVICE_CLOCK_SET, actor=actor, dock_session_id=dock.id, details={
        "device_serial": clock.serial, "station": clock.settings.station, "file": done.file, "written": done.written,
        "sha256": done.sha256, "zone": done.zone, "station_time": done.station_time.isoformat(),
        "offset_before_s": dock.clock_offset_s, "measured_by": measured_by})
    try:
        commit()
    except BaseException:
        remove_station_time(clock.root, done)  # no write without its event
        raise
    with contextlib.suppress(OSError):
        clock.written.add(done.sha256)
    report.notes.append(f"clock set (校时): {done.written} ({done.zone}) written to {done.file}")
