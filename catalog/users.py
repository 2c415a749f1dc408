"""People and their roles: who may do what (export needs a clerk, supervisor, auditor or admin).

The web application (issue 7) adds sign-in; the command line names the person with --by and the
catalogue checks that person's roles here.
"""
from __future__ import annotations

import contextlib
import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.errors import PermissionDenied, SignInRefused, UserInvalid
from catalog.models import User, WebSession
from catalog.types import utcnow

__all__ = ["LOCKOUT", "MAX_FAILURES", "MIN_PASSWORD", "PERMISSIONS", "ROLES", "add_user", "authenticate",
           "end_session", "find_session", "get_user", "list_users", "require", "set_password", "set_roles", "set_scope",
           "start_session"]

#: Consecutive failed sign-ins before the account is locked, and for how long.
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10
_HASHER = PasswordHasher()  # argon2id with the library's current parameters
_DUMMY_HASH = _HASHER.hash("not a real password, used to spend the same time on unknown names")

#: 执法人员 officer, 档案管理员 clerk, 监督人员 supervisor, 审计人员 auditor, 管理员 admin.
ROLES = ("officer", "clerk", "supervisor", "auditor", "admin")

#: Which roles may take each guarded action. What each may act on is the caller's scope (catalog.access):
#: an officer works on their own recordings (search, view, play, tag), a supervisor on their units'.
PERMISSIONS: dict[str, frozenset[str]] = {
    "export": frozenset({"clerk", "supervisor", "auditor", "admin"}),
    "search": frozenset({"officer", "clerk", "supervisor", "auditor", "admin"}),
    "view": frozenset({"officer", "clerk", "supervisor", "auditor", "admin"}),
    "play": frozenset({"officer", "clerk", "supervisor", "admin"}),  # auditors read logs, not footage
    "stamp": frozenset({"officer", "clerk", "admin"}),  # an officer tags their own recordings
    "cases": frozenset({"clerk", "supervisor", "auditor", "admin"}),  # read case files
    "manage_cases": frozenset({"clerk", "admin"}),  # open, close, reopen, link and unlink
    "retention": frozenset({"clerk", "supervisor", "auditor", "admin"}),  # see what is due and past batches
    "propose_disposal": frozenset({"clerk", "admin"}),  # start a sweep (a batch awaiting approval)
    "approve_disposal": frozenset({"supervisor", "admin"}),  # a second, named person approves and disposes
    "spotcheck": frozenset({"supervisor", "admin"}),
    "audit": frozenset({"auditor", "admin"}),
    "statistics": frozenset({"supervisor", "auditor", "admin", "clerk"}),
    "admin": frozenset({"admin"}),
}


def _scope_problems(officer_number: str | None, units: list[str]) -> list[str]:
    problems = []
    if officer_number is not None and not 1 <= len(officer_number.strip()) <= 32:
        problems.append(f"officer number {officer_number!r} must be 1-32 characters")
    problems += [f"unit {u!r} must be 1-200 characters" for u in units if not 1 <= len(u.strip()) <= 200]
    return problems


def add_user(session: Session, name: str, *, roles: list[str], display_name: str = "", by: str,
             officer_number: str | None = None, units: list[str] | None = None) -> User:
    """A new user. An officer's *officer_number* (警号) makes their own recordings theirs to see; a supervisor's
    *units* limit them to those units' officers (none: the whole agency)."""
    units = units or []
    problems = _scope_problems(officer_number, units)
    if not name.strip() or len(name) > 100:
        problems.append(f"user name {name!r} must be 1-100 characters")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        problems.append(f"roles must be some of {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")
    if session.exec(select(User.id).where(User.name == name)).first() is not None:
        problems.append(f"user {name!r} already exists")
    if problems:
        raise UserInvalid("; ".join(problems))
    user = User(name=name, display_name=display_name, roles=sorted(set(roles)), active=True, created_at=utcnow(),
                officer_number=officer_number.strip() if officer_number else None,
                units=sorted({u.strip() for u in units}))
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={
        "user": name, "roles": user.roles, "action": "added", "officer_number": user.officer_number,
        "units": user.units})
    return user


def set_scope(session: Session, name: str, *, officer_number: str | None, units: list[str], by: str) -> User:
    """Tie the user to an officer number and/or units (what they may see); recorded with the old values."""
    problems = _scope_problems(officer_number, units)
    if problems:
        raise UserInvalid("; ".join(problems))
    user = get_user(session, name)
    old = {"officer_number": user.officer_number, "units": list(user.units)}
    user.officer_number = officer_number.strip() if officer_number else None
    user.units = sorted({u.strip() for u in units})
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={
        "user": name, "action": "scope", "old": old, "new": {"officer_number": user.officer_number,
                                                              "units": user.units}})
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


def get_user(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise UserInvalid(f"no user {name!r}")
    return user


def set_password(session: Session, name: str, password: str, *, by: str) -> User:
    """Store an argon2id hash of *password* (at least MIN_PASSWORD characters) and unlock the account."""
    if len(password) < MIN_PASSWORD:
        raise UserInvalid(f"a password needs at least {MIN_PASSWORD} characters (got {len(password)})")
    user = get_user(session, name)
    user.password_hash = _HASHER.hash(password)
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={"user": name, "action": "password set"})
    return user


def set_roles(session: Session, name: str, roles: list[str], *, by: str) -> User:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise UserInvalid(f"roles must be some of {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")
    user = get_user(session, name)
    old = list(user.roles)
    user.roles = sorted(set(roles))
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={"user": name, "action": "roles",
                                                                       "old": old, "new": user.roles})
    return user


def authenticate(session: Session, name: str, password: str, *, now: datetime, source: str = "") -> User:
    """The user if *password* is right; SignInRefused otherwise (the same words for a wrong name or password).

    After MAX_FAILURES failures in a row the account is locked for LOCKOUT. Every attempt is a custody event.
    """
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None or not user.active or user.password_hash is None:
        with contextlib.suppress(VerificationError):
            _HASHER.verify(_DUMMY_HASH, password + "x")
        append_event(session, CustodyKind.SIGN_IN_FAILED, actor=name[:100], details={"reason": "unknown or inactive",
                                                                                     "source": source})
        session.commit()
        raise SignInRefused("wrong user name or password")
    if user.locked_until is not None and user.locked_until > now:
        append_event(session, CustodyKind.SIGN_IN_FAILED, actor=name, details={"reason": "locked", "source": source})
        session.commit()
        raise SignInRefused(f"too many failed sign-ins: locked until {user.locked_until.isoformat()}",
                            locked_until=user.locked_until)
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        locked = user.failed_logins >= MAX_FAILURES
        if locked:
            user.locked_until = now + LOCKOUT
        session.add(user)
        append_event(session, CustodyKind.SIGN_IN_FAILED, actor=name, details={
            "reason": "wrong password", "failures": user.failed_logins, "locked": locked, "source": source})
        session.commit()
        raise SignInRefused("wrong user name or password") from None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    append_event(session, CustodyKind.SIGNED_IN, actor=name, details={"source": source})
    session.commit()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, *, now: datetime, ttl: timedelta) -> tuple[str, WebSession]:
    """A new browser session: the random token goes in the cookie, only its hash into the catalogue."""
    assert user.id is not None
    token = secrets.token_urlsafe(32)
    row = WebSession(token_sha256=_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                     created_at=now, expires_at=now + ttl)
    session.add(row)
    session.commit()
    return token, row


def find_session(session: Session, token: str | None, *, now: datetime) -> tuple[WebSession, User] | None:
    if not token:
        return None
    row = session.exec(select(WebSession).where(WebSession.token_sha256 == _digest(token))).first()
    if row is None or row.expires_at is None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return row, user


def end_session(session: Session, token: str, *, actor: str) -> None:
    row = session.exec(select(WebSession).where(WebSession.token_sha256 == _digest(token))).first()
    if row is not None:
        session.delete(row)
        append_event(session, CustodyKind.SIGNED_OUT, actor=actor, details={})
        session.commit()
