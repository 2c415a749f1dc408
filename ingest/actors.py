"""The queue actors: thin wrappers that take ids from messages and call plain functions.

Wire names are stable (renaming a function must not orphan queued
messages). Archiving and derived media use separate queues, so rendering a
proxy never delays getting evidence into WORM storage; the decode check
(decoding every frame of an archived original) shares the derive queue for
the same reason. Every actor is safe to run twice.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import CustodyKind, RecordingNotFound, append_event, load_or_create_key, open_catalog
from ingest.archiving import archive_recording
from ingest.config import Settings
from ingest.decode_check import DecodeTimedOut, check_recording
from ingest.derive import derive_recording
from ingest.errors import DeriveFailed, StagedCopyMissing
from storage import EvidenceStore, HashMismatch

__all__ = ["Actors", "WorkerContext", "declare_actors", "queue_names"]

logger = logging.getLogger(__name__)

#: Retry transient failures (store or database down) for about a day, backing off to 10 minutes.
ARCHIVE_RETRY: dict[str, Any] = {"max_retries": 200, "min_backoff": 1_000, "max_backoff": 600_000}


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    store: EvidenceStore
    key: Ed25519PrivateKey

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerContext:
        from ingest.wiring import open_store

        store = open_store(settings)  # first: an unreachable archive must not leave a pool of connections behind
        return cls(settings=settings, engine=open_catalog(settings.database_url), store=store,
                   key=load_or_create_key(settings.station_key_path))


@dataclass(frozen=True)
class Actors:
    archive: dramatiq.Actor[Any, Any]
    derive: dramatiq.Actor[Any, Any]
    decode_check: dramatiq.Actor[Any, Any]
    verify: dramatiq.Actor[Any, Any]
    fixity: dramatiq.Actor[Any, Any]
    close: Callable[[], None]  # release the worker context's database connections


def queue_names(namespace: str, station: str) -> dict[str, str]:
    """Queue names. Archiving reads a station's staging area, so each station has its own archive queue;
    derived media and verification read the archive and can run anywhere."""
    return {"archive": f"{namespace}-archive-{station}", "derive": f"{namespace}-derive",
            "verify": f"{namespace}-verify"}


def declare_actors(broker: dramatiq.Broker, context: Callable[[], WorkerContext], *, station: str,
                   namespace: str = "evidence", retry: dict[str, Any] | None = None) -> Actors:
    """Bind the actors to *broker*; *context* gives each worker its catalog, store and key (cached).

    *retry* overrides the archive/verify retry policy (max_retries, min_backoff, max_backoff in ms).
    """
    retry = {**ARCHIVE_RETRY, **(retry or {})}
    cached: list[WorkerContext] = []
    lock = threading.Lock()

    def ctx() -> WorkerContext:
        # One context per process, built once even when several worker threads start together.
        with lock:
            if not cached:
                cached.append(context())
            return cached[0]

    queues = queue_names(namespace, station)

    def archive(recording_id: int) -> None:
        c = ctx()
        try:
            state = archive_recording(c.engine, c.store, c.settings.staging_dir, recording_id, key=c.key,
                                      actor=f"worker:{c.settings.station}", policy=c.settings.retention_policy)
        except (StagedCopyMissing, HashMismatch) as exc:
            with Session(c.engine) as session:
                append_event(session, CustodyKind.INGEST_FAILED, actor=f"worker:{c.settings.station}",
                             recording_id=recording_id, details={"stage": "archive", "reason": str(exc)})
                session.commit()
            raise
        if state in ("archived", "verified"):
            actors.derive.send(recording_id)
            actors.decode_check.send(recording_id)

    def derive(recording_id: int) -> None:
        c = ctx()
        try:
            made = derive_recording(c.engine, c.store, c.settings.home / "work", recording_id)
        except DeriveFailed as exc:
            logger.warning("%s", exc)  # not evidence: recorded in the log, never retried
            return
        logger.info("Derived %s for recording %r.", ", ".join(made) or "nothing", recording_id)

    def decode_check(recording_id: int) -> None:
        c = ctx()
        try:
            status = check_recording(c.engine, c.store, c.settings.home / "work", recording_id,
                                     by=f"worker:{c.settings.station}")
        except DecodeTimedOut as exc:
            logger.error("%s", exc)  # a file that hangs the decoder would hang it again: not retried
            return
        if status is not None and status != "ok":
            logger.warning("Decode check found recording %r %s.", recording_id, status)

    def verify(recording_id: int) -> None:
        from catalog import Recording

        c = ctx()
        with Session(c.engine) as session:
            recording = session.get(Recording, recording_id)
            if recording is None:
                raise RecordingNotFound(str(recording_id))
            try:
                c.store.verify(recording.sha256)
            except HashMismatch as exc:
                append_event(session, CustodyKind.INGEST_FAILED, actor=f"worker:{c.settings.station}",
                             recording_id=recording_id, details={"stage": "verify", "reason": str(exc)})
                session.commit()
                raise
            append_event(session, CustodyKind.VERIFIED, actor=f"worker:{c.settings.station}",
                         recording_id=recording_id, details={"how": "re-hashed the stored bytes"})
            session.commit()

    def fixity(sample: int) -> None:
        """Verify the *sample* least recently checked recordings; the outcome goes into the custody log."""
        from catalog.fixity import run_fixity
        from catalog.types import utcnow

        c = ctx()
        with Session(c.engine) as session:
            report = run_fixity(session, c.store, sample=sample, actor=f"worker:{c.settings.station}", now=utcnow())
        if report.problems:
            logger.error("Fixity check found %d problem(s): %s", len(report.problems),
                         "; ".join(str(p) for p in report.problems[:5]))
        else:
            logger.info("Fixity check: %d recording(s), %d bytes re-hashed, all as recorded.", report.recordings,
                        report.bytes_read)

    def close() -> None:
        with lock:
            for c in cached:
                c.engine.dispose()
            cached.clear()

    permanent = (StagedCopyMissing, HashMismatch, RecordingNotFound)
    actors = Actors(
        archive=dramatiq.actor(actor_name="ingest.archive_recording", queue_name=queues["archive"], broker=broker,
                               throws=permanent, **retry)(archive),
        derive=dramatiq.actor(actor_name="ingest.derive_media", queue_name=queues["derive"], broker=broker,
                              max_retries=3, min_backoff=1_000, max_backoff=30_000,
                              throws=(RecordingNotFound,))(derive),
        decode_check=dramatiq.actor(actor_name="ingest.decode_check", queue_name=queues["derive"], broker=broker,
                                    max_retries=3, min_backoff=1_000, max_backoff=60_000,
                                    throws=(RecordingNotFound,))(decode_check),
        verify=dramatiq.actor(actor_name="ingest.verify_recording", queue_name=queues["verify"], broker=broker,
                              throws=permanent, **retry)(verify),
        fixity=dramatiq.actor(actor_name="catalog.fixity_sample", queue_name=queues["verify"], broker=broker,
                              max_retries=3, min_backoff=60_000, max_backoff=600_000)(fixity),
        close=close,
    )
    return actors
