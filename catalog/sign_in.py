"""Signing in on the web: passwords, the wait after failed attempts, the browser's device cookie, and sessions.

`authenticate` and `sign_in` check a password. Every attempt is a custody event; failures are counted per name
and per address (`backoff`), so guessing slows down without ever locking a person out for good, and a browser
that has signed in as a name keeps a device cookie that spares it others' failures (`sign_in`). A session is a
random token in the browser's cookie; only its SHA-256 is stored (`start_session`, `find_session`,
`end_session`). Who may do what once signed in is catalog.users'.
"""
from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.db import begin_write
from catalog.errors import SignInRefused
from catalog.models import CustodyEvent
from catalog.user_models import SignInDevice, User, ViewingAccess, WebSession

__all__ = [
    "ADDRESS_FREE_FAILURES",
    "ADDRESS_MAX_DELAY",
    "ADDRESS_WINDOW",
    "BASE_DELAY",
    "DEVICE_COOKIE",
    "DEVICE_COOKIE_TOKENS",
    "DEVICE_TTL",
    "FAILURE_MEMORY",
    "MAX_FAILURES",
    "NAME_MAX_DELAY",
    "SignIn",
    "authenticate",
    "backoff",
    "end_session",
    "end_sessions",
    "find_session",
    "forgive_failures",
    "hash_password",
    "parse_device_cookie",
    "prepare_sign_in",
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
_HASHER = PasswordHasher()  # argon2id with the library's current parameters


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown names (the same time as a checked attempt). Made on first use, not at
    import (~90 ms of argon2 in every process that imports the catalogue); the web app makes it at start
    (`prepare_sign_in`), so its first unknown name takes no longer than any other."""
    return _HASHER.hash("not a real password, used to spend the same time on unknown names")


def prepare_sign_in() -> None:
    """Do now what the first sign-in of an unknown name would otherwise pay for (a web app calls it at start)."""
    _dummy_hash()


def hash_password(password: str) -> str:
    """The argon2id hash the catalogue keeps of *password* (catalog.users.set_password)."""
    return _HASHER.hash(password)


def forgive_failures(user: User, at: datetime) -> None:
    """Clear *user*'s failed sign-ins up to *at* (a success, a new password): they no longer make anyone wait."""
    user.failed_logins, user.locked_until, user.sign_in_reset_at = 0, None, at


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
            _HASHER.verify(_dummy_hash(), password + "x")
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
            _HASHER.verify(_dummy_hash(), password + "x")
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
    forgive_failures(user, now)
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
    # The head before the user's row (forgiven failures, pending): the housekeeping below would write the row first,
    # and an administrator changing this user takes the head, then the row
    begin_write(session)
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
