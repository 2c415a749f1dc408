"""Alembic environment: the connection is handed in by catalog.db.migrate()."""
from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from catalog import case_models, key_models, models, user_models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through catalog.db.migrate(), which supplies a connection")

context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
