"""Fixtures of the ingest tests: settings with a device profile of the test's own, a private broker's URL, and a
camera's card docked and archived (`card`, for the redaction tests)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from catalog import Recording, open_catalog
from catalog.signing import load_or_create_key
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from storage import LocalStore


@pytest.fixture
def settings_with_profile(tmp_path: Path, catalog_url: str) -> Callable[[str, str], Settings]:
    """settings_with_profile(file name, YAML): the test catalogue's settings with that one device profile in their
    profiles folder (besides the shipped ones)."""
    def make(file_name: str, yaml_text: str) -> Settings:
        profiles = tmp_path / "profiles"
        profiles.mkdir()
        (profiles / file_name).write_text(yaml_text, encoding="utf-8")
        return Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url,
                                  "EVIDENCE_PROFILES_DIR": str(profiles)})
    return make


@pytest.fixture
def redis_url(private_redis: Any) -> str:
    """A private redis-server on a free port (tests.redisserver)."""
    return str(private_redis.url)


@dataclass
class Card:
    """A camera's card (tests.ingest.test_redaction_copies._device) docked and archived on the local WORM store."""

    settings: Settings
    engine: Engine
    store: LocalStore
    key: Ed25519PrivateKey

    def clip(self, session: Session) -> Recording:
        return session.exec(select(Recording).where(Recording.original_name == "MVI_0001.MP4")).one()


@pytest.fixture
def card(tmp_path: Path, catalog_url: str) -> Iterator[Card]:
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url})
    engine = open_catalog(catalog_url)
    try:
        store = LocalStore(settings.store_path)
        from tests.ingest.test_redaction_copies import _device

        ingest_folder(_device(tmp_path / "card"), settings=settings, engine=engine, store=store)
        yield Card(settings, engine, store, load_or_create_key(settings.station_key_path))
    finally:
        engine.dispose()
