"""custody_event.chain_version (1 = legacy hash formula, 2 = H(prev || H(body)) over RFC 8785 bodies)

Only add_column: on SQLite a batch with nothing but add_column is a plain ALTER TABLE, so the append-only
triggers from 0007 survive (a table recreate would drop them). Existing rows get the server default 1.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('custody_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain_version', sa.SmallInteger(), server_default='1', nullable=False))


def downgrade() -> None:
    # Without the column a version-2 event would be checked by the version-1 formula and look edited.
    newer = op.get_bind().execute(sa.text("SELECT count(*) FROM custody_event WHERE chain_version <> 1")).scalar()
    if newer:
        raise RuntimeError(f"cannot downgrade below 0017: {newer} custody events are chain version 2, which "
                           "the older schema cannot tell apart from edited events")
    if op.get_bind().dialect.name == "sqlite":
        # A batch drop_column recreates the table, which drops the append-only triggers of 0007.
        op.execute("ALTER TABLE custody_event DROP COLUMN chain_version")
    else:
        with op.batch_alter_table('custody_event', schema=None) as batch_op:
            batch_op.drop_column('chain_version')
