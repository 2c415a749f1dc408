"""What the local store's layout alone costs a small file: a design probe, not the product's code.

Issue 17 target 3 asks the photo ingest for 0.2× the speed of `cp -r` + `sync`. This probe measures the
ceiling the layout itself sets, with no product Python at all: for each photo, the file-system work the
local WORM store and staging do today (`docs/architecture.md`), written as plainly as Python allows, one
thread, batched as the product batches (groups of 32):

* staging: read the device file, hash it, write the staged copy; one syncfs for the group;
* store: the `sha256/ab/cd` folders made where missing (opened 0755, sealed 0555 again), the staged copy
  linked into `objects/` and sealed 0444, the retention record and the signed manifest each written as a
  scratch file, linked into place, sealed and the scratch unlinked; one syncfs after the objects and
  retention records, one after the manifests (the store makes each step durable before the next);
* the staged copy unlinked once stored.

Each round runs it twice: alone, and with a bare catalogue: one transaction a group inserting three rows a photo
(a recording, a sighting, a custody event) into an SQLite file with WAL, as plain `executemany`, no ORM.

The yardstick is the same as `bench/many_photos.py`: `cp -r` then `sync` of the same folder, cold reads,
interleaved rounds, each run in a folder of its own (none deleted until the end: see many_photos.py).

    .venv/bin/python bench/photo_layout_probe.py [--count 1000] [--rounds 3]
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir, median, timed
from bench.many_photos import TARGET_RATIO, copy_then_sync, make_photos
from storage.backends.local_tree import FileSystemSync

GROUP = 32
AREAS = ("objects", "retention", "manifests")


def _sealed_folder(root: Path, area: str, digest: str, made: set[str]) -> str:
    """`area/sha256/ab/cd`, made where missing (each new folder opened 0755 in its sealed parent, sealed 0555)."""
    parts = [area, "sha256", digest[:2], digest[2:4]]
    path = str(root)
    for part in parts:
        parent, path = path, f"{path}/{part}"
        if path in made:
            continue
        os.chmod(parent, 0o755)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
        os.chmod(path, 0o555)
        os.chmod(parent, 0o555)
        made.add(path)
    return path


def _place(folder: str, name: str, scratch: str) -> None:
    """Link *scratch* into the sealed *folder* as *name*, sealed 0444 (the folder opened for it, sealed again)."""
    os.chmod(folder, 0o755)
    os.link(scratch, f"{folder}/{name}")
    os.chmod(f"{folder}/{name}", 0o444)
    os.chmod(folder, 0o555)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def layout_once(device: Path, home: Path, *, with_sqlite: bool) -> float:
    """One cold run of the layout's file work for every photo of *device* into *home*: wall seconds."""
    staging, store = home / "staging", home / "worm"
    staging.mkdir(parents=True)
    for area in AREAS:
        (store / area / "sha256").mkdir(parents=True)
    (store / "incoming").mkdir()
    for folder in (*(store / a / "sha256" for a in AREAS), *(store / a for a in AREAS)):
        os.chmod(folder, 0o555)
    db = sqlite3.connect(home / "catalog.db") if with_sqlite else None
    if db is not None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript("CREATE TABLE recording(id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE, name TEXT, size INT);"
                         "CREATE TABLE sighting(id INTEGER PRIMARY KEY, recording INT, path TEXT);"
                         "CREATE TABLE event(id INTEGER PRIMARY KEY, recording INT, kind TEXT, body TEXT);")
    files = sorted(p for p in device.rglob("*") if p.is_file())
    evict(device)
    made: set[str] = set()
    staging_sync, store_sync = FileSystemSync(staging), FileSystemSync(store)
    start = time.perf_counter()
    for first in range(0, len(files), GROUP):
        group = []
        for source in files[first:first + GROUP]:
            data = source.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            staged = str(staging / f"{digest}.part")
            _write(staged, data)
            group.append((source, digest, staged, len(data)))
        staging_sync.sync()
        for _source, digest, staged, _size in group:
            _place(_sealed_folder(store, "objects", digest, made), digest, staged)
            scratch = f"{store}/incoming/{digest}.retention"
            _write(scratch, json.dumps({"retain_until": "2027-06-04T00:00:00+00:00", "legal_hold": False}).encode())
            _place(_sealed_folder(store, "retention", digest, made), f"{digest}.json", scratch)
            os.unlink(scratch)
        store_sync.sync()
        if db is not None:
            with db:
                db.executemany("INSERT INTO recording(sha256, name, size) VALUES (?, ?, ?)",
                               [(d, s.name, n) for s, d, _, n in group])
                db.executemany("INSERT INTO sighting(recording, path) SELECT id, ? FROM recording WHERE sha256 = ?",
                               [(str(s), d) for s, d, _, _ in group])
                db.executemany("INSERT INTO event(recording, kind, body) SELECT id, 'ingested', ? FROM recording "
                               "WHERE sha256 = ?", [(json.dumps({"sha256": d, "file": s.name}), d)
                                                    for s, d, _, _ in group])
        for source, digest, _staged, size in group:
            scratch = f"{store}/incoming/{digest}.manifest"
            _write(scratch, json.dumps({"sha256": digest, "size": size, "file": source.name,
                                        "signature": "0" * 128}, indent=1, sort_keys=True).encode())
            _place(_sealed_folder(store, "manifests", digest, made), f"{digest}.r1.json", scratch)
            os.unlink(scratch)
        store_sync.sync()
        for _source, _digest, staged, _size in group:
            os.unlink(staged)
    wall = time.perf_counter() - start
    staging_sync.close()
    store_sync.close()
    if db is not None:
        db.close()
    return wall


def _unseal(tree: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(tree)], check=True)


def main() -> None:
    args = arguments(__doc__, count=1000, rounds=3)
    device = make_photos(OUT / "photos-device", args.count)
    rounds = fresh_dir(OUT / "layout-rounds")
    synced_times, layout_times, sqlite_times = [], [], []
    for i in range(args.rounds):
        evict(device)
        synced_times.append(timed(partial(copy_then_sync, device, rounds / f"cp-synced-{i}")))
        layout_times.append(layout_once(device, rounds / f"layout-{i}", with_sqlite=False))
        sqlite_times.append(layout_once(device, rounds / f"sqlite-{i}", with_sqlite=True))
    _unseal(rounds)
    fresh_dir(rounds)
    synced = median(synced_times)
    print(f"{args.count} photos, {args.rounds} rounds, cold reads, groups of {GROUP}")
    print(f"  cp -r + sync               median {args.count / synced:8.0f} files/s")
    for label, times in (("layout alone", layout_times), ("layout + bare SQLite", sqlite_times)):
        ratio = synced / median(times)
        print(f"  {label:26} median {args.count / median(times):8.0f} files/s  (runs: "
              f"{', '.join(f'{args.count / t:.0f}' for t in times)})  ratio {ratio:.3f}"
              f" ({'above' if ratio >= TARGET_RATIO else 'below'} the target {TARGET_RATIO})")


if __name__ == "__main__":
    main()
