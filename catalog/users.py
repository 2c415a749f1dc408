"""People and their roles: who may do what (export needs a clerk, supervisor, auditor or admin).

The web application (issue 7) adds sign-in; the command line names the person with --by and the
catalogue checks that person's roles here.
"""
from __future__ import annotations

from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.errors import PermissionDenied, UserInvalid
from catalog.models import User
from catalog.types import utcnow

__all__ = ["PERMISSIONS", "ROLES", "add_user", "list_users", "require"]

#: 执法人员 officer, 档案管理员 clerk, 监督人员 supervisor, 审计人员 auditor, 管理员 admin.
ROLES = ("officer", "clerk", "supervisor", "auditor", "admin")

#: Which roles may take each guarded action.
PERMISSIONS: dict[str, frozenset[str]] = {
    "export": frozenset({"clerk", "supervisor", "auditor", "admin"}),
}


def add_user(session: Session, name: str, *, roles: list[str], display_name: str = "", by: str) -> User:
    problems = []
    if not name.strip() or len(name) > 100:
        problems.append(f"user name {name!r} must be 1-100 characters")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        problems.append(f"roles must be some of {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")
    if session.exec(select(User.id).where(User.name == name)).first() is not None:
        problems.append(f"user {name!r} already exists")
    if problems:
        raise UserInvalid("; ".join(problems))
    user = User(name=name, display_name=display_name, roles=sorted(set(roles)), active=True, created_at=utcnow())
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={"user": name, "roles": user.roles,
                                                                       "action": "added"})
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.name))))


def require(session: Session, name: str, action: str) -> User:
    """The active user *name* if one of their roles allows *action*; PermissionDenied otherwise."""
    allowed = PERMISSIONS[action]
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None or not user.active:
        raise PermissionDenied(f"{name!r} is not an active user of this archive; an administrator adds one with "
                               f"`evidence user add {name} --role clerk`")
    if not allowed & set(user.roles):
        raise PermissionDenied(f"user {name!r} (roles: {', '.join(user.roles)}) may not {action}: that needs one of "
                               f"{', '.join(sorted(allowed))}")
    return user
