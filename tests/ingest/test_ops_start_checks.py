"""The WORM store check at start (issue 14, item 10), with the real `evidence` command and a real SeaweedFS.

A bucket that answers but cannot hold evidence (no versioning, no Object Lock) is refused by `station watch`,
`worker` and `archive-pending` before they do anything: exit 2, the bucket named. An S3 endpoint that does
not answer is an outage, not a configuration: `station watch` and `worker` log a WARNING and run
(store-and-forward).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import bind_caller
from tests.conftest import make_bucket, process_env, wait_for
from tests.s3server import SeaweedServer, free_ports

pytestmark = [pytest.mark.slow, pytest.mark.s3]

EVIDENCE = [sys.executable, "-m", "evidence.cli.main"]
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def _env(tmp_path: Path, redis_url: str, *, bucket: str, endpoint: str, access_key: str = "AK",
         secret_key: str = "SK") -> dict[str, str]:
    root = tmp_path / "media"
    root.mkdir(exist_ok=True)
    env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
           "EVIDENCE_STORE_URL": f"s3://{bucket}", "EVIDENCE_S3_ENDPOINT": endpoint,
           "EVIDENCE_S3_ACCESS_KEY": access_key, "EVIDENCE_S3_SECRET_KEY": secret_key,
           "EVIDENCE_BROKER_URL": redis_url, "EVIDENCE_MOUNT_ROOTS": str(root), "EVIDENCE_STATUS_ADDR": "127.0.0.1:0",
           "EVIDENCE_RESCAN_S": "0.5"}
    bind_caller(env, None)  # the catalogue exists and this OS account may operate the station
    return env


COMMANDS = {"station watch": ["station", "watch"], "worker": ["worker"], "archive-pending": ["archive-pending"]}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("versioning", [False, True], ids=["plain-bucket", "versioned-without-object-lock"])
def test_a_bucket_without_object_lock_is_refused_at_start(command: str, versioning: bool, s3_server: SeaweedServer,
                                                          tmp_path: Path, redis_url: str) -> None:
    # Given a bucket that answers but was made without Object Lock (with or without versioning)
    client, bucket = make_bucket(s3_server, object_lock=False)
    if versioning:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    env = _env(tmp_path, redis_url, bucket=bucket, endpoint=s3_server.endpoint, access_key=s3_server.access_key,
               secret_key=s3_server.secret_key)
    # When the command starts
    done = subprocess.run([*EVIDENCE, *COMMANDS[command]], env=process_env(env), capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[2])
    # Then it refuses at once with exit 2, naming the bucket and what is missing
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert f"bucket {bucket!r} cannot hold evidence" in done.stderr
    assert "Object Lock is not enabled" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["station watch", "worker"])
def test_an_unreachable_store_does_not_stop_the_station_or_the_worker(command: str, tmp_path: Path,
                                                                      redis_url: str) -> None:
    # Given an S3 endpoint where nothing listens
    (port,) = free_ports(1)
    env = _env(tmp_path, redis_url, bucket="evidence-away", endpoint=f"http://127.0.0.1:{port}")
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.Popen([*EVIDENCE, *COMMANDS[command]], env=process_env(env), stdout=subprocess.DEVNULL,
                                stderr=err, cwd=Path(__file__).parents[2], start_new_session=True)
    try:
        # When it starts, Then it says the store does not answer, as a timestamped WARNING, and runs on
        def started() -> bool:
            text = log.read_text()
            running = ("Workers running" in text if command == "worker"
                       else (Path(env["EVIDENCE_HOME"]) / "station-status.json").exists())
            return proc.poll() is not None or ("does not answer" in text and running)

        wait_for(started, 90, f"`{command}` to start with the store away")
        assert proc.poll() is None, f"`{command}` stopped: {log.read_text()[-2000:]}"
        warning = next(line for line in log.read_text().splitlines() if "does not answer" in line)
        assert TIMESTAMPED.match(warning) and " WARNING " in warning, warning
        assert "evidence-away" in warning and f"127.0.0.1:{port}" in warning
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=120)
    # and stops cleanly when asked
    assert code == 0, log.read_text()[-2000:]
