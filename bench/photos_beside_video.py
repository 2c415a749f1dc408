"""A dock of 1,000 photos while another process copies a long video onto the same staging disk.

Small copies are made durable a group at a time by one syncfs of the staging file system (ingest/staging_sync.py),
which waits for everything dirty there: here, the video copy's write-back windows too. This measures what that
costs the photo dock against fsyncing each photo on its own (the pre-2026-12-03 way, the product's own fallback),
and checks that no grouped sync ran while the dock held a catalogue transaction open (other docks would wait on
its write lock). The video copy is `copy_and_hash` (the product's, write-back paced) of a 2 GiB file, over and
over in a second process, started before the photos.

    .venv/bin/python bench/photos_beside_video.py [--rounds 3]
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, ROOT, arguments, evict, fresh_dir, median
from bench.many_photos import make_photos
from catalog import open_catalog
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.pipeline import run as pipeline
from ingest.pipeline.outage import StagedCopy
from storage import LocalStore

VIDEO_BYTES = 2 << 30
_VIDEO_DOCK = """
import sys; sys.path.insert(0, {root!r})
from pathlib import Path
from ingest.transfer import copy_and_hash
n = 0
while True:
    staging = Path({home!r}) / f"video-{{n}}"
    staging.mkdir(parents=True)
    copy_and_hash(Path({video!r}), staging, part_name="video")
    n += 1
"""


def _video(path: Path) -> Path:
    if not path.exists() or path.stat().st_size != VIDEO_BYTES:
        with path.open("wb") as out:
            for _ in range(VIDEO_BYTES >> 24):
                out.write(os.urandom(1 << 24))
    return path


def dock_beside_video(device: Path, video: Path, home: Path, *, grouped: bool) -> dict[str, float]:
    """One photo dock into *home* while a second process copies *video* into the same disk's staging."""
    home.mkdir(parents=True)
    settings = Settings.from_env({"EVIDENCE_HOME": str(home)})
    engine = open_catalog(settings.database_url)
    store = LocalStore(settings.store_path)
    syncs: list[float] = []
    held: list[float] = []
    real_durable, real_later = pipeline.DockRun._made_durable, pipeline.DockRun._syncs_later

    def timed(run: pipeline.DockRun, items: list[StagedCopy]) -> list[StagedCopy]:
        waiting = any(not item.copy.durable for item in items)
        open_before = run.batch.session.in_transaction()
        start = time.perf_counter()
        kept = real_durable(run, items)
        if waiting:
            syncs.append(time.perf_counter() - start)
            if open_before:
                held.append(syncs[-1])
        return kept

    setattr(pipeline.DockRun, "_made_durable", timed)  # noqa: B010 - the bench's own instrument
    if not grouped:
        setattr(pipeline.DockRun, "_syncs_later", lambda run, file: False)  # noqa: B010 - fsync each copy
    evict(device)
    video_dock = subprocess.Popen([sys.executable, "-c", _VIDEO_DOCK.format(root=str(ROOT), home=str(home / "video"),
                                                                            video=str(video))])
    try:
        time.sleep(1.0)  # the video copy under way
        start = time.perf_counter()
        report = ingest_folder(device, settings=settings, engine=engine, store=store)
        wall = time.perf_counter() - start
    finally:
        video_dock.kill()
        video_dock.wait()
        setattr(pipeline.DockRun, "_made_durable", real_durable)  # noqa: B010
        setattr(pipeline.DockRun, "_syncs_later", real_later)  # noqa: B010
        engine.dispose()
    assert report.errors == [] and {r["state"] for r in report.recordings} == {"archived"}
    return {"files_per_s": len(report.recordings) / wall, "syncs": len(syncs), "sync_max_s": max(syncs, default=0.0),
            "sync_sum_s": sum(syncs), "held": len(held)}


def main() -> None:
    args = arguments(__doc__, count=1000, rounds=3)
    device = make_photos(OUT / "photos-device", args.count)
    video = _video(OUT / "video-2g.bin")
    rounds = fresh_dir(OUT / "beside-video-rounds")
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for i in range(args.rounds):
        for grouped in (True, False):
            results[grouped].append(dock_beside_video(device, video, rounds / f"{'grouped' if grouped else 'each'}-{i}",
                                                      grouped=grouped))
    fresh_dir(rounds)
    print(f"{args.count} photos docked beside a 2 GiB video copy on the same disk, {args.rounds} interleaved rounds")
    for grouped, label in ((True, "grouped syncfs (default)"), (False, "each copy fsynced")):
        runs = results[grouped]
        rates = ", ".join(format(r["files_per_s"], ".0f") for r in runs)
        line = f"  {label:26} median {median([r['files_per_s'] for r in runs]):6.0f} files/s  (runs: {rates})"
        if grouped:
            longest, total = max(r["sync_max_s"] for r in runs), median([r["sync_sum_s"] for r in runs])
            line += (f"; syncs {median([r['syncs'] for r in runs]):.0f} a dock, longest {longest * 1000:.0f} ms, "
                     f"all {total:.2f} s; with a catalogue transaction open: {sum(int(r['held']) for r in runs)}")
        print(line)
    ratio = median([r["files_per_s"] for r in results[True]]) / median([r["files_per_s"] for r in results[False]])
    print(f"grouped / each = {ratio:.2f}")


if __name__ == "__main__":
    main()
