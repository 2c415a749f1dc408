"""Local-filesystem WORM store: the embedded default.

Objects are content-addressed files, made read-only, never replaced (new
names are created with a hard link, which fails if the name exists), with a
retention record beside each. It is as unalterable as a filesystem lets an
application be; production archives use S3 Object Lock.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from storage.backend import StoredObject, derived_key, manifest_key, object_key, record_key
from storage.errors import BackendUnavailable, HashMismatch, ObjectExists, ObjectLocked, ObjectMissing
from storage.retention import is_disposable, require_future, validate_extension

__all__ = ["LocalStore", "fsync_dir"]

logger = logging.getLogger(__name__)

#: Bytes per read when the store must copy (and re-hash) a file itself.
COPY_CHUNK_BYTES = 4 * 1024 * 1024


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

class LocalStore:
    """WORM store in a directory tree: objects/<key> (0444) and retention/<key>.json."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            (root / "objects").mkdir(parents=True, exist_ok=True)
            (root / "retention").mkdir(parents=True, exist_ok=True)
            (root / "incoming").mkdir(parents=True, exist_ok=True)
            (root / "manifests").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(f"local:{root}", str(exc)) from exc

    def _object_path(self, sha256: str) -> Path:
        return self.root / "objects" / object_key(sha256)

    def _lock_path(self, sha256: str) -> Path:
        return self.root / "retention" / f"{object_key(sha256)}.json"

    def _read_lock(self, sha256: str) -> tuple[datetime, bool]:
        data = json.loads(self._lock_path(sha256).read_text(encoding="utf-8"))
        return datetime.fromisoformat(data["retain_until"]), bool(data["legal_hold"])

    def _write_lock(self, sha256: str, retain_until: datetime, legal_hold: bool) -> None:
        path = self._lock_path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        with tmp.open("x", encoding="utf-8") as fh:
            json.dump({"retain_until": retain_until.astimezone(UTC).isoformat(), "legal_hold": legal_hold}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def put_file(self, path: Path, *, sha256: str, size_bytes: int, retain_until: datetime,
                 consume: bool = False) -> StoredObject:
        require_future(object_key(sha256), retain_until, datetime.now(UTC))
        dest = self._object_path(sha256)
        if dest.exists():
            # Content-addressed: the same key holds the same bytes. Keep the longer retention.
            current, hold = self._read_lock(sha256)
            if retain_until > current:
                self._write_lock(sha256, retain_until, hold)
            if consume:
                path.unlink(missing_ok=True)
            return self.head(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if consume and path.stat().st_dev == dest.parent.stat().st_dev:
                # The caller hashed these bytes while writing them: a link adds no read pass.
                os.chmod(path, 0o444)
                os.link(path, dest)
                path.unlink()
            else:
                self._copy_verified(path, dest, sha256=sha256)
                if consume:
                    path.unlink()
            fsync_dir(dest.parent)
        except FileExistsError:
            logger.info("Object %r appeared concurrently; keeping the first copy.", sha256)
        except OSError as exc:
            raise BackendUnavailable(f"local:{self.root}", f"cannot store {path}: {exc}") from exc
        self._write_lock(sha256, retain_until, False)
        return self.head(sha256)

    def _copy_verified(self, source: Path, dest: Path, *, sha256: str) -> None:
        tmp = self.root / "incoming" / f"{sha256}.{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        with source.open("rb") as src, tmp.open("xb") as dst:
            while chunk := src.read(COPY_CHUNK_BYTES):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if digest.hexdigest() != sha256:
            tmp.unlink()
            raise HashMismatch(str(source), algorithm="sha256", expected=sha256, found=digest.hexdigest())
        os.chmod(tmp, 0o444)
        try:
            os.link(tmp, dest)
        finally:
            tmp.unlink()

    def head(self, sha256: str) -> StoredObject:
        path = self._object_path(sha256)
        try:
            size = path.stat().st_size
            retain_until, hold = self._read_lock(sha256)
        except FileNotFoundError:
            raise ObjectMissing(object_key(sha256)) from None
        return StoredObject(key=object_key(sha256), sha256=sha256, size_bytes=size,
                            retain_until=retain_until, legal_hold=hold, location=path.as_uri())

    def exists(self, sha256: str) -> bool:
        return self._object_path(sha256).exists()

    def open(self, sha256: str, *, start: int = 0) -> BinaryIO:
        try:
            return _open_at(self._object_path(sha256), start)
        except FileNotFoundError:
            raise ObjectMissing(object_key(sha256)) from None

    def extend_retention(self, sha256: str, retain_until: datetime) -> StoredObject:
        current, hold = self._read_lock(sha256) if self.exists(sha256) else (None, False)
        if current is None:
            raise ObjectMissing(object_key(sha256))
        require_future(object_key(sha256), retain_until, datetime.now(UTC))
        validate_extension(object_key(sha256), current, retain_until)
        self._write_lock(sha256, retain_until, hold)
        return self.head(sha256)

    def set_legal_hold(self, sha256: str, on: bool) -> StoredObject:
        current = self.head(sha256)
        self._write_lock(sha256, current.retain_until, on)
        return self.head(sha256)

    def delete(self, sha256: str, *, now: datetime) -> None:
        obj = self.head(sha256)
        if not is_disposable(obj.retain_until, obj.legal_hold, now):
            raise ObjectLocked(obj.key, retain_until=obj.retain_until, legal_hold=obj.legal_hold,
                               action="delete")
        path = self._object_path(sha256)
        os.chmod(path, 0o644)
        path.unlink()
        self._lock_path(sha256).unlink()
        fsync_dir(path.parent)

    def verify(self, sha256: str) -> str:
        """Re-hash the stored bytes; raise HashMismatch if they changed."""
        digest = hashlib.sha256()
        with self.open(sha256) as fh:
            while chunk := fh.read(COPY_CHUNK_BYTES):
                digest.update(chunk)
        found = digest.hexdigest()
        if found != sha256:
            raise HashMismatch(object_key(sha256), algorithm="sha256", expected=sha256, found=found)
        return found


    def _put_once(self, key: str, data: bytes, *, retain_until: datetime) -> StoredObject:
        """Write *data* under *key* once (0444); the same bytes again are accepted, other bytes refused."""
        require_future(key, retain_until, datetime.now(UTC))
        path = self.root / key
        if path.exists():
            if path.read_bytes() != data:
                raise ObjectExists(key)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.root / "incoming" / f"once.{uuid.uuid4().hex}"
            with tmp.open("xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, path)
            except FileExistsError:
                if path.read_bytes() != data:
                    raise ObjectExists(key) from None
            finally:
                tmp.unlink()
            fsync_dir(path.parent)
        return StoredObject(key=key, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                            retain_until=retain_until, legal_hold=False, location=path.as_uri())

    def _read_once(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def put_manifest(self, sha256: str, revision: int, data: bytes, *, retain_until: datetime) -> StoredObject:
        return self._put_once(manifest_key(sha256, revision), data, retain_until=retain_until)

    def get_manifest(self, sha256: str, revision: int) -> bytes:
        return self._read_once(manifest_key(sha256, revision))

    def put_record(self, name: str, data: bytes, *, retain_until: datetime) -> StoredObject:
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
        key = derived_key(sha256, name)
        dest = self.root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "incoming" / f"derived.{uuid.uuid4().hex}"
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)  # derived files are not evidence: a newer rendition replaces the old
        return key

    def open_derived(self, sha256: str, name: str, *, start: int = 0) -> BinaryIO:
        key = derived_key(sha256, name)
        try:
            return _open_at(self.root / key, start)
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def delete_derived(self, sha256: str) -> int:
        folder = self.root / "derived" / object_key(sha256)
        if not folder.is_dir():
            return 0
        removed = 0
        for path in folder.iterdir():
            path.unlink()
            removed += 1
        folder.rmdir()
        return removed


def remove_tree(root: Path) -> None:
    """Remove a whole local store (tests and disposable demos only)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o644)
    shutil.rmtree(root)
