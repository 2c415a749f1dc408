"""One-shot ingest of a docked device or a folder.

For each recording: skip it if this device already gave us these bytes;
copy + hash in one pass into staging; describe it from the staging copy
(in parallel with the next copy); stamp it; put it in the WORM store;
record everything as custody events. One bad file is reported and never
stops the rest; a file is never lost: if the store refuses it, it stays in
staging as `staged` and is archived on the next run.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import math
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from catalog import (
    Case,
    CustodyKind,
    DockSession,
    Recording,
    RecordingState,
    Sighting,
    Stamp,
    StampInvalid,
    append_event,
    ensure_device,
    ensure_officer,
    ensure_station,
    ensure_station_key,
    find_by_sha256,
    find_known_sighting,
    load_or_create_key,
    outbox,
    record_stamp,
    recording_as_json,
    redact_url,
    validate_stamp,
    write_manifest,
)
from catalog.db import begin_write
from catalog.docks import close_open_sessions
from catalog.integrity import INGEST_CHECK, record_integrity
from catalog.replay import ROW_KEY, row_values
from catalog.restamping import change_stamp
from catalog.types import utcnow
from device_profiles import DeviceProfile, get_profile, load_profiles, recognise
from ingest import journal, known_files
from ingest.archiving import archive_staged, mark_archived
from ingest.config import Settings
from ingest.describe.identity import DeviceIdentity, read_identity
from ingest.describe.metadata import Facts, TimeBounds, implausible_reason, measure_clock_offset, parse_filename
from ingest.describe.probe import MAX_SIDECAR_BYTES, gather_facts
from ingest.errors import CatalogueDeferred, CopyFailed, DeviceGone, first_line
from ingest.journal import JournalEntry
from ingest.journal import forget as forget_journal
from ingest.journal import load as load_journal
from ingest.journal import record as record_journal
from ingest.journal import sync as sync_journal
from ingest.pipeline.cataloguing import RowContext, new_recording
from ingest.scan import DeviceFile, scan_device, sidecar_path
from ingest.transfer import CopyResult, copy_and_hash
from storage import EvidenceStore, StorageError, StoredObject

__all__ = ["IngestOptions", "IngestReport", "busy_serials", "catalogue_journal", "ingest_folder"]

logger = logging.getLogger(__name__)

#: How the serial of a device without any identity begins (it is named by where it was mounted, so another card in
#: the same slot gets the same name: its files are always read and told apart by their hash).
ANONYMOUS_SERIAL = "unknown-"
#: Uploads to the store that may run beside the copying (each bounded in memory by the store itself).
ARCHIVES_IN_FLIGHT = 2
#: Registration of station, officer, device and key rows, one dock at a time within a process.
_REGISTER_LOCK = threading.Lock()
#: Device serials an ingest run of this process is working on (their journals are live, not left over).
_BUSY: set[str] = set()
_BUSY_LOCK = threading.Lock()
#: How often a paused ingest looks for staging space again.
DISK_FULL_POLL_S = 0.5
#: Files larger than this are copied outside any open catalogue transaction.
LONG_COPY_BYTES = 4 * 1024 * 1024
#: Catalog commits are grouped: at most this many files or this many seconds per transaction.
COMMIT_EVERY_FILES = 64
COMMIT_EVERY_S = 1.0


def busy_serials() -> set[str]:
    """Serials of the devices this process is ingesting or cataloguing right now."""
    with _BUSY_LOCK:
        return set(_BUSY)


@dataclass(frozen=True)
class IngestOptions:
    profile: str | None = None
    officer: str | None = None
    case_number: str | None = None
    purpose: str | None = None
    clock_offset_s: float | None = None
    actor: str = "station"
    defer_archive: bool = False  # leave recordings staged for the archive queue (store-and-forward)
    should_stop: Callable[[], bool] | None = None  # checked between files: a station shutting down
    usb: dict[str, str] | None = None  # the docked volume's USB identity, when the station knows it


@dataclass
class IngestReport:
    dock_session_id: int | None = None
    profile: str = ""
    device_serial: str = ""
    recordings: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    discarded: list[dict[str, Any]] = field(default_factory=list)  # left on the device on purpose, each with why
    errors: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def all_preserved(self) -> bool:
        return all(e.get("preserved") for e in self.errors)

    def as_json(self) -> dict[str, Any]:
        return {"dock_session": self.dock_session_id, "profile": self.profile,
                "device_serial": self.device_serial, "recordings": self.recordings,
                "skipped": self.skipped, "discarded": self.discarded, "errors": self.errors, "notes": self.notes}


Progress = Callable[[str, int], None]  # (event, value): "files" total, "bytes" total, "advance" bytes
AfterCommit = Callable[[list[int]], None]  # ids of new recordings now safely in the catalog


def _part_key(serial: str, file: DeviceFile) -> str:
    raw = b"\0".join([serial.encode(), os.fsencode(file.path), str(file.size_bytes).encode(),
                      str(file.mtime_ns).encode()])
    return hashlib.sha256(raw).hexdigest()[:40]


def _mtime_is_trustworthy(file: DeviceFile, bounds: TimeBounds) -> bool:
    """Whether (path, size, mtime) may stand for the file's bytes: only when the file time is a plausible capture
    time. A recorder whose clock restarts at 2000-01-01 every power-up writes new recordings with the very path,
    size and time of old ones: those are always read and told apart by their hash."""
    try:
        when = datetime.fromtimestamp(file.mtime_ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return False
    return implausible_reason(when, bounds) is None


def _read_sidecar(profile: DeviceProfile, file: DeviceFile) -> tuple[bytes | None, str | None]:
    side = sidecar_path(profile, file.path)
    if side is None:
        return None, None
    try:
        if side.is_symlink() or not side.is_file():
            return None, None
        with side.open("rb") as fh:
            raw = fh.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        return None, f"sidecar {side.name!r} unreadable: {exc.strerror or exc}"
    if len(raw) > MAX_SIDECAR_BYTES:
        return None, f"sidecar {side.name!r} is over {MAX_SIDECAR_BYTES} bytes"
    return raw, None


def _device_serial(identity: DeviceIdentity, files: list[DeviceFile], profile: DeviceProfile,
                   root: Path) -> str:
    if identity.serial:
        return identity.serial
    for file in files[:20]:
        names = parse_filename(profile.filename, file.name)
        if names is not None and names.serial:
            return names.serial
    # No identity anywhere: name the device by where it was found, stably.
    return ANONYMOUS_SERIAL + hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:10]


#: The largest device clock correction accepted (a clock off by more is a wrong date, flagged, not corrected).
MAX_CLOCK_OFFSET_S = 100 * 366 * 86400


def _validate_options(options: IngestOptions, settings: Settings) -> None:
    problems = validate_stamp(Stamp(case_number=options.case_number, captured_start=None, lat=None, lon=None,
                                    place_source=None, collector=options.officer, purpose=options.purpose,
                                    important=False), case_pattern=settings.case_pattern)
    offset = options.clock_offset_s
    if offset is not None and not (math.isfinite(offset) and abs(offset) <= MAX_CLOCK_OFFSET_S):
        problems.append(f"clock offset {offset!r} s is not a number of seconds within 100 years")
    if problems:
        raise StampInvalid(problems)


@dataclass
class _Archiving:
    recording: Recording
    file: DeviceFile
    future: Future[StoredObject]


@dataclass
class _Pending:
    file: DeviceFile
    copy: CopyResult
    future: Future[Facts] | None
    sidecar_note: str | None
    key: str = ""
    sidecar: bytes | None = None


class _Run:
    """State of one ingest run (one dock session)."""

    def __init__(self, root: Path, settings: Settings, engine: Engine, store: EvidenceStore,
                 options: IngestOptions, progress: Progress | None, after_commit: AfterCommit | None) -> None:
        self.root, self.settings, self.engine, self.store = root, settings, engine, store
        self.options, self.progress, self.after_commit = options, progress, after_commit
        self.new_ids: list[int] = []
        self.dock_new_ids: list[int] = []  # every recording this dock catalogued, committed
        self.measured_offset_s: float | None = None
        self.stopped = False
        self._dock: DockSession | None = None
        self._dock_id: int | None = None
        self._begin_thread: threading.Thread | None = None
        self._begin_error: BaseException | None = None
        self.files_seen = 0
        self.files_failed = 0
        self.offline = False
        self.offline_reason = ""
        self.journaled = 0
        self.journal = load_journal(settings.staging_dir, "")  # replaced once the serial is known
        self.known: dict[str, known_files.KnownFile] = {}  # this device's files catalogued before (no catalogue needed)
        self._to_remember: list[known_files.KnownFile] = []  # in the open transaction; remembered once committed
        self.device_keys: set[str] | None = None  # known-file keys of every file this dock found (run() only)
        self.archiving: deque[_Archiving] = deque()
        self.archive_pool = ThreadPoolExecutor(max_workers=ARCHIVES_IN_FLIGHT, thread_name_prefix="archive")
        self.report = IngestReport()
        self.session = Session(engine, expire_on_commit=False)
        self.last_commit = time.monotonic()
        self.uncommitted = 0
        self._case_known: bool | None = None
        self.companions: list[tuple[int, str]] = []  # (new recording id, device path of the recording it serves)
        self.marked_important: list[tuple[int, str]] = []  # known recordings seen again under an _IMP name
        self._written: set[str] = set()  # device-file keys written ahead to the journal by this run
        self._journal_dirty = False

    # -- bookkeeping ------------------------------------------------------------------------------
    def _maybe_commit(self, *, force: bool = False) -> None:
        self.uncommitted += 1
        if force or self.uncommitted >= COMMIT_EVERY_FILES or time.monotonic() - self.last_commit > COMMIT_EVERY_S:
            self._commit()

    def _commit(self) -> None:
        if self._journal_dirty:  # what this commit catalogues is durable in the journal first
            sync_journal(self.settings.staging_dir, self.serial)
            self._journal_dirty = False
        self.session.commit()
        if self._to_remember:
            batch, self._to_remember = self._to_remember, []
            try:
                known_files.remember(self.settings.home, self.serial, batch)
            except OSError as exc:  # a cache: the next outage reads these files again
                logger.warning("Could not record %d catalogued file(s) in staging: %s", len(batch), exc)
            self.known.update((entry.key, entry) for entry in batch)
        self.uncommitted = 0
        self.last_commit = time.monotonic()
        # Messages go out only after the rows they name are committed; with a broker they are already in the
        # outbox (same transaction), so whatever the callback meets (a broker away) never stops the dock.
        if self.after_commit is not None and self.new_ids:
            try:
                self.after_commit(self.new_ids)
            except Exception:  # noqa: BLE001 - the committed rows stand; the outbox or the next run does the rest
                logger.warning("After-commit step for %d new recording(s) failed; they are catalogued and wait "
                               "for the relay.", len(self.new_ids), exc_info=True)
        self.dock_new_ids.extend(self.new_ids)
        self.new_ids = []

    def _error(self, file: DeviceFile, stage: str, reason: str, *, preserved: bool) -> None:
        logger.warning("%s failed for %r: %s", stage, file.relative, reason)
        self.report.errors.append({"file": file.relative, "stage": stage, "reason": reason,
                                   "preserved": preserved})
        if self.offline:
            return
        append_event(self.session, CustodyKind.INGEST_FAILED, actor=self.options.actor,
                     dock_session_id=self.dock.id,
                     details={"file": file.relative, "stage": stage, "reason": reason, "preserved": preserved})

    # -- steps ------------------------------------------------------------------------------------
    def start_begin(self, profile: DeviceProfile, identity: DeviceIdentity, serial: str) -> None:
        """Register the dock on a helper thread while the first file already copies (first byte fast)."""
        self.profile, self.identity, self.serial = profile, identity, serial
        with _BUSY_LOCK:
            _BUSY.add(serial)
        self.journal = load_journal(self.settings.staging_dir, serial)
        self._hold = journal.hold(self.settings.locks_dir, serial)  # other processes see this dock is live
        if not serial.startswith(ANONYMOUS_SERIAL):
            try:
                self.known = known_files.load(self.settings.home, serial)
            except OSError as exc:
                logger.warning("The record of known files of %r is unreadable (%s): they are looked up in the "
                               "catalogue only.", serial, exc)
        self._begin_thread = threading.Thread(target=self._begin_safely, args=(profile, identity, serial),
                                              name="dock-begin", daemon=True)
        self._begin_thread.start()

    def _begin_safely(self, profile: DeviceProfile, identity: DeviceIdentity, serial: str) -> None:
        try:
            self.begin(profile, identity, serial)
        except BaseException as exc:  # re-raised on the ingest thread by _ensure_begun
            self._begin_error = exc

    def _ensure_begun(self) -> None:
        if self._dock is not None:
            return
        if self._begin_thread is not None:
            self._begin_thread.join()
        if self._begin_error is not None:
            raise self._begin_error
        self._dock = self.session.get(DockSession, self._dock_id)

    @property
    def dock(self) -> DockSession:
        self._ensure_begun()
        assert self._dock is not None
        return self._dock

    def begin(self, profile: DeviceProfile, identity: DeviceIdentity, serial: str) -> None:
        # Several docks may register the same station/officer/key at once: one at a time in this process,
        # and a retry when another process won the race (the rows then exist and are found).
        for attempt in range(3):
            with Session(self.engine, expire_on_commit=False) as session:
                try:
                    with _REGISTER_LOCK:
                        self._begin(session, profile, identity, serial)
                    return
                except IntegrityError:
                    session.rollback()
                    if attempt == 2:
                        raise

    def _begin(self, s: Session, profile: DeviceProfile, identity: DeviceIdentity, serial: str) -> None:
        opts = self.options
        place = self.settings.station_place
        ensure_station(s, self.settings.station, name=self.settings.station_name,
                       lat=place[0] if place else None, lon=place[1] if place else None)
        self.officer_number = opts.officer or identity.officer_number
        if identity.officer_number:
            ensure_officer(s, identity.officer_number, name=identity.officer_name or "",
                           unit_number=identity.unit_number or "", unit_name=identity.unit_name or "")
        if opts.officer:
            ensure_officer(s, opts.officer)
        ensure_device(s, serial, profile=profile.name, officer_number=identity.officer_number,
                      unit_number=identity.unit_number or "", unit_name=identity.unit_name or "")
        self.key = load_or_create_key(self.settings.station_key_path)
        ensure_station_key(s, self.settings.station, self.key, actor=opts.actor)
        dock = DockSession(station_code=self.settings.station, device_serial=serial, profile=profile.name,
                           source_path=str(self.root), started_at=utcnow(), officer_number=self.officer_number,
                           clock_offset_s=self.measured_offset_s)
        s.add(dock)
        s.flush()
        append_event(s, CustodyKind.DOCKED, actor=opts.actor, dock_session_id=dock.id, details={
            "station": self.settings.station, "device_serial": serial, "profile": profile.name,
            "path": str(self.root), "identity": {k: v for k, v in vars(identity).items() if v},
            "device_clock_offset_s": self.measured_offset_s, "usb": opts.usb,
        })
        if self.journal and self._hold is not None:
            # An earlier dock of this device journaled its copies and never ended (catalogue away, station killed):
            # it ends now, saying so, and this dock catalogues what it staged. Holding the device's run lock, this
            # run is the only live one of it in any process: every other open session of it is abandoned.
            assert dock.id is not None
            close_open_sessions(s, station=self.settings.station, device_serial=serial, exclude={dock.id},
                                now=utcnow(), actor=opts.actor,
                                note=f"ended before its files were catalogued (the catalogue was unreachable, or "
                                     f"the station stopped); what it copied was journaled in staging and is "
                                     f"catalogued by dock session {dock.id}")
        s.commit()
        self._dock_id = dock.id
        self.report.dock_session_id, self.report.profile, self.report.device_serial = (dock.id, profile.name, serial)

    def add_sighting(self, recording: Recording, file: DeviceFile, important: bool, *, size_bytes: int,
                     is_new: bool = False) -> None:
        """Record where these bytes were found. *size_bytes* is what was actually copied: a sighting never claims
        more than the archive holds, so a read that ended early is not "already ingested" at the next dock."""
        assert recording.id is not None and self.dock.id is not None
        exists = None if is_new else self.session.exec(select(Sighting).where(
            Sighting.recording_id == recording.id, Sighting.device_serial == self.serial,
            Sighting.device_path == file.relative)).first()
        if exists is None:
            self.session.add(Sighting(recording_id=recording.id, dock_session_id=self.dock.id,
                                      device_serial=self.serial, device_path=file.relative,
                                      size_bytes=size_bytes, mtime_ns=file.mtime_ns, important=important,
                                      seen_at=utcnow()))
        else:
            exists.mtime_ns, exists.size_bytes, exists.cleared_at = file.mtime_ns, size_bytes, None
            self.session.add(exists)

    def _remember(self, recording: Recording, file: DeviceFile, size_bytes: int) -> None:
        """Note a file this transaction catalogues, for the station's own record (written once committed): only
        where (path, size, mtime) may stand for its bytes, as the catalogue's sightings are trusted."""
        if (recording.id is None or size_bytes != file.size_bytes or self.serial.startswith(ANONYMOUS_SERIAL)
                or not _mtime_is_trustworthy(file, TimeBounds(floor=self.settings.time_floor, now=utcnow()))):
            return
        entry = known_files.KnownFile.of(self.serial, device_path=file.relative, size_bytes=file.size_bytes,
                                         mtime_ns=file.mtime_ns, sha256=recording.sha256, recording_id=recording.id)
        if self.known.get(entry.key) != entry:
            self._to_remember.append(entry)

    def known_bytes(self, recording: Recording, file: DeviceFile, copy: CopyResult) -> None:
        self._ensure_begun()
        names = parse_filename(self.profile.filename, file.name)
        marked = bool(names and names.important) and file.role in ("recording", "unlisted")
        self.add_sighting(recording, file, marked, size_bytes=copy.size_bytes)
        self._remember(recording, file, copy.size_bytes)
        if marked and not recording.important and recording.id is not None:
            # An _IMP marker seen anywhere is kept: as a stamp revision with its hold, once this dock is committed.
            self.marked_important.append((recording.id, file.relative))
        append_event(self.session, CustodyKind.SIGHTED, actor=self.options.actor, recording_id=recording.id,
                     dock_session_id=self.dock.id,
                     details={"device_serial": self.serial, "device_path": file.relative})
        self.dock.files_known += 1
        self.report.recordings.append({**recording_as_json(recording), "ingest": "known",
                                       "device_path": file.relative})
        self._maybe_commit()

    def _drop_staged_duplicate(self, existing: Recording, copy: CopyResult) -> None:
        # Same bytes as a recording still staged (or uploading right now): that staged file is its copy, or (staged
        # at another station) a second copy kept until that station has archived it; the staging sweep then removes
        # it. Archived already: this copy is not needed.
        if existing.state != RecordingState.STAGED.value:
            copy.destination.unlink(missing_ok=True)

    @functools.cached_property
    def _row_context(self) -> RowContext:
        """What every new row of this dock shares (known once the dock has begun)."""
        opts, identity = self.options, self.identity
        return RowContext(profile=self.profile, station=self.settings.station, station_zone=self.settings.station_tz,
                          station_place=self.settings.station_place, policy=self.settings.retention_policy,
                          time_floor=self.settings.time_floor, serial=self.serial, officer_option=opts.officer,
                          identity_officer_number=identity.officer_number,
                          identity_officer_name=identity.officer_name, case_number=opts.case_number,
                          purpose=opts.purpose, clock_offset_s=opts.clock_offset_s,
                          defer_archive=opts.defer_archive)

    def _case_registered(self) -> bool:
        number = self.options.case_number
        if number is None:
            return False
        if self._case_known is None:
            self._case_known = self.session.exec(select(Case.id).where(Case.number == number)).first() is not None
        return self._case_known

    def register(self, pending: _Pending) -> None:
        """Catalogue one staged copy. Nothing the file holds can stop this: a describe failure or an impossible
        clock becomes a flagged row; only the catalogue itself failing (OperationalError) escapes, and the
        caller journals the copy then."""
        self._ensure_begun()
        file, copy = pending.file, pending.copy
        try:
            assert pending.future is not None
            facts: Facts | None = pending.future.result()
        except Exception as exc:  # noqa: BLE001 - reading the staged copy failed: keep it, say so
            logger.exception("Reading %r failed.", file.relative)
            facts = None
            pending.sidecar_note = "; ".join(filter(None, [pending.sidecar_note, f"reading failed: {exc}"]))
        existing = find_by_sha256(self.session, copy.sha256)
        if existing is not None:  # the same bytes twice on this device
            self.known_bytes(existing, file, copy)
            self._drop_staged_duplicate(existing, copy)
            return
        recording = new_recording(file, copy, facts, ctx=self._row_context, now=utcnow(),
                                  case_registered=self._case_registered(), sidecar_note=pending.sidecar_note)
        try:
            # One file's rows succeed or fail together, without touching the rest of the batch.
            begin_write(self.session)
            with self.session.begin_nested():
                self._insert(recording, file, copy)
        except IntegrityError:
            # Another dock catalogued the same bytes a moment ago (the hash is unique): this is a sighting.
            existing = find_by_sha256(self.session, copy.sha256)
            if existing is None:
                raise
            self.known_bytes(existing, file, copy)
            self._drop_staged_duplicate(existing, copy)
            return
        except OperationalError:
            raise  # the catalogue itself is away: the caller journals and goes on copying
        except Exception as exc:  # noqa: BLE001 - a value the database cannot hold: keep the file, as found
            logger.exception("Cataloguing %r as described failed; catalogued as found instead.", file.relative)
            recording = new_recording(file, copy, None, ctx=self._row_context, now=utcnow(),
                                      case_registered=self._case_registered(),
                                      sidecar_note=f"its description could not be stored: {type(exc).__name__}: "
                                                   f"{exc}"[:500])
            with self.session.begin_nested():
                self._insert(recording, file, copy)
        self.dock.files_new += 1
        assert recording.id is not None
        self._remember(recording, file, copy.size_bytes)
        self.new_ids.append(recording.id)
        if file.companion is not None:
            self.companions.append((recording.id, file.companion))
        if self.options.defer_archive:
            self.report.recordings.append({**recording_as_json(recording), "ingest": "new",
                                           "device_path": file.relative})
            self._maybe_commit()
            return
        # The upload runs beside the next copy; its result is recorded here, on this thread.
        self._maybe_commit()
        assert recording.retain_until is not None
        future = self.archive_pool.submit(self.store.put_file, copy.destination, sha256=copy.sha256,
                                          size_bytes=copy.size_bytes, retain_until=recording.retain_until,
                                          consume=True)
        self.archiving.append(_Archiving(recording, file, future))
        self._drain_archives(keep=ARCHIVES_IN_FLIGHT)

    def _insert(self, recording: Recording, file: DeviceFile, copy: CopyResult) -> None:
        self.session.add(recording)
        self.session.flush()
        self.add_sighting(recording, file, recording.important, size_bytes=copy.size_bytes, is_new=True)
        append_event(self.session, CustodyKind.COPIED, actor=self.options.actor, recording_id=recording.id,
                     dock_session_id=self.dock.id, details={
                         "device_serial": self.serial, "device_path": file.relative, "sha256": copy.sha256,
                         "size_bytes": copy.size_bytes, "resumed_from": copy.resumed_from,
                         "integrity": recording.integrity_status, "role": file.role,
                         "time_implausible": recording.time_implausible,
                         "time_problem": recording.technical.get("time_problem"),
                         "retain_until": recording.retain_until.isoformat() if recording.retain_until else None,
                         "legal_hold": recording.legal_hold, ROW_KEY: row_values(recording)})
        record_integrity(self.session, recording, check=INGEST_CHECK, status=recording.integrity_status,
                         detail=recording.integrity_detail, by=self.options.actor,
                         details={"structure": recording.technical.get("format")})
        record_stamp(self.session, recording, by=self.options.actor, reason="ingest")
        if self.options.defer_archive:
            # The archive message is part of the same transaction: committed together, never lost to a broker outage.
            assert recording.id is not None
            outbox.add(self.session, recording.id, station=self.settings.station, now=utcnow(), reason="ingest")

    def _drain_archives(self, *, keep: int) -> None:
        """Record finished uploads in order; wait while more than *keep* are still running."""
        while self.archiving and (len(self.archiving) > keep or self.archiving[0].future.done()):
            item = self.archiving.popleft()
            recording, file = item.recording, item.file
            try:
                stored = item.future.result()
            except Exception as exc:  # noqa: BLE001 - StorageError, or a bug: the staged copy waits either way
                recording.archived_at = None  # not in the store: archiving sets it when it really happens
                if not isinstance(exc, StorageError):
                    logger.exception("Archiving %r failed.", file.relative)
                self._error(file, "archive", f"{exc}; kept in staging, will be archived on the next run",
                            preserved=True)
            else:
                mark_archived(self.session, recording, self.store, stored, actor=self.options.actor)
                try:
                    write_manifest(self.session, self.store, recording, self.key, actor=self.options.actor)
                except StorageError as exc:
                    self._error(file, "manifest", f"signed manifest not written: {exc}", preserved=True)
            self.session.add(recording)
            self.report.recordings.append({**recording_as_json(recording), "ingest": "new",
                                           "device_path": file.relative})
            self._maybe_commit()

    def _copy_waiting_for_space(self, file: DeviceFile, staging: Path,
                                on_bytes: Callable[[int], None] | None) -> CopyResult:
        """Copy; when staging is full, pause (resumable .part kept) until space returns or time runs out."""
        waited = 0.0
        while True:
            try:
                return copy_and_hash(file.path, staging, part_name=_part_key(self.serial, file), progress=on_bytes)
            except CopyFailed as exc:
                stopping = self.options.should_stop is not None and self.options.should_stop()
                if exc.errno != errno.ENOSPC or waited >= self.settings.disk_full_wait_s or stopping:
                    raise
                if waited == 0.0:
                    logger.error("Staging disk %r is full while copying %r: paused until space returns.",
                                 str(staging), file.relative)
                    self.report.notes.append(f"paused: staging disk full while copying {file.relative} "
                                             f"({exc.bytes_copied} bytes kept)")
                    if self.progress:
                        self.progress("paused", exc.bytes_copied)
                time.sleep(DISK_FULL_POLL_S)
                waited += DISK_FULL_POLL_S
                if shutil.disk_usage(staging).free < min(file.size_bytes - exc.bytes_copied, 1 << 20) + (1 << 20):
                    continue
                logger.warning("Staging has space again; resuming %r.", file.relative)

    def run(self, files: list[DeviceFile]) -> None:
        staging = self.settings.staging_dir
        staging.mkdir(parents=True, exist_ok=True)
        if self.progress:
            self.progress("files", len(files))
            self.progress("bytes", sum(f.size_bytes for f in files))
        report_bytes = self.progress
        on_bytes = (lambda n: report_bytes("advance", n)) if report_bytes is not None else None
        pending: deque[_Pending] = deque()
        self.device_keys = set()
        with ThreadPoolExecutor(max_workers=self.settings.probe_workers, thread_name_prefix="probe") as pool:
            try:
                for file in files:
                    if not self._one(file, staging, on_bytes, pool, pending):
                        break
            finally:
                # Whatever happens next (the device pulled, the station stopping), every copy that reached
                # staging is catalogued now, or journaled if the catalogue is away.
                self._register_ready(pending, wait=True)
        if not self.offline:
            try:
                self._drain_archives(keep=0)
            except OperationalError as exc:
                self._go_offline(exc, pending)

    def _one(self, file: DeviceFile, staging: Path, on_bytes: Callable[[int], None] | None,
             pool: ThreadPoolExecutor, pending: deque[_Pending]) -> bool:
        """Copy one file into staging and hand it to cataloguing; False when the station is stopping.

        Raises DeviceGone when the device vanished (what is staged so far is kept by the caller).
        """
        if self.options.should_stop is not None and self.options.should_stop():
            self.report.errors.append({"file": str(self.root), "stage": "station",
                                       "reason": "station stopping: the rest waits for the next dock",
                                       "preserved": False})
            self.stopped = True
            return False
        self.files_seen += 1
        key = _part_key(self.serial, file)
        known_key = known_files.key(self.serial, file.relative, file.size_bytes, file.mtime_ns)
        if self.device_keys is not None:
            self.device_keys.add(known_key)
        if (not self.serial.startswith(ANONYMOUS_SERIAL)
                and _mtime_is_trustworthy(file, TimeBounds(floor=self.settings.time_floor, now=utcnow()))):
            known_id: int | None = None
            if not self.offline:
                try:
                    sighting = find_known_sighting(self.session, device_serial=self.serial,
                                                   device_path=file.relative, size_bytes=file.size_bytes,
                                                   mtime_ns=file.mtime_ns)
                    if sighting is not None:
                        known_id = sighting.recording_id
                        if known_key not in self.known:  # catalogued before the station kept its own record
                            row = self.session.get(Recording, known_id)
                            if row is not None:
                                self._remember(row, file, file.size_bytes)
                except OperationalError as exc:
                    self._go_offline(exc, pending)
            if self.offline:  # the catalogue is away: the station's own record says what it catalogued
                local = self.known.get(known_key)
                known_id = local.recording_id if local is not None else None
            if known_id is not None:
                self.report.skipped.append({"file": file.relative,
                                            "reason": f"already ingested as recording {known_id}"})
                if self.progress:
                    self.progress("advance", file.size_bytes)
                return True
        sidecar, sidecar_note = _read_sidecar(self.profile, file) if file.role == "recording" else (None, None)
        journaled = self.journal.get(key)
        if journaled is not None and (staging / journaled.sha256).exists():
            # Copied during a catalogue outage: catalogue the staged copy, do not read the device again.
            copy = CopyResult(source=file.path, destination=staging / journaled.sha256,
                              size_bytes=journaled.size_bytes, sha256=journaled.sha256, resumed_from=0)
            if journaled.sidecar_hex is not None:
                sidecar = bytes.fromhex(journaled.sidecar_hex)
            if self.progress:
                self.progress("advance", file.size_bytes)
        else:
            if not self.offline and self.uncommitted and file.size_bytes > LONG_COPY_BYTES:
                # Never hold a transaction (and the custody-head lock) across a long device read:
                # other docks on this station would wait for it.
                try:
                    self._commit()
                except OperationalError as exc:
                    self._go_offline(exc, pending)
            try:
                copy = self._copy_waiting_for_space(file, staging, on_bytes)
            except CopyFailed as exc:
                self.files_failed += 1
                self._error(file, "copy", exc.reason + (f" ({exc.bytes_copied} bytes kept for resume)"
                                                        if exc.bytes_copied else ""), preserved=False)
                if not self.root.is_dir():
                    raise DeviceGone(self.root, f"vanished while copying {file.relative!r}") from exc
                return True
        self._catalogue(_Pending(file, copy, None, sidecar_note, key=key, sidecar=sidecar), pool, pending)
        return True

    def _catalogue(self, item: _Pending, pool: ThreadPoolExecutor, pending: deque[_Pending]) -> None:
        """A staged copy: a new sighting of bytes already known, or describe and register it; journal it
        instead while the catalogue is unreachable."""
        self._write_ahead(item)
        if self.offline:
            self._journal(item)
            return
        try:
            existing = find_by_sha256(self.session, item.copy.sha256)
            if existing is not None:
                self.known_bytes(existing, item.file, item.copy)
                self._drop_staged_duplicate(existing, item.copy)
                return
        except OperationalError as exc:
            self._go_offline(exc, pending)
            self._journal(item)
            return
        item.future = pool.submit(gather_facts, item.copy.destination, name=item.file.name,
                                  mtime_ns=item.file.mtime_ns, sidecar=item.sidecar,
                                  probe_timeout_s=self.settings.probe_timeout_s)
        pending.append(item)
        self._register_ready(pending, wait=False)

    def _register_ready(self, pending: deque[_Pending], *, wait: bool) -> None:
        while pending and not self.offline and (wait or (pending[0].future is not None and
                                                         pending[0].future.done())):
            item = pending.popleft()
            try:
                self.register(item)
            except OperationalError as exc:
                self._journal(item)
                self._go_offline(exc, pending)
            except Exception as exc:  # noqa: BLE001 - never lose a staged copy to a bug: journal it, go on later
                logger.exception("Cataloguing %r failed; its staged copy is journaled.", item.file.relative)
                self._journal(item)
                self._go_offline(exc, pending)

    def _journal(self, item: _Pending) -> None:
        """The catalogue cannot take *item* now: make its journal entry durable and count it."""
        self._write_ahead(item)
        sync_journal(self.settings.staging_dir, self.serial)
        self.journaled += 1

    def _write_ahead(self, item: _Pending) -> None:
        if item.key in self._written or item.key in self.journal:
            return
        self._written.add(item.key)
        self._journal_dirty = True
        opts = self.options
        record_journal(self.settings.staging_dir, self.serial, durable=False, entry=JournalEntry(
            part_key=item.key, sha256=item.copy.sha256, size_bytes=item.copy.size_bytes,
            relative=item.file.relative, sidecar_hex=item.sidecar.hex() if item.sidecar is not None else None,
            device_serial=self.serial, name=item.file.name, path_hex=os.fsencode(item.file.path).hex(),
            mtime_ns=item.file.mtime_ns, device_size_bytes=item.file.size_bytes, warnings=list(item.file.warnings),
            root=str(self.root), profile=self.profile.name, identity=dict(vars(self.identity)),
            options={"officer": opts.officer, "case_number": opts.case_number, "purpose": opts.purpose,
                     "clock_offset_s": opts.clock_offset_s, "actor": opts.actor},
            role=item.file.role, companion=item.file.companion))

    def replay(self, entries: list[JournalEntry]) -> None:
        """Catalogue staged copies from a journal; the device itself may be gone."""
        staging = self.settings.staging_dir
        pending: deque[_Pending] = deque()
        with ThreadPoolExecutor(max_workers=self.settings.probe_workers, thread_name_prefix="probe") as pool:
            for entry in entries:
                path = (Path(os.fsdecode(bytes.fromhex(entry.path_hex))) if entry.path_hex
                        else self.root / entry.relative)
                file = DeviceFile(path=path, relative=entry.relative, name=entry.name or Path(entry.relative).name,
                                  size_bytes=entry.device_size_bytes or entry.size_bytes, mtime_ns=entry.mtime_ns,
                                  warnings=tuple(entry.warnings), role=entry.role, companion=entry.companion)
                try:
                    if find_known_sighting(self.session, device_serial=self.serial, device_path=file.relative,
                                           size_bytes=file.size_bytes, mtime_ns=file.mtime_ns) is not None:
                        continue  # catalogued before the run that journaled it ended
                except OperationalError as exc:
                    self._go_offline(exc, pending)
                    break
                copy = CopyResult(source=path, destination=staging / entry.sha256, size_bytes=entry.size_bytes,
                                  sha256=entry.sha256, resumed_from=0)
                sidecar = bytes.fromhex(entry.sidecar_hex) if entry.sidecar_hex else None
                self.files_seen += 1
                self._catalogue(_Pending(file, copy, None, None, key=entry.part_key, sidecar=sidecar), pool, pending)
                if self.offline:
                    break  # still down: the journal keeps the rest
            self._register_ready(pending, wait=True)

    def _go_offline(self, exc: Exception, pending: deque[_Pending]) -> None:
        """The catalogue is unreachable: keep copying into staging and journal what is staged."""
        if not self.offline:
            if getattr(getattr(exc, "orig", None), "sqlstate", None) in ("40P01", "40001"):
                logger.error("Catalogue conflict while ingesting %r (%s: the database rolled back this dock's open "
                             "batch, a bug to report): copying on, journaled copies are catalogued next.",
                             str(self.root), first_line(exc, 200))
            else:
                logger.error("Catalogue unavailable while ingesting %r (%s): copying on, cataloguing later.",
                             str(self.root), exc)
            self.offline = True
            self.offline_reason = first_line(exc)
            with contextlib.suppress(OperationalError):
                self.session.rollback()
            self._to_remember.clear()  # never committed: never remembered
        while pending:
            self._journal(pending.popleft())

    def _stamp_marked_important(self) -> None:
        """Known bytes seen again under an important (_IMP) name: the flag is a stamp revision by the station, sealed,
        with the pending-case hold applied at once (the same operation as a clerk's `evidence tag --important`)."""
        for recording_id, device_path in self.marked_important:
            recording = self.session.get(Recording, recording_id)
            if recording is None or recording.important:
                continue
            try:
                change_stamp(self.session, self.store, recording, by=self.options.actor,
                             reason=f"seen again on device {self.serial} as {device_path}, marked important there",
                             case_pattern=self.settings.case_pattern, policy=self.settings.retention_policy,
                             key=self.key, important=True)
            except StorageError as exc:  # the revision stands; `evidence retention apply` completes the hold
                self.report.notes.append(f"recording {recording_id} marked important; its hold waits for the "
                                         f"store: {exc}")
            self._refresh_report(recording)
        self.marked_important = []

    def _refresh_report(self, recording: Recording) -> None:
        """The report shows a recording as it is after the dock's last changes (a link, a revision)."""
        for entry in self.report.recordings:
            if entry["id"] == recording.id:
                entry.update(recording_as_json(recording))

    def _result_note(self, dock: DockSession) -> str:
        """What happened, in words: counts, why it did not complete, and where archiving stands."""
        parts = [f"{dock.files_seen} file(s) read: {dock.files_new} new, {dock.files_known} already known, "
                 f"{len(self.report.skipped)} skipped, {dock.files_failed} failed"]
        if self.stopped:
            parts.append("the station stopped before the device was finished; the rest waits for the next dock")
        for error in self.report.errors:
            if error["stage"] == "device":
                parts.append(f"the device went away: {error['reason']}")
        failed = [e for e in self.report.errors if e["stage"] not in ("device", "station")]
        if failed:
            parts.append(f"{len(failed)} error(s), first: {failed[0]['file']}: {failed[0]['reason']}"[:400])
        if self.options.defer_archive and self.dock_new_ids:
            waiting = outbox.unsent(self.session, self.dock_new_ids)
            parts.append(f"{len(self.dock_new_ids)} archive message(s) written to the outbox"
                         + (f", {waiting} not yet taken by the broker when the dock ended (the relay hands them "
                            "over as soon as it answers)" if waiting else ", all taken by the broker"))
        return "; ".join(parts)[:2000]

    def _link_companions(self) -> None:
        """Housekeeping files (thumbnails, sidecars) point at the recording they belong to, now every file of the
        dock is catalogued."""
        for recording_id, device_path in self.companions:
            sighting = self.session.exec(select(Sighting).where(Sighting.device_serial == self.serial,
                                                                Sighting.device_path == device_path)
                                         .order_by(col(Sighting.id).desc())).first()
            row = self.session.get(Recording, recording_id)
            if sighting is not None and row is not None and row.belongs_to_id is None:
                row.belongs_to_id = sighting.recording_id
                self.session.add(row)
                self._refresh_report(row)
        self.companions = []

    def finish(self) -> None:
        try:
            self._finish()
        finally:
            journal.let_go(getattr(self, "_hold", None))
            with _BUSY_LOCK:
                _BUSY.discard(getattr(self, "serial", ""))

    def _finish(self) -> None:
        try:
            if not self.offline:
                self._drain_archives(keep=0)  # also after an unplugged device: what was copied is archived
        except OperationalError as exc:
            self._go_offline(exc, deque())
        finally:
            self.archive_pool.shutdown(wait=True)
        if self.offline:
            self.session.close()
            return
        try:
            self._ensure_begun()
        except BaseException:
            self.session.close()  # registration failed: the caller sees that error, not this one
            return
        dock = self.dock
        self._link_companions()
        if self.report.discarded:
            append_event(self.session, CustodyKind.DISCARDED, actor=self.options.actor, dock_session_id=dock.id,
                         details={"device_serial": self.serial, "files": self.report.discarded})
        dock.files_seen, dock.files_failed = self.files_seen, self.files_failed
        dock.finished_at = utcnow()
        dock.result = ("interrupted" if self.stopped or any(e["stage"] == "device" for e in self.report.errors)
                       else "partial" if self.report.errors else "complete")
        self._commit()  # the last batch first: the note counts what is committed
        dock.result_note = self._result_note(dock)
        self.session.add(dock)
        append_event(self.session, CustodyKind.UNDOCKED, actor=self.options.actor, dock_session_id=dock.id,
                     details={"files_seen": dock.files_seen, "files_new": dock.files_new,
                              "files_known": dock.files_known, "files_failed": dock.files_failed,
                              "result": dock.result, "note": dock.result_note})
        self._commit()
        self._stamp_marked_important()
        self.session.close()
        if dock.result == "complete":
            forget_journal(self.settings.staging_dir, self.serial)
            if self.device_keys is not None and not self.serial.startswith(ANONYMOUS_SERIAL):
                try:  # the record holds no more than the device does
                    known_files.rewrite(self.settings.home, self.serial, self.device_keys)
                except OSError as exc:
                    logger.warning("Could not compact the record of known files of %r: %s", self.serial, exc)


def _measure_device_clock(root: Path, profile: DeviceProfile, station_tz: str) -> float | None:
    if profile.clock.file is None:
        return None
    path = root / profile.clock.file
    try:
        if path.is_symlink() or not path.is_file():
            return None
        with path.open("rb") as fh:
            text = fh.read(1024).decode("utf-8", errors="replace")
    except OSError:
        return None
    return measure_clock_offset(text, fmt=profile.clock.file_format, zone=profile.clock.zone or station_tz,
                                station_now=utcnow())


def ingest_folder(root: Path, *, settings: Settings, engine: Engine, store: EvidenceStore,
                  options: IngestOptions = IngestOptions(), progress: Progress | None = None,
                  after_commit: AfterCommit | None = None) -> IngestReport:
    """Ingest every recording under *root* (a mounted device or a folder).

    Raises:
      StampInvalid: the case number / purpose / officer given are not acceptable (nothing was read).
      ProfileNotFound: no profile fits and none was named.
      DeviceGone: the folder is missing, or vanished mid-ingest (what was done is kept and reported).

    *after_commit* receives the ids of new recordings once they are committed: the place to enqueue
    archive (with ``defer_archive``) or derive messages.
    """
    _validate_options(options, settings)
    if not root.is_dir():
        raise DeviceGone(root, "not a folder (unplugged or not mounted?)")
    profiles = load_profiles((settings.profiles_dir,) if settings.profiles_dir else ())
    profile = get_profile(profiles, options.profile) if options.profile else recognise(root, profiles)
    identity = read_identity(root, profile.identity) if profile.identity else DeviceIdentity()
    measured = _measure_device_clock(root, profile, settings.station_tz)
    if measured is not None and abs(measured) > MAX_CLOCK_OFFSET_S:
        measured = None  # a clock file saying year 1 or 9999 corrects nothing: the files' own times are judged
    if measured is not None and options.clock_offset_s is None:
        options = replace(options, clock_offset_s=measured)  # the device said what its clock reads: correct it
    scan = scan_device(root, profile)
    if not options.defer_archive:
        with contextlib.suppress(OperationalError):  # a catalogue outage is handled below, per file
            archive_staged(engine, store, settings.staging_dir, key=load_or_create_key(settings.station_key_path),
                           actor=options.actor, policy=settings.retention_policy, station=settings.station)
    run = _Run(root, settings, engine, store, options, progress, after_commit)
    run.measured_offset_s = measured
    run.start_begin(profile, identity, _device_serial(identity, scan.files, profile, root))
    if identity.problem and profile.identity:
        run.report.skipped.append({"file": profile.identity.file, "reason": identity.problem})
    run.report.skipped.extend({"file": s.relative, "reason": s.reason} for s in scan.skipped)
    run.report.discarded.extend({"file": s.relative, "reason": s.reason} for s in scan.discarded)
    try:
        run.run(scan.files)
    except DeviceGone as exc:
        # What was copied so far is kept and catalogued; the rest waits for the next dock.
        run.report.errors.append({"file": str(root), "stage": "device", "reason": str(exc), "preserved": False})
    finally:
        run.finish()
    if run.offline:
        raise CatalogueDeferred(redact_url(settings.database_url), (
            f"{run.offline_reason}; {run.journaled} file(s) from {root} are copied to staging and journaled, "
            "and are catalogued as soon as the catalogue is back"), device_serial=run.serial,
            journaled=run.journaled)
    return run.report


def catalogue_journal(device_serial: str, *, settings: Settings, engine: Engine,
                      store: EvidenceStore, after_commit: AfterCommit | None = None) -> IngestReport | None:
    """Catalogue what a dock of *device_serial* staged during a catalogue outage (the device may be gone).

    With a broker the recordings are archived as after any dock: through the outbox and the station's queue (never
    inline from here, where a store outage would leave them staged with no message). Returns None when nothing
    waits. Raises CatalogueDeferred if the catalogue is still unreachable.
    """
    entries = [e for e in load_journal(settings.staging_dir, device_serial).values() if e.root and e.profile]
    if not entries:
        return None
    first = entries[0]
    profiles = load_profiles((settings.profiles_dir,) if settings.profiles_dir else ())
    profile = get_profile(profiles, first.profile)
    known = {f for f in DeviceIdentity.__dataclass_fields__}
    identity = DeviceIdentity(**{k: v for k, v in first.identity.items() if k in known})
    opts = first.options
    options = IngestOptions(officer=opts.get("officer"), case_number=opts.get("case_number"),
                            purpose=opts.get("purpose"), clock_offset_s=opts.get("clock_offset_s"),
                            actor=str(opts.get("actor") or "station"), defer_archive=bool(settings.broker_url))
    run = _Run(Path(first.root), settings, engine, store, options, None, after_commit)
    run.start_begin(profile, identity, device_serial)
    try:
        run.replay(entries)
    finally:
        run.finish()
    if run.offline:
        raise CatalogueDeferred(redact_url(settings.database_url), run.offline_reason, device_serial=device_serial,
                                journaled=len(entries))
    return run.report
