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
#: The longest value of each field the catalogue holds (catalog.models: Device.serial, Officer).
_MAX_LENGTH = {"serial": 64, "officer_number": 32, "officer_name": 100, "unit_number": 64, "unit_name": 200}
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
            # a JSON null is no value (it had named a device 'None': found by a review); a number is its digits
            values = ({str(k): str(v) for k, v in data.items() if isinstance(v, (str, int, float))
                       and not isinstance(v, bool)} if isinstance(data, dict) else {})
        except json.JSONDecodeError as exc:
            problem = f"identity file is not valid JSON: {exc.msg} at line {exc.lineno}"
    else:
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")) or "=" not in line:
                continue
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    found: dict[str, str | None] = {}
    problems = [problem] if problem else []
    for ours, theirs in rule.fields.items():
        if ours not in _FIELDS:
            continue
        found[ours], why = _field_value(ours, values.get(theirs))
        if why:
            problems.append(why)
    return DeviceIdentity(**found, problem="; ".join(problems) or None)


def _field_value(field: str, value: str | None) -> tuple[str | None, str | None]:
    """*value* as the catalogue can hold it, or (None, why it is not used): a serial of 300 characters or holding
    a NUL is not one to name a device by (it stopped a dock on PostgreSQL: found by a review)."""
    if value is None or not value.strip():
        return None, None
    value = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None, f"identity field {field} holds control characters: not used"
    if len(value) > _MAX_LENGTH[field]:
        return None, f"identity field {field} is {len(value)} characters (at most {_MAX_LENGTH[field]}): not used"
    return value, None


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
