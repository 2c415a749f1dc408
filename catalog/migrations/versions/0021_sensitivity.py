"""sensitivity classes (recording.sensitivity, case_file.sensitivity) and case_grant (explicit access to a case)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 14:15:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import catalog.types

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every existing row is 内部 internal, the default: the custody replay assumes it for a chain that never
    # classified the item, so an old row edited to another class behind the application's back is found.
    with op.batch_alter_table('recording') as batch:
        batch.add_column(sa.Column('sensitivity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                   server_default='internal'))
        batch.create_index('ix_recording_sensitivity', ['sensitivity'], unique=False)
    with op.batch_alter_table('case_file') as batch:
        batch.add_column(sa.Column('sensitivity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                   server_default='internal'))
    op.create_table(
        'case_grant',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('user_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('granted_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('granted_at', catalog.types.UTCDateTime(), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('expires_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('revoked_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('revoked_at', catalog.types.UTCDateTime(), nullable=True),
        sa.Column('revoke_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_case_grant_case_id', 'case_grant', ['case_id'], unique=False)
    op.create_index('ix_case_grant_user_name', 'case_grant', ['user_name'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_grant_user_name', table_name='case_grant')
    op.drop_index('ix_case_grant_case_id', table_name='case_grant')
    op.drop_table('case_grant')
    with op.batch_alter_table('case_file') as batch:
        batch.drop_column('sensitivity')
    with op.batch_alter_table('recording') as batch:
        batch.drop_index('ix_recording_sensitivity')
        batch.drop_column('sensitivity')
