"""Redaction in the browser (issue 18, part 2): ask for a redacted copy from a recording's page, follow the job's
progress, and review the copy beside its original (step frames together, draw a region on a frame, take one away)
and ask again, which makes a new version.

The request is `ingest.redaction.jobs.request_redaction`, the same checks as `evidence redact` (role `redact`, the
original's play rights, scope and class, a reason; each refusal recorded); the rendering is the derive queue's, or,
where no broker is configured (the embedded default), a renderer this server starts (`ingest.media_work`). The
review plays the original's browser copy and the redacted copy's own bytes (H.264/AAC MP4 or JPEG, made for
browsers), each through the recording's media route, so each read is checked and recorded there.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session

from catalog import redaction_jobs
from catalog.access import AccessRefused, ReasonRequired, check_access
from catalog.detail import derived_media, frame_rate
from catalog.errors import CaseStateError
from catalog.models import RedactionJob
from catalog.recordings import get_recording
from catalog.said import said_in, said_of, say, unkept
from evidence.web.deps import DB, Caller, api_caller, done, language, render, signed_in
from evidence.web.i18n import gettext_for
from evidence.web.recordings import visible_recording
from ingest.redaction.derivative import check_redaction_request
from ingest.redaction.faces import FaceSearch
from ingest.redaction.jobs import request_redaction
from ingest.redaction.spec import (
    RedactionInvalid,
    RedactionSpec,
    parse_box,
    parse_moving,
    parse_mute,
    parse_track,
)

__all__ = ["RedactionRequest", "router", "spec_of_form"]

logger = logging.getLogger(__name__)
router = APIRouter()

RedactCaller = Annotated[Caller, api_caller("redact")]


class RedactionRequest(BaseModel):
    """What a redaction hides, in `evidence redact`'s syntax: one region or range per string."""

    boxes: list[str] = Field(default_factory=list, max_length=10_000)
    moving: list[str] = Field(default_factory=list, max_length=1_000)
    tracks: list[str] = Field(default_factory=list, max_length=100)
    mutes: list[str] = Field(default_factory=list, max_length=1_000)
    bleeps: list[str] = Field(default_factory=list, max_length=1_000)
    faces: bool = False
    face_threshold: float | None = Field(default=None, ge=0.05, le=0.95)
    block: int = Field(default=16, ge=1, le=512)
    reason: str = ""


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def spec_of_form(request: RedactionRequest) -> tuple[RedactionSpec, FaceSearch | None]:
    """The specification and face search *request* asks for; RedactionInvalid naming every line that cannot be
    read. Pure."""
    problems: list[str] = []

    def each(texts: list[str], parse: Any) -> tuple[Any, ...]:
        parsed = []
        for text in texts:
            try:
                parsed.append(parse(text))
            except ValueError as exc:  # the parsers' reasons are catalog.said messages
                problems.append(said_of(exc))
        return tuple(parsed)

    spec = RedactionSpec(boxes=each(request.boxes, parse_box), moving=each(request.moving, parse_moving),
                         mutes=each(request.mutes, parse_mute), bleeps=each(request.bleeps, parse_mute),
                         tracks=each(request.tracks, parse_track), block=request.block)
    if problems:
        raise RedactionInvalid(problems)
    faces = None
    if request.faces:
        faces = FaceSearch(threshold=request.face_threshold) if request.face_threshold is not None else FaceSearch()
    return spec, faces


def _ask(request: Request, session: Session, who: Caller, ref: str, wanted: RedactionRequest,
         via: str) -> RedactionJob:
    """request_redaction for the caller, its refusals as HTTP answers that say why; a renderer started where no
    broker is configured."""
    original = visible_recording(session, ref, who, "redact")
    try:
        # rights first: a request the caller may not make is refused (and recorded) however it is written
        check_redaction_request(session, who.user, original, wanted.reason,
                                faces=FaceSearch() if wanted.faces else None)
        spec, faces = spec_of_form(wanted)
        job = request_redaction(session, user=who.user, original=original, spec=spec, faces=faces,
                                reason=wanted.reason, via=via)
    except ReasonRequired as exc:  # (an AccessRefused: first)
        raise HTTPException(422, str(exc)) from None
    except AccessRefused as exc:
        session.commit()  # the refusal is recorded
        raise HTTPException(403, str(exc)) from None
    except (RedactionInvalid, CaseStateError) as exc:
        session.rollback()
        raise HTTPException(400, say("recording {id} cannot be redacted as asked: {problem}", id=original.id,
                                     problem=str(exc))) from None
    _start_renderer(request)
    return job


def _start_renderer(request: Request) -> None:
    """Where no broker is configured (the embedded default) nothing else renders: start the installation's
    renderer, which does the job and exits (at once when another renderer is at work: that one does it)."""
    settings = request.app.state.config.settings
    if not request.app.state.config.renderer or settings is None:
        return
    from ingest.media_work import start_renderer

    try:
        pid = start_renderer(settings)
        logger.info("Started the renderer (process %d) for a redaction job.", pid)
    except OSError:  # the job waits in the catalogue for the next renderer
        logger.exception("Could not start the renderer for a redaction job; it waits for the next one.")


def _job(request: Request, session: Session, who: Caller, job_id: int, reason: str | None = None) -> RedactionJob:
    """The job if the caller may see its original's entry: in their scope, and its class allows them (a state
    secret needs a grant); each refusal recorded; 404 for no such job."""
    job = redaction_jobs.get_job(session, job_id)
    if job is None:
        raise HTTPException(404, say("no redaction job {job}", job=job_id))
    original = visible_recording(session, str(job.original_id), who, "redact")
    try:
        check_access(session, who.user, [original], step="view", reason=reason,
                     policy=request.app.state.config.access_reason, action="redact")
    except ReasonRequired as exc:
        raise HTTPException(422, say("{problem}: add ?reason=…", problem=str(exc))) from None
    except AccessRefused as exc:
        raise HTTPException(403, str(exc)) from None
    return job


@router.post("/recordings/{ref}/redactions", include_in_schema=False)
def ask_in_form(ref: str, request: Request, session: DB, csrf: Annotated[str, Form()],
                reason: Annotated[str, Form()] = "", boxes: Annotated[str, Form()] = "",
                moving: Annotated[str, Form()] = "", tracks: Annotated[str, Form()] = "",
                mutes: Annotated[str, Form()] = "",
                bleeps: Annotated[str, Form()] = "", faces: Annotated[str, Form()] = "",
                block: Annotated[int, Form(ge=1, le=512)] = 16) -> Response:
    """Ask for a redacted copy (each field one region or range a line, as `evidence redact` takes them); then the
    job's page."""
    who = signed_in(request, session, "redact", csrf)
    try:
        wanted = RedactionRequest(boxes=_lines(boxes), moving=_lines(moving), tracks=_lines(tracks),
                                  mutes=_lines(mutes), bleeps=_lines(bleeps), faces=faces == "on", block=block,
                                  reason=reason)
    except ValidationError as exc:  # more lines than a request takes
        raise HTTPException(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                           for e in exc.errors())) from None
    job = _ask(request, session, who, ref, wanted, via="web")
    return done(request, who, RedirectResponse(f"/redactions/{job.id}", status_code=303), "redaction_asked")


@router.post("/api/recordings/{ref}/redactions", tags=["redaction"], status_code=202)
def ask_in_api(ref: str, body: RedactionRequest, request: Request, session: DB,
               who: RedactCaller) -> dict[str, Any]:
    """Ask for a redacted copy; the job (follow it at /api/redactions/{id})."""
    return redaction_jobs.job_as_json(_ask(request, session, who, ref, body, via="api"))


@router.get("/api/redactions/{job_id}", tags=["redaction"])
def job_in_api(job_id: int, request: Request, session: DB, who: RedactCaller,
               reason: str | None = None) -> dict[str, Any]:
    """A redaction job: its state, stage, progress (0 to 1), the copy it made or why it failed."""
    return redaction_jobs.job_as_json(_job(request, session, who, job_id, reason))


@router.get("/redactions/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def job_page(job_id: int, request: Request, session: DB, reason: str | None = None) -> Response:
    """The job's progress (the page reloads itself while it runs), then the review: the copy beside its original,
    and the form to ask again with regions added or taken away."""
    who = signed_in(request, session, "redact")
    job = _job(request, session, who, job_id, reason)
    original = get_recording(session, str(job.original_id))
    copy = get_recording(session, str(job.copy_id)) if job.copy_id is not None else None
    shown = redaction_jobs.job_as_json(job)
    translate = gettext_for(language(request))
    # the worker's refusal in the reader's language (a row edited behind our back: its text as kept)
    with contextlib.suppress(KeyError, TypeError, AttributeError, ValueError, IndexError):
        if job.error_said:
            shown["error"] = said_in(unkept(job.error_said), translate)
    try:
        spec = RedactionSpec.from_json(job.spec)
    except RedactionInvalid as exc:  # a row edited behind the application's back: said, and the form left empty
        spec = RedactionSpec()
        shown["error"] = shown["error"] or said_in(str(exc), translate)
    return render(request, "redaction.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                  job=shown, original=original, copy=copy, lines=spec.as_lines(),
                  block=spec.block, faces=job.faces is not None, reason=reason or "",
                  running=job.state in ("queued", "running"), can_play=who.may("play"),
                  original_proxy=derived_media(session, job.original_id, "proxy") is not None,
                  fps=frame_rate(original.technical))
