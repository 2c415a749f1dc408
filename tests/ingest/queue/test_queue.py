"""The archive queue: derived media, actors safe to run twice, Redis workers, store-and-forward."""
from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlmodel import Session, col, select

from catalog import CustodyEvent, DerivedMedia, Recording, open_catalog
from ingest.config import Settings
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.queue.actors import queue_names
from ingest.queue.connection import open_queue
from ingest.queue.workers import run_ingest
from ingest.services import open_store
from storage import LocalStore, S3WormStore, derived_key
from tests.conftest import process_env, wait_for
from tests.helpers.queues import drain, running_workers

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_namespace():
    """A private key namespace on the machine's Redis, removed afterwards."""
    import redis

    from tests.conftest import _missing

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        _missing(f"Redis at {REDIS_URL}")
    namespace = f"evtest-{uuid.uuid4().hex[:10]}"
    yield namespace
    for key in client.scan_iter(f"{namespace}*"):
        client.delete(key)
    client.close()


def _states(engine) -> dict[str, str]:
    with Session(engine) as session:
        return {r.original_name: r.state for r in session.exec(select(Recording))}



def _probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, check=True)
    probed: dict[str, Any] = json.loads(out.stdout)
    return probed


def test_embedded_ingest_makes_thumbnails_and_browser_proxies(samples, settings):
    report = run_ingest(samples.dcim_camera, settings, IngestOptions())
    store = LocalStore(settings.store_path)
    engine = open_catalog(settings.database_url)
    try:
        with Session(engine) as session:
            derived = {(r.original_name, d.kind): d for d, r in session.exec(
                select(DerivedMedia, Recording).where(DerivedMedia.recording_id == Recording.id))}
    finally:
        engine.dispose()
    assert set(derived) >= {("IMG_0001.JPG", "thumbnail"), ("MVI_0003.MP4", "thumbnail"), ("MVI_0003.MP4", "proxy")}
    video = next(r for r in report.recordings if r["original_name"] == "MVI_0003.MP4")
    proxy = derived[("MVI_0003.MP4", "proxy")]
    assert (proxy.derived_from_sha256, proxy.key) == (video["sha256"], derived_key(video["sha256"], "proxy.mp4"))
    proxy_path = store.root / proxy.key
    streams = {s["codec_type"]: s for s in _probe(proxy_path)["streams"]}
    assert (streams["video"]["codec_name"], streams["video"]["pix_fmt"], streams["audio"]["codec_name"]) == (
        "h264", "yuv420p", "aac")
    assert streams["video"]["height"] == 240  # 320x240 source: never scaled up
    thumb = cv2.imread(str(store.root / derived[("IMG_0001.JPG", "thumbnail")].key))
    assert thumb is not None
    assert thumb.shape[1] == 320 and thumb.shape[0] == 240
    # derived files are not evidence: the recording's own object is untouched
    assert store.verify(video["sha256"]) == video["sha256"]


@pytest.mark.usefixtures("ffmpeg_available")
@pytest.mark.parametrize("maker", ["wav", "amr"])
def test_audio_recordings_get_an_aac_proxy_a_browser_plays(tmp_path, maker):
    from ingest.derive import make_audio_proxy
    from ingest.samples import make_amr, make_wav

    source = make_wav(tmp_path / "in.wav", seconds=1.5) if maker == "wav" else make_amr(tmp_path / "in.amr",
                                                                                        seconds=1.0)
    proxy = make_audio_proxy(source, tmp_path / "proxy.m4a")
    probed = _probe(proxy)
    assert [s["codec_type"] for s in probed["streams"]] == ["audio"]
    assert probed["streams"][0]["codec_name"] == "aac" and float(probed["format"]["duration"]) > 0.5
    with pytest.raises(ValueError, match=r"garbage\.amr: Invalid data"):
        make_audio_proxy(_garbage(tmp_path), tmp_path / "bad.m4a")


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.amr"
    path.write_bytes(b"not audio at all" * 64)
    return path


def test_archive_actor_is_safe_to_run_twice(samples, settings, engine, store):
    # Given a dock ingested with archiving deferred to the queue
    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions(defer_archive=True))
    assert {r["state"] for r in report.recordings} == {"staged"}
    # When every archive message is delivered twice
    key = __import__("catalog").load_or_create_key(settings.station_key_path)
    queue = open_queue(settings, engine=engine, store=store, key=key)
    broker, actors = queue.broker, queue.actors
    for row in report.recordings:
        actors.archive.send(row["id"])
        actors.archive.send(row["id"])
    queues = queue_names("evidence", settings.station)
    try:
        drain(broker, queues["archive"], queues["derive"], queues["verify"], fail_fast=True)
    finally:
        broker.close()
    # Then each recording is archived once, with one ARCHIVED event, read back (verified), and staging is empty
    assert set(_states(engine).values()) == {"verified"}
    with Session(engine) as session:
        archived = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "archived")).all()
        derived = session.exec(select(DerivedMedia)).all()
    assert sorted(e.recording_id for e in archived if e.recording_id is not None) == sorted(
        r["id"] for r in report.recordings)
    assert len(archived) == len(report.recordings)
    assert list(settings.staging_dir.iterdir()) == []
    assert {d.kind for d in derived} == {"thumbnail", "proxy"}


def test_redis_workers_archive_what_stations_enqueue(samples, tmp_path, catalog_url, engine, redis_namespace):
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
                                  "EVIDENCE_BROKER_URL": REDIS_URL, "EVIDENCE_QUEUE_NAMESPACE": redis_namespace})
    report = run_ingest(samples.sidecar_recorder, settings, IngestOptions())
    assert {r["state"] for r in report.recordings} == {"staged"}  # the station does not wait for the archive
    with running_workers(settings, archive_threads=2):
        wait_for(lambda: set(_states(engine).values()) == {"verified"}, 60, "workers to archive, read back")
        with Session(engine) as session:
            wait_for(lambda: len(session.exec(select(DerivedMedia)).all()) >= 4, 60, "derived media")
    assert list(settings.staging_dir.iterdir()) == []


class _Refusals(dramatiq.Middleware):
    """Counts, per recording, the messages a worker took and failed on (each one then retried or dead)."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is not None:
            self.counts[message.args[0]] += 1


@pytest.mark.s3
@pytest.mark.slow
def test_archive_down_during_ingest_then_recordings_archive_when_it_returns(samples, tmp_path, catalog_url,
                                                                          redis_namespace):
    from tests.conftest import _missing, make_bucket
    from tests.s3server import SeaweedServer, find_weed

    weed = find_weed()
    if weed is None:
        _missing("the SeaweedFS `weed` binary")
    server = SeaweedServer(weed=weed, data_dir=tmp_path / "weed")
    server.start()
    try:
        _client, bucket = make_bucket(server)
        server.stop()  # Given the archive goes away before the officer docks
        settings = Settings.from_env({
            "EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
            "EVIDENCE_STORE_URL": f"s3://{bucket}", "EVIDENCE_S3_ENDPOINT": server.endpoint,
            "EVIDENCE_S3_ACCESS_KEY": server.access_key, "EVIDENCE_S3_SECRET_KEY": server.secret_key,
            "EVIDENCE_BROKER_URL": REDIS_URL, "EVIDENCE_QUEUE_NAMESPACE": redis_namespace})
        # When the station ingests: it works, and recordings wait in staging
        report = run_ingest(samples.sidecar_recorder, settings, IngestOptions())
        staged = sorted(r["sha256"] for r in report.recordings)
        assert sorted(p.name for p in settings.staging_dir.iterdir()) == staged
        queue = open_queue(settings, retry={"min_backoff": 200, "max_backoff": 2_000})
        broker, actors = queue.broker, queue.actors
        refused = _Refusals()
        broker.add_middleware(refused)
        names = queue_names(redis_namespace, settings.station)
        worker = dramatiq.Worker(broker, queues={names["archive"], names["verify"]}, worker_threads=2)
        worker.start()
        engine = open_catalog(settings.database_url)
        try:
            # workers try, fail, back off and try again: every recording refused twice, and still staged
            ids = [r["id"] for r in report.recordings]
            wait_for(lambda: all(refused.counts[i] >= 2 for i in ids), 60, "two refused attempts per recording")
            assert set(_states(engine).values()) == {"staged"}
            assert sorted(p.name for p in settings.staging_dir.iterdir()) == staged
            server.start()  # Then the archive returns
            wait_for(lambda: set(_states(engine).values()) == {"verified"}, 90, "archive + read-back after the outage")
        finally:
            worker.stop()
            broker.close()
            actors.close()
            engine.dispose()
        assert list(settings.staging_dir.iterdir()) == []
        store = open_store(settings)
        assert isinstance(store, S3WormStore)
        for sha in staged:
            assert store.verify(sha) == sha and store.version_count(sha) == 1
    finally:
        server.stop()


@pytest.mark.s3
@pytest.mark.slow
def test_worker_killed_mid_upload_loses_nothing_and_stores_one_version(tmp_path, catalog_url, s3_server,
                                                                        redis_namespace):
    import os
    import signal
    import sys

    from tests.conftest import make_bucket

    # Given a 512 MiB recording staged and queued, and a worker uploading it in 5 MiB parts
    client, bucket = make_bucket(s3_server)
    env = {"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
           "EVIDENCE_STORE_URL": f"s3://{bucket}", "EVIDENCE_S3_ENDPOINT": s3_server.endpoint,
           "EVIDENCE_S3_ACCESS_KEY": s3_server.access_key, "EVIDENCE_S3_SECRET_KEY": s3_server.secret_key,
           "EVIDENCE_S3_PART_SIZE_MB": "5", "EVIDENCE_S3_MULTIPART_THRESHOLD_MB": "5",
           "EVIDENCE_S3_CONCURRENCY": "1", "EVIDENCE_BROKER_URL": REDIS_URL,
           "EVIDENCE_QUEUE_NAMESPACE": redis_namespace,
           # the killed worker's hold on the recording runs out after this (the next worker waits for it)
           "EVIDENCE_ARCHIVE_LEASE_S": "3"}
    settings = Settings.from_env(env)
    device = tmp_path / "cam" / "DCIM" / "100BIG"
    device.mkdir(parents=True)
    with (device / "MVI_0001.MP4").open("wb") as fh:
        for _ in range(512):
            fh.write(os.urandom(1024 * 1024))
    report = run_ingest(tmp_path / "cam", settings, IngestOptions(), derive="later")
    sha = report.recordings[0]["sha256"]
    evidence = str(Path(sys.executable).with_name("evidence"))
    worker = subprocess.Popen([evidence, "worker", "--archive-threads", "1"], env=process_env(env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # When the worker is killed (SIGKILL) while parts are going up
        def uploading() -> bool:
            uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            return any(client.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts")
                       for u in uploads)

        wait_for(uploading, 60, "the multipart upload to start")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    store = open_store(settings)
    assert isinstance(store, S3WormStore)
    engine = open_catalog(settings.database_url)
    try:
        # Then nothing is lost: the recording is still staged with its staged copy, and nothing is stored
        assert _states(engine) == {"MVI_0001.MP4": "staged"}
        assert (settings.staging_dir / sha).stat().st_size == 512 * 1024 * 1024
        assert not store.exists(sha)
        # And when the pending recordings are sent again and a new worker runs, exactly one version results
        resend = subprocess.run([evidence, "archive-pending", "--json"], env=process_env(env), capture_output=True,
                                check=True)
        assert json.loads(resend.stdout) == {"enqueued": 1}
        with running_workers(settings, archive_threads=1):
            wait_for(lambda: _states(engine) == {"MVI_0001.MP4": "verified"}, 120, "the second worker")
    finally:
        engine.dispose()
    assert store.version_count(sha) == 1 and store.verify(sha) == sha
    assert not (settings.staging_dir / sha).exists()


@pytest.mark.slow
def test_workers_survive_a_broker_restart(samples, tmp_path, catalog_url, engine, private_redis):
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
                                  "EVIDENCE_BROKER_URL": private_redis.url})
    # Given messages queued while no worker runs, then the broker restarts (its journal keeps them)
    first = run_ingest(samples.sidecar_recorder, settings, IngestOptions(), derive="later")
    private_redis.stop()
    private_redis.start()
    # When workers start, and the broker restarts again under them
    with running_workers(settings, archive_threads=1):
        wait_for(lambda: set(_states(engine).values()) == {"verified"}, 60, "archiving after the restart")
        private_redis.stop()
        private_redis.start()
        second = run_ingest(samples.dcim_camera, settings, IngestOptions(), derive="later")
        # Then everything queued on either side of the restarts is archived
        wait_for(lambda: set(_states(engine).values()) == {"verified"}, 90, "archiving after a live restart")
        assert len(_states(engine)) == len(first.recordings) + len(second.recordings)


def test_rabbitmq_broker_carries_archive_messages(samples, tmp_path, catalog_url, engine):
    import pika

    from tests.conftest import _missing

    url = "amqp://guest:guest@127.0.0.1:5672/%2F"
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPError:
        _missing("RabbitMQ at 127.0.0.1:5672")
    namespace = f"evtest-{uuid.uuid4().hex[:10]}"
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
                                  "EVIDENCE_BROKER_URL": url, "EVIDENCE_QUEUE_NAMESPACE": namespace})
    try:
        report = run_ingest(samples.sidecar_recorder, settings, IngestOptions(), derive="later")
        assert {r["state"] for r in report.recordings} == {"staged"}
        with running_workers(settings, archive_threads=1):
            wait_for(lambda: set(_states(engine).values()) == {"verified"}, 60, "archiving through RabbitMQ")
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for queue in queue_names(namespace, settings.station).values():
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(queue=queue + suffix)
        connection.close()


def test_verify_actor_records_a_clean_copy_and_flags_a_tampered_one(samples, settings, engine, store):
    from catalog import load_or_create_key
    from storage import object_key

    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store)
    clean, tampered = report.recordings[0], report.recordings[1]
    victim = store.root / "objects" / object_key(tampered["sha256"])
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    victim.write_bytes(bytes(data))

    key = load_or_create_key(settings.station_key_path)
    queue = open_queue(settings, engine=engine, store=store, key=key)
    broker, actors = queue.broker, queue.actors
    actors.verify.send(clean["id"])
    actors.verify.send(tampered["id"])
    try:
        drain(broker, queue_names("evidence", settings.station)["verify"])
    finally:
        broker.close()
    with Session(engine) as session:
        events = {(e.recording_id, e.kind): e for e in session.exec(select(CustodyEvent).where(
            col(CustodyEvent.kind).in_(["verified", "ingest_failed"])))}
    from ingest.archiving import READ_BACK_QUEUED

    verified = events[(clean["id"], "verified")].details
    assert verified["how"] == READ_BACK_QUEUED and verified["sha256"] == clean["sha256"]
    states = _states(engine)
    assert verified["row"] == {"state": "verified"} and states[clean["original_name"]] == "verified"
    assert states[tampered["original_name"]] == "archived"  # a copy that fails its read-back is never `verified`
    failure = events[(tampered["id"], "ingest_failed")].details
    assert failure["stage"] == "verify" and failure["reason"].startswith("sha256 mismatch for sha256/")
    assert (tampered["id"], "verified") not in events
    assert isinstance(broker, StubBroker)
    assert broker.dead_letters and broker.dead_letters[0].kwargs == {} and broker.dead_letters[0].args == (
        tampered["id"],)


def test_scheduled_worker_anchors_the_chain_and_runs_fixity_checks(samples, tmp_path, catalog_url, engine,
                                                                   redis_namespace):
    from catalog.models import CustodyAnchor

    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
                                  "EVIDENCE_BROKER_URL": REDIS_URL, "EVIDENCE_QUEUE_NAMESPACE": redis_namespace,
                                  "EVIDENCE_ANCHOR_INTERVAL_S": "0.5", "EVIDENCE_FIXITY_INTERVAL_S": "0.5",
                                  "EVIDENCE_FIXITY_SAMPLE": "2"})
    run_ingest(samples.sidecar_recorder, settings, IngestOptions())
    with running_workers(settings, archive_threads=2, schedule=True):
        wait_for(lambda: set(_states(engine).values()) == {"verified"}, 60, "workers to archive, read back")

        def checked() -> int:
            with Session(engine) as session:
                return len(session.exec(select(CustodyEvent).where(
                    CustodyEvent.kind == "verified", CustodyEvent.actor == "worker:station-1")).all())

        wait_for(lambda: checked() >= 3, 60, "fixity checks of every recording")
        with Session(engine) as session:
            wait_for(lambda: len(session.exec(select(CustodyAnchor)).all()) >= 2, 30, "two anchors")
    store = LocalStore(settings.store_path)
    assert len(store.list_records("custody/")) >= 2
