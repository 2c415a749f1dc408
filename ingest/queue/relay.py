"""Hand the catalogue's outbox to the broker, and queue again what stayed staged too long.

The pipeline writes an outbox row in the same transaction as each new staged recording (catalog.outbox): a
committed recording always has its archive message, whatever the broker is doing. `relay_once` sends a station's
unsent rows and marks them sent; it runs right after each dock commit (woken, never on the copying thread), every
EVIDENCE_OUTBOX_RELAY_S in `station watch` and in every `worker`, so a broker that comes back gets every message
without a person. `reconcile_once` is the safety net behind dramatiq's own redelivery: a recording of this station
still `staged` after EVIDENCE_RECONCILE_AFTER_S, with no message sent for it that recently and no worker holding
it, gets a new message. Both are safe to run anywhere, any number of times: a message delivered twice finds the
recording archived, or claimed by the worker already archiving it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import outbox, redaction_jobs
from catalog.types import utcnow
from ingest.errors import first_line

__all__ = ["RelayResult", "Send", "reconcile_once", "relay_once", "relay_redaction_jobs"]

logger = logging.getLogger(__name__)

#: Send one message: (actor name, recording id). Raises when the broker does not take it.
Send = Callable[[str, int], None]


@dataclass(frozen=True)
class RelayResult:
    sent: int
    waiting: int  # still unsent after this pass (the broker refused, or more than one pass holds)
    error: str | None  # why the broker refused, None when it took everything offered

    @property
    def ok(self) -> bool:
        return self.error is None


def relay_once(engine: Engine, send: Send, *, station: str, limit: int = 500) -> RelayResult:
    """Send *station*'s unsent outbox messages, oldest first; stop at the first the broker refuses.

    Raises OperationalError when the catalogue is unreachable (nothing was sent then)."""
    error: str | None = None
    with Session(engine, expire_on_commit=False) as session:
        rows = outbox.due(session, station=station, limit=limit)
        sent = []
        for row in rows:
            try:
                send(row.actor, row.recording_id)
            except Exception as exc:  # noqa: BLE001 - any broker failure: the row waits for the next pass
                error = f"{type(exc).__name__}: {exc}".strip()[:300]
                break
            sent.append(row)
        outbox.mark_sent(session, sent, now=utcnow())
        session.commit()
        waiting = outbox.backlog(session, station=station).count
    if sent:
        logger.info("Handed %d queued message(s) of station %r to the broker.", len(sent), station)
    if error is not None:
        logger.warning("Broker unreachable: %d message(s) of station %r wait in the outbox (%s).", waiting, station,
                       error)
    return RelayResult(sent=len(sent), waiting=waiting, error=error)


def relay_redaction_jobs(engine: Engine, send: Callable[[int], object]) -> int:
    """Hand the broker a message (the original's id) for each redaction job a worker may take whose message was
    never sent or was sent over catalog.redaction_jobs.RESEND_AFTER_S ago; how many were sent. The job table is its
    own outbox: a job asked for in the web app has no station, and any worker's relay sends it."""
    with Session(engine, expire_on_commit=False) as session:
        now = utcnow()
        due = redaction_jobs.to_send(session, now=now)
        sent = []
        for job in due:
            try:
                send(job.original_id)
            except Exception as exc:  # noqa: BLE001 - any broker failure: the job waits for the next pass
                logger.warning("Broker unreachable: redaction job %s waits (%s).", job.id, first_line(exc))
                break
            sent.append(job)
        redaction_jobs.mark_sent(session, sent, now=now)
        session.commit()
    return len(sent)


def reconcile_once(engine: Engine, *, station: str, after_s: float) -> list[int]:
    """Queue again (through the outbox) this station's recordings staged longer than *after_s* with no recent
    message and no worker holding them; prune week-old sent messages. Returns the ids queued again."""
    with Session(engine) as session:
        now = outbox.db_now(session)
        ids = outbox.reconcile(session, station=station, now=now, after_s=after_s)
        outbox.prune(session, now=now)
        session.commit()
    if ids:
        logger.warning("Reconciler: %d recording(s) of station %r were staged over %g s with no message in "
                       "flight; queued again: %s", len(ids), station, after_s, ", ".join(map(str, ids[:20])))
    return ids
