"""Releases in the browser (issue 18, part 3; catalog.releases, catalog.release_package, catalog.shares): the list
and the proposal form, one release's page with legal review's decision, the withdrawal, the package download and
the share links. Each form calls the same catalogue function as `evidence release …`; a share link's code is shown
once, on the page that answers the form that made it."""
from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from catalog.access import AccessRefused, ReasonRequired
from catalog.disposal import Signer
from catalog.errors import PermissionDenied, RecordingNotFound
from catalog.recordings import get_recording
from catalog.release_package import release_package, summary_of
from catalog.releases import (
    RELEASE_KINDS,
    RELEASE_STATES,
    ReleaseRefused,
    decide_release,
    get_release,
    list_releases,
    propose_release,
    release_as_json,
    release_in_scope,
    withdraw_release,
)
from catalog.said import listed, said_of, say
from catalog.shares import NewShare, ShareRefused, create_share, revoke_share, share_as_json, shares_of
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, done, language, render, signed_in
from evidence.web.downloads import PackageRefused, package_signing, zip_download
from storage import StorageError

__all__ = ["router"]

router = APIRouter()


def _signer(request: Request) -> Signer:
    config = request.app.state.config
    if config.key is None:
        raise HTTPException(503, say("this server has no station key to sign release records with"))
    return Signer(config.station, config.key, tsa=config.settings)


def _list_page(request: Request, session: Session, who: Caller, status: int = 200, error: str | None = None,
               form: dict[str, str] | None = None, state: str | None = None) -> HTMLResponse:
    releases = [release_as_json(session, r) for r in list_releases(session, state=state)
                if release_in_scope(session, who.scope, r)]
    return render(request, "releases.html", language(request), status, user=who.user, csrf=who.web_session.csrf_token,
                  releases=releases, kinds=RELEASE_KINDS, states=RELEASE_STATES, wanted=state or "",
                  can_propose=who.may("propose_release"), error=error, form=form or {})


def _release_page(request: Request, session: Session, who: Caller, number: int, status: int = 200,
                  error: str | None = None, new_share: NewShare | None = None) -> HTMLResponse:
    try:
        release = get_release(session, number)
    except ReleaseRefused:
        raise HTTPException(404, say("no release {release}", release=number)) from None
    if not release_in_scope(session, who.scope, release):
        raise HTTPException(403, say("release {release} holds recordings outside what {person} may see ({scope})",
                                     release=number, person=who.user.name, scope=who.scope.describe()))
    data = release_as_json(session, release)
    summary = summary_of(session, release) if release.kind == "publication" else None
    shares = [share_as_json(link) for link in shares_of(session, number)]
    return render(request, "release.html", language(request), status, user=who.user, csrf=who.web_session.csrf_token,
                  r=data, summary=summary, shares=shares, error=error, new_share=new_share,
                  can_decide=who.may("approve_release") and data["state"] == "proposed"
                  and data["proposed_by"] != who.user.name,
                  can_withdraw=(who.may("propose_release") or who.may("approve_release"))
                  and data["state"] in ("proposed", "approved"),
                  can_share=who.may("propose_release") and data["state"] == "approved",
                  can_package=who.may("export") and data["state"] == "approved")


@router.get("/releases", response_class=HTMLResponse, include_in_schema=False)
def releases_page(request: Request, session: DB, state: str | None = None) -> Response:
    who = signed_in(request, session, "releases")
    if state is not None and state not in RELEASE_STATES:
        raise HTTPException(400, say("state must be one of {states}", states=listed(RELEASE_STATES)))
    return _list_page(request, session, who, state=state)


@router.post("/releases", include_in_schema=False)
def propose(request: Request, session: DB, csrf: Annotated[str, Form()], kind: Annotated[str, Form()],
            title: Annotated[str, Form(max_length=1000)] = "", recipient: Annotated[str, Form(max_length=1000)] = "",
            legal_basis: Annotated[str, Form(max_length=1000)] = "",
            reason: Annotated[str, Form(max_length=1000)] = "",
            recordings: Annotated[str, Form(max_length=20000)] = "") -> Response:
    """Propose recordings (ids, separated by spaces or commas) for a release; its page after."""
    who = signed_in(request, session, "propose_release", csrf)
    form = {"kind": kind, "title": title, "recipient": recipient, "legal_basis": legal_basis, "reason": reason,
            "recordings": recordings}
    refs = [ref for ref in re.split(r"[\s,，]+", recordings) if ref]
    try:
        if len(refs) > 1000:
            raise ReleaseRefused([say("at most {max} recordings in one release", max=1000)])
        items = [get_recording(session, ref) for ref in refs]
        made = propose_release(session, who.user, kind=kind, title=title, recipient=recipient,
                               legal_basis=legal_basis, recordings=items, reason=reason, now=utcnow())
    except (ReleaseRefused, RecordingNotFound) as exc:
        session.rollback()
        return _list_page(request, session, who, 400, str(exc), form)
    except ReasonRequired as exc:
        return _list_page(request, session, who, 422, str(exc), form)
    except (AccessRefused, PermissionDenied) as exc:
        session.commit()  # a refusal is recorded
        return _list_page(request, session, who, 403, str(exc), form)
    return done(request, who, RedirectResponse(f"/releases/{made.id}", status_code=303), "release_proposed",
                release=str(made.id))


@router.get("/releases/{number}", response_class=HTMLResponse, include_in_schema=False)
def release_page(number: int, request: Request, session: DB) -> Response:
    who = signed_in(request, session, "releases")
    return _release_page(request, session, who, number)


def _act(request: Request, session: Session, who: Caller, number: int, act: Any, said: str,
         **values: str) -> Response:
    """Run *act* (a catalogue call); the release's page after it saying what was done (deps.DONE[*said*]), or
    with the refusal."""
    try:
        act()
    except (ReleaseRefused, ShareRefused) as exc:
        session.rollback()
        return _release_page(request, session, who, number, 400, str(exc))
    except PermissionDenied as exc:
        session.rollback()
        return _release_page(request, session, who, number, 403, str(exc))
    except StorageError as exc:  # the signed record could not be kept: nothing was decided
        session.rollback()
        problem = said_of(exc)
        return _release_page(request, session, who, number, 503,
                             say("the store did not keep the signed record: {problem}", problem=problem))
    return done(request, who, RedirectResponse(f"/releases/{number}", status_code=303), said, release=str(number),
                **values)


@router.post("/releases/{number}/decide", include_in_schema=False)
def decide(number: int, request: Request, session: DB, csrf: Annotated[str, Form()],
           decision: Annotated[str, Form()], note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """Legal review (法制审核) approves or rejects; never the proposer."""
    who = signed_in(request, session, "approve_release", csrf)
    if decision not in ("approve", "reject"):
        raise HTTPException(400, say("decision must be approve or reject"))
    store, signer = request.app.state.config.store, _signer(request)
    return _act(request, session, who, number, lambda: decide_release(
        session, store, who.user, number, approve=decision == "approve", note=note, signer=signer, now=utcnow()),
        "release_approved" if decision == "approve" else "release_rejected")


@router.post("/releases/{number}/withdraw", include_in_schema=False)
def withdraw(number: int, request: Request, session: DB, csrf: Annotated[str, Form()],
             reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    who = signed_in(request, session, "releases", csrf)
    store, signer = request.app.state.config.store, _signer(request)
    return _act(request, session, who, number, lambda: withdraw_release(
        session, store, who.user, number, reason=reason, signer=signer, now=utcnow()), "release_withdrawn")


@router.post("/releases/{number}/shares", include_in_schema=False)
def share(number: int, request: Request, session: DB, csrf: Annotated[str, Form()],
          recipient: Annotated[str, Form(max_length=1000)] = "",
          days: Annotated[int, Form(ge=1, le=90)] = 7) -> Response:
    """A share link for one recipient: its address and one-time code are shown once, on this answer."""
    who = signed_in(request, session, "propose_release", csrf)
    try:
        made = create_share(session, who.user, number, recipient=recipient, days=days, now=utcnow())
    except (ShareRefused, ReleaseRefused) as exc:
        session.rollback()
        return _release_page(request, session, who, number, 400, str(exc))
    except (AccessRefused, PermissionDenied) as exc:  # who may not download an item may not hand it over (recorded)
        session.rollback()
        return _release_page(request, session, who, number, 403, str(exc))
    response = _release_page(request, session, who, number, new_share=made)
    response.headers["Cache-Control"] = "no-store"  # the code is on it
    return response


@router.post("/releases/{number}/shares/{link}/revoke", include_in_schema=False)
def unshare(number: int, link: int, request: Request, session: DB, csrf: Annotated[str, Form()],
            reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    who = signed_in(request, session, "releases", csrf)
    return _act(request, session, who, number, lambda: revoke_share(session, who.user, link, reason=reason,
                                                                    now=utcnow()), "share_revoked", link=str(link))


@router.post("/releases/{number}/package", include_in_schema=False)
def package(number: int, request: Request, session: DB, csrf: Annotated[str, Form()]) -> Response:
    """The approved release's package as a ZIP download (catalog.release_package: the export's checks)."""
    who = signed_in(request, session, "export", csrf)
    config = request.app.state.config
    try:
        what = say("release {release}", release=number)
        return zip_download(session, f"release-{number}", what, lambda out: release_package(
            session, config.store, number, out=out, by=who.user.name, now=utcnow(), signing=package_signing(config),
            language="en" if language(request) == "en" else "zh"))
    except PackageRefused as exc:
        return _release_page(request, session, who, number, exc.status, str(exc))
