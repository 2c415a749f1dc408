"""An S3 store makes its boto3 client when it first calls S3, once, whichever thread asks first.

A station's `evidence ingest` with a broker never uploads: making the client at start (boto3's import and
service model, ~0.15 s) delayed its first copy and so every recording's first upload by the worker."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ingest.config import Settings
from ingest.services import open_store
from storage import BackendUnavailable, S3WormStore


def test_the_client_is_made_on_first_use_once_for_eight_threads() -> None:
    made: list[object] = []
    start = threading.Barrier(8)

    def connect() -> object:
        made.append(object())
        return made[-1]

    store = S3WormStore(connect=connect, bucket="evidence")
    assert made == []  # nothing made before a call needs it

    def first_use() -> object:
        start.wait()
        return store.client

    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: first_use(), range(8)))
    assert len(made) == 1
    assert all(c is made[0] for c in clients)


def test_a_store_needs_a_client_or_a_way_to_connect_one() -> None:
    with pytest.raises(ValueError, match="client or a way to connect"):
        S3WormStore(bucket="evidence")
    with pytest.raises(ValueError, match="not both"):
        S3WormStore(client=object(), connect=object, bucket="evidence")


def test_an_unchecked_store_from_settings_has_not_connected(tmp_path: Path) -> None:
    # An endpoint where nothing listens: making the store must not need it (only its first call does)
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_STORE_URL": "s3://evidence",
                                  "EVIDENCE_S3_ENDPOINT": "http://127.0.0.1:9"})
    store = open_store(settings, check=False)
    assert isinstance(store, S3WormStore)
    assert store._client is None
    with pytest.raises(BackendUnavailable):  # the first call connects, and finds nobody there
        store.check_bucket()
