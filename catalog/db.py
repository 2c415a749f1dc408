"""Open the catalog database and bring its schema up to date (Alembic).

SQLite is the embedded default; PostgreSQL is used by URL. Migrations run at
open time so a station or worker never talks to an out-of-date schema. A catalogue already at the newest revision
is recognised by one query of `alembic_version` against the migration files' head, without importing Alembic
(~0.15 s of every command's start, `evidence ingest` included); anything else goes through Alembic, under the lock.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, create_engine

from catalog.errors import CatalogUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["CONFLICT_SQLSTATES", "MAX_ROW_ID", "MIGRATIONS_DIR", "MIGRATION_LOCK_KEY", "TRIGRAM_INDEXES",
           "alembic_config", "begin_write", "by_id", "head_revision", "is_conflict", "migrate", "open_catalog",
           "redact_url"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Alembic keeps its migration context in module globals: one migration at a time per process.
_MIGRATE_LOCK = threading.Lock()
#: PostgreSQL advisory lock key held by the transaction that migrates: one migration at a time per database
#: ("evidence" as an 8-byte integer; any fixed number unlikely to be used by another application works).
MIGRATION_LOCK_KEY = int.from_bytes(b"evidence", "big") - 2**63
#: The largest row id the catalogue can hold: ids are INTEGER columns, 32-bit signed on PostgreSQL.
MAX_ROW_ID = 2**31 - 1

_Row = TypeVar("_Row")
#: SQLSTATEs of a transaction PostgreSQL rolled back to resolve a conflict (deadlock, serialization failure): the
#: same work, done again, succeeds.
CONFLICT_SQLSTATES = ("40P01", "40001")

#: PostgreSQL's trigram indexes (pg_trgm, GIN) that let a search match part of a text in any letter case without
#: reading every row (catalog.search.PARTIAL_FROM): index name -> (table, column). Made by migration 0026 on
#: PostgreSQL alone (SQLite reads its rows, as it does for every text search); not in the models' metadata, so the
#: comparison of migrations and models leaves them out by these names.
TRIGRAM_INDEXES = {"ix_recording_case_number_trgm": ("recording", "case_number"),
                   "ix_recording_purpose_trgm": ("recording", "purpose"),
                   "ix_case_file_number_trgm": ("case_file", "number")}


def is_conflict(exc: BaseException) -> bool:
    """Whether *exc* is the database rolling back a transaction to resolve a conflict with another (a deadlock or a
    serialization failure), not a fault: doing the transaction's work again is the remedy. Pure."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in CONFLICT_SQLSTATES


def by_id(session: Session, model: type[_Row], ident: int | None) -> _Row | None:
    """The *model* row with id *ident*, or None; a number no row can have (0, negative, past `MAX_ROW_ID`: typed
    by a user, in a path or an argument) is None too, never a database error (PostgreSQL refuses it as out of
    range, SQLite past 64 bits)."""
    if ident is None or not 1 <= ident <= MAX_ROW_ID:
        return None
    return session.get(model, ident)


def redact_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given minus nothing secret
        return url.split("@")[-1]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The wait first, for every statement after it (the WAL switch too). A fresh file is switched to WAL by
    # `_switch_to_wal` before any connection gets here, one process at a time: SQLite does not wait there.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    # Statement and savepoint journals (every batch of a dock nests savepoints) and sorts in memory, not in
    # /var/tmp/etilqs_* files: 75 pwrite() calls of every photo a dock catalogued went there.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()
    # SQLite's own lower() folds ASCII alone: a search "in any letter case" (ILIKE, which SQLAlchemy writes as
    # lower() LIKE lower() here) found ÄRGER or ДЕЛО on PostgreSQL and nothing here
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)
    # The calendar day of a stored (naive UTC) time on a given zone's clock: PostgreSQL's timezone() here
    # (catalog.statistics counts days as the agency's calendar has them, summer time included)
    dbapi_connection.create_function("agency_date", 2, _agency_date, deterministic=True)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _agency_date(value: Any, zone: Any) -> str | None:
    """`agency_date(time, zone)` for SQLite: the YYYY-MM-DD the stored UTC *value* falls on in *zone*."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
        return when.astimezone(_zone(str(zone))).date().isoformat()
    except (ValueError, OverflowError, ZoneInfoNotFoundError):  # a clock at the calendar's edge: its UTC day
        return str(value)[:10]


def begin_write(session: Session) -> None:
    """Take the catalogue's write lock (the custody chain head) before a SAVEPOINT, an insert of unique values, or
    a change to a row another writer changes too (a user, a device, a recording) when the change is written before
    the transaction appends its event (a query that flushes it, an UPDATE statement).

    Every transaction that records custody events holds the head lock until it commits. Taking it first, before
    inserting a row whose unique key another transaction may insert too (the same bytes docked at two stations at
    once), gives every writer the same lock order: the second waits for the head, then sees the first's row as a
    plain unique violation (a new sighting) instead of a PostgreSQL deadlock.

    pysqlite opens a transaction only before an INSERT/UPDATE/DELETE: a SAVEPOINT issued first would start one
    of its own, and its RELEASE would commit (and fsync) at once, one commit per savepoint. The same no-op update
    the custody append uses opens the transaction the savepoints then nest in.
    """
    with session.no_autoflush:  # the head before the rows: changes pending in *session* are written after it
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("UPDATE custody_head SET last_hash = last_hash WHERE id = 1"))
        else:
            session.execute(text("SELECT 1 FROM custody_head WHERE id = 1 FOR UPDATE"))


#: `revision = '0020'` / `down_revision = '0019'` in a migration file (the form Alembic writes).
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


@cache
def head_revision() -> str | None:
    """The newest migration's revision, read from the migration files (the one no other names as its
    down_revision); None when that is not a single revision (then Alembic decides)."""
    revisions: set[str] = set()
    replaced: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for kind, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            (revisions if kind == "revision" else replaced).add(value)
    heads = revisions - replaced
    return heads.pop() if len(heads) == 1 else None


def _schema_is_current(engine: Engine) -> bool:
    """Whether the catalogue's `alembic_version` holds exactly the head revision (a query error, e.g. no such table
    yet: not known to be). Raises OperationalError when the catalogue does not answer (one connection attempt)."""
    head = head_revision()
    if head is None:
        return False
    with engine.connect() as connection:
        try:
            found = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
        except SQLAlchemyError:
            return False
    return found == {head}


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite catalogue (None: in memory, or a `file:` URI)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _switch_to_wal(engine: Engine) -> None:
    """Put a new SQLite file in WAL mode, one process at a time.

    SQLite does not wait (busy_timeout) for the switch: it reads the file's header first, and two processes that
    both did and then both want to write it are a deadlock it breaks at once, "database is locked" for one of them
    (1 start in 10 of three processes on a fresh file, on CI and here, 2026-12-04). Under the migration lock the
    second process finds the file switched, and its own `PRAGMA journal_mode=WAL` writes nothing.

    A file with anything in it is left to its connections: the switch writes the header's WAL mark with the file's
    first page, so a file that has bytes was switched (or is an older one its first connection switches, alone).
    Only `stat` looks at it: opening and closing the database file in this process would drop every POSIX lock
    SQLite holds on it for this process's other connections (a first try read the header and corrupted catalogues:
    "database disk image is malformed", CI 2026-12-04).
    """
    database = _sqlite_file(engine)
    if database is None:
        return
    try:
        if database.stat().st_size > 0:
            return
    except FileNotFoundError:
        pass
    with _sqlite_migrate_lock(engine), engine.connect():
        pass  # the connection's _sqlite_pragmas switches the file


@contextmanager
def _sqlite_migrate_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on `<database>.migrate-lock` beside a SQLite file, held while migrating.

    SQLite runs each migration's DDL in its own transaction, so a second process starting at the same moment
    saw the first's half-made schema ("table alembic_version already exists"). Only read access is needed for
    flock, so a lock file another account created still works; none is taken for an in-memory database.
    """
    database = _sqlite_file(engine)
    if database is None:
        yield
        return
    path = database.with_name(database.name + ".migrate-lock")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only folder: nobody can create the schema there anyway
        logger.warning("Migrating %s without a lock (cannot open %s: %s).", database, path, exc)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def migrate(engine: Engine) -> None:
    """Upgrade the database to the newest schema, one process at a time.

    Processes that start together on an empty catalogue (a station and its worker after a fresh install) each
    migrate; without a lock all but one crashed on alembic_version. PostgreSQL: the migrating transaction takes
    a transaction-scoped advisory lock first, so the others wait until it commits and then find the schema
    current. SQLite: an exclusive file lock beside the database file (_sqlite_migrate_lock). A catalogue already at
    the head revision is left alone at once (`_schema_is_current`, no Alembic import, no lock).
    """
    if _schema_is_current(engine):
        return
    from alembic import command

    cfg = alembic_config()
    with _MIGRATE_LOCK:
        if engine.dialect.name == "sqlite":
            with _sqlite_migrate_lock(engine), engine.begin() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
            return
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
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
            _switch_to_wal(engine)
            migrate(engine)
        except BaseException as exc:
            engine.dispose()  # no connection of a refused open is left to the garbage collector
            if isinstance(exc, OperationalError):
                raise CatalogUnavailable(redact_url(url), str(exc.orig).strip()) from exc
            raise
    return engine
