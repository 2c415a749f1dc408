"""Custody anchors: the chain head, signed and written to WORM storage, so a rewritten database is caught.

An anchor names the last event (id and hash) at the time it was written.
Anyone holding the store can later check that the catalogue's event with
that id still has that hash; rewriting, deleting or reordering history
before an anchor cannot be hidden without also rewriting WORM objects, which
Object Lock forbids. `check_anchors` is pure.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlmodel import Session, col, select

from catalog.manifests import ensure_station_key, software_version
from catalog.models import CustodyAnchor, CustodyHead
from catalog.signing import SignatureInvalid, sign_document, verify_document
from storage import EvidenceStore

__all__ = ["ANCHOR_FORMAT", "Anchor", "check_anchors", "read_anchors", "write_anchor"]

ANCHOR_FORMAT = "evidence-custody-anchor/1"
ANCHOR_PREFIX = "custody/"
#: Anchors are kept for good; WORM storage needs a date, so: a century.
ANCHOR_RETENTION = relativedelta(years=100)


@dataclass(frozen=True)
class Anchor:
    name: str  # record name in the store
    last_event_id: int
    last_hash: str
    written_at: str
    station: str
    key_fingerprint: str


def write_anchor(session: Session, store: EvidenceStore, *, station: str, key: Any, actor: str,
                 now: datetime, force: bool = False) -> CustodyAnchor | None:
    """Write the current chain head to the store (signed); None if the head is already anchored."""
    head = session.get(CustodyHead, 1, populate_existing=True)
    if head is None or head.last_event_id is None:
        return None
    latest = session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.last_event_id).desc())).first()
    if latest is not None and latest.last_event_id == head.last_event_id and not force:
        return None
    ensure_station_key(session, station, key, actor=actor)
    session.flush()
    head = session.get(CustodyHead, 1, populate_existing=True)  # registering the key may have appended an event
    assert head is not None and head.last_event_id is not None
    body = {"format": ANCHOR_FORMAT, "last_event_id": head.last_event_id, "last_hash": head.last_hash,
            "written_at": now.isoformat(), "station": station,
            "software": {"name": "evidence-ingest", "version": software_version()}}
    document = sign_document(body, key)
    name = f"{ANCHOR_PREFIX}anchor-{head.last_event_id:012d}-{station}-{now.strftime('%Y%m%dT%H%M%S%f')}.json"
    store.put_record(name, json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode(),
                     retain_until=now + ANCHOR_RETENTION)
    row = CustodyAnchor(last_event_id=head.last_event_id, last_hash=head.last_hash, written_at=now,
                        written_by=actor, record_name=name,
                        key_fingerprint=document["signature"]["key_fingerprint"])
    session.add(row)
    session.commit()
    return row


def read_anchors(store: EvidenceStore, *, trusted: set[str] | None) -> tuple[list[Anchor], list[tuple[str, str]]]:
    """Every anchor in the store whose signature verifies, and (name, problem) for each that does not."""
    anchors: list[Anchor] = []
    problems: list[tuple[str, str]] = []
    for name in store.list_records(ANCHOR_PREFIX):
        try:
            document = json.loads(store.get_record(name))
            body = verify_document(document, trusted_fingerprints=trusted)
            anchors.append(Anchor(name=name, last_event_id=int(body["last_event_id"]), last_hash=body["last_hash"],
                                  written_at=body["written_at"], station=body["station"],
                                  key_fingerprint=document["signature"]["key_fingerprint"]))
        except (SignatureInvalid, KeyError, ValueError, TypeError) as exc:
            problems.append((name, f"the anchor cannot be trusted: {exc}"))
    return anchors, problems


def check_anchors(anchors: list[Anchor], hashes: Mapping[int, str],
                  last_event_id: int | None) -> list[tuple[str, str]]:
    """(anchor name, problem) for every anchor the chain no longer agrees with.

    *hashes*: event id -> hash, for the anchored ids the catalogue still has.
    """
    problems: list[tuple[str, str]] = []
    for anchor in anchors:
        found = hashes.get(anchor.last_event_id)
        if found is None:
            problems.append((anchor.name, f"written {anchor.written_at}, it names event {anchor.last_event_id} "
                            f"with hash {anchor.last_hash[:16]}…; the catalogue has no event {anchor.last_event_id}"
                            f" (deleted, or the chain was cut back to event {last_event_id})"))
        elif found != anchor.last_hash:
            problems.append((anchor.name, f"written {anchor.written_at}, it says event {anchor.last_event_id} "
                            f"has hash {anchor.last_hash[:16]}…; the catalogue's event has {found[:16]}… "
                            "(history up to that event was rewritten)"))
    return problems
