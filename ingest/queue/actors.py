"""The queue actors: thin wrappers that take ids from messages and call plain functions.

Wire names are stable (renaming a function must not orphan queued
messages). Archiving and derived media use separate queues, so rendering a
proxy never delays getting evidence into WORM storage; the decode check
(decoding every frame of an archived original) shares the derive queue for
the same reason. Every actor is safe to run twice.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dramatiq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dramatiq.errors import Retry
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from catalog import (
    CatalogUnavailable,
    CustodyKind,
    RecordingNotFound,
    RecordingState,
    append_event,
    load_or_create_key,
    open_catalog,
    outbox,
)
from catalog.media_work import DECODE
from catalog.redaction_jobs import REDACT_ACTOR
from catalog.types import utcnow
from ingest.archiving import archive_recording, read_back
from ingest.config import Settings
from ingest.decode_check import MAX_TIMEOUT_S
from ingest.derive import IO_TIMEOUT_S, PROXY_TIMEOUT_S
from ingest.errors import NotStagedHere, StagedCopyMissing, first_line
from ingest.media_work import do_media_work
from ingest.queue.running import RunningMessages
from ingest.redaction.render import REDACT_TIMEOUT_S
from ingest.services import DEFAULT_UPLOAD_THREADS, open_store
from storage import EvidenceStore, HashMismatch, StorageError

__all__ = [
    "Actors",
    "ClaimHeld",
    "WorkerContext",
    "archive_claim",
    "archive_step",
    "declare_actors",
    "decode_check_step",
    "derive_step",
    "fixity_step",
    "queue_names",
    "redact_step",
    "verify_step",
]

logger = logging.getLogger(__name__)

#: Retry transient failures (store or database down) for about a day, backing off to 10 minutes.
ARCHIVE_RETRY: dict[str, Any] = {"max_retries": 200, "min_backoff": 1_000, "max_backoff": 600_000}

#: How long one message may run before dramatiq interrupts it (its TimeLimit middleware; 10 minutes unless an actor
#: says otherwise, which cut every upload or read-back of a large file on a slow link, and every decode or proxy of
#: a long recording, at 10 minutes, and retried it from the start, forever). Each is above the work's own deadlines:
#: an upload or read-back is bounded by the S3 client's socket timeouts and retries, not by a guess at its length;
#: a decode by three of decode_check.MAX_TIMEOUT_S and a copy (on S3: the decode through a URL, and a damaged
#: verdict decoded twice more from a local copy); a derive by two proxy runs (derive.run_ffmpeg tries a failed one once
#: more) and a thumbnail. A fixity sample is sent every EVIDENCE_FIXITY_INTERVAL_S (an hour by default): its limit
#: stays under that, so samples never pile up in the verify threads that new recordings need.
STORE_TIME_LIMIT_MS = 24 * 3600 * 1000
DECODE_TIME_LIMIT_MS = int((3 * MAX_TIMEOUT_S + 3600) * 1000)
FIXITY_TIME_LIMIT_MS = 50 * 60 * 1000
#: A redaction message runs an original's jobs, each a face search and a rendering bounded by REDACT_TIMEOUT_S.
REDACT_TIME_LIMIT_MS = int((3 * REDACT_TIMEOUT_S + 3600) * 1000)
DERIVE_TIME_LIMIT_MS = int((2 * (PROXY_TIMEOUT_S + IO_TIMEOUT_S) + 1800) * 1000)


class ClaimHeld(Exception):
    """Another worker holds the recording (it is archiving it, or died doing so and its hold has not run out)."""

    def __init__(self, recording_id: int, remaining_s: float) -> None:
        self.recording_id = recording_id
        self.remaining_s = max(remaining_s, 0.0)
        super().__init__(f"recording {recording_id} is being archived by another worker; trying again in "
                         f"{self.remaining_s:.0f} s if it is still staged then")


@contextmanager
def archive_claim(engine: Engine, recording_id: int, *, lease_s: float) -> Iterator[None]:
    """Hold *recording_id* while the body runs, renewing the hold every third of *lease_s*; ClaimHeld when another
    live worker holds it. A killed worker's hold runs out after *lease_s*."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        now = outbox.db_now(session)
        if not outbox.claim(session, recording_id, holder=holder, now=now, lease_s=lease_s):
            expires = outbox.claim_expires(session, recording_id)
            raise ClaimHeld(recording_id, (expires - now).total_seconds() if expires else lease_s)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease_s / 3):
            try:
                with Session(engine) as session:
                    if not outbox.claim(session, recording_id, holder=holder, now=outbox.db_now(session),
                                        lease_s=lease_s):
                        # Another worker took it over (our renewals failed for a whole lease): the archive step
                        # commits only while the recording is still staged, so one of us records it, never both.
                        logger.error("Lost the hold on recording %r while archiving it.", recording_id)
                        return
            except Exception:
                logger.warning("Could not renew the hold on recording %r.", recording_id, exc_info=True)

    renewer = threading.Thread(target=renew, name=f"claim-{recording_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join(timeout=5)
        try:
            with Session(engine) as session:
                outbox.release(session, recording_id, holder=holder, now=outbox.db_now(session))
        except Exception:  # noqa: BLE001 - it runs out by itself
            logger.warning("Could not release the hold on recording %r; it runs out in %g s.", recording_id,
                           lease_s)


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    store: EvidenceStore
    key: Ed25519PrivateKey

    @classmethod
    def from_settings(cls, settings: Settings, *, upload_threads: int = DEFAULT_UPLOAD_THREADS) -> WorkerContext:
        # first: an unreachable archive must not leave a pool of connections behind
        store = open_store(settings, upload_threads=upload_threads)
        return cls(settings=settings, engine=open_catalog(settings.database_url), store=store,
                   key=load_or_create_key(settings.station_key_path))


@dataclass(frozen=True)
class Actors:
    archive: dramatiq.Actor[Any, Any]
    derive: dramatiq.Actor[Any, Any]
    decode_check: dramatiq.Actor[Any, Any]
    verify: dramatiq.Actor[Any, Any]
    fixity: dramatiq.Actor[Any, Any]
    redact: dramatiq.Actor[Any, Any]  # its message: the original's id (catalog.redaction_jobs)
    close: Callable[[], None]  # release the worker context's database connections
    running: RunningMessages  # what this process's worker threads run now

    def send(self, actor_name: str, recording_id: int) -> None:
        """Send one outbox message (ingest.queue.relay) to the actor it names."""
        by_name = {a.actor_name: a for a in (self.archive, self.derive, self.decode_check, self.verify, self.redact)}
        if actor_name not in by_name:
            raise ValueError(f"outbox names an unknown actor {actor_name!r}")
        by_name[actor_name].send(recording_id)


def queue_names(namespace: str, station: str) -> dict[str, str]:
    """Queue names. Archiving reads a station's staging area, so each station has its own archive queue;
    derived media and verification read the archive and can run anywhere."""
    return {"archive": f"{namespace}-archive-{station}", "derive": f"{namespace}-derive",
            "verify": f"{namespace}-verify"}


class _SharedContext:
    """One worker context per process, built on first use even when several worker threads start together."""

    def __init__(self, build: Callable[[], WorkerContext]) -> None:
        self._build = build
        self._built: list[WorkerContext] = []
        self._lock = threading.Lock()

    def __call__(self) -> WorkerContext:
        with self._lock:
            if not self._built:
                self._built.append(self._build())
            return self._built[0]

    def close(self) -> None:
        with self._lock:
            for context in self._built:
                context.engine.dispose()
            self._built.clear()


def _worker(c: WorkerContext) -> str:
    return f"worker:{c.settings.station}"


def _record_failure(c: WorkerContext, recording_id: int, *, stage: str, exc: Exception) -> None:
    """An INGEST_FAILED custody event: the evidence failed a check for good (no retry can change it)."""
    with Session(c.engine) as session:
        append_event(session, CustodyKind.INGEST_FAILED, actor=_worker(c), recording_id=recording_id,
                     details={"stage": stage, "reason": str(exc)})
        session.commit()


def archive_step(c: WorkerContext, recording_id: int) -> str | None:
    """Archive one staged recording under a claim (the `ingest.archive_recording` actor); its state when it is now
    in WORM storage (`archived`, or `verified` when the store read it back already), so derived media, the decode
    check and (for `archived`) the read-back can follow; None when it is not.

    Raises:
      Retry: another worker holds it, or the store or catalogue is away (transient).
      StagedCopyMissing, HashMismatch: failed for good (an INGEST_FAILED event is recorded).
    """
    started = time.monotonic()
    try:
        with archive_claim(c.engine, recording_id, lease_s=c.settings.archive_lease_s):
            state = archive_recording(c.engine, c.store, c.settings.staging_dir, recording_id, key=c.key,
                                      actor=_worker(c), policy=c.settings.retention_policy,
                                      station=c.settings.station)
    except ClaimHeld as exc:
        # Another worker is archiving it now (or was, and died): try again once its hold has run out.
        logger.info("%s", exc)
        raise Retry(str(exc), delay=int(exc.remaining_s * 1000) + 1000) from None
    except NotStagedHere as exc:
        # Not this station's to archive, and nothing wrong with the evidence: hand it to the station that has it.
        logger.warning("%s; message passed to that station's queue.", exc)
        with Session(c.engine) as session:
            outbox.add(session, recording_id, station=exc.staged_at, now=utcnow(),
                       reason=f"re-routed from {c.settings.station}")
            session.commit()
        return None
    except (StagedCopyMissing, HashMismatch) as exc:
        logger.error("Archiving recording %r failed for good: %s", recording_id, exc)
        _record_failure(c, recording_id, stage="archive", exc=exc)
        raise
    except (StorageError, OperationalError, CatalogUnavailable) as exc:
        # Transient (the store or the catalogue is away): one line, no traceback; the retry policy tries again.
        logger.warning("Recording %r stays staged for now: %s", recording_id, first_line(exc))
        raise Retry(first_line(exc)) from None
    if state not in (RecordingState.ARCHIVED, RecordingState.VERIFIED):
        return None
    logger.info("Archived recording %r (%s) in %.1f s.", recording_id, state, time.monotonic() - started)
    return state


#: The media work the derive actor does (the decode check has an actor of its own).
DERIVED_KINDS = ("thumbnail", "proxy")


def derive_step(c: WorkerContext, recording_id: int) -> None:
    """Render a recording's thumbnail and proxy (the `ingest.derive_media` actor) through the media backlog's own
    function (`ingest.media_work.do_media_work`): what the media makes impossible is recorded and not tried again.

    Raises:
      Retry: the store or catalogue is away (transient).
    """
    _media_step(c, recording_id, DERIVED_KINDS)


def decode_check_step(c: WorkerContext, recording_id: int) -> None:
    """Decode an archived original and record the verdict (the `ingest.decode_check` actor), as the media backlog
    does it: a decode that runs past its deadline is recorded as failed and not tried again.

    Raises:
      Retry: the store or catalogue is away, or the decoder was stopped from outside (transient).
    """
    _media_step(c, recording_id, (DECODE,))


def _media_step(c: WorkerContext, recording_id: int, kinds: tuple[str, ...]) -> None:
    outcome = do_media_work(c.engine, c.store, c.settings.home / "work", recording_id, by=_worker(c), only=kinds)
    if outcome.deferred:
        raise Retry(outcome.deferred)
    if outcome.done:
        logger.info("Recording %r: %s made.", recording_id, ", ".join(outcome.done))


def verify_step(c: WorkerContext, recording_id: int) -> None:
    """Read a recording's stored bytes back and re-hash them (the `ingest.verify_recording` actor): an `archived`
    recording becomes `verified` (ingest.archiving.prove_stored). One not in the store (disposed meanwhile) is
    logged and left alone.

    Raises:
      RecordingNotFound: no such recording.
      HashMismatch: the stored bytes differ (an INGEST_FAILED event is recorded).
      Retry: the store or the catalogue is away (transient).
    """
    try:
        read_back(c.engine, c.store, recording_id, actor=_worker(c))
    except HashMismatch:
        raise  # permanent: recorded by read_back (HashMismatch is a StorageError, so it goes first)
    except (StorageError, OperationalError) as exc:
        logger.warning("Recording %r not read back yet: %s", recording_id, first_line(exc))
        raise Retry(first_line(exc)) from None


def redact_step(c: WorkerContext, original_id: int) -> list[int]:
    """Run the redaction jobs asked for on one original (the `ingest.redact` actor; catalog.redaction_jobs): the
    job table is the backlog, so a job that must wait (the store or catalogue away) is back in it as `queued` and
    its message is sent again by the next relay after catalog.redaction_jobs.RESEND_AFTER_S. Returns the copies
    made, whose browser copy and decode check the actor queues as the archive actor does for a docked file."""
    from ingest.redaction.jobs import run_pending_jobs

    run = run_pending_jobs(c.engine, c.store, c.settings, c.key, original_id=original_id)
    if run.counts:
        logger.info("Redaction jobs of recording %r: %s.", original_id, run.summary())
    return run.copies


def fixity_step(c: WorkerContext, sample: int) -> None:
    """Verify the *sample* least recently checked recordings; the outcome goes into the custody log."""
    from catalog.fixity import run_fixity

    with Session(c.engine) as session:
        report = run_fixity(session, c.store, sample=sample, actor=_worker(c), now=utcnow())
    if report.problems:
        logger.error("Fixity check found %d problem(s): %s", len(report.problems),
                     "; ".join(str(p) for p in report.problems[:5]))
    else:
        logger.info("Fixity check: %d recording(s), %d bytes re-hashed, all as recorded.", report.recordings,
                    report.bytes_read)


def declare_actors(broker: dramatiq.Broker, context: Callable[[], WorkerContext], *, station: str,
                   namespace: str = "evidence", retry: dict[str, Any] | None = None) -> Actors:
    """Bind the actors to *broker*; *context* gives each worker its catalog, store and key (cached).

    *retry* overrides the archive/verify retry policy (max_retries, min_backoff, max_backoff in ms).
    Commands build their queue with ingest.queue.connection.open_queue, which calls this.
    """
    retry = {**ARCHIVE_RETRY, **(retry or {})}
    ctx = _SharedContext(context)
    queues = queue_names(namespace, station)

    running = RunningMessages()

    def archive(recording_id: int) -> None:
        with running.run("archive", recording_id):
            state = archive_step(ctx(), recording_id)
            if state == RecordingState.ARCHIVED:
                actors.verify.send(recording_id)  # the full read-back, off the archive queue (EVIDENCE_S3_READBACK)
            if state is not None:
                actors.derive.send(recording_id)
                actors.decode_check.send(recording_id)

    def derive(recording_id: int) -> None:
        with running.run("derive", recording_id):
            derive_step(ctx(), recording_id)

    def decode_check(recording_id: int) -> None:
        with running.run("decode check", recording_id):
            decode_check_step(ctx(), recording_id)

    def verify(recording_id: int) -> None:
        with running.run("verify", recording_id):
            verify_step(ctx(), recording_id)

    def fixity(sample: int) -> None:
        with running.run("fixity", sample):
            fixity_step(ctx(), sample)

    def redact(original_id: int) -> None:
        with running.run("redaction", original_id):
            for copy_id in redact_step(ctx(), original_id):
                actors.derive.send(copy_id)
                actors.decode_check.send(copy_id)

    permanent = (StagedCopyMissing, HashMismatch, RecordingNotFound)
    actors = Actors(
        archive=dramatiq.actor(actor_name=outbox.ARCHIVE_ACTOR, queue_name=queues["archive"], broker=broker,
                               throws=permanent, time_limit=STORE_TIME_LIMIT_MS, **retry)(archive),
        derive=dramatiq.actor(actor_name="ingest.derive_media", queue_name=queues["derive"], broker=broker,
                              max_retries=3, min_backoff=1_000, max_backoff=30_000, time_limit=DERIVE_TIME_LIMIT_MS,
                              throws=(RecordingNotFound,))(derive),
        decode_check=dramatiq.actor(actor_name="ingest.decode_check", queue_name=queues["derive"], broker=broker,
                                    max_retries=3, min_backoff=1_000, max_backoff=60_000,
                                    time_limit=DECODE_TIME_LIMIT_MS, throws=(RecordingNotFound,))(decode_check),
        verify=dramatiq.actor(actor_name="ingest.verify_recording", queue_name=queues["verify"], broker=broker,
                              throws=permanent, time_limit=STORE_TIME_LIMIT_MS, **retry)(verify),
        fixity=dramatiq.actor(actor_name="catalog.fixity_sample", queue_name=queues["verify"], broker=broker,
                              max_retries=3, min_backoff=60_000, max_backoff=600_000,
                              time_limit=FIXITY_TIME_LIMIT_MS)(fixity),
        redact=dramatiq.actor(actor_name=REDACT_ACTOR, queue_name=queues["derive"], broker=broker, max_retries=0,
                              time_limit=REDACT_TIME_LIMIT_MS)(redact),
        close=ctx.close,
        running=running,
    )
    return actors
