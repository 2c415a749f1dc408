"""One ingest run of a docked device or a folder: copy each file into staging and hand it to cataloguing.

For each file: skip it if this device already gave us these bytes (the catalogue's sightings, or the station's
own record while the catalogue is away); copy + hash it in one pass into staging (a full staging disk pauses the
copy); write it ahead to the journal; describe it beside the next copy; catalogue it (`register`). The parts:
`dock` opens the dock session, `register` catalogues and commits, `uploads` archives, `outage` journals while
the catalogue is away, `closing` ends the session.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from catalog import (
    CustodyKind,
    DockSession,
    PolicyInvalid,
    PolicyNotAdopted,
    Recording,
    append_event,
    find_known_sighting,
    load_or_create_key,
    outbox,
    redact_url,
    seen_there,
)
from catalog.models import DockResult
from catalog.policy_adoption import ensure_policy
from catalog.types import utcnow
from device_profiles import DeviceProfile, get_profile, load_profiles, recognise
from ingest import journal as staging_journal
from ingest import known_files
from ingest.archiving import archive_staged
from ingest.clock_set import WrittenTimes
from ingest.config import Settings
from ingest.describe.identity import DeviceIdentity, read_identity
from ingest.describe.probe import gather_facts
from ingest.errors import CatalogueDeferred, CopyFailed, DeviceBusy, DeviceGone, first_line
from ingest.pipeline.closing import (
    ClockContext,
    dock_result,
    link_companions,
    result_note,
    set_device_clock,
    stamp_marked_important,
)
from ingest.pipeline.device import ClockReading, device_serial, measure_device_clock, part_key, read_sidecar
from ingest.pipeline.dock import DockStart, mark_busy, mark_idle
from ingest.pipeline.known import KnownFiles
from ingest.pipeline.options import MAX_CLOCK_OFFSET_S, AfterCommit, IngestOptions, Progress, validate_options
from ingest.pipeline.outage import OutageJournal, StagedCopy, journaled_copy, stamp_options
from ingest.pipeline.register import Batch, Registrar
from ingest.pipeline.report import ErrorStage, IngestReport
from ingest.pipeline.uploads import Uploads
from ingest.scan import DeviceFile, ScanResult, scan_device
from ingest.staging_sync import StagingSync
from ingest.transfer import CopyResult, copy_and_hash, device_file_matches, file_identity
from storage import EvidenceStore

__all__ = ["COPIES_AHEAD", "COPIES_AHEAD_BYTES", "DEVICE_BUSY_POLL_S", "DEVICE_BUSY_WAIT_S", "DISK_FULL_POLL_S",
           "LONG_COPY_BYTES", "REGISTER_BATCH_FILES", "REGISTER_BATCH_S", "STAGE_BATCH_FILES", "STAGE_BATCH_S",
           "DockRun", "ingest_folder"]

logger = logging.getLogger(__name__)

#: How often a paused ingest looks for staging space again.
DISK_FULL_POLL_S = 0.5
#: How long a run waits for another run of the same device to end before it gives up (DeviceBusy), and how often
#: it looks.
DEVICE_BUSY_WAIT_S = 3600.0
DEVICE_BUSY_POLL_S = 0.5
#: Files larger than this are waited for with no catalogue transaction open (the files before them committed).
LONG_COPY_BYTES = 4 * 1024 * 1024
#: Small files copied ahead of cataloguing (one after the other, on the copy thread) at most: so many, so many bytes.
COPIES_AHEAD = 64
COPIES_AHEAD_BYTES = 16 * 1024 * 1024
#: Small copies done on the copy thread are taken over (made durable with one staging sync) once this many are done,
#: or once the oldest of them was done this long ago.
STAGE_BATCH_FILES = 32
STAGE_BATCH_S = 0.25
#: Staged copies are catalogued in batches of at most this many, or of those ready once the oldest waited this long.
REGISTER_BATCH_FILES = 64
REGISTER_BATCH_S = 0.25

#: What a run without options does (the station's defaults).
_NO_OPTIONS = IngestOptions()

Pending = deque[StagedCopy]  # staged copies being described, catalogued in order as their description is ready

#: The copy of a StagedCopy whose copy is still running (replaced once it is done).
_NOT_YET_COPIED = CopyResult(source=Path(), destination=Path(), size_bytes=0, sha256="", resumed_from=0)


@dataclass(frozen=True)
class _InFlight:
    """A file queued or being copied on the copy thread."""

    item: StagedCopy  # its copy is _NOT_YET_COPIED until the future is done
    future: Future[CopyResult]
    done_at: list[float] = field(default_factory=list)  # time.monotonic() when the copy ended (set by the future)

    def __post_init__(self) -> None:
        self.future.add_done_callback(lambda _future: self.done_at.append(time.monotonic()))


class DockRun:
    """One ingest run (one dock session) of one device: the copies run on its copy thread, one after the other,
    every other step on the calling (ingest) thread."""

    def __init__(self, root: Path, settings: Settings, engine: Engine, store: EvidenceStore, options: IngestOptions,
                 *, profile: DeviceProfile, identity: DeviceIdentity, serial: str, progress: Progress | None = None,
                 after_commit: AfterCommit | None = None) -> None:
        self.root, self.settings, self.store, self.options = root, settings, store, options
        self.profile, self.serial, self._progress = profile, serial, progress
        self.clock: ClockContext | None = None  # how the dock's end measures and sets the clock (ingest_folder)
        self.report = IngestReport()
        self.outage = OutageJournal(settings.staging_dir, serial, root=root, profile=profile.name,
                                    identity=identity, options=options)
        self.known = KnownFiles(settings.home, serial, time_floor=settings.time_floor)
        self.batch = Batch(engine, journal=self.outage, known=self.known, after_commit=after_commit)
        self.uploads = Uploads(store)
        self.start = DockStart(engine, settings, options, root=root, profile=profile, identity=identity,
                               serial=serial, report=self.report)
        self.registrar = Registrar(settings, store, options, batch=self.batch, start=self.start,
                                   journal=self.outage, known=self.known, uploads=self.uploads, report=self.report,
                                   profile=profile, identity=identity, serial=serial)
        self.files_seen = 0
        self.files_failed = 0
        self.from_journal = 0  # of files_seen: staged copies an earlier dock journaled, catalogued by this one
        self.stopped = False  # the station asked this run to stop between files
        self._copier: ThreadPoolExecutor | None = None  # the copy thread, while `run` runs
        self._in_flight: deque[_InFlight] = deque()  # the copies queued or running on it, in device order
        self._progress_lock = threading.Lock()
        self._hold: int | None = None  # this process's lock on the device (ingest.journal.hold)
        self._staging_sync: StagingSync | None = None  # small copies made durable a batch at a time, while `run` runs

    def begin(self, *, measured: ClockReading | None = None) -> None:
        """Claim the device and register the dock on a helper thread while the first file already copies."""
        self._hold = self._claim_device()  # other runs, in this process or another, see it is live
        mark_busy(self.serial)
        try:
            self.outage.load()
            self.known.load()
            self.start.start(measured=measured, journaled=bool(self.outage.entries))
        except BaseException:
            # Not begun, so never finished: the device is let go here, or the station's next dock of it would
            # wait an hour for this run's lock (found by a review).
            self._let_device_go()
            raise

    def _let_device_go(self) -> None:
        """Release this run's lock on the device and its busy mark (once; again is a no-op)."""
        staging_journal.let_go(self._hold)
        self._hold = None
        mark_idle(self.serial)

    def _claim_device(self) -> int:
        """This run's lock on the device (ingest.journal.hold). While another run holds it — a second `evidence
        ingest` of the same device, or the station again after a USB drop re-mounted it at the same path — wait
        for that run to end: two runs copying one device at once appended to the same partial copy, and the
        garbled file was stored under a SHA-256 it does not have while the device's file counted as ingested
        (found by a review). DeviceBusy, with nothing read, when the station stops or after DEVICE_BUSY_WAIT_S."""
        started, told = time.monotonic(), False
        while (fd := staging_journal.hold(self.settings.locks_dir, self.serial)) is None:
            waited = time.monotonic() - started
            if self.options.is_stopping() or waited > DEVICE_BUSY_WAIT_S:
                raise DeviceBusy(self.root, self.serial, waited)
            if not told:
                logger.warning("Device %s at %s is being ingested by another run; this run waits for it to end.",
                               self.serial, self.root)
                told = True
            time.sleep(DEVICE_BUSY_POLL_S)
        return fd

    def register(self, items: list[StagedCopy]) -> None:
        """Catalogue described staged copies as one batch (`Registrar.register`)."""
        self.registrar.register(items)

    def _advance(self, size_bytes: int) -> None:
        self._report_progress("advance", size_bytes)

    def _report_progress(self, event: str, value: int) -> None:
        """Tell the progress callback, one event at a time (the copy thread reports its copies too)."""
        if self._progress:
            with self._progress_lock:
                self._progress(event, value)

    # -- the run loop -----------------------------------------------------------------------------
    def run(self, files: list[DeviceFile]) -> None:
        staging = self.settings.staging_dir
        staging.mkdir(parents=True, exist_ok=True)
        if self._progress:
            self._progress("files", len(files))
            self._progress("bytes", sum(f.size_bytes for f in files))
        on_bytes = self._advance if self._progress is not None else None
        pending: Pending = deque()
        self.known.device_keys = set()
        self._staging_sync = StagingSync(staging)  # before the first copy: its syncs report every write-back error
        with (ThreadPoolExecutor(max_workers=self.settings.probe_workers, thread_name_prefix="probe") as pool,
              ThreadPoolExecutor(max_workers=1, thread_name_prefix="copy") as copier):
            self._copier = copier
            try:
                for file in files:
                    if not self._one(file, staging, on_bytes, pool, pending):
                        break  # stopping: the copies not started yet wait for the next dock (below)
                else:
                    self._stage_in_flight(pool, pending, wait=True)
                    # Journaled copies no device file stood for: their files left the device, or hold other bytes
                    # now. Catalogued from the journal before a complete dock forgets it (they were lost before).
                    self.catalogue_journaled(self.outage.leftovers(), pool, pending, on_device=False)
            finally:
                # Whatever happens next (the device pulled, the station stopping), every copy that reached
                # staging is catalogued now, or journaled if the catalogue is away.
                try:
                    self._settle_in_flight(pool, pending)
                    self.register_ready(pending, wait=True)
                finally:
                    self._staging_sync.close()
        if not self.outage.is_offline:
            try:
                self.registrar.drain_uploads(keep=0)
            except OperationalError as exc:
                self.go_offline(exc, pending)

    def _one(self, file: DeviceFile, staging: Path, on_bytes: Callable[[int], None] | None,
             pool: ThreadPoolExecutor, pending: Pending) -> bool:
        """Copy one file into staging and hand it to cataloguing; False when the station is stopping.

        Raises DeviceGone when the device vanished (what is staged so far is kept by the caller).
        """
        if self.options.is_stopping():
            self.report.add_error(str(self.root), ErrorStage.STATION,
                                  "station stopping: the rest waits for the next dock", preserved=False)
            self.stopped = True
            return False
        self.files_seen += 1
        known_key = known_files.key(self.serial, file.relative, file.size_bytes, file.mtime_ns)
        if self.known.device_keys is not None:
            self.known.device_keys.add(known_key)
        if self.known.is_trustworthy(file):
            known_id = self._known_recording(file, known_key, pending)
            if known_id is not None:
                self.report.add_skipped(file.relative, f"already ingested as recording {known_id}")
                self._advance(file.size_bytes)
                return True
        self._stage(file, staging, on_bytes, pool, pending)
        return True

    def _known_recording(self, file: DeviceFile, known_key: str, pending: Pending) -> int | None:
        """The recording this device file was catalogued as (its path, size and mtime stand for its bytes)."""
        known_id: int | None = None
        if not self.outage.is_offline:
            try:
                sighting = find_known_sighting(self.batch.session, device_serial=self.serial,
                                               device_path=file.relative, size_bytes=file.size_bytes,
                                               mtime_ns=file.mtime_ns)
                if sighting is not None:
                    known_id = sighting.recording_id
                    if known_key not in self.known.entries:  # catalogued before the station kept its own record
                        row = self.batch.session.get(Recording, known_id)
                        if row is not None:
                            self.known.note(row, file, file.size_bytes)
            except OperationalError as exc:
                self.go_offline(exc, pending)
        if self.outage.is_offline:  # the catalogue is away: the station's own record says what it catalogued
            local = self.known.entries.get(known_key)
            known_id = local.recording_id if local is not None else None
        return known_id

    def _stage(self, file: DeviceFile, staging: Path, on_bytes: Callable[[int], None] | None,
               pool: ThreadPoolExecutor, pending: Pending) -> None:
        """Put *file* in staging and hand it to cataloguing: the copy an earlier run journaled, or a new one.

        Small files are copied on the copy thread, one after the other in device order (a copy starts only once
        the one before it is done), up to COPIES_AHEAD (and COPIES_AHEAD_BYTES) ahead of this thread, which
        catalogues the copies done meanwhile; a long one is copied there once those are done, while this thread
        describes, catalogues and commits what is staged (`_commit_staged`), then waits for it with no transaction
        open. Raises DeviceGone (see `_copy_outcome`)."""
        key = part_key(self.serial, file, self.root)
        sidecar, sidecar_note = read_sidecar(self.profile, file) if file.role == "recording" else (None, None)
        journaled = self._journaled_as(file, key, pool, pending)
        if journaled is not None:
            # Copied during a catalogue outage: catalogue the staged copy, do not read the device again.
            self._stage_in_flight(pool, pending, wait=True)
            copy = CopyResult(source=file.path, destination=staging / journaled.sha256,
                              size_bytes=journaled.size_bytes, sha256=journaled.sha256, resumed_from=0)
            if journaled.sidecar_hex is not None:
                sidecar = bytes.fromhex(journaled.sidecar_hex)
            self._advance(file.size_bytes)
            self.from_journal += 1
            # stamped as the dock that copied it was (a review found the match path taking this dock's case)
            self.catalogue(StagedCopy(file, copy, None, sidecar_note, key=journaled.part_key, sidecar=sidecar,
                                      options=stamp_options(journaled)), pool, pending)
        elif file.size_bytes > LONG_COPY_BYTES:
            self._stage_in_flight(pool, pending, wait=True)
            self._start_copy(StagedCopy(file, _NOT_YET_COPIED, None, sidecar_note, key=key, sidecar=sidecar),
                             staging, on_bytes)
            # While it is read: the copies before it are described, catalogued and committed (their archive
            # messages handed over), so no transaction is open across the long read and the next file's copy
            # does not wait for the last one's ffprobe and commit (it did: ~0.2 s per file, one after the other).
            self._commit_staged(pending)
            self._stage_in_flight(pool, pending, wait=True)
        else:
            self._start_copy(StagedCopy(file, _NOT_YET_COPIED, None, sidecar_note, key=key, sidecar=sidecar),
                             staging, on_bytes)
            self._stage_in_flight(pool, pending, wait=False)

    def _start_copy(self, item: StagedCopy, staging: Path, on_bytes: Callable[[int], None] | None) -> None:
        """Queue *item*'s copy on the copy thread (copies run one after the other, in device order)."""
        assert self._copier is not None
        self._in_flight.append(_InFlight(item, self._copier.submit(self._copy_waiting_for_space, item.file, staging,
                                                                   on_bytes)))

    def _journaled_as(self, file: DeviceFile, key: str, pool: ThreadPoolExecutor,
                      pending: Pending) -> staging_journal.JournalEntry | None:
        """The journal entry whose staged copy *file* still is, if an earlier run journaled it. The key (path,
        size, time) is not enough: a recorder whose clock was reset writes another recording under all three (a
        review found the new one left unread for good). So the device file is compared with the staged copy first
        (`device_file_matches`: sampled, every byte where the file's time is no evidence); an entry it does not
        match is catalogued as what was journaled (as no longer on the device: its sighting never stands for the
        file there now), and the device's file is then read as a new one. An entry whose staged copy is gone was
        catalogued and archived before (its dock ended partial, keeping the journal): passed over."""
        for entry in self.outage.for_file(key, file):
            self.outage.take(entry)
            staged = self.settings.staging_dir / entry.sha256
            if not staged.is_file():
                logger.info("Journaled copy %s of %r is no longer staged (catalogued and archived before); the "
                            "device file is read as any other.", entry.sha256[:12], file.relative)
                continue
            try:
                same = device_file_matches(file.path, staged, every_byte=not self.known.is_trustworthy(file))
            except OSError as exc:
                logger.warning("Could not compare %r with its journaled copy %s (%s): both are kept.",
                               file.relative, entry.sha256[:12], exc)
                same = False
            if same:
                return entry
            logger.warning("Device file %r is not the copy journaled under its name, size and time (%s): that copy "
                           "is catalogued as journaled, and the file is read again.", file.relative, entry.sha256[:12])
            self._stage_in_flight(pool, pending, wait=True)
            self.catalogue_journaled([entry], pool, pending, on_device=False)
        return None

    def catalogue_journaled(self, entries: list[staging_journal.JournalEntry], pool: ThreadPoolExecutor,
                            pending: Pending, *, on_device: bool) -> None:
        """Catalogue journaled staged copies as they were journaled: stamped with the options of the dock that
        copied them (its case, officer, clock offset), the device may be gone. A copy already catalogued there is
        passed over (its run committed it before it ended). Not *on_device*: this dock found the file gone from
        the device or holding other bytes, so the copy's sighting is recorded as cleared and the station's record
        does not take it for a file on the device (a review found a new file under a journaled one's name, size
        and time never read once its first read had failed)."""
        for entry in entries:
            self.outage.take(entry)
            if self.outage.is_offline:
                return  # the journal keeps the rest
            try:
                if seen_there(self.batch.session, sha256=entry.sha256, device_serial=self.serial,
                              device_path=entry.relative):
                    continue
            except OperationalError as exc:
                self.go_offline(exc, pending)
                return
            self.files_seen += 1
            self.from_journal += 1
            item = journaled_copy(entry, self.root, self.settings.staging_dir, on_device=on_device)
            if not item.copy.destination.is_file():
                self.files_failed += 1
                self.registrar.error(item.file, ErrorStage.COPY, f"its copy journaled at an earlier dock "
                                     f"(SHA-256 {entry.sha256}) is missing from staging and was never catalogued",
                                     preserved=False)
                continue
            self.catalogue(item, pool, pending)

    def _stage_in_flight(self, pool: ThreadPoolExecutor, pending: Pending, *, wait: bool) -> None:
        """Hand the copies done on the copy thread to cataloguing, in order, a group at a time (made durable with one
        staging sync, `_made_durable`): the copies done once STAGE_BATCH_FILES of them are, or the oldest has waited
        STAGE_BATCH_S; while more than COPIES_AHEAD files or COPIES_AHEAD_BYTES are queued (with *wait*: until none
        is), the next STAGE_BATCH_FILES are waited for. Raises DeviceGone (`_copy_outcome`)."""
        while self._in_flight:
            must = wait or (len(self._in_flight) > COPIES_AHEAD
                            or sum(f.item.file.size_bytes for f in self._in_flight) > COPIES_AHEAD_BYTES)
            if not must and not self._copies_ready():
                return
            waited_for = STAGE_BATCH_FILES if must else 0
            staged: list[StagedCopy] = []
            try:
                while self._in_flight and len(staged) < COPIES_AHEAD and (
                        waited_for > 0 or self._in_flight[0].future.done()):
                    waited_for -= 1
                    if (item := self._staged_copy(self._in_flight.popleft())) is not None:
                        staged.append(item)
            finally:  # also when the device vanished (DeviceGone): what reached staging is catalogued
                self._commit_before_syncing(staged, pending)
                for item in self._made_durable(staged):
                    self.catalogue(item, pool, pending)

    def _copies_ready(self) -> bool:
        """Whether the copies done so far are taken over now: STAGE_BATCH_FILES of them in a row, or the oldest
        done STAGE_BATCH_S ago (one staging sync for many small copies, not one for each)."""
        first = self._in_flight[0]
        if not first.future.done() or not first.done_at:
            return False
        if time.monotonic() - first.done_at[0] > STAGE_BATCH_S:
            return True
        for done, flight in enumerate(self._in_flight, start=1):
            if not flight.future.done():
                return False
            if done >= STAGE_BATCH_FILES:
                return True
        return False

    def _settle_in_flight(self, pool: ThreadPoolExecutor, pending: Pending) -> None:
        """After the run stopped early: the copies not started are dropped, a running one is waited for (a long
        one to its end), the ones that reached staging are catalogued; a copy that failed waits, with the rest of
        the device, for the next dock."""
        for flight in self._in_flight:
            flight.future.cancel()
        flights, self._in_flight = self._in_flight, deque()
        staged: list[StagedCopy] = []
        for flight in flights:
            if flight.future.cancelled():
                continue
            try:
                copy = flight.future.result()
            except CopyFailed as exc:
                logger.info("Copy of %r abandoned with the run: %s", flight.item.file.relative, exc.reason)
                continue
            staged.append(replace(flight.item, copy=copy))
        self._commit_before_syncing(staged, pending)
        for item in self._made_durable(staged):
            self.catalogue(item, pool, pending)

    def _staged_copy(self, flight: _InFlight) -> StagedCopy | None:
        copy = self._copy_outcome(flight.item.file, flight.future.result)
        return replace(flight.item, copy=copy) if copy is not None else None

    def _commit_before_syncing(self, items: list[StagedCopy], pending: Pending) -> None:
        """Commit the open transaction before *items* are synced together: the staging sync waits for every write
        the staging file system holds, other processes' too (a video dock's, a renderer's), and no catalogue lock
        (SQLite's writer lock, the custody head) may be held by this dock meanwhile: other docks would wait on it."""
        if (self.outage.is_offline or all(item.copy.durable for item in items)
                or not self.batch.session.in_transaction()):
            return
        try:
            self.batch.commit()
        except OperationalError as exc:
            self.go_offline(exc, pending)
        except Exception as exc:  # as in register_ready: journaled, the dock goes on (found by a review)
            logger.exception("Committing before a staging sync failed; what is staged is journaled.")
            self.go_offline(exc, pending)

    def _made_durable(self, items: list[StagedCopy]) -> list[StagedCopy]:
        """*items* with every copy durable: those made without fsync are synced together first (one syncfs,
        ingest.staging_sync), before anything counts on them. A copy that cannot be made durable is reported and
        leaves staging; nothing of it was catalogued or journaled, and its file is read again at the next dock."""
        waiting = [item.copy.destination for item in items if not item.copy.durable]
        if not waiting:
            return items
        assert self._staging_sync is not None
        failed = self._staging_sync.make_durable(waiting)
        kept: list[StagedCopy] = []
        for item in items:
            if (exc := failed.get(item.copy.destination)) is None:
                kept.append(replace(item, copy=replace(item.copy, durable=True)))
                continue
            self.files_failed += 1
            with contextlib.suppress(OSError):  # the name, while it is still this copy's file (another may count on it)
                if item.copy.inode == file_identity(item.copy.destination):
                    item.copy.destination.unlink()
            self.registrar.error(item.file, ErrorStage.COPY, f"its copy could not be made durable in staging "
                                 f"({exc.strerror or exc}): the copy is not kept, and the file is read again at the "
                                 "next dock", preserved=False)
        return kept

    def _commit_staged(self, pending: Pending) -> None:
        """Catalogue every staged copy now and commit whatever the transaction holds (nothing while the catalogue is
        away): a long copy is waited for with no transaction open, so the custody-head lock is never held across
        a device read (other docks on this station would wait for it). Committed also when no file is uncommitted:
        a finished upload's manifests (`drain_uploads`) or a failed copy's event open one (found by a review)."""
        if self.outage.is_offline:
            return
        self.register_ready(pending, wait=True)
        try:
            if not self.outage.is_offline and (self.batch.has_uncommitted or self.batch.session.in_transaction()):
                self.batch.commit()
        except OperationalError as exc:
            self.go_offline(exc, pending)

    def _copy_outcome(self, file: DeviceFile, copied: Callable[[], CopyResult]) -> CopyResult | None:
        """What *copied* (waiting for *file*'s copy on the copy thread) gave; None when it failed (reported).

        Raises DeviceGone when the failure was the device vanishing (what is staged so far is kept by the caller).
        """
        try:
            return copied()
        except CopyFailed as exc:
            self.files_failed += 1
            kept = f" ({exc.bytes_copied} bytes kept for resume in staging as {Path(exc.destination).name})"
            self.registrar.error(file, ErrorStage.COPY, exc.reason + (kept if exc.bytes_copied else ""),
                                 preserved=False)
            if not self.root.is_dir():
                raise DeviceGone(self.root, f"vanished while copying {file.relative!r}") from exc
            return None

    def _copy_waiting_for_space(self, file: DeviceFile, staging: Path,
                                on_bytes: Callable[[int], None] | None) -> CopyResult:
        """Copy; when staging is full, pause (resumable .part kept) until space returns or time runs out."""
        waited = 0.0
        while True:
            try:
                return copy_and_hash(file.path, staging, part_name=part_key(self.serial, file, self.root),
                                     progress=on_bytes, part_bytes=self.store.part_bytes_for,
                                     durable=not self._syncs_later(file))
            except CopyFailed as exc:
                if (exc.errno != errno.ENOSPC or waited >= self.settings.disk_full_wait_s
                        or self.options.is_stopping()):
                    raise
                if waited == 0.0:
                    self._paused(file, staging, exc.bytes_copied)
                time.sleep(DISK_FULL_POLL_S)
                waited += DISK_FULL_POLL_S
                if shutil.disk_usage(staging).free < min(file.size_bytes - exc.bytes_copied, 1 << 20) + (1 << 20):
                    continue
                logger.warning("Staging has space again; resuming %r.", file.relative)

    def _syncs_later(self, file: DeviceFile) -> bool:
        """Whether *file*'s copy skips its fsync, made durable with its batch (`_made_durable`): a small one, where
        the staging file system's sync reports write-back errors. A long copy is fsynced on its own."""
        return (file.size_bytes <= LONG_COPY_BYTES and self._staging_sync is not None
                and self._staging_sync.defers)

    def _paused(self, file: DeviceFile, staging: Path, bytes_copied: int) -> None:
        logger.error("Staging disk %r is full while copying %r: paused until space returns.",
                     str(staging), file.relative)
        self.report.notes.append(f"paused: staging disk full while copying {file.relative} "
                                 f"({bytes_copied} bytes kept)")
        self._report_progress("paused", bytes_copied)

    # -- cataloguing staged copies ----------------------------------------------------------------
    def catalogue(self, item: StagedCopy, pool: ThreadPoolExecutor, pending: Pending) -> None:
        """A staged copy: a new sighting of bytes already known, or describe and register it; journal it
        instead while the catalogue is unreachable. Whether a long copy's bytes are known is asked before it is
        described (not probed again); a small one is described at once and asked with its batch (one query)."""
        self.outage.write_ahead(item)
        if self.outage.is_offline:
            self.outage.journal(item)
            return
        try:
            if item.copy.size_bytes > LONG_COPY_BYTES and self.registrar.sighted_if_known(item):
                return
        except OperationalError as exc:
            self.go_offline(exc, pending)
            self.outage.journal(item)
            return
        item.future = pool.submit(gather_facts, item.copy.destination, name=item.file.name,
                                  mtime_ns=item.file.mtime_ns, sidecar=item.sidecar,
                                  probe_timeout_s=self.settings.probe_timeout_s)
        item.staged_at = time.monotonic()
        pending.append(item)
        self.register_ready(pending, wait=False)

    def register_ready(self, pending: Pending, *, wait: bool) -> None:
        """Register the staged copies whose description is ready, in order, in batches of up to
        REGISTER_BATCH_FILES: a batch goes when that many are ready or the oldest has waited REGISTER_BATCH_S
        (with *wait*: all of them, now)."""
        while pending and not self.outage.is_offline:
            ready = len(pending) if wait else _ready(pending)
            if not wait and ready < REGISTER_BATCH_FILES and (
                    ready == 0 or time.monotonic() - pending[0].staged_at < REGISTER_BATCH_S):
                return
            batch = [pending.popleft() for _ in range(min(ready, REGISTER_BATCH_FILES))]
            try:
                self.register(batch)
            except OperationalError as exc:
                for item in batch:
                    self.outage.journal(item)
                self.go_offline(exc, pending)
            except Exception as exc:
                logger.exception("Cataloguing %d staged copies (from %r) failed; they are journaled.", len(batch),
                                 batch[0].file.relative)
                for item in batch:
                    self.outage.journal(item)
                self.go_offline(exc, pending)

    def go_offline(self, exc: Exception, pending: Pending) -> None:
        """The catalogue is unreachable: keep copying into staging and journal what is staged."""
        if self.outage.go_offline(exc):
            self.batch.roll_back()
        while pending:
            self.outage.journal(pending.popleft())

    # -- the end ----------------------------------------------------------------------------------
    def finish(self) -> None:
        """End the dock session (whatever happened before), then let the device go."""
        try:
            self._finish()
        finally:
            self.outage.close()
            self._let_device_go()

    def _finish(self) -> None:
        try:
            if not self.outage.is_offline:
                self.registrar.drain_uploads(keep=0)  # also after an unplugged device: what was copied is archived
        except OperationalError as exc:
            self.go_offline(exc, deque())
        finally:
            self.uploads.shutdown()
        session = self.batch.session
        if self.outage.is_offline:
            session.close()
            return
        try:
            dock = self.start.dock(session)
        except BaseException:  # noqa: BLE001 - registration failed: the caller sees that error, not this one
            session.close()  # registration failed: the caller sees that error, not this one
            return
        self._close_dock(dock)
        session.close()
        if dock.result == DockResult.COMPLETE:
            self.outage.close()
            staging_journal.forget(self.settings.staging_dir, self.serial)
            self.known.compact()

    def _close_dock(self, dock: DockSession) -> None:
        session, actor, report = self.batch.session, self.options.actor, self.report
        link_companions(session, self.serial, self.registrar.companions, report)
        if report.discarded:
            append_event(session, CustodyKind.DISCARDED, actor=actor, dock_session_id=dock.id,
                         details={"device_serial": self.serial, "files": report.discarded})
        dock.files_seen, dock.files_failed = self.files_seen, self.files_failed
        self.batch.commit()  # the last batch first: the note counts what is committed
        if self.clock is not None and not self.stopped:
            set_device_clock(session, dock, self.clock, new_ids=self.batch.dock_new_ids, actor=actor, report=report,
                             complete=dock_result(report, stopped=self.stopped) == DockResult.COMPLETE,
                             commit=self.batch.commit)
        messages = self.batch.dock_new_ids if self.options.defer_archive else []
        # Closed in one commit with its note: a reader never sees the session ended without saying how
        dock.finished_at = utcnow()
        dock.result = dock_result(report, stopped=self.stopped)
        dock.result_note = result_note(dock, report, stopped=self.stopped, from_journal=self.from_journal,
                                       archive_messages=len(messages),
                                       unsent_messages=outbox.unsent(session, messages) if messages else 0)
        session.add(dock)
        append_event(session, CustodyKind.UNDOCKED, actor=actor, dock_session_id=dock.id,
                     details={"files_seen": dock.files_seen, "files_new": dock.files_new,
                              "files_known": dock.files_known, "files_failed": dock.files_failed,
                              "result": dock.result, "note": dock.result_note})
        self.batch.commit()
        stamp_marked_important(session, self.store, self.registrar.marked_important, serial=self.serial,
                               actor=actor, settings=self.settings, key=self.start.key, report=report)


def _ready(pending: Pending) -> int:
    """How many staged copies at the head of *pending* are described already."""
    count = 0
    for item in pending:
        if item.future is None or not item.future.done():
            break
        count += 1
    return count


def _recognise(root: Path, settings: Settings,
               options: IngestOptions) -> tuple[DeviceProfile, DeviceIdentity, ClockReading | None, IngestOptions]:
    """The device's profile, identity and measured clock offset; the options with the clock corrected."""
    profiles = load_profiles((settings.profiles_dir,) if settings.profiles_dir else ())
    profile = get_profile(profiles, options.profile) if options.profile else recognise(root, profiles)
    identity = read_identity(root, profile.identity) if profile.identity else DeviceIdentity()
    measured = measure_device_clock(root, profile, settings.station_tz)
    if measured is not None and abs(measured.offset_s) > MAX_CLOCK_OFFSET_S:
        measured = None  # a clock file saying year 1 or 9999 corrects nothing: the files' own times are judged
    return profile, identity, measured, options


def _mounted(root: Path) -> tuple[int, int] | None:
    """What is mounted at *root*: its file system and folder (another card in the slot, or the bare mount point
    once the device is pulled, is another)."""
    try:
        info = os.stat(root)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _corrected(measured: ClockReading | None, scan: ScanResult, profile: DeviceProfile,
               options: IngestOptions) -> tuple[ClockReading | None, IngestOptions, str | None]:
    """The dock's measurement as it stands once the device's files are known, the options with the clock corrected
    by it (unless an offset was given), and why a measurement was not used. A dock file older than a file the
    device wrote was not written at this dock: its time is not the device's clock now (a review found a day-old
    USB log moving every capture time 20 hours)."""
    if measured is not None and measured.measured_by == "dock_file":
        dock_file = next((f for f in scan.files if f.relative == profile.clock.dock_file), None)
        newer = [f.relative for f in scan.files if dock_file is not None and f.mtime_ns > dock_file.mtime_ns]
        if dock_file is None or newer:
            return None, options, (f"device clock not measured: {profile.clock.dock_file!r} was not written at this "
                                   f"dock ({newer[0] if newer else 'it is not a regular file'} is newer)")
    if measured is not None and options.clock_offset_s is None:
        options = replace(options, clock_offset_s=measured.offset_s)  # the device said what its clock reads
    return measured, options, None


def _station_policy(engine: Engine, settings: Settings, actor: str) -> str | None:
    """The station's retention terms against the adopted policy (catalog.policy_adoption): adopted by the station's
    first dock when none is yet; other terms never stop a dock (nothing is lost) but are logged and noted (the
    station refuses to start with them; this is one left running after an administrator adopted new ones: its rows
    are decided by the adopted terms, `Registrar.register`), and neither does an adoption event edited behind the
    application's back (verify names it). A catalogue that does not answer: the dock journals as ever, nothing to
    compare."""
    try:
        with Session(engine) as session:
            ensure_policy(session, settings.policy_terms, command="the station's dock", adopt_as=actor,
                          required=False)
    except PolicyNotAdopted as exc:
        why = (f"this station's differ from those adopted {exc.adopted[:12]} ({'; '.join(exc.differences)}); the "
               "dock decided by the adopted terms: restart the station and its worker with them")
        logger.error("Retention terms: %s.", why)
        return f"retention terms: {why}"
    except PolicyInvalid as exc:
        logger.error("%s", exc)
        return f"retention terms: {exc}"
    except OperationalError:
        pass
    return None


def ingest_folder(root: Path, *, settings: Settings, engine: Engine, store: EvidenceStore,
                  options: IngestOptions = _NO_OPTIONS, progress: Progress | None = None,
                  after_commit: AfterCommit | None = None) -> IngestReport:
    """Ingest every recording under *root* (a mounted device or a folder).

    Raises:
      StampInvalid: the case number / purpose / officer given are not acceptable (nothing was read).
      ProfileNotFound: no profile fits and none was named.
      DeviceGone: the folder is missing, or vanished mid-ingest (what was done is kept and reported).
      CatalogueDeferred: the catalogue was unreachable; what was copied is journaled in staging.

    *after_commit* receives the ids of new recordings once they are committed: the place to enqueue
    archive (with ``defer_archive``) or derive messages.
    """
    validate_options(options, settings)
    if not root.is_dir():
        raise DeviceGone(root, "not a folder (unplugged or not mounted?)")
    profile, identity, measured, options = _recognise(root, settings, options)
    policy_note = _station_policy(engine, settings, options.actor)
    written = WrittenTimes(settings.home / "station-time-files.txt")
    mounted = _mounted(root)
    scan = scan_device(root, profile, station_times=written.load())
    measured, options, clock_note = _corrected(measured, scan, profile, options)
    if not options.defer_archive:
        with contextlib.suppress(OperationalError):  # a catalogue outage is handled below, per file
            archive_staged(engine, store, settings.staging_dir, key=load_or_create_key(settings.station_key_path),
                           actor=options.actor, policy=settings.retention_policy, station=settings.station)
    run = DockRun(root, settings, engine, store, options, profile=profile, identity=identity,
                  serial=device_serial(identity, scan.files, profile, root), progress=progress,
                  after_commit=after_commit)
    run.clock = ClockContext(root=root, profile=profile, settings=settings, serial=run.serial, measured=measured,
                             same_device=lambda: mounted is not None and _mounted(root) == mounted, written=written)
    run.begin(measured=measured)
    for note in (policy_note, clock_note):
        if note:
            run.report.notes.append(note)
    if identity.problem and profile.identity:
        run.report.add_skipped(profile.identity.file, identity.problem)
    for left in scan.skipped:
        if left.unread:  # files may be in it: the dock is partial, not complete (a review's chmod 000 folder)
            run.report.add_error(left.relative, ErrorStage.SCAN, left.reason, preserved=False)
        else:
            run.report.add_skipped(left.relative, left.reason)
    for discarded in scan.discarded:
        run.report.add_discarded(discarded.relative, discarded.reason)
    try:
        run.run(scan.files)
    except DeviceGone as exc:
        # What was copied so far is kept and catalogued; the rest waits for the next dock.
        run.report.add_error(str(root), ErrorStage.DEVICE, str(exc), preserved=False)
    except BaseException as exc:
        # Anything unforeseen: the device was not read to its end, so the dock is never `complete` (which would
        # forget the staging journal of copies not yet catalogued: found by a review). Recorded, then raised.
        run.report.add_error(str(root), ErrorStage.STATION, f"the run stopped: {first_line(exc)}", preserved=False)
        raise
    finally:
        run.finish()
    if run.outage.is_offline:
        raise CatalogueDeferred(redact_url(settings.database_url), (
            f"{run.outage.reason}; {run.outage.journaled} file(s) from {root} are copied to staging and journaled, "
            "and are catalogued as soon as the catalogue is back"), device_serial=run.serial,
            journaled=run.outage.journaled)
    return run.report
