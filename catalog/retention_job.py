"""Apply retention decisions to the catalog and the WORM store: an idempotent job.

For each recording still kept, the decision (`catalog.retention`) is
compared with what the catalog holds. A longer retain-until or a new legal
hold is applied to the store before the catalog records it; a hold is
lifted in the catalog before the store: whatever happens in between, the
store protects at least what the catalog says. Run twice, the second run
changes nothing. A store failure on one recording is reported and the job
goes on with the next.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.case_models import Case, CaseLink
from catalog.cases import adopt_stamped, case_facts
from catalog.custody import CustodyKind, append_event
from catalog.errors import PolicyInvalid
from catalog.models import IN_ARCHIVE, Recording, RecordingState
from catalog.policy_adoption import require_policy
from catalog.replay import CaseReplay, RecordingReplay, copy_counts_from, load_case_replays, load_replays
from catalog.replay_compare import base_time_of, chain_decision
from catalog.retention import RetentionDecision, RetentionPolicy, decide_retention, pending_case_holds
from storage import EvidenceStore, StorageError, StoredObject

__all__ = ["RetentionChange", "apply_retention", "base_time", "decide_for"]

logger = logging.getLogger(__name__)


@dataclass
class RetentionChange:
    recording_id: int
    sha256: str
    old_until: datetime | None
    new_until: datetime
    old_hold: bool
    new_hold: bool
    rule: str
    hold_reasons: tuple[str, ...]
    error: str | None = None
    applied_to_store: bool = False
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"recording_id": self.recording_id, "sha256": self.sha256,
                "old_retain_until": self.old_until.isoformat() if self.old_until else None,
                "retain_until": self.new_until.isoformat(), "old_legal_hold": self.old_hold,
                "legal_hold": self.new_hold, "rule": self.rule, "hold_reasons": list(self.hold_reasons),
                "applied_to_store": self.applied_to_store, "error": self.error, "notes": list(self.notes)}


def base_time(recording: Recording) -> datetime:
    """What routine retention counts from: the later of capture end (else start) and when the archive took the
    recording (archived, else ingested); a document counts from when it was attached; an implausible capture time
    (a wrong device clock) does not count. A redacted copy counts from its original's, as stated when it was made
    (`technical["redaction"]["counts_from"]`, and its `redacted` event: catalog.replay.COUNTS_FROM)."""
    stated = copy_counts_from(recording.technical)
    if stated is not None:
        return stated
    ingested = recording.ingested_at or recording.archived_at
    assert ingested is not None
    return base_time_of(media_kind=recording.media_kind, captured_start=recording.captured_start,
                        captured_end=recording.captured_end, archived_at=recording.archived_at,
                        ingested_at=ingested, time_implausible=recording.time_implausible)


def _pending(session: Session, recordings: list[Recording], linked_now: set[int]) -> dict[int, tuple[str, ...]]:
    numbers = sorted({r.case_number for r in recordings if r.case_number})
    ids = [r.id for r in recordings if r.id is not None and (r.case_number or r.important)]
    registered: set[str] = set()
    ever: set[tuple[int, str]] = set()
    for start in range(0, len(numbers), 500):
        registered.update(session.exec(select(Case.number).where(col(Case.number).in_(numbers[start:start + 500]))))
    for start in range(0, len(ids), 500):
        ever.update((rid, number) for rid, number in session.exec(select(CaseLink.recording_id, Case.number).where(
            col(CaseLink.recording_id).in_(ids[start:start + 500]), CaseLink.case_id == Case.id)))
    # A redacted copy (one stating what it counts from) is held only by its own links: the case number and flag
    # its stamp repeats are its original's, whose holds are a clerk's to decide on the original
    return {r.id: () if copy_counts_from(r.technical) is not None else pending_case_holds(
                case_number=r.case_number, case_registered=r.case_number in registered,
                ever_linked_to_it=(r.id, r.case_number) in ever, important=r.important, linked_now=r.id in linked_now)
            for r in recordings if r.id is not None}


def decide_for(session: Session, recordings: list[Recording], policy: RetentionPolicy
               ) -> dict[int, RetentionDecision]:
    """The retention each recording must have now: the one decision every path uses (the job, plans, disposal,
    `retention show`, archiving)."""
    ids = [r.id for r in recordings if r.id is not None]
    facts = case_facts(session, ids)
    pending = _pending(session, recordings, {rid for rid, cases in facts.items() if cases})
    return {r.id: decide_retention(base_time=base_time(r), current=r.retain_until, cases=facts[r.id], policy=policy,
                                   pending=pending[r.id])
            for r in recordings if r.id is not None}


def _targets(session: Session, recording_ids: Iterable[int] | None) -> list[int]:
    query = select(Recording.id).where(Recording.state != RecordingState.DISPOSED.value).order_by(col(Recording.id))
    if recording_ids is not None:
        wanted = sorted(set(recording_ids))
        if not wanted:
            return []
        query = query.where(col(Recording.id).in_(wanted))
    return [rid for rid in session.exec(query) if rid is not None]


def apply_retention(session: Session, store: EvidenceStore, policy: RetentionPolicy, *, actor: str,
                    recording_ids: Iterable[int] | None = None, check_store: bool = False,
                    batch: int = 200, commit_every: int = 50) -> list[RetentionChange]:
    """Bring retention and legal holds in line with the rules; return what changed (and what failed).

    With *check_store* every stored object is also read back (one HEAD each) and repaired where the store
    is behind the rules (a hold lifted or a date shortened behind the catalogue's back, or a crash between
    the store call and the commit). Store calls come before the catalogue rows that record them and are
    idempotent, so a crash between the two is put right by the next run; commits come every *commit_every*
    changes.
    """
    require_policy(session, policy, doing="applying retention")
    wanted = None if recording_ids is None else list(recording_ids)
    adopt_stamped(session, by=actor, recording_ids=wanted)
    session.commit()
    changes: list[RetentionChange] = []
    ids = _targets(session, wanted)
    for start in range(0, len(ids), batch):
        recordings = list(session.exec(select(Recording).where(col(Recording.id).in_(ids[start:start + batch]))
                                       .order_by(col(Recording.id))))
        decisions = decide_for(session, recordings, policy)
        chain = _ChainHolds(session, policy, [r.id for r in recordings if r.id is not None
                                             and r.legal_hold and not decisions[r.id].legal_hold])
        for recording in recordings:
            assert recording.id is not None
            decision = decisions[recording.id]
            change = RetentionChange(recording.id, recording.sha256, recording.retain_until, decision.retain_until,
                                     recording.legal_hold, decision.legal_hold, decision.rule,
                                     decision.hold_reasons)
            try:
                stored = store.head(recording.sha256) if check_store and recording.state in IN_ARCHIVE else None
                longer = recording.retain_until is None or decision.retain_until > recording.retain_until
                store_behind = stored is not None and (stored.retain_until < decision.retain_until
                                                       or stored.legal_hold != decision.legal_hold)
                if not longer and decision.legal_hold == recording.legal_hold and not store_behind:
                    continue  # already as the rules say
                changes.append(change)
                if recording.legal_hold and not decision.legal_hold and (held := chain.holds(recording)):
                    change.new_hold = True
                    change.error = (f"the custody chain holds it ({held}) while its catalogue row gives no hold "
                                    f"(changed behind the application's back?): nothing was lifted; `evidence "
                                    f"verify {recording.id}` names the difference")
                    logger.error("Retention of recording %s: %s", recording.id, change.error)
                    continue
                if stored is not None and store_behind:
                    change.notes.append(f"the store held until {stored.retain_until.isoformat()}, legal hold "
                                        f"{'on' if stored.legal_hold else 'off'}: repaired")
                _apply_one(session, store, recording, decision, change, actor=actor, stored=stored)
            except StorageError as exc:
                # Protection is added on the store before the session; a lift was committed before the store.
                if change not in changes:
                    changes.append(change)
                change.error = str(exc)
                logger.error("Retention of recording %s not applied: %s", recording.id, exc)
                continue
            if len(changes) % commit_every == 0:
                session.commit()
        session.commit()
    return changes


class _ChainHolds:
    """Whether the custody chain's facts still hold recordings whose rows would have their hold lifted: a lift is
    the one change `apply_retention` makes that takes protection away, and a row edited behind the application's
    back (a re-stamp rolled back, found by a review) must not be able to make it. The chain is read only for the
    recordings given (those about to be lifted), once."""

    def __init__(self, session: Session, policy: RetentionPolicy, recording_ids: list[int]) -> None:
        self._policy = policy
        self._replays: dict[int, RecordingReplay] = {}
        self._cases: dict[str, CaseReplay] = {}
        if recording_ids:
            self._replays = load_replays(session, recording_ids)[0]
            self._cases = load_case_replays(session)

    def holds(self, recording: Recording) -> str | None:
        """Why the chain holds *recording* (its hold reasons), or None when it does not."""
        replay = self._replays.get(recording.id or 0)
        if replay is None:
            return None
        try:
            decision = chain_decision(replay, self._cases, self._policy)
        except PolicyInvalid:
            return None
        if decision is None or not decision.legal_hold:
            return None
        return "; ".join(decision.hold_reasons) or "a legal hold"


def _apply_one(session: Session, store: EvidenceStore, recording: Recording, decision: RetentionDecision,
               change: RetentionChange, *, actor: str, stored: StoredObject | None) -> None:
    in_store = recording.state in IN_ARCHIVE
    longer = change.old_until is None or change.new_until > change.old_until
    store_until = stored.retain_until if stored is not None else change.old_until
    store_hold = stored.legal_hold if stored is not None else recording.legal_hold
    # What adds protection goes to the store first, what removes it goes to the catalogue first: a crash
    # in between always leaves the store protecting more than the catalogue says, never less.
    if in_store and (store_until is None or decision.retain_until > store_until):
        store.extend_retention(recording.sha256, decision.retain_until)
    if in_store and decision.legal_hold and not store_hold:
        store.set_legal_hold(recording.sha256, True)
    change.applied_to_store = in_store
    repair = {"repair": change.notes[0]} if change.notes else {}
    if longer or (stored is not None and stored.retain_until < decision.retain_until):
        recording.retain_until = decision.retain_until
        recording.retention_rule = decision.rule
        append_event(session, CustodyKind.RETENTION_CHANGED, actor=actor, recording_id=recording.id, details={
            "old": change.old_until.isoformat() if change.old_until else None,
            "new": decision.retain_until.isoformat(), "rule": decision.rule, "in_store": in_store, **repair})
    if decision.legal_hold != recording.legal_hold or decision.legal_hold != store_hold:
        recording.legal_hold = decision.legal_hold
        append_event(session, CustodyKind.LEGAL_HOLD, actor=actor, recording_id=recording.id, details={
            "on": decision.legal_hold, "reasons": list(decision.hold_reasons), "in_store": in_store, **repair})
    session.add(recording)
    if in_store and not decision.legal_hold and store_hold:
        session.commit()
        store.set_legal_hold(recording.sha256, False)
