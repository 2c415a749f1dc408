"""time_implausible, archived_at and belongs_to on recordings; integrity checks as revisions; cleared sightings

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

from catalog.types import UTCDateTime

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_implausible', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('archived_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('belongs_to_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_recording_belongs_to_id'), ['belongs_to_id'], unique=False)

    with op.batch_alter_table('sighting', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cleared_at', UTCDateTime(), nullable=True))

    op.create_table(
        'integrity_check',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('check', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column('checked_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('checked_at', UTCDateTime(), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['recording_id'], ['recording.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('recording_id', 'revision', name='uq_integrity_revision'),
    )
    op.create_index(op.f('ix_integrity_check_recording_id'), 'integrity_check', ['recording_id'], unique=False)
    # Every recording already catalogued gets its ingest verdict as revision 1; archived_at is best known as the
    # ingest time (routine retention never shrinks, so this can only keep things longer).
    op.execute("INSERT INTO integrity_check (recording_id, revision, \"check\", status, detail, checked_by, "
               "checked_at, details) SELECT id, 1, 'ingest', integrity_status, integrity_detail, 'migration 0012', "
               "ingested_at, '{}' FROM recording")
    op.execute("UPDATE recording SET archived_at = ingested_at WHERE state IN ('archived', 'verified', 'disposed')")
    # A file the station deleted from its device no longer stands for whatever that path holds now.
    op.execute("UPDATE sighting SET cleared_at = (SELECT MIN(e.at) FROM custody_event e WHERE e.kind = 'cleared' "
               "AND e.recording_id = sighting.recording_id) WHERE EXISTS (SELECT 1 FROM custody_event e "
               "WHERE e.kind = 'cleared' AND e.recording_id = sighting.recording_id)")


def downgrade() -> None:
    op.drop_index(op.f('ix_integrity_check_recording_id'), table_name='integrity_check')
    op.drop_table('integrity_check')
    with op.batch_alter_table('sighting', schema=None) as batch_op:
        batch_op.drop_column('cleared_at')
    with op.batch_alter_table('recording', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recording_belongs_to_id'))
        batch_op.drop_column('belongs_to_id')
        batch_op.drop_column('archived_at')
        batch_op.drop_column('time_implausible')
