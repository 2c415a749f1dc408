"""A worker asked to stop while the store has gone silent mid-upload stops within EVIDENCE_WORKER_STOP_S, says
what it left and where it was, loses nothing, and the next worker archives the recording.

The real `evidence worker` on a real SeaweedFS behind a TCP relay (tests.helpers.tcp_relay) that stops moving
bytes after the first megabytes of the upload and keeps the connections open: the S3 client waits for its own
socket timeout (60 s, three tries). Before the stop had a bound, dramatiq's own stop waited for the running
message for up to 10 minutes, so `systemctl stop` or `docker stop` killed the worker instead, with no word of why.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from catalog import Recording, open_catalog
from tests.cli import bind_caller
from tests.conftest import make_bucket, process_env, wait_for
from tests.helpers.tcp_relay import TcpRelay
from tests.s3server import SeaweedServer

pytestmark = [pytest.mark.slow, pytest.mark.s3]

EVIDENCE = [sys.executable, "-m", "evidence.cli.main"]
REPO = Path(__file__).parents[3]
STOP_S = 3
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def _states(engine: object) -> list[str]:
    with Session(engine) as session:  # type: ignore[arg-type]
        return list(session.exec(select(Recording.state)))


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        return subprocess.Popen([*EVIDENCE, "worker", "--only", "archive,verify"], env=process_env(env),
                                stdout=subprocess.DEVNULL, stderr=err, cwd=REPO, start_new_session=True)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_a_worker_stopped_while_the_store_hangs_mid_upload_leaves_in_time_and_loses_nothing(
        s3_server: SeaweedServer, tmp_path: Path, redis_url: str, catalog_url: str) -> None:
    _, bucket = make_bucket(s3_server)
    relay = TcpRelay("127.0.0.1", int(s3_server.endpoint.rsplit(":", 1)[1]))
    env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url,
           "EVIDENCE_STORE_URL": f"s3://{bucket}", "EVIDENCE_S3_ENDPOINT": relay.endpoint,
           "EVIDENCE_S3_ACCESS_KEY": s3_server.access_key, "EVIDENCE_S3_SECRET_KEY": s3_server.secret_key,
           "EVIDENCE_S3_MULTIPART_THRESHOLD_MB": "5", "EVIDENCE_S3_PART_SIZE_MB": "5",
           "EVIDENCE_BROKER_URL": redis_url, "EVIDENCE_WORKER_STOP_S": str(STOP_S),
           "EVIDENCE_ARCHIVE_LEASE_S": "3", "EVIDENCE_REDIS_HEARTBEAT_S": "3",
           "EVIDENCE_REDIS_MAINTENANCE_CHANCE": "200000"}
    bind_caller(env, None)
    device = tmp_path / "device" / "DCIM" / "100TEST"
    device.mkdir(parents=True)
    (device / "MVI_0001.MP4").write_bytes(os.urandom(40 * 2**20))
    staged = subprocess.run([*EVIDENCE, "ingest", str(tmp_path / "device"), "--no-derive", "--json"],
                            env=process_env(env), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert staged.returncode == 0, staged.stderr[-3000:]
    engine = open_catalog(catalog_url)
    first = second = None
    try:
        # Given a worker uploading the recording when the store goes silent (connections open, no bytes move)
        relay.hang_after(8 * 2**20)
        first = _worker(env, tmp_path / "first.log")
        wait_for(lambda: relay.hung.is_set() or first.poll() is not None, 120, "the upload to reach the store")
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        # When it is asked to stop (as systemctl and docker do)
        os.killpg(first.pid, signal.SIGTERM)
        asked = time.monotonic()
        # Then it leaves within its grace (plus the scheduler's and consumers' own short stops), not after the
        # S3 client's timeouts and certainly not after dramatiq's 10 minutes
        code = first.wait(timeout=STOP_S + 45)
        took = time.monotonic() - asked
        text = (tmp_path / "first.log").read_text()
        assert code == 0, text[-3000:]
        assert took < STOP_S + 40, (took, text[-3000:])
        # saying which message it left and where its thread waited, each line a timestamped record
        left = [line for line in text.splitlines() if "Stopped without finishing archive of recording" in line]
        assert len(left) == 1 and " WARNING " in left[0], text[-3000:]
        assert f"EVIDENCE_WORKER_STOP_S={STOP_S}" in left[0] and ".py:" in left[0], left[0]
        assert [line for line in text.splitlines() if line.strip() and not LINE.match(line)] == [], text[-3000:]
        # and nothing is lost: the recording is still staged with its staged copy
        assert _states(engine) == ["staged"]
        staging = Path(env["EVIDENCE_HOME"]) / "staging"
        assert [p for p in staging.rglob("*") if p.is_file() and p.stat().st_size == 40 * 2**20], \
            "the staged copy is gone"
        # When the store answers again and another worker starts
        relay.resume()
        second = _worker(env, tmp_path / "second.log")
        # Then the message left behind comes back to it and the recording is archived and read back
        wait_for(lambda: _states(engine) == ["verified"] or second.poll() is not None, 120,
                 "the next worker to archive the recording the stopped one left")
        assert _states(engine) == ["verified"], (tmp_path / "second.log").read_text()[-3000:]
    finally:
        for proc in (first, second):
            if proc is not None:
                _end(proc)
        relay.close()
        engine.dispose()
