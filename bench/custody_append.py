"""Cost of appending one custody event (own transaction, commit included) on PostgreSQL, at 1 million events
against an almost empty chain, in the same run.

The chain is filled with real, linked events (version-2 hashes computed by `catalog.event_hashes.event_hash`,
loaded with COPY), then N single-event transactions are timed the way the application appends them. Target:
< 2 ms per event at 1,000,000 events.

    .venv/bin/python bench/custody_append.py [--events 1000000] [--appends 2000]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlmodel import Session

from bench._common import arguments, temporary_databases
from catalog import CustodyKind, append_event, open_catalog
from catalog.event_hashes import CHAIN_VERSION, GENESIS_HASH, event_hash


def fill(engine_url: str, count: int) -> None:
    """COPY *count* linked events into the chain and point the head at the last."""
    import psycopg

    start = datetime(2026, 1, 1, tzinfo=UTC)
    prev = GENESIS_HASH
    dsn = engine_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY custody_event (id, kind, recording_id, dock_session_id, actor, at, details, prev_hash, "
                      "hash, chain_version) FROM STDIN") as copy:
            for n in range(1, count + 1):
                at = start + timedelta(seconds=n)
                details = {"n": n}
                digest = event_hash(prev, chain_version=CHAIN_VERSION, kind="viewed", recording_id=n % 5000 + 1,
                                    dock_session_id=None, actor="bench", at=at, details=details)
                copy.write_row((n, "viewed", n % 5000 + 1, None, "bench", at.replace(tzinfo=None),
                                json.dumps(details), prev, digest, CHAIN_VERSION))
                prev = digest
        cur.execute("UPDATE custody_head SET last_event_id = %s, last_hash = %s WHERE id = 1", (count, prev))
        cur.execute("SELECT setval(pg_get_serial_sequence('custody_event', 'id'), %s)", (count,))
        cur.execute("ANALYZE custody_event")
        conn.commit()


def time_appends(url: str, appends: int, *, pooled: bool = False) -> list[float]:
    """Single-event transactions on one held connection (like the plain insert below); with *pooled*, a
    session that returns its connection to the pool after every commit (pre-ping and reset on each checkout)."""
    engine = open_catalog(url)
    times = []
    try:
        with engine.connect() as conn, Session(engine if pooled else conn) as session:
            for i in range(appends):
                begin = time.perf_counter()
                append_event(session, CustodyKind.VIEWED, actor="bench", recording_id=i % 5000 + 1,
                             details={"via": "bench", "i": i})
                session.commit()
                times.append(time.perf_counter() - begin)
    finally:
        engine.dispose()
    return times


def time_plain_inserts(url: str, appends: int) -> list[float]:
    """The floor: the same row inserted and committed alone, no chain (what any audited write costs)."""
    engine = open_catalog(url)
    times = []
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE plain_event (id serial PRIMARY KEY, kind varchar(32), recording_id int, "
                              "actor varchar(100), at timestamp, details json, hash varchar(64))"))
            conn.commit()
            for i in range(appends):
                begin = time.perf_counter()
                conn.execute(text("INSERT INTO plain_event (kind, recording_id, actor, at, details, hash) VALUES "
                                  "('viewed', :r, 'bench', now(), :d, :h)"),
                             {"r": i % 5000 + 1, "d": json.dumps({"via": "bench", "i": i}), "h": "0" * 64})
                conn.commit()
                times.append(time.perf_counter() - begin)
    finally:
        engine.dispose()
    return times


def main() -> None:
    args = arguments(__doc__, events=1_000_000, appends=2000,
                     admin_url="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    results = {}
    with temporary_databases(args.admin_url, 2) as urls:
        for url, size in zip(urls, (1_000, args.events), strict=True):
            open_catalog(url).dispose()  # schema
            begin = time.perf_counter()
            fill(url, size)
            print(f"filled {size:,} events in {time.perf_counter() - begin:.1f} s")
            results[size] = time_appends(url, args.appends)
        pooled = time_appends(urls[1], args.appends, pooled=True)
        floor = time_plain_inserts(urls[1], args.appends)
    small, big = results[1_000], results[args.events]
    for size, times in ((1_000, small), (args.events, big)):
        ordered = sorted(times)
        print(f"append at {size:>9,} events: median {statistics.median(times) * 1000:.2f} ms, "
              f"p95 {ordered[int(len(ordered) * 0.95)] * 1000:.2f} ms ({args.appends} single-event transactions)")
    print(f"plain INSERT + COMMIT (no chain), same database: median {statistics.median(floor) * 1000:.2f} ms")
    print(f"append at {args.events:,} events with a pooled session per event (pre-ping + reset on every "
          f"checkout): median {statistics.median(pooled) * 1000:.2f} ms")
    print(f"ratio at {args.events:,} vs 1,000 events: {statistics.median(big) / statistics.median(small):.2f}×; "
          f"vs a plain insert: {statistics.median(big) / statistics.median(floor):.2f}× "
          f"(target: under 2 ms at 1,000,000)")


if __name__ == "__main__":
    main()
