"""Everything known about one recording, in one shape: what `evidence show --json`, the web page and the web
API (`GET /api/recordings/{ref}`) all print.

Reading it changes nothing; the caller records the view (a custody event) with its own channel and reason.

The shape (`recording_detail`), a JSON object; times are ISO 8601 strings in UTC ending in `Z`, or null:

  The recording itself (catalog.recordings.recording_as_json):
    id: int; sha256: str (hex); size_bytes: int; media_kind: str ("video" | "audio" | "photo" | "other")
    original_name: str (the file name on the device); device_serial: str | null
    officer: {number: str, name: str | null} | null
    station: str (station code); captured_start, captured_end: time | null (the recording's own clock, corrected)
    raw_device_time: str | null (as the device wrote it); time_source: str (where the time came from)
    time_implausible: bool; time_problem: str | null (why the time is doubted); zone_assumed: bool
    clock_offset_s: float | null (the corrected time minus the device clock: GPS or station clock minus device clock)
    place: {lat: float, lon: float, source: str} | null
    case_number: str | null; purpose: str | null; important: bool  (the current stamp)
    sensitivity: str  (catalog.sensitivity.CLASSES: public | internal | commercial | personal | state_secret)
    integrity: {status: str, detail: str | null}  (the decode/structure check's verdict)
    state: str ("staged" | "archived" | "verified" | "disposed" …); ingested_at, archived_at: time | null
    retain_until: time | null; legal_hold: bool; retention_rule: str | null  (as stored on the row)
    technical: {container, video_codec, audio_codec: str | null, duration_s: float | null,
                width, height: int | null}
    belongs_to: int | null (the recording this housekeeping file belongs to); stamp_revision: int
    redacted_from: {id: int, sha256: str, version: int, spec: object, reason: str, by: str, at: time} | null
                   (a redacted copy: the original it was made from, and what was hidden)
    store: {name: str, key: str}  (where the bytes are in WORM storage)
    sightings: [{device_serial: str, device_path: str, seen_at: time, dock_session_id: int | null,
                 important: bool}]  (every dock the same bytes were seen on)
  Its histories and links:
    stamp_history: [{revision: int, changed_by: str, changed_at: time, reason: str, changes: object}]
    integrity_history: [{revision: int, check: str, status: str, detail: str | null, checked_by: str,
                         checked_at: time, details: object}]
    cases: [{number: str, title: str, status: str, purpose: str, linked_by: str}]
    retention: {retain_until: time | null, legal_hold: bool, rule: str | null  (as stored),
                hold_reasons: [str]  (every reason the rules hold it), pending_case: [str]  (the pending-case
                holds among them), rules_say: {retain_until, legal_hold, rule}  (what the rules decide now),
                in_line_with_rules: bool  (stored == decided)}
    housekeeping_files: [{id: int, original_name: str, media_kind: str, sha256: str}]
    redacted_copies: [{id: int, version: int, original_name: str, sha256: str, state: str, sensitivity: str}]
                     (the redacted copies made of this recording, oldest first)
    disposal: {batch: int, rule: str, operator: str, approver: str | null, disposed_at: time, stamp: object,
               note: str} | null  (the tombstone, once disposed of)
    derived: {kind: content type}  (e.g. {"proxy": "video/mp4", "thumbnail": "image/jpeg"})
    custody: [{id: int, kind: str, actor: str, at: time, details: object, reason: str ("" for none),
               hash: str}]  (every custody event of the recording, oldest first; for a reader who may not read
               the audit log, other people's accessed/viewed/access_refused events are left out)
    custody_reads_hidden: int  (how many were left out; 0 for auditors and administrators)
    has_proxy: bool  ("proxy" in derived: the browser can play it)
    media_work_failed: {kind: reason}  (thumbnail, proxy or decode work that failed for good on the media:
                       catalog.media_work)
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.case_models import Disposal
from catalog.cases import cases_of
from catalog.custody import CustodyKind
from catalog.integrity import integrity_history
from catalog.media_work import media_failures
from catalog.models import CustodyEvent, DerivedMedia, Recording
from catalog.recordings import recording_as_json, redacted_copies
from catalog.retention import PENDING_CASE, RetentionPolicy
from catalog.retention_job import decide_for
from catalog.sightings import sightings_of
from catalog.stamps import stamp_history

__all__ = ["derived_media", "frame_rate", "recording_detail"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def derived_media(session: Session, recording_id: int, kind: str) -> DerivedMedia | None:
    """The recording's derived file of *kind* ("proxy", "thumbnail"), or None when none was made (yet)."""
    return session.exec(select(DerivedMedia).where(DerivedMedia.recording_id == recording_id,
                                                   DerivedMedia.kind == kind)).first()


def _retention(session: Session, recording: Recording, policy: RetentionPolicy) -> dict[str, Any]:
    assert recording.id is not None
    decision = decide_for(session, [recording], policy)[recording.id]
    return {
        "retain_until": _iso(recording.retain_until), "legal_hold": recording.legal_hold,
        "rule": recording.retention_rule, "hold_reasons": list(decision.hold_reasons),
        "pending_case": [r for r in decision.hold_reasons if r.startswith(PENDING_CASE)],
        "rules_say": {"retain_until": _iso(decision.retain_until), "legal_hold": decision.legal_hold,
                      "rule": decision.rule},
        "in_line_with_rules": (recording.retain_until == decision.retain_until
                               and recording.legal_hold == decision.legal_hold)}


def _disposal(session: Session, recording_id: int) -> dict[str, Any] | None:
    tombstone = session.exec(select(Disposal).where(Disposal.recording_id == recording_id)).first()
    return None if tombstone is None else {
        "batch": tombstone.batch_id, "rule": tombstone.rule, "operator": tombstone.operator,
        "approver": tombstone.approver, "disposed_at": _iso(tombstone.disposed_at), "stamp": tombstone.stamp,
        "note": tombstone.note}


def _histories(session: Session, recording_id: int) -> dict[str, Any]:
    return {
        "stamp_history": [
            {"revision": h.revision, "changed_by": h.changed_by, "changed_at": _iso(h.changed_at),
             "reason": h.reason, "changes": h.changes} for h in stamp_history(session, recording_id)],
        "integrity_history": [
            {"revision": c.revision, "check": c.check, "status": c.status, "detail": c.detail,
             "checked_by": c.checked_by, "checked_at": _iso(c.checked_at), "details": c.details}
            for c in integrity_history(session, recording_id)],
        "cases": [{"number": c.number, "title": c.title, "status": c.status, "purpose": link.purpose,
                   "linked_by": link.linked_by} for c, link in cases_of(session, recording_id)]}


def _without_case_files(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The linked cases as someone whose roles do not read case files sees them: number, status and what the
    recording proves there, not the case's title (an officer stamped their own recording with another unit's case
    number and read its title, "Secret: disciplinary probe of …": found by a review)."""
    return [{**case, "title": None} for case in cases]


#: Who read a recording, when and why: the audit log's, not every viewer's (an internal investigation's stated
#: reason for a download was shown to the officer whose recording it was: found by a review). An export in an
#: evidence package is such a read too, with its reason and package (a later review found it still shown).
ACCESS_KINDS = frozenset({CustodyKind.ACCESSED.value, CustodyKind.VIEWED.value, CustodyKind.ACCESS_REFUSED.value,
                          CustodyKind.EXPORTED.value})


def _custody(session: Session, recording_id: int, *, reader: str | None) -> tuple[list[dict[str, Any]], int]:
    """The recording's custody events, and how many were left out: with a *reader* (one who may not read the
    audit log), other people's reads of it (ACCESS_KINDS)."""
    events = session.exec(select(CustodyEvent).where(CustodyEvent.recording_id == recording_id)
                          .order_by(col(CustodyEvent.id)))
    shown, hidden = [], 0
    for e in events:
        if reader is not None and e.kind in ACCESS_KINDS and e.actor != reader:
            hidden += 1
            continue
        shown.append({"id": e.id, "kind": e.kind, "actor": e.actor, "at": _iso(e.at), "details": e.details,
                      "reason": (e.details or {}).get("reason") or "", "hash": e.hash})
    return shown, hidden


def recording_detail(session: Session, recording: Recording, policy: RetentionPolicy, *,
                     reader: str | None = None, reads_cases: bool = True) -> dict[str, Any]:
    """The recording with its sightings, stamp and integrity histories, cases, retention (the rule and every hold
    reason, pending-case holds included), housekeeping files, tombstone, derived media and custody events, in
    the shape the module docstring describes. *reader*: who asks, when they may not read the audit log: other
    people's reads of the recording are then left out, counted in `custody_reads_hidden`. *reads_cases*: whether
    the caller's roles read case files (an officer's do not: their cases are listed without titles)."""
    assert recording.id is not None
    data: dict[str, Any] = dict(recording_as_json(recording, sightings=sightings_of(session, recording.id)))
    data.update(_histories(session, recording.id))
    if not reads_cases:
        data["cases"] = _without_case_files(data["cases"])
    data["retention"] = _retention(session, recording, policy)
    data["redacted_copies"] = [
        {"id": r.id, "version": n, "original_name": r.original_name, "sha256": r.sha256, "state": r.state,
         "sensitivity": r.sensitivity} for n, r in enumerate(redacted_copies(session, recording.id), 1)]
    data["housekeeping_files"] = [
        {"id": r.id, "original_name": r.original_name, "media_kind": r.media_kind, "sha256": r.sha256}
        for r in session.exec(select(Recording).where(Recording.belongs_to_id == recording.id)
                              .order_by(col(Recording.id)))]
    data["disposal"] = _disposal(session, recording.id)
    data["derived"] = {d.kind: d.content_type for d in session.exec(
        select(DerivedMedia).where(DerivedMedia.recording_id == recording.id))}
    data["custody"], data["custody_reads_hidden"] = _custody(session, recording.id, reader=reader)
    data["has_proxy"] = "proxy" in data["derived"]
    data["media_work_failed"] = {f.kind: f.reason for f in media_failures(session, recording.id)}
    return data


def frame_rate(technical: dict[str, Any]) -> float:
    """Frames a second of a recording as ffprobe gave it (`25/1`, `30000/1001`), 25 when it is not known. Pure."""
    video = technical.get("video") if isinstance(technical, dict) else None
    text = str(video.get("frame_rate") or "") if isinstance(video, dict) else ""
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 25.0
    return round(value, 3) if 1 <= value <= 240 else 25.0
