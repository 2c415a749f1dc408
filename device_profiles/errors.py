"""Errors raised while loading or matching device profiles.

```
ProfileError
  + ProfileInvalid     (a YAML file breaks the schema; every problem listed)
  + ProfileNotFound    (no profile of that name, or none recognises a folder)
```
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["ProfileError", "ProfileInvalid", "ProfileNotFound"]


class ProfileError(Exception):
    """Base class for device-profile problems."""


class ProfileInvalid(ProfileError):
    def __init__(self, source: Path | str, details: list[str]) -> None:
        self.source = str(source)
        self.details = list(details)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = "\n".join(f"  - {d}" for d in self.details)
        return f"device profile {self.source!r} is invalid ({len(self.details)} problem(s)):\n{lines}"


class ProfileNotFound(ProfileError):
    def __init__(self, name: str | None = None, *, folder: Path | None = None,
                 known: tuple[str, ...] = ()) -> None:
        self.name = name
        self.folder = folder
        self.known = known
        super().__init__(str(self))

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        if self.name is not None:
            return f"no device profile named {self.name!r} (known: {known})"
        return f"no device profile recognises {str(self.folder)!r} (known: {known}); pass --profile NAME"
