"""What the command-line tests share: an environment pointing at the test catalogue, and running `evidence`."""
from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from ingest.cli import main


@pytest.fixture
def env(tmp_path, catalog_url) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url}


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    """`evidence ARGS` in-process with *env* as its whole environment (and *stdin* as its input)."""
    return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)
