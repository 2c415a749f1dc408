"""sign_in_device: browsers that have signed in as a user (device cookies: not locked out by others' guesses)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sign_in_device',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('signed_in_at', catalog.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('sign_in_device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sign_in_device_token_sha256'), ['token_sha256'], unique=True)
        batch_op.create_index(batch_op.f('ix_sign_in_device_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sign_in_device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_in_device_user_id'))
        batch_op.drop_index(batch_op.f('ix_sign_in_device_token_sha256'))
    op.drop_table('sign_in_device')
