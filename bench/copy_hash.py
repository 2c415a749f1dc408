"""Copy + hash throughput against cp, cp + sync and cp + sha256sum, in one run.

Every round reads cold sources (page cache evicted) from the same disk and
writes to the same disk; rounds interleave the methods so drift in the
virtual disk's speed hits all of them alike. Prints medians and ratios.

    .venv/bin/python bench/copy_hash.py [--total-mib 2048] [--files 4] [--rounds 3]
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir, median, timed
from ingest.transfer import copy_and_hash


def make_sources(folder: Path, files: int, each_mib: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    block = os.urandom(1024 * 1024)
    for i in range(files):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists() or path.stat().st_size != each_mib * 1024 * 1024:
            with path.open("wb") as fh:
                for j in range(each_mib):
                    fh.write(hashlib.sha256(block + bytes([i, j % 256])).digest() * 32768)  # incompressible
        paths.append(path)
    return paths


def main() -> None:
    args = arguments(__doc__, total_mib=2048, files=4, rounds=3)
    each = args.total_mib // args.files
    sources = make_sources(OUT / "copy-src", args.files, each)
    total = each * args.files
    dest = OUT / "copy-dst"

    def cp() -> None:
        subprocess.run(["cp", *map(str, sources), str(dest)], check=True)

    def cp_sync() -> None:
        cp()
        subprocess.run(["sync", "-f", str(dest)], check=True)

    def cp_sha() -> None:
        cp_sync()
        subprocess.run(["sha256sum", *[str(dest / s.name) for s in sources]], check=True, capture_output=True)

    def ours() -> None:
        for s in sources:
            copy_and_hash(s, dest, part_name=s.stem)  # fsyncs each file before it counts as copied

    methods = {"cp": cp, "cp + sync": cp_sync, "cp + sync + sha256sum": cp_sha, "copy_and_hash": ours}
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, fn in methods.items():
            fresh_dir(dest)
            for s in sources:
                evict(s)
            times[name].append(timed(fn))
    fresh_dir(dest)
    print(f"copy + hash, {args.files} files, {total} MiB, {args.rounds} rounds, cold reads, same disk")
    for name, values in times.items():
        print(f"  {name:24s} median {total / median(values):7.0f} MiB/s   "
              f"(runs: {', '.join(f'{total / v:.0f}' for v in values)})")
    ours_t = median(times["copy_and_hash"])
    print(f"ratio copy_and_hash / cp                     = {median(times['cp']) / ours_t:.2f}  (target >= 0.9)")
    print(f"ratio copy_and_hash / (cp + sync)            = {median(times['cp + sync']) / ours_t:.2f}")
    print(f"ratio copy_and_hash / (cp + sync + sha256sum) = {median(times['cp + sync + sha256sum']) / ours_t:.2f}"
          "  (target >= 2)")


if __name__ == "__main__":
    main()
