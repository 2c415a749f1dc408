"""The resumable partial copies a station holds (`staging/*.part`), for its gauges and its idle-copy alarm.

A copy cut short (the device pulled, a read error, a full disk, the station killed) leaves `<key>.part` in
staging; the next dock of the same device resumes it. Nothing removes one otherwise, on purpose: a partial copy may
be all that is left of a broken recorder. But one that nothing resumes must be seen by a person, so the station
counts them and says how long the least recently written one has been left alone. A copy in progress is written
continually, so it is never "idle" for long; one whose device never came back is.

Only regular files named `*.part` directly in staging count (never followed: a link or a folder named so is not a
copy). The idle time is measured from the file's modification time; a modification time in the future (a clock
set back since, or a file touched by hand) counts as idle 0, never negative.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PART_SUFFIX", "PartialCopies", "partial_copies"]

PART_SUFFIX = ".part"
#: How the partial copy of a document attached to a case is named (ingest.documents): never resumed.
ATTACHMENT_PREFIX = "attach-"


@dataclass(frozen=True)
class PartialCopies:
    """What staging holds in partial copies at one moment."""

    count: int = 0
    size_bytes: int = 0
    oldest_idle_s: float = 0.0  # seconds since the least recently written one was last written (0: none)
    oldest: str | None = None  # its file name

    def idle_over(self, limit_s: float) -> bool:
        """Whether the least recently written partial copy has been left alone longer than *limit_s*."""
        return self.count > 0 and self.oldest_idle_s > limit_s

    def message(self, staging: Path, limit_s: float) -> str:
        """The `partial_copy_idle` alarm's words: what is held, which copy is idle and what a person should do."""
        held = (f"{self.count} partial cop{'y' if self.count == 1 else 'ies'} ({self.size_bytes} bytes) in {staging}; "
                f"{self.oldest} has not been written for {self.oldest_idle_s:.0f} s (over {limit_s:g} s): ")
        if (self.oldest or "").startswith(ATTACHMENT_PREFIX):
            return held + ("a document attachment cut short (`evidence case attach` was killed): attach the document "
                           "again, then remove this file")
        return held + ("dock that recorder again to finish the copy (the dock session's error names this file: "
                       "\"kept for resume in staging as …\"), and keep the partial copy until then: it may be all "
                       "that is left of a broken recorder")

    def alarm(self, staging: Path, limit_s: float) -> dict[str, Any] | None:
        """The raised `partial_copy_idle` alarm as the status JSON carries it, or None while it is clear."""
        if not self.idle_over(limit_s):
            return None
        return {**self.as_json(), "kind": "partial_copy_idle", "raised": True,
                "message": self.message(staging, limit_s)}

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "size_bytes": self.size_bytes, "oldest_idle_s": round(self.oldest_idle_s, 1),
                "oldest": self.oldest}


def partial_copies(staging: Path, *, now: float) -> PartialCopies:
    """Count the partial copies directly in *staging* at *now* (Unix seconds). A missing staging folder holds none.

    Raises OSError when staging exists but cannot be listed (the caller reports that; it is not "none")."""
    count = size = 0
    oldest_mtime: float | None = None
    oldest: str | None = None
    try:
        entries = os.scandir(staging)
    except FileNotFoundError:
        return PartialCopies()
    with entries:
        for entry in entries:
            if not entry.name.endswith(PART_SUFFIX):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # finished (renamed) or removed while we looked
            if not stat.S_ISREG(info.st_mode):
                continue
            count += 1
            size += info.st_size
            if oldest_mtime is None or info.st_mtime < oldest_mtime:
                # A name that is not UTF-8 is shown escaped: the status file and JSON output must stay writable
                oldest_mtime, oldest = info.st_mtime, os.fsencode(entry.name).decode("utf-8", "backslashreplace")
    if oldest_mtime is None:
        return PartialCopies()
    return PartialCopies(count=count, size_bytes=size, oldest_idle_s=max(0.0, now - oldest_mtime), oldest=oldest)
