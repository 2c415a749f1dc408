"""Read a recorder's identity file (serial, officer, unit).

Chinese enforcement recorders keep it as GBK `key=value` text; others as
JSON. Parsing is pure (`parse_identity`); `read_identity` finds the file
case-insensitively at the device root.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from device_profiles import IdentityRule

__all__ = ["DeviceIdentity", "parse_identity", "read_identity"]

_FIELDS = ("serial", "officer_number", "officer_name", "unit_number", "unit_name")
#: Identity files are a few hundred bytes; anything larger is not one.
MAX_IDENTITY_BYTES = 64 * 1024


@dataclass(frozen=True)
class DeviceIdentity:
    serial: str | None = None
    officer_number: str | None = None
    officer_name: str | None = None
    unit_number: str | None = None
    unit_name: str | None = None
    problem: str | None = None  # why the identity could not be (fully) read


def parse_identity(raw: bytes, rule: IdentityRule) -> DeviceIdentity:
    """Map the file's keys to our fields through the profile's `fields` table."""
    problem = None
    try:
        text = raw.decode(rule.encoding)
    except UnicodeDecodeError as exc:
        text = raw.decode(rule.encoding, errors="replace")
        problem = f"identity file is not valid {rule.encoding} at byte {exc.start}"
    text = text.lstrip("\ufeff")
    values: dict[str, str] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
            values = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except json.JSONDecodeError as exc:
            problem = f"identity file is not valid JSON: {exc.msg} at line {exc.lineno}"
    else:
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")) or "=" not in line:
                continue
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    found = {ours: values.get(theirs) or None for ours, theirs in rule.fields.items() if ours in _FIELDS}
    return DeviceIdentity(**found, problem=problem)


def read_identity(root: Path, rule: IdentityRule) -> DeviceIdentity:
    try:
        names = {os.fsdecode(n).lower(): n for n in os.listdir(os.fsencode(root))}
    except OSError as exc:
        return DeviceIdentity(problem=f"device root unreadable: {exc.strerror or exc}")
    name = names.get(rule.file.lower())
    if name is None:
        return DeviceIdentity(problem=f"identity file {rule.file!r} not found")
    path = Path(os.fsdecode(os.path.join(os.fsencode(root), name)))
    if path.is_symlink() or not path.is_file():
        return DeviceIdentity(problem=f"identity file {rule.file!r} is not a regular file")
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_IDENTITY_BYTES + 1)
    except OSError as exc:  # unreadable (a review's chmod 000): the device is still read, by where it is mounted
        return DeviceIdentity(problem=f"identity file {rule.file!r} unreadable: {exc.strerror or exc}")
    if len(raw) > MAX_IDENTITY_BYTES:
        return DeviceIdentity(problem=f"identity file {rule.file!r} is over {MAX_IDENTITY_BYTES} bytes")
    return parse_identity(raw, rule)
