"""Statistics for supervisors: recordings and hours by officer, station, unit and day, tagging, backlog,
storage, upcoming disposals and integrity failures, with plain SVG bar charts (no script needed)."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import case, func
from sqlmodel import Session, col, select

from catalog.access import EVERYTHING, Scope, scope_clause
from catalog.alarms import staged_overdue
from catalog.models import Officer, Recording, RecordingState
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, api_caller, language, render, signed_in

__all__ = ["router", "statistics"]

router = APIRouter()
StatisticsCaller = Annotated[Caller, api_caller("statistics")]
_KEPT = (RecordingState.STAGED.value, RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)


def _grouped(session: Session, key: Any, scoped: list[Any], limit: int = 20) -> list[dict[str, Any]]:
    hours = func.coalesce(func.sum(Recording.duration_s), 0) / 3600.0
    rows = session.execute(select(key, func.count(), hours).where(col(Recording.state).in_(_KEPT), *scoped)
                           .group_by(key).order_by(func.count().desc()).limit(limit))
    return [{"key": str(k) if k is not None else "-", "count": int(n), "hours": round(float(h), 2)}
            for k, n, h in rows]


def statistics(session: Session, scope: Scope = EVERYTHING) -> dict[str, Any]:
    """Every figure the page shows (also the JSON at /api/statistics), over the recordings in *scope* (a
    supervisor with units sees their units')."""
    now = utcnow()
    clause = scope_clause(scope)
    scoped = [] if clause is None else [clause]
    kept = col(Recording.state).in_(_KEPT)
    total, tagged, size = session.execute(select(
        func.count(), func.sum(case((col(Recording.case_number).is_not(None), 1), else_=0)),
        func.coalesce(func.sum(Recording.size_bytes), 0)).where(kept, *scoped)).one()
    pending = session.execute(select(func.count()).where(Recording.state == RecordingState.STAGED.value,
                                                         *scoped)).scalar_one()
    upcoming = session.execute(select(func.count()).where(
        col(Recording.state).in_((RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)),
        col(Recording.retain_until) <= now + timedelta(days=30), col(Recording.legal_hold).is_(False),
        *scoped)).scalar_one()
    integrity = dict(session.execute(select(Recording.integrity_status, func.count()).where(kept, *scoped)
                                     .group_by(Recording.integrity_status)).all())
    day = func.date(Recording.captured_start)
    by_day = [r for r in _grouped(session, day, scoped, 400) if r["key"] != "-"]
    by_day.sort(key=lambda r: r["key"])
    unit = select(Officer.unit_name).where(Officer.number == Recording.officer_number).scalar_subquery()
    return {
        "total": int(total), "tagged_share": round(int(tagged or 0) / total, 3) if total else 0.0,
        "pending_archive": int(pending), "storage_bytes": int(size), "upcoming_disposals_30d": int(upcoming),
        "integrity": {k: int(v) for k, v in integrity.items()},
        "by_officer": _grouped(session, Recording.officer_number, scoped),
        "by_station": _grouped(session, Recording.station_code, scoped),
        "by_unit": _grouped(session, unit, scoped), "by_day": by_day[-30:], "scope": scope.describe(),
    }


def bar_chart(rows: list[dict[str, Any]], value: str = "count", width: int = 520) -> str:
    """A horizontal SVG bar chart of *rows* (label `key`), escaped by the template engine's Markup rules."""
    from markupsafe import Markup, escape

    if not rows:
        return Markup("<p>—</p>")
    top = max(r[value] for r in rows) or 1
    bar_h, label_w = 18, 150
    parts = [f'<svg role="img" width="{width}" height="{len(rows) * (bar_h + 4)}" xmlns="http://www.w3.org/2000/svg">']
    for i, r in enumerate(rows):
        y = i * (bar_h + 4)
        w = int((width - label_w - 60) * r[value] / top)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{escape(r["key"])}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="#1f3a5f"></rect>'
                     f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{r[value]}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


@router.get("/stats", response_class=HTMLResponse, include_in_schema=False)
def stats_page(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "statistics")
    if not isinstance(who, Caller):
        return who
    alarm = staged_overdue(session, now=utcnow(), older_than_s=request.app.state.config.staged_alarm_s)
    return render(request, "stats.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                  s=statistics(session, who.scope), chart=bar_chart, alarm=alarm)


@router.get("/api/statistics", tags=["statistics"])
def api_statistics(session: DB, who: StatisticsCaller) -> dict[str, Any]:
    """The statistics page's figures as JSON (over the caller's scope)."""
    return statistics(session, who.scope)
