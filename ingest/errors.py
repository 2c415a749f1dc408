"""Errors of the ingest side (station, pull, describe).

```
IngestError
  + ConfigInvalid      (an EVIDENCE_* setting is wrong: key, value, why)
  + CopyFailed         (source unreadable mid-copy or staging unwritable; .part kept for resume)
  + UnsafeName         (a device name that must not become a path)
  + DeviceGone         (the docked folder vanished)
  + SampleToolMissing  (ffmpeg/ffprobe not installed)
```
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigInvalid", "CopyFailed", "DeviceGone", "IngestError", "SampleToolMissing", "UnsafeName"]


class IngestError(Exception):
    """Base class for ingest failures."""


class ConfigInvalid(IngestError):
    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(f"Config {key!r} has value {value!r}. {reason}")


class CopyFailed(IngestError):
    def __init__(self, source: Path | str, destination: Path | str, *, reason: str,
                 bytes_copied: int = 0) -> None:
        self.source = str(source)
        self.destination = str(destination)
        self.reason = reason
        self.bytes_copied = bytes_copied
        super().__init__(f"copy of {self.source!r} to {self.destination!r} failed after "
                         f"{bytes_copied} bytes: {reason}")


class UnsafeName(IngestError):
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"unsafe device name {name!r}: {reason}")


class DeviceGone(IngestError):
    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"device folder {self.path!r} is gone: {reason}")


class SampleToolMissing(IngestError):
    def __init__(self, tool: str) -> None:
        self.tool = tool
        super().__init__(f"{tool} is not installed; install Debian's ffmpeg package (apt-get install ffmpeg)")
