"""First start race (issue 14, item 8): processes that start together on an empty catalogue all come up.

Two or three `station watch`/`worker` processes started at once on a fresh database each ran the migrations;
all but one crashed with a UniqueViolation on alembic_version. Here three real OS processes open the same fresh
catalogue at the same instant (each, its imports done, waits for the word to go), several rounds, on
PostgreSQL (a database of the test's own) and on a SQLite file: every process exits 0 and the schema is at head
exactly once.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from catalog.db import alembic_config
from tests.conftest import postgres_database, process_env, wait_for

ROUNDS = 4
PROCESSES = 3

#: Imports done first (said by creating the file named second), then every process opens the catalogue when a line
#: arrives on its input: the test sends it to all of them at once.
_OPEN_ON_GO = """
import sys
from pathlib import Path
from catalog import open_catalog
Path(sys.argv[2]).touch()
sys.stdin.readline()
open_catalog(sys.argv[1]).dispose()
"""


def _start_together(url: str, marks: Path) -> list[tuple[int, str]]:
    ready = [marks / f"ready-{n}" for n in range(PROCESSES)]
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_ON_GO, url, str(mark)], cwd=Path(__file__).parents[2],
                              env=process_env({}), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for mark in ready]
    try:
        wait_for(lambda: all(mark.exists() or proc.poll() is not None for mark, proc in zip(ready, procs, strict=True)),
                 120, "every process to finish its imports")
    finally:
        for proc in procs:  # go (a process that already died has no input left to take it)
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write("go\n")
                proc.stdin.flush()
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


def _assert_all_started(url: str, marks: Path) -> None:
    results = _start_together(url, marks)
    failed = [(code, [line for line in err.splitlines() if "Error" in line or "Violation" in line][-1:])
              for code, err in results if code != 0]
    assert not failed, f"processes starting together on a fresh catalogue failed: {failed}"
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert _versions(url) == [head]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_starting_together_on_a_fresh_postgresql_database_all_start(round_: int, tmp_path: Path) -> None:
    with contextlib.contextmanager(postgres_database)() as url:
        _assert_all_started(url, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_starting_together_on_a_fresh_sqlite_file_all_start(round_: int, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'catalog.db'}"  # the folder too does not exist yet
    _assert_all_started(url, tmp_path)
