"""`evidence verify --all` re-hash speed against the store's raw read throughput, in the same run.

Writes N recordings of random bytes into a local WORM store with catalogue rows and signed manifests,
then, with cold page caches each time, times:

* baseline: reading every object through the store interface without hashing, with the same number of
  parallel readers (the store's raw speed);
* verify: `verify_archive` over all of them (re-hash + catalogue + manifest signature checks, no chain).

Target: verify ≥ 0.8 × the raw read throughput.

    .venv/bin/python bench/verify_speed.py [--files 8] [--mib 256] [--rounds 3] [--workers 4]
"""
from __future__ import annotations

import hashlib
import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from bench._common import OUT, arguments, evict, fresh_dir, median, timed
from catalog import Recording, ensure_station, ensure_station_key, open_catalog, write_manifest
from catalog.custody import CustodyKind, append_event
from catalog.replay import ROW_KEY, row_values
from catalog.stamps import record_stamp
from catalog.types import utcnow
from catalog.verification import select_recordings, verify_archive
from storage import LocalStore
from storage.hashing import CHUNK_BYTES


def build(work: Path, files: int, mib: int) -> tuple[LocalStore, str]:
    store = LocalStore(work / "worm")
    url = f"sqlite:///{work / 'catalog.db'}"
    engine = open_catalog(url)
    key = Ed25519PrivateKey.generate()
    try:
        with Session(engine) as session:
            ensure_station(session, "bench")
            ensure_station_key(session, "bench", key, actor="bench", store=store)
            for n in range(files):
                path = work / "src.bin"
                digest = hashlib.sha256()
                with path.open("wb") as fh:
                    for _ in range(mib):
                        block = os.urandom(2**20)
                        digest.update(block)
                        fh.write(block)
                sha = digest.hexdigest()
                stored = store.put_file(path, sha256=sha, size_bytes=mib * 2**20,
                                        retain_until=utcnow().replace(year=utcnow().year + 1), consume=True)
                recording = Recording(sha256=sha, size_bytes=mib * 2**20, media_kind="video",
                                      original_name=f"{n}.mp4", station_code="bench", time_source="container",
                                      integrity_status="ok", state="archived", ingested_at=utcnow(),
                                      retain_until=stored.retain_until, store_name="local", store_key=stored.key)
                session.add(recording)
                session.flush()
                append_event(session, CustodyKind.COPIED, actor="bench", recording_id=recording.id,
                             details={"sha256": sha, ROW_KEY: row_values(recording, "state", "retain_until")})
                record_stamp(session, recording, by="bench", reason="bench")
                write_manifest(session, store, recording, key, actor="bench")
                session.commit()
    finally:
        engine.dispose()
    return store, url


def _read_one(store: LocalStore, sha: str) -> None:
    buffer = memoryview(bytearray(CHUNK_BYTES))
    with store.open(sha) as fh:
        assert isinstance(fh, io.BufferedIOBase), "a local store opens its files directly"
        while fh.readinto(buffer):  # the fastest way to read: no allocation per chunk
            pass


def raw_read(store: LocalStore, shas: list[str], workers: int) -> None:
    """The store's raw speed: the same objects, the same chunk size and the same parallelism, no hashing."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda sha: _read_one(store, sha), shas))


def main() -> None:
    args = arguments(__doc__, files=8, mib=256, rounds=3, workers=4)
    work = fresh_dir(OUT / "verify")
    store, url = build(work, args.files, args.mib)
    engine = open_catalog(url)
    total = args.files * args.mib * 2**20
    raw_times, verify_times = [], []
    try:
        with Session(engine) as session:
            ids = select_recordings(session)
            shas = [r.sha256 for r in (session.get(Recording, i) for i in ids) if r is not None]
            for _ in range(args.rounds):
                evict(store.root / "objects")
                raw_times.append(timed(lambda: raw_read(store, shas, args.workers)))
                evict(store.root / "objects")
                report = None

                def check() -> None:
                    nonlocal report
                    report = verify_archive(session, store, ids, chain=False, workers=args.workers)

                verify_times.append(timed(check))
                assert report is not None and report.ok and report.bytes_read == total, report
    finally:
        engine.dispose()
    raw, ver = median(raw_times), median(verify_times)
    print(f"{args.files} objects × {args.mib} MiB, cold cache, median of {args.rounds}")
    print(f"raw store read ({args.workers} readers): {total / raw / 2**20:,.0f} MiB/s")
    print(f"verify (re-hash + manifests + signatures, {args.workers} workers): {total / ver / 2**20:,.0f} MiB/s")
    print(f"ratio verify / raw read: {raw / ver:.2f}× (target ≥ 0.8)")


if __name__ == "__main__":
    main()
