"""The auditor's pages: the access log (调阅记录), the administration log, the verification results and the
whole custody log, each filtered by event, person, recording and time, paged, and downloadable as CSV.

Downloading the log is itself recorded (an `exported` custody event naming the filters). The CSV is made by
`catalog.csvsafe`: a UTF-8 BOM first, and no cell a spreadsheet would run as a formula.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from catalog.audit_log import ACCESS_KINDS, LOGS, AuditFilter, count_events, list_events, verification_state
from catalog.csvsafe import csv_chunks
from catalog.custody import CustodyKind, append_event
from catalog.custody_words import event_name, event_sentence
from catalog.db import MAX_ROW_ID
from catalog.models import CustodyEvent
from catalog.report_values import Values
from catalog.said import Said, listed, say
from evidence.web.deps import DB, language, render, signed_in
from evidence.web.search_form import parse_time

__all__ = ["ACCESS_KINDS", "LOGS", "csv_disposition", "router"]

router = APIRouter()
PAGE_SIZE = 100
_TIME_FIELDS = {"from": say("From"), "to": say("To")}  # as the form labels them
CSV_LIMIT = 200_000


def _recording_id(raw: str, problems: list[Said]) -> int | None:
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and 1 <= int(raw[:16]) <= MAX_ROW_ID:
        return int(raw)
    problems.append(say("recording must be a number from 1 to {max}, not {raw}", max=MAX_ROW_ID, raw=repr(raw[:40])))
    return None


def _filters(request: Request) -> tuple[dict[str, str], AuditFilter, list[Said]]:
    """The query's filters as typed, what they ask of the log, and any problems (each naming the field)."""
    q = {k: request.query_params.get(k, "").strip() for k in ("log", "kind", "actor", "recording", "case", "from",
                                                               "to")}
    problems: list[Said] = []
    recording_id = _recording_id(q["recording"], problems)
    zone = ZoneInfo(request.app.state.config.zone)
    times: dict[str, datetime] = {}
    for field in ("from", "to"):
        if q[field]:
            try:
                times[field] = parse_time(q[field], zone, end=field == "to")
            except ValueError:
                problems.append(say("{field}: {text} is not a time (e.g. 2026-11-20, 2026/11/20 08:30 or "
                                    "2026-11-20T08:00+08:00)", field=_TIME_FIELDS[field], text=repr(q[field][:40])))
    where = AuditFilter(log=q["log"], kind=q["kind"][:32], actor=q["actor"][:100], recording_id=recording_id,
                        since=times.get("from"), until=times.get("to"), case=q["case"][:64])
    return q, where, problems


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw[:9]) <= 1_000_000 else 1


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
def audit(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "audit")
    q, where, problems = _filters(request)
    page = _page_number(request)
    total = 0 if problems else count_events(session, where)
    events = [] if problems else list_events(session, where, newest_first=True, offset=(page - 1) * PAGE_SIZE,
                                             limit=PAGE_SIZE)
    kept = {k: v for k, v in q.items() if v}
    lang = language(request)
    words = "en" if lang == "en" else "zh"
    values = Values(words, request.app.state.config.zone)
    return render(request, "audit.html", lang, 400 if problems else 200, user=who.user,
                  csrf=who.web_session.csrf_token, events=[_row(e, values) for e in events], total=total, page=page,
                  page_size=PAGE_SIZE, q=q, error=listed(problems, sep="; ") if problems else None,
                  kinds=[(k.value, event_name(k.value, words)) for k in CustodyKind],
                  prev=f"/audit?{urlencode({**kept, 'page': page - 1})}" if page > 1 else None,
                  next=f"/audit?{urlencode({**kept, 'page': page + 1})}" if total > page * PAGE_SIZE else None,
                  csv_link=f"/audit.csv?{urlencode(kept)}",
                  verification=verification_state(session) if q["log"] == "verification" else None)


@dataclass(frozen=True)
class _Row:
    """One event as the auditor reads it: its name and its details in words, the stated reason apart."""

    event: CustodyEvent
    name: str
    reason: str
    sentence: str


def _row(event: CustodyEvent, values: Values) -> _Row:
    details = event.details if isinstance(event.details, dict) else {}
    reason = details.get("reason")
    sentence = event_sentence({"kind": event.kind, "details": details}, values)
    return _Row(event, event_name(event.kind, values.language), reason if isinstance(reason, str) else "", sentence)


@router.get("/audit.csv", include_in_schema=False)
def audit_csv(request: Request, session: DB) -> Response:
    """The filtered log as CSV (oldest first, at most CSV_LIMIT rows), for the auditor's own tools."""
    who = signed_in(request, session, "audit")
    q, where, problems = _filters(request)
    if problems:
        return Response("; ".join(problems), status_code=400, media_type="text/plain; charset=utf-8")
    append_event(session, CustodyKind.EXPORTED, actor=who.user.name, details={
        "what": "audit log (CSV)", "filters": {k: v for k, v in q.items() if v}})
    session.commit()
    events = list_events(session, where, limit=CSV_LIMIT)

    header = ["id", "at", "kind", "actor", "recording_id", "details", "prev_hash", "hash"]
    rows = ([e.id, e.at.isoformat() if e.at else "", e.kind, e.actor, e.recording_id or "",
             json.dumps(e.details, ensure_ascii=False, sort_keys=True), e.prev_hash, e.hash] for e in events)

    return StreamingResponse(csv_chunks(header, rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": csv_disposition(q)})


#: The filters a download's name is made of, in this order.
_NAMED_BY = ("log", "kind", "actor", "recording", "case", "from", "to")


def csv_disposition(filters: dict[str, str]) -> str:
    """The Content-Disposition of the log downloaded with *filters*: named after them (`audit-access-actor-李四-
    from-2026-11-01-to-2026-11-30.csv`), so two downloads saved side by side say what each holds. The name is
    UTF-8 (RFC 6266 `filename*`), with an ASCII one beside it for old clients; a character a file name cannot
    hold (a slash, a quote, a control) becomes `_`. Pure."""
    parts = ["audit", filters.get("log") or "custody"]
    for field in _NAMED_BY[1:]:
        if filters.get(field):
            parts += [field, filters[field]]
    name = re.sub(r"[^\w.+@-]+", "_", "-".join(parts)).strip("._")[:150] + ".csv"
    plain = re.sub(r"[^A-Za-z0-9._+@-]+", "_", name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"
