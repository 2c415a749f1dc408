"""The administrator's pages: users (add, roles, password, deactivate) and the officer list (执法人员清单)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.errors import UserInvalid
from catalog.models import Officer
from catalog.users import ROLES, add_user, get_user, list_users, set_password, set_roles
from catalog.web.deps import DB, Caller, language, render, signed_in

__all__ = ["router"]

router = APIRouter()


def _page(request: Request, session: Session, who: Caller, status: int = 200, error: str | None = None) -> Response:
    officers = list(session.exec(select(Officer).order_by(col(Officer.number)).limit(500)))
    return render(request, "admin.html", language(request), status, user=who.user, csrf=who.web_session.csrf_token,
                  users=list_users(session), officers=officers, roles=ROLES, error=error)


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "admin")
    return who if not isinstance(who, Caller) else _page(request, session, who)


@router.post("/admin/users", include_in_schema=False)
def change_user(request: Request, session: DB, csrf: Annotated[str, Form()], name: Annotated[str, Form()],
                action: Annotated[str, Form()], roles: Annotated[list[str] | None, Form()] = None,
                password: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "") -> Response:
    """add (name, roles, password) | roles | password | deactivate | activate."""
    who = signed_in(request, session, "admin")
    if not isinstance(who, Caller):
        return who
    if csrf != who.web_session.csrf_token:
        raise HTTPException(403, "missing or wrong form token")
    try:
        if action == "add":
            add_user(session, name.strip(), roles=roles or [], display_name=display_name, by=who.user.name)
            session.flush()
            if password:
                set_password(session, name.strip(), password, by=who.user.name)
        elif action == "roles":
            set_roles(session, name, roles or [], by=who.user.name)
        elif action == "password":
            set_password(session, name, password, by=who.user.name)
        elif action in ("deactivate", "activate"):
            if name == who.user.name:
                raise UserInvalid("you cannot deactivate yourself")
            target = get_user(session, name)
            target.active = action == "activate"
            session.add(target)
            append_event(session, CustodyKind.USER_CHANGED, actor=who.user.name, details={"user": name,
                                                                                          "action": action})
        else:
            raise UserInvalid(f"unknown action {action!r}")
        session.commit()
    except UserInvalid as exc:
        session.rollback()
        return _page(request, session, who, 400, str(exc))
    return RedirectResponse("/admin", status_code=303)
