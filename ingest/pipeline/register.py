"""Cataloguing a dock's staged copies: new rows (then their uploads), or sightings of bytes already catalogued;
and the batched commits that make them durable.

Copies are catalogued in batches (`Registrar.register`: the copies whose description is ready, up to a few dozen):
one query says which bytes are known, the new rows with their sightings, integrity verdicts, stamps and custody
events are written together (the events appended in one go), and their uploads and manifests go together too. A
batch the catalogue refuses as a whole is catalogued again one copy at a time, so one bad file only affects itself.

Order matters for the evidence: the journal entries of a batch are synced before the batch commits
(`OutageJournal.sync_before_commit`), the outbox message of a deferred archive is in the same transaction as its
row, and after-commit messages go out only once the rows they name are committed. Ingest thread only.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from catalog import (
    CustodyKind,
    DockSession,
    Recording,
    RecordingState,
    Sighting,
    append_event,
    find_by_sha256,
    outbox,
)
from catalog.cases import case_number_exists
from catalog.clock import behind_by, chain_floor
from catalog.custody import NewEvent, append_events
from catalog.db import begin_write
from catalog.integrity import INGEST_CHECK, record_integrity
from catalog.policy_adoption import policy_in_force
from catalog.recordings import find_by_sha256s
from catalog.replay import ROW_KEY, row_values
from catalog.sightings import sighting_at
from catalog.stamps import record_stamps
from catalog.types import utcnow
from device_profiles import DeviceProfile
from ingest.config import Settings
from ingest.describe.identity import DeviceIdentity
from ingest.describe.metadata import Facts, parse_filename
from ingest.pipeline.cataloguing import RowContext, new_recording
from ingest.pipeline.dock import DockStart
from ingest.pipeline.known import KnownFiles
from ingest.pipeline.options import AfterCommit, IngestOptions
from ingest.pipeline.outage import OutageJournal, StagedCopy
from ingest.pipeline.report import ErrorStage, IngestOutcome, IngestReport
from ingest.pipeline.uploads import ARCHIVES_IN_FLIGHT, ARCHIVES_QUEUED, Uploads, record_uploads
from ingest.scan import DeviceFile
from ingest.transfer import CopyResult
from storage import EvidenceStore

__all__ = ["COMMIT_EVERY_FILES", "COMMIT_EVERY_S", "Batch", "Registrar"]

logger = logging.getLogger(__name__)

#: Catalog commits are grouped: at most this many files or this many seconds per transaction.
COMMIT_EVERY_FILES = 64
COMMIT_EVERY_S = 1.0


class Batch:
    """The run's catalogue session and its open transaction, committed every few files or every second."""

    def __init__(self, engine: Engine, *, journal: OutageJournal, known: KnownFiles,
                 after_commit: AfterCommit | None) -> None:
        self.session = Session(engine, expire_on_commit=False)
        self._journal, self._known, self._after_commit = journal, known, after_commit
        self._uncommitted = 0  # files done in the open transaction
        self._last_commit = time.monotonic()
        self.new_ids: list[int] = []  # new recordings in the open transaction
        self.dock_new_ids: list[int] = []  # every recording this dock catalogued, committed

    @property
    def has_uncommitted(self) -> bool:
        return self._uncommitted > 0

    def file_done(self, files: int = 1, *, force: bool = False) -> None:
        """*files* more files in the open transaction; commit when the batch is full or old enough."""
        self._uncommitted += files
        if (force or self._uncommitted >= COMMIT_EVERY_FILES
                or time.monotonic() - self._last_commit > COMMIT_EVERY_S):
            self.commit()

    def commit(self) -> None:
        self._journal.sync_before_commit()
        self.session.commit()
        self._known.committed()
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        # Messages go out only after the rows they name are committed; with a broker they are already in the
        # outbox (same transaction), so whatever the callback meets (a broker away) never stops the dock.
        if self._after_commit is not None and self.new_ids:
            try:
                self._after_commit(self.new_ids)
            except Exception:
                logger.warning("After-commit step for %d new recording(s) failed; they are catalogued and wait "
                               "for the relay.", len(self.new_ids), exc_info=True)
        self.dock_new_ids.extend(self.new_ids)
        self.new_ids = []

    def roll_back(self) -> None:
        """The catalogue went away: the open transaction is lost (and nothing of it is remembered)."""
        with contextlib.suppress(OperationalError):
            self.session.rollback()
        self._known.rolled_back()


def _distinct_bytes(described: list[tuple[StagedCopy, Facts | None]]
                    ) -> Iterator[list[tuple[StagedCopy, Facts | None]]]:
    """*described* in consecutive runs in which no two copies hold the same bytes (a later one is a sighting of the
    first, once that is catalogued)."""
    run: list[tuple[StagedCopy, Facts | None]] = []
    hashes: set[str] = set()
    for item, facts in described:
        if item.copy.sha256 in hashes:
            yield run
            run, hashes = [], set()
        run.append((item, facts))
        hashes.add(item.copy.sha256)
    if run:
        yield run


def _drop_staged_duplicate(existing: Recording, copy: CopyResult) -> None:
    # Same bytes as a recording still staged (or uploading right now): that staged file is its copy, or (staged
    # at another station) a second copy kept until that station has archived it; the staging sweep then removes
    # it. Archived already: this copy is not needed.
    if existing.state != RecordingState.STAGED.value:
        copy.destination.unlink(missing_ok=True)


class Registrar:
    """Catalogues the staged copies of one dock into its batch, and records their uploads."""

    def __init__(self, settings: Settings, store: EvidenceStore, options: IngestOptions, *, batch: Batch,
                 start: DockStart, journal: OutageJournal, known: KnownFiles, uploads: Uploads,
                 report: IngestReport, profile: DeviceProfile, identity: DeviceIdentity, serial: str) -> None:
        self._settings, self._store, self._options = settings, store, options
        self._batch, self._session, self._start, self._journal = batch, batch.session, start, journal
        self._known, self._uploads, self._report = known, uploads, report
        self._profile, self._serial = profile, serial
        self._row_context = RowContext(
            profile=profile, station=settings.station, station_zone=settings.station_tz,
            station_place=settings.station_place, policy=settings.retention_policy, time_floor=settings.time_floor,
            serial=serial, officer_option=options.officer, identity_officer_number=identity.officer_number,
            identity_officer_name=identity.officer_name, case_number=options.case_number, purpose=options.purpose,
            clock_offset_s=options.clock_offset_s, defer_archive=options.defer_archive)
        self._case_known: dict[str, bool] = {}  # case number -> whether the catalogue has that case
        self._floor: datetime | None = None  # the custody chain's floor (catalog.clock), read once per dock
        self._floor_read = False
        self.clock_lag: timedelta | None = None  # how far this host's clock is behind the chain, when it is
        self.companions: list[tuple[int, str]] = []  # (new recording id, device path of the recording it serves)
        self.marked_important: list[tuple[int, str]] = []  # known recordings seen again under an _IMP name

    @property
    def dock(self) -> DockSession:
        return self._start.dock(self._session)

    def error(self, file: DeviceFile, stage: ErrorStage, reason: str, *, preserved: bool) -> None:
        """Report a failure of *file*, and (while the catalogue answers) record it as a custody event."""
        logger.warning("%s failed for %r: %s", stage, file.relative, reason)
        self._report.add_error(file.relative, stage, reason, preserved=preserved)
        if self._journal.is_offline:
            return
        append_event(self._session, CustodyKind.INGEST_FAILED, actor=self._options.actor,
                     dock_session_id=self.dock.id,
                     details={"file": file.relative, "stage": stage, "reason": reason, "preserved": preserved})

    def register(self, items: Sequence[StagedCopy]) -> None:
        """Catalogue staged copies, in order, as one batch. Nothing the files hold can stop this: a describe failure
        or an impossible clock becomes a flagged row, a batch the catalogue refuses is catalogued one copy at a time;
        only the catalogue itself failing (OperationalError) escapes, and the caller journals the copies then."""
        self._start.dock(self._session)  # the dock is registered before anything of it is catalogued
        # Each batch decides retention by the terms adopted now (a station left running after a re-adoption, a
        # journal replayed after an outage, a re-adoption during a long dock): the inline upload locks it so.
        self._row_context = replace(self._row_context,
                                    policy=policy_in_force(self._session, self._settings.retention_policy))
        described = [(item, self._facts(item)) for item in items]
        registered: list[tuple[Recording, StagedCopy]] = []
        for run in _distinct_bytes(described):
            new = self._new_only(run)
            registered += [(recording, item) for (item, _facts), recording in zip(new, self._insert_new(new),
                                                                                  strict=True)
                           if recording is not None]
        self._registered(registered)

    def sighted_if_known(self, item: StagedCopy) -> bool:
        """Whether *copy*'s bytes are catalogued already; if so, a sighting of them here is recorded, and the
        staged copy goes unless it is the only one. Asked before describing a copy (known bytes are not read
        again), when registering it (an earlier file of this dock may have held them) and after a unique
        violation (another dock catalogued them a moment ago)."""
        existing = find_by_sha256(self._session, item.copy.sha256)
        if existing is None:
            return False
        self._known_bytes(existing, item)
        _drop_staged_duplicate(existing, item.copy)
        return True

    def _facts(self, item: StagedCopy) -> Facts | None:
        try:
            assert item.future is not None
            return item.future.result()
        except Exception as exc:
            logger.exception("Reading %r failed.", item.file.relative)
            item.sidecar_note = "; ".join(filter(None, [item.sidecar_note, f"reading failed: {exc}"]))
            return None

    def _now(self) -> datetime:
        """When a recording is entered: this host's clock, never earlier than the custody chain (catalog.clock; a
        clock far behind would count routine retention from a wrong, early time and take correct device times
        for ones ahead of the station)."""
        now = utcnow()
        if not self._floor_read:
            self._floor, self._floor_read = chain_floor(self._session), True
            self.clock_lag = behind_by(now, self._floor)
            if self.clock_lag is not None:
                logger.warning("This host's clock reads %s, %s behind the custody chain's recent events (their "
                               "median time %s): recordings are entered at the chain's time instead.", now.isoformat(),
                               self.clock_lag, self._floor.isoformat() if self._floor else "")
                self._report.notes.append(f"the station's clock is {self.clock_lag} behind the custody chain: "
                                          "recordings entered at the chain's time")
        if self.clock_lag is not None and self._floor is not None and self._floor > now:
            return self._floor
        return now

    def _new_row(self, item: StagedCopy, facts: Facts | None, sidecar_note: str | None) -> Recording:
        ctx = self._context(item)
        return new_recording(item.file, item.copy, facts, ctx=ctx, now=self._now(),
                             case_registered=self._case_registered(ctx.case_number), sidecar_note=sidecar_note)

    def _context(self, item: StagedCopy) -> RowContext:
        """What *item*'s row is stamped with: this dock's options, or those of the dock that journaled it (a review
        found a copy journaled under one case catalogued under the case of whichever dock came next)."""
        if item.options is None:
            return self._row_context
        stamp = item.options
        return replace(self._row_context, officer_option=stamp.officer, case_number=stamp.case_number,
                       purpose=stamp.purpose, clock_offset_s=stamp.clock_offset_s,
                       identity_officer_number=stamp.identity_officer_number,
                       identity_officer_name=stamp.identity_officer_name)

    def _new_only(self, run: list[tuple[StagedCopy, Facts | None]]) -> list[tuple[StagedCopy, Facts | None]]:
        """The copies of *run* whose bytes are not catalogued yet (one query); the others are recorded as sightings
        (the same bytes on another device, or again on this one)."""
        known = find_by_sha256s(self._session, [item.copy.sha256 for item, _facts in run])
        new: list[tuple[StagedCopy, Facts | None]] = []
        for item, facts in run:
            existing = known.get(item.copy.sha256)
            if existing is None:
                new.append((item, facts))
            else:
                self._known_bytes(existing, item)
                _drop_staged_duplicate(existing, item.copy)
        return new

    def _insert_new(self, new: list[tuple[StagedCopy, Facts | None]]) -> list[Recording | None]:
        """Insert the new rows of *new* together; a batch the catalogue refuses is inserted again one by one."""
        if len(new) < 2:
            return [self._insert_one(item, facts) for item, facts in new]
        rows = [self._new_row(item, facts, item.sidecar_note) for item, facts in new]
        try:
            begin_write(self._session)
            with self._session.begin_nested():
                self._insert(rows, [item for item, _facts in new])
        except OperationalError:
            raise  # the catalogue itself is away: the caller journals and goes on copying
        except Exception as exc:  # noqa: BLE001 - each copy is catalogued again on its own, where its error shows
            logger.warning("Cataloguing %d copies together failed (%s: %s); cataloguing them one by one.",
                           len(new), type(exc).__name__, str(exc)[:300])
            return [self._insert_one(item, facts) for item, facts in new]
        return list(rows)

    def _insert_one(self, item: StagedCopy, facts: Facts | None) -> Recording | None:
        """Insert the new row of *item*; None when it turned out to be a sighting of bytes just catalogued."""
        file = item.file
        recording = self._new_row(item, facts, item.sidecar_note)
        try:
            # One file's rows succeed or fail together, without touching the rest of the batch.
            begin_write(self._session)
            with self._session.begin_nested():
                self._insert([recording], [item])
        except IntegrityError:
            # Another dock catalogued the same bytes a moment ago (the hash is unique): this is a sighting.
            if not self.sighted_if_known(item):
                raise
            return None
        except OperationalError:
            raise  # the catalogue itself is away: the caller journals and goes on copying
        except Exception as exc:
            logger.exception("Cataloguing %r as described failed; catalogued as found instead.", file.relative)
            recording = self._new_row(item, None, f"its description could not be stored: {type(exc).__name__}: "
                                                  f"{exc}"[:500])
            with self._session.begin_nested():
                self._insert([recording], [item])
        return recording

    def _registered(self, registered: list[tuple[Recording, StagedCopy]]) -> None:
        for recording, item in registered:
            self.dock.files_new += 1
            assert recording.id is not None
            if item.on_device:
                self._known.note(recording, item.file, item.copy.size_bytes)
            self._batch.new_ids.append(recording.id)
            if item.file.companion is not None:
                self.companions.append((recording.id, item.file.companion))
            if self._options.defer_archive:
                self._report.add_recording(recording, IngestOutcome.NEW, item.file.relative)
        self._batch.file_done(len(registered))
        if self._options.defer_archive:
            return
        # The uploads run beside the next copies; their results are recorded here, on this thread. The copying
        # waits only once the upload threads are busy and ARCHIVES_QUEUED more batches wait behind them.
        self._uploads.submit([(recording, item.file, item.copy) for recording, item in registered])
        self.drain_uploads(keep=ARCHIVES_IN_FLIGHT + ARCHIVES_QUEUED)

    def _insert(self, recordings: list[Recording], items: list[StagedCopy]) -> None:
        """The rows of new recordings: each with its sighting, `copied` event, integrity verdict, stamp (and
        `stamped` event) and, for a deferred archive, its outbox message; the events appended together."""
        session, actor = self._session, self._options.actor
        session.add_all(recordings)
        session.flush()
        for recording, item in zip(recordings, items, strict=True):
            self._add_sighting(recording, item, recording.important, is_new=True)
        append_events(session, [NewEvent(CustodyKind.COPIED, actor, recording_id=recording.id,
                                         dock_session_id=self.dock.id, details=self._copied(recording, item))
                                for recording, item in zip(recordings, items, strict=True)])
        with session.no_autoflush:  # each asks for its recording's revisions: none yet, nothing to flush first
            for recording in recordings:
                record_integrity(session, recording, check=INGEST_CHECK, status=recording.integrity_status,
                                 detail=recording.integrity_detail, by=actor,
                                 details={"structure": recording.technical.get("format")})
        record_stamps(session, recordings, by=actor, reason="ingest")
        if self._options.defer_archive:
            # The archive message is part of the same transaction: committed together, never lost to a broker outage.
            for recording in recordings:
                assert recording.id is not None
                outbox.add(session, recording.id, station=self._settings.station, now=utcnow(), reason="ingest")

    def _copied(self, recording: Recording, item: StagedCopy) -> dict[str, object]:
        """The details of a new recording's `copied` event."""
        file, copy = item.file, item.copy
        return {"device_serial": self._serial, "device_path": file.relative, "sha256": copy.sha256,
                "size_bytes": copy.size_bytes, "resumed_from": copy.resumed_from,
                "integrity": recording.integrity_status, "role": file.role,
                "time_implausible": recording.time_implausible,
                "time_problem": recording.technical.get("time_problem"),
                "retain_until": recording.retain_until.isoformat() if recording.retain_until else None,
                "legal_hold": recording.legal_hold, ROW_KEY: row_values(recording),
                # copied by an earlier dock during a catalogue outage; not on the device as copied any more
                **({"journaled": True} if item.options is not None else {}),
                **({"on_device": False} if not item.on_device else {}),
                **({"station_clock_behind_s": round(self.clock_lag.total_seconds(), 3)} if self.clock_lag else {})}

    def _known_bytes(self, recording: Recording, item: StagedCopy) -> None:
        dock, file = self.dock, item.file
        names = parse_filename(self._profile.filename, file.name)
        marked = bool(names and names.important) and file.role in ("recording", "unlisted")
        self._add_sighting(recording, item, marked)
        if item.on_device:
            self._known.note(recording, file, item.copy.size_bytes)
        if marked and not recording.important and recording.id is not None:
            # An _IMP marker seen anywhere is kept: as a stamp revision with its hold, once this dock is committed.
            self.marked_important.append((recording.id, file.relative))
        append_event(self._session, CustodyKind.SIGHTED, actor=self._options.actor, recording_id=recording.id,
                     dock_session_id=dock.id, details={"device_serial": self._serial, "device_path": file.relative})
        dock.files_known += 1
        self._report.add_recording(recording, IngestOutcome.KNOWN, file.relative)
        self._batch.file_done()

    def _add_sighting(self, recording: Recording, item: StagedCopy, important: bool, *,
                      is_new: bool = False) -> None:
        """Record where these bytes were found. The size is what was actually copied: a sighting never claims more
        than the archive holds, so a read that ended early is not "already ingested" at the next dock. A copy no
        longer on the device (a journaled one whose file left it or holds other bytes now) is recorded as cleared
        at once, so it never stands for what the path holds; an existing sighting is not changed by it."""
        assert recording.id is not None and self.dock.id is not None
        file, size_bytes = item.file, item.copy.size_bytes
        exists = None if is_new else sighting_at(self._session, recording.id, device_serial=self._serial,
                                                 device_path=file.relative)
        now = utcnow()
        if exists is None:
            self._session.add(Sighting(recording_id=recording.id, dock_session_id=self.dock.id,
                                       device_serial=self._serial, device_path=file.relative,
                                       size_bytes=size_bytes, mtime_ns=file.mtime_ns, important=important,
                                       seen_at=now, cleared_at=None if item.on_device else now))
        elif item.on_device:
            exists.mtime_ns, exists.size_bytes, exists.cleared_at = file.mtime_ns, size_bytes, None
            self._session.add(exists)

    def _case_registered(self, number: str | None) -> bool:
        if number is None:
            return False
        if number not in self._case_known:
            self._case_known[number] = case_number_exists(self._session, number)
        return self._case_known[number]

    def drain_uploads(self, *, keep: int) -> None:
        """Record finished batches of uploads in order; wait while more than *keep* batches are still running."""
        for uploads in self._uploads.finished(keep=keep):
            failures = record_uploads(self._session, self._store, uploads, key=self._start.key,
                                      actor=self._options.actor, commit=self._batch.commit)
            for upload, failure in zip(uploads, failures, strict=True):
                if failure is not None:
                    self.error(upload.file, *failure, preserved=True)
                self._session.add(upload.recording)
                self._report.add_recording(upload.recording, IngestOutcome.NEW, upload.file.relative)
            self._batch.file_done(0)  # counted when catalogued: only the batch's age may commit it now
