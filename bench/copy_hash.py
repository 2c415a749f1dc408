"""Copy + hash throughput against cp, cp + sync and cp + sync + sha256sum, cold and warm page cache, in one run.

Issue 17's targets: copy_and_hash >= 0.9x `cp` + `sync` (a durable copy: hashing hidden behind the I/O) and
>= 3x `cp` + `sync` + `sha256sum`, for cold sources (evicted from the page cache) and for warm ones (read
into it first; fincore, or a timed re-read where fincore is missing, confirms each state before each run).

Each round runs every method once cold and once warm, the order rotating from round to round, so drift in
the (virtual) disk's speed hits all methods alike. The destination is a fresh folder on the same disk every
time. Every method but plain `cp` ends durable: `sync FILE... DIR` fsyncs each copy and the folder (what
copy_and_hash does for each file), and sha256sum hashes the synced copies. cp (coreutils 9) copies in the
kernel (copy_file_range). Prints medians in MiB/s, every run, the CPU seconds per GiB of the method (this
process and its children: not the kernel's write-back threads) and how busy the machine's CPUs were meanwhile
(anyone's use: the machine is shared), then the ratios of median times, with the per-round ratios.

    .venv/bin/python bench/copy_hash.py [--total-mib 2048] [--files 4] [--rounds 3] [--variant NAME]

--variant NAME puts one of bench/copy_variants.py's variants (its exact name there) in copy_and_hash's place,
to preview the targets with a change to ingest.transfer before making it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir, median, timed
from ingest.transfer import copy_and_hash

MODES = ("cold", "warm")
#: A re-read this fast (MiB/s) can only come from the page cache (the disk here reads some 3 GB/s at best).
_CACHED_MIB_S = 6000
_T = TypeVar("_T")


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


def source_digests(sources: Sequence[Path]) -> dict[Path, str]:
    """SHA-256 of each source by hashlib (the reference every copy's digest is checked against)."""
    digests = {}
    for path in sources:
        with path.open("rb") as fh:
            digests[path] = hashlib.file_digest(fh, "sha256").hexdigest()
    return digests


def resident_bytes(path: Path) -> int | None:
    """Bytes of *path* in the page cache by fincore (util-linux); None where fincore is missing."""
    if shutil.which("fincore") is None:
        return None
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def _read_all(path: Path) -> float:
    """Read *path* to its end; MiB/s of the read."""
    buffer = bytearray(4 * 1024 * 1024)
    start = time.perf_counter()
    with path.open("rb", buffering=0) as fh:
        while fh.readinto(buffer):
            pass
    return path.stat().st_size / 2**20 / max(time.perf_counter() - start, 1e-9)


def make_cold(sources: Sequence[Path]) -> None:
    """Evict *sources* from the page cache. Raises SystemExit when fincore still finds pages of one."""
    for path in sources:
        evict(path)
        left = resident_bytes(path)
        if left:
            raise SystemExit(f"{path} still has {left} bytes in the page cache after eviction")


def make_warm(sources: Sequence[Path], attempts: int = 3) -> None:
    """Read *sources* into the page cache (again, up to *attempts* times, when the kernel dropped some pages
    meanwhile). Raises SystemExit when one is still not wholly there (fincore), or, without fincore, when a
    second read of it runs slower than a read from the page cache does."""
    for path in sources:
        size = path.stat().st_size
        for _ in range(attempts):
            _read_all(path)
            cached = resident_bytes(path)
            if cached is None or cached >= size:
                break
        if cached is not None and cached < size:
            raise SystemExit(f"{path}: only {cached} of {size} bytes in the page cache after reading it "
                             f"{attempts} times")
        if cached is None and (speed := _read_all(path)) < _CACHED_MIB_S:
            raise SystemExit(f"{path}: a re-read ran at {speed:.0f} MiB/s, not from the page cache")


def set_cache(sources: Sequence[Path], mode: str) -> None:
    """Put *sources* into *mode*: "cold" (evicted) or "warm" (all in the page cache)."""
    if mode == "cold":
        make_cold(sources)
    elif mode == "warm":
        make_warm(sources)
    else:
        raise ValueError(f"cache mode {mode!r} is neither 'cold' nor 'warm'")


def rotated(items: Sequence[_T], turn: int) -> list[_T]:
    """*items* starting at *turn* (mod their count): round r of an interleaved benchmark runs them in this order."""
    k = turn % len(items)
    return [*items[k:], *items[:k]]


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def _machine_ticks() -> tuple[int, int]:
    """(all, idle) CPU ticks of the machine since boot, all CPUs (/proc/stat; iowait counts as idle)."""
    with open("/proc/stat") as fh:
        ticks = [int(t) for t in fh.readline().split()[1:9]]
    return sum(ticks), ticks[3] + ticks[4]


@dataclass(frozen=True)
class Usage:
    """One timed run."""

    seconds: float
    cpu: float  # CPU seconds of this process and of the children it waited for (cp, sync, sha256sum)
    busy: float  # share of the machine's CPUs busy meanwhile, anyone's (others' tests, kernel write-back)


def measured(fn: Callable[[], object]) -> Usage:
    """Run *fn*: its wall time, CPU time (this process and its children) and the machine's CPU busy share."""
    all0, idle0 = _machine_ticks()
    t0 = os.times()
    seconds = timed(fn)
    t1 = os.times()
    all1, idle1 = _machine_ticks()
    cpu = sum(getattr(t1, f) - getattr(t0, f) for f in ("user", "system", "children_user", "children_system"))
    return Usage(seconds, cpu, 1 - (idle1 - idle0) / max(all1 - all0, 1))


def usage_text(runs: Sequence[Usage], mib: int) -> str:
    """Median MiB/s, the runs, CPU-s per GiB and machine busy share, as the reports print them."""
    return (f"median {mib / median([u.seconds for u in runs]):6.0f} MiB/s"
            f"   (runs: {', '.join(f'{mib / u.seconds:.0f}' for u in runs)};"
            f" CPU {median([u.cpu for u in runs]) * 1024 / mib:.2f} s/GiB;"
            f" machine busy {median([u.busy for u in runs]):.0%})")


Copier = Callable[[Path, Path, str], str]  # (source, staging folder, name) -> SHA-256 of the durable copy


def _real_copy(source: Path, staging: Path, name: str) -> str:
    return copy_and_hash(source, staging, part_name=name).sha256  # fsyncs the file, then the folder


def _copier(variant: str | None) -> Copier:
    """copy_and_hash, or the copy_variants variant named *variant*. Raises SystemExit for an unknown name."""
    if not variant:
        return _real_copy
    from bench.copy_variants import variants  # imports this module: only here, when asked for

    found = {v.name: v.copy for v in variants()}
    if variant not in found:
        raise SystemExit(f"no variant {variant!r}; bench/copy_variants.py has: {', '.join(found)}")
    return found[variant]


def _methods(sources: list[Path], dest: Path, digests: dict[Path, str],
             copy: Copier) -> dict[str, Callable[[], None]]:
    copies = [str(dest / s.name) for s in sources]

    def cp() -> None:
        subprocess.run(["cp", *map(str, sources), str(dest)], check=True)

    def cp_sync() -> None:
        cp()
        subprocess.run(["sync", *copies, str(dest)], check=True)  # fsync of each copy and of the folder

    def cp_sync_sha() -> None:
        cp_sync()
        subprocess.run(["sha256sum", *copies], check=True, capture_output=True)

    def ours() -> None:
        for s in sources:
            if (sha256 := copy(s, dest, s.stem)) != digests[s]:
                raise SystemExit(f"copy_and_hash of {s} gave {sha256}, hashlib {digests[s]}")

    return {"cp": cp, "cp + sync": cp_sync, "cp + sync + sha256sum": cp_sync_sha, "copy_and_hash": ours}


def run_rounds(rounds: int, sources: list[Path], dest: Path,
               methods: dict[str, Callable[[], None]]) -> dict[tuple[str, str], list[Usage]]:
    """Runs per (mode, method), *rounds* each; in round r modes and methods start at the r-th."""
    runs: dict[tuple[str, str], list[Usage]] = {(m, n): [] for m in MODES for n in methods}
    for turn in range(rounds):
        for mode in rotated(MODES, turn):
            for name in rotated(list(methods), turn):
                fresh_dir(dest)
                set_cache(sources, mode)
                runs[mode, name].append(measured(methods[name]))
    fresh_dir(dest)
    return runs


_TARGETS = (("cp", None), ("cp + sync", 0.9), ("cp + sync + sha256sum", 3.0))


def report(runs: dict[tuple[str, str], list[Usage]], total_mib: int) -> None:
    """Print each mode's medians, runs and ratios (of median times) against the targets."""
    for mode in MODES:
        print(f"{mode} reads ({'sources evicted' if mode == 'cold' else 'sources in the page cache'}):")
        for (m, name), values in runs.items():
            if m == mode:
                print(f"  {name:24s} {usage_text(values, total_mib)}")
        times = {name: [u.seconds for u in values] for (m, name), values in runs.items() if m == mode}
        ours = times["copy_and_hash"]
        for base, target in _TARGETS:
            ratio = median(times[base]) / median(ours)
            paired = ", ".join(f"{b / o:.2f}" for b, o in zip(times[base], ours, strict=True))
            verdict = ("information" if target is None
                       else f"target >= {target:g}: {'met' if ratio >= target else 'NOT met'}")
            print(f"  ratio copy_and_hash / {'(' + base + ')':24s} = {ratio:5.2f}  ({verdict}; per round {paired})")


def main() -> None:
    args = arguments(__doc__, total_mib=2048, files=4, rounds=3, variant=None)
    copy = _copier(args.variant)
    each = args.total_mib // args.files
    sources = make_sources(OUT / "copy-src", args.files, each)
    total = each * args.files
    dest = OUT / "copy-dst"
    digests = source_digests(sources)
    before = load_text()
    runs = run_rounds(args.rounds, sources, dest, _methods(sources, dest, digests, copy))
    ours = f"copy_and_hash = variant {args.variant!r}" if args.variant else "copy_and_hash as it is"
    print(f"copy + hash, {args.files} files x {each} MiB = {total} MiB, {args.rounds} interleaved rounds, "
          f"destination a fresh folder on the same disk, {ours}; {before} before, {load_text()} after")
    report(runs, total)


if __name__ == "__main__":
    main()
