"""evidence_release, evidence_release_item: releases (publication 公示, transfer 移送) decided by legal review

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 21:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'evidence_release',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('legal_basis', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('proposed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('proposed_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('decided_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('decision_note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column('withdrawn_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('withdrawn_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('withdrawal_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column('records', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('evidence_release', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_release_state'), ['state'], unique=False)
    op.create_table(
        'evidence_release_item',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('release_id', sa.Integer(), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('sensitivity', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.ForeignKeyConstraint(['recording_id'], ['recording.id'], ),
        sa.ForeignKeyConstraint(['release_id'], ['evidence_release.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('release_id', 'recording_id', name='uq_release_item'),
    )
    with op.batch_alter_table('evidence_release_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_release_item_release_id'), ['release_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evidence_release_item_recording_id'), ['recording_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('evidence_release_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_release_item_recording_id'))
        batch_op.drop_index(batch_op.f('ix_evidence_release_item_release_id'))
    op.drop_table('evidence_release_item')
    with op.batch_alter_table('evidence_release', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_release_state'))
    op.drop_table('evidence_release')
