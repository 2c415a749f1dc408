"""Change a recording's evidence stamp: the one operation the command line, the station and the web app share.

A change is a new stamp revision (`catalog.stamps.restamp`), sealed in a freshly signed manifest beside the
recording in WORM storage, and followed at once by the retention pass: a case number that names an open case
links the recording to it and holds it, one that names no registered case (or an important flag) puts it under a
pending-case hold, and removing them with a reason lets the rules decide again. Nothing waits for the nightly job.

Taking away what holds a recording pending its case (its case number or its important flag) is a clerk's decision:
`change_stamp` refuses it (HoldLiftRefused) unless the caller's roles allow managing cases — whoever calls it, the
web app, `evidence tag`, `evidence station tag` or the station's kiosk endpoint.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from catalog.db import is_conflict
from catalog.errors import PermissionDenied
from catalog.manifests import write_manifest
from catalog.models import Recording, RecordingState, StampRevision
from catalog.policy_adoption import require_policy
from catalog.retention import RetentionPolicy
from catalog.retention_job import RetentionChange, apply_retention
from catalog.said import listed, say
from catalog.stamps import restamp
from storage import EvidenceStore

__all__ = ["HOLD_LIFTERS", "RETENTION_FIELDS", "HoldLiftRefused", "StampChange", "change_stamp",
           "check_hold_lift", "lifts_a_hold"]

logger = logging.getLogger(__name__)

#: How many times the retention pass after a stamp change is tried when the database rolls it back to resolve a
#: conflict (a deadlock with another writer: `catalog.db.is_conflict`).
CONFLICT_TRIES = 3
#: Stamp fields that can change what keeps a recording (and so run the retention pass).
RETENTION_FIELDS = frozenset({"case_number", "important", "captured_start"})
#: The permission (catalog.users.PERMISSIONS) whose roles may take away what holds a recording pending its case.
HOLD_LIFTERS = "manage_cases"


def lifts_a_hold(recording: Recording, changes: dict[str, Any]) -> list[str]:
    """The changes that take away what holds a recording pending its case (a case number or the important flag):
    a clerk's decision, with a reason, never an officer's at the dock. Pure; empty when none does."""
    lifted: list[str] = []
    if "case_number" in changes and recording.case_number and not changes["case_number"]:
        lifted.append(say("removes case number {case}", case=recording.case_number))
    if "important" in changes and recording.important and not changes["important"]:
        lifted.append(say("removes the important flag"))
    return lifted


class HoldLiftRefused(PermissionDenied):
    """A stamp change would take away what holds a recording pending its case, and the caller may not decide that."""

    def __init__(self, message: str, *, recording_id: int | None, lifted: list[str]) -> None:
        self.recording_id = recording_id
        self.lifted = list(lifted)
        super().__init__(message)


def check_hold_lift(recording: Recording, changes: dict[str, Any], *, by: str, roles: Iterable[str],
                    where: str = "") -> None:
    """HoldLiftRefused unless *roles* may take away what *changes* take away of *recording*'s pending-case hold
    (see lifts_a_hold; a role allowed to manage cases — a clerk or an administrator). *where* names the recording
    further (e.g. its path on the device). Changes equal to the current values lift nothing."""
    from catalog.users import PERMISSIONS  # users imports access, which the web and CLI import before this

    wanted = {k: v for k, v in changes.items() if getattr(recording, k, None) != v}
    lifted = lifts_a_hold(recording, wanted)
    allowed, held = PERMISSIONS[HOLD_LIFTERS], sorted(set(roles))
    if not lifted or allowed & set(held):
        return
    raise HoldLiftRefused(
        say("recording {recording} ({name}): this change {changes}, which lifts its hold: a clerk decides that, with a "
            "reason (a user with a role of {allowed}: `evidence tag ID --reason …` or the web app), not {by} (roles: "
            "{roles})", recording=recording.id, name=where or recording.original_name, by=by,
            changes=lifted[0] if len(lifted) == 1 else say("{first} and {second}", first=lifted[0], second=lifted[1]),
            allowed=listed(say(role) for role in sorted(allowed)),
            roles=listed(say(role) for role in held) if held else say("none")),
        recording_id=recording.id, lifted=lifted)


@dataclass(frozen=True)
class StampChange:
    """What a stamp change did: the revision, whether it was sealed, and the retention changes it caused."""

    revision: StampRevision
    sealed: bool
    retention: list[RetentionChange]


def change_stamp(session: Session, store: EvidenceStore, recording: Recording, *, by: str, reason: str,
                 case_pattern: str, policy: RetentionPolicy, key: Ed25519PrivateKey | None,
                 roles: Iterable[str] = (), **changes: Any) -> StampChange:
    """Restamp *recording* (a new revision; StampInvalid if the result breaks a rule), seal the revision in a signed
    manifest when the recording is in the store and a signing key is at hand, and apply retention at once.

    *roles* are the caller's (an archive user's roles; none for the station): HoldLiftRefused, before anything is
    changed, when the change takes away the recording's case number or important flag and no role of the caller
    may manage cases (check_hold_lift).

    Commits. A store failure while sealing or applying retention propagates (StorageError) after the revision is
    committed: the revision stands; the reconciler of the recording's station has its manifest written
    (catalog.outbox.reconcile), and `evidence retention apply` finishes the retention.
    """
    check_hold_lift(recording, changes, by=by, roles=roles)
    require_policy(session, policy, doing="restamping")
    revision = restamp(session, recording, by=by, reason=reason, case_pattern=case_pattern, **changes)
    session.commit()
    sealed = False
    if key is not None and recording.state in (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value):
        write_manifest(session, store, recording, key, actor=by)
        session.commit()
        sealed = True
    retention: list[RetentionChange] = []
    if RETENTION_FIELDS & set(revision.changes):
        assert recording.id is not None
        retention = _retention_now(session, store, policy, by=by, recording_id=recording.id)
        session.refresh(recording)
    return StampChange(revision, sealed, retention)


def _retention_now(session: Session, store: EvidenceStore, policy: RetentionPolicy, *, by: str,
                   recording_id: int) -> list[RetentionChange]:
    """The retention pass of one recording whose stamp just changed, done again (up to CONFLICT_TRIES times) when
    the database rolled it back to resolve a conflict with another writer: the revision is committed by then, and a
    second tag of the same values changes nothing, so the hold its case number asks for would otherwise wait for
    the nightly job. The pass is idempotent: what it committed before the conflict is not done twice."""
    for attempt in range(1, CONFLICT_TRIES + 1):
        try:
            return apply_retention(session, store, policy, actor=by, recording_ids=[recording_id])
        except DBAPIError as exc:
            session.rollback()
            if not is_conflict(exc) or attempt == CONFLICT_TRIES:
                raise
            logger.warning("Retention of recording %s after its stamp change met another writer (%s): again, "
                           "%d of %d.", recording_id, str(exc).splitlines()[0], attempt + 1, CONFLICT_TRIES)
    raise AssertionError("unreachable")
