"""Parse device-profile YAML files into typed, validated objects.

A profile is data: how to recognise a recorder, which files are its
recordings and which are its own housekeeping files (thumbnails, low-res
copies, index databases), how its file names and sidecars read, what its
clock means, and whether it may be cleared once its recordings are archived.
A profile describes files; it never decides what is left behind: every
regular file in its recording area (the whole device unless `area` says
otherwise) is kept, except housekeeping files it explicitly marks `discard`
with a reason. Unknown keys are refused and every problem in a file is
reported at once.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from device_profiles.errors import ProfileInvalid, ProfileNotFound

__all__ = [
    "BUILTIN_DIR",
    "TIME_SOURCES",
    "ClockRule",
    "ClockSetRule",
    "DeviceProfile",
    "FilenameRule",
    "HousekeepingRule",
    "IdentityRule",
    "Recognition",
    "SidecarRule",
    "load_profile",
    "load_profiles",
    "parse_profile",
]

#: Folder holding the profiles shipped with the system.
BUILTIN_DIR = Path(__file__).parent / "profiles"

#: Where a capture time may come from, in the words profiles use.
TIME_SOURCES = ("sidecar", "container", "exif", "filename", "file_mtime")

_FILENAME_GROUPS = {"serial", "officer", "date", "time", "important", "prefix", "ext", "number"}


@dataclass(frozen=True)
class Recognition:
    any_files: tuple[str, ...] = ()  # one of these paths exists (case-insensitive)
    all_paths: tuple[str, ...] = ()  # every one of these paths exists
    volume_labels: tuple[str, ...] = ()  # the mount's label is one of these


@dataclass(frozen=True)
class IdentityRule:
    file: str
    encoding: str
    fields: Mapping[str, str]  # our name (serial, officer_number, ...) -> key in the file


@dataclass(frozen=True)
class FilenameRule:
    pattern: re.Pattern[str]
    important_suffix: str | None = None


@dataclass(frozen=True)
class SidecarRule:
    name: str  # template with {stem} and {name}
    format: str  # "json" or "keyvalue"


@dataclass(frozen=True)
class HousekeepingRule:
    """Device-made files that derive from a recording (.THM, .LRV, an index database).

    Kept as kind `other` (linked to the recording they belong to, found by *belongs_to* templates in the same
    folder) unless *discard* is set: then they are not copied, and each is listed with *reason*.
    """

    pattern: str
    discard: bool = False
    reason: str = ""
    belongs_to: tuple[str, ...] = ("{stem}.*",)


@dataclass(frozen=True)
class ClockSetRule:
    """How the station sets the device's clock (校时): a file the device reads when it starts, holding the time."""

    file: str  # where, relative to the device's root
    format: str = "%Y-%m-%d %H:%M:%S"  # strftime format of the one line written
    zone: str | None = None  # the zone of the time written (default: the clock's zone, else the station's)
    encoding: str = "ascii"
    line_end: str = "\r\n"


@dataclass(frozen=True)
class ClockRule:
    zone: str | None  # the device's local zone when its clock is local time
    container_time_is_local: bool = False  # container says UTC but holds local wall time
    file: str | None = None  # a file where the docked device shows its current clock
    file_format: str = "%Y-%m-%d %H:%M:%S"  # strptime format of that file's first line
    dock_file: str | None = None  # a file the device writes when it is docked: its time is the device's clock then
    dock_file_time_is_local: bool = True  # that time is the device's wall clock (FAT), shown by the station as UTC
    set_rule: ClockSetRule | None = None  # clock.set: how the station writes its time (校时); None: it cannot


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    recognise: Recognition
    recordings: tuple[str, ...]  # glob patterns relative to the device root
    time_sources: tuple[str, ...]
    clock: ClockRule
    clear_after_archive: bool
    identity: IdentityRule | None = None
    filename: FilenameRule | None = None
    sidecar: SidecarRule | None = None
    housekeeping: tuple[HousekeepingRule, ...] = ()
    area: tuple[str, ...] = ()  # folders (globs) holding the device's files; empty: the whole device
    source: str = field(default="", compare=False)

    @property
    def clock_measures(self) -> tuple[str, ...]:
        """How a dock measures this device's clock, in the order tried: its clock file, the time of the file it
        writes when docked, the GPS time its sidecars hold beside its own clock's. Empty: it cannot."""
        ways = (("clock_file", self.clock.file is not None), ("dock_file", self.clock.dock_file is not None),
                ("sidecar_gps", self.sidecar is not None and "sidecar" in self.time_sources))
        return tuple(name for name, can in ways if can)


_REQUIRED = {"name", "recognise", "recordings", "time_sources", "clock", "clear_after_archive"}
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_IGNORE_REFUSED = ("ignore: no longer supported: every file on a device is kept; list device-made derivatives "
                   "under housekeeping (with discard: true and a reason to leave one behind)")


def _check_keys(where: str, data: Any, allowed: set[str], problems: list[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping, got {type(data).__name__}")
        return {}
    for key in sorted(set(data) - allowed):
        problems.append(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    return data


def _str_list(where: str, value: Any, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}: expected a list of strings, got {value!r}")
        return ()
    return tuple(value)


def _bool(where: str, value: Any, problems: list[str]) -> bool:
    if not isinstance(value, bool):
        problems.append(f"{where}: expected true/false, got {value!r}")
    return bool(value)


# ----------------------------------------------------------------------------- one parser per top-level key
# Each takes the profile's top-level mapping and the problem list, appends what is wrong and returns the value.


def _name(top: Mapping[str, Any], problems: list[str]) -> Any:
    name = top.get("name", "")
    if "name" in top and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        problems.append(f"name: {name!r} must be lowercase letters, digits and '-'")
    return name


def _description(top: Mapping[str, Any], problems: list[str]) -> str:
    return str(top.get("description", ""))


def _recognise(top: Mapping[str, Any], problems: list[str]) -> Recognition:
    rec = _check_keys("recognise", top.get("recognise", {}), {"any_files", "all_paths", "volume_labels"},
                      problems)
    recognise = Recognition(
        any_files=_str_list("recognise.any_files", rec.get("any_files"), problems),
        all_paths=_str_list("recognise.all_paths", rec.get("all_paths"), problems),
        volume_labels=_str_list("recognise.volume_labels", rec.get("volume_labels"), problems),
    )
    if "recognise" in top and not (recognise.any_files or recognise.all_paths or recognise.volume_labels):
        problems.append("recognise: give at least one of any_files, all_paths, volume_labels")
    return recognise


def _recordings(top: Mapping[str, Any], problems: list[str]) -> tuple[str, ...]:
    recordings = _str_list("recordings", top.get("recordings"), problems)
    if "recordings" in top and not recordings:
        problems.append("recordings: give at least one glob pattern")
    return recordings


def _area(top: Mapping[str, Any], problems: list[str]) -> tuple[str, ...]:
    return tuple(a.strip("/") for a in _str_list("area", top.get("area"), problems))


def _time_sources(top: Mapping[str, Any], problems: list[str]) -> tuple[str, ...]:
    time_sources = _str_list("time_sources", top.get("time_sources"), problems)
    for ts in time_sources:
        if ts not in TIME_SOURCES:
            problems.append(f"time_sources: unknown source {ts!r} (allowed: {', '.join(TIME_SOURCES)})")
    return time_sources


def _clock(top: Mapping[str, Any], problems: list[str]) -> ClockRule:
    clk = _check_keys("clock", top.get("clock", {}), {"zone", "container_time_is_local", "file", "file_format",
                                                   "dock_file", "dock_file_time_is_local", "set"},
                      problems)
    zone = clk.get("zone")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"clock.zone: {zone!r} is not a known IANA time zone")
    local_container = _bool("clock.container_time_is_local", clk.get("container_time_is_local", False), problems)
    clock_file = _device_path("clock.file", clk.get("file"), problems)
    file_format = clk.get("file_format", "%Y-%m-%d %H:%M:%S")
    if not isinstance(file_format, str) or "%" not in file_format:
        problems.append(f"clock.file_format: {file_format!r} is not a strptime format")
    dock_file = _device_path("clock.dock_file", clk.get("dock_file"), problems)
    dock_local = _bool("clock.dock_file_time_is_local", clk.get("dock_file_time_is_local", True), problems)
    setting = _clock_set(clk.get("set"), problems)
    if setting is not None and setting.file.lower() in {(clock_file or "").lower(), (dock_file or "").lower()}:
        problems.append(f"clock.set.file: {setting.file!r} is where the device shows its own clock; the station "
                        "writes its time to a file of its own")
    return ClockRule(zone=zone, container_time_is_local=local_container, file=clock_file,
                     file_format=str(file_format), dock_file=dock_file, dock_file_time_is_local=dock_local,
                     set_rule=setting)


def _device_path(where: str, value: Any, problems: list[str]) -> str | None:
    """A file's path relative to the device's root; None when not given (a problem when not such a path)."""
    if value is None:
        return None
    parts = value.split("/") if isinstance(value, str) else []
    if (not parts or any(p in ("", ".", "..") or p != p.strip() for p in parts)
            or any(c in value for c in "\\:\0")):  # a Windows path, a drive or stream, a NUL
        problems.append(f"{where}: expected a file's path on the device (relative, no '..'), got {value!r}")
        return None
    return "/".join(parts)


_LINE_ENDS = {"crlf": "\r\n", "lf": "\n", "none": ""}


def _clock_set(value: Any, problems: list[str]) -> ClockSetRule | None:
    if value is None:
        return None
    rule = _check_keys("clock.set", value, {"file", "format", "zone", "encoding", "line_end"}, problems)
    if not rule:
        return None
    path = _device_path("clock.set.file", rule.get("file"), problems)
    if path is None and "file" not in rule:
        problems.append("clock.set.file: missing (the file the device reads its time from)")
    fmt, zone = rule.get("format", "%Y-%m-%d %H:%M:%S"), rule.get("zone")
    encoding, line_end = rule.get("encoding", "ascii"), rule.get("line_end", "crlf")
    sample = datetime(2026, 12, 31, 23, 59, 58)
    try:
        if not isinstance(fmt, str) or "%" not in fmt or datetime.strptime(sample.strftime(fmt), fmt) != sample:
            raise ValueError("does not round-trip a date and time to the second")
        sample.strftime(fmt).encode(str(encoding))
    except (ValueError, TypeError, LookupError, UnicodeEncodeError) as exc:
        problems.append(f"clock.set: format {fmt!r} in encoding {encoding!r} cannot write the time ({exc})")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"clock.set.zone: {zone!r} is not a known IANA time zone")
    if line_end not in _LINE_ENDS:
        problems.append(f"clock.set.line_end: {line_end!r} is not one of {', '.join(_LINE_ENDS)}")
    if path is None:
        return None
    return ClockSetRule(file=path, format=str(fmt), zone=None if zone is None else str(zone),
                        encoding=str(encoding), line_end=_LINE_ENDS.get(str(line_end), "\r\n"))


def _clear_after_archive(top: Mapping[str, Any], problems: list[str]) -> bool:
    return _bool("clear_after_archive", top.get("clear_after_archive", False), problems)


def _identity(top: Mapping[str, Any], problems: list[str]) -> IdentityRule | None:
    if top.get("identity") is None:
        return None
    ident = _check_keys("identity", top["identity"], {"file", "encoding", "fields"}, problems)
    encoding = ident.get("encoding", "utf-8")
    try:
        "x".encode(encoding)
    except LookupError:
        problems.append(f"identity.encoding: unknown codec {encoding!r}")
    fields = ident.get("fields", {})
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        problems.append(f"identity.fields: expected a mapping of names to keys, got {fields!r}")
        fields = {}
    if not isinstance(ident.get("file"), str):
        problems.append("identity.file: missing or not a string")
    return IdentityRule(file=str(ident.get("file", "")), encoding=encoding, fields=dict(fields))


def _filename(top: Mapping[str, Any], problems: list[str]) -> FilenameRule | None:
    if top.get("filename") is None:
        return None
    fn = _check_keys("filename", top["filename"], {"pattern", "important_suffix"}, problems)
    try:
        pattern = re.compile(str(fn.get("pattern", "")), re.IGNORECASE)
    except re.error as exc:
        problems.append(f"filename.pattern: not a valid regular expression ({exc})")
        return None
    unknown_groups = set(pattern.groupindex) - _FILENAME_GROUPS
    if unknown_groups:
        problems.append(f"filename.pattern: unknown groups {sorted(unknown_groups)} "
                        f"(allowed: {', '.join(sorted(_FILENAME_GROUPS))})")
    return FilenameRule(pattern=pattern, important_suffix=fn.get("important_suffix"))


def _sidecar(top: Mapping[str, Any], problems: list[str]) -> SidecarRule | None:
    if top.get("sidecar") is None:
        return None
    sc = _check_keys("sidecar", top["sidecar"], {"name", "format"}, problems)
    fmt = sc.get("format", "json")
    if fmt not in ("json", "keyvalue"):
        problems.append(f"sidecar.format: {fmt!r} is not one of json, keyvalue")
    if not isinstance(sc.get("name"), str) or "{stem}" not in sc.get("name", ""):
        problems.append("sidecar.name: must be a template containing {stem}")
    return SidecarRule(name=str(sc.get("name", "")), format=str(fmt))


def _housekeeping_rules(top: Mapping[str, Any], problems: list[str]) -> tuple[HousekeepingRule, ...]:
    return _housekeeping(top.get("housekeeping"), problems)


#: Every top-level key a profile may have (each is the DeviceProfile field of that name) and its parser, in the
#: order their problems are reported.
_SECTIONS: dict[str, Callable[[Mapping[str, Any], list[str]], Any]] = {
    "name": _name,
    "description": _description,
    "recognise": _recognise,
    "recordings": _recordings,
    "area": _area,
    "housekeeping": _housekeeping_rules,
    "time_sources": _time_sources,
    "clock": _clock,
    "clear_after_archive": _clear_after_archive,
    "identity": _identity,
    "filename": _filename,
    "sidecar": _sidecar,
}
_TOP_KEYS = set(_SECTIONS)
#: Time sources that need a rule of the same name to be read.
_SOURCES_NEEDING_A_RULE = ("sidecar", "filename")


def _top_level(data: Any, problems: list[str]) -> dict[str, Any]:
    if isinstance(data, dict) and "ignore" in data:
        problems.append(_IGNORE_REFUSED)
        data = {k: v for k, v in data.items() if k != "ignore"}
    top = _check_keys("profile", data, _TOP_KEYS, problems)
    for key in sorted(_REQUIRED - set(top)):
        problems.append(f"profile: missing required key {key!r}")
    return top


def parse_profile(data: Any, *, source: str = "<memory>") -> DeviceProfile:
    """Validate one profile mapping; raise ProfileInvalid listing every problem."""
    problems: list[str] = []
    top = _top_level(data, problems)
    fields = {key: parse(top, problems) for key, parse in _SECTIONS.items()}
    setting, identity = fields["clock"].set_rule, fields["identity"]
    if setting is not None and identity is not None and setting.file.lower() == identity.file.lower():
        problems.append(f"clock.set.file: {setting.file!r} is the device's identity file")
    for needed in _SOURCES_NEEDING_A_RULE:
        if needed in fields["time_sources"] and fields[needed] is None:
            problems.append(f"time_sources: {needed!r} is listed but the profile has no {needed} rule")
    if problems:
        raise ProfileInvalid(source, problems)
    return DeviceProfile(**fields, source=source)


def _housekeeping(value: Any, problems: list[str]) -> tuple[HousekeepingRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"housekeeping: expected a list of rules, got {value!r}")
        return ()
    rules = []
    for index, entry in enumerate(value):
        where = f"housekeeping[{index}]"
        item = _check_keys(where, entry, {"pattern", "discard", "reason", "belongs_to"}, problems)
        if not item:
            continue
        pattern, discard, reason = item.get("pattern"), item.get("discard", False), item.get("reason", "")
        if not isinstance(pattern, str) or not pattern.strip():
            problems.append(f"{where}.pattern: expected a glob, got {pattern!r}")
            continue
        if not isinstance(discard, bool):
            problems.append(f"{where}.discard: expected true/false, got {discard!r}")
            continue
        if not isinstance(reason, str) or (discard and not reason.strip()):
            problems.append(f"{where}.reason: a discarded file needs the reason it may be left behind")
            continue
        belongs = item.get("belongs_to", ["{stem}.*"])
        if isinstance(belongs, str):
            belongs = [belongs]
        if not isinstance(belongs, list) or not all(isinstance(b, str) and "{stem}" in b for b in belongs):
            problems.append(f"{where}.belongs_to: expected name templates containing {{stem}}, got {belongs!r}")
            continue
        rules.append(HousekeepingRule(pattern=pattern, discard=discard, reason=reason.strip(),
                                      belongs_to=tuple(belongs)))
    return tuple(rules)


def load_profile(path: Path) -> DeviceProfile:
    """Read and validate one YAML profile file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProfileInvalid(path, [f"cannot read: {exc}"]) from exc
    return parse_profile(data, source=str(path))


def load_profiles(extra_dirs: tuple[Path, ...] = ()) -> dict[str, DeviceProfile]:
    """Load the built-in profiles plus any in *extra_dirs* (later ones win by name)."""
    profiles: dict[str, DeviceProfile] = {}
    for folder in (BUILTIN_DIR, *extra_dirs):
        for path in sorted(folder.glob("*.yaml")):
            profile = load_profile(path)
            profiles[profile.name] = profile
    return profiles


def get_profile(profiles: Mapping[str, DeviceProfile], name: str) -> DeviceProfile:
    try:
        return profiles[name]
    except KeyError:
        raise ProfileNotFound(name, known=tuple(sorted(profiles))) from None
