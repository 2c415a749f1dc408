"""Running the archive queue's workers in a test: a dramatiq worker until its queues are drained, or `evidence
worker` (ingest.queue.workers.run_workers) on a thread for the length of a block."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq

from ingest.config import Settings
from ingest.queue.workers import run_workers
from tests.helpers.threads import running


def drain(broker: Any, *queues: str, threads: int = 1, fail_fast: bool = False, only: bool = False) -> None:
    """Run an in-process dramatiq worker (*threads* threads) on *broker* until every one of *queues* is empty and
    each message taken is done; with *fail_fast*, a message that fails raises here; with *only*, the worker takes
    messages of *queues* alone (what the others receive waits there)."""
    worker = dramatiq.Worker(broker, queues=set(queues) if only else None, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        for queue in queues:
            broker.join(queue, fail_fast=fail_fast)
        worker.join()
    finally:
        worker.stop()


@contextmanager
def running_workers(settings: Settings, **options: Any) -> Iterator[threading.Thread]:
    """`evidence worker` with *settings* (run_workers, *options* passed on) on a thread for the duration of the
    block; asked to stop and joined afterwards."""
    with running(run_workers, settings, **options) as thread:
        yield thread
