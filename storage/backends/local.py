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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from storage.backend import StoredObject, derived_key, manifest_key, object_key, record_key
from storage.backends.local_tree import WRITER_SOCKET, Retention, SealedTree, read_marker
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
        if self.tree.object_path(sha256).exists():
            self.tree.grow_retention(sha256, retain_until)
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
        self.tree.grow_retention(sha256, retain_until)
        self._link_new(tmp, self.tree.object_path(sha256), sha256)

    def _link_new(self, tmp: Path, dest: Path, sha256: str) -> None:
        """Give the sealed scratch file *tmp* its name in the store (never replacing one), then seal it."""
        try:
            with self.tree.changing(dest.parent):
                try:
                    os.link(tmp, dest)
                except FileExistsError:
                    logger.info("Object %r appeared concurrently; keeping the first copy.", sha256)
                    return
                finally:
                    tmp.unlink()
                self.tree.seal_file(dest)
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
        problems = tuple(why for p in (path, record) if (why := seal_problem(p, immutable=self.immutable)))
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
            with self.tree.lock(shared=True):
                if problems := self.tree.seal_problems(sha256):
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
