"""The coverage timeline of a unit of 50 officers over 30 days, among 1,000,000 recordings in PostgreSQL (seeded
with COPY, as bench/search_speed.py does), p95 against its 300 ms target.

The catalogue: 2,000 officers in 40 units of 50, each with a year of recordings (3-minute clips at random times);
one unit (U7) also works shifts through the last 35 days, 12 clips a day each (day shifts, and night shifts that
cross midnight on the agency's clock), a second recorder now and then running beside the first (overlaps), and
now and then a file whose recorder's clock said 2000-01-01 (an implausible time, docked that day).

Timed, each through the web app (FastAPI's TestClient, a signed-in clerk), over random 30-day windows inside the
unit's 35 days: `/coverage?unit=U7` (the page: one query for every officer's recordings, 1,500 day rows with their
SVG bars), and as baselines in the same run a search page of one officer over the same 30 days (`/?officer=…`,
what a supervisor opens from a row), one officer's coverage page, and the catalogue's `unit_coverage` alone (the
query and the day arithmetic, no page). The coverage query's plan (EXPLAIN ANALYZE) is printed once.

    .venv/bin/python bench/coverage_speed.py [--recordings 1000000] [--queries 60]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""
from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bench._common import arguments, temporary_databases
from catalog import open_catalog

T0 = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_DAYS = 365
OFFICERS = 2000
UNITS = 40
#: The unit whose coverage is asked for: officers n with n % UNITS == 7 (50 of them).
UNIT = 7
#: Its dense run of days: the last 35 of the year.
DENSE_DAYS = 35
CST = timezone(timedelta(hours=8))
ZONE = "Asia/Shanghai"
_COLUMNS = ("sha256, size_bytes, media_kind, original_name, station_code, captured_start, captured_end, time_source, "
            "clock_offset_s, lat, lon, officer_number, device_serial, time_implausible, case_number, purpose, "
            "important, integrity_status, integrity_detail, state, stamp_revision, legal_hold, retention_rule, "
            "ingested_at, technical, retain_until")


def _naive(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


def _row(n: int, officer: int, device: str, start: datetime, end: datetime, *, kind: str = "video",
         implausible: bool = False, docked: datetime | None = None) -> tuple[object, ...]:
    return (f"{n:064x}", 1000, kind, f"{n}.mp4", f"station-{officer % 50}", _naive(start), _naive(end), "container",
            0.0, None, None, f"{officer:06d}", device, implausible, None, "日常巡查", False, "ok", "", "archived", 1,
            False, "routine", _naive(docked or end), "{}", _naive((docked or end) + timedelta(days=183)))


def _shift_rows(rng: random.Random, per_day: int, first_id: int) -> list[tuple[object, ...]]:
    """The unit's shifts: per officer and day *per_day* clips of 10-25 minutes with breaks of 0-40 minutes, from
    08:00 (a night shift from 20:00 for every fourth officer: across midnight), a second recorder beside the first
    one clip in ten, a wrong clock (2000-01-01) one in two hundred."""
    rows = []
    n = first_id
    first_day = (T0 + timedelta(days=YEAR_DAYS - DENSE_DAYS)).astimezone(CST).date()
    for officer in range(UNIT, OFFICERS, UNITS):
        for d in range(DENSE_DAYS):
            day = first_day + timedelta(days=d)
            at = datetime(day.year, day.month, day.day, 20 if officer % 4 == 0 else 8, tzinfo=CST)
            at += timedelta(minutes=rng.randrange(0, 30))
            for _clip in range(per_day):
                end = at + timedelta(minutes=rng.randrange(10, 26))
                if rng.random() < 0.005:
                    wrong = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 600))
                    rows.append(_row(n, officer, f"DEV{officer:05d}", wrong, wrong + (end - at), implausible=True,
                                     docked=end + timedelta(hours=2)))
                else:
                    rows.append(_row(n, officer, f"DEV{officer:05d}", at, end))
                n += 1
                if rng.random() < 0.1:
                    rows.append(_row(n, officer, f"CAM{officer:05d}", at + timedelta(minutes=5),
                                     end + timedelta(minutes=3)))
                    n += 1
                at = end + timedelta(minutes=rng.randrange(0, 41))
    return rows


def seed(url: str, count: int) -> int:
    """*count* recordings (the unit's shifts, the rest a year of anyone's clips), the officer register and the
    stations; the number of the unit's shift recordings."""
    import psycopg

    rng = random.Random(7)
    per_day = max(1, min(12, count // (2 * (OFFICERS // UNITS) * DENSE_DAYS)))
    shifts = _shift_rows(rng, per_day, 0)[:count]
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY recording ({_COLUMNS}) FROM STDIN") as copy:
            for row in shifts:
                copy.write_row(row)
            for n in range(len(shifts), count):
                officer = n % OFFICERS
                start = T0 + timedelta(seconds=rng.randrange(0, YEAR_DAYS * 86400))
                copy.write_row(_row(n, officer, f"DEV{officer:05d}", start, start + timedelta(minutes=3),
                                    kind="video" if n % 5 else "photo"))
        with cur.copy("COPY officer (number, name, unit_number, unit_name, post, certificate_number, category, "
                      "area) FROM STDIN") as copy:
            for n in range(OFFICERS):
                copy.write_row((f"{n:06d}", f"警员{n}", f"U{n % UNITS}", f"第{n % UNITS}中队", "", "", "", ""))
        with cur.copy("COPY station (code, name, created_at) FROM STDIN") as copy:
            for n in range(50):
                copy.write_row((f"station-{n}", f"第{n}采集站", T0.replace(tzinfo=None)))
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE recording")  # the steady state autovacuum keeps: visibility map set
        cur.execute("ANALYZE officer")
    return len(shifts)


def p95(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.95)] * 1000


def _explain(engine: Engine, first: date, last: date) -> None:
    """The coverage query's plan for the unit over *first*..*last*, as PostgreSQL runs it."""
    from sqlalchemy.dialects import postgresql

    from catalog.coverage import _recordings_query, day_bounds

    begin, end = day_bounds(first, ZONE)[0], day_bounds(last, ZONE)[1]
    query = _recordings_query([f"{n:06d}" for n in range(UNIT, OFFICERS, UNITS)], begin, end)
    sql = str(query.compile(dialect=postgresql.dialect(),
                            compile_kwargs={"literal_binds": True, "render_postcompile": True}))
    with engine.connect() as conn:
        plan = [str(row[0]) for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql)]
    print("coverage query plan:\n  " + "\n  ".join(plan))


def _time_pages(client: Any, engine: Engine, windows: list[date], rng: random.Random) -> dict[str, list[float]]:
    """Each page once per 30-day window, in turn; then unit_coverage alone over the same windows (apart: the
    benchmark, not a page, would otherwise keep its results alive in the server's process); seconds each."""
    from catalog.coverage import unit_coverage

    timings: dict[str, list[float]] = {k: [] for k in ("search page", "officer coverage", "unit coverage page",
                                                       "unit_coverage")}

    def page(label: str, path: str) -> int:
        began = time.perf_counter()
        answer = client.get(path)
        timings[label].append(time.perf_counter() - began)
        assert answer.status_code == 200, answer.text[:300]
        return len(answer.content)

    sizes = []
    for first in windows:
        span = f"from={first.isoformat()}&to={(first + timedelta(days=29)).isoformat()}"
        officer = f"{rng.randrange(UNIT, OFFICERS, UNITS):06d}"
        page("search page", f"/?officer={officer}&{span}")
        page("officer coverage", f"/coverage?officer={officer}&{span}")
        sizes.append(page("unit coverage page", f"/coverage?unit=U{UNIT}&{span}"))
    for first in windows:
        with Session(engine) as session:
            began = time.perf_counter()
            officers = len(unit_coverage(session, f"U{UNIT}", first, first + timedelta(days=29), ZONE).officers)
            timings["unit_coverage"].append(time.perf_counter() - began)
        assert officers == OFFICERS // UNITS
    print(f"unit page: {statistics.median(sizes) / 1024:.0f} KiB of HTML for {OFFICERS // UNITS} officers × 30 days")
    return timings


def _report(timings: dict[str, list[float]]) -> None:
    base = statistics.median(timings["search page"]) * 1000
    print(f"baseline: a search page of one officer over 30 days, median {base:.1f} ms, p95 "
          f"{p95(timings['search page']):.1f} ms")
    for label in ("officer coverage", "unit coverage page", "unit_coverage"):
        samples = timings[label]
        target = " (target p95 < 300 ms)" if label == "unit coverage page" else ""
        print(f"{label:>18}: median {statistics.median(samples) * 1000:6.1f} ms, p95 {p95(samples):6.1f} ms{target}; "
              f"{statistics.median(samples) * 1000 / base:.1f}× the search page (median)")


def main() -> None:
    args = arguments(__doc__, recordings=1_000_000, queries=60,
                     admin_url="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from fastapi.testclient import TestClient

    from evidence.web import WebConfig, create_app
    from storage import LocalStore
    from tests.webhelpers import add_web_users, web_login

    print(f"started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    with temporary_databases(args.admin_url) as (url,), tempfile.TemporaryDirectory() as tmp:
        open_catalog(url).dispose()
        began = time.perf_counter()
        dense = seed(url, args.recordings)
        print(f"seeded {args.recordings:,} recordings ({dense:,} of unit U{UNIT}'s shifts) in "
              f"{time.perf_counter() - began:.0f} s")
        engine = open_catalog(url)
        try:
            add_web_users(engine, {"clerk": "clerk"})
            rng = random.Random(11)
            first_dense = (T0 + timedelta(days=YEAR_DAYS - DENSE_DAYS)).astimezone(CST).date()
            windows = [first_dense + timedelta(days=rng.randrange(0, DENSE_DAYS - 30 + 1))
                       for _ in range(args.queries)]
            _explain(engine, windows[0], windows[0] + timedelta(days=29))
            config = WebConfig(engine=engine, store=LocalStore(Path(tmp) / "store"),
                               key=Ed25519PrivateKey.generate(), zone=ZONE)
            with TestClient(create_app(config)) as client:
                web_login(client, "clerk")
                timings = _time_pages(client, engine, windows, rng)
        finally:
            engine.dispose()
    _report(timings)
    print(f"finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
