"""Fixtures of the station tests: a PostgreSQL catalogue that can be taken down and brought back."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import create_engine, text

from catalog import open_catalog
from tests.conftest import PG_ADMIN_URL, postgres_database

#: The catalogue's URL, a context manager for an outage (the database refuses connections inside it), and
#: allow(on) to switch connections on and off by hand.
Outage = tuple[str, Callable[[], AbstractContextManager[None]], Callable[[bool], None]]


@pytest.fixture
def pg_outage() -> Iterator[Outage]:
    """A private PostgreSQL catalogue that can be taken down and brought back for real."""
    databases = postgres_database()
    url = next(databases)
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def allow(on: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if on else "false"}'))
            if not on:
                conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))

    @contextmanager
    def down() -> Iterator[None]:
        allow(False)
        try:
            yield
        finally:
            allow(True)

    open_catalog(url).dispose()  # migrated while it is up
    try:
        yield url, down, allow
    finally:
        allow(True)
        admin.dispose()
        for _ in databases:
            pass
