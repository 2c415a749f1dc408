"""The run's staging journal, and what a run does while the catalogue is unreachable.

Every staged copy is written ahead to the journal (`ingest.journal`) before it is catalogued; the entries become
durable with the catalogue commit that catalogues them, or at once when the catalogue is away (the copy is then
*journaled*: the next dock of the device, or the station, catalogues it from staging). Ingest thread only.
"""
from __future__ import annotations

import logging
import math
import os
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from catalog.db import is_conflict
from ingest import journal as staging_journal
from ingest.describe.identity import DeviceIdentity
from ingest.describe.metadata import Facts
from ingest.errors import first_line
from ingest.pipeline.options import MAX_CLOCK_OFFSET_S, IngestOptions
from ingest.scan import DeviceFile
from ingest.transfer import CopyResult

__all__ = ["JournaledStamp", "OutageJournal", "StagedCopy", "journaled_copy", "stamp_options"]

logger = logging.getLogger(__name__)


@dataclass
class StagedCopy:
    """A device file copied into staging, on its way to the catalogue."""

    file: DeviceFile
    copy: CopyResult
    future: Future[Facts] | None  # describing the staged copy (probe, EXIF), beside the next copy
    sidecar_note: str | None
    key: str = ""  # the device-file key (ingest.pipeline.device.part_key): its journal entry
    sidecar: bytes | None = None
    staged_at: float = 0.0  # time.monotonic() when it was handed to cataloguing (batches wait at most so long)
    # A copy an earlier dock journaled: what it was copied under (and is stamped with); None for this run's own
    # copies (the run's options).
    options: JournaledStamp | None = None
    # False: this dock found its file gone from the device or holding other bytes (its sighting is recorded as
    # cleared, and the station's record of the device does not take it for a file there).
    on_device: bool = True


class OutageJournal:
    """Journal entries of one run's staged copies, and whether the catalogue answers."""

    def __init__(self, staging_dir: Path, serial: str, *, root: Path, profile: str, identity: DeviceIdentity,
                 options: IngestOptions) -> None:
        self._staging, self._serial, self._root = staging_dir, serial, root
        self._profile, self._identity, self._options = profile, identity, options
        # What earlier runs journaled (read when the run starts), by `ingest.journal.entry_key`:
        self.entries: dict[str, staging_journal.JournalEntry] = {}
        self._by_part: dict[str, list[staging_journal.JournalEntry]] = {}  # the same entries by device-file key
        # ... and by (device path, size, time): entries written under an older key scheme (before 2026-12-03 the
        # key held the mount point) still stand for their file
        self._by_place: dict[tuple[str, int, int], list[staging_journal.JournalEntry]] = {}
        self.taken: set[str] = set()  # entry keys this run catalogued, or found catalogued before
        self.is_offline = False
        self.reason = ""  # why the catalogue is unreachable (its first line)
        self.journaled = 0  # staged copies made durable in the journal for later cataloguing
        self._written: set[str] = set()  # entry keys written ahead by this run
        self._unsynced = False  # written ahead since the last sync
        self._file = staging_journal.JournalFile(staging_dir, serial)  # opened at the first entry, closed by close()

    def load(self) -> None:
        self.entries = staging_journal.load(self._staging, self._serial)
        self._by_part, self._by_place = {}, {}
        for entry in self.entries.values():
            self._by_part.setdefault(entry.part_key, []).append(entry)
            place = (entry.relative, entry.device_size_bytes or entry.size_bytes, entry.mtime_ns)
            self._by_place.setdefault(place, []).append(entry)

    def for_file(self, part_key: str, file: DeviceFile) -> list[staging_journal.JournalEntry]:
        """The entries journaled under device-file key *part_key* (or, written under an older key, for *file*'s
        path, size and time) that this run has not taken yet."""
        found = list(self._by_part.get(part_key, ()))
        found += [e for e in self._by_place.get((file.relative, file.size_bytes, file.mtime_ns), ())
                  if e.part_key != part_key]
        return [entry for entry in found if entry.key not in self.taken]

    def take(self, entry: staging_journal.JournalEntry) -> None:
        self.taken.add(entry.key)

    def leftovers(self) -> list[staging_journal.JournalEntry]:
        """The entries no file of the device stood for in this run: their files left the device (or hold other
        bytes now) since they were journaled. Each is still a staged copy to catalogue."""
        return [entry for key, entry in self.entries.items() if key not in self.taken]

    def sync_before_commit(self) -> None:
        """What the coming commit catalogues is durable in the journal first."""
        if self._unsynced:
            self._file.sync()
            self._unsynced = False

    def close(self) -> None:
        """The run is over (before its journal may be forgotten): what it wrote ahead is made durable, also when it
        stops on an error before its commit, then the file is closed."""
        try:
            self.sync_before_commit()
        except OSError:
            logger.warning("The staging journal of device %r could not be synced at the end of the run.",
                           self._serial, exc_info=True)
        finally:
            self._file.close()

    def write_ahead(self, item: StagedCopy) -> None:
        """Append *item*'s entry (not yet synced) unless this run or an earlier one journaled it."""
        key = staging_journal.entry_key(item.key, item.copy.sha256)
        if key in self._written or key in self.entries:
            return
        self._written.add(key)
        self._unsynced = True
        self._file.append(self._entry(item))

    def journal(self, item: StagedCopy) -> None:
        """The catalogue cannot take *item* now: make its journal entry durable and count it."""
        self.write_ahead(item)
        self._file.sync()
        self.journaled += 1

    def go_offline(self, exc: Exception) -> bool:
        """Note the catalogue is unreachable; True the first time (the caller then drops its open batch)."""
        if self.is_offline:
            return False
        if is_conflict(exc):
            logger.error("Catalogue conflict while ingesting %r (%s: the database rolled back this dock's open "
                         "batch, a bug to report): copying on, journaled copies are catalogued next.",
                         str(self._root), first_line(exc, 200))
        else:
            logger.error("Catalogue unavailable while ingesting %r (%s): copying on, cataloguing later.",
                         str(self._root), exc)
        self.is_offline = True
        self.reason = first_line(exc)
        return True

    def _entry(self, item: StagedCopy) -> staging_journal.JournalEntry:
        opts, file = self._options, item.file
        return staging_journal.JournalEntry(
            part_key=item.key, sha256=item.copy.sha256, size_bytes=item.copy.size_bytes,
            relative=file.relative, sidecar_hex=item.sidecar.hex() if item.sidecar is not None else None,
            device_serial=self._serial, name=file.name, path_hex=os.fsencode(file.path).hex(),
            mtime_ns=file.mtime_ns, device_size_bytes=file.size_bytes, warnings=list(file.warnings),
            root=str(self._root), profile=self._profile, identity=dict(vars(self._identity)),
            options={"officer": opts.officer, "case_number": opts.case_number, "purpose": opts.purpose,
                     "clock_offset_s": opts.clock_offset_s, "actor": opts.actor},
            role=file.role, companion=file.companion)


@dataclass(frozen=True)
class JournaledStamp:
    """What the dock that journaled a copy stamped with: its options, and the officer its device named then."""

    officer: str | None = None
    case_number: str | None = None
    purpose: str | None = None
    clock_offset_s: float | None = None
    identity_officer_number: str | None = None
    identity_officer_name: str | None = None


def stamp_options(entry: staging_journal.JournalEntry) -> JournaledStamp:
    """What the dock that journaled *entry* stamped with (StagedCopy.options), taken from the entry as far as it is
    sound: texts or nothing, a clock offset only when finite and within MAX_CLOCK_OFFSET_S, and the officer its
    device named then (a device handed to another officer since keeps the first one's name on what they
    recorded). A journal entry is a file in staging: a corrupt or edited one must not stop the dock."""
    opts = entry.options if isinstance(entry.options, dict) else {}
    ident = entry.identity if isinstance(entry.identity, dict) else {}

    def text(value: object) -> str | None:
        return value if isinstance(value, str) and value.strip() else None

    raw = opts.get("clock_offset_s")
    offset = (float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
              and abs(raw) <= MAX_CLOCK_OFFSET_S else None)
    return JournaledStamp(officer=text(opts.get("officer")), case_number=text(opts.get("case_number")),
                          purpose=text(opts.get("purpose")), clock_offset_s=offset,
                          identity_officer_number=text(ident.get("officer_number")),
                          identity_officer_name=text(ident.get("officer_name")))


def journaled_copy(entry: staging_journal.JournalEntry, root: Path, staging: Path, *,
                   on_device: bool) -> StagedCopy:
    """The staged copy *entry* journaled, as it was when it was copied, with the options it was copied under (the
    device itself may be gone; not *on_device*: its file has left the device or holds other bytes now)."""
    path = Path(os.fsdecode(bytes.fromhex(entry.path_hex))) if entry.path_hex else root / entry.relative
    file = DeviceFile(path=path, relative=entry.relative, name=entry.name or Path(entry.relative).name,
                      size_bytes=entry.device_size_bytes or entry.size_bytes, mtime_ns=entry.mtime_ns,
                      warnings=tuple(entry.warnings), role=entry.role, companion=entry.companion)
    copy = CopyResult(source=path, destination=staging / entry.sha256, size_bytes=entry.size_bytes,
                      sha256=entry.sha256, resumed_from=0)
    sidecar = bytes.fromhex(entry.sidecar_hex) if entry.sidecar_hex else None
    return StagedCopy(file, copy, None, None, key=entry.part_key, sidecar=sidecar, options=stamp_options(entry),
                      on_device=on_device)
