"""The auditor's pages: the custody and access log with filters, and what the verification runs found."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, func, select

from catalog.models import CustodyEvent
from catalog.web.deps import DB, Caller, language, render, signed_in

__all__ = ["ACCESS_KINDS", "router"]

router = APIRouter()
PAGE_SIZE = 100
#: The access log (调阅记录) is the custody log narrowed to these kinds.
ACCESS_KINDS = ("viewed", "accessed", "exported", "signed_in", "sign_in_failed", "signed_out")
VERIFY_KINDS = ("verification_run", "fixity_failed", "verified")


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
def audit(request: Request, session: DB, kind: str = "", actor: str = "", recording: str = "", log: str = "",
          page: int = 1) -> Response:
    who = signed_in(request, session, "audit")
    if not isinstance(who, Caller):
        return who
    page = max(1, min(page, 1_000_000))
    query = select(CustodyEvent)
    if log == "access":
        query = query.where(col(CustodyEvent.kind).in_(ACCESS_KINDS))
    elif log == "verification":
        query = query.where(col(CustodyEvent.kind).in_(VERIFY_KINDS))
    if kind:
        query = query.where(CustodyEvent.kind == kind)
    if actor:
        query = query.where(CustodyEvent.actor == actor)
    error = None
    if recording:
        if recording.isdigit():
            query = query.where(CustodyEvent.recording_id == int(recording))
        else:
            error = f"recording must be a number, not {recording!r}"
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    events = list(session.exec(query.order_by(col(CustodyEvent.id).desc())
                               .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    return render(request, "audit.html", language(request), 400 if error else 200, user=who.user,
                  csrf=who.web_session.csrf_token, events=events, total=total, page=page, page_size=PAGE_SIZE,
                  q={"kind": kind, "actor": actor, "recording": recording, "log": log}, error=error)
