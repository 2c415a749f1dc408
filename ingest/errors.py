"""Errors of the ingest side (station, pull, describe).

```
IngestError
  + ConfigInvalid      (an EVIDENCE_* setting is wrong: key, value, why)
  + CopyFailed         (source unreadable mid-copy or staging unwritable; .part kept for resume)
  + UnsafeName         (a device name that must not become a path)
  + DeviceGone         (the docked folder vanished)
  + SampleToolMissing  (ffmpeg/ffprobe not installed)
  + StagedCopyMissing  (a staged recording's bytes are neither in staging nor in the store)
  + DeriveFailed       (a thumbnail or proxy could not be made; the evidence is unaffected)
  + DecodeIncomplete   (a decode check did not run to its end: no verdict, the file is not judged)
      - DecodeTimedOut (ffmpeg was killed at the time limit)
CatalogUnavailable (catalog)
  + CatalogueDeferred  (the catalogue was down: files are staged and journaled for later)
```
"""
from __future__ import annotations

from pathlib import Path

from catalog import CatalogUnavailable

__all__ = ["CatalogueDeferred", "ConfigInvalid", "CopyFailed", "DecodeIncomplete", "DecodeTimedOut", "DeriveFailed",
           "DeviceGone", "IngestError", "NotStagedHere", "SampleToolMissing", "StagedCopyMissing", "UnsafeName",
           "first_line"]


def first_line(exc: BaseException, limit: int | None = 300) -> str:
    """What to log of *exc* in one line: the database driver's own message for SQLAlchemy errors (`orig`), its first
    line, at most *limit* characters (the exception's type name when it says nothing)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:limit] if limit is not None else line


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
                 bytes_copied: int = 0, errno: int | None = None) -> None:
        self.source = str(source)
        self.destination = str(destination)
        self.reason = reason
        self.bytes_copied = bytes_copied
        self.errno = errno  # ENOSPC: the staging disk is full (wait); ENODEV/EIO: the device went away
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


class DeviceBusy(IngestError):
    """Another run is ingesting this device now, and this one stopped waiting for it: nothing was read."""

    def __init__(self, path: Path | str, serial: str, waited_s: float) -> None:
        self.path, self.serial, self.waited_s = str(path), serial, waited_s
        super().__init__(f"device {serial} at {self.path!r} is being ingested by another run (another `evidence "
                         f"ingest`, or the station after the device was re-mounted); gave up after waiting "
                         f"{waited_s:.0f} s: nothing of it was read by this run")


class SampleToolMissing(IngestError):
    def __init__(self, tool: str) -> None:
        self.tool = tool
        super().__init__(f"{tool} is not installed; install Debian's ffmpeg package (apt-get install ffmpeg)")


class StagedCopyMissing(IngestError):
    def __init__(self, recording_id: int, sha256: str, path: Path) -> None:
        self.recording_id = recording_id
        self.sha256 = sha256
        self.path = str(path)
        super().__init__(f"recording {recording_id} ({sha256[:12]}…) is staged but {self.path!r} is gone "
                         "and the store does not hold it")


class NotStagedHere(IngestError):
    """An archive message reached a station that does not hold the recording's staged copy: not a failure of the
    evidence (the station that staged it archives it)."""

    def __init__(self, recording_id: int, staged_at: str, here: str) -> None:
        self.recording_id = recording_id
        self.staged_at = staged_at
        self.here = here
        super().__init__(f"recording {recording_id} was staged at station {staged_at!r}, not here ({here!r}): "
                         "that station archives it")


class DeriveFailed(IngestError):
    def __init__(self, recording_id: int, kind: str, reason: str) -> None:
        self.recording_id = recording_id
        self.kind = kind
        self.reason = reason
        super().__init__(f"could not make the {kind} of recording {recording_id}: {reason}")


class CatalogueDeferred(CatalogUnavailable):
    """The catalogue was unreachable during a dock; what was copied is staged and journaled."""

    def __init__(self, url: str, reason: str, *, device_serial: str, journaled: int) -> None:
        self.device_serial = device_serial
        self.journaled = journaled
        super().__init__(url, reason)


class RenderInterrupted(IngestError):
    """A renderer's tool did not run to its end for a reason outside the media (stopped by a signal, not
    installed): nothing is known about the media, and another try may finish. *killed*: the tool was ended by
    SIGKILL from outside (the kernel's out-of-memory killer, typically): counted towards giving up on the file
    (catalog.media_work.MAX_KILLS), where any other interruption is not."""

    def __init__(self, source: str, reason: str, *, killed: bool = False) -> None:
        self.source = source
        self.reason = reason
        self.killed = killed
        super().__init__(f"rendering {source!r} did not finish: {reason}")


class DecodeIncomplete(IngestError):
    """The decode did not run to its end, so there is no verdict (the file is not judged)."""

    def __init__(self, path: Path | str, reason: str, *, decoded_s: float | None = None,
                 transient: bool = False, killed: bool = False) -> None:
        self.path = str(path)
        self.reason = reason
        self.decoded_s = decoded_s
        #: Stopped from outside (a signal, ffmpeg missing): another try may finish. Otherwise the file is the cause.
        self.transient = transient
        #: Ended by SIGKILL from outside (out of memory, typically): RenderInterrupted.killed.
        self.killed = killed
        reached = f" (reached {decoded_s:.2f} s of media)" if decoded_s is not None else ""
        super().__init__(f"decode check of {self.path!r} incomplete: {reason}{reached}")


class DecodeTimedOut(DecodeIncomplete):
    def __init__(self, path: Path | str, timeout_s: float, *, decoded_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        super().__init__(path, f"ffmpeg did not finish within {timeout_s:g} s and was killed", decoded_s=decoded_s)
