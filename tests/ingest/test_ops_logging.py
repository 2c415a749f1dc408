"""Logs an operator can use (issue 14, item 9), read from the real `evidence` command's stderr.

A queued ingest of four multipart files, then `evidence worker --archive-threads 4` with S3 concurrency 4 on a
real SeaweedFS and a private redis-server: every line is timestamped, the worker logs at INFO, no line is
printed twice, no "duplicate middleware" warning at start, and urllib3 never discards connections from a pool
too small for 4 × 4 parts in flight.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlmodel import Session, select

from catalog import Recording, open_catalog
from tests.cli import bind_caller
from tests.conftest import make_bucket, process_env, wait_for
from tests.s3server import SeaweedServer

pytestmark = [pytest.mark.slow, pytest.mark.s3]

EVIDENCE = [sys.executable, "-m", "evidence.cli.main"]
REPO = Path(__file__).parents[2]
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
LINE = re.compile(rf"^{STAMP} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def _device(root: Path, files: int, mib: int) -> Path:
    folder = root / "DCIM" / "100TEST"
    folder.mkdir(parents=True)
    for i in range(files):
        with (folder / f"MVI_{i:04d}.MP4").open("wb") as fh:
            for _ in range(mib):
                fh.write(os.urandom(2**20))
    return root


def test_worker_log_is_timestamped_info_without_middleware_or_pool_warnings(
        s3_server: SeaweedServer, tmp_path: Path, redis_url: str, catalog_url: str) -> None:
    # (On SQLite one archive's write transaction spans its upload, so uploads barely overlap; PostgreSQL runs the
    # four at once, which is what overflowed the old pool of 10.)
    _, bucket = make_bucket(s3_server)
    env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url,
           "EVIDENCE_STORE_URL": f"s3://{bucket}", "EVIDENCE_S3_ENDPOINT": s3_server.endpoint,
           "EVIDENCE_S3_ACCESS_KEY": s3_server.access_key, "EVIDENCE_S3_SECRET_KEY": s3_server.secret_key,
           "EVIDENCE_S3_MULTIPART_THRESHOLD_MB": "5", "EVIDENCE_S3_PART_SIZE_MB": "5", "EVIDENCE_S3_CONCURRENCY": "4",
           "EVIDENCE_BROKER_URL": redis_url, "EVIDENCE_WORKER_STOP_S": "30"}
    bind_caller(env, None)
    # Given four recordings staged and queued (each 16 parts of 5 MiB: 4 uploads × 4 parts in flight at once)
    device = _device(tmp_path / "device", files=4, mib=80)
    staged = subprocess.run([*EVIDENCE, "ingest", str(device), "--no-derive", "--json"], env=process_env(env),
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert staged.returncode == 0, staged.stderr[-3000:]
    engine = open_catalog(env["EVIDENCE_DATABASE_URL"])
    log = tmp_path / "worker.log"
    try:
        # When the worker archives them with 4 archive threads, then is stopped
        with log.open("w") as err:
            worker = subprocess.Popen([*EVIDENCE, "worker", "--archive-threads", "4", "--only", "archive,verify"],
                                      env=process_env(env), stdout=subprocess.DEVNULL, stderr=err, cwd=REPO,
                                      start_new_session=True)

        def archived() -> bool:
            with Session(engine) as session:
                states = list(session.exec(select(Recording.state)))
            return len(states) == 4 and set(states) <= {"archived", "verified"}

        try:
            wait_for(lambda: archived() or worker.poll() is not None, 240, "the worker to archive 4 recordings")
            assert worker.poll() is None, log.read_text()[-3000:]
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
            try:
                code = worker.wait(timeout=120)  # its grace of 30 s, then it leaves (queue/test_worker_stop)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)  # never left running into the next test
                worker.wait(timeout=30)
                raise AssertionError(f"the worker did not stop: {log.read_text()[-3000:]}") from None
            assert code == 0, log.read_text()[-3000:]
    finally:
        engine.dispose()
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    # Then every line is a timestamped log record (no bare tracebacks, no other format)
    assert lines, "the worker logged nothing"
    assert [line for line in lines if not LINE.match(line)] == []
    # at INFO for a service
    assert any(" INFO " in line for line in lines), text
    # with no line written twice (a second handler would repeat each record)
    assert [line for line, n in Counter(lines).items() if n > 1] == []
    # no warning about dramatiq's per-Worker middleware at every start
    assert "middleware of the same type twice" not in text
    # and no connection thrown away from a pool too small for the uploads
    assert "Connection pool is full" not in text
    assert "does not answer" not in text  # the store check found a proper Object Lock bucket


def test_logging_set_up_twice_prints_each_record_once() -> None:
    script = ("import logging\n"
              "from evidence.cli.main import configure_logging\n"
              "configure_logging(0, service=True)\n"
              "configure_logging(1, service=True)\n"
              "logging.getLogger('ingest.queue.actors').info('archived recording 7')\n"
              "logging.getLogger('botocore.endpoint').info('chatter')\n"
              "logging.getLogger('urllib3.connectionpool').warning('Connection pool is full')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    lines = done.stderr.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "INFO ingest.queue.actors: archived recording 7",
        "WARNING urllib3.connectionpool: Connection pool is full"], done.stderr
    assert all(re.match(STAMP, line) for line in lines)
