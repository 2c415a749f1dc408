"""Trigram indexes (PostgreSQL's pg_trgm) for forgiving search: part of a case number or a purpose, in any letter
case, answered from an index instead of every row (catalog.db.TRIGRAM_INDEXES, catalog.search.PARTIAL_FROM)

On SQLite nothing changes. On PostgreSQL the extension is created when the catalogue's role may (pg_trgm is a
trusted extension: the right to create in the database is enough); where it may not, search still works, reading
every row for a partial match, and the migration says so.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 10:20:00
"""
from __future__ import annotations

import logging

from alembic import op
from sqlalchemy.exc import DBAPIError

from catalog.db import TRIGRAM_INDEXES

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

logger = logging.getLogger(__name__)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            # where the extension lives (a DBA may keep extensions in a schema of their own, off the search path)
            schema = bind.exec_driver_sql("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                                          "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'").scalar_one()
            for name, (table, column) in TRIGRAM_INDEXES.items():
                bind.exec_driver_sql(_create(name, table, column, schema))
    except DBAPIError as exc:
        logger.warning("No trigram indexes (%s); a search for part of a case number or purpose reads every row. A "
                       "database owner can add them: %s", str(exc.orig).strip().splitlines()[0], "; ".join(
                           ["CREATE EXTENSION pg_trgm",
                            *(_create(n, t, c, "public") for n, (t, c) in TRIGRAM_INDEXES.items())]))


def _create(name: str, table: str, column: str, schema: str) -> str:
    return f'CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ("{column}" "{schema}".gin_trgm_ops)'


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name in TRIGRAM_INDEXES:
        bind.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
