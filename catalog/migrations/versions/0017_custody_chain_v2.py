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
    with op.batch_alter_table('custody_event', schema=None) as batch_op:
        batch_op.drop_column('chain_version')
