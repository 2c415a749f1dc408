"""A spot check's end: its progress, the reviewer's sign-off with a signed result in WORM storage, and a summary
an agency may publish (公示) without personal data.

The signed result holds both draws (criteria, seed, population, the sample; the reviewer pool, seed and the
reviewers), every item's outcome with who recorded it and when, and the counts: a later reader checks the
signature and redraws both samples from it. The summary keeps only what the public may see: when, from what
(unit, kind, period: never an officer), how many drawn from how many, how many reviewed, how many findings, when
signed off, the seed and the signed result's SHA-256.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from catalog.access import Scope
from catalog.custody import CustodyKind, append_event
from catalog.db import begin_write
from catalog.disposal import RECORD_RETENTION, Signer
from catalog.manifests import ensure_station_key, software_version
from catalog.models import Recording, SpotCheck, SpotCheckItem
from catalog.said import listed, say
from catalog.signing import SignatureInvalid, sign_document, signed_bytes, verify_document
from catalog.spotcheck import FINDINGS, SpotCheckError, open_spot_check, require_reviewer
from catalog.spotcheck_team import reviewer_seed
from catalog.timestamping import stamp_record
from storage import EvidenceStore, ObjectMissing, StorageError

__all__ = ["RESULT_FORMAT", "Progress", "progress", "progress_by_check", "result_name", "sign_off",
           "spot_check_summary"]

RESULT_FORMAT = "evidence-spot-check-result/1"


@dataclass(frozen=True)
class Progress:
    reviewed: int  # items with an outcome (a file the draw found unreadable counts: it needs no review)
    total: int
    findings: int  # issues found and unreadable files
    by_outcome: dict[str, int]

    @property
    def done(self) -> bool:
        return self.reviewed == self.total


def progress(items: Sequence[SpotCheckItem]) -> Progress:
    """How far the review of *items* is. Pure."""
    counts = Counter(item.outcome for item in items)
    return Progress(reviewed=len(items) - counts.get("pending", 0), total=len(items),
                    findings=sum(counts.get(o, 0) for o in FINDINGS), by_outcome=dict(sorted(counts.items())))


def progress_by_check(session: Session, check_ids: Sequence[int]) -> dict[int, Progress]:
    """progress() of each of *check_ids* (a list page: one read)."""
    items: dict[int, list[SpotCheckItem]] = {cid: [] for cid in check_ids}
    for item in session.exec(select(SpotCheckItem).where(col(SpotCheckItem.check_id).in_(list(check_ids)))):
        items[item.check_id].append(item)
    return {cid: progress(rows) for cid, rows in items.items()}


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _result(check: SpotCheck, rows: list[tuple[SpotCheckItem, Recording]], *, by: str, now: datetime
            ) -> dict[str, Any]:
    done = progress([item for item, _r in rows])
    return {"format": RESULT_FORMAT, "check": check.id, "drawn_by": check.created_by,
            "drawn_at": _when(check.created_at), "criteria": check.criteria, "seed": check.seed,
            "population": check.population, "sample_size": check.sample_size,
            "reviewer_pool": check.reviewer_pool, "reviewer_seed": reviewer_seed(check.seed),
            "reviewers": check.reviewers,
            "items": [{"recording_id": item.recording_id, "sha256": recording.sha256, "outcome": item.outcome,
                       "notes": item.notes, "reviewed_by": item.reviewed_by, "reviewed_at": _when(item.reviewed_at)}
                      for item, recording in rows],
            "counts": done.by_outcome, "findings": done.findings, "signed_off_by": by, "signed_off_at": now.isoformat(),
            "software": {"name": "evidence-ingest", "version": software_version()}}


def sign_off(session: Session, store: EvidenceStore, signer: Signer, check_id: int, *, by: str, scope: Scope,
             now: datetime) -> SpotCheck:
    """A drawn reviewer signs the check off once every item has an outcome: the signed result goes to WORM storage
    (with a timestamp token where the deployment has a TSA), its name on the check, and a `spot_check_signed`
    event; committed. SpotCheckRefused (recorded) for anyone but a drawn reviewer; SpotCheckError while items
    are pending or once signed off."""
    check, rows = open_spot_check(session, check_id, scope=scope, by=by)
    begin_write(session)  # one sign-off at a time, and no outcome recorded between reading the items and signing
    session.refresh(check)
    for item, _r in rows:
        session.refresh(item)
    require_reviewer(session, check, by, "sign off")
    if check.signed_off_at is not None:
        raise SpotCheckError(say("spot check {check} was signed off already by {person} ({at})", check=check.id,
                                 person=check.signed_off_by, at=check.signed_off_at.isoformat()))
    done = progress([item for item, _r in rows])
    if not done.done:
        pending = [str(item.id) for item, _r in rows if item.outcome == "pending"]
        raise SpotCheckError(say("spot check {check}: {n} of {total} items are not reviewed yet (items {items}); "
                                 "sign off when every one is", check=check.id, n=done.total - done.reviewed,
                                 total=done.total, items=listed(pending[:20])))
    ensure_station_key(session, signer.station, signer.key, actor=f"station:{signer.station}", store=store)
    name = result_name(check.id or 0)
    kept = _kept_result(store, name, check.id or 0)
    if kept is not None:  # an earlier sign-off wrote it and did not commit: its record is the result, once
        data, body = kept
        by, now = str(body["signed_off_by"]), datetime.fromisoformat(str(body["signed_off_at"]))
    else:
        document = sign_document(_result(check, rows, by=by, now=now), signer.key)
        data = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
        store.put_record(name, data, retain_until=now + RECORD_RETENTION)  # one name: a second never lands
        stamp_record(store, name, signed_bytes(document), signer.tsa, retain_until=now + RECORD_RETENTION)
    check.signed_off_by, check.signed_off_at, check.result_record = by, now, name
    check.result_sha256 = hashlib.sha256(data).hexdigest()
    session.add(check)
    append_event(session, CustodyKind.SPOT_CHECK_SIGNED, actor=by, details={
        "check": check.id, "record": name, "record_sha256": check.result_sha256, "counts": done.by_outcome,
        "findings": done.findings, "signed_off_at": now.isoformat()})
    session.commit()
    return check


def result_name(check_id: int) -> str:
    """The one name a check's signed result has in WORM storage (a second sign-off cannot write another). Pure."""
    return f"spot-checks/spot-check-{check_id:06d}.json"


def _kept_result(store: EvidenceStore, name: str, check_id: int) -> tuple[bytes, dict[str, Any]] | None:
    """The signed result already stored under *name* (bytes and verified body), or None if there is none. A record
    there that does not verify, or names another check, is a StorageError: never signed over."""
    try:
        data = store.get_record(name)
    except ObjectMissing:
        return None
    try:
        body = verify_document(json.loads(data))
    except (ValueError, SignatureInvalid) as exc:
        raise StorageError(say("{name} is in the store but is not a valid signed result ({problem}); nothing is "
                               "signed over it", name=name, problem=str(exc))) from None
    if body.get("format") != RESULT_FORMAT or body.get("check") != check_id:
        raise StorageError(say("{name} in the store is not spot check {check}'s result", name=name, check=check_id))
    return data, body


def spot_check_summary(check: SpotCheck, items: Sequence[SpotCheckItem], zone: str) -> dict[str, Any]:
    """What may be published of *check*: no officer, reviewer, file name or note. Pure."""
    done = progress(items)
    criteria = {k: v for k, v in check.criteria.items() if k in ("unit", "kind", "start", "end") and v}

    def day(value: datetime | None) -> str | None:
        return value.astimezone(ZoneInfo(zone)).date().isoformat() if value else None

    return {"check": check.id, "drawn_on": day(check.created_at), "criteria": criteria,
            "narrowed_to_officer": bool(check.criteria.get("officer")),  # which one is personal: not said
            "population": check.population, "sample_size": check.sample_size, "reviewers": len(check.reviewers),
            "reviewed": done.reviewed, "compliant": done.by_outcome.get("compliant", 0),
            "issues": done.by_outcome.get("issue", 0), "unreadable": done.by_outcome.get("unreadable", 0),
            "findings": done.findings, "signed_off_on": day(check.signed_off_at), "seed": check.seed,
            "result_sha256": check.result_sha256}
