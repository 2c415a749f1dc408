"""The transactional outbox and archive claims: queue work that survives a broker outage and never runs twice.

A station writes an outbox row in the same transaction as the recording it names, so a committed recording always
has its archive message, whether or not the broker answers at that moment; `ingest.queue.relay` hands unsent rows to the
broker when it does. The reconciler (`reconcile`) queues again what stayed `staged` too long with no message sent
for it recently and no worker holding it. A worker claims a recording before uploading it (`claim`, renewed while
the upload runs), so a message delivered twice (a requeue after a worker died, a reconciled duplicate) never puts
the same bytes into the WORM store twice at once.

Plain functions on a session; the caller commits. No broker here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from catalog.custody import CustodyKind
from catalog.models import ArchiveClaim, CustodyEvent, OutboxMessage, Recording, RecordingState
from catalog.recordings import manifested_revision
from catalog.types import utcnow

__all__ = ["ARCHIVE_ACTOR", "Backlog", "add", "backlog", "claim", "claim_expires", "claimed", "db_now", "due",
           "mark_sent", "prune", "queue_staged", "reconcile", "release", "unsent"]

#: The archive actor's wire name (ingest.queue.actors declares it with this name).
ARCHIVE_ACTOR = "ingest.archive_recording"
#: Sent rows are kept this long (a record of what was queued when), then pruned.
KEEP_SENT = timedelta(days=7)


def add(session: Session, recording_id: int, *, station: str, now: datetime, reason: str,
        actor: str = ARCHIVE_ACTOR) -> OutboxMessage:
    """Queue *actor* for *recording_id* on *station*'s queue, inside the caller's transaction."""
    row = OutboxMessage(actor=actor, recording_id=recording_id, station_code=station, created_at=now,
                        reason=reason[:200])
    session.add(row)
    return row


def due(session: Session, *, station: str, limit: int = 500) -> list[OutboxMessage]:
    """Unsent messages for *station*'s queues, oldest first, locked for this transaction (PostgreSQL skips rows
    another relay holds, so two relays of one station never send the same row; on SQLite two relays may both send
    a row, which the archive claim and the recording's state make harmless)."""
    query = (select(OutboxMessage).where(OutboxMessage.station_code == station, col(OutboxMessage.sent_at).is_(None))
             .order_by(col(OutboxMessage.id)).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.exec(query))


def mark_sent(session: Session, rows: list[OutboxMessage], *, now: datetime) -> None:
    for row in rows:
        row.sent_at = now
        session.add(row)


@dataclass(frozen=True)
class Backlog:
    """Messages not yet handed to the broker."""

    count: int
    oldest: datetime | None

    def age_s(self, now: datetime) -> float:
        return max((now - self.oldest).total_seconds(), 0.0) if self.oldest else 0.0


def backlog(session: Session, *, station: str | None = None) -> Backlog:
    where: list[ColumnElement[bool]] = [col(OutboxMessage.sent_at).is_(None)]
    if station is not None:
        where.append(col(OutboxMessage.station_code) == station)
    count, oldest = session.exec(select(func.count(), func.min(OutboxMessage.created_at)).where(*where)).one()
    return Backlog(int(count or 0), oldest)


def prune(session: Session, *, now: datetime) -> int:
    """Forget sent messages older than a week, and run-out holds of recordings no longer staged; return how many
    messages."""
    session.execute(delete(ArchiveClaim).where(col(ArchiveClaim.expires_at) < now, col(ArchiveClaim.recording_id).in_(
        select(Recording.id).where(Recording.state != RecordingState.STAGED.value))))
    result = session.execute(delete(OutboxMessage).where(col(OutboxMessage.sent_at).is_not(None),
                                                         col(OutboxMessage.sent_at) < now - KEEP_SENT))
    return int(getattr(result, "rowcount", 0) or 0)


def reconcile(session: Session, *, station: str, now: datetime, after_s: float, limit: int = 1000) -> list[int]:
    """Queue again (as outbox rows) every recording of *station* that needs its archive step — still `staged`,
    archived with no signed manifest of its current stamp revision recorded (a store failure or a crash between the
    two commits, at archiving or at a re-stamp), or `archived`
    and never read back (its verify message was lost: the archive step sends it again; one whose check failed
    for good, an INGEST_FAILED event, is left for a person) — after *after_s* seconds, when no message for it is
    waiting in the outbox or was sent since then, and no worker holds or tried it since then. Returns their ids."""
    cutoff = now - timedelta(seconds=after_s)
    # A message still unsent (the broker away) is in flight too: never a second row for it.
    recent = (select(OutboxMessage.recording_id)
              .where(or_(col(OutboxMessage.sent_at).is_(None), col(OutboxMessage.sent_at) >= cutoff)))
    # Held now, or tried by a worker since the cutoff: its message is alive (retrying while the store is away).
    held = select(ArchiveClaim.recording_id).where(col(ArchiveClaim.expires_at) > cutoff)
    # Sealed: its current stamp revision's manifest is recorded (a re-stamp whose manifest failed is not).
    sealed = exists().where(col(CustodyEvent.recording_id) == col(Recording.id),
                            col(CustodyEvent.kind) == CustodyKind.MANIFESTED.value,
                            manifested_revision() == col(Recording.stamp_revision))
    failed = select(CustodyEvent.recording_id).where(CustodyEvent.kind == CustodyKind.INGEST_FAILED.value,
                                                     col(CustodyEvent.recording_id).is_not(None))
    needs_work = or_(col(Recording.state) == RecordingState.STAGED.value,
                     and_(col(Recording.state).in_([RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value]),
                          ~sealed),
                     and_(col(Recording.state) == RecordingState.ARCHIVED.value, col(Recording.id).not_in(failed)))
    ids = [rid for rid in session.exec(
        select(Recording.id).where(needs_work, Recording.station_code == station,
                                   col(Recording.ingested_at) < cutoff,
                                   col(Recording.id).not_in(recent), col(Recording.id).not_in(held))
        .order_by(col(Recording.id)).limit(limit)) if rid is not None]
    for recording_id in ids:
        add(session, recording_id, station=station, now=now, reason="reconcile")
    return ids


def claim(session: Session, recording_id: int, *, holder: str, now: datetime, lease_s: float) -> bool:
    """Hold *recording_id* for *holder* until now + *lease_s* (also renews *holder*'s own hold). False when another
    holder's hold has not expired. Commits (a claim must be visible to other workers at once)."""
    until = now + timedelta(seconds=lease_s)
    taken = session.execute(update(ArchiveClaim).where(
        col(ArchiveClaim.recording_id) == recording_id,
        or_(col(ArchiveClaim.holder) == holder, col(ArchiveClaim.expires_at) <= now)).values(holder=holder,
                                                                                             expires_at=until))
    if getattr(taken, "rowcount", 0):
        session.commit()
        return True
    try:
        session.add(ArchiveClaim(recording_id=recording_id, holder=holder, expires_at=until))
        session.commit()
        return True
    except IntegrityError:
        session.rollback()
        return False


def release(session: Session, recording_id: int, *, holder: str, now: datetime) -> None:
    """Give up *holder*'s hold (commits). The row stays, run out at *now*: it says when a worker last tried the
    recording, which tells the reconciler its message is alive (retrying) even while the store is away."""
    session.execute(update(ArchiveClaim).where(col(ArchiveClaim.recording_id) == recording_id,
                                               col(ArchiveClaim.holder) == holder).values(expires_at=now))
    session.commit()


def db_now(session: Session) -> datetime:
    """The catalogue server's clock (UTC) where workers on several hosts share it (PostgreSQL): holds are compared
    with one clock, never with each host's own, so a worker whose clock runs ahead cannot take a live hold. SQLite
    is local to one host: its clock is this one."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.execute(select(func.timezone("UTC", func.clock_timestamp()))).scalar_one()
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)
    return utcnow()


def claim_expires(session: Session, recording_id: int) -> datetime | None:
    """When the current hold on *recording_id* runs out (None: nobody holds it)."""
    row = session.get(ArchiveClaim, recording_id)
    return row.expires_at if row is not None else None


def claimed(session: Session, *, now: datetime) -> set[int]:
    """Recordings a worker holds right now."""
    return {rid for rid in session.exec(select(ArchiveClaim.recording_id).where(col(ArchiveClaim.expires_at) > now))}


def unsent(session: Session, recording_ids: list[int]) -> int:
    """How many of these recordings' messages still wait for the broker."""
    count = 0
    for start in range(0, len(recording_ids), 500):
        chunk = recording_ids[start:start + 500]
        count += int(session.exec(select(func.count()).where(col(OutboxMessage.recording_id).in_(chunk),
                                                            col(OutboxMessage.sent_at).is_(None))).one() or 0)
    return count


def queue_staged(session: Session, *, station: str, now: datetime, reason: str) -> tuple[list[int], int]:
    """Queue (as outbox rows) every recording still `staged` at *station*; return their ids and how many recordings
    are staged at other stations (theirs to archive: never queued here)."""
    ids = [rid for rid in session.exec(select(Recording.id).where(
        Recording.state == RecordingState.STAGED.value, Recording.station_code == station)
        .order_by(col(Recording.id))) if rid is not None]
    for recording_id in ids:
        add(session, recording_id, station=station, now=now, reason=reason)
    elsewhere = session.exec(select(func.count()).where(Recording.state == RecordingState.STAGED.value,
                                                       Recording.station_code != station)).one()
    return ids, int(elsewhere or 0)
