"""key_certificate (the agency root and the X.509 certificates it issued, with revocations)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'key_certificate',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('serial', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('issuer_fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('not_before', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('not_after', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('certificate_pem', sa.Text(), nullable=False),
        sa.Column('record_name', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column('created_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('revoked_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('revocation_reason', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('serial'),
    )
    with op.batch_alter_table('key_certificate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_certificate_fingerprint'), ['fingerprint'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('key_certificate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_certificate_fingerprint'))
    op.drop_table('key_certificate')
