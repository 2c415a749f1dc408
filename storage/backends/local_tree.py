"""The local store's folders on disk, kept write-once (storage.backends.local's ground floor).

Where each evidence file lives (`objects/<key>`, its retention record `retention/<key>.json`), the store's one
lock (flock on the root folder), sealing (0444 files, 0555 folders, and FS_IMMUTABLE_FL when the store is
immutable), reopening one folder for one change and sealing it again at once, replacing a retention record whole
(retention grows only), and the audit of the whole tree. What LocalStore stores goes through here.

A change to one file is made durable with fsync (the file, then its folder). A batch of changes (many objects or
manifests at once) is made durable with `FileSystemSync` instead: one syncfs(2) per step for the whole batch, each
step durable before the next begins (a file's bytes before its name, a retention record before its object).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.backend import object_key
from storage.errors import BackendUnavailable, SealBroken
from storage.hardening import DIR_MODE, FILE_MODE, is_immutable, seal_problem, set_immutable

__all__ = ["EVIDENCE_AREAS", "STORE_MARKER", "WRITER_SOCKET", "FileSystemSync", "Retention", "RetentionChange",
           "SealedTree", "fsync_dir", "fsync_path", "read_marker", "remove_tree", "stat_mode"]

#: The folders that hold evidence and are sealed; `incoming` (the store's scratch) and `derived` are not.
EVIDENCE_AREAS = ("objects", "retention", "manifests", "records")
#: The store's own description of how it is protected (written once by `python -m storage.writer init`).
STORE_MARKER = "STORE.json"
#: The store writer's socket, in the store's root (separate-owner deployment).
WRITER_SOCKET = "writer.sock"
_OPEN_DIR_MODE = 0o755
_SCRATCH_MODE = 0o700

#: A retention record's content: (retain until, legal hold).
Retention = tuple[datetime, bool]
#: What a retention change decides from the current record (None: none yet): the new one, None to keep it.
RetentionChange = Callable[[Retention | None], Retention | None]


def _libc_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


_SYNCFS = _libc_syncfs()


def _kernel_at_least(major: int, minor: int, release: str | None = None) -> bool:
    """Whether this Linux kernel's release (e.g. "6.1.0-18-amd64") is at least *major*.*minor*."""
    release = release if release is not None else os.uname().release
    try:
        found = tuple(int(part) for part in release.split("-", 1)[0].split(".")[:2])
    except ValueError:
        return False
    return found >= (major, minor)


#: syncfs(2) reports write-back errors since Linux 5.8, and the file system's own sync step's (a failed journal
#: commit) since 5.17; before, it may return 0 whatever happened.
_SYNCFS_REPORTS = _SYNCFS is not None and _kernel_at_least(5, 17)


def fsync_path(path: Path, *, folder: bool = False) -> None:
    """fsync the file at *path* by a descriptor of its own (a *folder*: its new or renamed entries). Raises OSError."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a folder's new or renamed entries durable (after link, rename or unlink)."""
    fsync_path(path, folder=True)


class FileSystemSync:
    """syncfs(2) of the file system holding *path*, for a batch of writes made durable together.

    Open it before the batch writes anything: Linux reports a write-back error to syncfs only if it happened after
    the descriptor was opened. `sync` makes every file and folder written on that file system durable (OSError if
    the kernel reports a write-back error); where syncfs is missing (not Linux) it falls back to sync(2), which
    reports nothing. Use as a context manager (closes the descriptor)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)

    #: Whether `sync` reports write-back errors: syncfs(2) on Linux 5.17 or later (sync(2), and syncfs before, may
    #: report none).
    reports_errors = _SYNCFS_REPORTS

    def sync(self) -> None:
        if _SYNCFS is None:
            os.sync()
            return
        if _SYNCFS(self._fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs failed: {os.strerror(code)}", str(self.path))

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> FileSystemSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_marker(root: Path) -> dict[str, Any]:
    """The store's STORE.json ({} for a plain embedded store)."""
    try:
        data = json.loads((root / STORE_MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BackendUnavailable(f"local:{root}", f"{root / STORE_MARKER} is unreadable: {exc}") from exc
    return data if isinstance(data, dict) else {}


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


class SealedTree:
    """The folder tree of a local store under *root*: evidence files 0444, folders 0555, reopened only under the
    store's lock for one change; *immutable*: FS_IMMUTABLE_FL too."""

    def __init__(self, root: Path, *, immutable: bool) -> None:
        self.root = root
        self.immutable = immutable

    def create_areas(self) -> None:
        """Make the store's folders that are missing (the evidence areas sealed); nothing to do when all are there
        and the root is not writable."""
        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        missing = [a for a in (*EVIDENCE_AREAS, "incoming", "derived") if not (root / a).is_dir()]
        if not missing and not stat_mode(root) & 0o222:
            return
        with self.lock():
            with self.opened(root):
                for area in missing:
                    (root / area).mkdir(mode=_OPEN_DIR_MODE, exist_ok=True)
            if "incoming" in missing:
                os.chmod(root / "incoming", _SCRATCH_MODE)
            for area in EVIDENCE_AREAS:
                if area in missing:
                    self.seal_dir(root / area)

    # -- sealing ----------------------------------------------------------------------------------------------

    def seal_file(self, path: Path) -> None:
        os.chmod(path, FILE_MODE)
        if self.immutable:
            set_immutable(path, True)

    def seal_dir(self, path: Path) -> None:
        os.chmod(path, DIR_MODE)
        if self.immutable:
            set_immutable(path, True)

    def _unseal_dir(self, path: Path) -> None:
        if self.immutable and is_immutable(path):
            set_immutable(path, False)
        os.chmod(path, _OPEN_DIR_MODE)

    @contextmanager
    def lock(self, *, shared: bool = False) -> Iterator[None]:
        """One writer at a time in this store (threads and processes): the folders it reopens stay open only
        while it holds this. A reader takes it *shared* to see no change half made. The lock is flock(2) on the
        store's root folder itself: no file to create, and any account that can read the store can take it."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def opened(self, *folders: Path, fsync: bool = True) -> Iterator[None]:
        """Reopen *folders* (creating them and missing parents) for one change, then seal every one again.

        Callers hold `lock` (except at creation, when nothing else can know the store yet). Each folder is fsynced
        before it is sealed, unless *fsync* is false: the caller then syncs the file system (`FileSystemSync`)
        before it counts the change as made."""
        opened: list[Path] = []
        try:
            for folder in folders:
                chain = []
                d = folder
                while not d.is_dir():
                    chain.append(d)
                    d = d.parent
                if d not in opened:
                    self._unseal_dir(d)
                    opened.append(d)
                for new in reversed(chain):
                    new.mkdir(mode=_OPEN_DIR_MODE)
                    opened.append(new)
            yield
        finally:
            for folder in reversed(opened):
                if folder in (self.root / "incoming", self.root / "derived"):
                    continue
                if fsync:
                    fsync_dir(folder)
                self.seal_dir(folder)

    @contextmanager
    def changing(self, *folders: Path, fsync: bool = True) -> Iterator[None]:
        """Hold the store's lock and reopen *folders* for one change (*fsync*: as `opened`)."""
        with self.lock(), self.opened(*folders, fsync=fsync):
            yield

    # -- paths and retention records ---------------------------------------------------------------------------

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / object_key(sha256)

    def retention_path(self, sha256: str) -> Path:
        return self.root / "retention" / f"{object_key(sha256)}.json"

    def read_retention(self, sha256: str) -> Retention:
        """The object's retention record (FileNotFoundError when there is none; SealBroken when it is not one)."""
        path = self.retention_path(sha256)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return datetime.fromisoformat(data["retain_until"]), bool(data["legal_hold"])
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SealBroken(object_key(sha256), [f"{path} is not a retention record: {exc}"]) from exc

    def new_file(self, data: bytes, prefix: str, *, fsync: bool = True) -> Path:
        """Write *data* to a new file in the store's scratch folder, read-only; durable unless *fsync* is false (the
        caller then syncs the file system before the file gets a name)."""
        tmp = self.root / "incoming" / f"{prefix}.{uuid.uuid4().hex}"
        with tmp.open("xb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        return tmp

    def update_retention(self, sha256: str, change: RetentionChange) -> None:
        """Replace the retention record whole by a new sealed file, as *change* decides from the current one (None:
        no record yet); *change* returns None to keep it, or raises to refuse. Read and write happen under the
        store's lock, so two changes never undo each other."""
        self.update_retentions([(sha256, change)])

    def update_retentions(self, changes: Sequence[tuple[str, RetentionChange]]) -> None:
        """`update_retention` for many objects (a refusal raised by a change stops the rest).

        One record: decided and replaced under the store's lock, made durable by fsync. More: each decided under the
        lock and written to the scratch folder; their bytes synced once, the lock released; then, under the lock
        again, each put in place unless its record changed meanwhile (that one is changed again on its own), and
        the names synced once. The lock is never held across a file-system sync."""
        if len(changes) == 1:
            self._update_one(*changes[0])
            return
        again: list[tuple[str, RetentionChange]] = []
        decided: list[tuple[str, RetentionChange, Retention | None, Path]] = []
        try:
            with FileSystemSync(self.root) as fs:
                with self.lock():
                    for sha256, change in changes:
                        current = self._current(sha256)
                        if (tmp := self._new_record(current, change(current), fsync=False)) is not None:
                            decided.append((sha256, change, current, tmp))
                if not decided:
                    return
                fs.sync()  # every new record's bytes, before any of them has a name
                with self.lock(), self.opened(*{self.retention_path(d[0]).parent for d in decided}, fsync=False):
                    for sha256, change, current, tmp in decided:
                        if self._current(sha256) != current:
                            again.append((sha256, change))  # changed since it was decided: decide it again
                        else:
                            self._replace_record(sha256, tmp)
                fs.sync()
        finally:
            for *_decision, tmp in decided:
                tmp.unlink(missing_ok=True)
        for sha256, change in again:
            self._update_one(sha256, change)

    def _update_one(self, sha256: str, change: RetentionChange) -> None:
        """One retention change: read, decided and replaced under the store's lock; durable by fsync."""
        with self.lock():
            current = self._current(sha256)
            tmp = self._new_record(current, change(current), fsync=True)
            if tmp is None:
                return
            try:
                with self.opened(self.retention_path(sha256).parent):
                    self._replace_record(sha256, tmp)
            finally:
                tmp.unlink(missing_ok=True)

    def _current(self, sha256: str) -> Retention | None:
        try:
            return self.read_retention(sha256)
        except FileNotFoundError:
            return None

    def _replace_record(self, sha256: str, tmp: Path) -> None:
        """Put the sealed scratch file *tmp* in place as the object's retention record (its folder is open)."""
        path = self.retention_path(sha256)
        if self.immutable and path.exists():
            set_immutable(path, False)
        os.replace(tmp, path)
        self.seal_file(path)

    def _new_record(self, current: Retention | None, wanted: Retention | None, *, fsync: bool) -> Path | None:
        """A retention record saying *wanted*, written to the scratch folder (None: keep *current*)."""
        if wanted is None or wanted == current:
            return None
        retain_until, legal_hold = wanted
        data = json.dumps({"retain_until": retain_until.astimezone(UTC).isoformat(), "legal_hold": legal_hold,
                           "written_at": datetime.now(UTC).isoformat(timespec="seconds")}).encode()
        return self.new_file(data, "retention", fsync=fsync)

    def grow_retention(self, sha256: str, retain_until: datetime) -> None:
        """The record says at least *retain_until* (a new object's first record, or the same bytes stored again)."""
        self.grow_retentions([(sha256, retain_until)])

    def grow_retentions(self, wanted: Sequence[tuple[str, datetime]]) -> None:
        """`grow_retention` for many objects at once (`update_retentions`)."""
        self.update_retentions([(sha256, _at_least(retain_until)) for sha256, retain_until in wanted])

    def seal_problems(self, sha256: str) -> list[str]:
        """Problems with the seals of an object, its retention record and its manifests (empty when intact)."""
        problems = []
        paths = [self.object_path(sha256), self.retention_path(sha256)]
        folder = self.root / "manifests" / object_key(sha256)
        paths += sorted(folder.parent.glob(f"{sha256}.r*.json")) if folder.parent.is_dir() else []
        for path in paths:
            if (why := seal_problem(path, immutable=self.immutable)) is not None:
                problems.append(why)
        return problems

    # -- administration ----------------------------------------------------------------------------------------

    def seal_all(self) -> int:
        """Seal every file and folder of the evidence areas (a store made before sealing, or after a restore);
        returns how many paths were changed."""
        changed = 0
        with self.lock():
            for area in EVIDENCE_AREAS:
                for dirpath, _dirnames, filenames in os.walk(self.root / area, topdown=False):
                    for name in filenames:
                        path = Path(dirpath) / name
                        if seal_problem(path, immutable=self.immutable) is not None:
                            self.seal_file(path)
                            changed += 1
                    if seal_problem(Path(dirpath), folder=True, immutable=self.immutable) is not None:
                        self.seal_dir(Path(dirpath))
                        changed += 1
            if seal_problem(self.root, folder=True, immutable=self.immutable) is not None:
                self.seal_dir(self.root)
                changed += 1
        return changed

    def audit(self) -> list[str]:
        """Every path of the evidence areas that is not as the store leaves it: an unsealed file or folder, a
        stray name, an object without a retention record or a record without its object. Empty when intact."""
        with self.lock(shared=True):
            return self._audit()

    def _audit(self) -> list[str]:
        problems: list[str] = []
        for area in EVIDENCE_AREAS:
            base = self.root / area
            if (why := seal_problem(base, folder=True, immutable=self.immutable)) is not None:
                problems.append(why)
                continue
            for dirpath, dirnames, filenames in os.walk(base):
                for name in dirnames:
                    if (why := seal_problem(Path(dirpath) / name, folder=True, immutable=self.immutable)):
                        problems.append(why)
                for name in filenames:
                    path = Path(dirpath) / name
                    if (why := seal_problem(path, immutable=self.immutable)) is not None:
                        problems.append(why)
                    rel = path.relative_to(base).as_posix()
                    if area == "objects" and not (self.root / "retention" / f"{rel}.json").is_file():
                        problems.append(f"{path} has no retention record")
                    if area == "retention" and not (self.root / "objects" / rel.removesuffix(".json")).is_file():
                        problems.append(f"{path} is a retention record without its object")
                    if area == "objects" and (len(name) != 64 or not rel.startswith(f"sha256/{name[:2]}/")):
                        problems.append(f"{path} is not where the store puts an object")
        return problems


def _at_least(retain_until: datetime) -> RetentionChange:
    return lambda current: (retain_until, False) if current is None else (
        (retain_until, current[1]) if retain_until > current[0] else None)


def remove_tree(root: Path) -> None:
    """Remove a whole local store (tests and disposable demos only; needs CAP_LINUX_IMMUTABLE if it is immutable)."""
    for dirpath, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(dirpath) / name
            if not path.is_symlink() and is_immutable(path):
                try:
                    set_immutable(path, False)
                except OSError as exc:
                    if exc.errno != errno.EOPNOTSUPP:
                        raise
            if not path.is_symlink():
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
    if is_immutable(root):
        set_immutable(root, False)
    os.chmod(root, 0o755)
    shutil.rmtree(root)
