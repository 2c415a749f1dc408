"""Several docks at once: total throughput of 4 devices against one device alone, peak memory, time to first byte.

Both runs are full ingests (copy + SHA-256 + describe + catalogue on SQLite + local WORM store) of devices
with the same amount of data per device, cold caches, in interleaved rounds (default 3; medians). The
parallel run docks the devices into a running StationService (EVIDENCE_STATION_WORKERS = devices) at the same
instant. Prints MiB/s, the ratio of throughput per byte together against alone (target >= 0.9), the peak RSS
of the process while the station ingests them (target < 250 MB for 4 devices x 2 GiB; the interpreter with
every import loaded, measured in the same process before the run, is the baseline), and, for each device, the
time from its folder appearing to its first byte copied (target < 2 s).

    .venv/bin/python bench/station_parallel.py [--mib-per-device 2048] [--devices 4] [--rounds 3]
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir, median
from catalog import open_catalog
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.station.service import StationService
from storage import LocalStore

BUDGET_MB = 250


def make_device(root: Path, mib: int, seed: int) -> Path:
    """A device with one clip of *mib* MiB of incompressible bytes (kept between runs when already there)."""
    clip = root / "DCIM" / "100BENCH" / "MVI_0001.MP4"
    if clip.exists() and clip.stat().st_size == mib << 20:
        return root
    clip.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    with clip.open("wb") as fh:
        for i in range(mib):
            fh.write(block[: (1 << 20) - 8] + seed.to_bytes(4, "big") + i.to_bytes(4, "big"))
    return root


def peak_rss_mb() -> float:
    """This process's peak resident set since the last `reset_peak_rss` (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status (needs Linux)")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM starts again from the current RSS


def alone(device: Path) -> float:
    """Seconds for one device ingested by itself."""
    home = fresh_dir(OUT / "station-home-1")
    settings = Settings.from_env({"EVIDENCE_HOME": str(home)})
    engine = open_catalog(settings.database_url)
    evict(device)
    start = time.perf_counter()
    ingest_folder(device, settings=settings, engine=engine, store=LocalStore(settings.store_path))
    seconds = time.perf_counter() - start
    engine.dispose()
    return seconds


def together(devices: list[Path]) -> tuple[float, float, list[float]]:
    """(seconds, peak RSS MB, each device's time to first byte) for *devices* docked at once into a station."""
    home = fresh_dir(OUT / "station-home-n")
    mount = fresh_dir(OUT / "station-media")
    settings = Settings.from_env({"EVIDENCE_HOME": str(home), "EVIDENCE_MOUNT_ROOTS": str(mount),
                                  "EVIDENCE_MOUNT_STABLE_S": "0.2", "EVIDENCE_RESCAN_S": "0.5",
                                  "EVIDENCE_STATION_WORKERS": str(len(devices))})
    service = StationService(settings)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    while not service.devices and not Path(settings.status_path).exists():
        time.sleep(0.05)  # the station has written its first status: it is watching
    for device in devices:
        evict(device)
    reset_peak_rss()
    appeared = time.perf_counter()
    for device in devices:
        os.rename(device, mount / device.name)  # a mount appearing: instant, whole
    first_bytes: dict[str, float] = {}
    while True:
        states = {d.path: d for d in list(service.devices.values())}
        for path, d in states.items():
            if d.bytes_done and path not in first_bytes:
                first_bytes[path] = time.perf_counter() - appeared
        if len(states) == len(devices) and all(d.state == "done" for d in states.values()):
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - appeared
    peak = peak_rss_mb()
    stop.set()
    thread.join()
    for device in devices:
        os.rename(mount / device.name, device)  # back for the next round
    return seconds, peak, sorted(first_bytes.values())


def main() -> None:
    args = arguments(__doc__, mib_per_device=2048, devices=4, rounds=3)
    source = OUT / "station-src"
    devices = [make_device(source / f"CAM{i}", args.mib_per_device, i) for i in range(args.devices + 1)]
    reset_peak_rss()
    baseline_mb = peak_rss_mb()  # the interpreter with every import loaded, before any ingest
    single: list[float] = []
    parallel: list[float] = []
    peaks: list[float] = []
    first: list[float] = []
    for _ in range(args.rounds):
        single.append(alone(devices[-1]))
        seconds, peak, firsts = together(devices[:-1])
        parallel.append(seconds)
        peaks.append(peak)
        first += firsts
    one = args.mib_per_device / median(single)
    many = args.devices * args.mib_per_device / median(parallel)
    print(f"{args.devices} devices x {args.mib_per_device} MiB at once vs 1 device alone (full ingest, local store, "
          f"cold reads, {args.rounds} interleaved rounds, medians)")
    print(f"  one device            {one:7.0f} MiB/s   (runs: {', '.join(f'{s:.1f}' for s in single)} s)")
    print(f"  {args.devices} devices together    {many:7.0f} MiB/s total   "
          f"(runs: {', '.join(f'{s:.1f}' for s in parallel)} s)")
    print(f"ratio throughput per byte together / alone = {many / one:.2f}  (target >= 0.9)")
    print(f"peak RSS while the station ingests them: {max(peaks):.0f} MB (rounds: "
          f"{', '.join(f'{p:.0f}' for p in peaks)}); interpreter + imports before: {baseline_mb:.0f} MB; "
          f"ratio peak / budget {BUDGET_MB} MB = {max(peaks) / BUDGET_MB:.2f}  (target < 1)")
    print(f"time from a volume appearing to its first byte copied: median {median(first):.2f} s, "
          f"worst {max(first):.2f} s  (target < 2 s)")


if __name__ == "__main__":
    main()
