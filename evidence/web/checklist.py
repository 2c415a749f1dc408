"""The action checklist (音像记录事项清单) in the browser: a case's enforcement actions, each judged covered, partly
covered or not recorded by the case's recordings (`/case-actions?case=…`, with the clerk's forms to enter one or
import a case-handling system's export), and the cases of a unit with their verdicts and the legal-review flag
(`/checklist`, its CSV, `/api/checklist`). Every decision is catalog.checklist's; the page only shows it."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import PurePath
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from catalog.case_models import Case
from catalog.checklist import case_checklist, checklist_figures, import_actions, record_action, unit_checklist
from catalog.checklist_import import ACTION_TIME_FLOOR, ActionsInvalid
from catalog.csvsafe import csv_chunks
from catalog.custody import CustodyKind, append_event
from catalog.errors import CaseStateError, PermissionDenied
from catalog.periods import Period
from catalog.said import Said, said_in, said_of, say
from catalog.types import utcnow
from evidence.web.cases import case_for
from evidence.web.deps import DB, Caller, WebConfig, api_caller, done, language, render, signed_in
from evidence.web.i18n import gettext_for
from evidence.web.search_form import parse_time

__all__ = ["router"]

router = APIRouter()
CasesCaller = Annotated[Caller, api_caller("cases")]

#: The largest export a clerk may upload (the import itself refuses more than 5,000 rows).
MAX_IMPORT_BYTES = 4 * 1024 * 1024
#: The CSV's columns: one row a case.
CSV_HEADER = ("案件编号", "案件名称", "承办单位", "状态", "须全过程记录事项", "已全程记录", "部分记录", "未记录",
              "法制审核")


def _case(session: Session, number: str, who: Caller) -> Case:
    return case_for(session, number, who, via="web checklist")


def _case_url(number: str) -> str:
    return "/case-actions?" + urlencode({"case": number})


def _case_page(request: Request, session: Session, who: Caller, case: Case, status: int = 200,
               error: Said | str | None = None, form: dict[str, str] | None = None) -> Response:
    config: WebConfig = request.app.state.config
    report = case_checklist(session, case, who.scope, checklist=config.action_checklist,
                            tolerance_s=config.action_tolerance_s).as_json()
    translate = gettext_for(language(request))
    for action in report["actions"]:  # said in the page's language (a review found English on a Chinese page)
        if action.get("uncovered_withheld"):
            action["uncovered_withheld"] = said_in(action["uncovered_withheld"], translate)
    return render(request, "case_actions.html", language(request), status, user=who.user,
                  csrf=who.web_session.csrf_token, report=report, case=case, error=error, form=form or {},
                  types=config.action_checklist.types, tolerance_s=config.action_tolerance_s,
                  can_manage=who.may("manage_cases") and case.status == "open",
                  case_link="/cases/" + quote(case.number, safe=""))


@router.get("/case-actions", response_class=HTMLResponse, include_in_schema=False)
def case_actions_page(request: Request, session: DB, case: str = "") -> Response:
    """One case's actions with their verdicts; the clerk's forms to enter or import them."""
    who = signed_in(request, session, "cases")
    found = _case(session, case, who)
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, details={"via": "web case actions",
                                                                            "case": found.number})
    session.commit()
    return _case_page(request, session, who, found)


def _typed_time(value: str, what: Said, zone: str) -> datetime:
    try:
        return parse_time(value, ZoneInfo(zone))
    except ValueError:
        raise ActionsInvalid([say("{what} {value} is not a time such as 2026-11-20 09:00", what=what,
                                  value=repr(value.strip()[:40]))]) from None


@router.post("/case-actions", include_in_schema=False)
def add_action(request: Request, session: DB, csrf: Annotated[str, Form()], case: Annotated[str, Form()],
               action_type: Annotated[str, Form()], start: Annotated[str, Form()], end: Annotated[str, Form()],
               place: Annotated[str, Form()] = "", officers: Annotated[str, Form()] = "",
               note: Annotated[str, Form()] = "", external_id: Annotated[str, Form()] = "") -> Response:
    """Record one action as a clerk enters it; times typed without a zone are on the agency's clock."""
    who = signed_in(request, session, "manage_cases", csrf)
    found = _case(session, case, who)
    config: WebConfig = request.app.state.config
    form = {"action_type": action_type, "start": start, "end": end, "place": place, "officers": officers,
            "note": note, "external_id": external_id}
    try:
        action = record_action(session, who.user, found, action_type=action_type,
                               start=_typed_time(start, say("start"), config.zone),
                               end=_typed_time(end, say("end"), config.zone), checklist=config.action_checklist,
                               now=utcnow(), place=place, officers=officers.replace("、", " ").replace(",", " ")
                               .replace("，", " ").split(), note=note, external_id=external_id or None)
        session.commit()
    except PermissionDenied as exc:
        session.rollback()
        return _case_page(request, session, who, found, 403, said_of(exc), form)
    except (ActionsInvalid, CaseStateError) as exc:
        session.rollback()
        return _case_page(request, session, who, found, 400, said_of(exc), form)
    return done(request, who, RedirectResponse(_case_url(found.number), status_code=303), "action_recorded",
                case=found.number, id=action.id or 0)


@router.post("/case-actions/import", include_in_schema=False)
def import_file(request: Request, session: DB, csrf: Annotated[str, Form()], case: Annotated[str, Form()],
                file: Annotated[UploadFile, File()], zone: Annotated[str, Form()] = "",
                corrections: Annotated[str, Form()] = "") -> Response:
    """Import a case-handling system's export (JSON or CSV) of this case's actions: all or nothing."""
    who = signed_in(request, session, "manage_cases", csrf)
    found = _case(session, case, who)
    config: WebConfig = request.app.state.config
    data = file.file.read(MAX_IMPORT_BYTES + 1)
    name = PurePath((file.filename or "upload").replace("\\", "/")).name[-60:] or "upload"
    if zone.strip():
        try:
            ZoneInfo(zone.strip())
        except (ZoneInfoNotFoundError, ValueError):
            return _case_page(request, session, who, found, 400,
                              say("{zone} is not a time zone such as Asia/Shanghai", zone=repr(zone.strip()[:64])))
    if len(data) > MAX_IMPORT_BYTES:
        return _case_page(request, session, who, found, 413, say("{file} is larger than {mib} MiB", file=name,
                                                                 mib=MAX_IMPORT_BYTES >> 20))
    try:
        result = import_actions(session, who.user, data, file_name=name, checklist=config.action_checklist,
                                now=utcnow(), case_number=found.number, zone=zone.strip() or None,
                                corrections=bool(corrections))
        session.commit()
    except PermissionDenied as exc:
        session.rollback()
        return _case_page(request, session, who, found, 403, said_of(exc))
    except (ActionsInvalid, CaseStateError) as exc:
        session.rollback()
        return _case_page(request, session, who, found, 400, said_of(exc))
    return done(request, who, RedirectResponse(_case_url(found.number), status_code=303), "actions_imported",
                file=name, added=len(result.added), unchanged=len(result.unchanged),
                corrected=len(result.corrected) + len(result.identified))


def _window(config: WebConfig, first: str, last: str) -> tuple[Period | None, datetime | None, datetime | None]:
    """The agency's calendar days typed (either may be blank), as a period and its bounds; ValueError if a date
    is not one."""
    if not first and not last:
        return None, None, None
    zone = ZoneInfo(config.zone)
    # clamped to the days an action can be on (catalog.checklist_import.ACTION_TIME_FLOOR to today): a year 1 or
    # 9999 asked for (a 500 once) is those days
    floor, today = ACTION_TIME_FLOOR.date(), config.today()
    day_from = min(max(date.fromisoformat(first), floor), today) if first else floor
    day_to = min(max(date.fromisoformat(last), floor), today) if last else today
    if day_from > day_to:
        raise ValueError(first, last)  # the caller says it
    since = datetime.combine(day_from, time(), zone)
    until = datetime.combine(day_to + timedelta(days=1), time(), zone)
    return Period("custom", day_from, day_to), since, until


def _unit_rows(request: Request, session: Session, who: Caller, unit: str, first: str, last: str,
               review: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    config: WebConfig = request.app.state.config
    try:
        period, since, until = _window(config, first.strip(), last.strip())
    except ValueError:
        raise HTTPException(400, say("from and to are dates (YYYY-MM-DD), the first not after the last, not {first} "
                                     "and {last}", first=repr(first[:20]), last=repr(last[:20]))) from None
    rows = unit_checklist(session, who.scope, checklist=config.action_checklist,
                          tolerance_s=config.action_tolerance_s, unit=unit.strip() or None, since=since, until=until,
                          review_only=bool(review))
    figures = checklist_figures(session, who.scope, checklist=config.action_checklist,
                                tolerance_s=config.action_tolerance_s, zone=config.zone, period=period,
                                unit=unit.strip() or None)
    return [r.as_json() for r in rows], dict(figures)


@router.get("/checklist", response_class=HTMLResponse, include_in_schema=False)
def checklist_page(request: Request, session: DB, unit: str = "", first: str = "", last: str = "",
                   review: str = "") -> Response:
    """The cases (of a handling unit) whose actions began in the days chosen, with their verdicts."""
    who = signed_in(request, session, "cases")
    rows, figures = _unit_rows(request, session, who, unit, first, last, review)
    query = urlencode({k: v for k, v in {"unit": unit, "first": first, "last": last, "review": review}.items() if v})
    return render(request, "checklist.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                  rows=rows, figures=figures, form={"unit": unit, "first": first, "last": last, "review": review},
                  csv_link="/checklist.csv" + (f"?{query}" if query else ""))


@router.get("/checklist.csv", include_in_schema=False)
def checklist_csv(request: Request, session: DB, unit: str = "", first: str = "", last: str = "",
                  review: str = "") -> Response:
    """The same cases as a spreadsheet (UTF-8 with a BOM, formulas defused), named after the filter."""
    who = signed_in(request, session, "cases")
    rows, _figures = _unit_rows(request, session, who, unit, first, last, review)
    lines = [[r["case"], r["title"], r["unit"], r["status"], sum(r["required_counts"].values()),
              r["required_counts"]["covered"], r["required_counts"]["partly_covered"],
              r["required_counts"]["not_recorded"], "是" if r["needs_legal_review"] else "否"] for r in rows]
    name = re.sub(r"[^\w.+@-]+", "_", "-".join(filter(None, ["checklist", unit.strip(), first.strip(),
                                                               last.strip(), "review" if review else ""])))[:150]
    body = "".join(csv_chunks(CSV_HEADER, lines))  # with its BOM
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, details={  # what was handed out, once made
        "via": "web checklist.csv", "unit": unit[:200], "from": first[:20], "to": last[:20], "cases": len(rows)})
    session.commit()
    plain = re.sub(r"[^A-Za-z0-9._+@-]+", "_", name)
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=\"{plain}.csv\"; "
                                                    f"filename*=UTF-8''{quote(name, safe='')}.csv",
                             "Cache-Control": "private, no-store"})


@router.get("/api/checklist", tags=["cases"])
def api_checklist(request: Request, session: DB, who: CasesCaller, unit: str = "", first: str = "", last: str = "",
                  review: str = "") -> dict[str, Any]:
    """The cases whose actions began in the days chosen, each with its actions counted by verdict and whether it
    goes to legal review (法制审核), and the period's figures."""
    rows, figures = _unit_rows(request, session, who, unit, first, last, review)
    return {"cases": rows, "figures": figures}


@router.get("/api/case-actions", tags=["cases"])
def api_case_actions(request: Request, session: DB, who: CasesCaller, case: str) -> dict[str, Any]:
    """One case's actions with their verdicts (catalog.checklist.case_checklist)."""
    config: WebConfig = request.app.state.config
    found = _case(session, case, who)
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, details={"via": "api case actions",
                                                                            "case": found.number})
    session.commit()
    return case_checklist(session, found, who.scope, checklist=config.action_checklist,
                          tolerance_s=config.action_tolerance_s).as_json()
