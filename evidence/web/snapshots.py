"""The player's snapshot: the frame on screen kept as a still of a case the recording serves
(ingest.snapshots.take_snapshot: decoded from the original, hashed, WORM, signed, the source's
`snapshot_taken` event), then the same retention pass as any link."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from catalog.access import AccessRefused, ReasonRequired
from catalog.case_links import retain_after_link_change
from catalog.cases import get_case
from catalog.errors import CaseInvalid, CaseNotFound, PermissionDenied, SnapshotRefused
from catalog.said import listed, say
from evidence.web.deps import DB, WebConfig, done, signed_in
from evidence.web.recordings import render_recording, visible_recording
from ingest.errors import RenderInterrupted
from ingest.snapshots import take_snapshot
from storage import StorageError

__all__ = ["router"]

router = APIRouter()


@router.post("/recordings/{ref}/snapshot", include_in_schema=False)
def snapshot(ref: str, request: Request, session: DB, csrf: Annotated[str, Form()], case: Annotated[str, Form()],
             at: Annotated[str, Form()], reason: Annotated[str, Form()] = "",
             purpose: Annotated[str, Form()] = "") -> Response:
    """Keep the frame at *at* seconds as a still of *case*; back to the recording page, saying what it became."""
    who = signed_in(request, session, "manage_cases", csrf)
    recording = visible_recording(session, ref, who, "snapshot")
    config: WebConfig = request.app.state.config
    if config.settings is None or config.key is None:
        raise HTTPException(501, say("this server cannot store stills; run `evidence serve`"))

    def refused(status: int, message: str) -> Response:
        session.rollback()
        return render_recording(request, session, who, recording, reason=reason or None, status=status,
                                error=message)

    try:
        at_s = float(at.strip())
    except ValueError:
        return refused(400, say("snapshot: {at} is not a position in seconds (e.g. 83.25)", at=repr(at[:40])))
    try:
        target = get_case(session, case.strip())
    except CaseNotFound as exc:
        return refused(404, str(exc))
    try:
        still = take_snapshot(session, config.store, config.settings, config.key, user=who.user,
                              recording=recording, case=target, at_s=at_s, reason=reason, purpose=purpose)
    except ReasonRequired as exc:
        return refused(422, str(exc))
    except (AccessRefused, PermissionDenied) as exc:
        return refused(403, str(exc))
    except (SnapshotRefused, CaseInvalid) as exc:
        return refused(400, str(exc))
    except StorageError as exc:
        return refused(503, say("the evidence store refused or is down: {fault}", fault=str(exc)))
    except RenderInterrupted as exc:
        return refused(503, say("the frame could not be decoded now ({fault}); try again", fault=str(exc)))
    assert still.recording.id is not None
    changes = retain_after_link_change(session, config.store, config.policy, [still.recording.id], by=who.user.name)
    problems = [say("recording {id}: {problem}", id=c.recording_id, problem=c.error) for c in changes if c.error]
    if problems:
        return refused(502, listed(problems, sep="; "))
    page = f"/recordings/{recording.id}" + (f"?reason={quote(reason.strip(), safe='')}" if reason.strip() else "")
    return done(request, who, RedirectResponse(page, status_code=303), "snapshot", case=target.number,
                still=still.recording.id, at=f"{still.at_s:.3f}")
