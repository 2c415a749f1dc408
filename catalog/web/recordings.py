"""One recording in the browser: the page, its media (with HTTP range requests), and stamp edits with a reason.

Opening the page is a `viewed` custody event; starting playback or downloading the original is `accessed`
(with the stated reason); a stamp edit is a new revision with a freshly signed manifest.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlmodel import Session, select

from catalog.access import can_see
from catalog.custody import CustodyKind, append_event
from catalog.detail import recording_detail
from catalog.errors import RecordingNotFound, StampInvalid
from catalog.models import DerivedMedia, Recording
from catalog.recordings import get_recording
from catalog.restamping import change_stamp, lifts_a_hold
from catalog.web.deps import ACCESS_STEPS, DB, Caller, PlayCaller, ViewCaller, language, render, signed_in
from storage import BackendUnavailable, EvidenceStore, ObjectMissing

__all__ = ["parse_range", "reason_needed", "router", "visible_recording"]

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


def _stream(fh: BinaryIO, length: int) -> Iterator[bytes]:
    """*length* bytes from a file already opened at the range's start (the store fetched only those)."""
    with fh:
        left = length
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def visible_recording(session: Session, ref: str, who: Caller, action: str) -> Recording:
    """The recording *ref* if it is in the caller's scope: 404 if there is none, 403 (recorded in the custody
    log as a refused access) if it belongs to someone the caller may not see."""
    try:
        recording = get_recording(session, ref)
    except RecordingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    assert recording.id is not None
    scope = who.scope
    if not can_see(session, scope, recording.id):
        append_event(session, CustodyKind.ACCESS_REFUSED, actor=who.user.name, recording_id=recording.id,
                     details={"action": action, "scope": scope.describe()})
        session.commit()
        raise HTTPException(403, f"recording {recording.id} is outside what {who.user.name} may {action} "
                                 f"({scope.describe()})")
    return recording


def reason_needed(request: Request, step: str) -> bool:
    """Whether the agency's policy (EVIDENCE_ACCESS_REASON) asks for a stated reason at *step*
    (view < play < download: a policy naming an earlier step asks at every later one too)."""
    policy: str = request.app.state.config.access_reason
    return ACCESS_STEPS.index(step) >= ACCESS_STEPS.index(policy)


def _serve(request: Request, opener: Callable[[int], BinaryIO], size: int, content_type: str,
           opened: Callable[[], None] = lambda: None) -> Response:
    """The bytes (or the asked range) of what *opener* opens at a given offset; *opened* runs once the store
    has handed them over (so a failed read is never logged as an access)."""
    try:
        wanted = parse_range(request.headers.get("range"), size)
    except ValueError as exc:
        return Response(str(exc), status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = wanted if wanted else (0, size - 1)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
    if wanted:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    try:
        body = opener(start)
    except ObjectMissing as exc:
        raise HTTPException(404, f"{exc}: the catalogue lists it but the store does not have it; tell the archive "
                                 "administrator (`evidence verify` reports every such object)") from None
    except BackendUnavailable as exc:
        raise HTTPException(503, f"the evidence store cannot be reached now: {exc}") from None
    opened()
    return StreamingResponse(_stream(body, end - start + 1), status_code=206 if wanted else 200,
                             headers=headers, media_type=content_type)


def _access(request: Request, session: Session, who: Caller, recording: Recording, *, via: str, what: str,
            reason: str | None, step: str) -> Callable[[], None]:
    """What records the start of a playback or download once the bytes are there (a follow-up range request of
    the same playback is not a new access); 422 at once when policy asks for a reason and none was given."""
    if reason_needed(request, step) and not (reason or "").strip():
        raise HTTPException(422, f"state the reason for this access (调阅事由): add ?reason=… to {request.url.path}")
    range_header = request.headers.get("range", "")

    def record() -> None:
        if not range_header or range_header.startswith("bytes=0-"):
            append_event(session, CustodyKind.ACCESSED, actor=who.user.name, recording_id=recording.id,
                         details={"via": via, "what": what, "reason": reason})
            session.commit()
    return record


@router.get("/media/{ref}/thumbnail", include_in_schema=False)
def thumbnail(ref: str, session: DB, who: ViewCaller, request: Request) -> Response:
    recording = visible_recording(session, ref, who, "view")
    store: EvidenceStore = request.app.state.config.store
    try:
        with store.open_derived(recording.sha256, "thumbnail.jpg") as fh:
            data = fh.read()
    except ObjectMissing:
        raise HTTPException(404, "no thumbnail (yet)") from None
    except BackendUnavailable as exc:
        raise HTTPException(503, f"the evidence store cannot be reached now: {exc}") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/media/{ref}/proxy", tags=["media"])
@router.get("/media/{ref}/proxy.mp4", include_in_schema=False)
def proxy(ref: str, session: DB, who: PlayCaller, request: Request, reason: str | None = None) -> Response:
    """The browser proxy of a video or audio recording (never the evidence), with HTTP range requests.
    Starting playback is an access, with the stated reason."""
    recording = visible_recording(session, ref, who, "play")
    derived = session.exec(select(DerivedMedia).where(DerivedMedia.recording_id == recording.id,
                                                      DerivedMedia.kind == "proxy")).first()
    if derived is None:
        raise HTTPException(404, f"no browser proxy for recording {recording.id} (yet): the derive worker makes one "
                                 "after archiving")
    record = _access(request, session, who, recording, via="web play", what="browser proxy", reason=reason,
                     step="play")
    store: EvidenceStore = request.app.state.config.store
    name = derived.key.rsplit("/", 1)[-1]
    return _serve(request, lambda start: store.open_derived(recording.sha256, name, start=start), derived.size_bytes,
                  derived.content_type, record)


@router.get("/media/{ref}/photo", tags=["media"])
def photo(ref: str, session: DB, who: PlayCaller, request: Request, reason: str | None = None) -> Response:
    """A photo's original bytes shown in the browser (viewing the photo is an access, like playback)."""
    recording = visible_recording(session, ref, who, "play")
    if recording.media_kind != "photo":
        raise HTTPException(404, f"recording {recording.id} is a {recording.media_kind}, not a photo")
    record = _access(request, session, who, recording, via="web view", what="photo", reason=reason, step="play")
    store: EvidenceStore = request.app.state.config.store
    response = _serve(request, lambda start: store.open(recording.sha256, start=start), recording.size_bytes,
                      "image/jpeg", record)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@router.get("/media/{ref}/original", tags=["media"])
def original(ref: str, session: DB, who: PlayCaller, request: Request, reason: str = "") -> Response:
    """The original bytes from WORM storage (a download needs a stated reason; it is an access)."""
    if not reason.strip():
        raise HTTPException(422, "state the reason for retrieving the original (调阅事由): ?reason=…")
    recording = visible_recording(session, ref, who, "download")
    record = _access(request, session, who, recording, via="web download", what="original", reason=reason,
                     step="download")
    store: EvidenceStore = request.app.state.config.store
    content_type = {"video": "video/mp4", "audio": "audio/mpeg", "photo": "image/jpeg"}.get(recording.media_kind,
                                                                                         "application/octet-stream")
    response = _serve(request, lambda start: store.open(recording.sha256, start=start), recording.size_bytes,
                      content_type, record)
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(recording.original_name, safe='')}"
    return response


def _page_data(request: Request, session: Session, recording: Recording) -> dict[str, Any]:
    data = recording_detail(session, recording, request.app.state.config.policy)
    data["has_proxy"] = "proxy" in data["derived"]
    data["raw_technical"] = recording.technical
    return data


def _render_page(request: Request, session: Session, who: Caller, recording: Recording, *, reason: str | None,
                 status: int = 200, error: str | None = None) -> Response:
    return render(request, "recording.html", language(request), status, user=who.user, csrf=who.web_session.csrf_token,
                  r=_page_data(request, session, recording), can_play=who.may("play"), can_stamp=who.may("stamp"),
                  can_link=who.may("manage_cases"), reason=reason or "",
                  play_needs_reason=reason_needed(request, "play") and not (reason or "").strip(), error=error)


@router.get("/recordings/{ref}", response_class=HTMLResponse, include_in_schema=False)
def recording_page(ref: str, request: Request, session: DB, reason: str | None = None) -> Response:
    """Opening the page is a `viewed` custody event (with the reason, when policy asks for one first)."""
    who = signed_in(request, session, "view")
    if not isinstance(who, Caller):
        return who
    recording = visible_recording(session, ref, who, "view")
    if reason_needed(request, "view") and not (reason or "").strip():
        return render(request, "reason.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                      action=f"/recordings/{recording.id}", title=recording.original_name)
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, recording_id=recording.id,
                 details={"via": "web page", "reason": reason})
    session.commit()
    return _render_page(request, session, who, recording, reason=reason)


@router.post("/recordings/{ref}/stamp", include_in_schema=False)
def stamp(ref: str, request: Request, session: DB, csrf: Annotated[str, Form()], reason: Annotated[str, Form()],
          case_number: Annotated[str, Form()] = "", purpose: Annotated[str, Form()] = "",
          important: Annotated[str, Form()] = "") -> Response:
    """Change the stamp as a new revision (who, when, why); the new revision's manifest is signed and stored.
    An officer tags only their own recordings (their scope)."""
    who = signed_in(request, session, "stamp", csrf)
    if not isinstance(who, Caller):
        return who
    recording = visible_recording(session, ref, who, "stamp")
    config = request.app.state.config
    changes: dict[str, Any] = {"case_number": case_number.strip() or None, "purpose": purpose.strip() or None,
                               "important": important == "on"}
    changes = {k: v for k, v in changes.items() if getattr(recording, k) != v}
    lifted = lifts_a_hold(recording, changes)
    if lifted and not who.may("manage_cases"):
        return _render_page(request, session, who, recording, reason=None, status=403,
                            error=f"this change {' and '.join(lifted)}, which lifts the recording's hold: a clerk "
                                  "decides that")
    try:
        change_stamp(session, config.store, recording, by=who.user.name, reason=reason,
                     case_pattern=config.case_pattern, policy=config.policy, key=config.key, **changes)
    except StampInvalid as exc:
        session.rollback()
        return _render_page(request, session, who, recording, reason=None, status=400, error=str(exc))
    return RedirectResponse(f"/recordings/{recording.id}", status_code=303)


@router.get("/api/recordings/{ref}", tags=["recordings"])
def api_recording(ref: str, request: Request, session: DB, who: ViewCaller,
                  reason: str | None = None) -> dict[str, Any]:
    """One recording with its stamp history and linked cases; the view is a custody event naming the user
    (and the stated reason)."""
    recording = visible_recording(session, ref, who, "view")
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, recording_id=recording.id,
                 details={"via": "api", "reason": reason})
    session.commit()
    data = _page_data(request, session, recording)
    data.pop("raw_technical")
    return data
