"""The station's own record of the files of one device it has catalogued (`ingest.known_files`), as a run uses it.

A file the record names (device path, size and mtime, where the mtime may stand for the bytes) is not read
again, even while the catalogue is away. Entries are noted as the open transaction catalogues them and written
only once it is committed; a batch rolled back is never remembered. Ingest thread only.
"""
from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from catalog import Recording
from catalog.types import utcnow
from ingest import known_files
from ingest.describe.metadata import TimeBounds
from ingest.pipeline.device import ANONYMOUS_SERIAL, mtime_is_trustworthy
from ingest.scan import DeviceFile

__all__ = ["KnownFiles"]

logger = logging.getLogger(__name__)


class KnownFiles:
    """One device's record: what it held before this run, what this run notes, every file key the dock found."""

    def __init__(self, home: Path, serial: str, *, time_floor: datetime) -> None:
        self._home, self._serial, self._time_floor = home, serial, time_floor
        self.entries: dict[str, known_files.KnownFile] = {}  # catalogued before (no catalogue needed)
        self._uncommitted: list[known_files.KnownFile] = []  # in the open transaction; remembered once committed
        self.device_keys: set[str] | None = None  # keys of every file this dock found (a device run only)

    @property
    def is_kept(self) -> bool:
        """A device without an identity of its own keeps no record (another card may take its slot)."""
        return not self._serial.startswith(ANONYMOUS_SERIAL)

    def load(self) -> None:
        if not self.is_kept:
            return
        try:
            self.entries = known_files.load(self._home, self._serial)
        except OSError as exc:
            logger.warning("The record of known files of %r is unreadable (%s): they are looked up in the "
                           "catalogue only.", self._serial, exc)

    def is_trustworthy(self, file: DeviceFile) -> bool:
        """Whether *file*'s (path, size, mtime) may stand for its bytes on this device."""
        return self.is_kept and mtime_is_trustworthy(file, TimeBounds(floor=self._time_floor, now=utcnow()))

    def note(self, recording: Recording, file: DeviceFile, size_bytes: int) -> None:
        """Note a file this transaction catalogues, for the station's own record (written once committed): only
        where (path, size, mtime) may stand for its bytes, as the catalogue's sightings are trusted."""
        if (recording.id is None or size_bytes != file.size_bytes or not self.is_kept
                or not mtime_is_trustworthy(file, TimeBounds(floor=self._time_floor, now=utcnow()))):
            return
        entry = known_files.KnownFile.of(self._serial, device_path=file.relative, size_bytes=file.size_bytes,
                                         mtime_ns=file.mtime_ns, sha256=recording.sha256, recording_id=recording.id)
        if self.entries.get(entry.key) != entry:
            self._uncommitted.append(entry)

    def committed(self) -> None:
        """The transaction holding the noted files is committed: remember them."""
        if not self._uncommitted:
            return
        batch, self._uncommitted = self._uncommitted, []
        try:
            known_files.remember(self._home, self._serial, batch)
        except OSError as exc:  # a cache: the next outage reads these files again
            logger.warning("Could not record %d catalogued file(s) in staging: %s", len(batch), exc)
        self.entries.update((entry.key, entry) for entry in batch)

    def rolled_back(self) -> None:
        self._uncommitted.clear()  # never committed: never remembered

    def compact(self) -> None:
        """After a complete dock: the record holds no more than the device does."""
        if self.device_keys is None or not self.is_kept:
            return
        try:
            known_files.rewrite(self._home, self._serial, self.device_keys)
        except OSError as exc:
            logger.warning("Could not compact the record of known files of %r: %s", self._serial, exc)
