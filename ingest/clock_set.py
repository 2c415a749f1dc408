"""校时: the station writes its time to a docked recorder whose profile says how (`clock.set`: a file the device
reads when it starts), at the end of the dock, after every file was read. Each write is a `device_clock_set`
custody event with what was written and how far the clock was off before; a write that fails is said in the dock's
report, and nothing is recorded as set. A profile without `clock.set` cannot: its devices are never written to.

Also here: the station's own time file is known again at the next dock (`is_station_time_file`), so a device that
has not read it yet does not hand it back as a file to keep; anything else under that name is kept.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from device_profiles import ClockSetRule

__all__ = ["STATION_TIME_FILE_MAX", "ClockSet", "clock_set_text", "is_station_time_file", "write_station_time"]

#: The most bytes a station time file can hold (one line); a larger file of that name is the device's, kept.
STATION_TIME_FILE_MAX = 128


@dataclass(frozen=True)
class ClockSet:
    """One write of the station's time to a device."""

    file: str  # the rule's path on the device
    written: str  # the line written, without its line end
    zone: str  # the zone of the time written
    station_time: datetime  # the station's clock (UTC) at the write


def clock_set_text(rule: ClockSetRule, now: datetime, zone: str) -> str:
    """The line the device reads: the station's clock *now* on the wall clock of *zone*, in the rule's format. Pure."""
    return now.astimezone(ZoneInfo(zone)).strftime(rule.format)


def is_station_time_file(data: bytes, rule: ClockSetRule) -> bool:
    """Whether *data* is what a station writes under the rule's name: one time in its format, nothing else. Pure."""
    if len(data) > STATION_TIME_FILE_MAX:
        return False
    try:
        text = data.decode(rule.encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    line = text.removesuffix(rule.line_end) if rule.line_end else text
    if not line or "\n" in line or "\r" in line:
        return False
    try:
        datetime.strptime(line, rule.format)
    except ValueError:
        return False
    return True


def write_station_time(root: Path, rule: ClockSetRule, *, zone: str, now: datetime | None = None) -> ClockSet:
    """Write the station's time to the device mounted at *root*, made durable before it returns.

    Raises OSError (the device is gone, read-only or full) and FileExistsError when something the station did not
    write is in the way (a folder, a link, a file of the device's own under that name): it is never overwritten.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    line = clock_set_text(rule, now, zone)
    path = root / rule.file
    if path.is_symlink() or (path.exists() and not (path.is_file() and _ours(path, rule))):
        raise FileExistsError(f"{rule.file!r} on the device is not a time file the station wrote; it is left as it is")
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, (line + rule.line_end).encode(rule.encoding))
        os.fsync(fd)
    finally:
        os.close(fd)
    return ClockSet(file=rule.file, written=line, zone=zone, station_time=now)


def _ours(path: Path, rule: ClockSetRule) -> bool:
    try:
        with path.open("rb") as fh:
            return is_station_time_file(fh.read(STATION_TIME_FILE_MAX + 1), rule)
    except OSError:
        return False
