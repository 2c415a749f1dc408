"""Share links in the browser, for a recipient without an account (catalog.shares): the link asks for the one-time
code, then lists the release's items and serves each (HTTP ranges), every download recorded. No sign-in: the link's
token and the browser-session cookie set when the code was used are the only keys, and they open this release and
nothing else (the cookie is limited to the link's own path)."""
from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from catalog.shares import NEED_CODE, ShareRefused, counts_as_download, open_share, record_download, shared_item
from catalog.types import utcnow
from evidence.web.deps import DB, WebConfig, language, render
from evidence.web.i18n import gettext_for
from evidence.web.ranges import RangeResponse, parse_range
from storage import BackendUnavailable, EvidenceStore, ObjectMissing

__all__ = ["SHARE_COOKIE", "router"]

router = APIRouter()
SHARE_COOKIE = "evidence_share"
#: The code form's double-submit token (its own name: the sign-in form's, at path /, would shadow it)
SHARE_CSRF_COOKIE = "evidence_share_csrf"
_TYPES = {"video": "video/mp4", "audio": "audio/mp4", "photo": "image/jpeg"}


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _page(request: Request, token: str, status: int = 200, *, error: str | None = None,
          items: list[dict[str, Any]] | None = None, csrf: str = "", release: object = None) -> HTMLResponse:
    return render(request, "share.html", language(request), status, user=None, csrf=csrf, token=token, error=error,
                  items=items, release=release)


def _refusal(request: Request, token: str, exc: ShareRefused, status: int = 403) -> HTMLResponse:
    return _page(request, token, status, error=exc.public)  # said in the reader's language (deps.render)


@router.get("/share/{token}", response_class=HTMLResponse, include_in_schema=False)
def share_page(token: str, request: Request, session: DB) -> Response:
    """The code form, or the items once this browser used the code."""
    try:
        link, release, recordings = shared_item(session, token, request.cookies.get(SHARE_COOKIE), None,
                                                now=utcnow())
    except ShareRefused as exc:
        if exc.public.message != NEED_CODE.message:
            return _refusal(request, token, exc, 404 if exc.public.message == "this link is not valid" else 410)
        form = secrets.token_urlsafe(24)
        response = _page(request, token, csrf=form)
        response.set_cookie(SHARE_CSRF_COOKIE, form, httponly=True, samesite="strict",
                            secure=request.app.state.config.secure_cookies, path=f"/share/{token}")
        return response
    items = [{"id": r.id, "n": n, "media_kind": r.media_kind, "size_bytes": r.size_bytes, "sha256": r.sha256,
              "duration_s": r.duration_s} for n, r in enumerate(recordings, 1)]
    return _page(request, token, items=items, release={"id": release.id, "kind": release.kind,
                                                       "title": release.title, "recipient": link.recipient,
                                                       "expires_at": link.expires_at})


@router.post("/share/{token}", include_in_schema=False)
def use_code(token: str, request: Request, session: DB, code: Annotated[str, Form(max_length=64)],
             csrf: Annotated[str, Form()]) -> Response:
    """The one-time code: right, this browser gets the link's session cookie; wrong, counted (and recorded)."""
    config: WebConfig = request.app.state.config
    expected = request.cookies.get(SHARE_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(expected, csrf):
        return _page(request, token, 403, csrf=expected or "",
                     error=gettext_for(language(request))("The form expired; please try again."))
    try:
        _link, secret = open_share(session, token, code, now=utcnow(), client=_client(request))
    except ShareRefused as exc:
        return _page(request, token, 403, csrf=expected, error=exc.public)
    response = RedirectResponse(f"/share/{token}", status_code=303)
    response.set_cookie(SHARE_COOKIE, secret, httponly=True, samesite="strict", secure=config.secure_cookies,
                        path=f"/share/{token}")
    response.delete_cookie(SHARE_CSRF_COOKIE, path=f"/share/{token}")
    return response


@router.get("/share/{token}/items/{recording_id}", include_in_schema=False)
def download(token: str, recording_id: int, request: Request, session: DB) -> Response:
    """One item's bytes (HTTP ranges). A download is recorded when it starts at the first byte, or when no download
    of the item through this link was recorded in the last hour (catalog.shares.counts_as_download)."""
    try:
        link, _release, recordings = shared_item(session, token, request.cookies.get(SHARE_COOKIE), recording_id,
                                                 now=utcnow())
    except ShareRefused as exc:
        return _refusal(request, token, exc)
    recording = recordings[0]
    try:
        wanted = parse_range(request.headers.get("range"), recording.size_bytes)
    except ValueError as exc:
        return Response(str(exc), status_code=416, headers={"Content-Range": f"bytes */{recording.size_bytes}"})
    start, end = wanted if wanted else (0, recording.size_bytes - 1)
    store: EvidenceStore = request.app.state.config.store
    try:
        body = store.open(recording.sha256, start=start)
    except ObjectMissing:
        return Response("the item is missing from the archive; tell the sender", status_code=404)
    except BackendUnavailable:
        return Response("the archive cannot be reached now; try again later", status_code=503)
    response = RangeResponse(body, wanted, recording.size_bytes,
                             media_type=_TYPES.get(recording.media_kind, "application/octet-stream"),
                             headers={"Cache-Control": "private, no-store",
                                      "Content-Disposition": "attachment; filename*=UTF-8''"
                                                             + quote(f"release-{link.release_id}-item-{recording.id}",
                                                                     safe="")})
    if counts_as_download(session, link, recording, start, now=utcnow()):
        record_download(session, link, recording, client=_client(request),
                        span=f"{start}-{end} of {recording.size_bytes}")
    return response
