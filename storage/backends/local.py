"""Local-filesystem WORM store: the embedded default.

Objects are content-addressed files; each has a retention record beside it (`retention/<key>.json`); manifests
and archive records are write-once files. What the store does to keep them (README, "The local store"):

* every evidence file (object, manifest, record, retention record) is written once under a new name and made
  read-only (0444) before it becomes visible; a name is never reused (hard link: fails if the name exists);
  a retention record is replaced whole by a new read-only file, and only ever with a later date or a hold
  change (retention grows only);
* every folder of the evidence areas is sealed read-only (0555); the store reopens one folder (0755) only
  for the link, rename or unlink it makes there, under an exclusive lock, and seals it again at once;
* with `immutable` (the store's `STORE.json` says so, set by `python -m storage.writer init --immutable`) the
  store also sets FS_IMMUTABLE_FL (`chattr +i`) on every evidence file and sealed folder, and refuses to run
  without CAP_LINUX_IMMUTABLE: then nobody without that capability, the owning account and root included, can
  write, chmod, rename or delete them;
* in the separate-owner deployment (`STORE.json` says `writer`), the service account does not own the store
  and sends every write through one narrow privileged path, the store writer's socket (`storage.writer`),
  which only creates new objects, lengthens retention, sets holds, and deletes what retention allows;
* `head` names a file that is gone (ObjectMissing, SealBroken for a retention record) and lists files found
  unsealed in `StoredObject.seal_problems`; `verify` refuses an object whose bytes changed (HashMismatch) or whose
  object file, retention record or manifests are unsealed (SealBroken naming each file); `audit` lists every
  unsealed, stray or orphaned path of the whole store.

Anyone who can act as the owning account without the immutable flag, root, a holder of CAP_LINUX_IMMUTABLE, or
whoever can write the disk below the filesystem can still alter the files; re-hashing and signed manifests detect
what they change. Production archives use S3 Object Lock in compliance mode.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from storage.backend import StoredObject, derived_key, manifest_key, object_key, record_key
from storage.errors import (
    BackendUnavailable,
    HashMismatch,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    SealBroken,
)
from storage.hardening import DIR_MODE, FILE_MODE, has_capability, is_immutable, seal_problem, set_immutable
from storage.hashing import CHUNK_BYTES, hash_stream
from storage.retention import is_disposable, require_future, validate_extension

__all__ = ["EVIDENCE_AREAS", "STORE_MARKER", "WRITER_SOCKET", "LocalStore", "fsync_dir", "remove_tree"]

logger = logging.getLogger(__name__)

#: The folders that hold evidence and are sealed; `incoming` (the store's scratch) and `derived` are not.
EVIDENCE_AREAS = ("objects", "retention", "manifests", "records")
#: The store's own description of how it is protected (written once by `python -m storage.writer init`).
STORE_MARKER = "STORE.json"
#: The store writer's socket, in the store's root (separate-owner deployment).
WRITER_SOCKET = "writer.sock"
_OPEN_DIR_MODE = 0o755
_SCRATCH_MODE = 0o700


def fsync_dir(path: Path) -> None:
    """Make a folder's new or renamed entries durable (after link, rename or unlink)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_at(path: Path, start: int) -> BinaryIO:
    fh = path.open("rb")
    if start:
        fh.seek(start)
    return fh


def read_marker(root: Path) -> dict[str, Any]:
    """The store's STORE.json ({} for a plain embedded store)."""
    try:
        data = json.loads((root / STORE_MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BackendUnavailable(f"local:{root}", f"{root / STORE_MARKER} is unreadable: {exc}") from exc
    return data if isinstance(data, dict) else {}


class LocalStore:
    """WORM store in a directory tree: objects/<key> (0444), retention/<key>.json (0444), folders 0555.

    *immutable*: set FS_IMMUTABLE_FL too (None: as the store's STORE.json says; off for a plain store).
    *writer*: send writes to the store writer's socket (None: when STORE.json names a writer and this process
    does not own the store's root).
    """

    name = "local"

    def __init__(self, root: Path, *, immutable: bool | None = None, writer: bool | None = None) -> None:
        self.root = root
        marker = read_marker(root) if root.is_dir() else {}
        self.immutable = bool(marker.get("immutable", False)) if immutable is None else immutable
        if writer is None:
            writer = bool(marker.get("writer")) and root.stat().st_uid != os.geteuid()
        self._client: Any = None
        if writer:
            from storage.writer import WriterClient

            self._client = WriterClient(root / WRITER_SOCKET)
            return
        if self.immutable and not has_capability():
            raise BackendUnavailable(f"local:{root}", "the store is immutable (STORE.json) but this process lacks "
                                                      "CAP_LINUX_IMMUTABLE; run the store writer with it")
        try:
            root.mkdir(parents=True, exist_ok=True)
            missing = [a for a in (*EVIDENCE_AREAS, "incoming", "derived") if not (root / a).is_dir()]
            if missing or stat_mode(root) & 0o222:
                with self._lock():
                    with self._opened(root):
                        for area in missing:
                            (root / area).mkdir(mode=_OPEN_DIR_MODE, exist_ok=True)
                    if "incoming" in missing:
                        os.chmod(root / "incoming", _SCRATCH_MODE)
                    for area in EVIDENCE_AREAS:
                        if area in missing:
                            self._seal_dir(root / area)
        except OSError as exc:
            raise BackendUnavailable(f"local:{root}", str(exc)) from exc

    # -- sealing ----------------------------------------------------------------------------------------------

    def _seal_file(self, path: Path) -> None:
        os.chmod(path, FILE_MODE)
        if self.immutable:
            set_immutable(path, True)

    def _seal_dir(self, path: Path) -> None:
        os.chmod(path, DIR_MODE)
        if self.immutable:
            set_immutable(path, True)

    def _unseal_dir(self, path: Path) -> None:
        if self.immutable and is_immutable(path):
            set_immutable(path, False)
        os.chmod(path, _OPEN_DIR_MODE)

    @contextmanager
    def _lock(self, *, shared: bool = False) -> Iterator[None]:
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
    def _opened(self, *folders: Path) -> Iterator[None]:
        """Reopen *folders* (creating them and missing parents) for one change, then seal every one again.

        Callers hold `_lock` (except at creation, when nothing else can know the store yet)."""
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
                fsync_dir(folder)
                self._seal_dir(folder)

    @contextmanager
    def _changing(self, *folders: Path) -> Iterator[None]:
        with self._lock(), self._opened(*folders):
            yield

    # -- paths and retention records ---------------------------------------------------------------------------

    def _object_path(self, sha256: str) -> Path:
        return self.root / "objects" / object_key(sha256)

    def _lock_path(self, sha256: str) -> Path:
        return self.root / "retention" / f"{object_key(sha256)}.json"

    def _read_lock(self, sha256: str) -> tuple[datetime, bool]:
        path = self._lock_path(sha256)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return datetime.fromisoformat(data["retain_until"]), bool(data["legal_hold"])
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SealBroken(object_key(sha256), [f"{path} is not a retention record: {exc}"]) from exc

    def _new_file(self, data: bytes, prefix: str) -> Path:
        """Write *data* to a new file in the store's scratch folder, durable and read-only."""
        tmp = self.root / "incoming" / f"{prefix}.{uuid.uuid4().hex}"
        with tmp.open("xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        return tmp

    def _update_lock(self, sha256: str,
                     change: Callable[[tuple[datetime, bool] | None], tuple[datetime, bool] | None]) -> None:
        """Replace the retention record whole by a new sealed file, as *change* decides from the current one (None:
        no record yet); *change* returns None to keep it, or raises to refuse. Read and write happen under the
        store's lock, so two changes never undo each other."""
        path = self._lock_path(sha256)
        with self._changing(path.parent):
            try:
                current: tuple[datetime, bool] | None = self._read_lock(sha256)
            except FileNotFoundError:
                current = None
            wanted = change(current)
            if wanted is None or wanted == current:
                return
            retain_until, legal_hold = wanted
            data = json.dumps({"retain_until": retain_until.astimezone(UTC).isoformat(), "legal_hold": legal_hold,
                               "written_at": datetime.now(UTC).isoformat(timespec="seconds")}).encode()
            tmp = self._new_file(data, "retention")
            try:
                if self.immutable and path.exists():
                    set_immutable(path, False)
                os.replace(tmp, path)
                self._seal_file(path)
            finally:
                tmp.unlink(missing_ok=True)

    def _grow_lock(self, sha256: str, retain_until: datetime) -> None:
        """The record says at least *retain_until* (a new object's first record, or the same bytes stored again)."""
        self._update_lock(sha256, lambda current: (retain_until, False) if current is None else (
            (retain_until, current[1]) if retain_until > current[0] else None))

    def _seals(self, sha256: str) -> list[str]:
        """Problems with the seals of an object, its retention record and its manifests (empty when intact)."""
        problems = []
        paths = [self._object_path(sha256), self._lock_path(sha256)]
        folder = self.root / "manifests" / object_key(sha256)
        paths += sorted(folder.parent.glob(f"{sha256}.r*.json")) if folder.parent.is_dir() else []
        for path in paths:
            if (why := seal_problem(path, immutable=self.immutable)) is not None:
                problems.append(why)
        return problems

    # -- the evidence interface ----------------------------------------------------------------------------

    def put_file(self, path: Path, *, sha256: str, size_bytes: int, retain_until: datetime,
                 consume: bool = False) -> StoredObject:
        require_future(object_key(sha256), retain_until, datetime.now(UTC))
        if self._client is not None:
            return self._put_through_writer(path, sha256=sha256, size_bytes=size_bytes, retain_until=retain_until,
                                            consume=consume)
        if self._object_path(sha256).exists():
            # Content-addressed: the same key holds the same bytes. Keep the longer retention.
            self._grow_lock(sha256, retain_until)
            if consume:
                path.unlink(missing_ok=True)
            return self.head(sha256)
        try:
            self._add_object(sha256, retain_until, self._scratch_from(path, sha256=sha256, consume=consume))
            if consume:  # only now: at every moment the bytes have a name, the source's or the store's
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise BackendUnavailable(f"local:{self.root}", f"cannot store {path}: {exc}") from exc
        return self.head(sha256)

    def put_fd(self, fd: int, *, sha256: str, retain_until: datetime) -> StoredObject:
        """Store the bytes readable from *fd* (the store writer's way in: it never opens a path it is given).

        put_file's twin without the writer hop, the link shortcut or the BackendUnavailable wrapping (the writer
        reports errors itself), and its HashMismatch names the descriptor, not a path."""
        require_future(object_key(sha256), retain_until, datetime.now(UTC))
        if self._object_path(sha256).exists():
            self._grow_lock(sha256, retain_until)
        else:
            with os.fdopen(os.dup(fd), "rb") as source:
                tmp = self._copy_stream(source, sha256=sha256, what=f"the file sent on fd {fd}")
            self._add_object(sha256, retain_until, tmp)
        return self.head(sha256)

    def _put_through_writer(self, path: Path, *, sha256: str, size_bytes: int, retain_until: datetime,
                            consume: bool) -> StoredObject:
        with path.open("rb") as fh:
            stored: StoredObject = self._client.put_file(fh.fileno(), sha256=sha256, size_bytes=size_bytes,
                                                         retain_until=retain_until)
        if consume:
            path.unlink(missing_ok=True)
        return stored

    def _scratch_from(self, path: Path, *, sha256: str, consume: bool) -> Path:
        """A sealed file in the store's scratch folder holding *path*'s bytes, checked against *sha256*."""
        if consume and path.stat().st_dev == (self.root / "incoming").stat().st_dev:
            # The caller hashed these bytes while writing them: a link adds no read pass.
            tmp = self.root / "incoming" / f"{sha256}.{uuid.uuid4().hex}"
            os.chmod(path, FILE_MODE)
            os.link(path, tmp)
            return tmp
        with path.open("rb") as src:
            return self._copy_stream(src, sha256=sha256, what=str(path))

    def _add_object(self, sha256: str, retain_until: datetime, tmp: Path) -> None:
        """Make the sealed scratch file *tmp* the object *sha256*: its retention record first (an object is never
        seen without one), then its name."""
        self._grow_lock(sha256, retain_until)
        self._link_new(tmp, self._object_path(sha256), sha256)

    def _link_new(self, tmp: Path, dest: Path, sha256: str) -> None:
        """Give the sealed scratch file *tmp* its name in the store (never replacing one), then seal it."""
        try:
            with self._changing(dest.parent):
                try:
                    os.link(tmp, dest)
                except FileExistsError:
                    logger.info("Object %r appeared concurrently; keeping the first copy.", sha256)
                    return
                finally:
                    tmp.unlink()
                self._seal_file(dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _copy_stream(self, src: BinaryIO, *, sha256: str, what: str) -> Path:
        tmp = self.root / "incoming" / f"{sha256}.{uuid.uuid4().hex}"
        with tmp.open("xb") as dst:
            found, _size = hash_stream(src, copy_to=dst)
            dst.flush()
            os.fsync(dst.fileno())
        if found != sha256:
            tmp.unlink()
            raise HashMismatch(what, algorithm="sha256", expected=sha256, found=found)
        os.chmod(tmp, FILE_MODE)
        return tmp

    def head(self, sha256: str) -> StoredObject:
        """Describe a stored object. ObjectMissing names the file that is gone, SealBroken a retention record that
        is gone or unreadable; a file found unsealed (writable, hard-linked, no longer immutable) is listed in
        `seal_problems` (and `verify` refuses it)."""
        path = self._object_path(sha256)
        record = self._lock_path(sha256)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            detail = f"{path} is missing; its retention record {record} is still there" if record.exists() else ""
            raise ObjectMissing(object_key(sha256), detail) from None
        try:
            retain_until, hold = self._read_lock(sha256)
        except FileNotFoundError:
            raise SealBroken(object_key(sha256), [f"{record} (the retention record of {path}) is missing"]) from None
        problems = tuple(why for p in (path, record) if (why := seal_problem(p, immutable=self.immutable)))
        return StoredObject(key=object_key(sha256), sha256=sha256, size_bytes=size, retain_until=retain_until,
                            legal_hold=hold, location=path.as_uri(), seal_problems=problems)

    def exists(self, sha256: str) -> bool:
        return self._object_path(sha256).exists()

    def open(self, sha256: str, *, start: int = 0) -> BinaryIO:
        try:
            return _open_at(self._object_path(sha256), start)
        except FileNotFoundError:
            raise ObjectMissing(object_key(sha256)) from None

    def extend_retention(self, sha256: str, retain_until: datetime) -> StoredObject:
        if self._client is not None:
            result: StoredObject = self._client.extend_retention(sha256, retain_until)
            return result
        self.head(sha256)
        require_future(object_key(sha256), retain_until, datetime.now(UTC))

        def extend(current: tuple[datetime, bool] | None) -> tuple[datetime, bool]:
            if current is None:
                raise ObjectMissing(object_key(sha256), f"{self._lock_path(sha256)} is missing")
            return validate_extension(object_key(sha256), current[0], retain_until), current[1]

        self._update_lock(sha256, extend)
        return self.head(sha256)

    def set_legal_hold(self, sha256: str, on: bool) -> StoredObject:
        if self._client is not None:
            result: StoredObject = self._client.set_legal_hold(sha256, on)
            return result
        self.head(sha256)

        def hold(current: tuple[datetime, bool] | None) -> tuple[datetime, bool]:
            if current is None:
                raise ObjectMissing(object_key(sha256), f"{self._lock_path(sha256)} is missing")
            return current[0], on

        self._update_lock(sha256, hold)
        return self.head(sha256)

    def delete(self, sha256: str, *, now: datetime) -> None:
        """Delete an object whose retention has passed (no hold). Through the store writer, the writer's own
        clock decides, not *now*."""
        if self._client is not None:
            self._client.delete(sha256)
            return
        obj = self.head(sha256)
        if not is_disposable(obj.retain_until, obj.legal_hold, now):
            raise ObjectLocked(obj.key, retain_until=obj.retain_until, legal_hold=obj.legal_hold,
                               action="delete")
        path, record = self._object_path(sha256), self._lock_path(sha256)
        with self._changing(path.parent, record.parent):
            for p in (path, record):
                if self.immutable:
                    set_immutable(p, False)
                p.unlink()

    def verify(self, sha256: str) -> str:
        """Re-hash the stored bytes (HashMismatch if they changed), then check the seals of the object, its
        retention record and its manifests (SealBroken naming each file found unsealed)."""
        with self.open(sha256) as fh:
            found = hash_stream(fh).sha256
        if found != sha256:
            raise HashMismatch(object_key(sha256), algorithm="sha256", expected=sha256, found=found)
        if self._seals(sha256):
            with self._lock(shared=True):
                if problems := self._seals(sha256):
                    raise SealBroken(object_key(sha256), problems)
        return found

    def _put_once(self, key: str, data: bytes, *, retain_until: datetime) -> StoredObject:
        """Write *data* under *key* once (sealed); the same bytes again are accepted, other bytes refused."""
        require_future(key, retain_until, datetime.now(UTC))
        path = self.root / key
        if path.exists():
            if path.read_bytes() != data:
                raise ObjectExists(key)
        else:
            tmp = self._new_file(data, "once")
            try:
                with self._changing(path.parent):
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        if path.read_bytes() != data:
                            raise ObjectExists(key) from None
                    else:
                        tmp.unlink()
                        self._seal_file(path)
            finally:
                tmp.unlink(missing_ok=True)
        return StoredObject(key=key, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                            retain_until=retain_until, legal_hold=False, location=path.as_uri())

    def _read_once(self, key: str) -> bytes:
        path = self.root / key
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key, f"{path} is missing") from None
        return data  # its seal is checked by `verify` (manifests) and `audit`; its content by its signature

    def put_manifest(self, sha256: str, revision: int, data: bytes, *, retain_until: datetime) -> StoredObject:
        if self._client is not None:
            result: StoredObject = self._client.put_manifest(sha256, revision, data, retain_until)
            return result
        return self._put_once(manifest_key(sha256, revision), data, retain_until=retain_until)

    def get_manifest(self, sha256: str, revision: int) -> bytes:
        return self._read_once(manifest_key(sha256, revision))

    def put_record(self, name: str, data: bytes, *, retain_until: datetime) -> StoredObject:
        if self._client is not None:
            record_key(name)  # refuse a bad name here too
            result: StoredObject = self._client.put_record(name, data, retain_until)
            return result
        return self._put_once(record_key(name), data, retain_until=retain_until)

    def get_record(self, name: str) -> bytes:
        return self._read_once(record_key(name))

    def list_records(self, prefix: str) -> list[str]:
        base = self.root / "records"
        if not base.is_dir():
            return []
        names = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(n for n in names if n.startswith(prefix))

    def put_derived(self, sha256: str, name: str, path: Path, *, content_type: str) -> str:
        with path.open("rb") as fh:
            if self._client is not None:
                key: str = self._client.put_derived(fh.fileno(), sha256, name)
                return key
            return self.put_derived_fd(fh.fileno(), sha256, name)

    def put_derived_fd(self, fd: int, sha256: str, name: str) -> str:
        """put_derived from an open file (the store writer's way in). Derived files are not evidence: a newer
        rendition replaces the old."""
        key = derived_key(sha256, name)
        dest = self.root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "incoming" / f"derived.{uuid.uuid4().hex}"
        with os.fdopen(os.dup(fd), "rb") as src, tmp.open("xb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_BYTES)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return key

    def open_derived(self, sha256: str, name: str, *, start: int = 0) -> BinaryIO:
        key = derived_key(sha256, name)
        try:
            return _open_at(self.root / key, start)
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def delete_derived(self, sha256: str) -> int:
        if self._client is not None:
            removed: int = self._client.delete_derived(sha256)
            return removed
        folder = self.root / "derived" / object_key(sha256)
        if not folder.is_dir():
            return 0
        removed = 0
        for path in folder.iterdir():
            path.unlink()
            removed += 1
        folder.rmdir()
        return removed

    # -- administration ----------------------------------------------------------------------------------------

    def seal_all(self) -> int:
        """Seal every file and folder of the evidence areas (a store made before sealing, or after a restore);
        returns how many paths were changed."""
        changed = 0
        with self._lock():
            for area in EVIDENCE_AREAS:
                for dirpath, _dirnames, filenames in os.walk(self.root / area, topdown=False):
                    for name in filenames:
                        path = Path(dirpath) / name
                        if seal_problem(path, immutable=self.immutable) is not None:
                            self._seal_file(path)
                            changed += 1
                    if seal_problem(Path(dirpath), folder=True, immutable=self.immutable) is not None:
                        self._seal_dir(Path(dirpath))
                        changed += 1
            if seal_problem(self.root, folder=True, immutable=self.immutable) is not None:
                self._seal_dir(self.root)
                changed += 1
        return changed

    def audit(self) -> list[str]:
        """Every path of the evidence areas that is not as the store leaves it: an unsealed file or folder, a
        stray name, an object without a retention record or a record without its object. Empty when intact."""
        with self._lock(shared=True):
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


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777


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
