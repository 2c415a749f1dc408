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

The folders themselves (paths, the store's lock, sealing, retention records, the audit) are
storage.backends.local_tree's; this module is the store's interface on top of them.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from storage.backend import Leftover, StoredObject, derived_key, manifest_key, object_key, record_key
from storage.backends.local_scratch import drop_second_names, sweep_incoming
from storage.backends.local_tree import WRITER_SOCKET, FileSystemSync, Retention, SealedTree, read_marker
from storage.errors import (
    BackendUnavailable,
    HashMismatch,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    SealBroken,
)
from storage.hardening import FILE_MODE, has_capability, seal_problem, set_immutable
from storage.hashing import CHUNK_BYTES, hash_stream
from storage.retention import is_disposable, require_future, validate_extension

__all__ = ["LocalStore"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _NewObject:
    """A file of a `put_files` batch whose bytes the store does not hold yet."""

    index: int  # its place in the batch
    sha256: str
    retain_until: datetime
    source: Path
    scratch: Path | None  # its sealed, checked copy in the scratch folder; None: the source is linked, when named


def _outcome(put: Callable[[], StoredObject]) -> StoredObject | Exception:
    """What *put* returned, or what it raised (one item of a batch: its failure never stops the rest)."""
    try:
        return put()
    except Exception as exc:  # noqa: BLE001 - handed back as this item's outcome
        return exc


def _stored_once(root: Path, key: str, data: bytes, retain_until: datetime) -> StoredObject:
    """What `_put_once` returns for *data* written under *key*."""
    return StoredObject(key=key, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                        retain_until=retain_until, legal_hold=False, location=(root / key).as_uri())


def _open_at(path: Path, start: int) -> BinaryIO:
    fh = path.open("rb")
    if start:
        fh.seek(start)
    return fh


class LocalStore:
    """WORM store in a directory tree: objects/<key> (0444), retention/<key>.json (0444), folders 0555.

    *immutable*: set FS_IMMUTABLE_FL too (None: as the store's STORE.json says; off for a plain store).
    *writer*: send writes to the store writer's socket (None: when STORE.json names a writer and this process
    does not own the store's root). The folders themselves (paths, lock, seals, retention records) are `tree`'s.
    """

    name = "local"

    def __init__(self, root: Path, *, immutable: bool | None = None, writer: bool | None = None) -> None:
        self.root = root
        marker = read_marker(root) if root.is_dir() else {}
        self.immutable = bool(marker.get("immutable", False)) if immutable is None else immutable
        self.tree = SealedTree(root, immutable=self.immutable)
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
            self.tree.create_areas()
        except OSError as exc:
            raise BackendUnavailable(f"local:{root}", str(exc)) from exc

    # -- the evidence interface ----------------------------------------------------------------------------

    def put_file(self, path: Path, *, sha256: str, size_bytes: int, retain_until: datetime,
                 consume: bool = False) -> StoredObject:
        require_future(object_key(sha256), retain_until, datetime.now(UTC))
        if self._client is not None:
            return self._put_through_writer(path, sha256=sha256, size_bytes=size_bytes, retain_until=retain_until,
                                            consume=consume)
        if self.tree.object_path(sha256).exists():
            # Content-addressed: the same key holds the same bytes. Keep the longer retention.
            self.tree.grow_retention(sha256, retain_until)
            if consume:
                path.unlink(missing_ok=True)
            return self.head(sha256)
        _require_size(path, sha256, size_bytes)
        try:
            if self._can_link(path, consume=consume):
                self._add_object(sha256, retain_until, source=path)
            else:
                self._add_object(sha256, retain_until, scratch=self._scratch_copy(path, sha256=sha256))
            if consume:  # only now: at every moment the bytes have a name, the source's or the store's
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise BackendUnavailable(f"local:{self.root}", f"cannot store {path}: {exc}") from exc
        return self.head(sha256)

    def put_files(self, files: Sequence[tuple[Path, str, int, datetime]], *,
                  consume: bool = False) -> list[StoredObject | Exception]:
        """`put_file` for many files, each given as (path, sha256, size_bytes, retain_until): their outcomes in order,
        each the StoredObject or the error put_file raises for it (one file refused never stops the rest).

        The new objects are made durable together: one store lock, and file-system syncs (`FileSystemSync`) in place
        of each file's and folder's fsyncs: every retention record first, then every object's name; a consumed
        source goes only once both are durable. A consumed source on the store's file system is linked into the
        store's scratch folder only just before it gets its name there, as put_file does (a process killed meanwhile
        leaves no second name behind). Bytes already stored, a file given twice, a single file, the store writer's
        path and a subclass's own put_file go through `put_file` one by one."""
        if self._client is not None or len(files) < 2 or type(self).put_file is not LocalStore.put_file:
            return [_outcome(self._put_one(*file, consume=consume)) for file in files]
        outcomes: list[StoredObject | Exception | None] = [None] * len(files)
        later: list[int] = []
        new: list[_NewObject] = []
        now = datetime.now(UTC)
        for i, (path, sha256, size_bytes, retain_until) in enumerate(files):
            if self.tree.object_path(sha256).exists() or any(sha256 == n.sha256 for n in new):
                later.append(i)
                continue
            try:
                require_future(object_key(sha256), retain_until, now)
                _require_size(path, sha256, size_bytes)
                scratch = None if self._can_link(path, consume=consume) else self._scratch_copy(path, sha256=sha256)
                new.append(_NewObject(i, sha256, retain_until, path, scratch))
            except OSError as exc:
                outcomes[i] = BackendUnavailable(f"local:{self.root}", f"cannot store {path}: {exc}")
            except Exception as exc:  # noqa: BLE001 - this file's outcome; the rest go on
                outcomes[i] = exc
        self._add_objects(new, outcomes, consume=consume)
        for i in later:
            outcomes[i] = _outcome(self._put_one(*files[i], consume=consume))
        return [outcome if outcome is not None else RuntimeError("no outcome") for outcome in outcomes]

    def _put_one(self, path: Path, sha256: str, size_bytes: int, retain_until: datetime, *,
                 consume: bool) -> Callable[[], StoredObject]:
        return partial(self.put_file, path, sha256=sha256, size_bytes=size_bytes, retain_until=retain_until,
                       consume=consume)

    def _add_objects(self, new: list[_NewObject], outcomes: list[StoredObject | Exception | None], *,
                     consume: bool) -> None:
        """`_add_object` for many (synced per step, not per file); each outcome set in place."""
        if not new:
            return
        try:
            self.tree.grow_retentions([(obj.sha256, obj.retain_until) for obj in new])
            with FileSystemSync(self.root) as fs:
                self._link_all(new, outcomes)
                fs.sync()
        except OSError as exc:
            for obj in new:
                if obj.scratch is not None:
                    obj.scratch.unlink(missing_ok=True)
                outcomes[obj.index] = BackendUnavailable(f"local:{self.root}", f"cannot store {obj.source}: {exc}")
            return
        for obj in new:
            if outcomes[obj.index] is not None:
                continue
            if consume:  # only now: at every moment the bytes have a name, the source's or the store's
                obj.source.unlink(missing_ok=True)
            outcomes[obj.index] = _outcome(partial(self.head, obj.sha256))

    def _link_all(self, new: list[_NewObject], outcomes: list[StoredObject | Exception | None]) -> None:
        """`_link_new` for many, under one lock and without a sync (the caller syncs once): each scratch file (a
        source linked now, when it may be) gets its name, then goes at once; an error is that object's outcome."""
        with self.tree.changing(*{self.tree.object_path(obj.sha256).parent for obj in new}, fsync=False):
            for obj in new:
                dest = self.tree.object_path(obj.sha256)
                try:
                    tmp = obj.scratch if obj.scratch is not None else self._scratch_link(obj.source, obj.sha256)
                    try:
                        os.link(tmp, dest)
                    except FileExistsError:
                        logger.info("Object %r appeared concurrently; keeping the first copy.", obj.sha256)
                        continue
                    finally:
                        tmp.unlink()
                    self.tree.seal_file(dest)
                except OSError as exc:
                    outcomes[obj.index] = BackendUnavailable(f"local:{self.root}",
                                                             f"cannot store {obj.source}: {exc}")

    def put_fd(self, fd: int, *, sha256: str, retain_until: datetime) -> StoredObject:
        """Store the bytes readable from *fd* (the store writer's way in: it never opens a path it is given).

        put_file's twin without the writer hop, the link shortcut or the BackendUnavailable wrapping (the writer
        reports errors itself), and its HashMismatch names the descriptor, not a path."""
        require_future(object_key(sha256), retain_until, datetime.now(UTC))
        if self.tree.object_path(sha256).exists():
            self.tree.grow_retention(sha256, retain_until)
        else:
            with os.fdopen(os.dup(fd), "rb") as source:
                tmp = self._copy_stream(source, sha256=sha256, what=f"the file sent on fd {fd}")
            self._add_object(sha256, retain_until, scratch=tmp)
        return self.head(sha256)

    def _put_through_writer(self, path: Path, *, sha256: str, size_bytes: int, retain_until: datetime,
                            consume: bool) -> StoredObject:
        with path.open("rb") as fh:
            stored: StoredObject = self._client.put_file(fh.fileno(), sha256=sha256, size_bytes=size_bytes,
                                                         retain_until=retain_until)
        if consume:
            path.unlink(missing_ok=True)
        return stored

    def _scratch_copy(self, path: Path, *, sha256: str) -> Path:
        """A sealed file in the store's scratch folder holding a copy of *path*'s bytes, checked against *sha256*."""
        with path.open("rb") as src:
            return self._copy_stream(src, sha256=sha256, what=str(path))

    def _can_link(self, path: Path, *, consume: bool) -> bool:
        """Whether *path* can become the object by a link (it is consumed, and on the store's file system)."""
        return consume and path.stat().st_dev == (self.root / "incoming").stat().st_dev

    def _scratch_link(self, path: Path, sha256: str) -> Path:
        """*path* linked into the scratch folder. Only under the store's lock: a scratch name that is the same file as
        a stored object then exists only while a writer holds the lock, and any other is a killed write's leftover
        (local_scratch) — *path* itself may already be the object (two deliveries of one staged copy)."""
        # The caller hashed these bytes while writing them: a link adds no read pass.
        tmp = self.root / "incoming" / f"{sha256}.{uuid.uuid4().hex}"
        os.chmod(path, FILE_MODE)
        os.link(path, tmp)
        return tmp

    def _add_object(self, sha256: str, retain_until: datetime, *, scratch: Path | None = None,
                    source: Path | None = None) -> None:
        """Make the sealed scratch file *scratch*, or the consumed *source* on the store's file system (linked in
        under the lock), the object *sha256*: its retention record first (an object is never seen without one),
        then its name."""
        self.tree.grow_retention(sha256, retain_until)
        self._link_new(self.tree.object_path(sha256), sha256, scratch=scratch, source=source)

    def _link_new(self, dest: Path, sha256: str, *, scratch: Path | None, source: Path | None) -> None:
        """Give *scratch* (or *source*, linked into the scratch folder now) its name in the store (never replacing
        one), then seal it; all under the store's lock."""
        tmp = scratch
        try:
            with self.tree.changing(dest.parent):
                if tmp is None:
                    assert source is not None
                    if dest.exists():  # stored meanwhile by another delivery of this copy, which consumed it
                        logger.info("Object %r appeared concurrently; keeping the first copy.", sha256)
                        return
                    tmp = self._scratch_link(source, sha256)
                try:
                    os.link(tmp, dest)
                except FileExistsError:
                    logger.info("Object %r appeared concurrently; keeping the first copy.", sha256)
                    return
                finally:
                    tmp.unlink()
                self.tree.seal_file(dest)
        finally:
            if tmp is not None:
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
        path = self.tree.object_path(sha256)
        record = self.tree.retention_path(sha256)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            detail = f"{path} is missing; its retention record {record} is still there" if record.exists() else ""
            raise ObjectMissing(object_key(sha256), detail) from None
        try:
            retain_until, hold = self.tree.read_retention(sha256)
        except FileNotFoundError:
            raise SealBroken(object_key(sha256), [f"{record} (the retention record of {path}) is missing"]) from None
        def found() -> tuple[str, ...]:
            return tuple(why for p in (path, record) if (why := seal_problem(p, immutable=self.immutable)))

        problems = found()
        if problems and self._drop_leftover_names():
            problems = found()
        return StoredObject(key=object_key(sha256), sha256=sha256, size_bytes=size, retain_until=retain_until,
                            legal_hold=hold, location=path.as_uri(), seal_problems=problems)

    def exists(self, sha256: str) -> bool:
        return self.tree.object_path(sha256).exists()

    def part_bytes_for(self, size_bytes: int) -> int | None:
        return None  # a local object is written whole (a hard link from staging where it can be)

    def open(self, sha256: str, *, start: int = 0) -> BinaryIO:
        try:
            return _open_at(self.tree.object_path(sha256), start)
        except FileNotFoundError:
            raise ObjectMissing(object_key(sha256)) from None

    @contextmanager
    def read_in_place(self, sha256: str, *, valid_s: float = 900) -> Iterator[str]:
        """The object's own sealed file (0444, in 0555 folders), for a media reader to open read-only where it is:
        nothing is copied (EvidenceStore.read_in_place). It is readable without the store writer, which only
        writes. *valid_s* does not apply: the path stays valid as long as the object is kept.

        Raises:
          ObjectMissing: no such object (naming the file that is not there).
        """
        path = self.tree.object_path(sha256)
        if not path.is_file():
            raise ObjectMissing(object_key(sha256), f"{path} is missing")
        yield str(path)

    def extend_retention(self, sha256: str, retain_until: datetime) -> StoredObject:
        if self._client is not None:
            result: StoredObject = self._client.extend_retention(sha256, retain_until)
            return result
        self.head(sha256)
        require_future(object_key(sha256), retain_until, datetime.now(UTC))

        def extend(current: Retention | None) -> Retention:
            if current is None:
                raise ObjectMissing(object_key(sha256), f"{self.tree.retention_path(sha256)} is missing")
            return validate_extension(object_key(sha256), current[0], retain_until), current[1]

        self.tree.update_retention(sha256, extend)
        return self.head(sha256)

    def set_legal_hold(self, sha256: str, on: bool) -> StoredObject:
        if self._client is not None:
            result: StoredObject = self._client.set_legal_hold(sha256, on)
            return result
        self.head(sha256)

        def hold(current: Retention | None) -> Retention:
            if current is None:
                raise ObjectMissing(object_key(sha256), f"{self.tree.retention_path(sha256)} is missing")
            return current[0], on

        self.tree.update_retention(sha256, hold)
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
        path, record = self.tree.object_path(sha256), self.tree.retention_path(sha256)
        with self.tree.changing(path.parent, record.parent):
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
        if self.tree.seal_problems(sha256):
            self._drop_leftover_names()
            with self.tree.lock(shared=True):
                if problems := self.tree.seal_problems(sha256):
                    raise SealBroken(object_key(sha256), problems)
        return found

    def _drop_leftover_names(self) -> bool:
        """Whether second names of stored files that killed writes left in the scratch folder were found and removed
        (storage.backends.local_scratch); asked only when a seal check failed. The store writer does this itself in
        the separate-owner deployment; a reader that may not write the scratch folder gets the seal problem."""
        if self._client is not None:
            return False
        try:
            return bool(drop_second_names(self.tree))
        except OSError:
            return False

    def sweep_scratch(self, *, older_than: timedelta, now: datetime) -> list[Leftover]:
        """Remove what killed writes left in `incoming/` (storage.backends.local_scratch has the rules); through the
        store writer, which then judges the age by its own clock, in the separate-owner deployment."""
        if self._client is not None:
            removed: list[Leftover] = self._client.sweep_scratch(older_than)
            return removed
        return sweep_incoming(self.tree, older_than=older_than, now=now)

    def _put_once(self, key: str, data: bytes, *, retain_until: datetime) -> StoredObject:
        """Write *data* under *key* once (sealed); the same bytes again are accepted, other bytes refused."""
        require_future(key, retain_until, datetime.now(UTC))
        path = self.root / key
        if path.exists():
            if path.read_bytes() != data:
                raise ObjectExists(key)
        else:
            tmp = self.tree.new_file(data, "once")
            try:
                with self.tree.changing(path.parent):
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        if path.read_bytes() != data:
                            raise ObjectExists(key) from None
                    else:
                        tmp.unlink()
                        self.tree.seal_file(path)
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

    def put_manifests(self, manifests: Sequence[tuple[str, int, bytes, datetime]]) -> list[StoredObject | Exception]:
        """`put_manifest` for many, each given as (sha256, revision, data, retain_until): their outcomes in order, each
        the StoredObject or the error put_manifest raises for it. The new files are made durable together: every
        one's bytes before any gets its name, then the names, one file-system sync each (not two fsyncs a file).
        The store writer's path and a subclass's own put_manifest go one by one."""
        if self._client is not None or len(manifests) < 2 or type(self).put_manifest is not LocalStore.put_manifest:
            return [_outcome(partial(self.put_manifest, sha256, revision, data, retain_until=retain_until))
                    for sha256, revision, data, retain_until in manifests]
        return self._put_all_once([(manifest_key(sha256, revision), data, retain_until)
                                   for sha256, revision, data, retain_until in manifests])

    def _put_all_once(self, items: list[tuple[str, bytes, datetime]]) -> list[StoredObject | Exception]:
        """`_put_once` for many (key, data, retain_until), synced per step rather than per file."""
        outcomes: list[StoredObject | Exception | None] = [None] * len(items)
        later: list[int] = []
        new: list[tuple[int, Path, Path]] = []  # (index, its name, its scratch file)
        now = datetime.now(UTC)
        with FileSystemSync(self.root) as fs:
            try:
                for i, (key, data, retain_until) in enumerate(items):
                    path = self.root / key
                    if path.exists() or any(path == n[1] for n in new):
                        later.append(i)  # the same bytes again are accepted, other bytes refused: _put_once says
                        continue
                    try:
                        require_future(key, retain_until, now)
                        new.append((i, path, self.tree.new_file(data, "once", fsync=False)))
                    except Exception as exc:  # noqa: BLE001 - this file's outcome; the rest go on
                        outcomes[i] = exc
                self._link_once(fs, new, items, outcomes)
            finally:
                for _i, _path, tmp in new:
                    tmp.unlink(missing_ok=True)
        for i in later:
            outcomes[i] = _outcome(partial(self._put_once, items[i][0], items[i][1], retain_until=items[i][2]))
        return [outcome if outcome is not None else _stored_once(self.root, *items[i])
                for i, outcome in enumerate(outcomes)]

    def _link_once(self, fs: FileSystemSync, new: list[tuple[int, Path, Path]],
                   items: list[tuple[str, bytes, datetime]], outcomes: list[StoredObject | Exception | None]) -> None:
        """Give each durable scratch file of *new* its write-once name; the names synced once (outcomes set in place:
        an error for each file that did not get its name)."""
        if not new:
            return
        try:
            fs.sync()  # every file's bytes before any has a name: a name never shows a file half written
            with self.tree.changing(*{path.parent for _i, path, _tmp in new}, fsync=False):
                for i, path, tmp in new:
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        if path.read_bytes() != items[i][1]:
                            outcomes[i] = ObjectExists(items[i][0])
                        continue
                    finally:
                        tmp.unlink()  # under the lock, before the seal (an immutable file keeps every name it has)
                    self.tree.seal_file(path)
            fs.sync()
        except OSError as exc:
            for i, _path, _tmp in new:
                outcomes[i] = BackendUnavailable(f"local:{self.root}", f"cannot store {items[i][0]}: {exc}")

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
        """Seal every file and folder of the evidence areas (SealedTree.seal_all); how many paths changed."""
        return self.tree.seal_all()

    def audit(self) -> list[str]:
        """Every path of the evidence areas not as the store leaves it (SealedTree.audit); empty when intact."""
        return self.tree.audit()


def _require_size(path: Path, sha256: str, size_bytes: int) -> None:
    """HashMismatch unless the file to store has the size hashed at copy time. Linked or copied, its bytes are not
    hashed again here; a staged copy two writers appended to (a review's two runs of one device at once) was
    stored under a SHA-256 it does not have. A source that is no regular file is hashed while it is copied in.
    OSError (the file is gone) is the caller's to report."""
    info = path.stat()
    found = info.st_size
    if stat.S_ISREG(info.st_mode) and found != size_bytes:  # a stream (a FIFO) is hashed as it is copied in
        raise HashMismatch(str(path), algorithm="sha256", expected=f"{sha256} ({size_bytes} bytes)",
                           found=f"a file of {found} bytes: not the bytes that were hashed")
