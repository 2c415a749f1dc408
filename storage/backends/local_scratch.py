"""What a killed write leaves in the local store's scratch folder (`incoming/`), and its removal.

Every new store file is written or linked into `incoming/` first and given its sealed name after; a process killed
in between leaves the scratch file behind. Two kinds, told apart without guessing:

* a **second name**: a scratch file with more than one hard link. The store links a scratch file to its name (or a
  staged copy into the scratch folder) and removes the scratch name under the store's exclusive lock, so under
  that lock a scratch name with another name elsewhere is always a killed write's leftover (one whose writer lost
  it after the lock was released unlinks it with `missing_ok`). Removing it never removes bytes: the other name
  keeps them. Until it goes, the stored file has two hard links and every check of its seal (`head`, `verify`)
  reports it broken, so it goes at once, under the lock; when it is the second name of an object, the object and
  its folders are sealed again too (the kill came before the store sealed them);
* a **half-written or never-named file**: removed once nothing has touched it (its inode change time: every write,
  link and chmod moves it) for *older_than*. A live write keeps its file young; a write stalled longer than that
  fails when it names its file, and is retried by its caller as any storage error.

Anything that is not a regular file is left alone and logged. One entry that cannot be removed never stops the
rest.
"""
from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from storage.backend import Leftover
from storage.backends.local_tree import SealedTree

__all__ = ["drop_second_names", "sweep_incoming"]

logger = logging.getLogger(__name__)

_OBJECT_SCRATCH = re.compile(r"(?P<sha256>[0-9a-f]{64})\.[0-9a-f]{32}")


def _regular_files(tree: SealedTree) -> Iterator[tuple[os.DirEntry[str], os.stat_result]]:
    """The regular files in `incoming/` with their lstat (anything else is logged and skipped)."""
    with os.scandir(tree.root / "incoming") as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield entry, st
            else:
                logger.warning("Store scratch: %s is not a regular file; left alone.", entry.path)


def _remove(path: Path, leftover: Leftover) -> Leftover | None:
    try:
        path.unlink()
    except FileNotFoundError:
        return None  # its writer finished (or another sweep took it) meanwhile
    except OSError as exc:
        logger.warning("Store scratch: cannot remove %s (%s): %s", leftover.name, leftover.reason, exc)
        return None
    logger.warning("Store scratch: removed %s (%s).", leftover.name, leftover.reason)
    return leftover


def _object_named(tree: SealedTree, entry: os.DirEntry[str], st: os.stat_result) -> Path | None:
    """The stored object *entry* is another name of (its name says which), or None."""
    match = _OBJECT_SCRATCH.fullmatch(entry.name)
    if match is None:
        return None
    path = tree.object_path(match["sha256"])
    try:
        return path if os.path.samestat(st, os.stat(path)) else None
    except FileNotFoundError:
        return None


def _reseal(tree: SealedTree, path: Path) -> None:
    """Seal an object a killed write named but did not seal, and the folders it had opened for it. Caller holds
    the lock."""
    folder = path.parent
    while folder != tree.root:
        if stat.S_IMODE(os.lstat(folder).st_mode) & 0o222:
            tree.seal_dir(folder)
        folder = folder.parent
    tree.seal_file(path)


def _second_names(tree: SealedTree) -> list[Leftover]:
    """Remove every scratch file that has another name (see the module). Caller holds the store's exclusive lock."""
    removed: list[Leftover] = []
    for entry, st in _regular_files(tree):
        if st.st_nlink < 2:
            continue
        obj = _object_named(tree, entry, st)
        what = f"stored object {obj.name}" if obj is not None else "a file stored or staged under another name"
        gone = _remove(Path(entry.path), Leftover(f"incoming/{entry.name}", f"a second name of {what}, left by a "
                                                                            "write killed before removing it",
                                                  st.st_size))
        if gone is None:
            continue
        removed.append(gone)
        if obj is not None:
            try:
                _reseal(tree, obj)
            except OSError as exc:
                logger.warning("Store scratch: cannot seal %s again: %s", obj, exc)
    return removed


def sweep_incoming(tree: SealedTree, *, older_than: timedelta, now: datetime) -> list[Leftover]:
    """Remove every second name from `incoming/`, and every other file there whose inode has not changed for
    *older_than* at *now*; under the store's exclusive lock (no name is being given meanwhile)."""
    oldest = now.timestamp() - older_than.total_seconds()
    with tree.lock():
        removed = _second_names(tree)
        for entry, st in _regular_files(tree):
            if st.st_ctime > oldest:
                continue
            age = timedelta(seconds=round(now.timestamp() - st.st_ctime))
            gone = _remove(Path(entry.path), Leftover(f"incoming/{entry.name}", f"left by a write that stopped "
                                                                                f"{age} ago (older than {older_than})",
                                                      st.st_size))
            removed += [gone] if gone is not None else []
    return removed


def drop_second_names(tree: SealedTree) -> list[Leftover]:
    """Remove the second names killed writes left in `incoming/` (see the module), under the store's exclusive lock:
    the files they name then have the one name they should."""
    with tree.lock():
        return _second_names(tree)
