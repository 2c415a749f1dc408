"""share_link: an approved release handed to one named recipient by a time-limited link with a one-time code

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 21:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'share_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('release_id', sa.Integer(), nullable=False),
        sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('token_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('code_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('created_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('expires_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('opened_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('session_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('revoked_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('revoked_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('revoke_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(['release_id'], ['evidence_release.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_sha256'),
    )
    with op.batch_alter_table('share_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_share_link_release_id'), ['release_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('share_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_share_link_release_id'))
    op.drop_table('share_link')
