"""校时: the station writes its time to a docked recorder whose profile says how (`clock.set`: a file the device
reads when it starts), at the end of a dock that read every file, to the very device it docked. Each write is a
`device_clock_set` custody event, committed at once; a write that fails, or whose event cannot be committed, leaves
no file behind. A profile without `clock.set` cannot be set: its devices are never written to.

The write is atomic (a temporary file beside it, synced, then renamed over it): a full card or a pull mid-write
leaves the device's earlier state, never an empty time file. It never leaves the device (no folder on the way may
be a link) and never replaces anything the station did not write.

The station remembers the SHA-256 of each time file it wrote (`WrittenTimes`, a line per write in its home), so the
next dock of a device that has not read its file yet leaves exactly that file on it (`is_station_time_file`), listed,
instead of taking it for evidence. Anything else under that name, a device's own file that merely looks like a time
line included, is kept as any file is.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

from device_profiles import ClockSetRule

__all__ = ["STATION_TIME_FILE_MAX", "ClockSet", "WrittenTimes", "clock_set_text", "is_station_time_file",
           "remove_station_time", "write_station_time"]

#: The most bytes a station time file can hold (one line); a larger file of that name is the device's, kept.
STATION_TIME_FILE_MAX = 128
#: How many writes the station remembers (a device docked again after this many other writes keeps its file).
_REMEMBERED = 20_000


@dataclass(frozen=True)
class ClockSet:
    """One write of the station's time to a device."""

    file: str  # the rule's path on the device
    written: str  # the line written, without its line end
    zone: str  # the zone of the time written
    station_time: datetime  # the station's clock (UTC) at the write
    sha256: str  # of the bytes written


class WrittenTimes:
    """The time files this station wrote, by the SHA-256 of their bytes (a text file of hex lines in its home)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> frozenset[str]:
        try:
            return frozenset(self.path.read_text(encoding="ascii").split())
        except (OSError, UnicodeDecodeError):
            return frozenset()

    def add(self, sha256: str) -> None:
        kept = [*[line for line in self._lines() if line != sha256][-(_REMEMBERED - 1):], sha256]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = self.path.with_name(self.path.name + ".new")
        fresh.write_text("\n".join(kept) + "\n", encoding="ascii")
        os.replace(fresh, self.path)

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="ascii").split()
        except (OSError, UnicodeDecodeError):
            return []


def clock_set_text(rule: ClockSetRule, now: datetime, zone: str) -> str:
    """The line the device reads: the station's clock *now* on the wall clock of *zone*, in the rule's format. Pure."""
    return now.astimezone(ZoneInfo(zone)).strftime(rule.format)


def is_station_time_file(data: bytes, written: frozenset[str]) -> bool:
    """Whether *data* is a time file this station wrote (its SHA-256 among *written*). Pure."""
    return len(data) <= STATION_TIME_FILE_MAX and hashlib.sha256(data).hexdigest() in written


def write_station_time(root: Path, rule: ClockSetRule, *, zone: str, written: frozenset[str],
                       now: datetime | None = None) -> ClockSet:
    """Write the station's time to the device mounted at *root*, durable and whole, or not at all.

    Raises OSError (the device is gone, read-only or full; a folder on the way is missing or a link) and
    FileExistsError when something the station did not write (*written*) is in the way: it is never replaced.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    line = clock_set_text(rule, now, zone)
    data = (line + rule.line_end).encode(rule.encoding)
    parts = PurePosixPath(rule.file).parts
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:  # each folder on the way opened without following a link: never outside the device
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        name = parts[-1]
        _check_in_the_way(folder, name, rule.file, written)
        temporary = f".{name}.station-{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
        try:
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(f"short write of {rule.file!r}")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise
        with contextlib.suppress(OSError):  # the rename made durable where the file system allows
            os.fsync(folder)
    finally:
        os.close(folder)
    return ClockSet(file=rule.file, written=line, zone=zone, station_time=now, sha256=hashlib.sha256(data).hexdigest())


def remove_station_time(root: Path, done: ClockSet) -> None:
    """Take back a write whose custody event could not be committed (only while the file is still that write)."""
    path = root / done.file
    with contextlib.suppress(OSError):
        if not path.is_symlink() and hashlib.sha256(path.read_bytes()).hexdigest() == done.sha256:
            path.unlink()


def _check_in_the_way(folder: int, name: str, shown: str, written: frozenset[str]) -> None:
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return
    ours = False
    if stat.S_ISREG(info.st_mode) and info.st_size <= STATION_TIME_FILE_MAX:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        try:
            ours = is_station_time_file(os.read(fd, STATION_TIME_FILE_MAX + 1), written)
        finally:
            os.close(fd)
    if not ours:
        raise FileExistsError(f"{shown!r} on the device is not a time file the station wrote; it is left as it is")
