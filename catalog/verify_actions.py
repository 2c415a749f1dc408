"""A case's enforcement actions held to the custody chain (`evidence verify`): each `case_action` row must be what
its latest `case_action_recorded` event says. An action's times decide whether it was recorded from start to end
and so whether the case goes to legal review (法制审核): a row moved behind the application's back (a gap closed
by shifting a time, an uncovered action deleted) would take a case out of review unseen."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

from sqlmodel import Session, col, select

from catalog.case_models import Case, CaseAction
from catalog.custody import CustodyKind
from catalog.models import CustodyEvent

__all__ = ["action_findings", "row_facts"]

#: The facts an action's event states and its row must hold.
FACTS = ("case", "type", "start", "end", "place", "officers", "note", "external_id", "revision")


def row_facts(action: CaseAction, case_number: str) -> dict[str, Any]:
    """What *action*'s row holds, as its event states it. Pure."""
    return {"case": case_number, "type": action.action_type,
            "start": action.started_at.astimezone(UTC).isoformat() if action.started_at else None,
            "end": action.ended_at.astimezone(UTC).isoformat() if action.ended_at else None,
            "place": action.place, "officers": list(action.officers), "note": action.note,
            "external_id": action.external_id, "revision": action.revision}


def compare(said: dict[int, tuple[int, dict[str, Any]]], rows: dict[int, dict[str, Any]]) -> list[tuple[str, str]]:
    """(the action, what differs) for every row that differs from its latest event, every action the chain
    recorded that has no row and every row no event accounts for. Pure."""
    found: list[tuple[str, str]] = []
    for action_id in sorted(set(said) | set(rows)):
        held, stated = rows.get(action_id), said.get(action_id)
        if held is None:
            assert stated is not None
            found.append((f"case {stated[1].get('case')} action {action_id}",
                          f"the custody chain recorded it (event {stated[0]}) but the catalogue has no row (deleted "
                          "behind the application's back; the case's legal review counts on it)"))
            continue
        subject = f"case {held['case']} action {action_id}"
        if stated is None:
            found.append((subject, "the catalogue has an action row that no case_action_recorded event accounts "
                                   "for (added behind the application's back)"))
            continue
        for name in FACTS:
            if held[name] != stated[1].get(name):
                found.append((subject, f"{name}: the row says {held[name]!r}, the custody chain (event "
                                       f"{stated[0]}) says {stated[1].get(name)!r} (changed behind the application's "
                                       "back)"))
    return found


def action_findings(session: Session, numbers: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Every action row compared with its latest event (*numbers*: only those cases' actions)."""
    wanted = None if numbers is None else set(numbers)
    said: dict[int, tuple[int, dict[str, Any]]] = {}
    for event in session.exec(select(CustodyEvent).where(CustodyEvent.kind == CustodyKind.CASE_ACTION_RECORDED.value)
                              .order_by(col(CustodyEvent.id))):
        details = event.details or {}
        if isinstance(details.get("action"), int) and (wanted is None or details.get("case") in wanted):
            said[details["action"]] = (event.id or 0, details)
    query = select(CaseAction, Case.number).join(Case, col(Case.id) == col(CaseAction.case_id))
    if wanted is not None:
        query = query.where(col(Case.number).in_(sorted(wanted)))
    rows = {action.id: row_facts(action, number) for action, number in session.exec(query) if action.id is not None}
    return compare(said, rows)
