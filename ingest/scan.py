"""Walk a docked device and list every file on it that is to be kept, and what it is to the profile.

Every regular file in the profile's recording area (the whole device unless the profile names an `area`) is
listed for copying: the profile only says what each file is to it (a recording, a housekeeping file of a
recording, the identity file, or nothing it knows: `unlisted`) so it can be described; what it *is* (video,
audio, photo, other) is decided later from its content. The only files left behind are those a housekeeping
rule explicitly marks `discard` and the operating system's own metadata (Finder/Explorer litter), each listed
with its reason; trash folders are kept, since they may hold deleted recordings. Litter is judged by its name
*and* its first bytes: a recording named `._CLIP.MP4` or `Thumbs.db`, or hidden inside `System Volume
Information/`, is media and is kept.

Read-only: nothing on the device is opened for writing here (the station's time is written at the dock's end, by
`ingest.clock_set`; its file, while the device has not read it yet, is left behind, listed), symbolic links are
never followed, and anything that is not a regular file is reported, not read.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from device_profiles import DeviceProfile, HousekeepingRule
from ingest.clock_set import STATION_TIME_FILE_MAX, is_station_time_file
from ingest.describe.structure import HEAD_BYTES, sniff_format
from ingest.errors import DeviceGone
from ingest.names import display_name, glob_regex, matches_any, name_warnings
from ingest.transfer import open_device_file

__all__ = ["OS_LITTER", "ROLES", "DeviceFile", "ScanResult", "Skipped", "scan_device", "sidecar_path"]

#: Operating-system metadata that is never a recording: (pattern, why it may be left behind). Trash folders
#: ($RECYCLE.BIN, .Trashes) are deliberately not here: they may hold a recording someone deleted.
OS_LITTER: tuple[tuple[str, str], ...] = (
    ("System Volume Information/**", "Windows volume metadata (indexer, restore points), not made by the device"),
    (".Spotlight-V100/**", "macOS search index, not made by the device"),
    (".fseventsd/**", "macOS file-system event log, not made by the device"),
    ("**/.DS_Store", "macOS Finder folder settings, not made by the device"),
    ("**/._*", "macOS AppleDouble metadata of another file, not made by the device"),
    ("**/Thumbs.db", "Windows Explorer thumbnail cache, not made by the device"),
    ("**/desktop.ini", "Windows Explorer folder settings, not made by the device"),
)
#: What a listed file is to its profile.
ROLES = ("recording", "housekeeping", "identity", "unlisted")
#: Deepest folder level walked (guards against pathological trees; anything deeper is reported).
MAX_DEPTH = 64


@dataclass(frozen=True)
class DeviceFile:
    path: Path  # where it is on the device (may hold undecodable bytes)
    relative: str  # display-safe path relative to the device root
    name: str  # display-safe file name
    size_bytes: int
    mtime_ns: int
    warnings: tuple[str, ...] = ()
    role: str = "recording"  # one of ROLES
    companion: str | None = None  # housekeeping: the relative path of the recording it belongs to, when known


@dataclass(frozen=True)
class Skipped:
    relative: str
    reason: str
    unread: bool = False  # a folder (or entry) whose files, if any, could not be read: the dock is not complete


@dataclass
class ScanResult:
    files: list[DeviceFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # not regular files, unreadable folders: cannot be kept
    discarded: list[Skipped] = field(default_factory=list)  # left behind on purpose, each with its reason


def sidecar_path(profile: DeviceProfile, file: Path) -> Path | None:
    """Where the profile says this recording's sidecar is (it may not exist)."""
    if profile.sidecar is None:
        return None
    stem, name = os.fsdecode(file.stem), os.fsdecode(file.name)
    return file.with_name(profile.sidecar.name.format(stem=stem, name=name))


def _housekeeping_rule(relative: str, profile: DeviceProfile) -> HousekeepingRule | None:
    return next((rule for rule in profile.housekeeping if glob_regex(rule.pattern).fullmatch(relative)), None)


def _in_area(relative: str, profile: DeviceProfile) -> bool:
    return not profile.area or any(glob_regex(a + "/**").fullmatch(relative) for a in profile.area)


def _companion(relative: str, rule: HousekeepingRule, siblings: dict[str, list[str]],
               recordings: set[str]) -> str | None:
    """The recording in the same folder that a housekeeping file belongs to (by its name templates)."""
    path = PurePosixPath(relative)
    folder = str(path.parent) if str(path.parent) != "." else ""
    stem = path.name.rsplit(".", 1)[0]
    for template in rule.belongs_to:
        wanted = glob_regex(template.format(stem=stem))
        for candidate in siblings.get(folder, []):
            full = f"{folder}/{candidate}" if folder else candidate
            if full != relative and full in recordings and wanted.fullmatch(candidate):
                return full
    return None


def _is_media(path: bytes) -> bool:
    """Whether a file's first bytes are a recognised media format (litter names do not hide recordings). A file
    that cannot be read may be one too: it is kept, and its copy reports why it failed (a review's unreadable
    `._CLIP0002.MP4` was left on the device as "macOS AppleDouble metadata", with no error)."""
    try:
        fd = open_device_file(path)
    except OSError:
        return True
    try:
        head = os.read(fd, HEAD_BYTES)
    except OSError:
        return True
    finally:
        os.close(fd)
    return sniff_format(head) not in ("unknown", "empty")


def _is_station_time_file(relative: str, path: bytes, size: int, profile: DeviceProfile,
                          written: frozenset[str]) -> bool:
    """Whether the file is one this station wrote for the device to set its clock from (ingest.clock_set): at the
    profile's `clock.set.file`, exactly, and holding the very bytes of one of its writes (*written*: their
    SHA-256). Anything else, a device's own file that looks like a time line included, is kept."""
    rule = profile.clock.set_rule
    if rule is None or relative != rule.file or size > STATION_TIME_FILE_MAX or not written:
        return False
    try:
        fd = open_device_file(path)
    except OSError:
        return False
    try:
        return is_station_time_file(os.read(fd, STATION_TIME_FILE_MAX + 1), written)
    except OSError:
        return False
    finally:
        os.close(fd)


def _litter_reason(relative: str, is_dir: bool, inherited: str | None) -> str | None:
    """Why a path is operating-system litter (a folder's reason covers everything in it); None: it is not."""
    as_checked = relative + "/x" if is_dir else relative
    return next((why for pattern, why in OS_LITTER if glob_regex(pattern).fullmatch(as_checked)), inherited)


@dataclass
class _Walk:
    """One read-only walk of a device: the regular files found, and what was skipped or left behind."""

    root: Path
    profile: DeviceProfile
    result: ScanResult
    station_times: frozenset[str] = frozenset()  # SHA-256 of the time files this station wrote (ingest.clock_set)
    found: list[DeviceFile] = field(default_factory=list)

    @property
    def root_bytes(self) -> bytes:
        return os.fsencode(self.root)

    def relative(self, path: bytes) -> str:
        return display_name(os.path.relpath(path, self.root_bytes))

    def folder(self, folder: bytes, depth: int, inherited: str | None = None) -> None:
        """Walk *folder*; *inherited* is the litter reason of a litter folder it is inside."""
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if not self.root.is_dir():
                raise DeviceGone(self.root, exc.strerror or str(exc)) from exc
            self.result.skipped.append(Skipped(self.relative(folder), f"folder unreadable: {exc.strerror or exc}",
                                               unread=True))
            return
        for entry in entries:
            self.entry(entry, depth, inherited)

    def entry(self, entry: os.DirEntry[bytes], depth: int, inherited: str | None) -> None:
        rel = self.relative(entry.path)
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as exc:
            self.result.skipped.append(Skipped(rel, f"cannot stat: {exc.strerror or exc}", unread=True))
            return
        litter = _litter_reason(rel, stat.S_ISDIR(info.st_mode), inherited)
        if stat.S_ISLNK(info.st_mode):
            target = display_name(os.fsencode(os.readlink(entry.path)))
            self.result.skipped.append(Skipped(rel, f"symbolic link to {target!r} not followed"))
        elif stat.S_ISDIR(info.st_mode):
            if depth >= MAX_DEPTH:
                self.result.skipped.append(Skipped(rel, f"folder deeper than {MAX_DEPTH} levels not walked",
                                                   unread=True))
            else:  # a litter folder is walked too: a recording hidden in it is kept
                self.folder(entry.path, depth + 1, litter)
        elif not stat.S_ISREG(info.st_mode):
            self.result.skipped.append(Skipped(rel, "not a regular file"))
        elif litter is not None and not _is_media(entry.path):
            self.result.discarded.append(Skipped(rel, litter))
        elif _is_station_time_file(rel, entry.path, info.st_size, self.profile, self.station_times):
            self.result.discarded.append(Skipped(rel, "the station's own time file (校时), written at a dock for the "
                                                      "device to set its clock from; not the device's"))
        elif not _in_area(rel, self.profile):
            self.result.discarded.append(Skipped(rel, "outside the profile's recording area "
                                                      f"({', '.join(self.profile.area)})"))
        else:
            self.found.append(DeviceFile(path=Path(os.fsdecode(entry.path)), relative=rel,
                                         name=display_name(entry.name), size_bytes=info.st_size,
                                         mtime_ns=info.st_mtime_ns, warnings=tuple(name_warnings(entry.name))))


@dataclass(frozen=True)
class _Roles:
    """What each found file is to the profile, decided once every file on the device is known."""

    profile: DeviceProfile
    recordings: set[str]  # relative paths of the recordings
    siblings: dict[str, list[str]]  # folder -> names of the files in it
    sidecar_of: dict[str, str]  # sidecar's relative path -> its recording's

    @classmethod
    def of(cls, found: list[DeviceFile], profile: DeviceProfile, root_bytes: bytes) -> _Roles:
        recordings = {f.relative for f in found if matches_any(f.relative, profile.recordings)}
        siblings: dict[str, list[str]] = {}
        for f in found:
            parent = str(PurePosixPath(f.relative).parent)
            siblings.setdefault("" if parent == "." else parent, []).append(PurePosixPath(f.relative).name)
        sidecar_of: dict[str, str] = {}
        for f in found:
            if f.relative in recordings and (side := sidecar_path(profile, f.path)) is not None:
                sidecar_of[display_name(os.path.relpath(os.fsencode(side), root_bytes))] = f.relative
        return cls(profile, recordings, siblings, sidecar_of)

    def place(self, f: DeviceFile) -> DeviceFile | Skipped:
        """*f* with its role (and the recording it belongs to), or why a housekeeping rule leaves it behind."""
        identity = self.profile.identity
        rule = _housekeeping_rule(f.relative, self.profile)
        if identity is not None and f.relative.lower() == identity.file.lower():
            return replace(f, role="identity", companion=None)
        if f.relative in self.sidecar_of:
            return replace(f, role="housekeeping", companion=self.sidecar_of[f.relative])
        if rule is not None and rule.discard:
            return Skipped(f.relative, rule.reason)
        if rule is not None:
            return replace(f, role="housekeeping",
                           companion=_companion(f.relative, rule, self.siblings, self.recordings))
        return replace(f, role="recording" if f.relative in self.recordings else "unlisted", companion=None)


def scan_device(root: Path, profile: DeviceProfile, *, station_times: frozenset[str] = frozenset()) -> ScanResult:
    """List every file to keep under *root* in a stable order; report what cannot be kept or is left, and why.
    *station_times*: the SHA-256 of the time files this station wrote (the one found is left, listed)."""
    if not root.is_dir():
        raise DeviceGone(root, "not a folder (unplugged or not mounted?)")
    walk = _Walk(root, profile, ScanResult(), station_times)
    walk.folder(walk.root_bytes, 0)
    # What each file is to the profile: the identity file, a sidecar or housekeeping file of a recording, a
    # recording, or unlisted. Decided after the walk, when every sibling is known.
    roles = _Roles.of(walk.found, profile, walk.root_bytes)
    for f in walk.found:
        placed = roles.place(f)
        if isinstance(placed, Skipped):
            walk.result.discarded.append(placed)
        else:
            walk.result.files.append(placed)
    return walk.result
