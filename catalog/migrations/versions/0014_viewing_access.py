"""viewing_access: what each web session has already been recorded as reading (one accessed event per session)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 14:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

from catalog.types import UTCDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'viewing_access',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('what', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_key', 'recording_id', 'what', name='uq_viewing_access'),
    )


def downgrade() -> None:
    op.drop_table('viewing_access')
