"""The web application: server-rendered pages (Jinja2) and a JSON API under /api (FastAPI).

Every check is on the server: a request carries a session cookie (a random
token; the catalogue keeps only its hash), forms and API writes carry the
session's CSRF token, and each route names the action its role must allow.
Every view of a recording is a custody event with the user.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DataError
from sqlmodel import Session

from catalog.said import Said, listed, say
from catalog.sign_in import prepare_sign_in
from evidence.web.admin import router as admin_router
from evidence.web.audit import router as audit_router
from evidence.web.bulk import router as bulk_router
from evidence.web.cases import router as cases_router
from evidence.web.checklist import router as checklist_router
from evidence.web.coverage import router as coverage_router
from evidence.web.deps import PageInstead, WebConfig, caller, language, render
from evidence.web.devices import router as devices_router
from evidence.web.nul_guard import NUL_REFUSED, NulGuard
from evidence.web.operations import Metrics
from evidence.web.operations import router as operations_router
from evidence.web.recordings import router as recordings_router
from evidence.web.redactions import router as redactions_router
from evidence.web.releases import router as releases_router
from evidence.web.retention import router as retention_router
from evidence.web.saved_searches import router as saved_searches_router
from evidence.web.search import router as search_router
from evidence.web.shares import router as shares_router
from evidence.web.signin import router as signin_router
from evidence.web.snapshots import router as snapshots_router
from evidence.web.spotchecks import router as spotchecks_router
from evidence.web.stats import router as stats_router
from ingest.settings_parsers import tile_url

__all__ = ["SECURITY_HEADERS", "WebConfig", "clock_duration", "create_app", "field_problem", "local_time",
           "security_headers", "tile_origin"]

def security_headers(map_tiles: str = "") -> dict[str, str]:
    """Sent with every response. No page has an inline script, event handler attribute, style element or style
    attribute, so scripts and styles may come only from this origin (static/, the vendored files included);
    images from it too, and from the map's tile server where one is configured (EVIDENCE_MAP_TILES). Pure."""
    return {
        "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                    f"img-src 'self' data:{tile_origin(map_tiles)}; media-src 'self'; "
                                    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }


def tile_origin(map_tiles: str) -> str:
    """The tile server's origin as a policy source (with a leading space), `{s}.` subdomains as `*.`; '' for none
    or tiles on this server. *map_tiles* is a checked EVIDENCE_MAP_TILES (ingest.settings_parsers.tile_url). Pure."""
    if not map_tiles.startswith(("http://", "https://")):
        return ""
    scheme, rest = map_tiles.split("://", 1)
    return f" {scheme}://" + rest.split("/", 1)[0].replace("{s}.", "*.")


#: The headers of a server without map tiles (security_headers).
SECURITY_HEADERS = security_headers()


def clock_duration(seconds: float | None) -> str:
    """A duration as a player shows it: `0:07`, `12:05`, `1:02:03`; '-' for none (a photo, a text record). Pure."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN or a negative length from a broken header
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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


#: Every router, in the order its routes are matched (and listed in the API description).
ROUTERS: tuple[APIRouter, ...] = (search_router, saved_searches_router, bulk_router, recordings_router,
                                  snapshots_router, redactions_router, releases_router, cases_router, retention_router,
                                  spotchecks_router, audit_router, stats_router, coverage_router, checklist_router,
                                  devices_router,
                                  admin_router, operations_router,
                                  signin_router, shares_router)


def create_app(config: WebConfig) -> FastAPI:
    # The API description and its browsable docs are routes of their own (operations: sign-in or the metrics token).
    app = FastAPI(title="evidence-ingest", version="1", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.config = config
    app.state.headers = security_headers(tile_url("EVIDENCE_MAP_TILES", config.map_tiles))  # checked again:
    # a WebConfig made in code (not from_settings) must not break the policy header either
    app.state.templates = _templates(config)
    app.state.metrics = Metrics.create()
    prepare_sign_in()  # the first unknown name must take as long as any other sign-in
    for router in ROUTERS:
        app.include_router(router)
    # the pages' own scripts (no inline script: SECURITY_HEADERS), shipped in the package
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_middleware(NulGuard)  # inside the hardening: its refusals carry the same headers
    app.middleware("http")(_count_and_harden)
    app.exception_handler(PageInstead)(_page_instead)
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(DataError)(_refused_by_the_database)
    return app


def _refused_by_the_database(request: Request, exc: DataError) -> Response:
    """A NUL character evidence.web.nul_guard could not see (a field of a large multipart upload) reached
    PostgreSQL, which refuses it in every text column: a 400 saying so, never a 500. Any other refusal of a value
    by the database is a fault of this application's: re-raised, a 500 that is logged."""
    if "NUL" not in str(exc.orig):
        raise exc
    return _answer(request, 400, f"the request {NUL_REFUSED}")


def _templates(config: WebConfig) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    templates.env.autoescape = True
    templates.env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    templates.env.filters["local"] = lambda value: local_time(value, config.zone)
    templates.env.filters["duration"] = clock_duration
    return templates


async def _count_and_harden(request: Request, call_next: Any) -> Response:
    """Count every answer by method and status, and send the security headers with each."""
    response: Response = await call_next(request)
    request.app.state.metrics.requests_total.labels(request.method, str(response.status_code)).inc()
    for name, value in request.app.state.headers.items():  # every page, file, API answer and error
        response.headers.setdefault(name, value)
    return response


def _answer(request: Request, status: int, detail: Any) -> Response:
    """JSON for the API and media; a page (in the reader's language) for a browser."""
    browser = "text/html" in request.headers.get("accept", "") and \
        not request.url.path.startswith(("/api/", "/media/"))
    if not browser:
        return JSONResponse({"error": detail}, status_code=status)
    with Session(request.app.state.config.engine) as session:
        who = caller(request, session)
        return render(request, "message.html", language(request), status,
                      user=who.user if who else None, csrf=who.web_session.csrf_token if who else "",
                      message=detail if isinstance(detail, str) else listed(detail, sep="; "))


def _page_instead(request: Request, exc: PageInstead) -> Response:
    """The sign-in redirect or the 403 page a route's signed_in check answered with."""
    return exc.response


def _http_error(request: Request, exc: HTTPException) -> Response:
    return _answer(request, exc.status_code, exc.detail)


def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """A missing or malformed field: name each one (a form sent with a blank required box, a path id that is
    not a number)."""
    return _answer(request, 422, [field_problem(e) for e in exc.errors()])


def field_problem(error: Mapping[str, Any]) -> Said:
    """One of FastAPI's (pydantic's) field errors in words a page can say in its reader's language: the common
    kinds said here, any other in pydantic's English. Pure."""
    field = ".".join(str(p) for p in error.get("loc", ())[1:]) or "request"
    kind, limits = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing":
        return say("{field}: required", field=field)
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return say("{field}: not a whole number", field=field)
    if kind in ("float_parsing", "float_type"):
        return say("{field}: not a number", field=field)
    if kind == "string_too_long" and "max_length" in limits:
        return say("{field}: at most {max} characters", field=field, max=limits["max_length"])
    if kind in ("greater_than_equal", "greater_than") and limits:
        return say("{field}: at least {min}", field=field, min=next(iter(limits.values())))
    if kind in ("less_than_equal", "less_than") and limits:
        return say("{field}: at most {max}", field=field, max=next(iter(limits.values())))
    return say("{field} is not valid: {problem}", field=field, problem=str(error.get("msg", "invalid")))
