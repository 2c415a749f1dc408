"""Search and spot-check draws over 1,000,000 recordings in PostgreSQL (seeded with COPY), p95 against targets.

Each query is what one search page costs: `catalog.search.count_search` (counting up to 10,001) plus
`run_search` for the first page of 24, newest first — by officer + time range, case number, near a point,
unit + time range, station + day, recordings due for disposal, and browsing everything; the forgiving searches
(part of a case number in lower case, part of an officer's number, part of an officer's name, part of a unit's
name + time range, part of a station's name, part of a purpose); and a spot-check draw of 50
(`catalog.spotcheck`). Baseline in the same run: a primary-key lookup, the floor any query pays.

    .venv/bin/python bench/search_speed.py [--recordings 1000000] [--queries 200]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""
from __future__ import annotations

import random
import statistics
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import Session

from bench._common import arguments, temporary_databases
from catalog import Near, Recording, SearchFilters, open_catalog, run_search
from catalog.search import count_search
from catalog.spotcheck import SpotCheckCriteria, draw_from_catalogue

T0 = datetime(2025, 1, 1, tzinfo=UTC)
OFFICERS = 2000
UNITS = 40
STATIONS = 50
#: What recordings prove, as officers type it (a forgiving search finds part of one)
PURPOSES = ("日常巡查", "证明占道经营", "证明无照经营", "证明违法建设", "证明噪声扰民", "证明渣土运输", "现场检查",
            "调查取证", "送达文书", "证明户外广告违规", "证明餐饮油烟", "证明违规停放", "证明擅自搭建", "证明损坏绿地",
            "证明倾倒垃圾", "证明无证排水", "证明夜间施工", "听取陈述申辩", "证明流动摊贩", "证明违规牌匾")


def seed(url: str, count: int) -> None:
    import psycopg

    rng = random.Random(7)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY recording (sha256, size_bytes, media_kind, original_name, station_code, captured_start, "
                      "captured_end, time_source, clock_offset_s, lat, lon, officer_number, case_number, purpose, "
                      "important, integrity_status, integrity_detail, state, stamp_revision, legal_hold, "
                      "retention_rule, ingested_at, technical, retain_until) FROM STDIN") as copy:
            for n in range(count):
                start = T0 + timedelta(seconds=rng.randrange(0, 365 * 86400))
                copy.write_row((
                    f"{n:064x}", 1000, "video" if n % 5 else "photo", f"{n}.mp4", f"station-{n % 50}",
                    start.replace(tzinfo=None), (start + timedelta(minutes=3)).replace(tzinfo=None), "container",
                    0.0, 39.5 + rng.random(), 116.0 + rng.random(), f"{n % OFFICERS:06d}",
                    f"AB-2025-{n % 200_000:06d}" if n % 3 == 0 else None, PURPOSES[n % len(PURPOSES)], False, "ok",
                    "", "archived",
                    1, False, "routine", start.replace(tzinfo=None), "{}",
                    (start + timedelta(days=183 if n % 4 == 0 else 1100)).replace(tzinfo=None)))
        with cur.copy("COPY officer (number, name, unit_number, unit_name, post, certificate_number, category, "
                      "area) FROM STDIN") as copy:
            for n in range(OFFICERS):
                copy.write_row((f"{n:06d}", f"警员{n}", f"U{n % UNITS}", f"第{n % UNITS}中队", "", "", "", ""))
        with cur.copy("COPY station (code, name, created_at) FROM STDIN") as copy:
            for n in range(STATIONS):
                copy.write_row((f"station-{n}", f"第{n}采集站", T0.replace(tzinfo=None)))
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE recording")  # the steady state autovacuum keeps: visibility map set


def p95(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.95)] * 1000


def main() -> None:
    args = arguments(__doc__, recordings=1_000_000, queries=200,
                     admin_url="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with temporary_databases(args.admin_url) as (url,):
        open_catalog(url).dispose()
        begin = time.perf_counter()
        seed(url, args.recordings)
        print(f"seeded {args.recordings:,} recordings in {time.perf_counter() - begin:.0f} s")
        engine = open_catalog(url)
        rng = random.Random(11)
        timings: dict[str, list[float]] = {k: [] for k in (
            "pk", "officer+time", "case", "near", "unit+time", "station+day", "due", "browse all",
            "case part", "officer part", "officer name", "unit name+time", "station name", "purpose part", "draw 50")}
        try:
            with Session(engine) as session:
                for _ in range(args.queries):
                    rid = rng.randrange(1, args.recordings)
                    begin = time.perf_counter()
                    session.get(Recording, rid)
                    timings["pk"].append(time.perf_counter() - begin)
                    session.expunge_all()
                    start = T0 + timedelta(days=rng.randrange(0, 330))
                    day = T0 + timedelta(days=rng.randrange(0, 364))
                    for label, filters in (
                            ("officer+time", SearchFilters(officer=f"{rng.randrange(OFFICERS):06d}", start=start,
                                                           end=start + timedelta(days=30))),
                            ("case", SearchFilters(case_number=f"AB-2025-{rng.randrange(200_000):06d}")),
                            ("near", SearchFilters(near=Near(39.5 + rng.random(), 116.0 + rng.random(), 300))),
                            ("unit+time", SearchFilters(unit=f"U{rng.randrange(UNITS)}", start=start,
                                                        end=start + timedelta(days=30))),
                            ("station+day", SearchFilters(station=f"station-{rng.randrange(50)}", start=day,
                                                          end=day + timedelta(days=1))),
                            ("due", SearchFilters(retention="due")),
                            ("browse all", SearchFilters()),
                            # forgiving: part of a value, any letter case
                            ("case part", SearchFilters(case_number=f"ab-2025-{rng.randrange(200_000):06d}"[:12])),
                            ("officer part", SearchFilters(officer=f"{rng.randrange(OFFICERS):06d}"[2:])),
                            ("officer name", SearchFilters(officer=f"警员{rng.randrange(OFFICERS)}")),
                            ("unit name+time", SearchFilters(unit=f"第{rng.randrange(UNITS)}中", start=start,
                                                             end=start + timedelta(days=30))),
                            ("station name", SearchFilters(station=f"第{rng.randrange(STATIONS)}采")),
                            ("purpose part", SearchFilters(purpose=rng.choice(PURPOSES)[-4:]))):
                        page = replace(filters, sort="-captured", limit=24)
                        begin = time.perf_counter()
                        count_search(session, page, cap=10_000)
                        run_search(session, page)
                        timings[label].append(time.perf_counter() - begin)
                        session.expunge_all()
                for _ in range(10):
                    begin = time.perf_counter()
                    draw_from_catalogue(session, SpotCheckCriteria(), 50, uuid.uuid4().hex)
                    timings["draw 50"].append(time.perf_counter() - begin)
        finally:
            engine.dispose()
    targets = {label: 100 for label in timings} | {"draw 50": 200}
    base = statistics.median(timings["pk"]) * 1000
    print(f"baseline primary-key lookup: median {base:.2f} ms")
    for label, samples in timings.items():
        if label == "pk":
            continue
        print(f"{label:>14}: median {statistics.median(samples) * 1000:6.1f} ms, p95 {p95(samples):6.1f} ms "
              f"(target p95 < {targets[label]} ms; {statistics.median(samples) * 1000 / base:.0f}× a pk lookup)")


if __name__ == "__main__":
    main()
