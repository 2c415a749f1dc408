"""The administrator's pages: users (roles, passwords, what each may see), officers with their certificates
(执法证), stations, devices, and the retention policy in force.

Every change goes through the same catalogue function as the command line and is a custody event.
The retention policy is shown, not edited here: it comes from the deployment's configuration
(EVIDENCE_ROUTINE_RETENTION_MONTHS, EVIDENCE_CASE_TYPES), which is under the agency's change control.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from catalog.access import user_scope
from catalog.devices import assign_device
from catalog.errors import UserInvalid
from catalog.listings import list_devices, list_officers, officer_names, stations_overview
from catalog.policy_adoption import PolicyTerms, adopted_policy
from catalog.registry import OfficerForm, RegistryInvalid, certificate_state, save_officer, save_station
from catalog.said import Said, listed, said_in, say
from catalog.types import utcnow
from catalog.users import ROLES, add_user, list_users, set_active, set_password, set_roles, set_scope
from evidence.web.deps import DB, Caller, WebConfig, done, language, render, signed_in
from evidence.web.i18n import gettext_for

__all__ = ["router"]

router = APIRouter()
SECTIONS = (("/admin", "Users"), ("/admin/officers", "Officers"), ("/admin/stations", "Stations"),
            ("/admin/devices", "Devices"), ("/admin/policy", "Retention policy"))


def _render(request: Request, who: Caller, template: str, status: int = 200, **context: Any) -> Response:
    return render(request, template, language(request), status, user=who.user, csrf=who.web_session.csrf_token,
                  sections=SECTIONS, **context)


def _show(request: Request, session: Session, page: Callable[[Request, Session, Caller], Response]) -> Response:
    """A GET of one of the pages: the administrator's, or the sign-in page / a refusal."""
    who = signed_in(request, session, "admin")
    return page(request, session, who)


def _apply(request: Request, session: Session, who: Caller, change: Callable[[], object],
           page: Callable[..., Response], back: str, said: str, **values: str) -> Response:
    """Make *change* and commit, then go *back* saying so (deps.DONE[*said*]); a refused change shows *page* again
    with the reason (400)."""
    try:
        change()
        session.commit()
    except (RegistryInvalid, UserInvalid) as exc:
        session.rollback()
        return page(request, session, who, 400, str(exc))
    return done(request, who, RedirectResponse(back, status_code=303), said, **values)


def _users_page(request: Request, session: Session, who: Caller, status: int = 200,
                error: str | None = None) -> Response:
    translate = gettext_for(language(request))
    users = [(u, said_in(user_scope(u).describe(), translate)) for u in list_users(session)]
    return _render(request, who, "admin.html", status, users=users, roles=ROLES, error=error)


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin(request: Request, session: DB) -> Response:
    return _show(request, session, _users_page)


@router.post("/admin/users", include_in_schema=False)
def change_user(request: Request, session: DB, csrf: Annotated[str, Form()], name: Annotated[str, Form()],
                action: Annotated[str, Form()], roles: Annotated[list[str] | None, Form()] = None,
                password: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "",
                officer_number: Annotated[str, Form()] = "", units: Annotated[str, Form()] = "") -> Response:
    """add (name, roles, password, officer number, units) | roles | password | scope | deactivate | activate.
    *units* are comma-separated."""
    who = signed_in(request, session, "admin", csrf)
    unit_list = [u.strip() for u in units.replace("，", ",").split(",") if u.strip()]

    def change() -> None:
        if action == "add":
            add_user(session, name.strip(), roles=roles or [], display_name=display_name, by=who.user.name,
                     officer_number=officer_number.strip() or None, units=unit_list)
            session.flush()
            if password:
                set_password(session, name.strip(), password, by=who.user.name)
        elif action == "roles":
            if name == who.user.name and "admin" not in (roles or []):
                raise UserInvalid(say("you cannot take the admin role from yourself (another administrator can)"))
            set_roles(session, name, roles or [], by=who.user.name)
        elif action == "password":
            set_password(session, name, password, by=who.user.name)
        elif action == "scope":
            set_scope(session, name, officer_number=officer_number.strip() or None, units=unit_list,
                      by=who.user.name)
        elif action in ("deactivate", "activate"):
            if name == who.user.name:
                raise UserInvalid(say("you cannot deactivate yourself"))
            set_active(session, name, action == "activate", by=who.user.name)  # deactivating ends sessions
        else:
            raise UserInvalid(say("unknown action {action!r}", action=action))

    return _apply(request, session, who, change, _users_page, "/admin", f"user_{action}", person=name.strip())


# -- officers ------------------------------------------------------------------------------------------------
def _officers_page(request: Request, session: Session, who: Caller, status: int = 200, error: str | None = None,
                   form: dict[str, str] | None = None) -> Response:
    today = request.app.state.config.today()
    rows = [(o, certificate_state(o.valid_from.date() if o.valid_from else None,
                                  o.valid_until.date() if o.valid_until else None, today))
            for o in list_officers(session)]
    return _render(request, who, "admin_officers.html", status, officers=rows, error=error, form=form or {})


@router.get("/admin/officers", response_class=HTMLResponse, include_in_schema=False)
def officers(request: Request, session: DB) -> Response:
    return _show(request, session, _officers_page)


@router.post("/admin/officers", include_in_schema=False)
def change_officer(request: Request, session: DB, csrf: Annotated[str, Form()], number: Annotated[str, Form()],
                   name: Annotated[str, Form()] = "", unit_number: Annotated[str, Form()] = "",
                   unit_name: Annotated[str, Form()] = "", post: Annotated[str, Form()] = "",
                   certificate_number: Annotated[str, Form()] = "", category: Annotated[str, Form()] = "",
                   area: Annotated[str, Form()] = "", valid_from: Annotated[str, Form()] = "",
                   valid_until: Annotated[str, Form()] = "") -> Response:
    """Add an officer or replace their record (matched by number)."""
    who = signed_in(request, session, "admin", csrf)
    typed = {"number": number, "name": name, "unit_number": unit_number, "unit_name": unit_name, "post": post,
             "certificate_number": certificate_number, "category": category, "area": area,
             "valid_from": valid_from, "valid_until": valid_until}
    days: dict[str, date | None] = {}
    problems: list[Said] = []
    for field in ("valid_from", "valid_until"):
        try:
            days[field] = date.fromisoformat(typed[field]) if typed[field].strip() else None
        except ValueError:
            problems.append(say("valid_from: {typed!r} is not a date (YYYY-MM-DD)", typed=typed[field])
                            if field == "valid_from" else
                            say("valid_until: {typed!r} is not a date (YYYY-MM-DD)", typed=typed[field]))
    if problems:
        return _officers_page(request, session, who, 400, listed(problems, sep="; "), typed)
    record = OfficerForm(number=number, name=name, unit_number=unit_number, unit_name=unit_name, post=post,
                         certificate_number=certificate_number, category=category, area=area,
                         valid_from=days["valid_from"], valid_until=days["valid_until"])

    def again(r: Request, s: Session, w: Caller, status: int, error: str) -> Response:  # keeps what was typed
        return _officers_page(r, s, w, status, error, typed)

    return _apply(request, session, who, lambda: save_officer(session, record, by=who.user.name), again,
                  "/admin/officers", "officer_saved", officer=number.strip())


# -- stations and devices ------------------------------------------------------------------------------------
def _stations_page(request: Request, session: Session, who: Caller, status: int = 200,
                   error: str | None = None) -> Response:
    overview = stations_overview(session)
    return _render(request, who, "admin_stations.html", status, stations=overview.stations, keys=overview.keys,
                   last=overview.last_docked, error=error)


@router.get("/admin/stations", response_class=HTMLResponse, include_in_schema=False)
def stations(request: Request, session: DB) -> Response:
    return _show(request, session, _stations_page)


@router.post("/admin/stations/{code}", include_in_schema=False)
def change_station(code: str, request: Request, session: DB, csrf: Annotated[str, Form()],
                   name: Annotated[str, Form()], lat: Annotated[str, Form()] = "",
                   lon: Annotated[str, Form()] = "", unit_number: Annotated[str, Form()] = "") -> Response:
    who = signed_in(request, session, "admin", csrf)
    try:
        place = [float(v) if v.strip() else None for v in (lat, lon)]
    except ValueError:
        return _stations_page(request, session, who, 400, say("({lat!r}, {lon!r}) are not numbers", lat=lat, lon=lon))
    return _apply(request, session, who,
                  lambda: save_station(session, code, name=name, lat=place[0], lon=place[1], by=who.user.name,
                                       unit_number=unit_number),
                  _stations_page, "/admin/stations", "station_saved", station=code)


def _devices_page(request: Request, session: Session, who: Caller, status: int = 200,
                  error: str | None = None) -> Response:
    return _render(request, who, "admin_devices.html", status, devices=list_devices(session),
                   names=officer_names(session), error=error)


@router.get("/admin/devices", response_class=HTMLResponse, include_in_schema=False)
def devices(request: Request, session: DB) -> Response:
    return _show(request, session, _devices_page)


@router.post("/admin/devices/{serial}", include_in_schema=False)
def change_device(serial: str, request: Request, session: DB, csrf: Annotated[str, Form()],
                  officer_number: Annotated[str, Form()] = "", unit_number: Annotated[str, Form()] = "",
                  unit_name: Annotated[str, Form()] = "") -> Response:
    who = signed_in(request, session, "admin", csrf)
    return _apply(request, session, who,
                  lambda: assign_device(session, serial, officer_number=officer_number, unit_number=unit_number,
                                        unit_name=unit_name, by=who.user.name, now=utcnow()),
                  _devices_page, "/admin/devices", "device_saved", device=serial)


@router.get("/admin/policy", response_class=HTMLResponse, include_in_schema=False)
def policy(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "admin")
    config: WebConfig = request.app.state.config
    adopted = adopted_policy(session)
    shown = adopted.terms.policy() if adopted is not None else config.policy  # what is in force, not this server's
    differs = adopted is not None and adopted.terms != PolicyTerms.with_approval(
        config.policy, approval_required=config.disposal_approval)
    return _render(request, who, "admin_policy.html", policy=shown, access_reason=config.access_reason,
                   types=sorted(shown.case_types.values(), key=lambda t: t.code), adopted=adopted, differs=differs)
