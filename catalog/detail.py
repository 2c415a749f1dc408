"""Everything known about one recording, in one shape: what `evidence show`, the web page and the API all print.

Reading it changes nothing; the caller records the view (a custody event) with its own channel and reason.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.cases import cases_of
from catalog.integrity import integrity_history
from catalog.models import CustodyEvent, DerivedMedia, Disposal, Recording
from catalog.recordings import recording_as_json, sightings_of
from catalog.retention import PENDING_CASE, RetentionPolicy
from catalog.retention_job import decide_for
from catalog.stamps import stamp_history

__all__ = ["recording_detail"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def recording_detail(session: Session, recording: Recording, policy: RetentionPolicy) -> dict[str, Any]:
    """The recording with its sightings, stamp and integrity histories, cases, retention (the rule and every hold
    reason, pending-case holds included), housekeeping files, tombstone, derived media and custody events."""
    assert recording.id is not None
    data = recording_as_json(recording, sightings=sightings_of(session, recording.id))
    data["stamp_history"] = [
        {"revision": h.revision, "changed_by": h.changed_by, "changed_at": _iso(h.changed_at), "reason": h.reason,
         "changes": h.changes} for h in stamp_history(session, recording.id)]
    data["integrity_history"] = [
        {"revision": c.revision, "check": c.check, "status": c.status, "detail": c.detail, "checked_by": c.checked_by,
         "checked_at": _iso(c.checked_at), "details": c.details} for c in integrity_history(session, recording.id)]
    data["cases"] = [{"number": c.number, "title": c.title, "status": c.status, "purpose": link.purpose,
                      "linked_by": link.linked_by} for c, link in cases_of(session, recording.id)]
    decision = decide_for(session, [recording], policy)[recording.id]
    data["retention"] = {
        "retain_until": _iso(recording.retain_until), "legal_hold": recording.legal_hold,
        "rule": recording.retention_rule, "hold_reasons": list(decision.hold_reasons),
        "pending_case": [r for r in decision.hold_reasons if r.startswith(PENDING_CASE)],
        "rules_say": {"retain_until": _iso(decision.retain_until), "legal_hold": decision.legal_hold,
                      "rule": decision.rule},
        "in_line_with_rules": (recording.retain_until == decision.retain_until
                               and recording.legal_hold == decision.legal_hold)}
    data["housekeeping_files"] = [
        {"id": r.id, "original_name": r.original_name, "media_kind": r.media_kind, "sha256": r.sha256}
        for r in session.exec(select(Recording).where(Recording.belongs_to_id == recording.id)
                              .order_by(col(Recording.id)))]
    tombstone = session.exec(select(Disposal).where(Disposal.recording_id == recording.id)).first()
    data["disposal"] = None if tombstone is None else {
        "batch": tombstone.batch_id, "rule": tombstone.rule, "operator": tombstone.operator,
        "approver": tombstone.approver, "disposed_at": _iso(tombstone.disposed_at), "stamp": tombstone.stamp,
        "note": tombstone.note}
    data["derived"] = {d.kind: d.content_type for d in session.exec(
        select(DerivedMedia).where(DerivedMedia.recording_id == recording.id))}
    data["custody"] = [{"id": e.id, "kind": e.kind, "actor": e.actor, "at": _iso(e.at), "details": e.details,
                        "reason": (e.details or {}).get("reason") or "", "hash": e.hash}
                       for e in session.exec(select(CustodyEvent).where(CustodyEvent.recording_id == recording.id)
                                             .order_by(col(CustodyEvent.id)))]
    return data
