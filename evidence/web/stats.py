"""Statistics for supervisors: recordings and hours by officer, station, unit and day, tagging, backlog,
storage, upcoming disposals and integrity failures, with plain SVG bar charts (no script needed)."""
from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from catalog.access import EVERYTHING, Scope, scope_clause
from catalog.alarms import staged_overdue
from catalog.checklist import checklist_figures
from catalog.court_report_pdf import DEFAULT_FONT
from catalog.custody import CustodyKind, append_event
from catalog.enforcement_report import build_report, report_csv, write_report_pdf
from catalog.periods import PERIOD_KINDS, Period, period_of
from catalog.said import Said, said_of, say
from catalog.statistics import Statistics
from catalog.statistics import statistics as catalog_statistics
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, WebConfig, api_caller, language, render, signed_in

__all__ = ["router", "statistics"]

router = APIRouter()
StatisticsCaller = Annotated[Caller, api_caller("statistics")]


def statistics(session: Session, scope: Scope = EVERYTHING, zone: str = "UTC", period: Period | None = None,
               unit: str | None = None) -> Statistics:
    """Every figure the page shows (also the JSON at /api/statistics), over the recordings in *scope* (a
    supervisor with units sees their units'), as of now, days on *zone*'s calendar (the agency's); within
    *period* and *unit* when asked."""
    return catalog_statistics(session, scope, now=utcnow(), zone=zone, period=period, unit=unit)


def asked_period(config: WebConfig, kind: str, on: str, first: str, last: str, *,
                 default: str = "") -> Period | None:
    """The period a query asks for (catalog.periods.period_of: *kind* holding the day *on*, default today; or
    *first* to *last*), None for all time when neither it nor *default* names one; a 400 naming what is wrong."""
    kind = kind.strip() or default
    if not kind:
        return None

    def day(value: str, what: Said) -> date | None:
        try:
            return date.fromisoformat(value.strip()) if value.strip() else None
        except ValueError:
            raise HTTPException(400, say("{what}: {value} is not a date (YYYY-MM-DD)", what=what,
                                         value=repr(value[:40]))) from None

    try:
        period = period_of(kind, day(on, say("Holding the day")) or config.today(), first=day(first, say("From")),
                           last=day(last, say("To")))  # each named as the form labels it
        period.bounds(config.zone)  # a period at the calendar's edge has no instants to bound it
    except ValueError as exc:  # a period_of refusal (catalog.said: said in the reader's language)
        raise HTTPException(400, said_of(exc)) from None
    except OverflowError:
        raise HTTPException(400, say("no period can be counted around {day}: it runs past the calendar's first or "
                                     "last day", day=repr(on or first or last))) from None
    return period


def bar_chart(rows: Sequence[Mapping[str, Any]], value: str = "count", width: int = 520) -> str:
    """A horizontal SVG bar chart of *rows* (label `key`), escaped by the template engine's Markup rules."""
    from markupsafe import Markup, escape

    if not rows:
        return Markup("<p>—</p>")
    top = max(r[value] for r in rows) or 1
    bar_h, label_w = 18, 150
    # its text alternative is its figures, for a screen reader (axe-core: an image needs a name)
    said = escape("; ".join(f"{r.get('label', r['key'])}: {r[value]}" for r in rows[:50]))
    parts = [f'<svg role="img" aria-label="{said}" width="{width}" height="{len(rows) * (bar_h + 4)}" '
             'xmlns="http://www.w3.org/2000/svg">']
    for i, r in enumerate(rows):
        y = i * (bar_h + 4)
        w = int((width - label_w - 60) * r[value] / top)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{escape(r.get("label", r["key"]))}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="#1f3a5f"></rect>'
                     f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{r[value]}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


@router.get("/stats", response_class=HTMLResponse, include_in_schema=False)
def stats_page(request: Request, session: DB, period: str = "", on: str = "", first: Annotated[str, Query(
        alias="from")] = "", last: Annotated[str, Query(alias="to")] = "", unit: str = "") -> Response:
    """The figures over the caller's scope, for all time or a period (a day … a year, or days chosen), and from a
    unit down to its officers (each officer's row opens their recordings of the period in search)."""
    who = signed_in(request, session, "statistics")
    config: WebConfig = request.app.state.config
    asked = asked_period(config, period, on, first, last)
    # Over the caller's scope, like every figure of the page (a unit's supervisor saw the whole archive's count)
    alarm = staged_overdue(session, now=utcnow(), older_than_s=config.staged_alarm_s, within=scope_clause(who.scope))
    figures = statistics(session, who.scope, config.zone, asked, unit.strip() or None)
    query = {"period": asked.kind, "on": on, "from": first, "to": last} if asked else {}
    # the action checklist's figures of the period (its cases' handling units are not the officers' units)
    actions = checklist_figures(session, who.scope, checklist=config.action_checklist,
                                tolerance_s=config.action_tolerance_s, zone=config.zone, period=asked)
    actions_link = "/checklist?" + urlencode({"first": asked.first.isoformat(), "last": asked.last.isoformat(),
                                              "review": "1"} if asked else {"review": "1"})
    return render(request, "stats.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                  s=figures, chart=bar_chart, alarm=alarm, who_scope=who.scope, asked=asked, actions=actions,
                  actions_link=actions_link,
                  kinds=PERIOD_KINDS, query=query, form={"period": period, "on": on or config.today().isoformat(),
                                                         "from": first, "to": last, "unit": unit},
                  report_query=urlencode({**(query or {"period": "quarter"}), **({"unit": unit} if unit else {})}),
                  lang_code="zh" if language(request) != "en" else "en")


@router.get("/stats/report.{fmt}", include_in_schema=False)
def report(request: Request, session: DB, fmt: str, period: str = "", on: str = "",
           first: Annotated[str, Query(alias="from")] = "", last: Annotated[str, Query(alias="to")] = "",
           unit: str = "") -> Response:
    """执法数据分析报告 of a period (a quarter unless asked otherwise) over the caller's scope, as CSV (UTF-8 with a
    BOM) or PDF; the download is recorded (who, which period, which scope)."""
    who = signed_in(request, session, "statistics")
    if fmt not in ("csv", "pdf"):
        raise HTTPException(404, say("a report is .csv or .pdf, not .{fmt}", fmt=fmt[:10]))
    config: WebConfig = request.app.state.config
    asked = asked_period(config, period, on, first, last, default="quarter")
    assert asked is not None
    made = build_report(session, who.scope, period=asked, zone=config.zone, now=utcnow(), by=who.user.name,
                        lang=language(request), unit=unit.strip() or None, checklist=config.action_checklist,
                        tolerance_s=config.action_tolerance_s)
    headers = {"Content-Disposition": f'attachment; filename="{made.file_name}.{fmt}"',
               "Cache-Control": "private, no-store"}
    if fmt == "csv":
        body, media = "".join(report_csv(made)).encode(), "text/csv; charset=utf-8"
    else:
        font = config.settings.report_font if config.settings is not None else DEFAULT_FONT
        with tempfile.TemporaryDirectory(prefix="evidence-report-") as tmp:
            target = Path(tmp) / "report.pdf"
            why = write_report_pdf(made, target, font=font)
            if why is not None:
                raise HTTPException(503, say("the PDF cannot be made here: {why}; the CSV can", why=why))
            body, media = target.read_bytes(), "application/pdf"
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, details={  # what was handed out, once made
        "via": f"web report.{fmt}", "report": "enforcement data analysis", "period": asked.as_json(),
        "scope": who.scope.describe(), "unit": unit.strip() or None})
    session.commit()
    return Response(body, media_type=media, headers=headers)


@router.get("/api/statistics", tags=["statistics"], response_model=dict[str, Any])
def api_statistics(request: Request, session: DB, who: StatisticsCaller, period: str = "", on: str = "",
                   first: Annotated[str, Query(alias="from")] = "", last: Annotated[str, Query(alias="to")] = "",
                   unit: str = "") -> Statistics:
    """The statistics page's figures as JSON (over the caller's scope; days on the agency's calendar), for all
    time or a `period` (day, week, month, quarter, year holding the day `on`; or custom `from` … `to`), and
    within a `unit`."""
    config: WebConfig = request.app.state.config
    return statistics(session, who.scope, config.zone, asked_period(config, period, on, first, last),
                      unit.strip() or None)
