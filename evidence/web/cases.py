"""Cases in the browser: the list, opening a case, its recordings and text records together (links with
purposes, retention, holds), linking and unlinking with reasons, closing and reopening, and export.

Every change is the same catalogue call the command line makes, followed by the same retention pass, so a
link made in the browser holds the recording (and its WORM object) exactly as `evidence case link` does.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from catalog.access import AccessRefused, cases_clause, visible_case
from catalog.case_links import retain_after_link_change
from catalog.case_models import Case, CaseStatus
from catalog.case_workspace import case_workspace, playable_for
from catalog.cases import (
    close_case,
    create_case,
    link_recording,
    list_cases,
    member_ids,
    reopen_case,
    unlink_recording,
)
from catalog.classification import case_grants, classify_case, grant_case_access, revoke_case_access
from catalog.custody import CustodyKind, append_event
from catalog.errors import (
    CaseInvalid,
    CaseNotFound,
    CaseStateError,
    PermissionDenied,
    RecordingNotFound,
)
from catalog.package import export_package
from catalog.recordings import get_recording
from catalog.said import Said, listed, said_of, say
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, WebConfig, api_caller, class_word, done, language, render, signed_in
from evidence.web.downloads import PackageRefused, package_signing, zip_download
from evidence.web.maps import MapPoint, map_context
from evidence.web.recordings import reason_needed, visible_recording
from storage import StorageError

__all__ = ["case_for", "router"]

router = APIRouter()
CasesCaller = Annotated[Caller, api_caller("cases")]


def case_for(session: Session, number: str, who: Caller, *, via: str = "web") -> Case:
    """The case if the caller may know of it (catalog.access.visible_case): 404 if there is none, 403 (an
    `access_refused` event) if none of its recordings lies in their scope."""
    try:
        return visible_case(session, number, who.scope, actor=who.user.name, via=via)
    except CaseNotFound as exc:
        raise HTTPException(404, said_of(exc)) from None
    except AccessRefused as exc:
        raise HTTPException(403, said_of(exc)) from None



def _reader(who: Caller) -> str | None:
    """Whose exports a case shows: everyone's to who may read the audit log, else the caller's own."""
    return None if who.may("audit") else who.user.name


def _retain(session: Session, config: WebConfig, ids: list[int], by: str) -> list[Said]:
    """Apply retention to what changed; the problems (a store that refused) as lines for the page."""
    changes = retain_after_link_change(session, config.store, config.policy, ids, by=by)
    return [say("recording {id}: {problem}", id=c.recording_id, problem=c.error) for c in changes if c.error]


def _case_page(request: Request, session: Session, who: Caller, case: Case, status: int = 200,
               error: str | None = None, close: dict[str, str] | None = None) -> Response:
    config: WebConfig = request.app.state.config
    workspace = case_workspace(session, case, who.scope, config.policy, reader=_reader(who))
    local = request.app.state.templates.env.filters["local"]
    places = map_context(config.map_tiles, config.map_attribution,
                         [MapPoint(int(i["recording_id"]), i.get("lat"), i.get("lon"), str(i["original_name"]),
                                   local(i["captured_start"])) for i in workspace["timeline"]])
    return render(request, "case.html", language(request), status, user=who.user, csrf=who.web_session.csrf_token,
                  map=places,
                  c=workspace, playlist=playable_for(session, who.user, workspace["timeline"]),
                  can_export=who.may("export"),
                  can_manage=who.may("manage_cases"), can_classify=who.may("classify"),
                  can_grant=who.may("grant_access"), can_play=who.may("play"), can_release=who.may("releases"),
                  thumbnails=not reason_needed(request, "view"), play_needs_reason=reason_needed(request, "play"),
                  grants=case_grants(session, case) if who.may("grant_access") else [], error=error,
                  today=config.today().isoformat(), close=close or {"closed_on": config.today().isoformat()})


@router.get("/cases", response_class=HTMLResponse, include_in_schema=False)
def cases_page(request: Request, session: DB, status: str = "") -> Response:
    who = signed_in(request, session, "cases")
    return _cases_list(request, session, who, status=status)


def _cases_list(request: Request, session: Session, who: Caller, *, status: str = "", code: int = 200,
                error: str | None = None, form: dict[str, str] | None = None) -> Response:
    config: WebConfig = request.app.state.config
    wanted = status if status in (s.value for s in CaseStatus) else None
    return render(request, "cases.html", language(request), code, user=who.user, csrf=who.web_session.csrf_token,
                  cases=list_cases(session, status=wanted, where=cases_clause(who.scope), limit=500),
                  wanted=wanted or "",
                  error=error,
                  types=sorted(config.policy.case_types.values(), key=lambda t: t.code),
                  can_manage=who.may("manage_cases"), form=form or {}, today=config.today().isoformat())


@router.post("/cases", include_in_schema=False)
def open_case(request: Request, session: DB, csrf: Annotated[str, Form()], number: Annotated[str, Form()],
              title: Annotated[str, Form()], case_type: Annotated[str, Form()], unit: Annotated[str, Form()] = "",
              opened_on: Annotated[str, Form()] = "") -> Response:
    who = signed_in(request, session, "manage_cases", csrf)
    config: WebConfig = request.app.state.config
    form = {"number": number, "title": title, "case_type": case_type, "unit": unit, "opened_on": opened_on}
    try:
        opened = date.fromisoformat(opened_on) if opened_on.strip() else config.today()
    except ValueError:
        return _cases_list(request, session, who, code=400, form=form,
                           error=say("opened on: {day} is not a date (YYYY-MM-DD)", day=repr(opened_on)))
    try:
        case = create_case(session, number=number.strip(), title=title, case_type=case_type, unit=unit,
                           opened_on=opened, by=who.user.name, case_pattern=config.case_pattern,
                           policy=config.policy, today=config.today())
        session.commit()
    except CaseInvalid as exc:
        session.rollback()
        return _cases_list(request, session, who, code=400, form=form, error=str(exc))
    return _after_change(request, session, who, case, member_ids(session, case),  # stamped ones it adopted
                         "case_opened")


@router.get("/cases/{number:path}", response_class=HTMLResponse, include_in_schema=False)
def case_page(number: str, request: Request, session: DB) -> Response:
    who = signed_in(request, session, "cases")
    case = case_for(session, number, who)
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, details={"via": "web case page",
                                                                            "case": case.number})
    session.commit()
    return _case_page(request, session, who, case)


def _after_change(request: Request, session: Session, who: Caller, case: Case, ids: list[int], said: str,
                  back: str | None = None, **values: str | int) -> Response:
    """The retention pass over *ids* after a change to the case, then back to its page (or *back*) saying what
    was done (deps.DONE[*said*], with the case's number); the case page with the store's refusal (502) when a
    hold could not be applied (the nightly retention job finishes it)."""
    problems = _retain(session, request.app.state.config, ids, who.user.name)
    if problems:
        return _case_page(request, session, who, case, 502, listed(problems, sep="; "))
    return done(request, who, RedirectResponse(back or f"/cases/{quote(case.number, safe='')}", status_code=303),
                said, case=case.number, **values)


@router.post("/cases/{number:path}/link", include_in_schema=False)
def link(number: str, request: Request, session: DB, csrf: Annotated[str, Form()], recordings: Annotated[str, Form()],
         purpose: Annotated[str, Form()]) -> Response:
    """Link recordings (ids or SHA-256 prefixes, separated by spaces or commas) with what they prove here."""
    who = signed_in(request, session, "manage_cases", csrf)
    case = case_for(session, number, who)
    refs = [r for r in recordings.replace(",", " ").split() if r]
    try:
        if not refs:
            raise CaseInvalid([say("name at least one recording (its id or SHA-256 prefix)")])
        found = [get_recording(session, ref) for ref in refs[:200]]
        for recording in found:
            link_recording(session, case, recording, purpose=purpose, by=who.user.name, linker=who.user)
        session.commit()
    except PermissionDenied as exc:
        session.rollback()
        return _case_page(request, session, who, case, 403, str(exc))
    except (CaseInvalid, CaseStateError, RecordingNotFound) as exc:
        session.rollback()
        return _case_page(request, session, who, case, 400, str(exc))
    return _after_change(request, session, who, case, [r.id for r in found if r.id is not None], "linked",
                         n=len({r.id for r in found}))


@router.post("/recordings/{ref}/link", include_in_schema=False)
def link_from_recording(ref: str, request: Request, session: DB, csrf: Annotated[str, Form()],
                        case: Annotated[str, Form()], purpose: Annotated[str, Form()]) -> Response:
    who = signed_in(request, session, "manage_cases", csrf)
    recording = visible_recording(session, ref, who, "link")
    found = case_for(session, case.strip(), who)
    try:
        link_recording(session, found, recording, purpose=purpose, by=who.user.name, linker=who.user)
        session.commit()
    except PermissionDenied as exc:
        session.rollback()
        raise HTTPException(403, str(exc)) from None
    except (CaseInvalid, CaseStateError) as exc:
        session.rollback()
        raise HTTPException(400, str(exc)) from None
    assert recording.id is not None
    return _after_change(request, session, who, found, [recording.id], "linked_one",
                         back=f"/recordings/{recording.id}")


#: The largest text record accepted through the browser (a scan of a long file; video goes through a station).
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024


def upload_name(filename: str | None) -> str:
    """A safe file name for an upload: its last path part, control characters and separators dropped. Pure."""
    last = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in last if c.isprintable() and c not in '<>:"|?*').strip(" .")
    return cleaned[:200] or "document"


@router.post("/cases/{number:path}/documents", include_in_schema=False)
def attach_documents(number: str, request: Request, session: DB, csrf: Annotated[str, Form()],
                     title: Annotated[str, Form()], files: Annotated[list[UploadFile], File()],
                     dated: Annotated[str, Form()] = "") -> Response:
    """Store uploaded text records (询问笔录, 现场检查笔录, scans…) for the case: hashed, in WORM storage, with a
    signed manifest, linked with *title* as their purpose; a damaged file is kept as found and says so."""
    who = signed_in(request, session, "manage_cases", csrf)
    case = case_for(session, number, who)
    config: WebConfig = request.app.state.config
    if config.attach is None:
        raise HTTPException(501, say("this server cannot store documents; run `evidence serve`, or attach them "
                                     "with `evidence case attach`"))
    try:
        day = date.fromisoformat(dated) if dated.strip() else None
    except ValueError:
        return _case_page(request, session, who, case, 400,
                          say("document date: {day} is not a date (YYYY-MM-DD)", day=repr(dated)))
    if not title.strip():
        return _case_page(request, session, who, case, 400, say("say what the documents are (their title)"))
    folder = Path(tempfile.mkdtemp(prefix="evidence-upload-"))
    ids: list[int] = []
    try:
        for upload in files:
            path = folder / upload_name(upload.filename)
            size = 0
            with path.open("wb") as out:
                while chunk := upload.file.read(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_DOCUMENT_BYTES:
                        return _case_page(request, session, who, case, 413,
                                          say("{file} is larger than {mib} MiB", file=path.name,
                                              mib=MAX_DOCUMENT_BYTES >> 20))
                    out.write(chunk)
            if size == 0:
                return _case_page(request, session, who, case, 400, say("{file} is empty", file=path.name))
            recording, _new = config.attach(session, case, path, title=title.strip(), by=who.user.name, dated=day)
            path.unlink()
            if recording.id is not None:
                ids.append(recording.id)
    except (CaseInvalid, CaseStateError) as exc:
        session.rollback()
        return _case_page(request, session, who, case, 400, str(exc))
    except StorageError as exc:  # the staged copy stays for `evidence archive-pending`
        session.rollback()
        return _case_page(request, session, who, case, 503,
                          say("the evidence store refused or is down: {fault}", fault=str(exc)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _after_change(request, session, who, case, ids, "attached", n=len(ids))


@router.post("/cases/{number:path}/unlink", include_in_schema=False)
def unlink(number: str, request: Request, session: DB, csrf: Annotated[str, Form()],
           recording: Annotated[int, Form()], reason: Annotated[str, Form()]) -> Response:
    who = signed_in(request, session, "manage_cases", csrf)
    case = case_for(session, number, who)
    try:
        found = get_recording(session, recording)
        unlink_recording(session, case, found, by=who.user.name, reason=reason)
        session.commit()
    except (CaseInvalid, CaseStateError, RecordingNotFound) as exc:
        session.rollback()
        return _case_page(request, session, who, case, 400, str(exc))
    return _after_change(request, session, who, case, [recording], "unlinked", recording=recording)


@router.post("/cases/{number:path}/close", include_in_schema=False)
def close(number: str, request: Request, session: DB, csrf: Annotated[str, Form()],
          closed_on: Annotated[str, Form()] = "", confirm: Annotated[str, Form()] = "") -> Response:
    """Close the case (catalog.cases.close_case, then the retention pass): the page asks for the closing date
    and the case number typed again, and so does this; a refusal keeps what was typed."""
    who = signed_in(request, session, "manage_cases", csrf)
    case = case_for(session, number, who)
    config: WebConfig = request.app.state.config
    typed = {"closed_on": closed_on, "confirm": confirm}
    problem = close_form_problem(case.number, closed_on, confirm)
    if problem:
        return _case_page(request, session, who, case, 400, problem, close=typed)
    try:
        close_case(session, case, by=who.user.name, closed_on=date.fromisoformat(closed_on.strip()),
                   today=config.today())
        session.commit()
    except (CaseInvalid, CaseStateError) as exc:
        session.rollback()
        return _case_page(request, session, who, case, 400, str(exc), close=typed)
    return _after_change(request, session, who, case, member_ids(session, case), "case_closed",
                         day=closed_on.strip())


def close_form_problem(number: str, closed_on: str, confirm: str) -> str | None:
    """What is wrong with a close form (no date, not a date, the case number not typed again), or None. Pure."""
    if not closed_on.strip():
        return say("closing case {case}: give the closing date", case=number)
    try:
        date.fromisoformat(closed_on.strip())
    except ValueError:
        return say("closed on: {typed} is not a date (YYYY-MM-DD)", typed=repr(closed_on[:40]))
    if confirm.strip() != number:
        return say("closing case {case}: type the case number {quoted} to confirm (got {typed})", case=number,
                   quoted=repr(number), typed=repr(confirm[:80]))
    return None


@router.post("/cases/{number:path}/reopen", include_in_schema=False)
def reopen(number: str, request: Request, session: DB, csrf: Annotated[str, Form()],
           reason: Annotated[str, Form()]) -> Response:
    who = signed_in(request, session, "manage_cases", csrf)
    case = case_for(session, number, who)
    try:
        reopen_case(session, case, by=who.user.name, reason=reason)
        session.commit()
    except (CaseInvalid, CaseStateError) as exc:
        session.rollback()
        return _case_page(request, session, who, case, 400, str(exc))
    return _after_change(request, session, who, case, member_ids(session, case), "case_reopened")


@router.post("/cases/{number:path}/class", include_in_schema=False)
def case_class(number: str, request: Request, session: DB, csrf: Annotated[str, Form()],
               sensitivity: Annotated[str, Form()], reason: Annotated[str, Form()]) -> Response:
    """The case's sensitivity class (catalog.classification.classify_case: its recordings of a lower class are
    raised to it)."""
    who = signed_in(request, session, "classify", csrf)
    case = case_for(session, number, who)
    return _class_act(request, session, who, case,
                      lambda: classify_case(session, who.user, case, to=sensitivity, reason=reason),
                      "case_classified", to=class_word(request, sensitivity))


def _class_act(request: Request, session: Session, who: Caller, case: Case, act: Callable[[], object], said: str,
               **values: str) -> Response:
    """Do *act* (a catalog.classification change) and commit; back to the case page, or the page with what was
    refused (403: the caller may not; 400: the request is wrong), nothing kept."""
    try:
        act()
        session.commit()
    except PermissionDenied as exc:
        session.rollback()
        return _case_page(request, session, who, case, 403, str(exc))
    except CaseStateError as exc:
        session.rollback()
        return _case_page(request, session, who, case, 400, str(exc))
    return done(request, who, RedirectResponse(f"/cases/{quote(case.number, safe='')}", status_code=303), said,
                case=case.number, **values)


@router.post("/cases/{number:path}/grants", include_in_schema=False)
def case_grant(number: str, request: Request, session: DB, csrf: Annotated[str, Form()],
               user: Annotated[str, Form()], reason: Annotated[str, Form()], until: Annotated[str, Form()] = "",
               revoke: Annotated[str, Form()] = "") -> Response:
    """Grant (or, with *revoke*, end) a person's access to the case's classed recordings
    (catalog.classification); *until* is a local date, the grant ending at its end in the agency's zone."""
    who = signed_in(request, session, "grant_access", csrf)
    case = case_for(session, number, who)
    zone = ZoneInfo(request.app.state.config.policy.zone)

    def act() -> object:
        if revoke:
            return revoke_case_access(session, who.user, case, to_user=user.strip(), reason=reason)
        expires = None
        if until.strip():
            try:
                day = date.fromisoformat(until.strip())
            except ValueError:
                raise CaseStateError(say("{day} is not a date (YYYY-MM-DD)", day=repr(until))) from None
            expires = datetime.combine(day + timedelta(days=1), time(), zone)
        return grant_case_access(session, who.user, case, to_user=user.strip(), reason=reason, expires_at=expires)

    return _class_act(request, session, who, case, act, "case_grant_revoked" if revoke else "case_granted",
                      person=user.strip())


@router.get("/api/cases", tags=["cases"])
def api_cases(request: Request, session: DB, who: CasesCaller, status: str | None = None) -> dict[str, Any]:
    """Case files (newest first, at most 500), optionally only `open` or `closed` ones."""
    if status is not None and status not in (s.value for s in CaseStatus):
        raise HTTPException(422, say("status must be open or closed, not {status}", status=repr(status[:40])))
    config: WebConfig = request.app.state.config
    return {"cases": [{"number": c.number, "title": c.title, "case_type": c.case_type, "unit": c.unit,
                       "status": c.status, "opened_on": c.opened_on.isoformat(),
                       "closed_on": c.closed_on.isoformat() if c.closed_on else None}
                      for c in list_cases(session, status=status, where=cases_clause(who.scope), limit=500)],
            "case_types": sorted(config.policy.case_types)}


@router.get("/api/cases/{number:path}", tags=["cases"])
def api_case(number: str, request: Request, session: DB, who: CasesCaller) -> dict[str, Any]:
    """One case with its recordings and text records (purposes, retention, holds) and past links; the view is
    recorded. A caller limited to some units or to their own recordings gets only what lies in their scope, and
    `outside_scope` counts the rest."""
    case = case_for(session, number, who)
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, details={"via": "api", "case": case.number})
    session.commit()
    return case_workspace(session, case, who.scope, request.app.state.config.policy, reader=_reader(who))


@router.post("/cases/{number:path}/export", include_in_schema=False)
def case_export(number: str, request: Request, session: DB, csrf: Annotated[str, Form()],
                reason: Annotated[str, Form()] = "") -> Response:
    """The case's BagIt package as a ZIP download (built, validated, recorded, then sent and removed). The same
    operation as `evidence export CASE`: the rights and scope of downloading every item, and a stated reason."""
    who = signed_in(request, session, "export", csrf)
    case = case_for(session, number, who)
    config = request.app.state.config
    try:
        return zip_download(session, case.number, say("case {case}", case=case.number), lambda out: export_package(
            session, config.store, out=out, by=who.user.name, now=utcnow(), case_number=case.number, reason=reason,
            signing=package_signing(config), language="en" if language(request) == "en" else "zh"))
    except PackageRefused as exc:
        return _case_page(request, session, who, case, exc.status, str(exc))
