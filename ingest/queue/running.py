"""The messages a worker process is running now, so a worker asked to stop can say what it is waiting for, and
what it left to the broker when its grace ran out (ingest.queue.workers.stop_workers)."""
from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Running", "RunningMessages"]


@dataclass(frozen=True)
class Running:
    """One message being run: the work (`archive`, `verify`, ...), its argument, since when, on which thread."""

    work: str
    argument: object
    started: float  # time.monotonic()
    thread_id: int

    def describe(self, now: float) -> str:
        what = f"recording {self.argument}" if self.work != "fixity" else f"a sample of {self.argument}"
        return f"{self.work} of {what} (running {now - self.started:.0f} s)"

    def stack(self, depth: int = 8) -> str:
        """Where its thread is now, on one line (a log line stays one line): the innermost *depth* calls, outermost
        first, or "(ended)"."""
        frame = sys._current_frames().get(self.thread_id)
        if frame is None:
            return "(ended)"
        calls = traceback.extract_stack(frame)[-depth:]
        return " > ".join(f"{Path(c.filename).name}:{c.lineno} {c.name}" for c in calls)


class RunningMessages:
    """Thread-safe set of the messages running in this process (one per worker thread at most)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}

    @contextmanager
    def run(self, work: str, argument: object) -> Iterator[None]:
        """Count the body as running *work* on *argument* until it returns or raises."""
        thread_id = threading.get_ident()
        with self._lock:
            self._running[thread_id] = Running(work, argument, time.monotonic(), thread_id)
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(thread_id, None)

    def now(self) -> list[Running]:
        """What runs now, longest-running first."""
        with self._lock:
            return sorted(self._running.values(), key=lambda r: r.started)
