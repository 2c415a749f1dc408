"""Run ingest with the queue, and run workers: the glue between the pipeline and dramatiq.

With EVIDENCE_BROKER_URL set (Redis or RabbitMQ) ingest stops at `staged`
and enqueues archive messages once rows are committed; workers archive,
verify and render derived media (store-and-forward: a station keeps working
while the archive is away). Without it (the embedded default) ingest
archives inline and an in-process worker renders derived media afterwards.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

import dramatiq

from catalog import load_or_create_key
from ingest.actors import WorkerContext, declare_actors, queue_names
from ingest.broker import make_broker
from ingest.config import Settings
from ingest.pipeline import IngestOptions, IngestReport, Progress, ingest_folder
from ingest.wiring import catalog_engine, open_store

__all__ = ["run_ingest", "run_workers"]

logger = logging.getLogger(__name__)


def run_ingest(path: Path, settings: Settings, options: IngestOptions, *, derive: bool = True,
               progress: Progress | None = None) -> IngestReport:
    with catalog_engine(settings) as engine:
        # With a broker the station never touches the archive: it must work while the archive is away.
        store = open_store(settings, check=not settings.broker_url)
        key = load_or_create_key(settings.station_key_path)
        broker = make_broker(settings.broker_url, namespace=settings.queue_namespace)
        actors = declare_actors(broker, lambda: WorkerContext(settings, engine, store, key),
                                namespace=settings.queue_namespace)
        try:
            if settings.broker_url:
                def enqueue_archive(ids: list[int]) -> None:
                    for recording_id in ids:
                        actors.archive.send(recording_id)

                return ingest_folder(path, settings=settings, engine=engine, store=store,
                                     options=replace(options, defer_archive=True), progress=progress,
                                     after_commit=enqueue_archive)
            new_ids: list[int] = []
            report = ingest_folder(path, settings=settings, engine=engine, store=store, options=options,
                                   progress=progress, after_commit=new_ids.extend)
            if derive and new_ids:
                queue = queue_names(settings.queue_namespace)["derive"]
                for recording_id in new_ids:
                    actors.derive.send(recording_id)
                worker = dramatiq.Worker(broker, queues={queue}, worker_threads=2)
                worker.start()
                try:
                    broker.join(queue)
                    worker.join()
                finally:
                    worker.stop()
            return report
        finally:
            broker.close()


def run_workers(settings: Settings, stop: threading.Event, *, archive_threads: int = 4,
                derive_threads: int = 1) -> None:
    """Archive/verify and derive workers (separate thread pools) until *stop* is set."""
    broker = make_broker(settings.broker_url, namespace=settings.queue_namespace)
    actors = declare_actors(broker, lambda: WorkerContext.from_settings(settings),
                            namespace=settings.queue_namespace)
    queues = queue_names(settings.queue_namespace)
    archive = dramatiq.Worker(broker, queues={queues["archive"], queues["verify"]}, worker_threads=archive_threads)
    derive = dramatiq.Worker(broker, queues={queues["derive"]}, worker_threads=derive_threads)
    archive.start()
    derive.start()
    logger.warning("Workers running: %d archive/verify thread(s), %d derive thread(s).", archive_threads,
                   derive_threads)
    try:
        stop.wait()
    finally:
        archive.stop()
        derive.stop()
        broker.close()
        actors.close()
