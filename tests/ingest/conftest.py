"""Fixtures of the ingest tests: settings with a device profile of the test's own, and a private broker's URL."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ingest.config import Settings


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
