"""A killed worker's messages come back within the configured time; a busy live worker keeps its own (issue 14,
item 2).

Real worker processes (ingest.queue.broker.make_broker_for + a dramatiq Worker) on a private redis-server. Bound for
the kill test, from bench/requeue_after_kill.py (2026-11-30): after the heartbeat timeout a dead worker's acks
are requeued by the first broker command on the queue that draws maintenance, probability chance/10⁶ per
command; an idle worker polls each queue about 1.3 times a second. With 200000 (1 in 5) the wait after the
heartbeat was 2-10 s in the bench; P(no maintenance in 30 s ≈ 40 polls) = 0.8⁴⁰ ≈ 10⁻⁴.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ingest.config import Settings
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

HEARTBEAT_S = 3
CHANCE = 200_000
#: Seconds after the heartbeat timeout within which the message must be back (see the module docstring).
MAINTENANCE_BOUND_S = 30

#: A worker process: `hold(token, seconds)` marks its start (and end) in MARKS and blocks for *seconds*.
_WORKER = """
import os, signal, sys, threading, time
from pathlib import Path
import dramatiq
from ingest.queue.broker import make_broker_for
from ingest.config import Settings

url, namespace, home, marks, threads, heartbeat, chance = sys.argv[1:8]
settings = Settings.from_env({"EVIDENCE_HOME": home, "EVIDENCE_BROKER_URL": url,
                              "EVIDENCE_QUEUE_NAMESPACE": namespace, "EVIDENCE_REDIS_HEARTBEAT_S": heartbeat,
                              "EVIDENCE_REDIS_MAINTENANCE_CHANCE": chance})
broker = make_broker_for(settings)
marks = Path(marks)

def mark(name):
    tmp = marks / f".{name}.tmp"
    tmp.write_text(repr(time.time()))
    os.replace(tmp, marks / name)

def hold(token, seconds):
    mark(f"start.{token}.{os.getpid()}")
    time.sleep(seconds)  # the long task itself: the test kills or keeps the worker in the middle of it
    mark(f"done.{token}.{os.getpid()}")

dramatiq.actor(hold, broker=broker, queue_name="held", actor_name="hold", max_retries=0, time_limit=86_400_000)
worker = dramatiq.Worker(broker, queues={"held"}, worker_threads=int(threads))
worker.start()
mark(f"ready.{os.getpid()}")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
os._exit(0)
"""


class Workers:
    def __init__(self, url: str, tmp_path: Path, *, heartbeat_s: float, chance: int) -> None:
        self.url, self.heartbeat_s, self.chance = url, heartbeat_s, chance
        self.namespace = f"requeue-{uuid.uuid4().hex[:8]}"
        self.home = tmp_path / "home"
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, threads: int = 1) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER, self.url, self.namespace, str(self.home),
                                 str(self.marks), str(threads), str(self.heartbeat_s), str(self.chance)],
                                cwd=Path(__file__).parents[3], start_new_session=True)
        self.procs.append(proc)
        wait_for(lambda: (self.marks / f"ready.{proc.pid}").exists() or proc.poll() is not None, 60,
                 "a worker to start")
        assert proc.poll() is None, "the worker process died at start"
        return proc

    def send(self, token: str, seconds: float) -> None:
        import dramatiq

        from ingest.queue.broker import make_broker_for

        broker = make_broker_for(Settings.from_env({
            "EVIDENCE_HOME": str(self.home), "EVIDENCE_BROKER_URL": self.url,
            "EVIDENCE_QUEUE_NAMESPACE": self.namespace}))

        def hold(token: str, seconds: float) -> None:  # pragma: no cover - runs in the workers
            raise AssertionError

        dramatiq.actor(broker=broker, queue_name="held", actor_name="hold")(hold).send(token, seconds)
        broker.close()

    def marked(self, kind: str, token: str, proc: subprocess.Popen[bytes] | None = None) -> list[Path]:
        return sorted(self.marks.glob(f"{kind}.{token}.{proc.pid if proc else '*'}"))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def test_a_killed_workers_message_goes_to_another_worker_after_the_heartbeat(redis_url: str,
                                                                            tmp_path: Path) -> None:
    workers = Workers(redis_url, tmp_path, heartbeat_s=HEARTBEAT_S, chance=CHANCE)
    try:
        # Given worker A in the middle of a long task (the message unacknowledged in A's ack set)
        first = workers.start()
        workers.send("m", 3600)
        wait_for(lambda: bool(workers.marked("start", "m", first)), 30, "worker A to take the message")
        second = workers.start()  # and worker B polling the same queue
        # When A is killed with SIGKILL (no chance to hand anything back)
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.time()
        first.wait(timeout=30)
        # Then B starts the same message after the heartbeat timeout, within the maintenance bound
        wait_for(lambda: bool(workers.marked("start", "m", second)), HEARTBEAT_S + MAINTENANCE_BOUND_S,
                 "the killed worker's message to reach the second worker")
        after = float(workers.marked("start", "m", second)[0].read_text()) - killed_at
        # A stamped its heartbeat at most ~1 s (one poll) before the kill: never requeued while it may be alive
        assert after >= HEARTBEAT_S - 1.5, f"requeued {after:.1f} s after the kill, before the heartbeat timeout"
    finally:
        workers.stop()


def test_a_busy_live_worker_keeps_its_messages(redis_url: str, tmp_path: Path) -> None:
    # Maintenance on every broker command, a heartbeat far shorter than the tasks: the harshest setting
    workers = Workers(redis_url, tmp_path, heartbeat_s=1, chance=1_000_000)
    try:
        # Given two live workers, one thread each, and more long messages than threads (each prefetches 2, so
        # its queue consumer stops polling while its only thread is busy)
        procs = [workers.start(), workers.start()]
        tokens = [f"b{i}" for i in range(5)]
        for token in tokens:
            workers.send(token, 4.0)  # 4 heartbeat timeouts each
        # When every message has been worked through
        wait_for(lambda: all(workers.marked("done", t) for t in tokens), 90, "every long message to finish")
        # Then none was requeued under the busy worker holding it and run again by the other
        starts = {t: len(workers.marked("start", t)) for t in tokens}
        assert starts == dict.fromkeys(tokens, 1), f"messages started more than once: {starts}"
        by_worker = {p.pid: sum(bool(workers.marked("start", t, p)) for t in tokens) for p in procs}
        assert all(by_worker.values()), f"one worker did no work at all, the test proved nothing: {by_worker}"
    finally:
        workers.stop()
