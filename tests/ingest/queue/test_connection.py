"""open_queue: the one place a command gets its broker, its actors and their worker context."""
from __future__ import annotations

from dataclasses import replace

import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlmodel import Session, select

from catalog import CustodyEvent, Recording, load_or_create_key
from ingest.config import Settings
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.queue.actors import queue_names
from ingest.queue.connection import open_queue
from tests.helpers.queues import drain


def test_open_queue_without_a_broker_url_binds_the_station_actors_to_an_in_process_broker(settings, engine, store):
    key = load_or_create_key(settings.station_key_path)
    with open_queue(settings, engine=engine, store=store, key=key) as queue:
        assert isinstance(queue.broker, StubBroker)
        names = queue_names("evidence", settings.station)
        assert queue.actors.archive.queue_name == names["archive"]
        assert queue.actors.derive.queue_name == queue.actors.decode_check.queue_name == names["derive"]
        assert queue.actors.verify.queue_name == queue.actors.fixity.queue_name == names["verify"]
        assert queue.actors.archive.actor_name == "ingest.archive_recording"


def test_open_queue_archives_with_the_engine_store_and_key_it_was_given(samples, settings, engine, store):
    # Given a dock ingested up to `staged`
    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions(defer_archive=True))
    key = load_or_create_key(settings.station_key_path)
    # When the queue's archive actor runs each message in process
    with open_queue(settings, engine=engine, store=store, key=key) as queue:
        for row in report.recordings:
            queue.actors.archive.send(row["id"])
        drain(queue.broker, queue_names("evidence", settings.station)["archive"], fail_fast=True, only=True)
    # Then every recording is in the store the caller gave
    with Session(engine) as session:
        recordings = session.exec(select(Recording)).all()
    assert {r.state for r in recordings} == {"archived"}
    assert all(store.exists(r.sha256) for r in recordings)


def test_open_queue_builds_the_worker_context_from_settings_when_none_is_given(samples, settings, engine, store):
    # Given archived recordings
    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store)
    # When a queue opened from the settings alone verifies one
    with open_queue(settings, upload_threads=1) as queue:
        queue.actors.verify.send(report.recordings[0]["id"])
        drain(queue.broker, queue_names("evidence", settings.station)["verify"], fail_fast=True, only=True)
    # Then the worker found the catalogue and the store the settings name
    with Session(engine) as session:
        verified = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "verified",
                                                           CustodyEvent.actor == f"worker:{settings.station}")).all()
    assert [e.recording_id for e in verified] == [report.recordings[0]["id"]]


def test_open_queue_refuses_part_of_a_worker_context(settings, engine, store):
    with pytest.raises(ValueError, match=r"missing: key$") as caught:
        open_queue(settings, engine=engine, store=store)
    assert str(caught.value) == "open_queue needs engine, store and key together or none of them; missing: key"


def test_open_queue_uses_the_broker_url_namespace_and_station_of_the_settings(tmp_path, private_redis):
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_BROKER_URL": private_redis.url,
                                  "EVIDENCE_QUEUE_NAMESPACE": "ns1", "EVIDENCE_STATION": "dock-7"})
    with open_queue(settings) as queue:
        assert isinstance(queue.broker, RedisBroker)
        assert queue.broker.namespace == "ns1"
        assert queue.actors.archive.queue_name == "ns1-archive-dock-7"
        assert queue.actors.derive.queue_name == "ns1-derive"
    other = replace(settings, station="dock-8")
    with open_queue(other) as queue:
        assert queue.actors.archive.queue_name == "ns1-archive-dock-8"
