"""media_work_attempt (media work cut short by a SIGKILL, so a file whose work is killed every time is given up on)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 09:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'media_work_attempt',
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('kills', sa.Integer(), nullable=False),
        sa.Column('last_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('last_at', catalog.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['recording_id'], ['recording.id'], ),
        sa.PrimaryKeyConstraint('recording_id', 'kind'),
    )


def downgrade() -> None:
    op.drop_table('media_work_attempt')
