"""Open the queue a command talks to: the broker its settings configure and the actors bound to it.

Every command that sends or runs queue work (`evidence ingest`, `evidence worker`, `evidence station watch`,
`evidence archive-pending`) builds its broker, its actors and the worker context they run in here, so the broker
settings, the queue namespace, the station's archive queue and the S3 upload threads are chosen in one place.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import dramatiq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from ingest.config import Settings
from ingest.queue.actors import Actors, WorkerContext, declare_actors
from ingest.queue.broker import make_broker_for
from ingest.services import DEFAULT_UPLOAD_THREADS
from storage import EvidenceStore

__all__ = ["QueueConnection", "open_queue"]


@dataclass(frozen=True)
class QueueConnection:
    """A broker and the actors bound to it; close() (or leaving a `with` block) closes both."""

    broker: dramatiq.Broker
    actors: Actors

    def close(self) -> None:
        """Close the broker, then release the worker context's database connections (if it was ever built)."""
        try:
            self.broker.close()
        finally:
            self.actors.close()

    def __enter__(self) -> QueueConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_queue(settings: Settings, *, engine: Engine | None = None, store: EvidenceStore | None = None,
               key: Ed25519PrivateKey | None = None, upload_threads: int = DEFAULT_UPLOAD_THREADS,
               retry: dict[str, Any] | None = None) -> QueueConnection:
    """The broker *settings* configure (ingest.queue.broker.make_broker_for) with this station's actors bound to it.

    The worker context (catalogue, store, station key) is built when an actor first runs in this process: from
    *engine*, *store* and *key* when the caller already holds them (all three or none), else from *settings*
    with an S3 connection pool sized for *upload_threads* (WorkerContext.from_settings). *retry* overrides the
    archive/verify retry policy (declare_actors).

    Raises:
      ValueError: only some of *engine*, *store* and *key* given.
    """
    context = _context_for(settings, engine=engine, store=store, key=key, upload_threads=upload_threads)
    broker = make_broker_for(settings)
    actors = declare_actors(broker, context, station=settings.station, namespace=settings.queue_namespace,
                            retry=retry)
    return QueueConnection(broker=broker, actors=actors)


def _context_for(settings: Settings, *, engine: Engine | None, store: EvidenceStore | None,
                 key: Ed25519PrivateKey | None, upload_threads: int) -> Callable[[], WorkerContext]:
    given = {"engine": engine, "store": store, "key": key}
    if engine is not None and store is not None and key is not None:
        held = WorkerContext(settings, engine, store, key)
        return lambda: held
    if any(part is not None for part in given.values()):
        missing = ", ".join(name for name, part in given.items() if part is None)
        raise ValueError(f"open_queue needs engine, store and key together or none of them; missing: {missing}")
    return lambda: WorkerContext.from_settings(settings, upload_threads=upload_threads)
