"""Run ingest with the queue, and run workers: the glue between the pipeline and dramatiq.

With EVIDENCE_BROKER_URL set (Redis or RabbitMQ) ingest stops at `staged`
and enqueues archive messages once rows are committed; workers archive,
verify, render derived media and decode-check originals (store-and-forward:
a station keeps working while the archive is away). Without it (the embedded
default) ingest archives inline and an in-process worker renders derived
media and runs the decode checks afterwards.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import dramatiq
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import CatalogError, RecordingState, apply_retention, load_or_create_key, open_catalog
from catalog.media_work import media_backlog
from catalog.policy_adoption import policy_in_force
from catalog.types import utcnow
from ingest.anchoring import anchor_chain
from ingest.archiving import read_back_archived
from ingest.config import Settings
from ingest.decode_check import CHECKED_KINDS
from ingest.errors import first_line
from ingest.media_work import render_backlog, start_renderer
from ingest.pipeline import IngestOptions, IngestReport, Progress, ingest_folder
from ingest.queue.actors import Actors, WorkerContext, queue_names
from ingest.queue.connection import open_queue
from ingest.queue.relay import reconcile_once, relay_once, relay_redaction_jobs
from ingest.queue.running import Running, RunningMessages
from ingest.services import catalog_engine, open_store
from ingest.station.staging_sweep import sweep_store_scratch
from storage import EvidenceStore

__all__ = ["run_ingest", "run_workers", "stop_workers", "sweep_media_backlog"]

logger = logging.getLogger(__name__)

#: Seconds between sweeps of the media backlog by the scheduling worker (`worker --schedule`), and how long after
#: archiving a recording's pending media work counts as lost rather than still queued.
MEDIA_SWEEP_S = 3600.0
MEDIA_SWEEP_AFTER_S = 3600.0
#: How often a stopping worker says which running messages it still waits for.
STOP_REPORT_S = 10.0
#: Longest pause (ms) between polls of an idle archive/verify consumer: how long a new archive message can wait.
ARCHIVE_POLL_MS = 100


def run_ingest(path: Path, settings: Settings, options: IngestOptions, *, derive: str = "wait",
               progress: Progress | None = None) -> IngestReport:
    """Ingest *path*: with a broker, up to `staged` with archive messages handed to the queue; without one, archived
    inline, then the media backlog (thumbnails, proxies, decode checks: `ingest.media_work`) is done as *derive*
    says (EVIDENCE_DERIVE): `wait` before this returns, `background` by a renderer started to run on after it,
    `later` by the next renderer. Either way the custody chain head is anchored after the dock session (after the
    media work that was waited for)."""
    with catalog_engine(settings) as engine:
        # With a broker the station never touches the archive: it must work while the archive is away.
        store = open_store(settings, check=not settings.broker_url)
        key = load_or_create_key(settings.station_key_path)
        with open_queue(settings, engine=engine, store=store, key=key) as queue:
            if settings.broker_url:
                report = _ingest_for_workers(path, settings, options, engine, store, queue.actors, progress)
            else:
                report = _ingest_inline(path, settings, options, engine, store, derive, progress)
            # After the decode checks too: the dock session and everything it led to is in the anchored head.
            anchor_chain(settings, engine, store, key=key, actor=options.actor,
                         reason=f"dock session {report.dock_session_id}")
            return report


def _ingest_for_workers(path: Path, settings: Settings, options: IngestOptions, engine: Engine,
                        store: EvidenceStore, actors: Actors, progress: Progress | None) -> IngestReport:
    def after_commit(ids: list[int]) -> None:
        if options.case_number:
            # Catalogue the case link and hold before any worker archives the recording.
            _hold_for_cases(engine, store, settings, ids, actor=options.actor)
        # The archive messages are in the outbox with the rows: hand them over now if the broker answers
        # (a broker away costs nothing here: `station watch` and every worker relay them later).
        relay_once(engine, actors.send, station=settings.station)

    return ingest_folder(path, settings=settings, engine=engine, store=store,
                         options=replace(options, defer_archive=True), progress=progress, after_commit=after_commit)


def _ingest_inline(path: Path, settings: Settings, options: IngestOptions, engine: Engine, store: EvidenceStore,
                   derive: str, progress: Progress | None) -> IngestReport:
    """Ingest archiving inline; read back what S3 stored (unless EVIDENCE_S3_READBACK=inline did it in the upload);
    then the media backlog as *derive* says (run_ingest)."""
    # What an earlier ingest killed half-way left in the store's scratch (nothing else sweeps it without a station).
    sweep_store_scratch(store, older_than_s=settings.store_scratch_age_s)
    new_ids: list[int] = []
    report = ingest_folder(path, settings=settings, engine=engine, store=store, options=options,
                           progress=progress, after_commit=new_ids.extend)
    if options.case_number and new_ids:
        _hold_for_cases(engine, store, settings, new_ids, actor=options.actor)
    if new_ids and settings.s3 is not None and settings.s3.readback == "queued":
        verified = read_back_archived(engine, store, new_ids, actor=options.actor)
        for row in report.recordings:
            if row.get("id") in verified:
                row["state"] = RecordingState.VERIFIED.value
    # Only media gets derived files or a decode check: nothing is started for a dock of other files.
    if derive != "later" and any(row.get("media_kind") in CHECKED_KINDS for row in report.recordings):
        # Rendering never fails a dock: what it cannot do now stays in the backlog for the next renderer.
        try:
            if derive == "wait":
                render_backlog(settings, engine, store, by=f"station:{settings.station}")
            else:
                report.renderer_pid = start_renderer(settings)
        except Exception as exc:  # noqa: BLE001 - the recordings are archived; only their media work waits
            logger.error("Thumbnails, proxies and decode checks left for `evidence derive-pending`: %s",
                         first_line(exc))
            report.notes.append(f"media work not started: {first_line(exc)}")
    return report


def _hold_for_cases(engine: Engine, store: EvidenceStore, settings: Settings, ids: list[int], *,
                    actor: str) -> None:
    """Recordings stamped with the number of an open case join it and are held."""
    try:
        with Session(engine) as session:
            apply_retention(session, store, policy_in_force(session, settings.retention_policy), actor=actor,
                            recording_ids=ids)
    except CatalogError as exc:  # the next `evidence retention apply` links and holds them
        logger.error("Case links for %d new recording(s) not made yet: %s", len(ids), exc)


def _scheduler(settings: Settings, actors: Actors, stop: threading.Event, *, schedule: bool) -> None:
    """Periodic work. Always: hand this station's outbox and every waiting redaction job to the broker and queue
    again what stayed staged too long (every EVIDENCE_OUTBOX_RELAY_S). With *schedule*: anchor the custody chain in
    WORM storage and queue fixity checks. Failures are logged and tried again at the next tick; they never stop the
    workers."""
    context: WorkerContext | None = None
    engine = None
    next_anchor = next_fixity = next_relay = next_media_sweep = time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_relay:
                next_relay = now + settings.outbox_relay_s
                engine = _relay_tick(settings, actors, engine)
            if not schedule:
                stop.wait(settings.outbox_relay_s)
                continue
            if settings.anchor_interval_s and now >= next_anchor:
                next_anchor = now + settings.anchor_interval_s
                try:
                    context = context or WorkerContext.from_settings(settings)
                    anchor_chain(settings, context.engine, context.store, key=context.key,
                                 actor=f"worker:{settings.station}", reason="hourly (EVIDENCE_ANCHOR_INTERVAL_S)")
                except Exception:
                    logger.exception("Could not anchor the custody chain; retrying in %.0f s.",
                                     settings.anchor_interval_s)
            if now >= next_media_sweep:
                next_media_sweep = now + MEDIA_SWEEP_S
                engine = _media_sweep_tick(settings, actors, engine)
            if settings.fixity_interval_s and now >= next_fixity:
                next_fixity = now + settings.fixity_interval_s
                try:
                    actors.fixity.send(settings.fixity_sample)
                except Exception:
                    logger.exception("Could not queue a fixity check.")
            stop.wait(min(x for x in (settings.anchor_interval_s, settings.fixity_interval_s,
                                      settings.outbox_relay_s, 1.0) if x > 0))
    finally:
        if context is not None:
            context.engine.dispose()
        if engine is not None:
            engine.dispose()


def _relay_tick(settings: Settings, actors: Actors, engine: Engine | None) -> Engine | None:
    """Queue again what stayed staged too long, then hand the outbox to the broker; the engine (opened now if need
    be), or None while the catalogue is away (the next tick tries again)."""
    try:
        engine = engine or open_catalog(settings.database_url, run_migrations=False)
        reconcile_once(engine, station=settings.station, after_s=settings.reconcile_after_s)
        relay_once(engine, actors.send, station=settings.station)
        relay_redaction_jobs(engine, actors.redact.send)
    except Exception as exc:  # noqa: BLE001 - the catalogue is away: the next tick tries again
        logger.warning("Outbox relay skipped: %s", first_line(exc))
    return engine


def _media_sweep_tick(settings: Settings, actors: Actors, engine: Engine | None) -> Engine | None:
    """sweep_media_backlog once, logged; the engine as _relay_tick gives it."""
    try:
        engine = engine or open_catalog(settings.database_url, run_migrations=False)
        queued = sweep_media_backlog(engine, actors, older_than_s=MEDIA_SWEEP_AFTER_S)
        if queued:
            logger.warning("Media backlog: derive and decode-check messages queued again for %d recording(s) "
                           "archived over %.0f s ago.", queued, MEDIA_SWEEP_AFTER_S)
    except Exception as exc:  # noqa: BLE001 - the catalogue or broker is away: the next sweep tries again
        logger.warning("Media backlog sweep skipped: %s", first_line(exc))
    return engine


def sweep_media_backlog(engine: Engine, actors: Actors, *, older_than_s: float, limit: int = 1000) -> int:
    """Queue the derive and decode-check messages again for recordings archived more than *older_than_s* ago whose
    media work is still pending (`catalog.media_work.media_backlog`): a message dead-lettered after a long store
    outage, or lost with a broker, leaves the work in the backlog, and this hands it back to the workers. A message
    still waiting in the queue meanwhile only finds the work done. Returns how many recordings were queued."""
    with Session(engine) as session:
        ids = media_backlog(session, limit=limit, archived_before=utcnow() - timedelta(seconds=older_than_s))
    for recording_id in ids:
        actors.derive.send(recording_id)
        actors.decode_check.send(recording_id)
    return len(ids)


def run_workers(settings: Settings, stop: threading.Event, *, archive_threads: int = 4, derive_threads: int = 1,
                only: frozenset[str] = frozenset({"archive", "derive", "verify"}), schedule: bool = False) -> bool:
    """Workers until *stop* is set: this station's archive queue plus verify, and derived media in its own
    threads (rendering never holds up archiving). *only* limits the kinds of work taken. With *schedule* this
    process also anchors the custody chain and queues fixity checks periodically (run it in one worker).

    Once *stop* is set the running messages get EVIDENCE_WORKER_STOP_S to finish (stop_workers). True when they
    all did; False when some were still running, which the caller must end at once by leaving the process
    (os._exit): their threads may wait on a store or catalogue that does not answer, and the broker gives their
    messages to a worker again, as it does a killed worker's."""
    queue = open_queue(settings, upload_threads=archive_threads + derive_threads)
    broker, actors = queue.broker, queue.actors
    queues = queue_names(settings.queue_namespace, settings.station)
    workers = []
    main_queues = {queues[kind] for kind in ("archive", "verify") if kind in only}
    if main_queues:
        # An idle dramatiq consumer sleeps up to worker_timeout between polls (default 1 s, jittered): the first
        # archive message of a dock waited ~0.5 s on average. 100 ms costs ~40 small Redis calls a second when idle.
        workers.append(dramatiq.Worker(broker, queues=main_queues, worker_threads=archive_threads,
                                       worker_timeout=ARCHIVE_POLL_MS))
    if "derive" in only:
        workers.append(dramatiq.Worker(broker, queues={queues["derive"]}, worker_threads=derive_threads))
    for worker in workers:
        worker.start()
    scheduler = threading.Thread(target=_scheduler, args=(settings, actors, stop), kwargs={"schedule": schedule},
                                 name="scheduler", daemon=True)
    scheduler.start()
    taken = sorted(main_queues | ({queues["derive"]} if "derive" in only else set()))
    logger.info("Workers running for station %r on %s.", settings.station, ", ".join(taken))
    left: list[Running] = []
    try:
        stop.wait()
    finally:
        scheduler.join(timeout=min(30.0, settings.worker_stop_s))  # a daemon: one stuck on the catalogue is left
        left = stop_workers(workers, actors.running, grace_s=settings.worker_stop_s)
        if not left:
            queue.close()
    return not left


def stop_workers(workers: list[dramatiq.Worker], running: RunningMessages, *, grace_s: float) -> list[Running]:
    """Stop taking messages and give the running ones *grace_s* to finish, saying every STOP_REPORT_S which are
    still running. Returns those still running after it (empty when all finished), each logged as a WARNING with
    where its thread is, so a stop that had to leave work behind can be explained."""
    stoppers = [threading.Thread(target=worker.stop, kwargs={"timeout": int(grace_s * 1000)},
                                 name="worker-stop", daemon=True) for worker in workers]
    for stopper in stoppers:
        stopper.start()
    deadline = time.monotonic() + grace_s
    while (alive := [s for s in stoppers if s.is_alive()]) and (remaining := deadline - time.monotonic()) > 0:
        alive[0].join(timeout=min(STOP_REPORT_S, remaining))
        waiting, now = running.now(), time.monotonic()
        if waiting and now < deadline:
            logger.info("Stopping: waiting up to %.0f s more for %s.", deadline - now,
                        ", ".join(r.describe(now) for r in waiting))
    for stopper in stoppers:  # the consumers' own stop, once the worker threads are done or given up on
        stopper.join(timeout=5)
    left = running.now()
    now = time.monotonic()
    for r in left:
        logger.warning("Stopped without finishing %s after EVIDENCE_WORKER_STOP_S=%g s; the broker gives its "
                       "message to a worker again (running it twice is safe). Its thread was in %s.",
                       r.describe(now), grace_s, r.stack())
    return left
