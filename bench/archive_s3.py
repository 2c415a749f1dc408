"""Dock-to-WORM throughput on S3 Object Lock, against `aws s3 cp` of the same files, in one run.

A local SeaweedFS (127.0.0.1, telemetry off) with Object Lock buckets is started for the run. The baseline
uploads the files with the AWS CLI (no hashing, no catalogue, no durable staging copy). Ours is `evidence
ingest` on the embedded default with EVIDENCE_STORE_URL=s3://…: copy off the "device" into staging with the
whole-file SHA-256 and every part's SHA-256 in the same pass, describe, stamp, catalogue, multipart upload of
the staged copy with the kept part checksums (the server verifies each part), COMPLIANCE retention, signed
manifest; then the full read-back (GET + re-hash) that the verify queue does with EVIDENCE_S3_READBACK=queued
(the default) before the command returns. Two figures for ours, from one run: the time until the last
recording is `archived` (every part checked by the server: where `aws s3 cp` stops), read from its custody
event, and the time until the command returns with every recording `verified` (read back). Rounds interleave
the two methods; page caches are evicted before each run. Prints medians, the runs and the ratios.

A third figure explains the gap: `cp` + `sync` of the same files onto the disk that holds staging, the durable
copy alone that ingest makes before a recording counts as copied (the AWS CLI writes nothing locally; the
server's own writes mostly stay in the page cache during a run). Where that disk writes slowly, that time is
a cost `aws s3 cp` does not pay.

With --link-mbit N what is sent to the server is shaped to N Mbit/s (root and tc; `bench._common.shaped_uplink`):
the model of a station whose S3 server is another machine on its network: read-backs stay unshaped (a full-duplex
link), and the server keeps its data in RAM (/dev/shm), as a server with disks of its own would not write to the
station's disk. Its CPU is still the station's.

--readback inline reads each object back inside its upload (EVIDENCE_S3_READBACK=inline) instead of after the
last upload (queued, the default).

    .venv/bin/python bench/archive_s3.py [--total-mib 4096] [--files 4] [--rounds 3] [--link-mbit 0]
        [--readback queued|inline]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import Session, col, func, select

from bench._common import OUT, arguments, evict, fresh_dir, median, object_lock_server, shaped_uplink
from bench.copy_hash import make_sources
from catalog import CustodyEvent, CustodyKind, open_catalog
from ingest.config import Settings
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest


def aws_cli() -> str:
    """The AWS CLI of this environment (the [bench] extra), the baseline of the S3 benchmarks."""
    aws = shutil.which("aws") or str(Path(sys.executable).with_name("aws"))
    if not Path(aws).exists():
        raise SystemExit("needs the AWS CLI (pip install -e '.[bench]')")
    return aws


def dcim_device(name: str, files: int, total_mib: int) -> tuple[Path, Path, float]:
    """A "device" (bench/out/<name>-device) whose DCIM/100BENCH folder holds *files* clips of *total_mib* in all,
    hard links to bench/out/<name>-src (same bytes, no extra disk): (device, that folder, GiB in all)."""
    sources = make_sources(OUT / f"{name}-src", files, total_mib // files)
    device = fresh_dir(OUT / f"{name}-device")
    folder = device / "DCIM" / "100BENCH"
    folder.mkdir(parents=True)
    for i, src in enumerate(sources):
        os.link(src, folder / f"MVI_{i:04d}.MP4")
    return device, folder, sum(s.stat().st_size for s in sources) / 2**30


def _aws_upload(aws: str, server: Any, folder: Path, bucket: str) -> float:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key,
           "AWS_SECRET_ACCESS_KEY": server.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}
    evict(folder)
    start = time.perf_counter()
    subprocess.run([aws, "--endpoint-url", server.endpoint, "s3", "cp", "--recursive",
                    "--only-show-errors", str(folder), f"s3://{bucket}/clips/"], env=env, check=True)
    return time.perf_counter() - start


def _durable_copy(folder: Path) -> float:
    """Seconds for `cp` + `sync` of the files into bench/out (the disk that holds staging), cold reads."""
    target = fresh_dir(OUT / "s3-cp")
    evict(folder)
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(folder), str(target / "x")], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - start


def _ingest(server: Any, device: Path, bucket: str, args: argparse.Namespace) -> tuple[float, float]:
    """(seconds until the last recording was archived, seconds until the command returned all verified)."""
    home = fresh_dir(OUT / "s3-home")
    settings = Settings.from_env({
        "EVIDENCE_HOME": str(home), "EVIDENCE_STORE_URL": f"s3://{bucket}",
        "EVIDENCE_S3_ENDPOINT": server.endpoint, "EVIDENCE_S3_ACCESS_KEY": server.access_key,
        "EVIDENCE_S3_SECRET_KEY": server.secret_key,
        "EVIDENCE_S3_PART_SIZE_MB": str(args.part_mib), "EVIDENCE_S3_CONCURRENCY": str(args.concurrency),
        "EVIDENCE_S3_READBACK": args.readback})
    evict(device)
    started_at = datetime.now().astimezone()
    start = time.perf_counter()
    report = run_ingest(device, settings, IngestOptions(), derive="later")
    returned = time.perf_counter() - start
    states = {r["state"] for r in report.recordings}
    if len(report.recordings) != args.files:
        raise SystemExit(f"ingest did not catalogue every file: errors={report.errors}")
    engine = open_catalog(settings.database_url)
    with Session(engine) as session:
        last_archived = session.exec(select(func.max(CustodyEvent.at)).where(
            col(CustodyEvent.kind) == CustodyKind.ARCHIVED.value)).one()
        verified = session.exec(select(func.count()).where(
            col(CustodyEvent.kind) == CustodyKind.VERIFIED.value)).one()
    engine.dispose()
    if last_archived is None or verified != args.files:
        raise SystemExit(f"not every recording was archived and read back: {states}, {verified} verified")
    return (last_archived - started_at).total_seconds(), returned


def main() -> None:
    args = arguments(__doc__, total_mib=4096, files=4, rounds=3, part_mib=16, concurrency=4, link_mbit=0,
                     readback="queued")
    aws = aws_cli()
    device, folder, total_gib = dcim_device("s3", args.files, args.total_mib)
    baseline: list[float] = []
    archived: list[float] = []
    returned: list[float] = []
    durable: list[float] = []
    try:
        with object_lock_server("s3-weed", *(f"baseline-{i}" for i in range(args.rounds)),
                                *(f"evidence-{i}" for i in range(args.rounds)),
                                elsewhere=bool(args.link_mbit)) as (server, _client), \
                shaped_uplink(server.port, args.link_mbit or None):
            for i in range(args.rounds):
                baseline.append(_aws_upload(aws, server, folder, f"baseline-{i}"))
                durable.append(_durable_copy(folder))
                fresh_dir(OUT / "s3-cp")
                to_archived, to_return = _ingest(server, device, f"evidence-{i}", args)
                archived.append(to_archived)
                returned.append(to_return)
    finally:
        fresh_dir(OUT / "s3-weed")
        fresh_dir(OUT / "s3-home")
        fresh_dir(OUT / "s3-cp")
    print(f"{args.files} files, {total_gib:.1f} GiB, SeaweedFS Object Lock bucket on 127.0.0.1, "
          f"{f'uplink shaped to {args.link_mbit} Mbit/s, server data in RAM' if args.link_mbit else 'unshaped'}, "
          f"read-back {args.readback}, cold reads; "
          f"parts {args.part_mib} MiB x {args.concurrency}; {args.rounds} interleaved rounds, medians")
    for name, runs in (("aws s3 cp --recursive (baseline)", baseline), ("ingest until all archived", archived),
                       ("ingest until all verified", returned),
                       ("cp + sync to staging's disk", durable)):
        print(f"  {name:34s} {median(runs):6.1f} s  {total_gib / median(runs):5.2f} GiB/s   "
              f"(runs: {', '.join(f'{r:.1f}' for r in runs)} s)")
    print(f"ratio to archived (server-verified parts) / aws s3 cp = {median(baseline) / median(archived):.2f}"
          "  (target >= 1.0)")
    print(f"ratio to verified (read back whole)       / aws s3 cp = {median(baseline) / median(returned):.2f}")


if __name__ == "__main__":
    main()
