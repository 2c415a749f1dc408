"""Errors of the catalog.

```
CatalogError
  + CatalogUnavailable  (database unreachable or not migratable; transient)
  + RecordingNotFound   (no recording with that id / prefix)
  + StampInvalid        (a stamp breaks the rules; every problem listed)
  + CustodyBroken       (the hash chain does not verify; every break listed)
  + PolicyInvalid       (the retention policy / case-type table is unusable)
  + CaseInvalid         (case fields break the rules; every problem listed)
  + CaseNotFound        (no case with that number)
  + CaseStateError      (the action does not fit the case's or recording's state)
  + DisposalError       (a disposal batch cannot be created, approved or run)
  + UserInvalid         (a user cannot be added as asked)
  + SavedSearchInvalid  (a search cannot be kept under that name; every problem listed)
  + PermissionDenied    (the named person's roles do not allow the action)
  + ExportFailed        (an evidence package cannot be written as asked)
```
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from catalog.said import Said, say

__all__ = [
    "CaseInvalid",
    "CaseNotFound",
    "CaseStateError",
    "CatalogError",
    "CatalogUnavailable",
    "CustodyBroken",
    "DisposalError",
    "ExportFailed",
    "PermissionDenied",
    "PolicyInvalid",
    "RecordingNotFound",
    "SavedSearchInvalid",
    "SignInRefused",
    "SnapshotRefused",
    "StampInvalid",
    "UserInvalid",
]


class CatalogError(Exception):
    """Base class for catalog failures. A message made with catalog.said.say comes back whole from str(), so a
    page can say it in the reader's language."""

    def __str__(self) -> str:
        return self.args[0] if len(self.args) == 1 and isinstance(self.args[0], Said) else super().__str__()


class CatalogUnavailable(CatalogError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(say("catalog database {url} is unavailable: {reason}", url=url, reason=reason))


class RecordingNotFound(CatalogError):
    def __init__(self, ref: str, *, ambiguous: str | None = None) -> None:
        self.ref = ref
        self.ambiguous = ambiguous
        super().__init__(say("recording {ref} is ambiguous: {ambiguous}", ref=repr(ref), ambiguous=ambiguous)
                         if ambiguous else say("no recording {ref} in the catalog", ref=repr(ref)))


class StampInvalid(CatalogError):
    def __init__(self, details: Sequence[str]) -> None:
        self.details = list(details)
        super().__init__(say("invalid evidence stamp: {details}", details=self.details))


class CustodyBroken(CatalogError):
    def __init__(self, details: list[str]) -> None:
        self.details = list(details)
        super().__init__(say("custody chain broken ({n} problem(s)): {details}", n=len(self.details),
                             details=self.details))


class PolicyInvalid(CatalogError):
    """The retention policy cannot be used; the message names the file or key and the reason."""


class PolicyNotAdopted(CatalogError):
    """This process's retention policy (its EVIDENCE_* environment) is not the one the catalogue adopted, or the
    catalogue has adopted none yet (*adopted* empty)."""

    def __init__(self, *, doing: str, adopted: str, here: str, adopted_at: datetime | None, adopted_by: str,
                 differences: list[str]) -> None:
        self.doing, self.adopted, self.here = doing, adopted, here
        self.adopted_at, self.adopted_by, self.differences = adopted_at, adopted_by, list(differences)
        if not adopted or adopted_at is None:
            super().__init__(say(
                "{doing} refused: the catalogue has adopted no retention policy yet, and a command's environment "
                "may not decide it (fingerprint here {here}): the station, worker or `evidence ingest` adopts its "
                "terms at its first start, or an administrator runs `evidence retention adopt --reason …`",
                doing=doing, here=here[:16]))
            return
        super().__init__(say(
            "{doing} refused: the retention policy here (fingerprint {here}) is not the one the catalogue adopted on "
            "{day} by {person} (fingerprint {adopted}): {differences}. Run with the adopted terms (`evidence "
            "retention policy`), or have an administrator adopt these (`evidence retention adopt --reason …`)",
            doing=doing, here=here[:16], day=adopted_at.isoformat(timespec="seconds"), person=adopted_by,
            adopted=adopted[:16], differences=self.differences))


class CaseInvalid(CatalogError):
    def __init__(self, details: list[str]) -> None:
        self.details = list(details)
        super().__init__(say("invalid case: {details}", details=self.details))


class CaseNotFound(CatalogError):
    def __init__(self, number: str) -> None:
        self.number = number
        super().__init__(say("no case {number} in the catalog", number=repr(number)))


class CaseStateError(CatalogError):
    """E.g. closing a closed case, linking a disposed recording, attaching to a closed case."""


class SnapshotRefused(CatalogError):
    """A still that cannot be taken (ingest.snapshots): the recording, position, case, stored original or frame is
    wrong; the message says which."""


class DisposalError(CatalogError):
    """A disposal batch cannot be created, approved or executed as asked."""


class UserInvalid(CatalogError):
    """A user cannot be added: the message lists every problem."""


class SavedSearchInvalid(CatalogError):
    """A search cannot be kept (catalog.saved_searches.save_search): `problems`, each made with catalog.said.say,
    so a page says them in its language; str() is the English."""

    def __init__(self, problems: list[Said]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class PermissionDenied(CatalogError):
    """The person named does not have a role that allows the action."""


class ExportFailed(CatalogError):
    """An evidence package cannot be written (destination exists, an item is not archived…)."""


class SignInRefused(CatalogError):
    """Wrong name or password (the same words for both), or the account is locked."""

    def __init__(self, message: str, *, locked_until: datetime | None = None) -> None:
        self.locked_until = locked_until
        super().__init__(message)
