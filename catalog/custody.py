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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text, update
from sqlmodel import Session, select

from catalog.models import CustodyEvent, CustodyHead
from catalog.types import utcnow

_EVENT = CustodyEvent.__table__  # type: ignore[attr-defined]
_HEAD = CustodyHead.__table__  # type: ignore[attr-defined]

__all__ = ["GENESIS_HASH", "CustodyKind", "append_event", "event_hash", "find_chain_breaks", "load_chain",
           "stored_event_hash"]

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
    ACCESS_REFUSED = "access_refused"  # someone asked for a recording outside their scope (their units, their own)
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
    USER_CHANGED = "user_changed"  # a user added, given roles or a password, or deactivated
    REGISTRY_CHANGED = "registry_changed"  # an officer, station or device record changed (old and new values)
    SIGNED_IN = "signed_in"
    SIGN_IN_FAILED = "sign_in_failed"  # wrong password, unknown user, or locked out
    SIGNED_OUT = "signed_out"
    SPOT_CHECK_DRAWN = "spot_check_drawn"  # a random sample drawn (criteria, seed, population, the ids)
    REVIEWED = "reviewed"  # a spot-check outcome recorded for a recording
    VERIFICATION_RUN = "verification_run"  # `evidence verify` ran: what it checked and what it found
    INTEGRITY_CHECKED = "integrity_checked"  # a later integrity check (decoding) added a verdict; the first is kept
    DISCARDED = "discarded"  # files a device profile marks as disposable derivatives, not copied (listed with why)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def event_body(*, kind: str, recording_id: int | None, dock_session_id: int | None, actor: str, at: datetime,
               details: dict[str, Any]) -> str:
    """The canonical JSON an event's hash covers (after the previous hash and a newline)."""
    return _canonical({
        "kind": kind, "recording_id": recording_id, "dock_session_id": dock_session_id, "actor": actor,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "details": details,
    })


def event_hash(prev_hash: str, *, kind: str, recording_id: int | None, dock_session_id: int | None,
               actor: str, at: datetime, details: dict[str, Any]) -> str:
    """SHA-256 over the previous hash, a newline and the event's canonical JSON."""
    body = event_body(kind=kind, recording_id=recording_id, dock_session_id=dock_session_id, actor=actor, at=at,
                      details=details)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


#: PostgreSQL appends in one statement: lock the head, hash (the same formula as `event_hash`, with the
#: server's sha256()), insert, move the head. One round trip per event.
_PG_APPEND = text("""
WITH head AS (SELECT last_hash FROM custody_head WHERE id = 1 FOR UPDATE),
added AS (
    INSERT INTO custody_event (kind, recording_id, dock_session_id, actor, at, details, prev_hash, hash)
    SELECT :kind, :recording_id, :dock_session_id, :actor, :at, CAST(:details AS JSON), head.last_hash,
           encode(sha256(convert_to(head.last_hash || chr(10) || :body, 'UTF8')), 'hex')
    FROM head
    RETURNING id, prev_hash, hash)
UPDATE custody_head SET last_event_id = added.id, last_hash = added.hash FROM added WHERE custody_head.id = 1
RETURNING added.id, added.prev_hash, added.hash
""")


@dataclass
class _Head:
    transaction: Any
    last_event_id: int | None
    last_hash: str


def _locked_head(session: Session) -> _Head:
    """The chain head, locked once per transaction (later appends in it reuse the lock and the cached head)."""
    transaction = session.get_transaction()
    cached = session.info.get("custody_head")
    if isinstance(cached, _Head) and transaction is not None and cached.transaction is transaction:
        return cached
    if session.get_bind().dialect.name == "sqlite":
        # SQLite ignores FOR UPDATE and pysqlite starts no transaction for a SELECT: take the write lock
        # first with a no-op write, so no other writer can commit between reading the head and moving it.
        session.execute(text("UPDATE custody_head SET last_hash = last_hash WHERE id = 1"))
    row = session.execute(select(_HEAD.c.last_event_id, _HEAD.c.last_hash).where(_HEAD.c.id == 1)
                          .with_for_update()).first()
    if row is None:  # a catalogue from before migration 0006 made the row
        session.execute(insert(_HEAD).values(id=1, last_event_id=None, last_hash=GENESIS_HASH))
        head = _Head(session.get_transaction(), None, GENESIS_HASH)
    else:
        head = _Head(session.get_transaction(), row[0], row[1])
    session.info["custody_head"] = head
    return head


def append_event(session: Session, kind: CustodyKind, *, actor: str, recording_id: int | None = None,
                 dock_session_id: int | None = None, details: dict[str, Any] | None = None,
                 at: datetime | None = None) -> CustodyEvent:
    """Add one event to the chain inside the caller's transaction (one round trip on PostgreSQL).

    Returns the event as written (not attached to the session).
    """
    # JSON round-trip first, so the hash covers exactly what the database will return.
    details = json.loads(_canonical(details or {}))
    at = at or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        body = event_body(kind=kind.value, recording_id=recording_id, dock_session_id=dock_session_id, actor=actor,
                          at=at, details=details)
        params = {"kind": kind.value, "recording_id": recording_id, "dock_session_id": dock_session_id,
                  "actor": actor, "at": at.astimezone(UTC).replace(tzinfo=None), "details": _canonical(details),
                  "body": body}
        row = session.execute(_PG_APPEND, params).one_or_none()
        if row is None:  # the head row was deleted behind our back: start it again as on SQLite (verify names it)
            session.execute(insert(_HEAD).values(id=1, last_event_id=None, last_hash=GENESIS_HASH))
            row = session.execute(_PG_APPEND, params).one()
        return CustodyEvent(id=row[0], kind=kind.value, recording_id=recording_id, dock_session_id=dock_session_id,
                            actor=actor, at=at, details=details, prev_hash=row[1], hash=row[2])
    head = _locked_head(session)
    digest = event_hash(head.last_hash, kind=kind.value, recording_id=recording_id,
                        dock_session_id=dock_session_id, actor=actor, at=at, details=details)
    values: dict[str, Any] = {"kind": kind.value, "recording_id": recording_id, "dock_session_id": dock_session_id,
                              "actor": actor, "at": at, "details": details, "prev_hash": head.last_hash,
                              "hash": digest}
    event_id = session.execute(insert(_EVENT).values(**values).returning(_EVENT.c.id)).scalar_one()
    session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(last_event_id=event_id, last_hash=digest))
    head.last_event_id, head.last_hash = event_id, digest
    return CustodyEvent(id=event_id, **values)


def stored_event_hash(event: CustodyEvent) -> str:
    """What *event*'s hash must be, recomputed from the row as stored (its prev_hash and its content)."""
    assert event.at is not None
    return event_hash(event.prev_hash, kind=event.kind, recording_id=event.recording_id,
                      dock_session_id=event.dock_session_id, actor=event.actor, at=event.at, details=event.details)


def load_chain(session: Session) -> list[CustodyEvent]:
    return list(session.exec(select(CustodyEvent).order_by(CustodyEvent.id)))  # type: ignore[arg-type]


def find_chain_breaks(events: Iterable[CustodyEvent], *, head_hash: str | None = None) -> list[str]:
    """Every place the chain does not verify (empty list: intact)."""
    problems: list[str] = []
    prev = GENESIS_HASH
    for event in events:
        if event.prev_hash != prev:
            problems.append(f"event {event.id}: prev_hash {event.prev_hash[:12]}… does not follow {prev[:12]}…")
        expected = stored_event_hash(event)
        if expected != event.hash:
            problems.append(f"event {event.id} ({event.kind}): content does not match its hash "
                            f"(stored {event.hash[:12]}…, computed {expected[:12]}…)")
        prev = event.hash
    if head_hash is not None and head_hash != prev:
        problems.append(f"chain head {head_hash[:12]}… is not the last event's hash {prev[:12]}…")
    return problems
