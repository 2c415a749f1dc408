"""What a killed write leaves in the local store's scratch folder (`incoming/`), and its removal.

Every new store file is written or linked into `incoming/` first and given its sealed name after; a process killed
in between leaves the scratch file behind. Two kinds, told apart without guessing:

* a **second name of a stored object**: `incoming/<sha256>.<hex>` that is the same inode as `objects/<key>`. The
  store links the scratch file to its name and removes the scratch name under the store's exclusive lock, so under
  that lock the pair can only be what a killed process left. Until it goes, the object has two hard links and
  every check of its seal (`head`, `verify`) reports it broken: it is removed at once, under the lock;
* a **half-written or never-named file**: removed once nothing has touched it (its inode change time: every write,
  link and chmod moves it) for *older_than*. A live write keeps its file young; a write stalled longer than that
  fails when it names its file, and is retried by its caller as any storage error.
"""
from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

from storage.backend import Leftover
from storage.backends.local_tree import SealedTree

__all__ = ["drop_second_names", "sweep_incoming"]

logger = logging.getLogger(__name__)

_SCRATCH_NAME = re.compile(r"(?P<sha256>[0-9a-f]{64})\.[0-9a-f]{32}")


def _second_name_of(tree: SealedTree, entry: os.DirEntry[str]) -> str | None:
    """The SHA-256 of the stored object *entry* is another name of, or None. Caller holds the store's lock."""
    match = _SCRATCH_NAME.fullmatch(entry.name)
    if match is None:
        return None
    try:
        same = os.path.samestat(entry.stat(follow_symlinks=False), os.stat(tree.object_path(match["sha256"])))
    except FileNotFoundError:
        return None
    return match["sha256"] if same else None


def _remove(path: Path, leftover: Leftover) -> Leftover | None:
    try:
        path.unlink()
    except FileNotFoundError:
        return None  # its writer finished (or another sweep took it) meanwhile
    logger.warning("Store scratch: removed %s (%s).", leftover.name, leftover.reason)
    return leftover


def sweep_incoming(tree: SealedTree, *, older_than: timedelta, now: datetime) -> list[Leftover]:
    """Remove every second name of a stored object from `incoming/`, and every other file there whose inode has not
    changed for *older_than* at *now*; under the store's exclusive lock (no name is being given meanwhile)."""
    removed: list[Leftover] = []
    folder = tree.root / "incoming"
    oldest = now.timestamp() - older_than.total_seconds()
    with tree.lock(), os.scandir(folder) as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            sha256 = _second_name_of(tree, entry)
            if sha256 is not None:
                reason = f"a second name of stored object {sha256}, left by a write killed after naming it"
            elif st.st_ctime <= oldest:
                age = timedelta(seconds=round(now.timestamp() - st.st_ctime))
                reason = f"left by a write that stopped {age} ago (older than {older_than})"
            else:
                continue
            gone = _remove(Path(entry.path), Leftover(f"incoming/{entry.name}", reason, st.st_size))
            removed += [gone] if gone is not None else []
    return removed


def drop_second_names(tree: SealedTree, sha256: str) -> list[Leftover]:
    """Remove the scratch names in `incoming/` that are the stored object *sha256* itself (what a killed store left;
    see the module): the object then has the one name it should. Takes the store's exclusive lock."""
    removed: list[Leftover] = []
    with tree.lock(), os.scandir(tree.root / "incoming") as entries:
        for entry in entries:
            if entry.name.startswith(sha256) and _second_name_of(tree, entry) == sha256:
                reason = f"a second name of stored object {sha256}, left by a write killed after naming it"
                gone = _remove(Path(entry.path), Leftover(f"incoming/{entry.name}", reason,
                                                          entry.stat(follow_symlinks=False).st_size))
                removed += [gone] if gone is not None else []
    return removed
