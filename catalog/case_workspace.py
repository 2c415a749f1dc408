"""A case as the people working it see it: one timeline of its recordings and text records by capture time (with
officer, place, duration, retention and holds, and whether a picture or browser copy exists), the releases and
exported packages its items went into, all limited to the caller's scope.

The case page and `GET /api/cases/{number}` both answer with this; nothing here writes (opening a case is the
caller's `viewed` event).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.access import Scope, case_in_scope
from catalog.case_models import Case
from catalog.classification import class_refusals
from catalog.custody import CustodyKind
from catalog.listings import result_facts
from catalog.models import CustodyEvent, Recording, Release, ReleaseItem
from catalog.releases import release_in_scope
from catalog.retention import RetentionPolicy
from catalog.retention_job import decide_for
from catalog.user_models import User
from catalog.users import PERMISSIONS

__all__ = ["case_workspace", "playable_for", "timeline_order"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def timeline_order(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items by capture time, earliest first; those without one (a text record with no date, a device with no
    clock) after them, by id. An impossible clock (time_implausible) still sorts by what it says: the page marks
    it. Pure."""
    return sorted(items, key=lambda i: (i["captured_start"] is None, i["captured_start"] or "", i["recording_id"]))


def _timeline(session: Session, items: list[dict[str, Any]], policy: RetentionPolicy | None) -> list[dict[str, Any]]:
    ids = [int(i["recording_id"]) for i in items]
    rows = {r.id: r for start in range(0, len(ids), 500)
            for r in session.exec(select(Recording).where(col(Recording.id).in_(ids[start:start + 500])))}
    facts = result_facts(session, ids)
    holds = ({rid: d.hold_reasons for rid, d in decide_for(session, list(rows.values()), policy).items()}
             if policy is not None else {})
    merged = []
    for item in items:
        r = rows[item["recording_id"]]
        fact = facts[item["recording_id"]]
        merged.append({**item, "captured_start": _iso(r.captured_start), "captured_end": _iso(r.captured_end),
                       "time_implausible": r.time_implausible, "duration_s": r.duration_s,
                       "officer_number": r.officer_number, "officer_name": r.officer_name,
                       "station_code": r.station_code, "lat": r.lat, "lon": r.lon,
                       "retention_rule": r.retention_rule, "hold_reasons": list(holds.get(item["recording_id"], ())),
                       "integrity_status": r.integrity_status,
                       "thumbnail": "thumbnail" in fact.derived, "playable": "proxy" in fact.derived,
                       "failed": dict(fact.failed)})
    return timeline_order(merged)


def _releases(session: Session, scope: Scope, ids: list[int]) -> list[dict[str, Any]]:
    """Releases holding any of *ids* that lie wholly in *scope* (as the releases page shows them), newest
    first, with how many of the case's items each holds."""
    held: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        for release_id in session.exec(select(ReleaseItem.release_id).where(
                col(ReleaseItem.recording_id).in_(ids[start:start + 500]))):
            held[release_id] = held.get(release_id, 0) + 1
    releases = session.exec(select(Release).where(col(Release.id).in_(list(held))).order_by(col(Release.id).desc()))
    return [{"id": r.id, "kind": r.kind, "title": r.title, "recipient": r.recipient, "state": r.state,
             "proposed_at": _iso(r.proposed_at), "decided_at": _iso(r.decided_at), "case_items": held[r.id or 0]}
            for r in releases if release_in_scope(session, scope, r)]


def _exports(session: Session, ids: list[int], reader: str | None) -> list[dict[str, Any]]:
    """Packages any of *ids* were exported in (their `exported` events), newest first, with how many of the
    case's items each holds; only *reader*'s own unless *reader* is None (who may read the audit log: who exported
    what and why is theirs to see, as on a recording's page, catalog.detail). One package per build: every web
    export of a case has the same file name, its tag manifest tells the builds apart."""
    packages: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        query = select(CustodyEvent).where(CustodyEvent.kind == CustodyKind.EXPORTED.value,
                                           col(CustodyEvent.recording_id).in_(ids[start:start + 500]))
        if reader is not None:
            query = query.where(CustodyEvent.actor == reader)
        for event in session.exec(query.order_by(col(CustodyEvent.id))):
            name = str(event.details.get("package") or "-")
            build = str(event.details.get("tagmanifest_sha256") or event.details.get("anchor") or event.id)
            entry = packages.setdefault((name, build), {
                "package": name, "tagmanifest_sha256": event.details.get("tagmanifest_sha256"),
                "at": _iso(event.at), "by": event.actor, "reason": event.details.get("reason") or "",
                "case": event.details.get("case"), "case_items": 0})
            entry["case_items"] += 1
    return sorted(packages.values(), key=lambda p: p["at"] or "", reverse=True)


def playable_for(session: Session, user: User, timeline: list[dict[str, Any]]) -> list[int]:
    """The timeline's items with a browser copy that *user* may play (role, and class: a state secret or a
    personal recording needs a grant, the collecting officer or the custodian), in timeline order: the case's
    playlist, never an item the server would then refuse."""
    if not user.active or not PERMISSIONS["play"] & set(user.roles):  # the role rule check_access applies
        return []
    ids = [int(i["recording_id"]) for i in timeline if i["playable"]]
    rows = list(session.exec(select(Recording).where(col(Recording.id).in_(ids)))) if ids else []
    refused = {rid for rid, _why in class_refusals(session, user, rows, "play")}
    return [rid for rid in ids if rid not in refused]


def case_workspace(session: Session, case: Case, scope: Scope, policy: RetentionPolicy | None = None, *,
                   reader: str | None = None) -> dict[str, Any]:
    """catalog.access.case_in_scope, with `timeline` (its recordings and text records in scope, in capture
    order, each with why it is held now under *policy*: catalog.retention_job.decide_for), `releases` and
    `exports` (of those items only; only *reader*'s own exports unless *reader* is None)."""
    data = case_in_scope(session, case, scope, policy)
    items = [*data["recordings"], *data["documents"]]
    ids = [int(i["recording_id"]) for i in items]
    data["timeline"] = _timeline(session, items, policy)
    data["releases"] = _releases(session, scope, ids)
    data["exports"] = _exports(session, ids, reader)
    return data
