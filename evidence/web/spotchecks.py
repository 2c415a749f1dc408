"""Spot checks (双随机) in the browser: draw a reproducible sample and, from a pool, its reviewers; review each
recording beside a player; the reviewer's sign-off with a signed result; a summary to publish; past checks.

A supervisor limited to units draws from their units only, sees only checks of their units, and is refused
(403, recorded as `access_refused`) a check of other units, whether opening it or recording an outcome."""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from catalog.access import Scope
from catalog.case_workspace import playable_for
from catalog.csvsafe import csv_chunks
from catalog.disposal import Signer
from catalog.models import Recording, SpotCheck, SpotCheckItem
from catalog.said import listed, said_of, say
from catalog.spotcheck import (
    ENFORCEMENT_KINDS,
    SpotCheckCriteria,
    SpotCheckError,
    SpotCheckNotFound,
    SpotCheckRefused,
    derived_kinds,
    may_review,
    new_spot_check,
    open_spot_check,
    record_outcome,
    spot_checks_in_scope,
)
from catalog.spotcheck_result import progress, progress_by_check, sign_off, spot_check_summary
from catalog.spotcheck_team import reviewer_seed
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, done, language, render, signed_in
from evidence.web.search_form import parse_time
from storage import StorageError

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
    units = listed(allowed) if allowed else say("none")
    raise PermissionError(say("a spot check draws from your units only ({units}); choose one of them, not {unit}",
                              units=units, unit=repr(unit)) if unit else
                          say("a spot check draws from your units only ({units}); choose one of them", units=units))


def _list(request: Request, session: DB, who: Caller, status: int = 200, error: str | None = None,
          form: dict[str, str] | None = None) -> Response:
    checks = spot_checks_in_scope(session, who.scope, limit=100)
    return render(request, "spotchecks.html", language(request), status, user=who.user,
                  csrf=who.web_session.csrf_token, checks=checks, error=error,
                  progress=progress_by_check(session, [c.id for c in checks if c.id is not None]),
                  kinds=ENFORCEMENT_KINDS, form=form or {})


@router.get("/spot-checks", response_class=HTMLResponse, include_in_schema=False)
def spot_checks(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "spotcheck")
    return _list(request, session, who)


@router.post("/spot-checks", include_in_schema=False)
def draw_spot_check(request: Request, session: DB, csrf: Annotated[str, Form()],
                    size: Annotated[int, Form(ge=1, le=500)] = 10, unit: Annotated[str, Form()] = "",
                    officer: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "",
                    start: Annotated[str, Form()] = "", end: Annotated[str, Form()] = "",
                    reviewers: Annotated[int, Form(ge=1, le=20)] = 2, pool: Annotated[str, Form()] = "") -> Response:
    """Draw the recordings and, 双随机, the reviewers (from the named pool, or everyone who may review), with a
    seed the server draws: one typed here would let whoever draws choose both (found by a review)."""
    who = signed_in(request, session, "spotcheck", csrf)
    zone = request.app.state.config.zone
    form = {"size": str(size), "unit": unit, "officer": officer, "kind": kind, "start": start, "end": end,
            "reviewers": str(reviewers), "pool": pool}
    try:
        chosen_unit = scoped_unit(who.scope, unit.strip())
    except PermissionError as exc:
        return _list(request, session, who, 403, said_of(exc), form)
    try:
        criteria = SpotCheckCriteria(unit=chosen_unit, officer=officer.strip() or None,
                                     kind=kind.strip() or None, start=_when(start, zone),
                                     end=_when(end, zone, end=True))
        check = new_spot_check(session, criteria, size, by=who.user.name, now=utcnow(), reviewers=reviewers,
                               pool=re.split(r"[\s,，;；]+", pool.strip()) if pool.strip() else ())
    except ValueError as exc:
        return _list(request, session, who, 400, say("not a time (e.g. 2026-11-20, 2026/11/20 08:30 or "
                                                     "2026-11-20T08:00+08:00): {problem}", problem=said_of(exc)), form)
    except SpotCheckError as exc:
        return _list(request, session, who, 400, str(exc), form)
    return done(request, who, RedirectResponse(f"/spot-checks/{check.id}", status_code=303), "spot_check_drawn",
                check=str(check.id), n=check.sample_size)


def _open(session: Session, who: Caller, check_id: int) -> tuple[SpotCheck, list[tuple[SpotCheckItem, Recording]]]:
    """catalog.spotcheck.open_spot_check, its refusal a 403 that names why and its absence a 404."""
    try:
        return open_spot_check(session, check_id, scope=who.scope, by=who.user.name)
    except SpotCheckRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except SpotCheckError as exc:
        raise HTTPException(404, str(exc)) from None


def _check_page(request: Request, session: Session, who: Caller, check_id: int, status: int = 200,
                error: str | None = None) -> Response:
    check, rows = _open(session, who, check_id)
    proxies = derived_kinds(session, [r.id for _item, r in rows if r.id is not None], "proxy")
    reviewer = may_review(check, who.user.name)
    return render(request, "spotcheck.html", language(request), status, user=who.user,
                  csrf=who.web_session.csrf_token, check=check, items=rows, proxies=proxies, error=error,
                  tally=progress([item for item, _r in rows]), may_review=reviewer and check.signed_off_at is None,
                  may_sign=reviewer and check.signed_off_at is None, reviewer_seed=reviewer_seed(check.seed),
                  playable=playable_for(session, who.user, [{"recording_id": r.id, "playable": True}
                                                            for _item, r in rows]))


@router.get("/spot-checks/{check_id}", response_class=HTMLResponse, include_in_schema=False)
def spot_check(check_id: int, request: Request, session: DB) -> Response:
    who = signed_in(request, session, "spotcheck")
    try:
        return _check_page(request, session, who, check_id)
    except HTTPException as exc:
        if exc.status_code == 403:  # the refusal as it was made (a Said stays one: said in the page's language)
            return _list(request, session, who, 403, exc.detail if isinstance(exc.detail, str) else str(exc.detail))
        raise


@router.post("/spot-checks/{check_id}/items/{item_id}", include_in_schema=False)
def review(check_id: int, item_id: int, request: Request, session: DB, csrf: Annotated[str, Form()],
           outcome: Annotated[str, Form()], notes: Annotated[str, Form()] = "") -> Response:
    """One drawn reviewer's outcome for one item (catalog.spotcheck.record_outcome)."""
    who = signed_in(request, session, "spotcheck", csrf)
    try:
        record_outcome(session, item_id, outcome=outcome, notes=notes, by=who.user.name, now=utcnow(),
                       scope=who.scope, check_id=check_id)
    except SpotCheckRefused as exc:
        return _list(request, session, who, 403, str(exc))
    except SpotCheckNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except SpotCheckError as exc:
        return _check_page(request, session, who, check_id, 400, str(exc))
    return done(request, who, RedirectResponse(f"/spot-checks/{check_id}#item-{item_id}", status_code=303),
                "outcome_recorded", item=str(item_id))


@router.post("/spot-checks/{check_id}/sign-off", include_in_schema=False)
def sign(check_id: int, request: Request, session: DB, csrf: Annotated[str, Form()]) -> Response:
    """A drawn reviewer signs the finished check off (catalog.spotcheck_result.sign_off: a signed result in WORM
    storage)."""
    who = signed_in(request, session, "spotcheck", csrf)
    config = request.app.state.config
    if config.key is None:
        raise HTTPException(503, say("this server has no station key to sign the result with"))
    try:
        sign_off(session, config.store, Signer(config.station, config.key, tsa=config.settings), check_id,
                 by=who.user.name, scope=who.scope, now=utcnow())
    except SpotCheckRefused as exc:
        return _check_page(request, session, who, check_id, 403, str(exc))
    except SpotCheckNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except SpotCheckError as exc:
        return _check_page(request, session, who, check_id, 400, str(exc))
    except StorageError as exc:
        return _check_page(request, session, who, check_id, 503, say("the evidence store refused or is down: {fault}",
                                                                     fault=said_of(exc)))
    return done(request, who, RedirectResponse(f"/spot-checks/{check_id}", status_code=303), "spot_check_signed",
                check=str(check_id))


@router.get("/spot-checks/{check_id}/summary.{fmt}", include_in_schema=False)
def summary(check_id: int, fmt: str, request: Request, session: DB) -> Response:
    """What may be published (公示) of a signed-off check, without personal data: JSON or CSV (UTF-8 with BOM)."""
    who = signed_in(request, session, "spotcheck")
    if fmt not in ("json", "csv"):
        raise HTTPException(404, say("a summary is .json or .csv, not .{fmt}", fmt=fmt[:10]))
    check, rows = _open(session, who, check_id)
    if check.signed_off_at is None:
        raise HTTPException(409, say("spot check {check} is not signed off yet: its summary is published after",
                                     check=check_id))
    data = spot_check_summary(check, [item for item, _r in rows], request.app.state.config.zone)
    name = f"spot-check-{check_id}-summary.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "json":
        return Response(json.dumps(data, ensure_ascii=False, indent=1), media_type="application/json",
                        headers=headers)
    flat = {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v) for k, v in data.items()}
    return Response("".join(csv_chunks(list(flat), [list(flat.values())])), media_type="text/csv; charset=utf-8",
                    headers=headers)
