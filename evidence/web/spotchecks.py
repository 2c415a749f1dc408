"""Spot checks (双随机) in the browser: draw a reproducible sample, review each recording, list past checks.

A supervisor limited to units draws from their units only, sees only checks of their units, and is refused
(403, recorded as `access_refused`) a check of other units, whether opening it or recording an outcome."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from catalog.access import Scope
from catalog.spotcheck import (
    SpotCheckCriteria,
    SpotCheckError,
    SpotCheckNotFound,
    SpotCheckRefused,
    derived_kinds,
    new_spot_check,
    open_spot_check,
    record_outcome,
    spot_checks_in_scope,
)
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, language, render, signed_in
from evidence.web.search_form import parse_time

__all__ = ["router", "scoped_unit"]

router = APIRouter()


def _when(value: str, zone: str, *, end: bool = False) -> datetime | None:
    return parse_time(value, ZoneInfo(zone), end=end) if value.strip() else None


def scoped_unit(scope: Scope, unit: str) -> str | None:
    """The unit a draw may cover for a caller with *scope*: any for the whole archive; else one of the
    caller's units (their only one when none is named). PermissionError names the units allowed. Pure."""
    if scope.everything:
        return unit or None
    allowed = sorted(scope.units)
    if unit in allowed:
        return unit
    if not unit and len(allowed) == 1:
        return allowed[0]
    raise PermissionError(f"a spot check draws from your units only ({', '.join(allowed) or 'none'}); "
                          f"choose one of them" + (f", not {unit!r}" if unit else ""))


def _list(request: Request, session: DB, who: Caller, status: int = 200, error: str | None = None) -> Response:
    checks = spot_checks_in_scope(session, who.scope, limit=100)
    return render(request, "spotchecks.html", language(request), status, user=who.user,
                  csrf=who.web_session.csrf_token, checks=checks, error=error)


@router.get("/spot-checks", response_class=HTMLResponse, include_in_schema=False)
def spot_checks(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "spotcheck")
    return _list(request, session, who)


@router.post("/spot-checks", include_in_schema=False)
def draw_spot_check(request: Request, session: DB, csrf: Annotated[str, Form()],
                    size: Annotated[int, Form(ge=1, le=500)] = 10, unit: Annotated[str, Form()] = "",
                    officer: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "",
                    start: Annotated[str, Form()] = "", end: Annotated[str, Form()] = "",
                    seed: Annotated[str, Form()] = "") -> Response:
    who = signed_in(request, session, "spotcheck", csrf)
    zone = request.app.state.config.zone
    try:
        chosen_unit = scoped_unit(who.scope, unit.strip())
    except PermissionError as exc:
        return _list(request, session, who, 403, str(exc))
    try:
        criteria = SpotCheckCriteria(unit=chosen_unit, officer=officer.strip() or None,
                                     kind=kind.strip() or None, start=_when(start, zone),
                                     end=_when(end, zone, end=True))
        check = new_spot_check(session, criteria, size, by=who.user.name, now=utcnow(), seed=seed.strip() or None)
    except ValueError as exc:
        return _list(request, session, who, 400, f"not a time (e.g. 2026-11-20, 2026/11/20 08:30 or "
                                                 f"2026-11-20T08:00+08:00): {exc}")
    except SpotCheckError as exc:
        return _list(request, session, who, 400, str(exc))
    return RedirectResponse(f"/spot-checks/{check.id}", status_code=303)


@router.get("/spot-checks/{check_id}", response_class=HTMLResponse, include_in_schema=False)
def spot_check(check_id: int, request: Request, session: DB) -> Response:
    who = signed_in(request, session, "spotcheck")
    try:
        check, rows = open_spot_check(session, check_id, scope=who.scope, by=who.user.name)
    except SpotCheckRefused as exc:
        return _list(request, session, who, 403, str(exc))
    except SpotCheckError as exc:
        raise HTTPException(404, str(exc)) from None
    proxies = derived_kinds(session, [r.id for _item, r in rows if r.id is not None], "proxy")
    return render(request, "spotcheck.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                  check=check, items=rows, proxies=proxies, error=None)


@router.post("/spot-checks/{check_id}/items/{item_id}", include_in_schema=False)
def review(check_id: int, item_id: int, request: Request, session: DB, csrf: Annotated[str, Form()],
           outcome: Annotated[str, Form()], notes: Annotated[str, Form()] = "") -> Response:
    who = signed_in(request, session, "spotcheck", csrf)
    try:
        record_outcome(session, item_id, outcome=outcome, notes=notes, by=who.user.name, now=utcnow(),
                       scope=who.scope, check_id=check_id)
    except SpotCheckRefused as exc:
        return _list(request, session, who, 403, str(exc))
    except SpotCheckNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except SpotCheckError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedirectResponse(f"/spot-checks/{check_id}", status_code=303)
