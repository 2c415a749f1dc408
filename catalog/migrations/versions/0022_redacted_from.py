"""recording.redacted_from_id: a redacted copy names the original it was made from

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 17:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows are originals (NULL): the custody replay expects NULL on any row no `redacted` event made.
    with op.batch_alter_table('recording') as batch:
        batch.add_column(sa.Column('redacted_from_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_recording_redacted_from_id', 'recording', ['redacted_from_id'], ['id'])
        batch.create_index('ix_recording_redacted_from_id', ['redacted_from_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recording') as batch:
        batch.drop_index('ix_recording_redacted_from_id')
        batch.drop_constraint('fk_recording_redacted_from_id', type_='foreignkey')
        batch.drop_column('redacted_from_id')
