"""Which USB device a docked volume is: block device from the mount table, vendor/model/serial from udev.

`parse_mountinfo` is pure; `usb_identity` uses pyudev when it is installed and udev is running (a
station host), and answers None anywhere else (containers, folders that are not mounts).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["mount_source", "parse_mountinfo", "usb_identity"]

logger = logging.getLogger(__name__)

_UDEV_KEYS = {"ID_VENDOR": "vendor", "ID_VENDOR_ID": "vendor_id", "ID_MODEL": "model", "ID_MODEL_ID": "model_id",
              "ID_SERIAL_SHORT": "usb_serial", "ID_FS_LABEL": "label", "ID_FS_UUID": "fs_uuid"}


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str, mount_point: str) -> str | None:
    """The source device of *mount_point* in /proc/self/mountinfo text (the last mount there wins)."""
    source = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        if _unescape(fields[4]) == mount_point:
            source = _unescape(tail[1])
    return source


def mount_source(path: Path) -> str | None:
    if not os.path.ismount(path):
        return None
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return parse_mountinfo(text, str(path))


def usb_identity(path: Path) -> dict[str, str] | None:
    """Vendor, model and USB serial of the device mounted at *path*, or None when that cannot be known."""
    source = mount_source(path)
    if source is None or not source.startswith("/dev/"):
        return None
    try:
        import pyudev  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return {"block_device": source}
    try:
        device = pyudev.Devices.from_device_file(pyudev.Context(), source)
        properties = dict(device.properties)
    except Exception as exc:  # noqa: BLE001 - udev absent or the device already gone
        logger.info("No udev data for %r: %s", source, exc)
        return {"block_device": source}
    found = {ours: str(properties[key]) for key, ours in _UDEV_KEYS.items() if key in properties}
    return {"block_device": source, **found}
