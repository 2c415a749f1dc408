"""Small copies made durable a group at a time (ingest.staging_sync): attacks on how a write-back error is found.

The file-system faults are injected where the kernel would report them (syncfs and fsync answering EIO); the files,
the folder and every other call are real. Every test runs whatever the kernel: the grouped sync is taken as reporting
errors (as on Linux 5.17 and later), and the faults are the tests' own.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ingest import staging_sync
from ingest.staging_sync import StagingSync
from storage.backends.local_tree import FileSystemSync, _kernel_at_least


@pytest.fixture(autouse=True)
def syncfs_reports_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FileSystemSync, "reports_errors", True)


def _failing_syncfs(monkeypatch: pytest.MonkeyPatch, times: int) -> None:
    """The staging file system's syncfs reports EIO *times* times, then syncs."""
    left = [times]

    class Failing(FileSystemSync):
        def sync(self) -> None:
            if left[0] > 0:
                left[0] -= 1
                raise OSError(errno.EIO, "syncfs failed: Input/output error", str(self.path))
            super().sync()

    monkeypatch.setattr(staging_sync, "FileSystemSync", Failing)


def _failing_fsync(monkeypatch: pytest.MonkeyPatch, bad: set[Path]) -> None:
    """fsync of the files in *bad* reports EIO (their write-back failed); the others are really fsynced."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")) in bad:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _files(staging: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        (staging / name).write_bytes(name.encode() * 100)
        paths.append(staging / name)
    return paths


def test_a_group_is_made_durable_by_one_sync(tmp_path):
    sync = StagingSync(tmp_path)
    paths = _files(tmp_path, "a", "b", "c")
    assert sync.make_durable(paths) == {} and sync.syncs == 1
    assert sync.make_durable([]) == {} and sync.syncs == 1
    sync.close()


def test_where_syncfs_reports_no_errors_each_copy_is_fsynced_on_its_own(tmp_path, monkeypatch):
    from tests.helpers.fsyncs import spy_fsyncs

    monkeypatch.setattr(FileSystemSync, "reports_errors", False)
    sync = StagingSync(tmp_path)
    paths = _files(tmp_path, "a", "b")
    synced = spy_fsyncs(monkeypatch)
    assert sync.defers is False and sync.make_durable(paths) == {} and sync.syncs == 0
    assert synced == [str(paths[0]), str(paths[1]), str(tmp_path)]


def test_the_copy_a_failed_sync_hit_is_named(tmp_path, monkeypatch):
    a, b = _files(tmp_path, "a", "b")
    _failing_syncfs(monkeypatch, 1)
    _failing_fsync(monkeypatch, {b})
    sync = StagingSync(tmp_path)
    failed = sync.make_durable([a, b])
    assert list(failed) == [b] and failed[b].errno == errno.EIO


def test_an_error_a_sync_reported_for_a_copy_outside_its_group_is_not_lost(tmp_path, monkeypatch):
    # The copy thread runs ahead: the syncfs of group 1 also writes back a copy of group 2, and reports that copy's
    # error, once. Group 1's copies are all fine; the error must still stop group 2's copy from counting, although
    # the next syncfs has nothing to report (found by a review: group 2 then counted a copy never on disk).
    first, later = _files(tmp_path, "first", "later")
    _failing_syncfs(monkeypatch, 1)
    _failing_fsync(monkeypatch, {later})
    sync = StagingSync(tmp_path)
    assert sync.make_durable([first]) == {}
    failed = sync.make_durable([later])
    assert list(failed) == [later]


def test_a_folder_that_cannot_be_synced_fails_every_copy_of_the_group(tmp_path, monkeypatch):
    a, b = _files(tmp_path, "a", "b")
    _failing_syncfs(monkeypatch, 1)
    _failing_fsync(monkeypatch, {tmp_path})
    assert set(StagingSync(tmp_path).make_durable([a, b])) == {a, b}


@pytest.mark.parametrize(("release", "reports"), [("5.4.0-42-generic", False), ("4.18.0-513.el8.x86_64", False),
                                                  ("5.15.0-91-generic", False), ("5.17.0", True),
                                                  ("6.1.0-18-amd64", True), ("unparsable", False)])
def test_only_a_kernel_whose_syncfs_reports_errors_lets_copies_skip_their_fsync(release, reports):
    # Before Linux 5.8 syncfs returns 0 whatever write-back failed, and before 5.17 it drops the file system's own
    # sync errors (a failed journal commit): copies there are fsynced one by one.
    assert _kernel_at_least(5, 17, release) is reports
