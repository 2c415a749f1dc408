"""The daily retention job over a large catalogue, against reading the same rows with a plain SELECT.

Builds N archived recordings (catalogue rows on SQLite, or PostgreSQL with --database-url, and tiny
objects in a local WORM store), links a tenth of them to cases, then times:

* baseline: `SELECT * FROM recording` fetched into Python (what any full pass costs at least);
* steady state: `evidence retention apply` when nothing has changed (the nightly run);
* closing: closing the cases (hold lifted, retention extended by 30 years on the store, events written);
* check-store: the weekly `apply --check-store` (one HEAD per object).

    .venv/bin/python bench/retention_job.py [--count 20000] [--database-url postgresql+psycopg://…]
"""
from __future__ import annotations

import hashlib
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlmodel import Session

from bench._common import OUT, arguments, fresh_dir
from catalog import (
    DEFAULT_CASE_PATTERN,
    DEFAULT_CASE_TYPES,
    CaseLink,
    Recording,
    RetentionPolicy,
    apply_retention,
    close_case,
    create_case,
    open_catalog,
)
from catalog.types import utcnow
from storage import LocalStore

POLICY = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")


def build(session: Session, store: LocalStore, count: int, work: Path) -> list[int]:
    captured = utcnow() - timedelta(days=10)
    rows = []
    for i in range(count):
        data = f"bench recording {i}".encode()
        sha = hashlib.sha256(data).hexdigest()
        path = work / "src.bin"
        path.write_bytes(data)
        stored = store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=captured + timedelta(days=182))
        rows.append(Recording(sha256=sha, size_bytes=len(data), media_kind="video", original_name=f"{i}.mp4",
                              station_code="bench", captured_start=captured, captured_end=captured,
                              time_source="container", integrity_status="ok", state="archived",
                              ingested_at=captured, retain_until=stored.retain_until, store_name="local",
                              store_key=stored.key))
    session.add_all(rows)
    session.commit()
    return [r.id for r in rows if r.id is not None]


def main() -> None:
    args = arguments(__doc__, count=20_000, cases=100, database_url=None)
    work = fresh_dir(OUT / "retention")
    store = LocalStore(work / "worm")
    engine = open_catalog(args.database_url or f"sqlite:///{work / 'catalog.db'}")
    try:
        with Session(engine) as session:
            start = time.perf_counter()
            ids = build(session, store, args.count, work)
            print(f"built {len(ids)} archived recordings in {time.perf_counter() - start:.1f} s")
            today = datetime.now(UTC).date()
            cases = []
            per_case = len(ids) // 10 // args.cases
            for c in range(args.cases):
                case = create_case(session, number=f"BENCH-{c:05d}", title="bench", case_type="penalty-general",
                                   unit="", opened_on=date(2026, 1, 1), by="bench",
                                   case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY, today=today)
                session.flush()
                assert case.id is not None
                session.add_all(CaseLink(case_id=case.id, recording_id=rid, purpose="bench", source="manual",
                                         linked_by="bench", linked_at=utcnow())
                                for rid in ids[c * per_case:(c + 1) * per_case])
                cases.append(case)
            session.commit()
            linked = per_case * args.cases

            start = time.perf_counter()
            changes = apply_retention(session, store, POLICY, actor="bench")
            first = time.perf_counter() - start
            assert len(changes) == linked, len(changes)

            start = time.perf_counter()
            with engine.connect() as conn:
                fetched = len(conn.execute(text("SELECT * FROM recording")).fetchall())
            baseline = time.perf_counter() - start

            start = time.perf_counter()
            assert apply_retention(session, store, POLICY, actor="bench") == []
            steady = time.perf_counter() - start

            for case in cases:
                close_case(session, case, by="bench", closed_on=today, today=today)
            session.commit()
            start = time.perf_counter()
            closing = apply_retention(session, store, POLICY, actor="bench")
            closed = time.perf_counter() - start
            assert len(closing) == linked

            start = time.perf_counter()
            assert apply_retention(session, store, POLICY, actor="bench", check_store=True) == []
            checked = time.perf_counter() - start
    finally:
        engine.dispose()

    n = args.count
    print(f"baseline SELECT of {fetched} rows: {baseline:.2f} s ({fetched / baseline:,.0f} rows/s)")
    print(f"steady-state apply (nothing to change): {steady:.2f} s ({n / steady:,.0f} recordings/s, "
          f"{steady / baseline:.1f}× the SELECT)")
    print(f"first apply, {linked} holds set: {first:.2f} s ({linked / first:,.0f} changes/s)")
    print(f"closing {args.cases} cases, {linked} extended + hold lifted: {closed:.2f} s "
          f"({linked / closed:,.0f} changes/s)")
    print(f"apply --check-store over {n} objects: {checked:.2f} s ({n / checked:,.0f} objects/s)")
    print(f"projected nightly run over 1,000,000 recordings: {steady / n * 1e6 / 60:.1f} min")


if __name__ == "__main__":
    main()
