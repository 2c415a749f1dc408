"""Peak memory while ingesting one 4 GiB recording, against the 250 MB budget.

Runs `evidence ingest` as a child process on a folder holding one large file
of incompressible bytes named like a camera clip (it is catalogued as
unreadable, and preserved) and reads the child's peak RSS. The
interpreter's own footprint (`evidence --help`) is measured in the same run
as the baseline.

    .venv/bin/python bench/big_file_memory.py [--size-mib 4096]
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, fresh_dir

EVIDENCE = str(Path(sys.executable).with_name("evidence"))
BUDGET_MB = 250


def child_peak_mb(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a command in a fresh process; return (peak RSS in MB, seconds)."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, r.returncode)")
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    peak_kb, seconds, rc = out.stdout.split()
    if rc not in ("0", "1"):
        raise SystemExit(f"{args} exited {rc}")
    return int(peak_kb) / 1024, float(seconds)


def make_big(path: Path, size_mib: int) -> None:
    if path.exists() and path.stat().st_size == size_mib * 2**20:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB
    with path.open("wb") as fh:
        for i in range(size_mib):
            fh.write(hashlib.sha256(block + i.to_bytes(4, "big")).digest() * 32768)


def main() -> None:
    args = arguments(__doc__, size_mib=4096)
    device = OUT / "big-device"
    make_big(device / "DCIM" / "100BIG" / "MVI_0001.MP4", args.size_mib)
    home = fresh_dir(OUT / "big-home")
    env = {**os.environ, "EVIDENCE_HOME": str(home)}
    base_mb, _ = child_peak_mb([EVIDENCE, "--help"], env)
    peak_mb, seconds = child_peak_mb([EVIDENCE, "ingest", str(device), "--json"], env)
    fresh_dir(home)
    print(f"ingest of one {args.size_mib} MiB file: {seconds:.1f} s ({args.size_mib / seconds:.0f} MiB/s incl. ffprobe,"
          " catalogue and WORM store)")
    print(f"  baseline (interpreter + imports, evidence --help): {base_mb:6.1f} MB peak RSS")
    print(f"  evidence ingest:                                   {peak_mb:6.1f} MB peak RSS")
    print(f"ratio peak / budget {BUDGET_MB} MB = {peak_mb / BUDGET_MB:.2f}  (target < 1)")
    print(f"ratio peak / baseline            = {peak_mb / base_mb:.2f}")


if __name__ == "__main__":
    main()
