"""Small copies in staging made durable a batch at a time: one syncfs(2) instead of two fsyncs a file.

A dock of photos is thousands of small copies. Each fsynced on its own (the file, then the staging folder for its
name) costs a journal commit of the file system per fsync: on a journaled ext4, with the ingest otherwise unchanged,
a dock of 1,000 photos took 25–30 % longer than with those fsyncs left out (2026-12-03, `bench/many_photos.py` on a
journaled ext4). So a run copies its small files without fsync (`copy_and_hash(durable=False)`) and, before any of
them counts — written ahead to the staging journal, described, catalogued, uploaded — makes the ones the copy
thread has finished durable together with `StagingSync.make_durable`: one syncfs of the staging file system.

Write-back errors are not lost: the syncfs descriptor is opened before the run copies anything, and Linux (5.17 and
later) reports to it, once, every write-back error after that. The error may be a copy's outside the group being
synced (the copy thread runs ahead), so from then on every copy of the run is fsynced on its own, which names the
copies an error hit (a file's own error is reported to the first fsync after it, also after syncfs saw it); those
are not kept, and their files are read again at the next dock (nothing of them was catalogued, and nothing is cleared
from a device before its copy is archived and verified). Where syncfs may not report errors (not Linux, or a kernel
before 5.17), every copy is fsynced as it is made (`defers` false).
"""
from __future__ import annotations

import logging
from pathlib import Path

from storage import fsync_dir, fsync_path
from storage.backends.local_tree import FileSystemSync

__all__ = ["StagingSync"]

logger = logging.getLogger(__name__)


class StagingSync:
    """The staging folder's file system, synced on demand for the copies a run made without fsync."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self._fs = FileSystemSync(staging) if FileSystemSync.reports_errors else None
        self.syncs = 0  # syncfs calls made (for the run's figures and the tests)
        self.failed = False  # a syncfs reported an error: every copy after is fsynced on its own

    @property
    def defers(self) -> bool:
        """Whether copies may skip their fsync (a syncfs here reports write-back errors)."""
        return self._fs is not None

    def make_durable(self, paths: list[Path]) -> dict[Path, OSError]:
        """Make the copies at *paths* (made since this object was opened, without fsync) durable, names and bytes.

        Returns the copies that could not be made durable, each with its error (empty: all are)."""
        if not paths:
            return {}
        if self._fs is None or self.failed:
            return _each(self.staging, paths)
        try:
            self._fs.sync()
            self.syncs += 1
            return {}
        except OSError as exc:
            self.failed = True
            logger.error("Syncing the staging file system %r failed (%s): each copy of this run is synced on its own "
                         "from now on, to find the ones the error hit.", str(self.staging), exc)
            return _each(self.staging, paths)

    def close(self) -> None:
        if self._fs is not None:
            self._fs.close()
            self._fs = None


def _each(staging: Path, paths: list[Path]) -> dict[Path, OSError]:
    """fsync each of *paths*, then the staging folder: the copies whose bytes or name are not durable, with why."""
    failed: dict[Path, OSError] = {}
    for path in paths:
        try:
            fsync_path(path)
        except OSError as exc:
            failed[path] = exc
    try:
        fsync_dir(staging)
    except OSError as exc:
        return dict.fromkeys(paths, exc)
    return failed
