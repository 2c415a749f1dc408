"""app_user.os_user (the operating-system login a user acts from on the command line) and sign_in_reset_at

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

from catalog.types import UTCDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('os_user', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('sign_in_reset_at', UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_app_user_os_user'), ['os_user'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_app_user_os_user'))
        batch_op.drop_column('sign_in_reset_at')
        batch_op.drop_column('os_user')
