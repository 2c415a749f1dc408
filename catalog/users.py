"""People and their roles: who may do what, and who is calling from the command line.

User accounts carry roles (`PERMISSIONS`: which roles may take each action) and a scope (an officer number,
units: what they may see, catalog.access). The command line takes the caller from the operating system:
`identify` finds the archive user bound to the caller's OS login (`os_user`) and `decide_caller` (pure) says
whether that user may take the action. `--by` is only an assertion that must name the same user. The web signs
people in with a password: catalog.sign_in.
"""
from __future__ import annotations

import os
import pwd
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, select

from catalog.access import EVERYTHING, Scope, ambiguous_unit_names, user_scope
from catalog.classification import LOWERING_ROLES
from catalog.custody import CustodyKind, append_event
from catalog.db import begin_write
from catalog.errors import PermissionDenied, UserInvalid
from catalog.models import Officer
from catalog.said import Said, listed, say
from catalog.sensitivity import step_word
from catalog.sign_in import end_sessions, forgive_failures, hash_password
from catalog.types import utcnow
from catalog.user_models import User

__all__ = [
    "ALL_ROLES",
    "BOOTSTRAP",
    "MIN_PASSWORD",
    "PERMISSIONS",
    "ROLES",
    "SERVICE_ACTIONS",
    "SERVICE_ROLES",
    "Identity",
    "OsAccount",
    "add_user",
    "bound_user",
    "decide_caller",
    "get_user",
    "identify",
    "list_users",
    "os_account",
    "require",
    "set_active",
    "set_os_user",
    "set_password",
    "set_roles",
    "set_scope",
]

#: The shortest password `set_password` accepts.
MIN_PASSWORD = 10

#: 执法人员 officer, 档案管理员 clerk, 监督人员 supervisor, 审计人员 auditor, 管理员 admin: the people.
ROLES = ("officer", "clerk", "supervisor", "auditor", "admin", "reviewer")  # reviewer: 法制审核, approves releases
#: A service account: the dock station and its workers (ingest, archive, anchor, apply retention, verify).
SERVICE_ROLES = ("station",)
ALL_ROLES = ROLES + SERVICE_ROLES

#: Which roles may take each guarded action. What each may act on is the caller's scope (catalog.access):
#: an officer works on their own recordings (search, view, play, tag), a supervisor on their units'.
PERMISSIONS: dict[str, frozenset[str]] = {
    "export": frozenset({"clerk", "supervisor", "auditor", "admin"}),
    "search": frozenset({"officer", "clerk", "supervisor", "auditor", "admin", "reviewer"}),
    "view": frozenset({"officer", "clerk", "supervisor", "auditor", "admin", "reviewer"}),
    "play": frozenset({"officer", "clerk", "supervisor", "admin", "reviewer"}),  # auditors read logs, not footage
    "stamp": frozenset({"officer", "clerk", "admin"}),  # an officer tags their own recordings
    "cases": frozenset({"clerk", "supervisor", "auditor", "admin", "reviewer"}),  # read case files
    "manage_cases": frozenset({"clerk", "admin"}),  # open, close, reopen, link and unlink
    "classify": frozenset({"clerk", "supervisor", "admin"}),  # raise a class (lowering: LOWERING_ROLES)
    "grant_access": LOWERING_ROLES,  # open a case's classed recordings to a person
    "redact": frozenset({"clerk", "supervisor", "admin"}),  # make a redacted copy (reading the original: play)
    "retention": frozenset({"clerk", "supervisor", "auditor", "admin"}),  # see what is due and past batches
    "propose_disposal": frozenset({"clerk", "admin"}),  # start a sweep (a batch awaiting approval)
    "approve_disposal": frozenset({"supervisor", "admin"}),  # a second, named person approves and disposes
    "spotcheck": frozenset({"supervisor", "admin"}),
    "audit": frozenset({"auditor", "admin"}),
    "statistics": frozenset({"supervisor", "auditor", "admin", "clerk"}),
    "admin": frozenset({"admin"}),
    "propose_release": frozenset({"clerk", "supervisor", "admin"}),  # ask to publish (公示) or transfer (移送)
    "approve_release": frozenset({"reviewer"}),  # legal review (法制审核): a second person decides
    "releases": frozenset({"clerk", "supervisor", "reviewer", "auditor", "admin"}),  # read releases
    "manage_keys": frozenset({"admin"}),  # the agency root: certify, rotate, revoke keys (catalog.key_certs)
    "devices": frozenset({"clerk", "supervisor", "auditor", "admin"}),  # read the recorder register and its alerts
    "manage_devices": frozenset({"admin"}),  # add, assign, mark lost/repaired/retired, review (catalog.devices)
    # each officer's recorded periods, gaps and overlaps day by day (catalog.coverage): an officer their own
    "coverage": frozenset({"officer", "clerk", "supervisor", "auditor", "admin"}),
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


def _roles(roles: Iterable[str]) -> Said:
    """*roles* as a refusal lists them (each a word a page says in its reader's language)."""
    return listed([say(role) for role in roles])


def _roles_given(roles: list[str]) -> Said:
    return _roles(roles) if roles else say("none")


def _scope_problems(officer_number: str | None, units: list[str]) -> list[Said]:
    problems = []
    if officer_number is not None and not 1 <= len(officer_number.strip()) <= 32:
        problems.append(say("officer number {number!r} must be 1-32 characters", number=officer_number))
    problems += [say("unit {unit!r} must be 1-200 characters", unit=u) for u in units if not 1 <= len(u.strip()) <= 200]
    return problems


def _ambiguous_units(session: Session, units: list[str]) -> list[Said]:
    """A unit given by a name that officers of several unit numbers carry (catalog.access.ambiguous_unit_names):
    refused, naming the numbers, so the supervisor's scope says which one."""
    found = []
    for name in session.exec(ambiguous_unit_names([u.strip() for u in units])):
        numbers = sorted(set(session.exec(select(Officer.unit_number).where(Officer.unit_name == name))))
        found.append(say("unit {name!r} is the name of units {numbers}: give the unit's number", name=name,
                         numbers=", ".join(repr(n) for n in numbers)))
    return found


def _login_problem(os_user: str) -> Said | None:
    if not _LOGIN.fullmatch(os_user):
        return say("OS login {login!r} must be 1-64 letters, digits, '_', '.', '@' or '-' (not starting with '.', "
                   "'@' or '-')", login=os_user)
    return None


def _os_user_taken(session: Session, os_user: str, name: str) -> Said | None:
    other = session.exec(select(User.name).where(User.os_user == os_user, User.name != name)).first()
    return None if other is None else say("OS login {login!r} is already bound to user {user!r}", login=os_user,
                                          user=other)


def add_user(session: Session, name: str, *, roles: list[str], display_name: str = "", by: str,
             officer_number: str | None = None, units: list[str] | None = None, os_user: str | None = None) -> User:
    """A new user. An officer's *officer_number* (警号) makes their own recordings theirs to see; a supervisor's
    *units* limit them to those units' officers (none: the whole agency). *os_user* binds an operating-system
    login: `evidence` commands run from it act as this user."""
    units = units or []
    problems = _scope_problems(officer_number, units) + _ambiguous_units(session, units)
    if not name.strip() or len(name) > 100:
        problems.append(say("user name {name!r} must be 1-100 characters", name=name))
    unknown = sorted(set(roles) - set(ALL_ROLES))
    if unknown or not roles:
        problems.append(say("roles must be some of {known}; got {roles}", known=_roles(ALL_ROLES),
                            roles=_roles_given(roles)))
    if session.exec(select(User.id).where(User.name == name)).first() is not None:
        problems.append(say("user {name!r} already exists", name=name))
    if os_user is not None:
        problems += [p for p in (_login_problem(os_user), _os_user_taken(session, os_user, name)) if p]
    if problems:
        raise UserInvalid(listed(problems, sep="; "))
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
    problems = _scope_problems(officer_number, units) + _ambiguous_units(session, units)
    if problems:
        raise UserInvalid(listed(problems, sep="; "))
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
            raise UserInvalid(listed(problems, sep="; "))
    old = user.os_user
    user.os_user = os_user
    session.add(user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={"user": name, "action": "os_user",
                                                                       "old": old, "new": os_user})
    return user


def set_active(session: Session, name: str, active: bool, *, by: str) -> User:
    """Deactivate (every web session of the user ends) or re-activate (old sessions stay ended)."""
    begin_write(session)  # the head before the row (`set_password`)
    user = get_user(session, name)
    user.active = active
    session.add(user)
    ended = 0 if active else end_sessions(session, user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={
        "user": name, "action": "activate" if active else "deactivate", "sessions_ended": ended})
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.name))))


def require(session: Session, name: str, action: str) -> User:
    """The active user *name* if one of their roles allows *action*; PermissionDenied otherwise."""
    allowed = PERMISSIONS[action]
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None or not user.active:
        raise PermissionDenied(say("{name!r} is not an active user of this archive; an administrator adds one with "
                                   "`evidence user add {name} --role clerk`", name=name))
    if not allowed & set(user.roles):
        raise PermissionDenied(say("user {name!r} (roles: {roles}) may not {action}: that needs one of {allowed}",
                                   name=name, roles=_roles(user.roles), action=step_word(action),
                                   allowed=_roles(sorted(allowed))))
    return user


def get_user(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise UserInvalid(say("no user {name!r}", name=name))
    return user


def set_password(session: Session, name: str, password: str, *, by: str) -> User:
    """Store an argon2id hash of *password* (at least MIN_PASSWORD characters), forgive past failed sign-ins and
    end every web session of the user (whoever held the old password is signed out)."""
    if len(password) < MIN_PASSWORD:
        raise UserInvalid(say("a password needs at least {min} characters (got {n})", min=MIN_PASSWORD,
                              n=len(password)))
    hashed = hash_password(password)  # the slow part, before the lock
    begin_write(session)  # the head before the row: a role change of the same user takes them in that order
    user = get_user(session, name)
    user.password_hash = hashed
    forgive_failures(user, utcnow())
    session.add(user)
    ended = end_sessions(session, user)
    append_event(session, CustodyKind.USER_CHANGED, actor=by, details={"user": name, "action": "password set",
                                                                       "sessions_ended": ended})
    return user


def set_roles(session: Session, name: str, roles: list[str], *, by: str) -> User:
    unknown = sorted(set(roles) - set(ALL_ROLES))
    if unknown or not roles:
        raise UserInvalid(say("roles must be some of {known}; got {roles}", known=_roles(ALL_ROLES),
                              roles=_roles_given(roles)))
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
        return say("OS account {login!r} (uid {uid})", login=self.login, uid=self.uid)


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
            raise PermissionDenied(say("--by {asserted!r} does not match: {account} owns the catalogue and acts as "
                                       "{station!r}, and is bound to no archive user", asserted=asserted,
                                       account=str(account), station=station_actor))
        return Identity(actor=station_actor, account=account, user=None, roles=SERVICE_ROLES, scope=EVERYTHING,
                        how="station service")
    hint = say("an administrator binds it with `evidence user bind NAME --os-user {login}` (or `evidence user add "
               "NAME --role ROLE --os-user {login}`)", login=account.login)
    if not admin_bound:
        hint = say("{hint}; no administrator is bound yet: the account that owns the catalogue (uid {uid}) or root "
                   "adds the first with `evidence user add admin --role admin --os-user LOGIN`", hint=hint,
                   uid=owner_uid)
    raise PermissionDenied(say("{account} is not bound to an archive user, so it may not {action}; {hint}",
                               account=str(account), action=step_word(action), hint=hint))


def _bootstrap(account: OsAccount, bound: User | None, asserted: str | None, *, owner_uid: int | None, owner: bool,
               admin_bound: bool) -> Identity | None:
    """The first administrator's bootstrap identity while none is bound, for the owner or root; None when the
    act needs the admin role like any other (PermissionDenied when nobody could add the first one)."""
    if not admin_bound and (owner or account.uid == 0):
        if asserted is not None and bound is not None and asserted != bound.name:
            raise PermissionDenied(say("--by {asserted!r} does not match: {account} is archive user {user!r}",
                                       asserted=asserted, account=str(account), user=bound.name))
        return Identity(actor=f"bootstrap:{account.login}", account=account, user=None, roles=("admin",),
                        scope=EVERYTHING, how="bootstrap")
    if not admin_bound and bound is None:
        raise PermissionDenied(say(
            "{account} may not add the first administrator: no active administrator is bound to an OS account yet, "
            "and only the account that owns the catalogue (uid {uid}) or root may add one", account=str(account),
            uid=owner_uid))
    return None


def _as_bound_user(account: OsAccount, action: str, bound: User, asserted: str | None, *, owner: bool,
                   station_actor: str) -> Identity | None:
    """The bound archive user's identity for *action*; None when the user lacks the role but the account owns the
    catalogue and the action is a service action (it acts as the station); PermissionDenied otherwise."""
    allowed = PERMISSIONS[action]
    if asserted is not None and asserted != bound.name:
        raise PermissionDenied(say("--by {asserted!r} does not match: {account} is archive user {user!r}",
                                   asserted=asserted, account=str(account), user=bound.name))
    if not bound.active:
        raise PermissionDenied(say("{account} is bound to archive user {user!r}, which is inactive; an administrator "
                                   "re-activates it with `evidence user activate {user}`", account=str(account),
                                   user=bound.name))
    if allowed & set(bound.roles):
        station_role = action in SERVICE_ACTIONS and "station" in bound.roles and not (set(ROLES) & allowed
                                                                                       & set(bound.roles))
        actor = station_actor if action == "operate_station" or station_role else bound.name
        return Identity(actor=actor, account=account, user=bound.name, roles=tuple(bound.roles),
                        scope=user_scope(bound), how="bound user")
    if not (action in SERVICE_ACTIONS and owner):
        raise PermissionDenied(say("archive user {user!r} ({account}; roles: {roles}) may not {action}: that needs "
                                   "one of {allowed}", user=bound.name, account=str(account), roles=_roles(bound.roles),
                                   action=step_word(action), allowed=_roles(sorted(allowed))))
    return None


def bound_user(session: Session, login: str) -> User | None:
    """The archive user bound to the OS login *login* (`os_user`), active or not."""
    return session.exec(select(User).where(User.os_user == login)).first()


def identify(session: Session, action: str, *, account: OsAccount, asserted: str | None, owner_uid: int | None,
             station: str) -> Identity:
    """Load what `decide_caller` needs from the catalogue and decide (the one check every command makes)."""
    bound = bound_user(session, account.login)
    admin_bound = any(u.active and "admin" in u.roles and u.os_user
                      for u in session.exec(select(User).where(col(User.os_user).is_not(None))))
    return decide_caller(account=account, action=action, bound=bound, asserted=asserted, owner_uid=owner_uid,
                         station=station, admin_bound=admin_bound)
