"""The WORM evidence store interface.

Objects are addressed by the SHA-256 of their bytes. A store never
overwrites, never deletes inside retention or under legal hold, and only
lets retention grow. Implementations live in `storage.backends`.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["EvidenceStore", "Leftover", "StoredObject", "derived_key", "manifest_key", "object_key", "record_key"]


def object_key(sha256: str) -> str:
    """The key under which the object with this SHA-256 is stored."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a lower-case hex SHA-256: {sha256!r}")
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def manifest_key(sha256: str, revision: int) -> str:
    """The key of a recording's signed manifest for one stamp revision."""
    if revision < 1:
        raise ValueError(f"stamp revisions start at 1, got {revision}")
    return f"manifests/{object_key(sha256)}.r{revision}.json"


def derived_key(sha256: str, name: str) -> str:
    """The key of a derived (non-evidence) file made from a recording: thumbnail, proxy."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"derived file name {name!r} must be a plain file name")
    return f"derived/{object_key(sha256)}/{name}"


def record_key(name: str) -> str:
    """The key of an archive record (disposal record, custody checkpoint): `records/<name>`."""
    parts = name.split("/")
    if not name or any(not p or p in (".", "..") or not all(c.isalnum() or c in "._-" for c in p) for p in parts):
        raise ValueError(f"record name {name!r} must be '/'-separated plain names (letters, digits, '.', '_', '-')")
    return f"records/{name}"


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size_bytes: int
    retain_until: datetime
    legal_hold: bool
    version_id: str | None = None
    location: str = ""  # a URL-ish description: file:///…, s3://bucket/key
    verified: bool = False  # the store itself confirmed the bytes hash to sha256 (S3 checksum on write)
    #: Local store: files of this object found not as the store sealed them (each names the file). Empty on S3.
    seal_problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Leftover:
    """What an interrupted write left in a store's scratch space, removed by `sweep_scratch`."""

    name: str  # the local store's `incoming/<file>`, or an S3 key with its multipart upload id
    reason: str
    size_bytes: int | None = None  # None: not known without more requests (S3 parts)


class EvidenceStore(Protocol):
    """What ingest and the catalog need from WORM storage."""

    name: str

    def put_file(self, path: Path, *, sha256: str, size_bytes: int, retain_until: datetime,
                 consume: bool = False) -> StoredObject:
        """Store the file at *path* under its hash; with *consume* the store may take the file itself."""
        ...

    def head(self, sha256: str) -> StoredObject:
        """Describe a stored object (ObjectMissing if absent)."""
        ...

    def exists(self, sha256: str) -> bool:
        ...

    def part_bytes_for(self, size_bytes: int) -> int | None:
        """The part size in which this store uploads a file of *size_bytes* (its copy pass then hashes each part,
        storage.part_checksums), or None when it takes the file whole."""
        ...

    def open(self, sha256: str, *, start: int = 0) -> BinaryIO:
        """Open the stored bytes for reading, from byte *start* (a ranged read: nothing before it is fetched)."""
        ...

    def read_in_place(self, sha256: str, *, valid_s: float = 900) -> AbstractContextManager[str]:
        """A path or URL from which a media reader (ffmpeg's `-i`, `cv2.VideoCapture`) reads the stored original where
        it is, for the `with` block: nothing is copied, and the source only reads.

        Local store: the object's own sealed file (0444 in 0555 folders; readable by the service account also when
        the store writer owns the store). S3: a presigned GET URL of the object, valid for *valid_s* seconds (give
        the reader's deadline: it asks for byte ranges again whenever it seeks); the reader fetches the bytes with
        ranged GETs. A URL carries a credential: keep it out of logs and messages (its query string).

        Raises:
          ObjectMissing: no such object.
        """
        ...

    def extend_retention(self, sha256: str, retain_until: datetime) -> StoredObject:
        """Lengthen retention of the object and of its manifests (never shortens: RetentionRefused)."""
        ...

    def set_legal_hold(self, sha256: str, on: bool) -> StoredObject:
        """Set or lift the legal hold on the object and its manifests."""
        ...

    def delete(self, sha256: str, *, now: datetime) -> None:
        """Delete an object whose retention has passed and that has no hold."""
        ...

    def verify(self, sha256: str) -> str:
        """Re-hash the stored bytes; HashMismatch if they are not the bytes stored."""
        ...

    def put_manifest(self, sha256: str, revision: int, data: bytes, *, retain_until: datetime) -> StoredObject:
        """Store a signed manifest under WORM retention; the same bytes twice are accepted, others refused."""
        ...

    def get_manifest(self, sha256: str, revision: int) -> bytes:
        ...

    def put_record(self, name: str, data: bytes, *, retain_until: datetime) -> StoredObject:
        """Store an archive record under WORM retention; the same bytes twice are accepted, others refused."""
        ...

    def get_record(self, name: str) -> bytes:
        ...

    def list_records(self, prefix: str) -> list[str]:
        """Names (as given to put_record) of the records under *prefix* (e.g. `custody/`), sorted."""
        ...

    def put_derived(self, sha256: str, name: str, path: Path, *, content_type: str) -> str:
        """Store a derived file outside the evidence area (no lock; replaceable); return its key."""
        ...

    def open_derived(self, sha256: str, name: str, *, start: int = 0) -> BinaryIO:
        """Open a derived file, from byte *start*."""
        ...

    def delete_derived(self, sha256: str) -> int:
        """Remove every derived file of a recording (at disposal); return how many went."""
        ...

    def sweep_scratch(self, *, older_than: timedelta, now: datetime) -> list[Leftover]:
        """Remove what writes killed half-way left behind (a scratch file, a second name of a stored object, an
        S3 multipart upload never completed or aborted): anything untouched for *older_than* at *now*, and at
        once what can only be a leftover. Never touches evidence. Returns what went."""
        ...
