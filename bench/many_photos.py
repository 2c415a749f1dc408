"""Files per second for a folder of many small photos, against `cp -r` of the same folder.

Each photo is a real JPEG with EXIF (date, offset, GPS) made once with ffmpeg +
piexif, then varied with a unique comment segment so every file is new bytes.
The ingest is the full pipeline (copy + hash + fsync, EXIF, catalogue on
SQLite, local WORM store), run in-process as `evidence ingest` runs it.

    .venv/bin/python bench/many_photos.py [--count 1000] [--rounds 2]
"""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir, median, timed
from catalog import open_catalog
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.samples import make_photo
from storage import LocalStore


def make_photos(root: Path, count: int) -> Path:
    folder = root / "DCIM" / "100BENCH"
    if folder.exists() and len(list(folder.iterdir())) == count:
        return root
    fresh_dir(folder)
    base = make_photo(OUT / "base.jpg", taken_local=datetime(2026, 11, 20, 14, 0), offset="+08:00",
                      gps=(31.2304, 121.4737), gps_utc=datetime(2026, 11, 20, 6, 0, tzinfo=UTC),
                      size="1280x720").read_bytes()
    app1_end = 4 + int.from_bytes(base[4:6], "big")  # SOI + APP1 (EXIF) segment
    for i in range(count):
        comment = f"bench photo {i:06d}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        (folder / f"IMG_{i:05d}.JPG").write_bytes(base[:app1_end] + segment + base[app1_end:])
    return root


def main() -> None:
    args = arguments(__doc__, count=1000, rounds=2)
    device = make_photos(OUT / "photos-device", args.count)
    size_mib = sum(p.stat().st_size for p in device.rglob("*.JPG")) / 2**20
    cp_times, ours_times = [], []
    for _ in range(args.rounds):
        dest = fresh_dir(OUT / "photos-cp")
        evict(device)
        cp_times.append(timed(partial(subprocess.run, ["cp", "-r", str(device), str(dest / "x")], check=True)))
        home = fresh_dir(OUT / "photos-home")
        settings = Settings.from_env({"EVIDENCE_HOME": str(home)})
        engine = open_catalog(settings.database_url)
        store = LocalStore(settings.store_path)
        evict(device)
        start = time.perf_counter()
        report = ingest_folder(device, settings=settings, engine=engine, store=store)
        ours_times.append(time.perf_counter() - start)
        engine.dispose()
        assert len(report.recordings) == args.count, "every photo must be catalogued"
        first = report.recordings[0]
        assert first["time_source"] == "exif" and first["place"] is not None and first["place"]["source"] == "exif"
    fresh_dir(OUT / "photos-cp")
    fresh_dir(OUT / "photos-home")
    ours, cp = median(ours_times), median(cp_times)
    print(f"{args.count} photos ({size_mib:.0f} MiB), {args.rounds} rounds, cold reads")
    print(f"  cp -r          median {args.count / cp:8.0f} files/s")
    print(f"  evidence ingest median {args.count / ours:7.0f} files/s  (runs: "
          f"{', '.join(f'{args.count / t:.0f}' for t in ours_times)})  target >= 50")
    print(f"ratio ingest / cp -r = {cp / ours:.3f}  (ingest also hashes, fsyncs, reads EXIF, catalogues, stores)")


if __name__ == "__main__":
    main()
