"""Staging journal: every copy a dock staged, written before it is catalogued.

One JSON line per staged file, keyed by the device-file key, written as soon as the copy is staged (fsynced
with each catalogue commit, and at once while the catalogue is unreachable). Whatever happens after staging (the
device pulled, the station killed, the catalogue away), the journal says what to catalogue: the next ingest of
that device finds its files here and catalogues the staged copies without reading the device again, and the
station catalogues the journals of devices that have gone. The journal is removed once a dock of that device
completes.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from storage import fsync_path

__all__ = ["JournalEntry", "JournalFile", "entry_key", "forget", "held", "hold", "journaled_serials", "let_go", "load",
           "record"]


@dataclass(frozen=True)
class JournalEntry:
    part_key: str
    sha256: str
    size_bytes: int
    relative: str
    sidecar_hex: str | None = None
    # Enough to catalogue the staged copy even after the device has gone:
    device_serial: str = ""
    name: str = ""
    path_hex: str = ""
    mtime_ns: int = 0
    device_size_bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    root: str = ""
    profile: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    role: str = "recording"  # what the file is to its profile (ingest.scan.ROLES)
    companion: str | None = None  # housekeeping: the device path of the recording it belongs to

    @property
    def key(self) -> str:
        """This entry's `entry_key`."""
        return entry_key(self.part_key, self.sha256)


_FIELDS = tuple(f.name for f in fields(JournalEntry))


def entry_key(part_key: str, sha256: str) -> str:
    """What tells journal entries apart: the device-file key and the staged bytes. A recorder whose clock was reset
    writes another recording under the path, size and time of one journaled before; both entries are kept."""
    return f"{part_key}/{sha256}"


def _path(staging: Path, device_serial: str) -> Path:
    # Serials come from devices: hash them rather than use them as file names.
    return staging / "journal" / f"{hashlib.sha256(device_serial.encode()).hexdigest()[:24]}.jsonl"


def _lock_path(locks: Path, device_serial: str) -> Path:
    return locks / f"{hashlib.sha256(device_serial.encode()).hexdigest()[:24]}.lock"


def hold(locks: Path, device_serial: str) -> int | None:
    """Mark *device_serial* as being ingested by this process for as long as the returned descriptor is open (an
    advisory lock other processes see: a station never replays, or closes the dock session of, a device that a
    one-shot `evidence ingest` is still reading). None when another run holds it already (it is not waited for).
    The lock files live in *locks* ($EVIDENCE_HOME/locks), one small file per device, kept."""
    path = _lock_path(locks, device_serial)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def let_go(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # releases the lock


def held(locks: Path, device_serial: str) -> bool:
    """Whether some run (this process or another) is ingesting *device_serial* now."""
    fd = hold(locks, device_serial)
    if fd is None:
        return True
    let_go(fd)
    return False


def record(staging: Path, device_serial: str, entry: JournalEntry, *, durable: bool = True) -> None:
    """Append *entry*; with *durable* it is on disk before this returns (else at the next `sync`)."""
    journal = JournalFile(staging, device_serial)
    try:
        journal.append(entry)
        if durable:
            journal.sync()
    finally:
        journal.close()


def _line(entry: JournalEntry) -> bytes:
    # The entry's fields as they are (a shallow dict: json copies nothing; asdict deep-copied every list and dict).
    return (json.dumps({name: getattr(entry, name) for name in _FIELDS}) + "\n").encode()


class JournalFile:
    """One device's journal, held open by the run that docks it: each entry is one `write` to the open file, not an
    open, mkdir, write and close per staged copy (1.4 ms of every photo on the development VM). Written entries are
    in the page cache at once, as `record(..., durable=False)` leaves them; `sync` makes them durable. The run holds
    the device's lock (`hold`) meanwhile, so no other run forgets or replays this journal under it.

    A journal whose last line was cut short (a power cut during a write, a disk that filled) gets a line break
    before the next entry, so that entry stands on a line of its own and `load` reads it."""

    def __init__(self, staging: Path, device_serial: str) -> None:
        self._path = _path(staging, device_serial)
        self._fd: int | None = None
        self._torn = False  # the file does not end with a line break

    def append(self, entry: JournalEntry) -> None:
        if self._fd is None:
            self._open()
        assert self._fd is not None
        line = (b"\n" if self._torn else b"") + _line(entry)
        written = os.write(self._fd, line)
        self._torn = False
        if written != len(line):  # a regular file takes the whole line or raises (ENOSPC)
            self._torn = True
            raise OSError(f"journal {self._path}: short write of an entry of {len(line)} bytes")

    def sync(self) -> None:
        """Every entry in the journal is durable: this run's and those earlier runs left in the page cache only
        (the run may journal those without appending anything itself)."""
        if self._fd is not None:
            os.fsync(self._fd)
        else:
            _sync_path(self._path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        size = os.fstat(self._fd).st_size
        self._torn = size > 0 and os.pread(self._fd, 1, size - 1) != b"\n"


def _sync_path(path: Path) -> None:
    """fsync the journal at *path*, when there is one."""
    with contextlib.suppress(FileNotFoundError):
        fsync_path(path)


def load(staging: Path, device_serial: str) -> dict[str, JournalEntry]:
    """Entries whose staged copy is still there, by `entry_key` (a torn last line is ignored)."""
    path = _path(staging, device_serial)
    entries: dict[str, JournalEntry] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return entries
    for line in lines:
        try:
            entry = JournalEntry(**json.loads(line))
        except (ValueError, TypeError):
            continue
        if (staging / entry.sha256).exists():
            entries[entry.key] = entry
    return entries


def forget(staging: Path, device_serial: str) -> None:
    path = _path(staging, device_serial)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only when no other device's journal waits there


def journaled_serials(staging: Path) -> list[str]:
    """Device serials that have a journal waiting to be catalogued."""
    serials = []
    for path in sorted((staging / "journal").glob("*.jsonl")):
        try:
            first = path.read_text(encoding="utf-8").splitlines()[0]
            serial = json.loads(first).get("device_serial")
        except (OSError, IndexError, ValueError, AttributeError):
            continue
        if serial:
            serials.append(str(serial))
    return serials
