"""Lawful disposal: plan what is due, propose a batch, approve it, delete, keep tombstones and a signed record.

Every item is re-decided at the moment of deletion, so a recording linked
to a case after the plan was made is refused, not deleted; the store's own
lock is the last word (an early delete is refused by the server and reported
as an error). Each disposed recording keeps a tombstone (hash, stamp, rule,
time, operator, approver); each batch ends with a signed disposal record in
WORM storage.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dateutil.relativedelta import relativedelta
from sqlalchemy import and_, exists, or_
from sqlmodel import Session, col, delete, select

from catalog.access import EVERYTHING, Scope, scope_clause, user_scope
from catalog.case_models import Case, CaseLink, Disposal, DisposalBatch, DisposalStatus
from catalog.clock import clock_problem
from catalog.custody import CustodyKind, append_event
from catalog.db import by_id
from catalog.errors import DisposalError
from catalog.findings import chain_differences, linked_cases, load_recording_chain
from catalog.manifests import (
    ensure_station_key,
    read_manifests,
    signed_retain_until,
    software_version,
    trusted_fingerprints,
)
from catalog.models import IN_ARCHIVE, CustodyEvent, DerivedMedia, Recording, RecordingState
from catalog.policy_adoption import require_policy
from catalog.replay import ROW_KEY, CaseReplay, load_case_replays, row_values
from catalog.replay_compare import case_findings, chain_decision
from catalog.retention import PENDING_CASE, RetentionDecision, RetentionPolicy
from catalog.retention_job import decide_for
from catalog.said import say
from catalog.signing import sign_document, signed_bytes
from catalog.stamps import current_stamp
from catalog.timestamping import TsaSettings, stamp_record
from catalog.user_models import User
from storage import EvidenceStore, ObjectLocked, ObjectMissing, StorageError

__all__ = ["DISPOSAL_RECORD_FORMAT", "PlanItem", "Signer", "approve_batch", "approver_scope", "batch_out_of_scope",
           "chain_check", "plan_disposal", "plan_pending_cases", "start_sweep"]

logger = logging.getLogger(__name__)

DISPOSAL_RECORD_FORMAT = "evidence-disposal-record/1"
#: Disposal records are kept for good; WORM storage needs a date, so: a century.
RECORD_RETENTION = relativedelta(years=100)


@dataclass(frozen=True)
class Signer:
    """Who signs disposal records: the station (or archive host) key registered in the catalog; with *tsa* (the
    deployment's EVIDENCE_TSA_URL), each record and the anchor after it also get an RFC 3161 token."""

    station: str
    key: Ed25519PrivateKey
    tsa: TsaSettings | None = None


@dataclass(frozen=True)
class PlanItem:
    recording_id: int
    sha256: str
    original_name: str
    media_kind: str
    size_bytes: int
    retain_until: datetime
    rule: str
    status: str  # due | upcoming | held | pending-case
    hold_reasons: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["retain_until"] = self.retain_until.isoformat()
        out["hold_reasons"] = list(self.hold_reasons)
        return out


def plan_disposal(session: Session, policy: RetentionPolicy, *, as_of: datetime, within_days: int = 0,
                  limit: int | None = None) -> list[PlanItem]:
    """What becomes disposable by *as_of* (`due`) or within *within_days* after it (`upcoming`), and what
    would be due but is held (`held`), each with the rule that decides it. Changes nothing."""
    horizon = as_of + timedelta(days=within_days)
    query = (select(Recording).where(col(Recording.state).in_(IN_ARCHIVE), col(Recording.retain_until) <= horizon)
             .order_by(col(Recording.retain_until), col(Recording.id)))
    recordings = list(session.exec(query))
    decisions = decide_for(session, recordings, policy)
    items: list[PlanItem] = []
    for r in recordings:
        assert r.id is not None
        decision = decisions[r.id]
        if decision.retain_until > horizon:
            continue
        status = "held" if decision.legal_hold else ("due" if decision.retain_until <= as_of else "upcoming")
        items.append(PlanItem(r.id, r.sha256, r.original_name, r.media_kind, r.size_bytes, decision.retain_until,
                              decision.rule, status, decision.hold_reasons))
        if limit is not None and len(items) >= limit:
            break
    return items


def plan_pending_cases(session: Session, policy: RetentionPolicy, *, limit: int = 200) -> list[PlanItem]:
    """Recordings waiting for a clerk's case decision (pending-case holds), oldest first, whatever their date:
    stamped with a case number that no registered case linked, or important and serving no case."""
    named_case = exists().where(col(CaseLink.recording_id) == col(Recording.id), col(CaseLink.case_id) == col(Case.id),
                                col(Case.number) == col(Recording.case_number))
    serving = exists().where(col(CaseLink.recording_id) == col(Recording.id), col(CaseLink.unlinked_at).is_(None))
    query = (select(Recording).where(col(Recording.state) != RecordingState.DISPOSED.value,
                                     or_(and_(col(Recording.case_number).is_not(None), ~named_case),
                                         and_(col(Recording.important).is_(True), ~serving)))
             .order_by(col(Recording.ingested_at), col(Recording.id)).limit(limit))
    recordings = list(session.exec(query))
    decisions = decide_for(session, recordings, policy)
    items = []
    for r in recordings:
        assert r.id is not None
        decision = decisions[r.id]
        pending = tuple(why for why in decision.hold_reasons if why.startswith(PENDING_CASE))
        if pending:
            items.append(PlanItem(r.id, r.sha256, r.original_name, r.media_kind, r.size_bytes, decision.retain_until,
                                  decision.rule, "pending-case", pending))
    return items


def start_sweep(session: Session, store: EvidenceStore, policy: RetentionPolicy, *, now: datetime, by: str,
                approval_required: bool, signer: Signer) -> DisposalBatch | None:
    """Propose a batch of everything due now that no batch awaiting approval holds already; without required
    approval, dispose of it at once.

    Returns None when nothing (new) is due.
    """
    if not by.strip():
        raise DisposalError(say("a sweep needs the name of the operator who runs it"))
    require_policy(session, policy, approval_required=approval_required, doing="a disposal sweep")
    if (wrong := clock_problem(session, now)) is not None:
        raise DisposalError(say("no sweep: {problem}", problem=wrong))
    pending = {i["recording_id"] for b in session.exec(select(DisposalBatch).where(
        DisposalBatch.status == DisposalStatus.AWAITING_APPROVAL.value)) for i in b.items}
    due = [item for item in plan_disposal(session, policy, as_of=now)
           if item.status == "due" and item.recording_id not in pending]  # not proposed twice
    if not due:
        return None
    batch = DisposalBatch(status=DisposalStatus.AWAITING_APPROVAL.value, created_by=by, created_at=now,
                          items=[item.as_json() for item in due], outcome=[])
    session.add(batch)
    session.flush()
    append_event(session, CustodyKind.DISPOSAL_PROPOSED, actor=by, details={
        "batch": batch.id, "items": len(due), "sha256": [item.sha256 for item in due],
        "approval_required": approval_required})
    session.commit()
    if approval_required:
        return batch
    return _execute(session, store, policy, batch, now=now, signer=signer)


def _proposer_in_chain(session: Session, batch_id: int) -> str | None:
    """Who the custody chain says proposed batch *batch_id* (its `disposal_proposed` event), not the batch row's
    `created_by`: one edited column let the proposer approve their own batch (found by a review)."""
    for event in session.exec(select(CustodyEvent).where(CustodyEvent.kind == CustodyKind.DISPOSAL_PROPOSED.value)
                              .order_by(col(CustodyEvent.id))):
        if (event.details or {}).get("batch") == batch_id:
            return event.actor
    return None


def approver_scope(session: Session, by: str) -> Scope:
    """The scope of the archive user named *by* (the whole archive for a name that is no user here: the commands
    that accept names check elsewhere that the caller is a real user)."""
    user = session.exec(select(User).where(User.name == by.strip())).first()
    return EVERYTHING if user is None else user_scope(user)


def batch_out_of_scope(session: Session, batch: DisposalBatch, scope: Scope) -> list[int]:
    """The ids of the batch's recordings that *scope* does not cover (empty for the whole archive)."""
    clause = scope_clause(scope)
    ids = sorted({int(item["recording_id"]) for item in batch.items})
    if clause is None or not ids:
        return []
    seen: set[int] = set()
    for start in range(0, len(ids), 500):
        seen.update(rid for rid in session.exec(select(Recording.id).where(
            col(Recording.id).in_(ids[start:start + 500]), clause)) if rid is not None)
    return [rid for rid in ids if rid not in seen]


def approve_batch(session: Session, store: EvidenceStore, policy: RetentionPolicy, batch_id: int, *, by: str,
                  now: datetime, signer: Signer, scope: Scope | None = None) -> DisposalBatch:
    """A named approver (not the operator) whose scope covers every recording of a proposed batch approves it; it is
    then carried out. *scope*: the approver's (default: the scope of the archive user named *by*)."""
    require_policy(session, policy, doing="approving a disposal")
    if (wrong := clock_problem(session, now)) is not None:
        raise DisposalError(say("no disposal: {problem}", problem=wrong))
    batch = by_id(session, DisposalBatch, batch_id)
    if batch is None:
        raise DisposalError(say("no disposal batch {batch}", batch=batch_id))
    if batch.status != DisposalStatus.AWAITING_APPROVAL.value:
        raise DisposalError(say("disposal batch {batch} is {status!r}; only a batch awaiting approval can be approved",
                                batch=batch_id, status=say(batch.status)))
    if not by.strip():
        raise DisposalError(say("approval needs the approver's name"))
    proposer = _proposer_in_chain(session, batch_id)
    if proposer != batch.created_by:
        raise DisposalError(say("disposal batch {batch}: its row names {row} as who proposed it, the custody chain "
                                "{chain} (changed behind the application's back); it cannot be approved",
                                batch=batch_id, row=repr(batch.created_by), chain=repr(proposer)))
    if by.strip() == proposer:
        raise DisposalError(say("disposal batch {batch} was proposed by {person}; a different person must approve it",
                                batch=batch_id, person=repr(proposer)))
    scope = scope if scope is not None else approver_scope(session, by)
    outside = batch_out_of_scope(session, batch, scope)
    if outside:
        raise DisposalError(say("disposal batch {batch} holds recording(s) {ids} outside the scope of {person} "
                                "({scope}); an approver whose units cover every recording of the batch must approve "
                                "it", batch=batch_id, ids=", ".join(map(str, outside)), person=repr(by.strip()),
                                scope=scope.describe()))
    batch.approved_by, batch.approved_at = by.strip(), now
    session.add(batch)
    append_event(session, CustodyKind.DISPOSAL_APPROVED, actor=batch.approved_by, details={
        "batch": batch.id, "items": len(batch.items), "proposed_by": batch.created_by})
    session.commit()
    return _execute(session, store, policy, batch, now=now, signer=signer)


def _stamp_json(recording: Recording) -> dict[str, Any]:
    stamp = current_stamp(recording)
    out = {f.name: getattr(stamp, f.name) for f in fields(stamp)}
    out["captured_start"] = stamp.captured_start.isoformat() if stamp.captured_start else None
    out["stamp_revision"] = recording.stamp_revision
    return out


def _execute(session: Session, store: EvidenceStore, policy: RetentionPolicy, batch: DisposalBatch, *,
             now: datetime, signer: Signer) -> DisposalBatch:
    operator, approver = batch.created_by, batch.approved_by
    outcome: list[dict[str, Any]] = []
    cases = load_case_replays(session)  # the cases as the custody chain says (their rows may have been edited)
    for item in batch.items:
        result = _dispose_one(session, store, policy, batch, item, now=now, operator=operator, approver=approver,
                              cases=cases)
        outcome.append(result)
        session.commit()
    batch.outcome = outcome
    ok = all(o["result"] in ("disposed", "already disposed") for o in outcome)
    batch.status = (DisposalStatus.DONE if ok else DisposalStatus.PARTIAL).value
    batch.finished_at = now
    session.add(batch)
    session.commit()
    try:
        write_disposal_record(session, store, batch, signer=signer, now=now)
    except StorageError as exc:
        logger.error("Disposal batch %s done, but its signed record was not written: %s", batch.id, exc)
        batch.outcome = [*outcome, {"result": "record not written", "reason": str(exc)}]
        batch.status = DisposalStatus.PARTIAL.value
        session.add(batch)
        session.commit()
    return batch


def _refuse(session: Session, batch: DisposalBatch, item: dict[str, Any], reason: str, *, actor: str,
            result: str = "refused") -> dict[str, Any]:
    append_event(session, CustodyKind.DISPOSAL_FAILED, actor=actor, recording_id=item["recording_id"], details={
        "batch": batch.id, "sha256": item["sha256"], "result": result, "reason": reason})
    return {"recording_id": item["recording_id"], "sha256": item["sha256"], "result": result, "reason": reason}


def chain_check(session: Session, recording: Recording, policy: RetentionPolicy,
                cases: dict[str, CaseReplay]) -> tuple[list[str], RetentionDecision | None]:
    """What the custody chain says against disposing of *recording*: no event that created the row (planted), every
    way the row, its case links or its cases differ from the chain (and any of its events that no longer match
    their hash), and the retention the rules give the chain's own values (None when they cannot be applied)."""
    assert recording.id is not None
    chain = load_recording_chain(session, recording.id, check_hashes=True)
    differences = chain.broken + [text for _kind, text in chain_differences(recording, chain.replay, chain.links)]
    numbers = linked_cases(chain.replay, chain.links)
    if numbers:
        rows = session.exec(select(Case).where(col(Case.number).in_(sorted(numbers))))
        differences += [f"case {number}: {text}" for number, text in case_findings(cases, rows, numbers)]
    return differences, chain_decision(chain.replay, cases, policy)


def _dispose_one(session: Session, store: EvidenceStore, policy: RetentionPolicy, batch: DisposalBatch,
                 item: dict[str, Any], *, now: datetime, operator: str, approver: str | None,
                 cases: dict[str, CaseReplay] | None = None) -> dict[str, Any]:
    assert batch.id is not None
    recording = session.get(Recording, item["recording_id"])
    if recording is None or recording.sha256 != item["sha256"]:
        return _refuse(session, batch, item, "the catalog no longer holds this recording", actor=operator,
                       result="failed")
    assert recording.id is not None
    differences, said = chain_check(session, recording, policy, load_case_replays(session) if cases is None else cases)
    if differences:
        return _refuse(session, batch, item, "the catalogue disagrees with the custody chain: "
                       + "; ".join(differences) + f"; nothing was deleted (run `evidence verify {recording.id}`)",
                       actor=operator)
    if recording.state == RecordingState.DISPOSED:
        return {"recording_id": recording.id, "sha256": recording.sha256, "result": "already disposed",
                "reason": ""}
    decision = decide_for(session, [recording], policy)[recording.id]
    refusal = _still_kept(session, store, recording, decision, said, now=now)
    if refusal is not None:
        return _refuse(session, batch, item, refusal, actor=operator)
    return _delete_and_record(session, store, batch, item, recording, decision, now=now, operator=operator,
                              approver=approver)


def _still_kept(session: Session, store: EvidenceStore, recording: Recording, decision: RetentionDecision,
                said: RetentionDecision | None, *, now: datetime) -> str | None:
    """Why *recording* may not be disposed of yet: its signed manifests, a hold, or its retention (by the row's
    rules or by what the custody chain says, whichever keeps it longer); None when nothing keeps it."""
    signed = _signed_retention(session, store, recording)
    if isinstance(signed, str):
        return signed
    if now < signed[1]:
        return (f"its signed manifest r{signed[0]} keeps it until {signed[1].isoformat()}; the catalogue row says "
                f"{decision.retain_until.isoformat()} (the row was edited behind the application's back?)")
    holds = list(decision.hold_reasons)
    until, rule = decision.retain_until, decision.rule
    if said is not None:  # the rules applied to what the chain says (its cases, capture times, retain-until)
        holds += [f"{why} (by the custody chain)" for why in said.hold_reasons if why not in holds]
        if said.retain_until > until:
            until, rule = said.retain_until, f"{said.rule}, by the custody chain; the catalogue row says " \
                                             f"{recording.retain_until.isoformat() if recording.retain_until else None}"
    if holds:
        return "under legal hold: " + "; ".join(holds)
    if now < until:
        return f"retained until {until.isoformat()} ({rule})"
    return None


def _delete_and_record(session: Session, store: EvidenceStore, batch: DisposalBatch, item: dict[str, Any],
                       recording: Recording, decision: RetentionDecision, *, now: datetime, operator: str,
                       approver: str | None) -> dict[str, Any]:
    """Delete the original and its derived files from the store, then write the tombstone, the row's state and the
    `disposed` custody event. A store that refuses leaves everything as it was (a refusal item)."""
    assert recording.id is not None and batch.id is not None
    note = ""
    try:
        store.delete(recording.sha256, now=now)
    except ObjectLocked as exc:
        return _refuse(session, batch, item, f"the store refused: {exc}", actor=operator)
    except ObjectMissing:
        note = "the store no longer held the object (deleted earlier in an interrupted sweep)"
    except StorageError as exc:
        return _refuse(session, batch, item, f"store error: {exc}", actor=operator, result="failed")
    try:
        store.delete_derived(recording.sha256)
    except StorageError as exc:
        note = (note + "; " if note else "") + f"derived files not removed: {exc}"
    session.exec(delete(DerivedMedia).where(col(DerivedMedia.recording_id) == recording.id))
    tombstone = Disposal(recording_id=recording.id, batch_id=batch.id, sha256=recording.sha256,
                         size_bytes=recording.size_bytes, original_name=recording.original_name,
                         media_kind=recording.media_kind, stamp=_stamp_json(recording), rule=decision.rule,
                         retain_until=decision.retain_until, disposed_at=now, operator=operator, approver=approver,
                         store_name=recording.store_name, store_key=recording.store_key,
                         store_version=recording.store_version, note=note)
    session.add(tombstone)
    recording.state = RecordingState.DISPOSED.value
    session.add(recording)
    append_event(session, CustodyKind.DISPOSED, actor=operator, recording_id=recording.id, details={
        "batch": batch.id, "sha256": recording.sha256, "rule": decision.rule,
        "retain_until": decision.retain_until.isoformat(), "operator": operator, "approver": approver,
        "store_key": recording.store_key, "note": note, ROW_KEY: row_values(recording, "state")})
    return {"recording_id": recording.id, "sha256": recording.sha256, "result": "disposed", "reason": note,
            "rule": decision.rule, "stamp": tombstone.stamp}


def _signed_retention(session: Session, store: EvidenceStore,
                      recording: Recording) -> tuple[int, datetime] | str:
    """The longest retain-until any of the recording's signed manifests states, with its revision; a refusal reason
    when the row has no stamp revision (so no manifest: nothing vouches for it), or a manifest is missing, cannot be
    read or its signature fails (nothing is disposed of that cannot be proven)."""
    if recording.stamp_revision < 1:
        return (f"recording {recording.id} ({recording.original_name}) has no stamp revision and so no signed "
                "manifest: nothing vouches for this row (inserted behind the application's back?); run "
                f"`evidence verify {recording.id}`")
    manifests = read_manifests(store, recording, trusted=trusted_fingerprints(session, store))
    longest: tuple[int, datetime] | None = None
    for revision, body in manifests.items():
        if isinstance(body, str):
            return f"its signed manifest r{revision}: {body}; run `evidence verify {recording.id}`"
        until = signed_retain_until(body)
        if until is not None and (longest is None or until > longest[1]):
            longest = (revision, until)
    if longest is None:
        return (f"none of the signed manifests of recording {recording.id} states a retain-until; run "
                f"`evidence verify {recording.id}`")
    return longest


def write_disposal_record(session: Session, store: EvidenceStore, batch: DisposalBatch, *, signer: Signer,
                          now: datetime) -> str:
    """Sign the batch (items, outcome, people, times) and keep it in WORM storage; return its key."""
    assert batch.id is not None
    tombstones = {d.recording_id: d for d in session.exec(select(Disposal).where(Disposal.batch_id == batch.id))}
    body = {
        "format": DISPOSAL_RECORD_FORMAT, "batch": batch.id, "status": batch.status,
        "proposed_by": batch.created_by, "proposed_at": batch.created_at.isoformat() if batch.created_at else None,
        "approved_by": batch.approved_by, "approved_at": batch.approved_at.isoformat() if batch.approved_at else None,
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "items": [{**o, "size_bytes": tombstones[o["recording_id"]].size_bytes,
                   "original_name": tombstones[o["recording_id"]].original_name}
                  if o.get("recording_id") in tombstones else o for o in batch.outcome],
        "software": {"name": "evidence-ingest", "version": software_version()},
        "signed_at": now.isoformat(),
    }
    ensure_station_key(session, signer.station, signer.key, actor=f"station:{signer.station}", store=store)
    document = sign_document(body, signer.key)
    data = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
    name = f"disposals/batch-{batch.id:06d}.json"
    stored = store.put_record(name, data, retain_until=now + RECORD_RETENTION)
    stamp_record(store, name, signed_bytes(document), signer.tsa, retain_until=now + RECORD_RETENTION)
    batch.record_key = stored.key
    session.add(batch)
    append_event(session, CustodyKind.DISPOSAL_RECORDED, actor=f"station:{signer.station}", details={
        "batch": batch.id, "key": stored.key, "sha256": stored.sha256,
        "key_fingerprint": document["signature"]["key_fingerprint"]})
    session.commit()
    from catalog.anchors import anchor_quietly  # the chain head, with this batch's events, into WORM storage
    anchor_quietly(session, store, station=signer.station, key=signer.key, actor=f"station:{signer.station}",
                   now=now, reason=f"disposal batch {batch.id}", tsa=signer.tsa)
    return stored.key
