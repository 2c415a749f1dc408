"""First start race (issue 14, item 8): processes that start together on an empty catalogue all come up.

Two or three `station watch`/`worker` processes started at once on a fresh database each ran the migrations;
all but one crashed with a UniqueViolation on alembic_version. Here three real OS processes open the same fresh
catalogue at the same instant (each waits, imports done, for a common start time), several rounds, on
PostgreSQL (a database of the test's own) and on a SQLite file: every process exits 0 and the schema is at head
exactly once.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from catalog.db import alembic_config
from tests.conftest import _postgres_database

ROUNDS = 4
PROCESSES = 3

#: Imports done first, then every process opens the catalogue at the same wall-clock instant.
_OPEN_AT = """
import sys, time
from catalog import open_catalog
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
open_catalog(sys.argv[1]).dispose()
"""


def _start_together(url: str) -> list[tuple[int, str]]:
    start = time.time() + 4.0  # time for the interpreters to import sqlalchemy/alembic/catalog
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, url, repr(start)], cwd=Path(__file__).parents[2],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(PROCESSES)]
    results = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        results.append((proc.returncode, err))
    return results


def _versions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


def _assert_all_started(url: str) -> None:
    results = _start_together(url)
    failed = [(code, [line for line in err.splitlines() if "Error" in line or "Violation" in line][-1:])
              for code, err in results if code != 0]
    assert not failed, f"processes starting together on a fresh catalogue failed: {failed}"
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert _versions(url) == [head]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_starting_together_on_a_fresh_postgresql_database_all_start(round_: int) -> None:
    with contextmanager(_postgres_database)() as url:
        _assert_all_started(url)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_starting_together_on_a_fresh_sqlite_file_all_start(round_: int, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'catalog.db'}"  # the folder too does not exist yet
    _assert_all_started(url)
