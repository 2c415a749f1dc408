"""After a case link changes, the retention pass for the recordings it touched.

Linking a recording or document to a case, unlinking it, closing or reopening the case, or creating a case
that adopts stamped recordings all change what the rules give those recordings (a legal hold, a longer
retain-until). The command line and the web commit the change with catalog.cases, then call
`retain_after_link_change` with the recording ids concerned, so the WORM store follows at once instead of at
the next daily `evidence retention apply`.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session

from catalog.retention import RetentionPolicy
from catalog.retention_job import RetentionChange, apply_retention
from storage import EvidenceStore

__all__ = ["retain_after_link_change"]


def retain_after_link_change(session: Session, store: EvidenceStore, policy: RetentionPolicy,
                             recording_ids: Iterable[int], *, by: str) -> list[RetentionChange]:
    """Apply retention and legal holds to *recording_ids* (whose case links or cases just changed, the change
    committed) on the catalog and the store; return what changed. A change whose `error` is set was refused by
    the store: the caller reports it. No ids: nothing to do, nothing read.
    """
    wanted = list(recording_ids)
    if not wanted:
        return []
    return apply_retention(session, store, policy, actor=by, recording_ids=wanted)
