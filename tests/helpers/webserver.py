"""The web app served for real on 127.0.0.1 (a free port): under uvicorn on a thread of the test's process, or as
an `evidence serve` process of its own."""
from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.s3server import free_ports

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """*app* under uvicorn on 127.0.0.1 (a free port) for the duration; its base URL."""
    import uvicorn

    (port,) = free_ports(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20, "the web server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def start_serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start `evidence serve` with *env* as its whole environment on 127.0.0.1 (a free port) and return it with its
    base URL, once it listens."""
    proc = subprocess.Popen([sys.executable, "-c", "from evidence.cli.main import main; main()", "serve", "--host",
                             "127.0.0.1", "--port", "0"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, bufsize=0)
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    deadline, seen = time.monotonic() + 60, b""
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
            found = re.search(rb"running on (http://127\.0\.0\.1:\d+)", seen)
            if found:
                return proc, found.group(1).decode()
    finally:
        selector.close()
    stop_serve(proc)
    pytest.fail("`evidence serve` did not start: " + seen.decode(errors="replace"))


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    """End an `evidence serve` process (killed if it does not stop within 30 s) and close its pipe."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()
