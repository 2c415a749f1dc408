"""The web application: server-rendered pages (Jinja2) and a JSON API under /api (FastAPI).

Every check is on the server: a request carries a session cookie (a random
token; the catalogue keeps only its hash), forms and API writes carry the
session's CSRF token, and each route names the action its role must allow.
Every view of a recording is a custody event with the user.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy import func, text
from sqlmodel import select

from catalog.custody import CustodyKind, append_event
from catalog.errors import RecordingNotFound, SignInRefused
from catalog.models import Recording
from catalog.recordings import get_recording, recording_as_json
from catalog.search import SearchFilters, run_search
from catalog.types import utcnow
from catalog.users import PERMISSIONS, authenticate, end_session, start_session
from catalog.web.admin import router as admin_router
from catalog.web.audit import router as audit_router
from catalog.web.cases import router as cases_router
from catalog.web.deps import (
    DB,
    PRE_CSRF_COOKIE,
    SESSION_COOKIE,
    SearchCaller,
    ViewCaller,
    WebConfig,
    caller,
    language,
    render,
)
from catalog.web.i18n import gettext_for
from catalog.web.recordings import router as recordings_router
from catalog.web.spotchecks import router as spotchecks_router
from catalog.web.stats import router as stats_router

__all__ = ["WebConfig", "create_app"]

def create_app(config: WebConfig) -> FastAPI:
    app = FastAPI(title="evidence-ingest", version="1", openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None)
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    templates.env.autoescape = True
    templates.env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    app.state.config = config
    app.state.templates = templates
    app.include_router(recordings_router)
    app.include_router(cases_router)
    app.include_router(spotchecks_router)
    app.include_router(audit_router)
    app.include_router(stats_router)
    app.include_router(admin_router)
    registry = CollectorRegistry()
    requests_total = Counter("evidence_http_requests_total", "HTTP requests", ["method", "status"],
                             registry=registry)
    recordings_gauge = Gauge("evidence_recordings", "Recordings in the catalogue", ["state"], registry=registry)

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        requests_total.labels(request.method, str(response.status_code)).inc()
        return response

    page = render

    # -- operations ---------------------------------------------------------------------------------------
    @app.get("/health", tags=["operations"])
    def health(session: DB) -> dict[str, str]:
        session.execute(text("SELECT 1"))
        return {"status": "ok", "database": "ok", "store": config.store.name}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics(session: DB) -> Response:
        for state, count_ in session.execute(select(Recording.state, func.count()).group_by(Recording.state)):
            recordings_gauge.labels(state).set(count_)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # -- signing in ---------------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        lang = language(request)
        token = secrets.token_urlsafe(24)
        response = page(request, "login.html", lang, csrf=token, error=None, user=None)
        response.set_cookie(PRE_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies)
        return response

    @app.post("/login", include_in_schema=False)
    def login(request: Request, session: DB, name: Annotated[str, Form()], password: Annotated[str, Form()],
              csrf: Annotated[str, Form()]) -> Response:
        lang = language(request)
        _ = gettext_for(lang)
        expected = request.cookies.get(PRE_CSRF_COOKIE)
        if not expected or not secrets.compare_digest(expected, csrf):
            return page(request, "login.html", lang, 403, csrf=expected or "", user=None,
                        error=_("The form expired; please try again."))
        try:
            user = authenticate(session, name, password, now=utcnow(),
                                source=request.client.host if request.client else "")
        except SignInRefused as exc:
            message = _("Too many failed sign-ins; try again later.") if exc.locked_until else \
                _("Wrong user name or password.")
            return page(request, "login.html", lang, 401, csrf=expected, user=None, error=message)
        token, _row = start_session(session, user, now=utcnow(), ttl=config.session_ttl)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies,
                            max_age=int(config.session_ttl.total_seconds()))
        response.delete_cookie(PRE_CSRF_COOKIE)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, session: DB, csrf: Annotated[str, Form()]) -> Response:
        who = caller(request, session)
        if who is not None and not secrets.compare_digest(who.web_session.csrf_token, csrf):
            return JSONResponse({"error": "missing or wrong form token"}, status_code=403)  # a forged sign-out
        if who is not None:
            end_session(session, request.cookies[SESSION_COOKIE], actor=who.user.name)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- pages --------------------------------------------------------------------------------------------
    def _filters(params: dict[str, str | None], limit: int) -> SearchFilters:
        from datetime import datetime

        def when(value: str | None) -> datetime | None:
            if not value:
                return None
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                raise ValueError(value)
            return parsed

        return SearchFilters(case_number=params.get("case") or None, officer=params.get("officer") or None,
                             device=params.get("device") or None, start=when(params.get("from")),
                             end=when(params.get("to")), purpose=params.get("purpose") or None,
                             kind=params.get("kind") or None, limit=limit)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request, session: DB) -> Response:
        lang = language(request)
        who = caller(request, session)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        _ = gettext_for(lang)
        if not PERMISSIONS["search"] & set(who.user.roles):
            return page(request, "search.html", lang, 403, user=who.user, csrf=who.web_session.csrf_token,
                        q={}, rows=[], error=_("Your role does not allow this."))
        params = {k: request.query_params.get(k) for k in ("case", "officer", "device", "from", "to", "purpose")}
        try:
            filters = _filters(params, 200)
        except ValueError:
            return page(request, "search.html", lang, 400, user=who.user, csrf=who.web_session.csrf_token,
                        q=params, rows=[], error=_("Not a valid time (use ISO 8601 with a zone, e.g. "
                                                   "2026-11-20T08:00+08:00)."))
        rows = [recording_as_json(r) for r in run_search(session, filters)]
        return page(request, "search.html", lang, user=who.user, csrf=who.web_session.csrf_token, q=params,
                    rows=rows, error=None)

    # -- API ----------------------------------------------------------------------------------------------
    @app.get("/api/recordings", tags=["recordings"])
    def api_search(session: DB, who: SearchCaller,
                   case: str | None = None, officer: str | None = None, device: str | None = None,
                   start: Annotated[str | None, Query(alias="from")] = None,
                   end: Annotated[str | None, Query(alias="to")] = None, purpose: str | None = None,
                   kind: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Search recordings (the same filters as `evidence search`)."""
        try:
            filters = _filters({"case": case, "officer": officer, "device": device, "from": start, "to": end,
                                "purpose": purpose, "kind": kind}, limit)
        except ValueError as exc:
            raise HTTPException(422, f"not an ISO 8601 time with a zone: {exc}") from None
        return {"recordings": [recording_as_json(r) for r in run_search(session, filters)]}

    @app.get("/api/recordings/{ref}", tags=["recordings"])
    def api_recording(ref: str, session: DB, who: ViewCaller,
                      reason: str | None = None) -> dict[str, Any]:
        """One recording; the view is a custody event naming the user (and the stated reason)."""
        try:
            recording = get_recording(session, ref)
        except RecordingNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        append_event(session, CustodyKind.VIEWED, actor=who.user.name, recording_id=recording.id,
                     details={"via": "api", "reason": reason})
        session.commit()
        return recording_as_json(recording)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return app
