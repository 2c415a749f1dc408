"""Reading the end of the custody chain, and cutting it as an insider with the database owner's rights would."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from catalog.models import CustodyAnchor, CustodyHead
from tests.conftest import as_attacker


def head_event_id(engine: Engine) -> int:
    """The id of the last event the chain head row names."""
    with Session(engine) as session:
        head = session.get(CustodyHead, 1)
        assert head is not None and head.last_event_id is not None
        return head.last_event_id


def newest_anchor(engine: Engine) -> CustodyAnchor | None:
    """The anchor written last, if any."""
    with Session(engine) as session:
        return session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id).desc())).first()


def cut_tail(engine: Engine, keep_last_id: int) -> None:
    """Delete every event after *keep_last_id* and rewrite the head row to match: the chain stays consistent."""
    as_attacker(engine)
    with engine.begin() as conn:
        kept_hash = conn.execute(text("SELECT hash FROM custody_event WHERE id = :id"), {"id": keep_last_id}).scalar()
        conn.execute(text("DELETE FROM custody_event WHERE id > :id"), {"id": keep_last_id})
        conn.execute(text("UPDATE custody_head SET last_event_id = :id, last_hash = :hash WHERE id = 1"),
                     {"id": keep_last_id, "hash": kept_hash})
