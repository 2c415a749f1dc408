"""Signing in and out in the browser: the sign-in form (with a double-submit CSRF token, as there is no session
yet), the session cookie it sets, and signing out (which needs the session's form token, so no other site can
sign a user out).

The decisions (password, lockout, the browser's device cookie) are catalog.sign_in's; this module only carries
them between the form and the cookies.
"""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from catalog.errors import SignInRefused
from catalog.sign_in import DEVICE_COOKIE, DEVICE_TTL, end_session, sign_in, start_session
from catalog.types import utcnow
from evidence.web.deps import DB, PRE_CSRF_COOKIE, SESSION_COOKIE, WebConfig, caller, language, render
from evidence.web.i18n import gettext_for

__all__ = ["router"]

router = APIRouter()


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request) -> HTMLResponse:
    config: WebConfig = request.app.state.config
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", language(request), csrf=token, error=None, user=None)
    response.set_cookie(PRE_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies)
    return response


def _signed_in(config: WebConfig, token: str, device_cookie: str) -> Response:
    """Off to the search page with the new session's cookie (and this browser's device cookie)."""
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=config.secure_cookies,
                        max_age=int(config.session_ttl.total_seconds()))
    # This browser has signed in as this name: others' failed guesses will not slow it (catalog.sign_in.sign_in).
    # Only the sign-in form needs it; it stays after signing out.
    response.set_cookie(DEVICE_COOKIE, device_cookie, path="/login", httponly=True, samesite="strict",
                        secure=config.secure_cookies, max_age=int(DEVICE_TTL.total_seconds()))
    response.delete_cookie(PRE_CSRF_COOKIE)
    return response


@router.post("/login", include_in_schema=False)
def login(request: Request, session: DB, name: Annotated[str, Form()], password: Annotated[str, Form()],
          csrf: Annotated[str, Form()]) -> Response:
    config: WebConfig = request.app.state.config
    lang = language(request)
    _ = gettext_for(lang)
    expected = request.cookies.get(PRE_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(expected, csrf):
        return render(request, "login.html", lang, 403, csrf=expected or "", user=None,
                      error=_("The form expired; please try again."))
    try:
        signed = sign_in(session, name, password, now=utcnow(), source=request.client.host if request.client else "",
                         device_cookie=request.cookies.get(DEVICE_COOKIE))
    except SignInRefused as exc:
        message = _("Too many failed sign-ins; try again later.") if exc.locked_until else \
            _("Wrong user name or password.")
        return render(request, "login.html", lang, 401, csrf=expected, user=None, error=message)
    token, _row = start_session(session, signed.user, now=utcnow(), ttl=config.session_ttl)
    return _signed_in(config, token, signed.device_cookie)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, session: DB, csrf: Annotated[str, Form()]) -> Response:
    who = caller(request, session)
    if who is not None and not secrets.compare_digest(who.web_session.csrf_token, csrf):
        return JSONResponse({"error": "missing or wrong form token"}, status_code=403)  # a forged sign-out
    if who is not None:
        end_session(session, request.cookies[SESSION_COOKIE], actor=who.user.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
