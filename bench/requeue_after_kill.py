"""How long a `kill -9`ed worker's unacknowledged message waits before another worker gets it.

Each trial: worker A (its own process, 1 thread) takes a message for an actor that blocks; worker B starts and
is polling; A is SIGKILLed; the time from the kill to B starting the same message is measured. Trials run in
parallel, each with its own queue (and, on Redis, its own namespace) on a private redis-server (free port) or on
the machine's RabbitMQ (queues named uniquely and deleted afterwards).

Settings measured: Redis with dramatiq's defaults (heartbeat 60 s, maintenance chance 1000 per million),
with ours (EVIDENCE_REDIS_HEARTBEAT_S=30, EVIDENCE_REDIS_MAINTENANCE_CHANCE=50000), with a tight test setting
(3 s, 200000), and RabbitMQ. Then the busy check: a live worker whose only thread is in a task far longer than
the heartbeat, with more messages prefetched, must not have them requeued under it (maintenance on every
command, heartbeat 3 s).

    .venv/bin/python bench/requeue_after_kill.py [--runs 3] [--default-timebox 480] [--skip-default]
"""
from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import command_line, private_redis

if TYPE_CHECKING:
    from dramatiq import Actor

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ACTOR = "requeue_bench_hold"


def _mark(path: Path) -> None:
    """Write the time now into *path*, atomically (the parent polls for it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(repr(time.time()))
    os.replace(tmp, path)


def worker_main(url: str, queue: str, namespace: str, heartbeat_ms: int, chance: int, marks: Path,
                threads: int) -> None:
    """A worker process: takes `hold` messages, marks each start with the time, blocks for the asked time."""
    import dramatiq

    from ingest.queue.broker import make_broker
    from ingest.queue.workers import ARCHIVE_POLL_MS

    broker = make_broker(url, namespace=namespace, heartbeat_timeout_ms=heartbeat_ms, maintenance_chance=chance)

    def hold(token: str, seconds: float) -> None:
        _mark(marks / f"{token}.{os.getpid()}")
        time.sleep(seconds)

    dramatiq.actor(broker=broker, queue_name=queue, actor_name=ACTOR, max_retries=0, time_limit=86_400_000)(hold)
    # Polling as `evidence worker`'s archive pool does (every command may run the maintenance that requeues).
    worker = dramatiq.Worker(broker, queues={queue}, worker_threads=threads, worker_timeout=ARCHIVE_POLL_MS)
    worker.start()
    _mark(marks / f"ready.{os.getpid()}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    os._exit(0)  # a blocked actor would hold a clean stop for its whole sleep


@dataclass
class Target:
    label: str
    url: str
    heartbeat_ms: int = 60_000
    chance: int = 1000


def _spawn(target: Target, queue: str, namespace: str, marks: Path, threads: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--worker", target.url, queue, namespace,
                             str(target.heartbeat_ms), str(target.chance), str(marks), str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_path(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _sender(target: Target, queue: str, namespace: str) -> Actor[[str, float], None]:
    import dramatiq

    from ingest.queue.broker import make_broker

    broker = make_broker(target.url, namespace=namespace, heartbeat_timeout_ms=target.heartbeat_ms,
                         maintenance_chance=target.chance)

    def hold(token: str, seconds: float) -> None:  # pragma: no cover - runs in the workers
        raise AssertionError

    return dramatiq.actor(broker=broker, queue_name=queue, actor_name=ACTOR, max_retries=0)(hold)


def _delete_rabbit_queues(url: str, queue: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(queue=name)
    finally:
        connection.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@dataclass
class _Queue:
    """A queue (and a Redis namespace) no other trial uses, the folder its workers leave their marks in, and the
    workers started on it (_own_queue stops them)."""

    target: Target
    name: str
    namespace: str
    marks: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, who: str) -> subprocess.Popen[bytes]:
        """A worker on the queue, once it has started (RuntimeError naming *who* if it does not within 60 s)."""
        proc = _spawn(self.target, self.name, self.namespace, self.marks)
        self.procs.append(proc)
        if not _wait_path(self.marks / f"ready.{proc.pid}", 60):
            raise RuntimeError(f"{self.target.label}: {who} did not start")
        return proc

    def send(self, *tokens: str) -> None:
        """One message per token, each holding the worker that takes it for a day."""
        actor = _sender(self.target, self.name, self.namespace)
        for token in tokens:
            actor.send(token, 86_400.0)
        actor.broker.close()


@contextmanager
def _own_queue(target: Target, root: Path, label: str) -> Iterator[_Queue]:
    """A fresh _Queue; at the end its workers are killed and, on RabbitMQ, its queues deleted."""
    name = f"opsbench-{label}{uuid.uuid4().hex[:8]}"
    queue = _Queue(target, name, f"opsbench-{uuid.uuid4().hex[:8]}", root / name)
    queue.marks.mkdir(parents=True)
    try:
        yield queue
    finally:
        for proc in queue.procs:
            _stop(proc)
        if target.url.startswith("amqp"):
            _delete_rabbit_queues(target.url, name)


def trial(target: Target, root: Path, timebox_s: float) -> tuple[float | None, float]:
    """(seconds from the kill to the second worker starting the message, or None past *timebox_s*;
    seconds the second worker had been polling before the kill)."""
    with _own_queue(target, root, "") as queue:
        first = queue.spawn("worker A")
        queue.send("m")
        if not _wait_path(queue.marks / f"m.{first.pid}", 60):
            raise RuntimeError(f"{target.label}: worker A did not take the message")
        second = queue.spawn("worker B")
        ready_at = float((queue.marks / f"ready.{second.pid}").read_text())
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.time()
        first.wait(timeout=30)
        mark = queue.marks / f"m.{second.pid}"
        if not _wait_path(mark, timebox_s):
            return None, killed_at - ready_at
        return float(mark.read_text()) - killed_at, killed_at - ready_at


def busy_check(target: Target, root: Path, watch_s: float) -> dict[str, int]:
    """A live worker with 1 thread blocked far longer than the heartbeat and more messages prefetched, a second
    live worker beside it; maintenance on every command. Returns how many times each message was started."""
    with _own_queue(target, root, "busy-") as queue:
        for _ in range(2):
            queue.spawn("busy check: a worker")
        queue.send(*(f"b{i}" for i in range(6)))
        time.sleep(watch_s)  # the thing measured is what does NOT happen during this time
        starts: dict[str, int] = {}
        for mark in queue.marks.glob("b*.*"):
            token = mark.name.split(".")[0]
            starts[token] = starts.get(token, 0) + 1
        return starts


def _run(target: Target, runs: int, root: Path, timebox_s: float) -> None:
    results: list[tuple[float | None, float]] = [(None, 0.0)] * runs
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = trial(target, root, timebox_s)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"{target.label}: ERROR {errors[0]}", flush=True)
        return
    times = [r[0] for r in results]
    shown = ", ".join(f"> {timebox_s:.0f} s (time box)" if t is None else f"{t:.2f} s" for t in times)
    done = [t for t in times if t is not None]
    median = f"median {statistics.median(done):.2f} s" if len(done) == len(times) else \
        f"{len(times) - len(done)} of {len(times)} not requeued within {timebox_s:.0f} s"
    print(f"{target.label}: {shown}; {median}", flush=True)


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--default-timebox", type=float, default=480.0)
    parser.add_argument("--skip-default", action="store_true", help="skip dramatiq's defaults (minutes)")
    parser.add_argument("--rabbit-url", default=RABBIT_URL)
    parser.add_argument("--only", choices=["default", "ours", "tight", "rabbit", "busy"], action="append")
    args = parser.parse_args()
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"requeue-bench-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    try:
        with private_redis(root / "redis") as redis_url:
            chosen = set(args.only or ["default", "ours", "tight", "rabbit", "busy"])
            if args.skip_default:
                chosen.discard("default")
            jobs = []
            if "default" in chosen:
                jobs.append((Target("redis, dramatiq defaults (60 s, 1000)", redis_url, 60_000, 1000),
                             args.default_timebox))
            if "ours" in chosen:
                jobs.append((Target("redis, ours (30 s, 50000)", redis_url, 30_000, 50_000), 300.0))
            if "tight" in chosen:
                jobs.append((Target("redis, tight (3 s, 200000)", redis_url, 3_000, 200_000), 120.0))
            if "rabbit" in chosen:
                jobs.append((Target("rabbitmq", args.rabbit_url), 120.0))
            threads = [threading.Thread(target=_run, args=(target, args.runs, root, box)) for target, box in jobs]
            for t in threads:
                t.start()
            if "busy" in chosen:
                starts = busy_check(Target("busy", redis_url, 3_000, 1_000_000), root, watch_s=20.0)
                twice = {k: v for k, v in starts.items() if v > 1}
                print(f"busy live worker (redis, heartbeat 3 s, maintenance on every command, 20 s): "
                      f"{len(starts)} message(s) started, {twice or 'none'} started twice", flush=True)
            for t in threads:
                t.join()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, queue, namespace, heartbeat, chance, marks, threads = sys.argv[2:9]
        worker_main(url, queue, namespace, int(heartbeat), int(chance), Path(marks), int(threads))
    else:
        main()
