"""Errors of the catalog.

```
CatalogError
  + CatalogUnavailable  (database unreachable or not migratable; transient)
  + RecordingNotFound   (no recording with that id / prefix)
  + StampInvalid        (a stamp breaks the rules; every problem listed)
  + CustodyBroken       (the hash chain does not verify; every break listed)
```
"""
from __future__ import annotations

__all__ = ["CatalogError", "CatalogUnavailable", "CustodyBroken", "RecordingNotFound", "StampInvalid"]


class CatalogError(Exception):
    """Base class for catalog failures."""


class CatalogUnavailable(CatalogError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"catalog database {url} is unavailable: {reason}")


class RecordingNotFound(CatalogError):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no recording {ref!r} in the catalog")


class StampInvalid(CatalogError):
    def __init__(self, details: list[str]) -> None:
        self.details = list(details)
        super().__init__("invalid evidence stamp: " + "; ".join(self.details))


class CustodyBroken(CatalogError):
    def __init__(self, details: list[str]) -> None:
        self.details = list(details)
        super().__init__(f"custody chain broken ({len(self.details)} problem(s)): " + "; ".join(self.details))
