"""Start and stop a real S3 Object Lock server (SeaweedFS `weed mini`) on 127.0.0.1 for tests.

Every listener is bound to 127.0.0.1 on ports picked free at start, telemetry
is off, and only the process started here is ever stopped.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "admin.port", "admin.port.grpc")


def find_weed() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    from shutil import which

    return which("weed")


def free_ports(count: int) -> list[int]:
    """*count* distinct ports free on 127.0.0.1 now (all held open together while picked, so none repeats)."""
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


#: Volumes the test server may create, and each one's size limit (volume files grow as written: small ones cost
#: nothing until used).
MAX_VOLUMES, VOLUME_MB = 3000, 32


@dataclass
class SeaweedServer:
    weed: str
    data_dir: Path
    access_key: str = "AK" + uuid.uuid4().hex[:16].upper()
    secret_key: str = "SK" + uuid.uuid4().hex
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    ports: dict[str, int] | None = None  # kept across restarts so clients can reconnect

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "admin", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}), encoding="utf-8")
        if self.ports is None:
            self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        ports = self.ports
        self.port = ports["s3.port"]
        args = [self.weed, "mini", f"-dir={self.data_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-webdav=false", "-admin.ui=false", f"-s3.config={config}",
                # Every test bucket is a collection with volumes of its own: with the count derived from free disk
                # space (the default) a whole test session ran out ("No writable volumes and no free volumes left").
                f"-volume.max={MAX_VOLUMES}", f"-master.volumeSizeLimitMB={VOLUME_MB}",
                *(f"-{flag}={port}" for flag, port in ports.items())]
        with (self.data_dir / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}; see {self.data_dir / 'weed.log'}")
            if self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed did not answer on {self.endpoint} within {timeout_s} s")

    def _answers(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(self.endpoint, timeout=1)
        except urllib.error.HTTPError:
            return True  # 403 without credentials: the S3 API is up
        except OSError:
            return False
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
