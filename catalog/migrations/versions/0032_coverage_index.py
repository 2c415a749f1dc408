"""coverage indexes: an officer's recordings by capture end (catalog.coverage reads a unit's month from the index
alone on PostgreSQL), and their files with an implausible time by docking time

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06 00:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None

#: catalog.models.COVERED as it stood when this migration was written.
_COVERED = ("media_kind IN ('video', 'audio') AND redacted_from_id IS NULL AND belongs_to_id IS NULL "
            "AND captured_start IS NOT NULL")
_IMPLAUSIBLE = f"{_COVERED} AND time_implausible"


def upgrade() -> None:
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.create_index('ix_recording_coverage', ['officer_number', 'captured_end'], unique=False,
                              postgresql_include=['captured_start', 'id', 'device_serial', 'time_implausible'],
                              postgresql_where=sa.text(_COVERED), sqlite_where=sa.text(_COVERED))
        batch_op.create_index('ix_recording_implausible', ['officer_number', 'ingested_at'], unique=False,
                              postgresql_include=['captured_start', 'captured_end', 'id', 'device_serial'],
                              postgresql_where=sa.text(_IMPLAUSIBLE), sqlite_where=sa.text(_IMPLAUSIBLE))


def downgrade() -> None:
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.drop_index('ix_recording_implausible')
        batch_op.drop_index('ix_recording_coverage')
