"""Open the catalog database and bring its schema up to date (Alembic).

SQLite is the embedded default; PostgreSQL is used by URL. Migrations run at
open time so a station or worker never talks to an out-of-date schema.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from catalog.errors import CatalogUnavailable

__all__ = ["MIGRATIONS_DIR", "alembic_config", "begin_write", "migrate", "open_catalog", "redact_url"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Alembic keeps its migration context in module globals: one migration at a time per process.
_MIGRATE_LOCK = threading.Lock()


def redact_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given minus nothing secret
        return url.split("@")[-1]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def begin_write(session: Session) -> None:
    """Make sure *session* is inside a write transaction before a SAVEPOINT.

    pysqlite opens a transaction only before an INSERT/UPDATE/DELETE: a SAVEPOINT issued first would start one
    of its own, and its RELEASE would commit (and fsync) at once, one commit per savepoint. Taking the write lock
    with the same no-op update the custody append uses opens the transaction the savepoints then nest in.
    PostgreSQL needs nothing.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE custody_head SET last_hash = last_hash WHERE id = 1"))


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(engine: Engine) -> None:
    """Upgrade the database to the newest schema."""
    cfg = alembic_config()
    with _MIGRATE_LOCK, engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def open_catalog(url: str, *, run_migrations: bool = True, **engine_kwargs: Any) -> Engine:
    """Create an engine for *url* and migrate it; CatalogUnavailable if that fails."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if not url.startswith("sqlite"):
        engine_kwargs.setdefault("pool_pre_ping", True)  # a database that restarted: reconnect, don't fail
    engine = create_engine(url, **engine_kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if run_migrations:
        try:
            migrate(engine)
        except OperationalError as exc:
            raise CatalogUnavailable(redact_url(url), str(exc.orig).strip()) from exc
    return engine
