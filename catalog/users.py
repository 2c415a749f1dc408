"""People and their roles: who may do what, who is calling from the command line, and signing in.

The web application signs people in with a password (`authenticate`, sessions). The command line takes the
caller from the operating system: `identify` finds the archive user bound to the caller's OS login
(`os_user`) and `decide_caller` (pure) says whether that user may take the action. `--by` is only an
assertion that must name the same user.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from catalog.access import EVERYTHING, Scope, user_scope
from catalog.custody import CustodyKind, append_event
from catalog.errors import PermissionDenied, SignInRefused, UserInvalid
from catalog.models import CustodyEvent, SignInDevice, User, ViewingAccess, WebSession
from catalog.types import utcnow

__all__ = [
    "ADDRESS_FREE_FAILURES",
    "ADDRESS_MAX_DELAY",
    "ADDRESS_WINDOW",
    "ALL_ROLES",
    "BASE_DELAY",
    "BOOTSTRAP",
    "DEVICE_COOKIE",
    "DEVICE_COOKIE_TOKENS",
    "DEVICE_TTL",
    "FAILURE_MEMORY",
    "MAX_FAILURES",
    "MIN_PASSWORD",
    "NAME_MAX_DELAY",
    "PERMISSIONS",
    "ROLES",
    "SERVICE_ACTIONS",
    "SERVICE_ROLES",
    "Identity",
    "OsAccount",
    "SignIn",
    "add_user",
    "authenticate",
    "backoff",
    "decide_caller",
    "end_session",
    "end_sessions",
    "find_session",
    "get_user",
    "identify",
    "list_users",
    "os_account",
    "parse_device_cookie",
    "require",
    "set_active",
    "set_os_user",
    "set_password",
    "set_roles",
    "set_scope",
    "sign_in",
    "start_session",
]

#: Sign-in backoff. A name may fail MAX_FAILURES times in a row; then it waits BASE_DELAY, doubling with each
#: further failure, never more than NAME_MAX_DELAY after the last failure (no permanent lock: an attacker can
#: keep an administrator waiting at most NAME_MAX_DELAY past their own last guess, and gets one guess per wait).
#: One address may fail ADDRESS_FREE_FAILURES times within ADDRESS_WINDOW (over any names); then it waits
#: BASE_DELAY, doubling, at most ADDRESS_MAX_DELAY. Failures are counted from the custody log, for existing and
#: unknown names alike, so the answers never tell whether a name exists; a name forgets its failures
#: FAILURE_MEMORY after the last one, on a successful sign-in, or when an administrator sets a new password.
MAX_FAILURES = 5
BASE_DELAY = timedelta(seconds=30)
NAME_MAX_DELAY = timedelta(minutes=5)
FAILURE_MEMORY = timedelta(hours=24)
ADDRESS_FREE_FAILURES = 20
ADDRESS_WINDOW = timedelta(minutes=15)
ADDRESS_MAX_DELAY = timedelta(minutes=15)
#: Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): a browser that signed in as a name
#: keeps a random token for it; attempts on that name carrying the token wait only for their own failures
#: (MAX_FAILURES free, then BASE_DELAY doubling, at most NAME_MAX_DELAY), never for the name's or the address's, so
#: outsiders cannot lock a person out of a browser they have signed in with (`sign_in`). A token not used to sign
#: in for DEVICE_TTL is forgotten; one browser keeps tokens for its last DEVICE_COOKIE_TOKENS people.
DEVICE_COOKIE = "evidence_device"
DEVICE_TTL = timedelta(days=90)
DEVICE_COOKIE_TOKENS = 8
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
_CHECKED = ("wrong password", "unknown or inactive")  # failures where a password was actually tried
MIN_PASSWORD = 10
_HASHER = PasswordHasher()  # argon2id with the library's current parameters
_DUMMY_HASH = _HASHER.hash("not a real password, used to spend the same time on unknown names")

#: 执法人员 officer, 档案管理员 clerk, 监督人员 supervisor, 审计人员 auditor, 管理员 admin: the people.
ROLES = ("officer", "clerk", "supervisor", "auditor", "admin")
#: A service account: the dock station and its workers (ingest, archive, anchor, apply retention, verify).
SERVICE_ROLES = ("station",)
ALL_ROLES = ROLES + SERVICE_ROLES

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
    # the command line's service actions (SERVICE_ACTIONS)
    "operate_station": frozenset({"station", "admin"}),  # ingest, demo, station watch, worker, archive, anchor
    "apply_retention": frozenset({"station", "clerk", "admin"}),  # bring retention in line with the rules
    "verify": frozenset({"station", "auditor", "admin"}),  # re-hash, decode checks (recorded verdicts)
}
#: Actions the station takes on its own. The OS account that owns the catalogue (see `identify`) may take them
#: as the station (`station:CODE`) without being bound to an archive user: the embedded default needs no set-up.
SERVICE_ACTIONS = frozenset({"operate_station", "apply_retention", "verify"})
#: Adding or binding the first administrator while no active administrator is bound to an OS account.
BOOTSTRAP = "bootstrap_admin"
_LOGIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")


def _scope_problems(officer_number: str | None, units: list[str]) -> list[str]:
    problems = []
    if officer_number is not None and not 1 <= len(officer_number.strip()) <= 32:
        problems.append(f"officer number {officer_number!r} must be 1-32 characters")
    problems += [f"unit {u!r} must be 1-200 characters" for u in units if not 1 <= len(u.strip()) <= 200]
    return problems


def _login_problem(os_user: str) -> str | None:
    if not _LOGIN.fullmatch(os_user):
        return (f"OS login {os_user!r} must be 1-64 letters, digits, '_', '.', '@' or '-' (not starting with "
                f"'.', '@' or '-')")
    return None


def _os_user_taken(session: Session, os_user: str, name: str) -> str | None:
    other = session.exec(select(User.name).where(User.os_user == os_user, User.name != name)).first()
    return None if other is None else f"OS login {os_user!r} is already bound to user {other!r}"


def add_user(session: Session, name: str, *, roles: list[str], display_name: str = "", by: str,
             officer_number: str | None = None, units: list[str] | None = None, os_user: str | None = None) -> User:
    """A new user. An officer's *officer_number* (警号) makes their own recordings theirs to see; a supervisor's
    *units* limit them to those units' officers (none: the whole agency). *os_user* binds an operating-system
    login: `evidence` commands run from it act as this user."""
    units = units or []
    problems = _scope_problems(officer_number, units)
    if not name.strip() or len(name) > 100:
        problems.append(f"user name {name!r} must be 1-100 characters")
    unknown = sorted(set(roles) - set(ALL_ROLES))
    if unknown or not roles:
        problems.append(f"roles must be some of {', '.join(ALL_ROLES)}; got {', '.join(roles) or 'none'}")
    if session.exec(select(User.id).where(User.name == name)).first() is not None:
        problems.append(f"user {name!r} already exists")
    if os_user is not None:
        problems += [p for p in (_login_problem(os_user), _os_user_taken(session, os_user, name)) if p]
    if problems:
        raise UserInvalid("; ".join(problems))
    user = User(name=name, display_name=display_name, roles=sorted(set(roles)), active=True, created_at=utcnow(),
                officer_number=officer_number.strip() if officer_number else None,
                units=sorted({u.strip() for u in units}), os_user=os_user)
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={
        "user": name, "roles": user.roles, "action": "added", "officer_number": user.officer_number,
        "units": user.units, "os_user": os_user})
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


def set_os_user(session: Session, name: str, os_user: str | None, *, by: str) -> User:
    """Bind the user to an operating-system login (None: unbind); recorded with the old value."""
    user = get_user(session, name)
    if os_user is not None:
        problems = [p for p in (_login_problem(os_user), _os_user_taken(session, os_user, name)) if p]
        if problems:
            raise UserInvalid("; ".join(problems))
    old = user.os_user
    user.os_user = os_user
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={"user": name, "action": "os_user",
                                                                       "old": old, "new": os_user})
    return user


def set_active(session: Session, name: str, active: bool, *, by: str) -> User:
    """Deactivate (every web session of the user ends) or re-activate (old sessions stay ended)."""
    user = get_user(session, name)
    user.active = active
    session.add(user)
    ended = 0 if active else end_sessions(session, user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={
        "user": name, "action": "activate" if active else "deactivate", "sessions_ended": ended})
    return user


def end_sessions(session: Session, user: User) -> int:
    """Delete every web session of *user* (a new password, a deactivation); the number ended."""
    if user.id is None:
        return 0
    ended = session.exec(select(func.count()).select_from(WebSession).where(WebSession.user_id == user.id)).one()
    session.execute(delete(WebSession).where(col(WebSession.user_id) == user.id))
    _forget_ended_viewings(session)
    return int(ended)


def _forget_ended_viewings(session: Session) -> None:
    """Drop the "already recorded in this session" marks of sessions that no longer exist (the custody events
    they stand for stay): the table holds live sessions only."""
    session.execute(delete(ViewingAccess).where(col(ViewingAccess.session_key).not_in(select(WebSession.token_sha256))))


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
    """Store an argon2id hash of *password* (at least MIN_PASSWORD characters), forgive past failed sign-ins and
    end every web session of the user (whoever held the old password is signed out)."""
    if len(password) < MIN_PASSWORD:
        raise UserInvalid(f"a password needs at least {MIN_PASSWORD} characters (got {len(password)})")
    user = get_user(session, name)
    user.password_hash = _HASHER.hash(password)
    user.failed_logins, user.locked_until, user.sign_in_reset_at = 0, None, utcnow()
    session.add(user)
    ended = end_sessions(session, user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={"user": name, "action": "password set",
                                                                       "sessions_ended": ended})
    return user


def set_roles(session: Session, name: str, roles: list[str], *, by: str) -> User:
    unknown = sorted(set(roles) - set(ALL_ROLES))
    if unknown or not roles:
        raise UserInvalid(f"roles must be some of {', '.join(ALL_ROLES)}; got {', '.join(roles) or 'none'}")
    user = get_user(session, name)
    old = list(user.roles)
    user.roles = sorted(set(roles))
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={"user": name, "action": "roles",
                                                                       "old": old, "new": user.roles})
    return user


# -- who is calling from the command line ---------------------------------------------------------------------


@dataclass(frozen=True)
class OsAccount:
    """The operating-system account running a command: the real uid and its login name."""

    uid: int
    login: str

    def __str__(self) -> str:
        return f"OS account {self.login!r} (uid {self.uid})"


def os_account() -> OsAccount:
    """The caller's real uid (os.getuid(), not $USER, which the caller sets) and its name from the password
    database (the decimal uid when it has no entry)."""
    uid = os.getuid()
    try:
        login = pwd.getpwuid(uid).pw_name
    except KeyError:
        login = str(uid)
    return OsAccount(uid=uid, login=login)


@dataclass(frozen=True)
class Identity:
    """Who a command acts as: *actor* goes into the custody log; *user* is the archive user (None for the
    station service acting as the catalogue's owner, or the bootstrap of the first administrator)."""

    actor: str
    account: OsAccount
    user: str | None
    roles: tuple[str, ...]
    scope: Scope
    how: str  # "bound user", "station service", "bootstrap"

    def may(self, action: str) -> bool:
        return bool(PERMISSIONS[action] & set(self.roles))


def decide_caller(*, account: OsAccount, action: str, bound: User | None, asserted: str | None,
                  owner_uid: int | None, station: str, admin_bound: bool) -> Identity:
    """Who *account* acts as for *action*, or PermissionDenied naming the account and what is missing. Pure.

    * *bound*: the archive user whose `os_user` is the account's login. It must be active, have a role that
      allows the action, and be the user *asserted* with --by (if any). The station's own actions
      (`operate_station`) are recorded as `station:STATION` whoever operates it.
    * An unbound account, or one whose user lacks the role, takes a service action (SERVICE_ACTIONS) as the
      station `station:STATION` only if it owns the catalogue (*owner_uid*): it can already read the station's
      signing key and write the catalogue's files, so this adds no trust.
    * BOOTSTRAP: while no active administrator is bound to an OS account (*admin_bound*), the catalogue's owner
      or root may add or bind the first one; afterwards it needs the admin role like any `admin` action.
    """
    station_actor = f"station:{station}"
    owner = owner_uid is not None and account.uid == owner_uid
    if action == BOOTSTRAP:
        first = _bootstrap(account, bound, asserted, owner_uid=owner_uid, owner=owner, admin_bound=admin_bound)
        if first is not None:
            return first
        action = "admin"
    if bound is not None:
        identity = _as_bound_user(account, action, bound, asserted, owner=owner, station_actor=station_actor)
        if identity is not None:
            return identity
    if action in SERVICE_ACTIONS and owner:
        if asserted is not None and asserted != station_actor:
            raise PermissionDenied(f"--by {asserted!r} does not match: {account} owns the catalogue and acts as "
                                   f"{station_actor!r}, and is bound to no archive user")
        return Identity(actor=station_actor, account=account, user=None, roles=SERVICE_ROLES, scope=EVERYTHING,
                        how="station service")
    hint = (f"an administrator binds it with `evidence user bind NAME --os-user {account.login}` (or `evidence "
            f"user add NAME --role ROLE --os-user {account.login}`)")
    if not admin_bound:
        hint += (f"; no administrator is bound yet: the account that owns the catalogue (uid {owner_uid}) or root "
                 f"adds the first with `evidence user add admin --role admin --os-user LOGIN`")
    raise PermissionDenied(f"{account} is not bound to an archive user, so it may not {action}; {hint}")


def _bootstrap(account: OsAccount, bound: User | None, asserted: str | None, *, owner_uid: int | None, owner: bool,
               admin_bound: bool) -> Identity | None:
    """The first administrator's bootstrap identity while none is bound, for the owner or root; None when the
    act needs the admin role like any other (PermissionDenied when nobody could add the first one)."""
    if not admin_bound and (owner or account.uid == 0):
        if asserted is not None and bound is not None and asserted != bound.name:
            raise PermissionDenied(f"--by {asserted!r} does not match: {account} is archive user {bound.name!r}")
        return Identity(actor=f"bootstrap:{account.login}", account=account, user=None, roles=("admin",),
                        scope=EVERYTHING, how="bootstrap")
    if not admin_bound and bound is None:
        raise PermissionDenied(
            f"{account} may not add the first administrator: no active administrator is bound to an OS account "
            f"yet, and only the account that owns the catalogue (uid {owner_uid}) or root may add one")
    return None


def _as_bound_user(account: OsAccount, action: str, bound: User, asserted: str | None, *, owner: bool,
                   station_actor: str) -> Identity | None:
    """The bound archive user's identity for *action*; None when the user lacks the role but the account owns the
    catalogue and the action is a service action (it acts as the station); PermissionDenied otherwise."""
    allowed = PERMISSIONS[action]
    if asserted is not None and asserted != bound.name:
        raise PermissionDenied(f"--by {asserted!r} does not match: {account} is archive user {bound.name!r}")
    if not bound.active:
        raise PermissionDenied(f"{account} is bound to archive user {bound.name!r}, which is inactive; an "
                               f"administrator re-activates it with `evidence user activate {bound.name}`")
    if allowed & set(bound.roles):
        station_role = action in SERVICE_ACTIONS and "station" in bound.roles and not (set(ROLES) & allowed
                                                                                       & set(bound.roles))
        actor = station_actor if action == "operate_station" or station_role else bound.name
        return Identity(actor=actor, account=account, user=bound.name, roles=tuple(bound.roles),
                        scope=user_scope(bound), how="bound user")
    if not (action in SERVICE_ACTIONS and owner):
        raise PermissionDenied(f"archive user {bound.name!r} ({account}; roles: {', '.join(bound.roles)}) may "
                               f"not {action}: that needs one of {', '.join(sorted(allowed))}")
    return None


def identify(session: Session, action: str, *, account: OsAccount, asserted: str | None, owner_uid: int | None,
             station: str) -> Identity:
    """Load what `decide_caller` needs from the catalogue and decide (the one check every command makes)."""
    bound = session.exec(select(User).where(User.os_user == account.login)).first()
    admin_bound = any(u.active and "admin" in u.roles and u.os_user
                      for u in session.exec(select(User).where(col(User.os_user).is_not(None))))
    return decide_caller(account=account, action=action, bound=bound, asserted=asserted, owner_uid=owner_uid,
                         station=station, admin_bound=admin_bound)


# -- signing in on the web ------------------------------------------------------------------------------------


def backoff(failures: int, free: int, cap: timedelta) -> timedelta:
    """How long to wait after the last of *failures*: nothing for the first *free - 1*, then BASE_DELAY doubling
    with each further failure, at most *cap*. Pure."""
    if failures < free:
        return timedelta(0)
    return min(cap, BASE_DELAY * (1 << min(failures - free, 20)))


def parse_device_cookie(value: str | None) -> list[str]:
    """The device tokens a browser's device cookie holds ('.'-separated; at most DEVICE_COOKIE_TOKENS, anything
    that is not a token is dropped). Pure."""
    tokens = [t for t in (value or "").split(".") if _TOKEN.fullmatch(t)]
    return list(dict.fromkeys(tokens))[:DEVICE_COOKIE_TOKENS]


def _live_devices(session: Session, tokens: list[str], now: datetime) -> dict[str, SignInDevice]:
    """The presented tokens that name a remembered device (used to sign in within DEVICE_TTL), token -> row."""
    if not tokens:
        return {}
    by_digest = {_digest(t): t for t in tokens}
    rows = session.exec(select(SignInDevice).where(col(SignInDevice.token_sha256).in_(list(by_digest)),
                                                   col(SignInDevice.signed_in_at) > now - DEVICE_TTL))
    return {by_digest[row.token_sha256]: row for row in rows}


def _device_of(session: Session, user: User | None, tokens: list[str],
               now: datetime) -> tuple[SignInDevice, str] | None:
    """The device (and its token) among *tokens* that has signed in as *user*; None for an unknown, inactive or
    password-less name (those get exactly the answers of an unknown device). The same query whatever the name."""
    live = _live_devices(session, tokens, now)
    if user is None or user.id is None or not user.active or user.password_hash is None:
        return None
    for token, row in live.items():
        if row.user_id == user.id:
            return row, token
    return None


def _failures(session: Session, *, since: datetime, name: str | None = None, source: str | None = None,
              device: int | None = None) -> tuple[int, datetime | None]:
    """(count, last time) of checked failed sign-ins since *since* for a name or from an address, made without a
    device cookie; or those made with the remembered *device*."""
    marked = col(CustodyEvent.details)["device"]
    query = select(func.count(), func.max(CustodyEvent.at)).where(
        CustodyEvent.kind == CustodyKind.SIGN_IN_FAILED.value, col(CustodyEvent.at) > since,
        col(CustodyEvent.details)["reason"].as_string().in_(_CHECKED),
        marked.as_string().is_(None) if device is None else marked.as_integer() == device)
    if name is not None:
        query = query.where(CustodyEvent.actor == name[:100])
    if source is not None:
        query = query.where(col(CustodyEvent.details)["source"].as_string() == source)
    count, last = session.exec(query).one()
    return int(count or 0), last


def _waits(session: Session, user: User | None, name: str, source: str, now: datetime,
           device: SignInDevice | None) -> tuple[datetime, str]:
    """Until when sign-in for *name* from *source* must wait, and why. With a remembered *device* only that
    device's own failures count; otherwise the later of the name's and the address's backoffs."""
    since = now - FAILURE_MEMORY
    if user is not None and user.sign_in_reset_at is not None and user.sign_in_reset_at > since:
        since = user.sign_in_reset_at
    if device is not None:
        assert device.signed_in_at is not None
        count, last = _failures(session, since=max(since, device.signed_in_at), device=device.id)
        return (last + backoff(count, MAX_FAILURES, NAME_MAX_DELAY), "device") if last else (now, "")
    count, last = _failures(session, since=since, name=name)
    until, why = (last + backoff(count, MAX_FAILURES, NAME_MAX_DELAY), "name") if last else (now, "")
    if source:
        count, last = _failures(session, since=now - ADDRESS_WINDOW, source=source)
        if last is not None:
            by_address = last + backoff(count, ADDRESS_FREE_FAILURES, ADDRESS_MAX_DELAY)
            if by_address > until:
                until, why = by_address, "address"
    return until, why


def _check(session: Session, name: str, password: str, *, now: datetime, source: str,
           tokens: list[str]) -> tuple[User, tuple[SignInDevice, str] | None]:
    """The user and the remembered device the attempt came with, if *password* is right; else SignInRefused
    (recorded and committed)."""
    user = session.exec(select(User).where(User.name == name)).first()
    known = _device_of(session, user, tokens, now)
    mark: dict[str, int] = {} if known is None or known[0].id is None else {"device": known[0].id}
    until, why = _waits(session, user, name, source, now, None if known is None else known[0])
    if until > now:
        with contextlib.suppress(VerificationError):  # the same time as a checked attempt
            _HASHER.verify(_DUMMY_HASH, password + "x")
        append_event(session, CustodyKind.SIGN_IN_FAILED, actor=name[:100], details={
            "reason": "locked", "by": why, "until": until.isoformat(), "source": source, **mark}, at=now)
        if user is not None and why == "name":
            user.locked_until = until
            session.add(user)
        session.commit()
        raise SignInRefused("too many failed sign-ins for this name or from this address: wait and try again",
                            locked_until=until)
    if user is None or not user.active or user.password_hash is None:
        with contextlib.suppress(VerificationError):
            _HASHER.verify(_DUMMY_HASH, password + "x")
        append_event(session, CustodyKind.SIGN_IN_FAILED, actor=name[:100], details={"reason": "unknown or inactive",
                                                                                     "source": source}, at=now)
        session.commit()
        raise SignInRefused("wrong user name or password")
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        session.add(user)
        append_event(session, CustodyKind.SIGN_IN_FAILED, actor=name, details={
            "reason": "wrong password", "failures": user.failed_logins, "source": source, **mark}, at=now)
        session.commit()
        raise SignInRefused("wrong user name or password") from None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    user.failed_logins, user.locked_until, user.sign_in_reset_at = 0, None, now
    session.add(user)
    return user, known


def authenticate(session: Session, name: str, password: str, *, now: datetime, source: str = "") -> User:
    """The user if *password* is right; SignInRefused otherwise. An attempt without a device cookie (`sign_in`
    is the browser's way in and remembers the browser).

    A name that failed MAX_FAILURES times, or an address that failed ADDRESS_FREE_FAILURES times within
    ADDRESS_WINDOW, waits (`backoff`); while it waits no password is checked. Unknown, inactive and existing
    names get the same answers in the same time. Every attempt is a custody event.
    """
    user, _known = _check(session, name, password, now=now, source=source, tokens=[])
    append_event(session, CustodyKind.SIGNED_IN, actor=name, details={"source": source}, at=now)
    session.commit()
    return user


@dataclass(frozen=True)
class SignIn:
    """A successful sign-in: the user, and the value for the browser's device cookie (DEVICE_COOKIE)."""

    user: User
    device_cookie: str


def sign_in(session: Session, name: str, password: str, *, now: datetime, source: str = "",
            device_cookie: str | None = None) -> SignIn:
    """Sign in from a browser that sends its device cookie (OWASP "device cookies").

    An attempt whose cookie holds a token this browser got by signing in as *name* (within DEVICE_TTL) is slowed
    only by the failures made with that token (MAX_FAILURES free, then BASE_DELAY doubling, at most
    NAME_MAX_DELAY); the name's and the address's backoffs (`authenticate`) do not apply to it, and its failures do
    not count towards them. So guesses by others — on the name, or on any names from the same address — never keep
    a person out of a browser they have signed in with. Any other attempt is `authenticate`'s. A success remembers
    the browser for the name (a new random token; the catalogue keeps its SHA-256) and returns the cookie value:
    that token first, then the browser's other still-valid tokens (at most DEVICE_COOKIE_TOKENS).
    """
    tokens = parse_device_cookie(device_cookie)
    user, known = _check(session, name, password, now=now, source=source, tokens=tokens)
    assert user.id is not None
    if known is None:
        token = secrets.token_urlsafe(32)
        device = SignInDevice(token_sha256=_digest(token), user_id=user.id, created_at=now, signed_in_at=now)
    else:
        device, token = known
        device.signed_in_at = now
    session.add(device)
    session.execute(delete(SignInDevice).where(col(SignInDevice.signed_in_at) <= now - DEVICE_TTL))  # housekeeping
    session.flush()
    append_event(session, CustodyKind.SIGNED_IN, actor=name, details={
        "source": source, "device": device.id, "new_device": known is None}, at=now)
    others = _live_devices(session, tokens, now)
    cookie = ".".join([token, *(t for t in tokens if t in others and t != token)][:DEVICE_COOKIE_TOKENS])
    session.commit()
    return SignIn(user=user, device_cookie=cookie)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, *, now: datetime, ttl: timedelta) -> tuple[str, WebSession]:
    """A new browser session: the random token goes in the cookie, only its hash into the catalogue."""
    assert user.id is not None
    token = secrets.token_urlsafe(32)
    session.execute(delete(WebSession).where(col(WebSession.expires_at) <= now))  # housekeeping: expired sessions
    _forget_ended_viewings(session)
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
        session.flush()
        _forget_ended_viewings(session)
        append_event(session, CustodyKind.SIGNED_OUT, actor=actor, details={})
        session.commit()
