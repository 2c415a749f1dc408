"""A custody chain rewritten consistently, as an insider with the database owner's rights could: the rows changed,
every hash after them recomputed by each row's own chain-version formula, the head row moved to match. Only the
signed anchors in WORM storage (and a version that goes down) can then show it."""
from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from catalog.event_hashes import stored_event_hash
from catalog.models import CustodyEvent, CustodyHead
from tests.conftest import as_attacker


def rewrite_chain(engine: Engine, changes: dict[int, dict[str, Any]], *, from_id: int) -> None:
    """Apply *changes* (event id -> new field values, chain_version included) and recompute every hash from event
    *from_id* on; the head row follows."""
    as_attacker(engine)
    with Session(engine) as session:
        events = list(session.exec(select(CustodyEvent).where(col(CustodyEvent.id) >= from_id)
                                   .order_by(col(CustodyEvent.id))))
        prev = events[0].prev_hash
        for event in events:
            for field, value in changes.get(event.id or 0, {}).items():
                setattr(event, field, value)
            event.prev_hash = prev
            event.hash = prev = stored_event_hash(event)
            session.add(event)
        head = session.get(CustodyHead, 1)
        assert head is not None
        head.last_hash = prev
        session.add(head)
        session.commit()
