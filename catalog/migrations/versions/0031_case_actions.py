"""case_action: a case's enforcement actions with their times, checked against its recordings (catalog.checklist)

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 01:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'case_action',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('action_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('started_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('ended_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('place', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column('officers', sa.JSON(), nullable=False),
        sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('zone_assumed', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('entered_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('entered_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('changed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('changed_at', catalog.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('case_id', 'external_id', name='uq_case_action_external'),
    )
    with op.batch_alter_table('case_action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_action_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_action_started_at'), ['started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('case_action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_action_started_at'))
        batch_op.drop_index(batch_op.f('ix_case_action_case_id'))
    op.drop_table('case_action')
