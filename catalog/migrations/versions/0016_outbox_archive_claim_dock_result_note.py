"""outbox (transactional queue messages), archive_claim (one worker per recording), dock_session.result_note

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 17:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('station_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('sent_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_station_sent', ['station_code', 'sent_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_recording_id'), ['recording_id'], unique=False)
    op.create_table(
        'archive_claim',
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('expires_at', catalog.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('recording_id'),
    )
    with op.batch_alter_table('dock_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('result_note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dock_session', schema=None) as batch_op:
        batch_op.drop_column('result_note')
    op.drop_table('archive_claim')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_recording_id'))
        batch_op.drop_index('ix_outbox_station_sent')
    op.drop_table('outbox')
