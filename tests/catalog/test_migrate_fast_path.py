"""Opening a catalogue already at the newest schema costs one query, not an Alembic import (~0.15 s of every
command's start); a catalogue behind it, one whose alembic_version was emptied, or one with no schema yet still goes
through Alembic and ends at the head; a catalogue that does not answer is CatalogUnavailable, as before."""
from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from catalog import open_catalog
from catalog.db import alembic_config, head_revision
from catalog.errors import CatalogUnavailable
from tests.conftest import process_env
from tests.ingest.test_ops_migrate_race import _versions
from tests.s3server import free_ports

ROOT = Path(__file__).resolve().parents[2]


def test_the_head_read_from_the_migration_files_is_alembic_s():
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_a_current_catalogue_opens_without_importing_alembic(catalog_url):
    open_catalog(catalog_url).dispose()  # made and migrated here
    probe = ("import sys; from catalog import open_catalog; open_catalog(sys.argv[1]).dispose(); "
             "print('alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, catalog_url], cwd=ROOT, env=process_env({}),
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False", done.stderr


def test_a_catalogue_behind_or_edited_is_migrated_to_the_head(catalog_url, tmp_path):
    head = head_revision()
    open_catalog(catalog_url).dispose()
    cfg = alembic_config()
    engine = create_engine(catalog_url)
    try:
        with engine.begin() as connection:  # one revision back, as an older release left it
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "-1")
        assert _versions(catalog_url) != [head]
        open_catalog(catalog_url).dispose()
        assert _versions(catalog_url) == [head]
        # alembic_version emptied behind the application's back: not taken for current; Alembic's answer stands
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM alembic_version"))
    finally:
        engine.dispose()
    # Alembic re-creates what exists: refused, and the refused open leaves no connection open behind it (CI saw
    # one closed by the garbage collector during a later test)
    with pytest.raises(Exception, match="already exists") as refused:
        open_catalog(catalog_url)
    del refused  # its traceback holds the refused open's frames
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        # The next migration anywhere in the process replaces Alembic's context, which held the refused open's
        # connection: left open, it warns from its __del__ here, and pytest fails the test on it
        open_catalog(f"sqlite:///{tmp_path / 'another.db'}").dispose()
        gc.collect()


def test_a_catalogue_that_does_not_answer_is_unavailable():
    (port,) = free_ports(1)
    with pytest.raises(CatalogUnavailable):
        open_catalog(f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing", connect_args={"connect_timeout": 2})


def test_a_catalogue_file_still_in_rollback_mode_is_switched_to_wal_when_opened(tmp_path):
    """A file another tool made (sqlite3's default journal mode is DELETE) opens in WAL mode, as a fresh one does:
    the switch is done under the migration lock, one process at a time (tests/ingest/test_ops_migrate_race.py)."""
    import sqlite3

    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as made_elsewhere:
        made_elsewhere.execute("CREATE TABLE note (text TEXT)")
    made_elsewhere.close()
    assert path.read_bytes()[18:20] == b"\x01\x01"  # rollback journal
    open_catalog(f"sqlite:///{path}").dispose()
    assert path.read_bytes()[18:20] == b"\x02\x02"
    with sqlite3.connect(path) as again:
        assert again.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    again.close()
