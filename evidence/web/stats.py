"""Statistics for supervisors: recordings and hours by officer, station, unit and day, tagging, backlog,
storage, upcoming disposals and integrity failures, with plain SVG bar charts (no script needed)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from catalog.access import EVERYTHING, Scope, scope_clause
from catalog.alarms import staged_overdue
from catalog.statistics import Statistics
from catalog.statistics import statistics as catalog_statistics
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, api_caller, language, render, signed_in

__all__ = ["router", "statistics"]

router = APIRouter()
StatisticsCaller = Annotated[Caller, api_caller("statistics")]


def statistics(session: Session, scope: Scope = EVERYTHING, zone: str = "UTC") -> Statistics:
    """Every figure the page shows (also the JSON at /api/statistics), over the recordings in *scope* (a
    supervisor with units sees their units'), as of now, days on *zone*'s calendar (the agency's)."""
    return catalog_statistics(session, scope, now=utcnow(), zone=zone)


def bar_chart(rows: Sequence[Mapping[str, Any]], value: str = "count", width: int = 520) -> str:
    """A horizontal SVG bar chart of *rows* (label `key`), escaped by the template engine's Markup rules."""
    from markupsafe import Markup, escape

    if not rows:
        return Markup("<p>—</p>")
    top = max(r[value] for r in rows) or 1
    bar_h, label_w = 18, 150
    # its text alternative is its figures, for a screen reader (axe-core: an image needs a name)
    said = escape("; ".join(f"{r['key']}: {r[value]}" for r in rows[:50]))
    parts = [f'<svg role="img" aria-label="{said}" width="{width}" height="{len(rows) * (bar_h + 4)}" '
             'xmlns="http://www.w3.org/2000/svg">']
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
    # Over the caller's scope, like every figure of the page (a unit's supervisor saw the whole archive's count)
    alarm = staged_overdue(session, now=utcnow(), older_than_s=request.app.state.config.staged_alarm_s,
                           within=scope_clause(who.scope))
    figures = statistics(session, who.scope, request.app.state.config.zone)
    return render(request, "stats.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                  s=figures, chart=bar_chart, alarm=alarm, who_scope=who.scope)


@router.get("/api/statistics", tags=["statistics"], response_model=dict[str, Any])
def api_statistics(request: Request, session: DB, who: StatisticsCaller) -> Statistics:
    """The statistics page's figures as JSON (over the caller's scope; days on the agency's calendar)."""
    return statistics(session, who.scope, request.app.state.config.zone)
