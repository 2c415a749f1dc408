"""One recording in the browser: the page, its media (with HTTP range requests), and stamp edits with a reason.

Opening the page is a `viewed` custody event; the web session's first request for a recording's proxy, photo
or original is `accessed` (with the stated reason) whatever its Range header, and its follow-ups are not
(catalog.access.read_evidence); the player fetches nothing before the user presses play. A stamp edit is a new
revision with a freshly signed manifest.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from catalog.access import (
    AccessRefused,
    ReasonRequired,
    check_access,
    out_of_scope,
    read_evidence,
    record_refusals,
    stated_reason,
)
from catalog.access import reason_needed as access_reason_needed
from catalog.classification import classify_recordings
from catalog.custody import CustodyKind, append_event
from catalog.detail import derived_media, frame_rate, recording_detail
from catalog.errors import CaseStateError, PermissionDenied, RecordingNotFound, StampInvalid
from catalog.models import Recording
from catalog.recordings import get_recording
from catalog.redaction_jobs import job_as_json, jobs_of
from catalog.restamping import HoldLiftRefused, change_stamp
from catalog.said import say
from catalog.sensitivity import step_word
from evidence.web.deps import DB, Caller, PlayCaller, ViewCaller, class_word, done, language, render, signed_in
from evidence.web.ranges import RangeResponse, parse_range
from ingest.redaction.derivative import REDACTABLE
from storage import BackendUnavailable, EvidenceStore, ObjectMissing

__all__ = ["reason_needed", "render_recording", "router", "visible_recording"]

router = APIRouter()


def visible_recording(session: Session, ref: str, who: Caller, action: str) -> Recording:
    """The recording *ref* if it is in the caller's scope: 404 if there is none, 403 (recorded in the custody
    log as a refused access) if it belongs to someone the caller may not see."""
    recording = _find(session, ref)
    assert recording.id is not None
    scope = who.scope
    if out_of_scope(session, scope, [recording.id]):
        record_refusals(session, who.user.name, [recording.id], action=action, why="scope",
                        details={"scope": str(scope.describe())})
        raise HTTPException(403, say("{recordings} is outside what {person} may {action} ({scope})",
                                     recordings=say("recording {recording}", recording=recording.id),
                                     person=who.user.name, action=step_word(action), scope=scope.describe()))
    return recording


def _find(session: Session, ref: str) -> Recording:
    try:
        return get_recording(session, ref)
    except RecordingNotFound as exc:
        raise HTTPException(404, str(exc)) from None


def reason_needed(request: Request, step: str) -> bool:
    """Whether the agency's policy (EVIDENCE_ACCESS_REASON) asks for a stated reason at *step*
    (view < play < download: a policy naming an earlier step asks at every later one too)."""
    return access_reason_needed(request.app.state.config.access_reason, step)


class _Unsatisfiable(Exception):
    """The Range header cannot be served (416); raised before the store is asked for anything."""


def _read(request: Request, session: Session, who: Caller, recording: Recording, *, step: str, what: str, via: str,
          reason: str | None, opener: Callable[[], BinaryIO], record: bool = True,
          missing: str | None = None) -> BinaryIO:
    """catalog.access.read_evidence for this web session (its first read of *what* is the recorded access),
    with its refusals as HTTP answers that name what and why."""
    try:
        return read_evidence(session, user=who.user, recording=recording, step=step, what=what, via=via,
                             reason=reason, policy=request.app.state.config.access_reason,
                             viewing_session=who.web_session.token_sha256, opener=opener, record=record)
    except ReasonRequired as exc:
        raise HTTPException(422, say("{problem}: add ?reason=… to {path}", problem=str(exc),
                                     path=request.url.path)) from None
    except AccessRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except CaseStateError as exc:
        raise HTTPException(410, str(exc)) from None
    except ObjectMissing as exc:
        raise HTTPException(404, missing or say("{problem}: the catalogue lists it but the store does not have it; "
                                                "tell the archive administrator (`evidence verify` reports every such "
                                                "object)", problem=str(exc))) from None
    except BackendUnavailable as exc:
        raise HTTPException(503, say("the evidence store cannot be reached now: {problem}", problem=str(exc))) from None


def _serve(request: Request, session: Session, who: Caller, recording: Recording, *, step: str, what: str, via: str,
           reason: str | None, open_at: Callable[[int], BinaryIO], size: int, content_type: str) -> Response:
    """The bytes (or the asked range) of what *open_at* opens at a given offset, after the rights, scope and reason
    checks; the web session's first read of it is recorded, whatever range it asks for."""
    header = request.headers.get("range")
    span: list[tuple[int, int] | None] = []

    def opener() -> BinaryIO:
        try:
            wanted = parse_range(header, size)
        except ValueError as exc:
            raise _Unsatisfiable(str(exc)) from None
        span.append(wanted)
        return open_at(wanted[0] if wanted else 0)

    try:
        body = _read(request, session, who, recording, step=step, what=what, via=via, reason=reason, opener=opener)
    except _Unsatisfiable as exc:
        return Response(str(exc), status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return RangeResponse(body, span[0], size, media_type=content_type)


@router.get("/media/{ref}/thumbnail", include_in_schema=False)
def thumbnail(ref: str, session: DB, who: ViewCaller, request: Request, reason: str | None = None) -> Response:
    """A thumbnail is a view of the recording's content: the same scope, and the same reason where the policy
    asks for one before viewing (then the session's first look at it is recorded too)."""
    recording = _find(session, ref)
    store: EvidenceStore = request.app.state.config.store
    fh = _read(request, session, who, recording, step="view", what="thumbnail", via="web thumbnail", reason=reason,
               opener=lambda: store.open_derived(recording.sha256, "thumbnail.jpg"),
               record=reason_needed(request, "view"), missing=say("no thumbnail (yet)"))
    with fh:
        data = fh.read()
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/media/{ref}/proxy", tags=["media"])
@router.get("/media/{ref}/proxy.mp4", include_in_schema=False)
def proxy(ref: str, session: DB, who: PlayCaller, request: Request, reason: str | None = None) -> Response:
    """The browser proxy of a video or audio recording (never the evidence), with HTTP range requests.
    The session's first request for it is the recorded access (with the stated reason), whatever its range."""
    recording = _find(session, ref)
    assert recording.id is not None
    derived = derived_media(session, recording.id, "proxy")
    if derived is None:
        visible_recording(session, ref, who, "play")  # an out-of-scope caller learns nothing about proxies
        raise HTTPException(404, say("no browser proxy for recording {recording} (yet): the derive worker makes one "
                                     "after archiving", recording=recording.id))
    store: EvidenceStore = request.app.state.config.store
    name = derived.key.rsplit("/", 1)[-1]
    return _serve(request, session, who, recording, step="play", what="proxy", via="web play", reason=reason,
                  open_at=lambda start: store.open_derived(recording.sha256, name, start=start),
                  size=derived.size_bytes, content_type=derived.content_type)


@router.get("/media/{ref}/photo", tags=["media"])
def photo(ref: str, session: DB, who: PlayCaller, request: Request, reason: str | None = None) -> Response:
    """A photo's original bytes shown in the browser. Unlike a video's proxy, what the browser gets is the evidence
    itself, one click from saved: so it is a download (a stated reason always, the `accessed` event), shown in
    place; the thumbnail is the preview without one (a review found the original served with no reason)."""
    recording = visible_recording(session, ref, who, "play")
    if recording.media_kind != "photo":
        raise HTTPException(404, say("recording {recording} is a {kind}, not a photo", recording=recording.id,
                                     kind=say(recording.media_kind)))
    store: EvidenceStore = request.app.state.config.store
    response = _serve(request, session, who, recording, step="download", what="photo", via="web view",
                      reason=reason, open_at=lambda start: store.open(recording.sha256, start=start),
                      size=recording.size_bytes, content_type="image/jpeg")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@router.get("/media/{ref}/original", tags=["media"])
def original(ref: str, session: DB, who: PlayCaller, request: Request, reason: str = "") -> Response:
    """The original bytes from WORM storage (a download always needs a stated reason; it is an access)."""
    recording = _find(session, ref)
    store: EvidenceStore = request.app.state.config.store
    content_type = {"video": "video/mp4", "audio": "audio/mpeg", "photo": "image/jpeg"}.get(recording.media_kind,
                                                                                         "application/octet-stream")
    response = _serve(request, session, who, recording, step="download", what="original", via="web download",
                      reason=reason, open_at=lambda start: store.open(recording.sha256, start=start),
                      size=recording.size_bytes, content_type=content_type)
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(recording.original_name, safe='')}"
    return response


def _page_data(request: Request, session: Session, recording: Recording, who: Caller) -> dict[str, Any]:
    """The page shows the API's detail and, besides, the probe's raw technical record."""
    return {**recording_detail(session, recording, request.app.state.config.policy, reader=_reader(who),
                               reads_cases=who.may("cases")),
            "raw_technical": recording.technical}


def _reader(who: Caller) -> str | None:
    """Who reads a recording's detail, unless they may read the audit log (catalog.detail.recording_detail)."""
    return None if who.may("audit") else who.user.name


def render_recording(request: Request, session: Session, who: Caller, recording: Recording, *, reason: str | None,
                 status: int = 200, error: str | None = None) -> Response:
    stated = _stated(reason)
    return render(request, "recording.html", language(request), status, user=who.user, csrf=who.web_session.csrf_token,
                  r=_page_data(request, session, recording, who), can_play=who.may("play"), can_stamp=who.may("stamp"),
                  can_link=who.may("manage_cases"), can_classify=who.may("classify"), reason=reason or "",
                  play_needs_reason=reason_needed(request, "play") and stated is None,
                  photo_needs_reason=stated is None, error=error, fps=frame_rate(recording.technical),
                  zone=request.app.state.config.zone,
                  **_redaction_context(session, who, recording.id or 0, recording.media_kind, recording.state))


def _redaction_context(session: Session, who: Caller, recording_id: int, media_kind: str,
                       state: str) -> dict[str, Any]:
    """What the recording page needs for its redaction section: whether the caller may ask, and the original's
    jobs (newest first)."""
    may = who.may("redact") and media_kind in REDACTABLE and state in ("archived", "verified")
    jobs = [job_as_json(j) for j in jobs_of(session, recording_id)] if may else []
    return {"can_redact": may, "redaction_jobs": jobs}


def _stated(reason: str | None) -> str | None:
    """catalog.access.stated_reason, a reason too long to keep as a 422 that says so."""
    try:
        return stated_reason(reason)
    except ReasonRequired as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/recordings/{ref}", response_class=HTMLResponse, include_in_schema=False)
def recording_page(ref: str, request: Request, session: DB, reason: str | None = None) -> Response:
    """Opening the page is a `viewed` custody event (with the reason, when policy asks for one first)."""
    who = signed_in(request, session, "view")
    recording = visible_recording(session, ref, who, "view")
    stated = _stated(reason)
    if stated is None and reason_needed(request, "view"):
        return render(request, "reason.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                      action=f"/recordings/{recording.id}", title=recording.original_name)
    _class_allows_view(request, session, who, recording, stated)
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, recording_id=recording.id,
                 details={"via": "web page", "reason": stated})
    session.commit()
    return render_recording(request, session, who, recording, reason=reason)


def _class_allows_view(request: Request, session: Session, who: Caller, recording: Recording,
                       stated: str | None) -> None:
    """The rest of catalog.access.check_access for a look at the entry (role and scope are checked already; this
    adds the sensitivity class: a state secret needs a grant on its case): 403 naming why, recorded."""
    try:
        check_access(session, who.user, [recording], step="view", reason=stated,
                     policy=request.app.state.config.access_reason)
    except AccessRefused as exc:
        raise HTTPException(403, str(exc)) from None


@router.post("/recordings/{ref}/class", include_in_schema=False)
def set_class(ref: str, request: Request, session: DB, csrf: Annotated[str, Form()], reason: Annotated[str, Form()],
              sensitivity: Annotated[str, Form()]) -> Response:
    """Change the recording's sensitivity class (catalog.classification.classify_recordings: a reason, and a
    supervisor or administrator to lower it); a custody event."""
    who = signed_in(request, session, "classify", csrf)
    recording = visible_recording(session, ref, who, "classify")
    try:
        classify_recordings(session, who.user, [recording], to=sensitivity, reason=reason)
    except PermissionDenied as exc:
        session.rollback()
        return render_recording(request, session, who, recording, reason=None, status=403, error=str(exc))
    except CaseStateError as exc:
        session.rollback()
        return render_recording(request, session, who, recording, reason=None, status=400, error=str(exc))
    session.commit()
    return done(request, who, RedirectResponse(f"/recordings/{recording.id}", status_code=303), "class_one",
                recording=str(recording.id), to=class_word(request, sensitivity))


@router.post("/recordings/{ref}/stamp", include_in_schema=False)
def stamp(ref: str, request: Request, session: DB, csrf: Annotated[str, Form()], reason: Annotated[str, Form()],
          case_number: Annotated[str, Form()] = "", purpose: Annotated[str, Form()] = "",
          important: Annotated[str, Form()] = "") -> Response:
    """Change the stamp as a new revision (who, when, why); the new revision's manifest is signed and stored.
    An officer tags only their own recordings (their scope)."""
    who = signed_in(request, session, "stamp", csrf)
    recording = visible_recording(session, ref, who, "stamp")
    config = request.app.state.config
    changes: dict[str, Any] = {"case_number": case_number.strip() or None, "purpose": purpose.strip() or None,
                               "important": important == "on"}
    changes = {k: v for k, v in changes.items() if getattr(recording, k) != v}
    try:  # taking away what holds it pending its case is a clerk's decision (change_stamp refuses it otherwise)
        made = change_stamp(session, config.store, recording, by=who.user.name, reason=reason,
                     case_pattern=config.case_pattern, policy=config.policy, key=config.key, roles=who.user.roles,
                     **changes)
    except HoldLiftRefused as exc:
        session.rollback()
        return render_recording(request, session, who, recording, reason=None, status=403, error=str(exc))
    except StampInvalid as exc:
        session.rollback()
        return render_recording(request, session, who, recording, reason=None, status=400, error=str(exc))
    return done(request, who, RedirectResponse(f"/recordings/{recording.id}", status_code=303), "stamped",
                revision=made.revision.revision)


@router.get("/api/recordings/{ref}", tags=["recordings"])
def api_recording(ref: str, request: Request, session: DB, who: ViewCaller,
                  reason: str | None = None) -> dict[str, Any]:
    """One recording with its stamp history and linked cases; the view is a custody event naming the user
    (and the stated reason)."""
    recording = visible_recording(session, ref, who, "view")
    stated = _stated(reason)
    if stated is None and reason_needed(request, "view"):
        raise HTTPException(422, say("state the reason for viewing recording {recording} (调阅事由): the agency's "
                                     "policy EVIDENCE_ACCESS_REASON=view asks for one; add ?reason=…",
                                     recording=recording.id))
    _class_allows_view(request, session, who, recording, stated)
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, recording_id=recording.id,
                 details={"via": "api", "reason": stated})
    session.commit()
    return recording_detail(session, recording, request.app.state.config.policy, reader=_reader(who),
                            reads_cases=who.may("cases"))
