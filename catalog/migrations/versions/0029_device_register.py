"""device register: a recorder's model, status and review flag, its assignment and status history, a
station's unit (catalog.devices)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05 21:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                      server_default='in_service'))
        batch_op.add_column(sa.Column('added_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('unreviewed', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('docked', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.create_index(batch_op.f('ix_device_status'), ['status'], unique=False)
    with op.batch_alter_table('station', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False,
                                      server_default=''))
    op.create_table(
        'device_assignment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_serial', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('officer_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column('unit_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('unit_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('since', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('until', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('device_assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_assignment_device_serial'), ['device_serial'], unique=False)
    op.create_table(
        'device_status_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_serial', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('device_status_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_status_change_device_serial'), ['device_serial'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('device_status_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_status_change_device_serial'))
    op.drop_table('device_status_change')
    with op.batch_alter_table('device_assignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_assignment_device_serial'))
    op.drop_table('device_assignment')
    with op.batch_alter_table('station', schema=None) as batch_op:
        batch_op.drop_column('unit_number')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_status'))
        batch_op.drop_column('docked')
        batch_op.drop_column('unreviewed')
        batch_op.drop_column('added_by')
        batch_op.drop_column('status')
        batch_op.drop_column('model')
