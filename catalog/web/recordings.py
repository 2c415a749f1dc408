"""One recording in the browser: the page, its media (with HTTP range requests), and stamp edits with a reason.

Opening the page is a `viewed` custody event; starting playback or downloading the original is `accessed`
(with the stated reason); a stamp edit is a new revision with a freshly signed manifest.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlmodel import Session, col, select

from catalog.cases import cases_of
from catalog.custody import CustodyKind, append_event
from catalog.errors import RecordingNotFound, StampInvalid
from catalog.manifests import write_manifest
from catalog.models import CustodyEvent, DerivedMedia, Recording
from catalog.recordings import get_recording, recording_as_json
from catalog.stamps import restamp, stamp_history
from catalog.users import PERMISSIONS
from catalog.web.deps import DB, Caller, PlayCaller, ViewCaller, caller, language, render
from catalog.web.i18n import gettext_for
from storage import EvidenceStore, ObjectMissing

__all__ = ["parse_range", "router", "signed_in"]

router = APIRouter()
_CHUNK = 1024 * 1024


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range within *size*; None for no header. ValueError if the
    range cannot be satisfied. Pure."""
    if not header:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise ValueError(f"unsupported range {header!r}")
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(f"range {header!r} is outside 0-{size - 1}")
    return start, end


def _stream(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with fh:
        if start:
            if fh.seekable():
                fh.seek(start)
            else:  # a network stream: skip forward
                skip = start
                while skip:
                    skip -= len(fh.read(min(_CHUNK, skip)))
        left = length
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def _recording(session: Session, ref: str) -> Recording:
    try:
        return get_recording(session, ref)
    except RecordingNotFound as exc:
        raise HTTPException(404, str(exc)) from None


def _serve(request: Request, opener: Any, size: int, content_type: str) -> Response:
    try:
        wanted = parse_range(request.headers.get("range"), size)
    except ValueError as exc:
        return Response(str(exc), status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = wanted if wanted else (0, size - 1)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
    if wanted:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(_stream(opener(), start, end - start + 1), status_code=206 if wanted else 200,
                             headers=headers, media_type=content_type)


@router.get("/media/{ref}/thumbnail", include_in_schema=False)
def thumbnail(ref: str, session: DB, who: ViewCaller, request: Request) -> Response:
    recording = _recording(session, ref)
    store: EvidenceStore = request.app.state.config.store
    try:
        with store.open_derived(recording.sha256, "thumbnail.jpg") as fh:
            data = fh.read()
    except ObjectMissing:
        raise HTTPException(404, "no thumbnail (yet)") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/media/{ref}/proxy.mp4", tags=["media"])
def proxy(ref: str, session: DB, who: PlayCaller, request: Request, reason: str | None = None) -> Response:
    """The browser proxy (never the evidence), with HTTP range requests. Starting playback is an access."""
    recording = _recording(session, ref)
    derived = session.exec(select(DerivedMedia).where(DerivedMedia.recording_id == recording.id,
                                                      DerivedMedia.kind == "proxy")).first()
    if derived is None:
        raise HTTPException(404, "no browser proxy for this recording (yet)")
    range_header = request.headers.get("range", "")
    if not range_header or range_header.startswith("bytes=0-"):
        append_event(session, CustodyKind.ACCESSED, actor=who.user.name, recording_id=recording.id,
                     details={"via": "web play", "what": "browser proxy", "reason": reason})
        session.commit()
    store: EvidenceStore = request.app.state.config.store
    return _serve(request, lambda: store.open_derived(recording.sha256, "proxy.mp4"), derived.size_bytes,
                  "video/mp4")


@router.get("/media/{ref}/original", tags=["media"])
def original(ref: str, session: DB, who: PlayCaller, request: Request, reason: str = "") -> Response:
    """The original bytes from WORM storage (a download needs a stated reason; it is an access)."""
    if not reason.strip():
        raise HTTPException(422, "state the reason for retrieving the original (调阅事由): ?reason=…")
    recording = _recording(session, ref)
    append_event(session, CustodyKind.ACCESSED, actor=who.user.name, recording_id=recording.id,
                 details={"via": "web download", "what": "original", "reason": reason})
    session.commit()
    store: EvidenceStore = request.app.state.config.store
    content_type = {"video": "video/mp4", "audio": "audio/mpeg", "photo": "image/jpeg"}.get(recording.media_kind,
                                                                                         "application/octet-stream")
    response = _serve(request, lambda: store.open(recording.sha256), recording.size_bytes, content_type)
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(recording.original_name)}"
    return response


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _page_data(session: Session, recording: Recording) -> dict[str, Any]:
    assert recording.id is not None
    data = recording_as_json(recording)
    data["history"] = [{"revision": h.revision, "changed_by": h.changed_by, "reason": h.reason,
                        "changed_at": h.changed_at.isoformat()[:19] if h.changed_at else "", "changes": h.changes}
                       for h in stamp_history(session, recording.id)]
    data["cases"] = [{"number": c.number, "title": c.title, "status": c.status, "purpose": link.purpose}
                     for c, link in cases_of(session, recording.id)]
    data["custody"] = [{"id": e.id, "kind": e.kind, "actor": e.actor, "at": e.at.isoformat()[:19] if e.at else ""}
                       for e in session.exec(select(CustodyEvent).where(CustodyEvent.recording_id == recording.id)
                                             .order_by(col(CustodyEvent.id)))]
    data["has_proxy"] = session.exec(select(DerivedMedia.id).where(DerivedMedia.recording_id == recording.id,
                                                                   DerivedMedia.kind == "proxy")).first() is not None
    return data


def signed_in(request: Request, session: Session, action: str) -> Caller | Response:
    who = caller(request, session)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    if not PERMISSIONS[action] & set(who.user.roles):
        lang = language(request)
        return render(request, "message.html", lang, 403, user=who.user, csrf=who.web_session.csrf_token,
                      message=gettext_for(lang)("Your role does not allow this."))
    return who


@router.get("/recordings/{ref}", response_class=HTMLResponse, include_in_schema=False)
def recording_page(ref: str, request: Request, session: DB, reason: str | None = None) -> Response:
    who = signed_in(request, session, "view")
    if not isinstance(who, Caller):
        return who
    recording = _recording(session, ref)
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, recording_id=recording.id,
                 details={"via": "web page", "reason": reason})
    session.commit()
    lang = language(request)
    return render(request, "recording.html", lang, user=who.user, csrf=who.web_session.csrf_token,
                  r=_page_data(session, recording), can_play=bool(PERMISSIONS["play"] & set(who.user.roles)),
                  can_stamp=bool(PERMISSIONS["stamp"] & set(who.user.roles)), error=None)


@router.post("/recordings/{ref}/stamp", include_in_schema=False)
def stamp(ref: str, request: Request, session: DB, csrf: Annotated[str, Form()], reason: Annotated[str, Form()],
          case_number: Annotated[str, Form()] = "", purpose: Annotated[str, Form()] = "",
          important: Annotated[str, Form()] = "") -> Response:
    """Change the stamp as a new revision (who, when, why); the new revision's manifest is signed and stored."""
    who = signed_in(request, session, "stamp")
    if not isinstance(who, Caller):
        return who
    lang = language(request)
    recording = _recording(session, ref)
    if csrf != who.web_session.csrf_token:
        raise HTTPException(403, "missing or wrong form token")
    config = request.app.state.config
    changes: dict[str, Any] = {"case_number": case_number.strip() or None, "purpose": purpose.strip() or None,
                               "important": important == "on"}
    changes = {k: v for k, v in changes.items() if getattr(recording, k) != v}
    try:
        restamp(session, recording, by=who.user.name, reason=reason, case_pattern=config.case_pattern, **changes)
        session.commit()
        if recording.state in ("archived", "verified") and config.key is not None:
            write_manifest(session, config.store, recording, config.key, actor=who.user.name)
            session.commit()
    except StampInvalid as exc:
        session.rollback()
        return render(request, "recording.html", lang, 400, user=who.user, csrf=who.web_session.csrf_token,
                      r=_page_data(session, recording), can_play=bool(PERMISSIONS["play"] & set(who.user.roles)),
                      can_stamp=True, error=str(exc))
    return RedirectResponse(f"/recordings/{recording.id}", status_code=303)
