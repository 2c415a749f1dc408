"""Acting on many search results at once: add them to a case with what they prove, tag them with one reason,
change their class, or export them as one package.

The selection is the results ticked on the page or every recording the search matches (up to BULK_CAP: more is
refused, never cut short). Each act is the catalogue call the single-recording page and the command line make
(link_recording with its retention pass, change_stamp, classify_recordings, export_package), with the same rights,
scope and class checks: a selection holding one recording outside the caller's scope is refused whole, and the
refusal is recorded. Success redirects back to the search with what was done said on the page (no second post on
reload); a refusal shows the search again with the reason and the form as it was filled in.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from catalog.access import AccessRefused, out_of_scope, record_refusals, visible_case
from catalog.case_links import retain_after_link_change
from catalog.cases import link_recording, member_ids
from catalog.classification import classify_recordings
from catalog.db import MAX_ROW_ID
from catalog.errors import CaseInvalid, CaseNotFound, CaseStateError, PermissionDenied, StampInvalid
from catalog.models import Recording
from catalog.package import export_package
from catalog.restamping import HoldLiftRefused, change_stamp
from catalog.said import say
from catalog.search import matching_ids
from catalog.sensitivity import step_word
from catalog.types import utcnow
from evidence.web.deps import DB, DONE, Caller, class_word, done, language, signed_in
from evidence.web.downloads import PackageRefused, package_signing, zip_download
from evidence.web.i18n import gettext_for
from evidence.web.search import BULK_ACTIONS, BULK_CAP, search_view
from evidence.web.search_form import SearchInvalid, parse_search, query_of
from storage import StorageError

__all__ = ["router"]

router = APIRouter()


class _Refused(Exception):
    """A bulk action not done (or done in part): the page's status and what to say."""

    def __init__(self, status: int, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.status = status
        self.problems = list(problems)


def _selected_ids(request: Request, who: Caller, session: Session, *, ids: Sequence[str], every: bool,
                  query: dict[str, str]) -> list[int]:
    """The ids the action is for: the ticked ones, or all the search matches (in the caller's scope)."""
    _ = gettext_for(language(request))
    if every:
        try:
            filters, _page = parse_search(query, zone=ZoneInfo(request.app.state.config.zone), scope=who.scope)
        except SearchInvalid as exc:
            raise _Refused(400, *(p.text(_) for p in exc.problems)) from None
        found = matching_ids(session, filters, cap=BULK_CAP)
    else:
        found = []
        for ref in ids:
            text = ref.strip()
            if not (text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ROW_ID):
                raise _Refused(400, _("{value!r} is not a recording number.").format(value=ref[:40]))
            found.append(int(text))
        found = list(dict.fromkeys(found))
    if not found:
        raise _Refused(400, _("Select at least one recording (tick it, or choose all matching)."))
    if len(found) > BULK_CAP:
        raise _Refused(400, _("Act on at most {cap} recordings at once: narrow the search.").format(cap=BULK_CAP))
    return found


def _recordings(session: Session, who: Caller, ids: list[int], action: str) -> list[Recording]:
    """The recordings *ids* in the order given: each must exist (404, nothing recorded: an id that names nothing is
    no one's refused access) and be in the caller's scope (a refusal otherwise, recorded for each outside it)."""
    rows: dict[int | None, Recording] = {}
    for start in range(0, len(ids), 500):
        rows |= {r.id: r for r in session.exec(select(Recording).where(col(Recording.id).in_(ids[start:start + 500])))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise _Refused(404, say("no recording {recordings}", recordings=", ".join(map(str, missing[:20]))))
    outside = out_of_scope(session, who.scope, ids)
    if outside:
        record_refusals(session, who.user.name, outside, action=action, why="scope",
                        details={"scope": str(who.scope.describe()), "via": "web bulk"})
        raise _Refused(403, say("{recordings} are outside what {person} may {action} ({scope})",
                                recordings=say("recordings {recordings}", recordings=", ".join(map(str, outside[:20]))),
                                person=who.user.name, action=step_word(action), scope=who.scope.describe()))
    return [rows[i] for i in ids]


@router.post("/recordings/bulk", include_in_schema=False)
def bulk(request: Request, session: DB, csrf: Annotated[str, Form()], action: Annotated[str, Form()],
         ids: Annotated[list[str] | None, Form()] = None, every: Annotated[str, Form()] = "",
         query: Annotated[str, Form(max_length=4000)] = "", case: Annotated[str, Form()] = "",
         link_purpose: Annotated[str, Form()] = "", case_number: Annotated[str, Form()] = "",
         purpose: Annotated[str, Form()] = "", important: Annotated[str, Form()] = "",
         sensitivity: Annotated[str, Form()] = "", reason: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """Do *action* (BULK_ACTIONS: link, tag, class, export) to the selected recordings."""
    who = signed_in(request, session, BULK_ACTIONS.get(action, "search"), csrf)
    searched = query_of(query)
    form = {"action": action, "every": every, "case": case, "link_purpose": link_purpose,
            "case_number": case_number, "purpose": purpose, "important": important, "sensitivity": sensitivity,
            "reason": reason}
    back = "/?" + urlencode({k: v for k, v in searched.items() if v and k != "page"})
    try:
        if action not in BULK_ACTIONS:
            raise _Refused(400, say("unknown action {action!r}; one of {actions}", action=action[:40],
                                    actions=", ".join(BULK_ACTIONS)))
        chosen = _recordings(session, who, _selected_ids(request, who, session, ids=ids or [],
                                                         every=every == "matching", query=searched),
                             BULK_ACTIONS[action])
        if action == "export":
            return _export(request, session, who, chosen, reason)
        said = {"link": _link, "tag": _tag, "class": _class}[action](request, session, who, chosen, form)
    except _Refused as exc:
        session.rollback()
        return search_view(request, session, who, searched, status=exc.status, problems=exc.problems, bulk=form)
    name, values = said
    return done(request, who, RedirectResponse(back, status_code=303), name, **values)


def _link(request: Request, session: Session, who: Caller, chosen: list[Recording],
          form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """Add the selection to a case with what it proves there (those in it already are left as they are), then
    the retention pass the case page makes: the holds reach the store."""
    try:
        case = visible_case(session, form["case"].strip(), who.scope, actor=who.user.name, via="web bulk")
    except CaseNotFound as exc:
        raise _Refused(404, str(exc)) from None
    except AccessRefused as exc:
        raise _Refused(403, str(exc)) from None
    members = set(member_ids(session, case))
    new = [r for r in chosen if r.id not in members]
    ids = [r.id for r in chosen if r.id is not None]
    try:
        for recording in new:
            link_recording(session, case, recording, purpose=form["link_purpose"], by=who.user.name,
                           linker=who.user)
        session.commit()
    except PermissionDenied as exc:
        raise _Refused(403, str(exc)) from None
    except (CaseInvalid, CaseStateError) as exc:
        raise _Refused(400, str(exc)) from None
    # every selected one, those in the case already too: a hold the store refused at an earlier try is applied now
    changes = retain_after_link_change(session, request.app.state.config.store, request.app.state.config.policy,
                                       ids, by=who.user.name)
    problems = [say("recording {id}: {problem}", id=c.recording_id, problem=c.error) for c in changes if c.error]
    if problems:  # the links stand; the nightly retention job finishes what the store refused now
        raise _Refused(502, *problems)
    already = len(chosen) - len(new)
    return ("linked_already" if already else "linked"), {"n": len(new), "case": case.number, "already": already}


def _tag(request: Request, session: Session, who: Caller, chosen: list[Recording],
         form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """Give the selection the same case number, purpose or important flag, with one reason: a new stamp revision
    of each that changes (signed and sealed, its retention applied). A field left empty is left as it is."""
    wanted: dict[str, Any] = {}
    if form["case_number"].strip():
        wanted["case_number"] = form["case_number"].strip()
    if form["purpose"].strip():
        wanted["purpose"] = form["purpose"].strip()
    if form["important"] in ("yes", "no"):
        wanted["important"] = form["important"] == "yes"
    if not wanted:
        _ = gettext_for(language(request))
        raise _Refused(400, _("Say what to tag: a case number, a purpose or important."))
    config = request.app.state.config
    tagged = 0
    refused: list[str] = []
    unstored: list[str] = []
    lifting = False
    for recording in chosen:  # each on its own: one refused never hides whether the others were tagged
        changes = {k: v for k, v in wanted.items() if getattr(recording, k) != v}
        if not changes:
            continue
        try:
            change = change_stamp(session, config.store, recording, by=who.user.name, reason=form["reason"],
                                  case_pattern=config.case_pattern, policy=config.policy, key=config.key,
                                  roles=who.user.roles, **changes)
        except (HoldLiftRefused, StampInvalid) as exc:
            session.rollback()
            lifting = lifting or isinstance(exc, HoldLiftRefused)
            refused.append(say("recording {id}: {problem}", id=recording.id, problem=str(exc)))
            continue
        except StorageError as exc:  # the revision stands; the reconciler and the nightly job finish it
            session.rollback()
            tagged += 1
            unstored.append(say("recording {id}: tagged, but the store could not be reached: {problem}",
                                id=recording.id, problem=str(exc)))
            continue
        tagged += 1
        unstored += [say("recording {id}: tagged, but the store refused its retention: {problem}", id=c.recording_id,
                         problem=c.error) for c in change.retention if c.error]
    problems = _few(refused) + _few(unstored)
    if tagged and problems:  # the others stand: say both
        _ = gettext_for(language(request))
        raise _Refused(502 if unstored else 200, _(DONE["tagged"]).format(n=tagged), *problems)
    if problems:
        raise _Refused(403 if lifting else 400, *problems)
    return ("tagged", {"n": tagged}) if tagged else ("unchanged", {})


def _few(lines: list[str], shown: int = 20) -> list[str]:
    """The first *shown* of *lines*, and how many more there were."""
    return lines[:shown] + ([say("… and {n} more", n=len(lines) - shown)] if len(lines) > shown else [])


def _class(request: Request, session: Session, who: Caller, chosen: list[Recording],
           form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """Give the selection one sensitivity class, with a reason (all or none: a class one of them may not be
    lowered to refuses the whole change)."""
    try:
        changed = classify_recordings(session, who.user, chosen, to=form["sensitivity"], reason=form["reason"])
        session.commit()
    except PermissionDenied as exc:
        raise _Refused(403, str(exc)) from None
    except CaseStateError as exc:
        raise _Refused(400, str(exc)) from None
    return ("classified", {"n": len(changed), "to": class_word(request, form["sensitivity"])}) if changed else \
        ("unchanged", {})


def _export(request: Request, session: Session, who: Caller, chosen: list[Recording], reason: str) -> Response:
    """The selection as one signed BagIt package (the case export's checks for each item: rights, scope, class,
    a stated reason), a ZIP download."""
    config = request.app.state.config
    refs = [str(r.id) for r in chosen]
    name = f"recordings-{utcnow():%Y%m%d-%H%M%S}"
    try:
        return zip_download(session, name, say("{n} recordings", n=len(refs)), lambda out: export_package(
            session, config.store, out=out, by=who.user.name, now=utcnow(), refs=refs, reason=reason,
            signing=package_signing(config), language="en" if language(request) == "en" else "zh"))
    except PackageRefused as exc:
        raise _Refused(exc.status, str(exc)) from None
