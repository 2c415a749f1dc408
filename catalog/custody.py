"""The custody log: every state change and access, linked in a SHA-256 chain.

Each event's hash covers the previous hash and the event's canonical JSON,
so editing, deleting or reordering rows in the database breaks the chain.
`event_hash` and `find_chain_breaks` are pure; `append_event` serialises
appends by locking the single chain-head row.
"""
from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from catalog.models import CustodyEvent, CustodyHead
from catalog.types import utcnow

__all__ = ["GENESIS_HASH", "CustodyKind", "append_event", "event_hash", "find_chain_breaks", "load_chain"]

#: prev_hash of the first event.
GENESIS_HASH = "0" * 64


class CustodyKind(enum.StrEnum):
    DOCKED = "docked"  # a device was docked and a session began
    COPIED = "copied"  # bytes copied off the device and hashed
    SIGHTED = "sighted"  # known bytes seen again (another device or path)
    ARCHIVED = "archived"  # written to the WORM store
    VERIFIED = "verified"  # stored copy confirmed equal to the ingest hash
    MANIFESTED = "manifested"  # a signed manifest (one stamp revision) written to WORM storage
    KEY_REGISTERED = "key_registered"  # a station's public signing key entered the catalog
    STAMPED = "stamped"  # first evidence stamp
    RESTAMPED = "restamped"  # a stamp revision
    ACCESSED = "accessed"  # original bytes read (cat, play, download)
    VIEWED = "viewed"  # catalog entry shown
    EXPORTED = "exported"
    RETENTION_CHANGED = "retention_changed"
    LEGAL_HOLD = "legal_hold"
    DISPOSED = "disposed"
    INGEST_FAILED = "ingest_failed"  # a file could not be preserved; why
    UNDOCKED = "undocked"  # session finished
    CLEARED = "cleared"  # the device's copy was deleted after the archived copy was verified
    CASE_OPENED = "case_opened"
    CASE_LINKED = "case_linked"  # a recording or document now serves a case (with its purpose)
    CASE_UNLINKED = "case_unlinked"
    CASE_CLOSED = "case_closed"
    CASE_REOPENED = "case_reopened"
    DOCUMENT_ATTACHED = "document_attached"  # a text record stored in WORM storage for a case
    DISPOSAL_PROPOSED = "disposal_proposed"  # a sweep listed what is due and awaits approval
    DISPOSAL_APPROVED = "disposal_approved"
    DISPOSAL_FAILED = "disposal_failed"  # a due item was refused (by rule or by the store)
    DISPOSAL_RECORDED = "disposal_recorded"  # the signed disposal record was written to WORM storage
    FIXITY_FAILED = "fixity_failed"  # a check found stored bytes, catalogue or manifest not as recorded
    USER_CHANGED = "user_changed"  # a user added, given roles or deactivated
    VERIFICATION_RUN = "verification_run"  # `evidence verify` ran: what it checked and what it found


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def event_hash(prev_hash: str, *, kind: str, recording_id: int | None, dock_session_id: int | None,
               actor: str, at: datetime, details: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the event's canonical JSON."""
    body = _canonical({
        "kind": kind, "recording_id": recording_id, "dock_session_id": dock_session_id, "actor": actor,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "details": details,
    })
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _locked_head(session: Session) -> CustodyHead:
    """The chain head, locked FOR UPDATE once per transaction (later appends reuse the lock)."""
    transaction = session.get_transaction()
    cached = session.info.get("custody_head")
    if cached is not None and transaction is not None and cached[0] is transaction:
        head: CustodyHead = cached[1]
        return head
    if session.get_bind().dialect.name == "sqlite":
        # SQLite ignores FOR UPDATE and pysqlite starts no transaction for a SELECT: take the write lock
        # first with a no-op write, so no other writer can commit between reading the head and moving it.
        session.execute(text("UPDATE custody_head SET last_hash = last_hash WHERE id = 1"))
    found = session.exec(select(CustodyHead).where(CustodyHead.id == 1).with_for_update()
                         .execution_options(populate_existing=True)).first()
    if found is None:
        found = CustodyHead(id=1, last_event_id=None, last_hash=GENESIS_HASH)
        session.add(found)
    session.info["custody_head"] = (session.get_transaction(), found)
    return found


def append_event(session: Session, kind: CustodyKind, *, actor: str, recording_id: int | None = None,
                 dock_session_id: int | None = None, details: dict[str, Any] | None = None,
                 at: datetime | None = None) -> CustodyEvent:
    """Add one event to the chain inside the caller's transaction."""
    # JSON round-trip first, so the hash covers exactly what the database will return.
    details = json.loads(_canonical(details or {}))
    at = at or utcnow()
    head = _locked_head(session)
    digest = event_hash(head.last_hash, kind=kind.value, recording_id=recording_id,
                        dock_session_id=dock_session_id, actor=actor, at=at, details=details)
    event = CustodyEvent(kind=kind.value, recording_id=recording_id, dock_session_id=dock_session_id,
                         actor=actor, at=at, details=details, prev_hash=head.last_hash, hash=digest)
    session.add(event)
    session.flush()
    head.last_event_id = event.id
    head.last_hash = digest
    session.add(head)
    return event


def load_chain(session: Session) -> list[CustodyEvent]:
    return list(session.exec(select(CustodyEvent).order_by(CustodyEvent.id)))  # type: ignore[arg-type]


def find_chain_breaks(events: Iterable[CustodyEvent], *, head_hash: str | None = None) -> list[str]:
    """Every place the chain does not verify (empty list: intact)."""
    problems: list[str] = []
    prev = GENESIS_HASH
    for event in events:
        if event.prev_hash != prev:
            problems.append(f"event {event.id}: prev_hash {event.prev_hash[:12]}… does not follow {prev[:12]}…")
        assert event.at is not None
        expected = event_hash(event.prev_hash, kind=event.kind, recording_id=event.recording_id,
                              dock_session_id=event.dock_session_id, actor=event.actor, at=event.at,
                              details=event.details)
        if expected != event.hash:
            problems.append(f"event {event.id} ({event.kind}): content does not match its hash "
                            f"(stored {event.hash[:12]}…, computed {expected[:12]}…)")
        prev = event.hash
    if head_hash is not None and head_hash != prev:
        problems.append(f"chain head {head_hash[:12]}… is not the last event's hash {prev[:12]}…")
    return problems
