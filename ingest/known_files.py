"""Known device files: the station's own record of the device files it has catalogued, by device.

During a catalogue outage the question "was this file already ingested?" cannot be asked of the database (its
sightings), and without an answer every file on the device was read again (600 MB in the fault drill). This
record answers it locally: one small JSON-lines file per device under the station's home
(`$EVIDENCE_HOME/known/<sha256(serial)[:24]>.jsonl`, named like the staging journal, so a serial is never a file name),
one line per catalogued file, appended after each catalogue commit and compacted at every completed dock to the
files the device still holds.

It is a cache, never evidence. An entry only says "the station catalogued the file at this device path with this
size and mtime as recording N (these bytes)": the pipeline consults it only where it already lets (path, size,
mtime) stand for a file's bytes (a device with a real serial, a plausible file time), exactly as it trusts a
sighting in the catalogue. Each entry carries the fields its key is made of and is checked against them on load,
so a damaged line, a line moved into another device's file or a hash-prefix collision of two serials can never
match a file. A lost or torn file only means files are read again; a torn last line (a crash mid-append) is
ignored and the next append starts a fresh line.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from storage import fsync_dir

__all__ = ["KnownFile", "forget_paths", "key", "load", "path_for", "remember", "rewrite"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Appends and rewrites of this process, one at a time (a rewrite never loses an append made beside it).
_LOCK = threading.Lock()


def _bytes(text: str) -> bytes:
    # Device paths may carry undecodable bytes (kept as surrogate escapes): they are keyed as the bytes they are.
    return text.encode("utf-8", "surrogateescape")


def key(serial: str, device_path: str, size_bytes: int, mtime_ns: int) -> str:
    """The key of a device file: what a catalogue sighting matches on (device, path on it, size, mtime)."""
    raw = b"\0".join([_bytes(serial), _bytes(device_path), str(size_bytes).encode(), str(mtime_ns).encode()])
    return hashlib.sha256(raw).hexdigest()[:40]


@dataclass(frozen=True)
class KnownFile:
    """A device file the catalogue holds: catalogued as *recording_id*, whose bytes hash to *sha256*."""

    key: str
    device_path: str
    size_bytes: int
    mtime_ns: int
    sha256: str
    recording_id: int

    @classmethod
    def of(cls, serial: str, *, device_path: str, size_bytes: int, mtime_ns: int, sha256: str,
           recording_id: int) -> KnownFile:
        return cls(key(serial, device_path, size_bytes, mtime_ns), device_path, size_bytes, mtime_ns, sha256,
                   recording_id)


def path_for(home: Path, serial: str) -> Path:
    """Where the record of device *serial* lives (its name is a hash of the serial, never the serial)."""
    return home / "known" / f"{hashlib.sha256(_bytes(serial)).hexdigest()[:24]}.jsonl"


def _parse(serial: str, line: str) -> KnownFile | None:
    """The entry on *line*, or None when it is torn, damaged or not this device's."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    try:
        entry = KnownFile(**raw)
    except TypeError:
        return None
    ints = (entry.size_bytes, entry.mtime_ns, entry.recording_id)
    if (not all(type(v) is int for v in ints) or entry.size_bytes < 0 or entry.recording_id <= 0
            or not isinstance(entry.device_path, str) or not isinstance(entry.sha256, str)
            or not _SHA256.fullmatch(entry.sha256)):
        return None
    if entry.key != key(serial, entry.device_path, entry.size_bytes, entry.mtime_ns):
        return None  # not made from these fields for this device: it matches nothing
    return entry


def _read(path: Path, serial: str) -> dict[str, KnownFile]:
    entries: dict[str, KnownFile] = {}
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return entries
    for line in text.splitlines():
        entry = _parse(serial, line)
        if entry is not None:
            entries[entry.key] = entry  # a later line wins
    return entries


def load(home: Path, serial: str) -> dict[str, KnownFile]:
    """The device's known files by key; empty when it has no record. Damaged and torn lines are skipped."""
    with _LOCK:
        return _read(path_for(home, serial), serial)


def remember(home: Path, serial: str, entries: Iterable[KnownFile]) -> None:
    """Append *entries* (files just committed to the catalogue); durable when this returns.

    Raises OSError when the home cannot be written (the files are then only read again at the next outage).
    """
    lines = "".join(json.dumps(asdict(entry)) + "\n" for entry in entries)
    if not lines:
        return
    path = path_for(home, serial)
    with _LOCK:
        created = not path.parent.is_dir()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                lines = "\n" + lines  # after a torn last line: never glue a good entry onto it
            data = lines.encode("ascii")  # json.dumps escapes everything else
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(path.parent)


def _rewrite(home: Path, serial: str, keep: Callable[[KnownFile], bool]) -> tuple[int, int]:
    """Keep the entries *keep* accepts, atomically; (kept, dropped)."""
    path = path_for(home, serial)
    with _LOCK:
        entries = _read(path, serial)
        kept = [e for e in entries.values() if keep(e)]
        if not kept:
            if path.exists():
                path.unlink()
                fsync_dir(path.parent)
                with contextlib.suppress(OSError):
                    path.parent.rmdir()  # only when no other device's record is there
            return 0, len(entries)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                data = "".join(json.dumps(asdict(e)) + "\n" for e in kept).encode("ascii")
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
        return len(kept), len(entries) - len(kept)


def rewrite(home: Path, serial: str, keep: set[str]) -> int:
    """Compact the record to the keys in *keep* (the files the device holds now, at a completed dock); return how
    many entries remain. The record is replaced atomically: a crash leaves the old one or the new one."""
    return _rewrite(home, serial, lambda entry: entry.key in keep)[0]


def forget_paths(home: Path, serial: str, device_paths: Iterable[str]) -> int:
    """Drop the entries of these device paths (files the station has just cleared from the device: whatever those
    paths hold next is a new file); return how many were dropped."""
    gone = set(device_paths)
    if not gone:
        return 0
    return _rewrite(home, serial, lambda entry: entry.device_path not in gone)[1]
