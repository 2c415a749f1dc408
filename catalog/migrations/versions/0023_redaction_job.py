"""redaction_job: redactions asked for in the web app (or queued from the CLI), rendered by the derive queue

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 21:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'redaction_job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('original_id', sa.Integer(), nullable=False),
        sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('spec', sa.JSON(), nullable=False),
        sa.Column('faces', sa.JSON(), nullable=True),
        sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('progress', sa.Float(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('lease_until', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('copy_id', sa.Integer(), nullable=True),
        sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column('created_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('sent_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('started_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('finished_at', catalog.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['copy_id'], ['recording.id'], ),
        sa.ForeignKeyConstraint(['original_id'], ['recording.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('redaction_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_redaction_job_original_id'), ['original_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_redaction_job_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('redaction_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_redaction_job_state'))
        batch_op.drop_index(batch_op.f('ix_redaction_job_original_id'))
    op.drop_table('redaction_job')
