"""Dock-to-verified time on the queued production path, against `aws s3 cp --recursive` of the same files.

Started for the run, all on 127.0.0.1: a SeaweedFS with Object Lock buckets (telemetry off) and a private
redis-server. Ours is the production layout of one station: `evidence ingest` with EVIDENCE_BROKER_URL set (copy +
SHA-256 off the "device" into staging, describe, catalogue, an archive message per recording) and one `evidence
worker` process already running (multipart upload with per-part server-verified SHA-256 and COMPLIANCE retention,
read-back check, signed manifest). The clock runs from the start of `evidence ingest` until the catalogue shows
every recording `verified`. The catalogue is SQLite (the embedded default) unless --postgres-url names an admin URL
(a fresh database per round is made and dropped). The worker takes archive and verify work (--worker-only):
derived media and decode checks, which do not delay `verified`, usually run on central workers. The baseline
uploads the same files with the AWS CLI (no hashing, no catalogue). Rounds interleave baseline and ours (which of
the two goes first alternates by round), each on a fresh bucket, catalogue and home, caches evicted before each run.
Prints seconds and GiB/s per run, the medians and the ratio; with --timeline also, per run, when each recording was
catalogued, handed to the broker, taken by the worker, archived and recorded verified, and the CPU seconds used by
`evidence ingest` (with its ffprobe children), the worker, SeaweedFS and the AWS CLI: on a small machine the
processes share the cores, so CPU seconds say more than wall time about where the time goes.

With --link-mbit N what is sent to the server is shaped to N Mbit/s (root and tc) and the server keeps its data in
RAM (/dev/shm): the model of an S3 server on another machine of the station's network, whose writes do not share
the station's disk (its CPU is still the station's). The product's packages are byte-compiled first, as an
installed station's are (`bench._common.compile_like_an_install`).

    .venv/bin/python bench/queued_dock_to_verified.py [--total-mib 1024] [--files 4] [--rounds 3] [--timeline]
        [--link-mbit 0] [--archive-threads N] [--multipart-threshold-mib N]
"""
from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    OUT,
    command_line,
    compile_like_an_install,
    evict,
    fresh_dir,
    median,
    object_lock_server,
    private_redis,
    shaped_uplink,
    temporary_databases,
)
from bench.archive_s3 import aws_cli, dcim_device

EVIDENCE = str(Path(sys.executable).with_name("evidence"))
#: How long one run may take before the benchmark gives up (a stuck queue is a failure, not a slow result).
RUN_LIMIT_S = 1800.0


@contextmanager
def running_worker(env: dict[str, str], log: Path, only: str,
                   archive_threads: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`evidence worker --only ONLY` (its default threads unless *archive_threads*), up and polling its queues
    before the clock starts."""
    threads = ["--archive-threads", str(archive_threads)] if archive_threads else []
    with log.open("wb") as out:
        proc = subprocess.Popen([EVIDENCE, "worker", "--only", only, *threads], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Workers running" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"evidence worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


#: (recordings in WORM storage: archived or verified, recordings verified)
_COUNTS = ("SELECT count(*) FILTER (WHERE state IN ('archived', 'verified')), "
           "count(*) FILTER (WHERE state = 'verified') FROM recording")


def stored_and_verified(database_url: str) -> tuple[int, int]:
    """How many recordings are in the WORM store (`archived` or `verified`), and how many of them `verified`."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        if not Path(path).exists():
            return 0, 0
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            try:
                stored, verified = conn.execute(_COUNTS).fetchone()
                return int(stored), int(verified)
            except sqlite3.OperationalError:  # not migrated yet
                return 0, 0
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            stored, verified = conn.execute(text(_COUNTS)).one()
            return int(stored), int(verified)
    except Exception:  # noqa: BLE001 - not migrated yet
        return 0, 0
    finally:
        engine.dispose()


def timeline(database_url: str, log: Path, started_at: float, ingest_s: float) -> list[str]:
    """Where a run's time went, in seconds from the start of `evidence ingest`: per recording when it was
    catalogued (copied), handed to the broker, taken and archived by the worker (from its log line), and
    recorded verified."""
    import re
    from datetime import datetime

    from sqlalchemy import create_engine, text

    def rel(value: Any) -> float:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp() - started_at

    rows: dict[int, dict[str, float]] = {}
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            for rid, kind, at in conn.execute(text(
                    "SELECT recording_id, kind, at FROM custody_event WHERE recording_id IS NOT NULL")):
                rows.setdefault(int(rid), {}).setdefault(str(kind), rel(at))
            for rid, sent in conn.execute(text("SELECT recording_id, sent_at FROM outbox")):
                if sent is not None:
                    rows.setdefault(int(rid), {})["relayed"] = rel(sent)
    finally:
        engine.dispose()
    done = re.compile(r"^(\S+) INFO \S+: Archived recording (\d+) \(\w+\) in ([\d.]+) s")
    for line in log.read_text(errors="replace").splitlines():
        if m := done.match(line):
            end = datetime.fromisoformat(m[1]).timestamp() - started_at
            rows.setdefault(int(m[2]), {}).update({"taken": end - float(m[3]), "archived": end})
    lines = [f"    ingest exited at {ingest_s:6.2f} s"]
    for rid in sorted(rows):
        r = rows[rid]
        lines.append(f"    recording {rid}: " + "  ".join(
            f"{name} {r[name]:6.2f}" for name in ("copied", "relayed", "taken", "archived", "verified") if name in r))
    return lines


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process *pid* has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds used by this process's waited-for children (aws, evidence ingest)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(device: Path, env: dict[str, str], files: int, work: Path, only: str, *, server_pid: int,
         show_timeline: bool = False, archive_threads: int | None = None) -> tuple[float, float]:
    """Seconds from `evidence ingest` to every recording archived (every part checked by the server) and to every
    recording verified (read back whole by the verify queue), with one worker already running."""
    log = work / "worker.log"
    with running_worker(env, log, only, archive_threads) as worker:
        evict(device)
        cpu = (children_cpu(), cpu_seconds(worker.pid), cpu_seconds(server_pid))
        started_at = time.time()
        start = time.perf_counter()
        ingest = subprocess.run([EVIDENCE, "ingest", str(device)], env=env, capture_output=True, text=True,
                                check=False)
        ingest_s = time.perf_counter() - start
        if ingest.returncode != 0:
            raise SystemExit(f"evidence ingest failed ({ingest.returncode}):\n{ingest.stdout}\n{ingest.stderr}")
        archived_s = None
        while (counts := stored_and_verified(env["EVIDENCE_DATABASE_URL"]))[1] < files:
            if archived_s is None and counts[0] >= files:
                archived_s = time.perf_counter() - start
            if time.perf_counter() - start > RUN_LIMIT_S:
                raise SystemExit(f"not every recording verified after {RUN_LIMIT_S} s; see {log}")
            time.sleep(0.05)
        took = time.perf_counter() - start
        used = (children_cpu() - cpu[0], cpu_seconds(worker.pid) - cpu[1], cpu_seconds(server_pid) - cpu[2])
    if show_timeline:
        print("\n".join(timeline(env["EVIDENCE_DATABASE_URL"], log, started_at, ingest_s)), flush=True)
        print(f"    CPU s: evidence ingest {used[0]:.1f}, worker {used[1]:.1f}, SeaweedFS {used[2]:.1f}", flush=True)
    return (took if archived_s is None else archived_s), took


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--total-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--multipart-threshold-mib", type=int, default=0,
                        help="EVIDENCE_S3_MULTIPART_THRESHOLD_MB for ours (0: the product's default)")
    parser.add_argument("--archive-threads", type=int, default=None,
                        help="the worker's --archive-threads (default: the worker's own default)")
    parser.add_argument("--worker-only", default="archive,verify",
                        help="the station worker's --only (derived media and decode checks usually run on central "
                             "workers; 'archive,derive,verify' has this worker render them too, beside the uploads)")
    parser.add_argument("--postgres-url", default="", help="PostgreSQL admin URL: catalogue there instead of SQLite")
    parser.add_argument("--link-mbit", type=int, default=0,
                        help="shape what is sent to the S3 server to this many Mbit/s (root and tc; as a link to "
                             "a server on another machine would; 0: unshaped)")
    parser.add_argument("--timeline", action="store_true",
                        help="after each run, print when each recording was catalogued, relayed, taken, archived")
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    compile_like_an_install()
    aws = aws_cli()
    device, folder, total_gib = dcim_device("queued", args.files, args.total_mib)
    buckets = [f"{kind}-r{n}" for n in range(args.rounds) for kind in ("baseline", "evidence")]
    times: dict[str, list[float]] = {"baseline": [], "archived": [], "ours": []}
    try:
        with ExitStack() as stack:
            server, _client = stack.enter_context(object_lock_server("queued-weed", *buckets,
                                                                      elsewhere=bool(args.link_mbit)))
            stack.enter_context(shaped_uplink(server.port, args.link_mbit or None))
            broker = stack.enter_context(private_redis(OUT / "queued-redis"))
            databases = (stack.enter_context(temporary_databases(args.postgres_url, args.rounds))
                         if args.postgres_url else None)
            aws_env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key,
                       "AWS_SECRET_ACCESS_KEY": server.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}
            def baseline_run(n: int) -> None:
                evict(device)
                cpu = (children_cpu(), cpu_seconds(server.process.pid))
                start = time.perf_counter()
                subprocess.run([aws, "--endpoint-url", server.endpoint, "s3", "cp", "--recursive",
                                "--only-show-errors", str(folder), f"s3://baseline-r{n}/clips/"], env=aws_env,
                               check=True)
                times["baseline"].append(time.perf_counter() - start)
                if args.timeline:
                    print(f"    CPU s: aws {children_cpu() - cpu[0]:.1f}, "
                          f"SeaweedFS {cpu_seconds(server.process.pid) - cpu[1]:.1f}", flush=True)

            def ours_run(n: int) -> None:
                home = fresh_dir(OUT / "queued-home")
                env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
                env.update({
                    "EVIDENCE_HOME": str(home),
                    "EVIDENCE_DATABASE_URL": databases[n] if databases else f"sqlite:///{home / 'catalog.db'}",
                    "EVIDENCE_STORE_URL": f"s3://evidence-r{n}", "EVIDENCE_S3_ENDPOINT": server.endpoint,
                    "EVIDENCE_S3_ACCESS_KEY": server.access_key, "EVIDENCE_S3_SECRET_KEY": server.secret_key,
                    "EVIDENCE_S3_PART_SIZE_MB": str(args.part_mib), "EVIDENCE_S3_CONCURRENCY": str(args.concurrency),
                    "EVIDENCE_BROKER_URL": broker, "EVIDENCE_QUEUE_NAMESPACE": f"bench-r{n}",
                    "EVIDENCE_ANCHOR_INTERVAL_S": "0", "EVIDENCE_FIXITY_INTERVAL_S": "0"})
                if args.multipart_threshold_mib:
                    env["EVIDENCE_S3_MULTIPART_THRESHOLD_MB"] = str(args.multipart_threshold_mib)
                if not databases:  # migrate before the clock starts, as a running station's catalogue is
                    subprocess.run([EVIDENCE, "station", "status", "--json"], env=env, capture_output=True,
                                   check=False)
                archived, verified = ours(device, env, args.files, OUT / "queued-home", args.worker_only,
                                          server_pid=server.process.pid, show_timeline=args.timeline,
                                          archive_threads=args.archive_threads)
                times["archived"].append(archived)
                times["ours"].append(verified)

            for n in range(args.rounds):
                # Alternate which goes first: the one after inherits the other's write-back and SeaweedFS's growth.
                for run in ((baseline_run, ours_run) if n % 2 == 0 else (ours_run, baseline_run)):
                    run(n)
                print(f"  round {n + 1}: aws s3 cp {times['baseline'][-1]:6.1f} s, "
                      f"queued dock-to-verified {times['ours'][-1]:6.1f} s", flush=True)
    finally:
        for name in ("queued-weed", "queued-home", "queued-redis"):
            fresh_dir(OUT / name)
    base, mine = median(times["baseline"]), median(times["ours"])
    catalogue = "PostgreSQL" if args.postgres_url else "SQLite"
    print(f"{args.files} files, {total_gib:.2f} GiB, {args.rounds} interleaved rounds, SeaweedFS Object Lock on "
          f"127.0.0.1, {catalogue} catalogue, private Redis broker, one `evidence worker --only "
          f"{args.worker_only}{f' --archive-threads {args.archive_threads}' if args.archive_threads else ''}`, "
          f"{f'uplink shaped to {args.link_mbit} Mbit/s, server data in RAM' if args.link_mbit else 'unshaped'}, "
          "cold reads; "
          f"parts {args.part_mib} MiB x {args.concurrency}"
          f"{f', multipart from {args.multipart_threshold_mib} MiB' if args.multipart_threshold_mib else ''}")
    print(f"  aws s3 cp --recursive (baseline)            median {base:6.1f} s  {total_gib / base:5.2f} GiB/s  "
          f"(runs: {', '.join(f'{t:.1f}' for t in times['baseline'])})")
    stored = median(times["archived"])
    print(f"  evidence ingest + worker -> archived WORM   median {stored:6.1f} s  {total_gib / stored:5.2f} GiB/s  "
          f"(runs: {', '.join(f'{t:.1f}' for t in times['archived'])})")
    print(f"  evidence ingest + worker -> verified WORM   median {mine:6.1f} s  {total_gib / mine:5.2f} GiB/s  "
          f"(runs: {', '.join(f'{t:.1f}' for t in times['ours'])})")
    print(f"ratio queued dock-to-archived throughput / aws s3 cp = {base / stored:.2f}  (every part checked by the "
          "server; target >= 0.9)")
    print(f"ratio queued dock-to-verified throughput / aws s3 cp = {base / mine:.2f}  (read back whole as well)")


if __name__ == "__main__":
    main()
