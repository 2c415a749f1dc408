"""What a run works out about the docked device from its files alone: its serial, its clock, a file's resume key,
whether a file's time may stand for its bytes, and a recording's sidecar. No catalogue here."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from catalog.types import utcnow
from device_profiles import DeviceProfile
from ingest.describe.identity import DeviceIdentity
from ingest.describe.metadata import TimeBounds, implausible_reason, measure_clock_offset, parse_filename
from ingest.describe.probe import MAX_SIDECAR_BYTES
from ingest.scan import DeviceFile, sidecar_path

__all__ = ["ANONYMOUS_SERIAL", "ClockReading", "device_serial", "dock_file_offset", "measure_device_clock",
           "mtime_is_trustworthy", "part_key", "read_sidecar"]

#: How the serial of a device without any identity begins (it is named by where it was mounted, so another card in
#: the same slot gets the same name: its files are always read and told apart by their hash).
ANONYMOUS_SERIAL = "unknown-"


def part_key(serial: str, file: DeviceFile, root: Path) -> str:
    """The name of *file*'s resumable partial copy in staging (and of its journal entry): the device, the file's
    path on it (its raw bytes, relative to the device's *root*), size and time. Not where the device is mounted: a
    device mounted elsewhere at its next dock (another USB port, a remount after a drop) resumes its partial copies
    and finds its journaled ones (a review found every journal entry taken for a file gone from the device, and
    sighted twice, once the mount point had changed). A device with no identity is named by its mount point
    already (ANONYMOUS_SERIAL)."""
    on_device = os.path.relpath(os.fsencode(file.path), os.fsencode(root))
    raw = b"\0".join([serial.encode(), on_device, str(file.size_bytes).encode(), str(file.mtime_ns).encode()])
    return hashlib.sha256(raw).hexdigest()[:40]


def mtime_is_trustworthy(file: DeviceFile, bounds: TimeBounds) -> bool:
    """Whether (path, size, mtime) may stand for the file's bytes: only when the file time is a plausible capture
    time. A recorder whose clock restarts at 2000-01-01 every power-up writes new recordings with the very path,
    size and time of old ones: those are always read and told apart by their hash."""
    try:
        when = datetime.fromtimestamp(file.mtime_ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return False
    return implausible_reason(when, bounds) is None


def read_sidecar(profile: DeviceProfile, file: DeviceFile) -> tuple[bytes | None, str | None]:
    """The sidecar of recording *file* (bytes, None), or (None, why it could not be read); (None, None): none."""
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


def device_serial(identity: DeviceIdentity, files: list[DeviceFile], profile: DeviceProfile, root: Path) -> str:
    """The device's serial: from its identity file, else its file names, else where it is mounted."""
    if identity.serial:
        return identity.serial
    for file in files[:20]:
        names = parse_filename(profile.filename, file.name)
        if names is not None and names.serial:
            return names.serial
    # No identity anywhere: name the device by where it was found, stably.
    return ANONYMOUS_SERIAL + hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:10]


@dataclass(frozen=True)
class ClockReading:
    """How far the device's clock was off at the dock (station clock minus device clock, seconds), and how it was
    measured: `clock_file`, `dock_file` (or, after the dock, `sidecar_gps`: `ingest.pipeline.clock_set`)."""

    offset_s: float
    measured_by: str


def measure_device_clock(root: Path, profile: DeviceProfile, station_tz: str,
                         now: datetime | None = None) -> ClockReading | None:
    """The device's clock against the station's at the dock, where its profile says how: the clock file it shows
    its time in, else the time of the file it writes when docked (which a station reads within seconds). None when
    neither is there or readable."""
    now = now or utcnow()
    zone = profile.clock.zone or station_tz
    if profile.clock.file is not None and (text := _small_text(root / profile.clock.file)) is not None:
        offset = measure_clock_offset(text, fmt=profile.clock.file_format, zone=zone, station_now=now)
        if offset is not None:
            return ClockReading(offset, "clock_file")
    if profile.clock.dock_file is not None:
        offset = dock_file_offset(root / profile.clock.dock_file, zone=zone,
                                  local=profile.clock.dock_file_time_is_local, now=now)
        if offset is not None:
            return ClockReading(offset, "dock_file")
    return None


def dock_file_offset(path: Path, *, zone: str, local: bool, now: datetime) -> float | None:
    """Station clock minus the device clock, from the modification time of a file the device wrote when it was
    docked. *local*: the file system holds the device's wall clock (FAT), which the station shows as if UTC."""
    try:
        if path.is_symlink() or not path.is_file():
            return None
        written = datetime.fromtimestamp(path.stat().st_mtime_ns / 1e9, tz=UTC)
        if local:
            written = written.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
        return float(round((now - written).total_seconds()))
    except (OSError, OverflowError, ValueError):
        return None


def _small_text(path: Path) -> str | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        with path.open("rb") as fh:
            return fh.read(1024).decode("utf-8", errors="replace")
    except OSError:
        return None
