"""A redis-server of the test's own (never the machine's shared one): a free port on 127.0.0.1, its own data folder
with an append-only journal, so a test can SIGKILL it and start it again on the same folder and port, as a broker
outage. Stopped by its own pid."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.conftest import _missing, wait_for
from tests.s3server import free_ports

__all__ = ["PrivateRedis", "answers", "server_args"]


def server_args(binary: str, port: int, folder: Path) -> list[str]:
    """redis-server on 127.0.0.1:*port*, its append-only journal in *folder*, no snapshots."""
    return [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder), "--appendonly", "yes",
            "--save", ""]


def answers(port: int) -> bool:
    """Whether the redis-server on 127.0.0.1:*port* answers a PING (within a second)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


class PrivateRedis:
    def __init__(self, folder: Path, *, log: Path | None = None) -> None:
        server = shutil.which("redis-server")
        if server is None:
            _missing("redis-server")
        self.binary = str(server)
        (self.port,) = free_ports(1)
        self.folder = folder
        self.log = log
        folder.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        out = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(server_args(self.binary, self.port, self.folder), stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: answers(self.port), 30, f"the private redis-server on port {self.port} to answer")

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL: an outage (the journal keeps what it had written)."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: a clean restart."""
        self._signal(signal.SIGTERM)
