"""custody_event.at indexed (the chain's newest time is the floor of every host's clock: catalog.clock)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 04:40:00
"""
from __future__ import annotations

from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_custody_event_at', 'custody_event', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_custody_event_at', table_name='custody_event')
