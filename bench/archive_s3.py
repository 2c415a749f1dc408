"""Dock-to-verified-WORM throughput on S3 Object Lock, against `aws s3 cp` of the same files, in one run.

A local SeaweedFS (127.0.0.1, telemetry off) with an Object Lock bucket is started for the run. The
baseline uploads the files with the AWS CLI (no hashing, no catalogue). Ours is `evidence ingest` on the
embedded default with EVIDENCE_STORE_URL=s3://…: copy + SHA-256 off the "device" into staging, describe,
stamp, catalogue, multipart upload with per-part server-verified SHA-256 and COMPLIANCE retention,
read-back check, signed manifest. Caches are evicted before each run. Prints GiB/s and the ratio.

    .venv/bin/python bench/archive_s3.py [--total-mib 4096] [--files 4]
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir, object_lock_server
from bench.copy_hash import make_sources
from ingest.config import Settings
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest


def aws_cli() -> str:
    """The AWS CLI of this environment (the [bench] extra), the baseline of the S3 benchmarks."""
    aws = shutil.which("aws") or str(Path(sys.executable).with_name("aws"))
    if not Path(aws).exists():
        raise SystemExit("needs the AWS CLI (pip install awscli)")
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


def main() -> None:
    args = arguments(__doc__, total_mib=4096, files=4, part_mib=16, concurrency=4)
    aws = aws_cli()
    device, folder, total_gib = dcim_device("s3", args.files, args.total_mib)

    try:
        with object_lock_server("s3-weed", "baseline", "evidence") as (server, _client):
            env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                   "AWS_DEFAULT_REGION": "us-east-1"}
            evict(device)
            start = time.perf_counter()
            subprocess.run([aws, "--endpoint-url", server.endpoint, "s3", "cp", "--recursive", "--only-show-errors",
                            str(folder), "s3://baseline/clips/"], env=env, check=True)
            baseline = time.perf_counter() - start

            home = fresh_dir(OUT / "s3-home")
            settings = Settings.from_env({
                "EVIDENCE_HOME": str(home), "EVIDENCE_STORE_URL": "s3://evidence",
                "EVIDENCE_S3_ENDPOINT": server.endpoint, "EVIDENCE_S3_ACCESS_KEY": server.access_key,
                "EVIDENCE_S3_SECRET_KEY": server.secret_key, "EVIDENCE_S3_PART_SIZE_MB": str(args.part_mib),
                "EVIDENCE_S3_CONCURRENCY": str(args.concurrency)})
            evict(device)
            start = time.perf_counter()
            report = run_ingest(device, settings, IngestOptions(), derive=False)
            ours = time.perf_counter() - start
            states = {r["state"] for r in report.recordings}
            if states != {"verified"} or len(report.recordings) != args.files:
                raise SystemExit(f"ingest did not verify every file: {states}, errors={report.errors}")
    finally:
        fresh_dir(OUT / "s3-weed")
        fresh_dir(OUT / "s3-home")
    print(f"{args.files} files, {total_gib:.1f} GiB, SeaweedFS Object Lock bucket on 127.0.0.1, cold reads; "
          f"parts {args.part_mib} MiB x {args.concurrency}")
    print(f"  aws s3 cp --recursive (baseline)       {baseline:6.1f} s  {total_gib / baseline:5.2f} GiB/s")
    print(f"  evidence ingest -> verified WORM copy  {ours:6.1f} s  {total_gib / ours:5.2f} GiB/s")
    print(f"ratio ingest throughput / aws s3 cp = {baseline / ours:.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
