"""Walk a docked device and list the recordings its profile describes.

Read-only: nothing on the device is opened for writing, symbolic links are
never followed, and anything that is not a regular file is reported, not
read.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from device_profiles import DeviceProfile
from ingest.errors import DeviceGone
from ingest.names import display_name, matches_any, name_warnings

__all__ = ["DEFAULT_IGNORES", "DeviceFile", "ScanResult", "Skipped", "scan_device", "sidecar_path"]

#: Operating-system litter that is never a recording.
DEFAULT_IGNORES = (
    "System Volume Information/**", "$RECYCLE.BIN/**", ".Trashes/**", ".Spotlight-V100/**", ".fseventsd/**",
    "**/.DS_Store", "**/._*", "**/Thumbs.db", "**/desktop.ini",
)
#: Deepest folder level walked (guards against pathological trees).
MAX_DEPTH = 16


@dataclass(frozen=True)
class DeviceFile:
    path: Path  # where it is on the device (may hold undecodable bytes)
    relative: str  # display-safe path relative to the device root
    name: str  # display-safe file name
    size_bytes: int
    mtime_ns: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    relative: str
    reason: str


@dataclass
class ScanResult:
    files: list[DeviceFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def sidecar_path(profile: DeviceProfile, file: Path) -> Path | None:
    """Where the profile says this recording's sidecar is (it may not exist)."""
    if profile.sidecar is None:
        return None
    stem, name = os.fsdecode(file.stem), os.fsdecode(file.name)
    return file.with_name(profile.sidecar.name.format(stem=stem, name=name))


def scan_device(root: Path, profile: DeviceProfile) -> ScanResult:
    """List recordings under *root* in a stable order; report what is skipped and why."""
    if not root.is_dir():
        raise DeviceGone(root, "not a folder (unplugged or not mounted?)")
    result = ScanResult()
    ignores = DEFAULT_IGNORES + profile.ignore
    sidecars: set[str] = set()
    identity_file = profile.identity.file.lower() if profile.identity else None
    root_bytes = os.fsencode(root)

    def walk(folder: bytes, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            rel = display_name(os.path.relpath(folder, root_bytes))
            if not root.is_dir():
                raise DeviceGone(root, exc.strerror or str(exc)) from exc
            result.skipped.append(Skipped(rel, f"folder unreadable: {exc.strerror or exc}"))
            return
        for entry in entries:
            rel_raw = os.path.relpath(entry.path, root_bytes)
            rel = display_name(rel_raw)
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                result.skipped.append(Skipped(rel, f"cannot stat: {exc.strerror or exc}"))
                continue
            if stat.S_ISLNK(info.st_mode):
                target = display_name(os.fsencode(os.readlink(entry.path)))
                result.skipped.append(Skipped(rel, f"symbolic link to {target!r} not followed"))
            elif stat.S_ISDIR(info.st_mode):
                if matches_any(rel + "/", ignores) or matches_any(rel + "/x", ignores):
                    continue
                if depth >= MAX_DEPTH:
                    result.skipped.append(Skipped(rel, f"folder deeper than {MAX_DEPTH} levels not walked"))
                else:
                    walk(entry.path, depth + 1)
            elif not stat.S_ISREG(info.st_mode):
                result.skipped.append(Skipped(rel, "not a regular file"))
            elif matches_any(rel, ignores) or rel.lower() == identity_file or rel in sidecars:
                continue
            elif matches_any(rel, profile.recordings):
                path = Path(os.fsdecode(entry.path))
                side = sidecar_path(profile, path)
                if side is not None:
                    sidecars.add(display_name(os.path.relpath(os.fsencode(side), root_bytes)))
                result.files.append(DeviceFile(
                    path=path, relative=rel, name=display_name(entry.name), size_bytes=info.st_size,
                    mtime_ns=info.st_mtime_ns, warnings=tuple(name_warnings(entry.name))))
            else:
                result.skipped.append(Skipped(rel, f"not a recording for profile {profile.name!r}"))

    walk(root_bytes, 0)
    # A sidecar listed before its recording was reported as "not a recording": it is metadata.
    result.skipped = [s for s in result.skipped if s.relative not in sidecars]
    return result
