"""Several docks at once: total throughput of 4 devices against one device alone, and time to first byte.

Both runs are full ingests (copy + SHA-256 + describe + catalogue on SQLite + local WORM store) of devices
with the same amount of data, cold caches. The parallel run docks four devices into a running
StationService at the same instant. Prints MiB/s, the ratio (target >= 0.8) and, for each device, the time
from its folder appearing to its first byte copied (target < 2 s).

    .venv/bin/python bench/station_parallel.py [--mib-per-device 512]
"""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir
from catalog import open_catalog
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.station.service import StationService
from storage import LocalStore


def make_device(root: Path, mib: int, seed: int) -> Path:
    folder = root / "DCIM" / "100BENCH"
    folder.mkdir(parents=True)
    block = os.urandom(1 << 20)
    with (folder / "MVI_0001.MP4").open("wb") as fh:
        for i in range(mib):
            fh.write(block[: (1 << 20) - 8] + seed.to_bytes(4, "big") + i.to_bytes(4, "big"))
    return root


def main() -> None:
    args = arguments(__doc__, mib_per_device=512, devices=4)
    source = fresh_dir(OUT / "station-src")
    devices = [make_device(source / f"CAM{i}", args.mib_per_device, i) for i in range(args.devices + 1)]

    # One device alone.
    home = fresh_dir(OUT / "station-home-1")
    settings = Settings.from_env({"EVIDENCE_HOME": str(home)})
    engine = open_catalog(settings.database_url)
    evict(devices[-1])
    start = time.perf_counter()
    ingest_folder(devices[-1], settings=settings, engine=engine, store=LocalStore(settings.store_path))
    single = args.mib_per_device / (time.perf_counter() - start)
    engine.dispose()

    # N devices docked at once into a running station.
    home = fresh_dir(OUT / "station-home-n")
    mount = fresh_dir(OUT / "station-media")
    settings = Settings.from_env({"EVIDENCE_HOME": str(home), "EVIDENCE_MOUNT_ROOTS": str(mount),
                                  "EVIDENCE_MOUNT_STABLE_S": "0.2", "EVIDENCE_RESCAN_S": "0.5",
                                  "EVIDENCE_STATION_WORKERS": str(args.devices)})
    service = StationService(settings)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    time.sleep(1.0)
    for device in devices[:-1]:
        evict(device)
    appeared = time.perf_counter()
    for device in devices[:-1]:
        os.rename(device, mount / device.name)  # a mount appearing: instant, whole
    first_bytes: dict[str, float] = {}
    while True:
        states = {d.path: d for d in list(service.devices.values())}
        for path, d in states.items():
            if d.bytes_done and path not in first_bytes:
                first_bytes[path] = time.perf_counter() - appeared
        if len(states) == args.devices and all(d.state == "done" for d in states.values()):
            break
        time.sleep(0.01)
    parallel = args.devices * args.mib_per_device / (time.perf_counter() - appeared)
    stop.set()
    thread.join()
    shutil.rmtree(source)
    fresh_dir(mount)
    print(f"{args.devices} devices x {args.mib_per_device} MiB at once vs 1 device alone (full ingest, local store)")
    print(f"  one device            {single:7.0f} MiB/s")
    print(f"  {args.devices} devices together    {parallel:7.0f} MiB/s total")
    print(f"ratio together / alone = {parallel / single:.2f}  (target >= 0.8)")
    print("time from a volume appearing to its first byte copied: "
          + ", ".join(f"{v:.2f} s" for v in sorted(first_bytes.values())) + "  (target < 2 s)")


if __name__ == "__main__":
    main()
