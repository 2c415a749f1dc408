"""The auditor's pages: the access log (调阅记录), the administration log, the verification results and the
whole custody log, each filtered by event, person, recording and time, paged, and downloadable as CSV.

Downloading the log is itself recorded (an `exported` custody event naming the filters). The CSV is made by
`catalog.csvsafe`: a UTF-8 BOM first, and no cell a spreadsheet would run as a formula.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from catalog.csvsafe import csv_chunks
from catalog.custody import CustodyKind, append_event
from catalog.models import CustodyAnchor, CustodyEvent, CustodyHead
from evidence.web.deps import DB, Caller, language, render, signed_in
from evidence.web.search_form import parse_time

__all__ = ["ACCESS_KINDS", "LOGS", "router"]

router = APIRouter()
PAGE_SIZE = 100
CSV_LIMIT = 200_000
#: The access log (调阅记录) is the custody log narrowed to these kinds; the others likewise.
ACCESS_KINDS = ("viewed", "accessed", "exported", "access_refused", "signed_in", "sign_in_failed", "signed_out")
LOGS = {"access": ACCESS_KINDS, "admin": ("user_changed", "registry_changed"),
        "verification": ("verification_run", "fixity_failed", "verified")}


def _filters(request: Request) -> tuple[dict[str, str], SelectOfScalar[CustodyEvent], list[str]]:
    """The query's filters, the SELECT they make, and any problems (each naming the field)."""
    q = {k: request.query_params.get(k, "").strip() for k in ("log", "kind", "actor", "recording", "from", "to")}
    query = select(CustodyEvent)
    problems = []
    if q["log"] in LOGS:
        query = query.where(col(CustodyEvent.kind).in_(LOGS[q["log"]]))
    if q["kind"]:
        query = query.where(CustodyEvent.kind == q["kind"][:32])
    if q["actor"]:
        query = query.where(CustodyEvent.actor == q["actor"][:100])
    if q["recording"]:
        if q["recording"].isdigit() and len(q["recording"]) < 16:
            query = query.where(CustodyEvent.recording_id == int(q["recording"]))
        else:
            problems.append(f"recording must be a number, not {q['recording'][:40]!r}")
    zone = ZoneInfo(request.app.state.config.zone)
    for field, op in (("from", "ge"), ("to", "le")):
        if q[field]:
            try:
                when = parse_time(q[field], zone)
                query = query.where(col(CustodyEvent.at) >= when if op == "ge" else col(CustodyEvent.at) <= when)
            except ValueError:
                problems.append(f"{field}: {q[field][:40]!r} is not a time (ISO 8601, e.g. 2026-11-20T08:00)")
    return q, query, problems


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 1 <= int(raw[:9]) <= 1_000_000 else 1


def _verification(session: Session) -> dict[str, Any]:
    head = session.get(CustodyHead, 1)
    anchors = list(session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id).desc()).limit(20)))
    return {"head": head, "anchors": anchors}


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
def audit(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "audit")
    if not isinstance(who, Caller):
        return who
    q, query, problems = _filters(request)
    page = _page_number(request)
    total = 0 if problems else session.exec(select(func.count()).select_from(query.subquery())).one()
    events = [] if problems else list(session.exec(query.order_by(col(CustodyEvent.id).desc())
                                                   .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    kept = {k: v for k, v in q.items() if v}
    return render(request, "audit.html", language(request), 400 if problems else 200, user=who.user,
                  csrf=who.web_session.csrf_token, events=events, total=total, page=page, page_size=PAGE_SIZE,
                  q=q, error="; ".join(problems) or None, kinds=[k.value for k in CustodyKind],
                  prev=f"/audit?{urlencode({**kept, 'page': page - 1})}" if page > 1 else None,
                  next=f"/audit?{urlencode({**kept, 'page': page + 1})}" if total > page * PAGE_SIZE else None,
                  csv_link=f"/audit.csv?{urlencode(kept)}",
                  verification=_verification(session) if q["log"] == "verification" else None)


@router.get("/audit.csv", include_in_schema=False)
def audit_csv(request: Request, session: DB) -> Response:
    """The filtered log as CSV (oldest first, at most CSV_LIMIT rows), for the auditor's own tools."""
    who = signed_in(request, session, "audit")
    if not isinstance(who, Caller):
        return who
    q, query, problems = _filters(request)
    if problems:
        return Response("; ".join(problems), status_code=400, media_type="text/plain; charset=utf-8")
    append_event(session, CustodyKind.EXPORTED, actor=who.user.name, details={
        "what": "audit log (CSV)", "filters": {k: v for k, v in q.items() if v}})
    session.commit()
    events = list(session.exec(query.order_by(col(CustodyEvent.id)).limit(CSV_LIMIT)))

    header = ["id", "at", "kind", "actor", "recording_id", "details", "prev_hash", "hash"]
    rows = ([e.id, e.at.isoformat() if e.at else "", e.kind, e.actor, e.recording_id or "",
             json.dumps(e.details, ensure_ascii=False, sort_keys=True), e.prev_hash, e.hash] for e in events)

    return StreamingResponse(csv_chunks(header, rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": "attachment; filename=custody-log.csv"})
