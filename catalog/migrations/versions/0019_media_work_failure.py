"""media_work_failure (derived media and decode checks that failed for good, so the backlog skips them)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 01:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'media_work_failure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('derived_from_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column('failed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('failed_at', catalog.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['recording_id'], ['recording.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('recording_id', 'kind', name='uq_media_work_failure_kind'),
    )
    with op.batch_alter_table('media_work_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_work_failure_recording_id'), ['recording_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('media_work_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_work_failure_recording_id'))
    op.drop_table('media_work_failure')
