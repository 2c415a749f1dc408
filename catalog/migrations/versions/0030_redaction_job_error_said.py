"""redaction_job.error_said: a job's error as a message a page says in its reader's language (catalog.said.kept)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('redaction_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_said', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('redaction_job', schema=None) as batch_op:
        batch_op.drop_column('error_said')
