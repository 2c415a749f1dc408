"""The web application: server-rendered pages (Jinja2) and a JSON API under /api (FastAPI).

Every check is on the server: a request carries a session cookie (a random
token; the catalogue keeps only its hash), forms and API writes carry the
session's CSRF token, and each route names the action its role must allow.
Every view of a recording is a custody event with the user.
"""
from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy import func, text
from sqlmodel import Session, select

from catalog import outbox as catalog_outbox
from catalog.alarms import failures_by_stage, staged_overdue
from catalog.errors import SignInRefused
from catalog.models import Recording, RecordingState
from catalog.types import utcnow
from catalog.users import DEVICE_COOKIE, DEVICE_TTL, end_session, sign_in, start_session
from evidence.web.admin import router as admin_router
from evidence.web.audit import router as audit_router
from evidence.web.cases import router as cases_router
from evidence.web.deps import (
    DB,
    PRE_CSRF_COOKIE,
    SESSION_COOKIE,
    WebConfig,
    caller,
    language,
    render,
)
from evidence.web.i18n import gettext_for
from evidence.web.recordings import router as recordings_router
from evidence.web.retention import router as retention_router
from evidence.web.search import router as search_router
from evidence.web.spotchecks import router as spotchecks_router
from evidence.web.stats import router as stats_router

__all__ = ["SECURITY_HEADERS", "WebConfig", "create_app", "local_time"]

#: Sent with every response. No page has a script (none inline, no event handler attributes), so scripts may come
#: only from this origin; inline style attributes remain (style-src 'unsafe-inline': styles cannot run code).
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; media-src 'self'; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

def local_time(value: str | datetime | None, zone: str) -> str:
    """An ISO time (or datetime) on the agency's clock, e.g. `2026-11-20 10:20:00 +08:00`; '-' for none. Pure."""
    if not value:
        return "-"
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec="seconds").replace("+", " +", 1)
    except OverflowError:  # a device clock at the edge of the calendar (9999-12-31): shown as recorded, in UTC
        return when.isoformat(sep=" ", timespec="seconds").replace("+", " +", 1)


def create_app(config: WebConfig) -> FastAPI:
    # The API description and its browsable docs are routes of their own below (sign-in or the metrics token).
    app = FastAPI(title="evidence-ingest", version="1", openapi_url=None, docs_url=None, redoc_url=None)
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    templates.env.autoescape = True
    templates.env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    templates.env.filters["local"] = lambda value: local_time(value, config.zone)
    app.state.config = config
    app.state.templates = templates
    app.include_router(search_router)
    app.include_router(recordings_router)
    app.include_router(cases_router)
    app.include_router(retention_router)
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
        for name, value in SECURITY_HEADERS.items():  # every page, file, API answer and error
            response.headers.setdefault(name, value)
        return response

    page = render

    # -- operations ---------------------------------------------------------------------------------------
    staged_gauge = Gauge("evidence_staged_overdue_recordings",
                         "Recordings still staged (not in WORM storage) longer than EVIDENCE_STAGED_ALARM_S",
                         registry=registry)

    @app.get("/health", tags=["operations"])
    def health(session: DB) -> dict[str, Any]:
        """Liveness (200 while the catalogue answers) with the alarms a person must act on: `status` is `alarm`
        when recordings have waited in staging longer than EVIDENCE_STAGED_ALARM_S."""
        session.execute(text("SELECT 1"))
        alarm = staged_overdue(session, now=utcnow(), older_than_s=config.staged_alarm_s)
        return {"status": "alarm" if alarm.raised else "ok", "database": "ok", "store": config.store.name,
                "alarms": [alarm.as_json()] if alarm.raised else []}

    def operator(request: Request, session: Session) -> Response | None:
        """None when the caller may read operational data (/metrics, the API description): a signed-in user, or
        `Authorization: Bearer <EVIDENCE_METRICS_TOKEN>` when a token is configured; else a 401 naming both."""
        sent = request.headers.get("authorization", "")
        scheme, _, token = sent.partition(" ")
        if config.metrics_token and scheme.lower() == "bearer" and \
                secrets.compare_digest(token.strip().encode(), config.metrics_token.encode()):
            return None
        if caller(request, session) is not None:
            return None
        why = "a wrong bearer token" if sent else "no session and no bearer token"
        return JSONResponse({"error": f"sign in, or send Authorization: Bearer <EVIDENCE_METRICS_TOKEN> ({why})"},
                            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="evidence"'})

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi_description(request: Request, session: DB) -> Response:
        return operator(request, session) or JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request, session: DB) -> Response:
        if (refused := operator(request, session)) is not None:
            return refused
        nonce = secrets.token_urlsafe(16)
        page_ = get_swagger_ui_html(openapi_url="/api/openapi.json", title="evidence-ingest API",
                                    swagger_favicon_url="data:,")
        html = bytes(page_.body).decode().replace("<script>", f'<script nonce="{nonce}">')
        # Swagger UI is the only page with a script of its own (from its CDN); it alone gets this policy.
        return HTMLResponse(html, headers={"Content-Security-Policy": (
            f"default-src 'self'; script-src 'self' https://cdn.jsdelivr.net 'nonce-{nonce}'; "
            "style-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'")})

    # Archive-wide figures from the catalogue (each station's own endpoint has the same per station, with
    # station="..." and without the `catalogue_` part of the name).
    outbox_gauge = Gauge("evidence_catalogue_outbox_pending_messages",
                         "Outbox messages of every station not yet handed to the broker", registry=registry)
    outbox_age_gauge = Gauge("evidence_catalogue_outbox_oldest_age_seconds",
                             "Age of the oldest unsent outbox message (0: none)", registry=registry)
    staged_count_gauge = Gauge("evidence_catalogue_staged_recordings",
                               "Recordings still staged (not in WORM storage), all stations", registry=registry)
    staged_age_gauge = Gauge("evidence_catalogue_staged_oldest_age_seconds",
                             "Age of the oldest staged recording, all stations (0: none)", registry=registry)
    failures_gauge = Gauge("evidence_catalogue_ingest_failures_24h",
                           "ingest_failed custody events in the last 24 hours, by stage", ["stage"], registry=registry)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics(request: Request, session: DB) -> Response:
        """Prometheus metrics, for a signed-in user or a scraper sending `Authorization: Bearer
        <EVIDENCE_METRICS_TOKEN>`. Every gauge is set afresh at each scrape: a state no recording is in any more
        reads 0 (it kept its last count before), a failure stage with none left in the last 24 hours disappears."""
        if (refused := operator(request, session)) is not None:
            return refused
        now = utcnow()
        counts: dict[str, int] = {str(state): int(n) for state, n in session.execute(
            select(Recording.state, func.count()).group_by(Recording.state))}
        for state in {s.value for s in RecordingState} | set(counts):
            recordings_gauge.labels(state).set(counts.get(state, 0))
        staged_gauge.set(staged_overdue(session, now=now, older_than_s=config.staged_alarm_s).count)
        waiting = catalog_outbox.backlog(session)
        outbox_gauge.set(waiting.count)
        outbox_age_gauge.set(waiting.age_s(now))
        staged, oldest = session.execute(select(func.count(), func.min(Recording.ingested_at)).where(
            Recording.state == RecordingState.STAGED.value)).one()
        staged_count_gauge.set(int(staged or 0))
        staged_age_gauge.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        failures_gauge.clear()
        for stage, n in failures_by_stage(session, since=now - timedelta(hours=24)).items():
            failures_gauge.labels(stage).set(n)
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
            signed = sign_in(session, name, password, now=utcnow(),
                             source=request.client.host if request.client else "",
                             device_cookie=request.cookies.get(DEVICE_COOKIE))
        except SignInRefused as exc:
            message = _("Too many failed sign-ins; try again later.") if exc.locked_until else \
                _("Wrong user name or password.")
            return page(request, "login.html", lang, 401, csrf=expected, user=None, error=message)
        token, _row = start_session(session, signed.user, now=utcnow(), ttl=config.session_ttl)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies,
                            max_age=int(config.session_ttl.total_seconds()))
        # This browser has signed in as this name: others' failed guesses will not slow it (catalog.users.sign_in).
        # Only the sign-in form needs it; it stays after signing out.
        response.set_cookie(DEVICE_COOKIE, signed.device_cookie, path="/login", httponly=True, samesite="strict",
                            secure=config.secure_cookies, max_age=int(DEVICE_TTL.total_seconds()))
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

    def answer(request: Request, status: int, detail: Any) -> Response:
        """JSON for the API and media; a page (in the reader's language) for a browser."""
        browser = "text/html" in request.headers.get("accept", "") and \
            not request.url.path.startswith(("/api/", "/media/"))
        if not browser:
            return JSONResponse({"error": detail}, status_code=status)
        with Session(config.engine) as session:
            who = caller(request, session)
            return page(request, "message.html", language(request), status,
                        user=who.user if who else None, csrf=who.web_session.csrf_token if who else "",
                        message=detail if isinstance(detail, str) else "; ".join(map(str, detail)))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        return answer(request, exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """A missing or malformed field: name each one (a form sent with a blank required box, a path id that is
        not a number)."""
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                    for e in exc.errors()]
        return answer(request, 422, problems)

    return app
