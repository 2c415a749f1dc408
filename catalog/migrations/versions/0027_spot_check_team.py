"""spot_check: the reviewers drawn from a pool (双随机's second draw), the sign-off and its signed result; the
partial index a draw walks now that it takes enforcement recordings only

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 14:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


_DRAWABLE = ("state IN ('archived', 'verified') AND media_kind IN ('video', 'audio', 'photo') "
             "AND redacted_from_id IS NULL AND belongs_to_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.create_index('ix_recording_drawable_id', ['id'], unique=False,
                              postgresql_where=sa.text(_DRAWABLE), sqlite_where=sa.text(_DRAWABLE))
    with op.batch_alter_table('spot_check', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reviewer_pool', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('reviewers', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('signed_off_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('signed_off_at', catalog.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('result_record', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('result_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.drop_index('ix_recording_drawable_id', postgresql_where=sa.text(_DRAWABLE),
                            sqlite_where=sa.text(_DRAWABLE))
    with op.batch_alter_table('spot_check', schema=None) as batch_op:
        for name in ('result_sha256', 'result_record', 'signed_off_at', 'signed_off_by', 'reviewers', 'reviewer_pool'):
            batch_op.drop_column(name)
