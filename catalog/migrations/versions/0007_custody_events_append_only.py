"""custody events are append-only: the database refuses UPDATE, DELETE (and TRUNCATE)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 23:05:00
"""
from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_MESSAGE = "custody events are append-only"


def upgrade() -> None:
    # Defence in depth: the application only ever inserts. Someone with the owner's rights can still drop
    # these triggers, which is why the chain is hashed and anchored in WORM storage; `evidence verify` finds it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION custody_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{_MESSAGE} (% refused)', TG_OP;
            END $$""")
        op.execute("CREATE TRIGGER custody_event_append_only BEFORE UPDATE OR DELETE ON custody_event "
                   "FOR EACH ROW EXECUTE FUNCTION custody_event_append_only()")
        op.execute("CREATE TRIGGER custody_event_no_truncate BEFORE TRUNCATE ON custody_event "
                   "FOR EACH STATEMENT EXECUTE FUNCTION custody_event_append_only()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER custody_event_no_{action.lower()} BEFORE {action} ON custody_event "
                       f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE} ({action} refused)'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER custody_event_no_truncate ON custody_event")
        op.execute("DROP TRIGGER custody_event_append_only ON custody_event")
        op.execute("DROP FUNCTION custody_event_append_only()")
    else:
        op.execute("DROP TRIGGER custody_event_no_update")
        op.execute("DROP TRIGGER custody_event_no_delete")
