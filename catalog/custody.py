"""The custody log: every state change and access, linked in a SHA-256 chain.

Each event's hash covers the previous hash and the event's canonical JSON
(the formulas, versions 1 and 2, are in catalog.event_hashes), so editing,
deleting or reordering rows in the database breaks the chain.
`find_chain_breaks` is pure; `append_events` (and `append_event`, the batch
of one) serialises appends by locking the single chain-head row and writes
version-2 events.

The head is every writer's first lock (`catalog.db.begin_write`): an append
takes it before the changes pending in the caller's session are flushed, so a
transaction that changed a recording and then records why never holds the
recording's row while it waits for the head (the archive step holds the head
and then locks that row: PostgreSQL had resolved the cycle by killing one).
"""
from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, text, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from catalog.canonical import json_values, legacy_json
from catalog.event_hashes import (
    CHAIN_VERSION,
    GENESIS_HASH,
    event_body,
    event_hash,
    link_hash,
    stored_event_hash,
    version_problem,
)
from catalog.models import CustodyEvent, CustodyHead
from catalog.types import utcnow

_EVENT = CustodyEvent.__table__  # type: ignore[attr-defined]
_HEAD = CustodyHead.__table__  # type: ignore[attr-defined]

__all__ = ["GENESIS_HASH", "CustodyKind", "NewEvent", "append_event", "append_events", "event_hash",
           "find_chain_breaks", "load_chain", "stored_event_hash", "stream_events"]


class CustodyKind(enum.StrEnum):
    DOCKED = "docked"  # a device was docked and a session began
    COPIED = "copied"  # bytes copied off the device and hashed
    SIGHTED = "sighted"  # known bytes seen again (another device or path)
    ARCHIVED = "archived"  # written to the WORM store
    VERIFIED = "verified"  # stored copy confirmed equal to the ingest hash
    MANIFESTED = "manifested"  # a signed manifest (one stamp revision) written to WORM storage
    KEY_REGISTERED = "key_registered"  # a station's public signing key entered the catalog
    ROOT_KEY_CREATED = "root_key_created"  # the agency root key and its self-signed certificate (catalog.key_certs)
    KEY_CERTIFIED = "key_certified"  # the root issued a certificate for a station key or the export key
    KEY_REVOKED = "key_revoked"  # the root revoked a key from a time on (signed statement in WORM storage)
    KEY_ROTATED = "key_rotated"  # a station's key replaced by a new, certified one; the old one retired
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
    CASE_ACTION_RECORDED = "case_action_recorded"  # an enforcement action of a case entered, imported or corrected
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
    SPOT_CHECK_SIGNED = "spot_check_signed"  # a drawn reviewer signed the check off: its signed result in WORM storage
    VERIFICATION_RUN = "verification_run"  # `evidence verify` ran: what it checked and what it found
    INTEGRITY_CHECKED = "integrity_checked"  # a later integrity check (decoding) added a verdict; the first is kept
    DISCARDED = "discarded"  # files a device profile marks as disposable derivatives, not copied (listed with why)
    POLICY_ADOPTED = "policy_adopted"  # the retention policy in force: its terms whole, fingerprint, what it replaces
    CLASSIFIED = "classified"  # a recording's or case's sensitivity class changed (from, to, reason)
    ACCESS_GRANTED = "access_granted"  # a person given access to a case's classed recordings (until, why)
    ACCESS_REVOKED = "access_revoked"  # such a grant ended before its time
    REDACTED = "redacted"  # a redacted copy of a recording made: a recording of its own; the original untouched
    RELEASE_PROPOSED = "release_proposed"  # asked to be published (公示) or transferred (移送) in a release
    RELEASE_APPROVED = "release_approved"  # legal review approved the release; the signed decision is in WORM storage
    RELEASE_REJECTED = "release_rejected"  # legal review refused the release (signed too)
    RELEASE_WITHDRAWN = "release_withdrawn"  # a proposed or approved release withdrawn (signed too)
    SHARE_CREATED = "share_created"  # a link handing an approved release to one named recipient (until when)
    SHARE_OPENED = "share_opened"  # the recipient used the link's one-time code
    SHARE_DOWNLOADED = "share_downloaded"  # the recipient downloaded an item through the link
    SHARE_REVOKED = "share_revoked"  # the link ended before its time (by a person, or after too many wrong codes)
    SNAPSHOT_TAKEN = "snapshot_taken"  # a still of one frame kept as a record of a case (position, reason, the still)
    DEVICE_CLOCK_SET = "device_clock_set"  # 校时: the station's time written to a docked device


#: PostgreSQL appends in one statement: lock the head, hash (the version-2 formula of catalog.event_hashes, with
#: the server's sha256() over the head's hash and the body digest Python computed), insert, move the head. One
#: round trip per event.
_PG_APPEND = text("""
WITH head AS (SELECT last_hash FROM custody_head WHERE id = 1 FOR UPDATE),
added AS (
    INSERT INTO custody_event (kind, recording_id, dock_session_id, actor, at, details, prev_hash, hash,
                               chain_version)
    SELECT :kind, :recording_id, :dock_session_id, :actor, :at, CAST(:details AS JSON), head.last_hash,
           encode(sha256(convert_to(head.last_hash || :body_sha256, 'UTF8')), 'hex'), :chain_version
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


@sa_event.listens_for(OrmSession, "after_soft_rollback")
def _forget_head(session: OrmSession, previous_transaction: SessionTransaction) -> None:
    """A rollback (a savepoint's too) may undo appends made since the head was cached: read it again next time."""
    session.info.pop("custody_head", None)


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


@dataclass(frozen=True)
class NewEvent:
    """One custody event to append (`append_events`); *at* None: the moment it is appended."""

    kind: CustodyKind
    actor: str
    recording_id: int | None = None
    dock_session_id: int | None = None
    details: dict[str, Any] | None = None
    at: datetime | None = None


def append_event(session: Session, kind: CustodyKind, *, actor: str, recording_id: int | None = None,
                 dock_session_id: int | None = None, details: dict[str, Any] | None = None,
                 at: datetime | None = None) -> CustodyEvent:
    """Add one event to the chain inside the caller's transaction (`append_events` of one; one round trip on
    PostgreSQL).

    Returns the event as written (not attached to the session).
    """
    event = NewEvent(kind, actor, recording_id=recording_id, dock_session_id=dock_session_id, details=details, at=at)
    if session.get_bind().dialect.name == "postgresql":
        return _pg_append_one(session, event)
    ((event_id, row),) = _append(session, [event])
    return CustodyEvent(id=event_id, **row)


def _pg_append_one(session: Session, event: NewEvent) -> CustodyEvent:
    """One event in one statement: the server locks the head, links the event to it and moves it."""
    details, at, body = _prepared(event)
    params = {"kind": event.kind.value, "recording_id": event.recording_id, "dock_session_id": event.dock_session_id,
              "actor": event.actor, "at": at.astimezone(UTC).replace(tzinfo=None),
              "details": legacy_json(details).decode(), "body_sha256": hashlib.sha256(body).hexdigest(),
              "chain_version": CHAIN_VERSION}
    with session.no_autoflush:  # the head before the rows: changes pending in *session* are written after it
        row = session.execute(_PG_APPEND, params).one_or_none()
        if row is None:  # the head row was deleted behind our back: start it again as on SQLite (verify names it)
            session.execute(insert(_HEAD).values(id=1, last_event_id=None, last_hash=GENESIS_HASH))
            row = session.execute(_PG_APPEND, params).one()
    return CustodyEvent(id=row[0], kind=event.kind.value, recording_id=event.recording_id,
                        dock_session_id=event.dock_session_id, actor=event.actor, at=at, details=details,
                        prev_hash=row[1], hash=row[2], chain_version=CHAIN_VERSION)


def _prepared(event: NewEvent) -> tuple[dict[str, Any], datetime, bytes]:
    """The event's details as the database gives them back, its time, and the canonical body its hash covers."""
    # JSON round-trip first, so the hash covers exactly what the database will return.
    details = json_values(event.details or {})
    at = event.at or utcnow()
    body = event_body(CHAIN_VERSION, kind=event.kind.value, recording_id=event.recording_id,
                      dock_session_id=event.dock_session_id, actor=event.actor, at=at, details=details)
    return details, at, body


def _pg_locked_head(session: Session) -> _Head:
    """The chain head on PostgreSQL, locked FOR UPDATE until the transaction ends (read afresh each time: a single
    append moves it on the server)."""
    row = session.execute(select(_HEAD.c.last_event_id, _HEAD.c.last_hash).where(_HEAD.c.id == 1)
                          .with_for_update()).first()
    if row is None:  # the head row was deleted behind our back: start it again (verify names it)
        session.execute(insert(_HEAD).values(id=1, last_event_id=None, last_hash=GENESIS_HASH))
        return _Head(session.get_transaction(), None, GENESIS_HASH)
    return _Head(session.get_transaction(), row[0], row[1])


def append_events(session: Session, events: Sequence[NewEvent]) -> list[int]:
    """Add *events* to the chain, in their order, inside the caller's transaction: the head is locked and read once,
    each link hashed here, the rows inserted in one statement and the head moved once.

    Returns the ids of the events as written, in the order given. (One event on PostgreSQL: one round trip.)
    """
    if len(events) == 1 and session.get_bind().dialect.name == "postgresql":
        appended = _pg_append_one(session, events[0])
        assert appended.id is not None
        return [appended.id]
    return [event_id for event_id, _row in _append(session, events)]


def _append(session: Session, events: Sequence[NewEvent]) -> list[tuple[int, dict[str, Any]]]:
    """`append_events`, returning each event's id and the values of its row."""
    if not events:
        return []
    with session.no_autoflush:  # the head before the rows: changes pending in *session* are written after it
        return _append_unflushed(session, events)


def _append_unflushed(session: Session, events: Sequence[NewEvent]) -> list[tuple[int, dict[str, Any]]]:
    head = _pg_locked_head(session) if session.get_bind().dialect.name == "postgresql" else _locked_head(session)
    rows: list[dict[str, Any]] = []
    prev = head.last_hash
    for event in events:
        details, at, body = _prepared(event)
        digest = link_hash(CHAIN_VERSION, prev, body)
        rows.append({"kind": event.kind.value, "recording_id": event.recording_id,
                     "dock_session_id": event.dock_session_id, "actor": event.actor, "at": at, "details": details,
                     "prev_hash": prev, "hash": digest, "chain_version": CHAIN_VERSION})
        prev = digest
    ids = list(session.execute(insert(_EVENT).returning(_EVENT.c.id, sort_by_parameter_order=True), rows).scalars())
    if len(ids) != len(rows):
        raise RuntimeError(f"custody append: {len(rows)} events inserted but {len(ids)} ids came back")
    session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(last_event_id=ids[-1], last_hash=prev))
    head.last_event_id, head.last_hash = ids[-1], prev
    return list(zip(ids, rows, strict=True))


def load_chain(session: Session) -> list[CustodyEvent]:
    return list(session.exec(select(CustodyEvent).order_by(CustodyEvent.id)))  # type: ignore[arg-type]


def stream_events(session: Session, *, first: int = 1, last: int | None = None,
                  batch: int = 5000) -> Iterator[CustodyEvent]:
    """Events *first*..*last* (None: to the end) in id order, *batch* rows at a time, in a session of its own
    (memory stays flat on a chain of millions): the verifier's walk and a package's chain segment."""
    after = first - 1
    with Session(session.get_bind()) as reader:
        while last is None or after < last:
            query = select(CustodyEvent).where(col(CustodyEvent.id) > after)
            if last is not None:
                query = query.where(col(CustodyEvent.id) <= last)
            rows = list(reader.exec(query.order_by(col(CustodyEvent.id)).limit(batch)))
            if not rows:
                return
            after = rows[-1].id or after
            yield from rows
            reader.expunge_all()


def find_chain_breaks(events: Iterable[CustodyEvent], *, head_hash: str | None = None) -> list[str]:
    """Every place the chain does not verify (empty list: intact), including a chain version that goes down."""
    problems: list[str] = []
    prev, version = GENESIS_HASH, 1
    for event in events:
        if event.prev_hash != prev:
            problems.append(f"event {event.id}: prev_hash {event.prev_hash[:12]}… does not follow {prev[:12]}…")
        wrong_version = version_problem(version, event.chain_version)
        if wrong_version:
            problems.append(f"event {event.id} ({event.kind}): {wrong_version}")
        expected = stored_event_hash(event)
        if expected != event.hash:
            problems.append(f"event {event.id} ({event.kind}): content does not match its hash "
                            f"(stored {event.hash[:12]}…, computed {expected[:12]}…)")
        prev, version = event.hash, version if wrong_version else event.chain_version
    if head_hash is not None and head_hash != prev:
        problems.append(f"chain head {head_hash[:12]}… is not the last event's hash {prev[:12]}…")
    return problems
