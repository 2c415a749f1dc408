"""The custody chain in a package: the package's own events in full, and the stretch of chain around them.

* data/custody/events.jsonl: every event of the package's items (and, for a case, the case's own events) up to
  the export anchor, with its chain version and the exact bytes its hash covers (`body`), so an examiner hashes
  those bytes instead of re-canonicalising the readable fields.
* data/custody/chain.jsonl: EVERY event id from the older anchor's event (or the first of those events) through the
  export anchor's event, in id order: the package's own events as `{"id", "full": true, "chain_version", "prev_hash",
  "hash"}`; any other version-2 event as a digest-only row (catalog.event_hashes.digest_row: its link checks without
  its content); any other version-1 event as `{"id", "chain_version": 1, "prev_hash", "hash", "body_withheld": true}`
  (a version-1 hash needs the whole body, which belongs to someone else's recording: linkage only).
  So the examiner sees the chain unbroken from the first event of the package up to a hash signed into WORM
  storage, without seeing anyone else's evidence. Chains have millions of rows: read in id order, in batches, in
  a session of its own, and written as read.
"""
from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from catalog.case_models import Case
from catalog.custody import stream_events
from catalog.event_hashes import digest_row, stored_event_body
from catalog.models import CustodyEvent
from catalog.premis import premis_fields

__all__ = ["BATCH", "chain_row", "event_line", "package_events", "write_chain", "write_events"]

#: Rows read per query while the chain stretch is written.
BATCH = 5000


def package_events(session: Session, ids: list[int], case: Case | None, *, through: int) -> list[CustodyEvent]:
    """The items' custody events and (for a case) the case's own events up to event *through*, in chain order."""
    events = list(session.exec(select(CustodyEvent).where(col(CustodyEvent.recording_id).in_(ids),
                                                          col(CustodyEvent.id) <= through)
                               .order_by(col(CustodyEvent.id))))
    if case is not None:
        named = col(CustodyEvent.details)["case"].as_string() == case.number
        events += session.exec(select(CustodyEvent).where(col(CustodyEvent.recording_id).is_(None), named,
                                                          col(CustodyEvent.id) <= through))
        events.sort(key=lambda e: e.id or 0)
    return events


def event_line(e: CustodyEvent) -> dict[str, Any]:
    """One line of events.jsonl: the event, its chain version and the exact bytes its hash covers (`body`)."""
    assert e.at is not None
    return {"id": e.id, "kind": e.kind, "at": e.at.astimezone(UTC).isoformat(timespec="microseconds"), "actor": e.actor,
            "recording_id": e.recording_id, "dock_session_id": e.dock_session_id, "details": e.details,
            "chain_version": e.chain_version, "body": stored_event_body(e).decode("utf-8"),
            "prev_hash": e.prev_hash, "hash": e.hash, **premis_fields(e.kind)}


def write_events(path: Path, events: list[CustodyEvent]) -> None:
    """Write events.jsonl."""
    with path.open("w", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event_line(event), ensure_ascii=False, sort_keys=True) + "\n")


def chain_row(event: CustodyEvent, *, full: bool) -> dict[str, Any]:
    """One line of chain.jsonl (see the module's docstring). Pure."""
    if full:
        return {"id": event.id, "full": True, "chain_version": event.chain_version, "prev_hash": event.prev_hash,
                "hash": event.hash}
    if event.chain_version == 2:
        return digest_row(event)
    return {"id": event.id, "chain_version": event.chain_version, "prev_hash": event.prev_hash, "hash": event.hash,
            "body_withheld": True}


def write_chain(session: Session, path: Path, *, first: int, last: int, full: set[int]) -> int:
    """Write chain.jsonl for events *first*..*last* (*full*: the ids shipped whole in events.jsonl); its rows."""
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for event in stream_events(session, first=first, last=last, batch=BATCH):
            fh.write(json.dumps(chain_row(event, full=event.id in full), sort_keys=True) + "\n")
            count += 1
    return count
