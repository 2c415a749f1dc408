"""Errors of the WORM evidence store.

```
StorageError
  + ObjectExists        (WORM: key already written with other content)
  + ObjectMissing       (no object under that key)
  + ObjectLocked        (delete or shorten inside retention / under legal hold)
  + RetentionRefused    (a retention period or date that the rules forbid)
  + IntegrityError
      - HashMismatch    (bytes do not hash to what was expected)
      - SealBroken      (local store: a file or folder no longer sealed as the store left it)
  + BucketNotWorm       (the bucket lacks versioning or Object Lock: refuse to archive there)
  + BackendUnavailable  (transient; safe to retry)
```
"""
from __future__ import annotations

from datetime import datetime

__all__ = [
    "BackendUnavailable", "BucketNotWorm", "HashMismatch", "IntegrityError", "ObjectExists", "ObjectLocked",
    "ObjectMissing", "RetentionRefused", "SealBroken", "StorageError",
]


class StorageError(Exception):
    """Base class for evidence-store failures."""


class ObjectExists(StorageError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"object {key!r} already exists in the WORM store and cannot be overwritten")


class ObjectMissing(StorageError):
    def __init__(self, key: str, detail: str = "") -> None:
        self.key = key
        self.detail = detail
        super().__init__(f"object {key!r} is not in the store" + (f": {detail}" if detail else ""))


class ObjectLocked(StorageError):
    def __init__(self, key: str, *, retain_until: datetime | None, legal_hold: bool, action: str) -> None:
        self.key = key
        self.retain_until = retain_until
        self.legal_hold = legal_hold
        self.action = action
        why = "it is under legal hold" if legal_hold else f"it is retained until {retain_until:%Y-%m-%dT%H:%M:%SZ}"
        super().__init__(f"cannot {action} object {key!r}: {why}")


class RetentionRefused(StorageError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class IntegrityError(StorageError):
    """The stored bytes are not the bytes we were promised."""


class HashMismatch(IntegrityError):
    def __init__(self, path: str, *, algorithm: str, expected: str, found: str) -> None:
        self.path = path
        self.algorithm = algorithm
        self.expected = expected
        self.found = found
        super().__init__(f"{algorithm} mismatch for {path}: expected={expected!r} found={found!r}")


class SealBroken(IntegrityError):
    """A file or folder of the local store is not as the store sealed it: someone outside the store changed
    its mode, removed or renamed it, linked it, or cleared its immutable flag. Each problem names the path."""

    def __init__(self, key: str, problems: list[str]) -> None:
        self.key = key
        self.problems = problems
        super().__init__(f"object {key!r} was altered outside the store: " + "; ".join(problems))


class BucketNotWorm(StorageError):
    def __init__(self, bucket: str, reason: str) -> None:
        self.bucket = bucket
        self.reason = reason
        super().__init__(f"bucket {bucket!r} cannot hold evidence: {reason}")


class BackendUnavailable(StorageError):
    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason
        super().__init__(f"evidence store {backend} is unavailable: {reason}")
