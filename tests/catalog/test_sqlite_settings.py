"""What every connection to an SQLite catalogue is set to: foreign keys enforced, a write-ahead log synced in full
at each commit, a busy writer waited for, and temporary tables and files kept in memory.

The last was measured (2026-12-03, `bench/many_photos.py` under strace): with SQLite's default, a dock of 1,000
photos made 75,056 `pwrite()` calls to `/var/tmp/etilqs_*` temporary files, 75 of every photo catalogued, and
the process spent 8.3 s of system time; with `temp_store=MEMORY`, none, and 5.6 s.
"""
from __future__ import annotations

from sqlalchemy import text

from catalog import open_catalog


def test_every_sqlite_connection_keeps_its_temporary_storage_in_memory_and_its_log_durable(tmp_path):
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}", pool_size=2)
    try:
        # Two connections open at once: the settings are made per connection, not once per engine
        with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                pragma = {name: connection.execute(text(f"PRAGMA {name}")).scalar()
                          for name in ("temp_store", "journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
                # temp_store 2 is MEMORY; synchronous 2 is FULL
                assert pragma == {"temp_store": 2, "journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                                  "busy_timeout": 30000}
    finally:
        engine.dispose()
