"""Attacks on signing in: a stolen session must die with a password reset or a deactivation (and stay dead
after re-activation); guessing passwords is slowed per name and per address, never tells whether a name
exists, and never locks an administrator out for long."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from catalog import CustodyEvent
from catalog.errors import SignInRefused
from catalog.sign_in import (
    ADDRESS_FREE_FAILURES,
    ADDRESS_MAX_DELAY,
    BASE_DELAY,
    MAX_FAILURES,
    NAME_MAX_DELAY,
    authenticate,
    backoff,
)
from catalog.types import utcnow
from catalog.user_models import WebSession
from catalog.users import get_user, set_password
from tests.webhelpers import WEB_PASSWORD, form_token, web_login


def _second_browser(client: TestClient, address: str = "10.0.0.7") -> TestClient:
    """Another browser on the same running app (its own cookies, its own client address)."""
    return TestClient(client.app, client=(address, 40000))


def _admin_change(admin: TestClient, **form: str) -> None:
    token = form_token(admin.get("/admin").text)
    done = admin.post("/admin/users", data={"csrf": token, **form}, follow_redirects=False)
    assert done.status_code == 303, done.text


def _sessions_of(engine, name: str) -> int:
    with Session(engine) as session:
        user = get_user(session, name)
        return len(session.exec(select(WebSession).where(WebSession.user_id == user.id)).all())


def test_a_password_reset_ends_the_stolen_session(web_site):
    client, engine = web_site
    assert web_login(client, "clerk").status_code == 303
    stolen = dict(client.cookies)  # what a thief copied from the clerk's browser
    assert client.get("/api/recordings").status_code == 200
    with _second_browser(client) as admin:
        assert web_login(admin, "admin").status_code == 303
        _admin_change(admin, action="password", name="clerk", password="a brand new password")
    assert client.get("/api/recordings").status_code == 401
    with _second_browser(client, "10.0.0.8") as thief:
        thief.cookies.update(stolen)
        assert thief.get("/api/recordings").status_code == 401
    assert _sessions_of(engine, "clerk") == 0
    assert web_login(client, "clerk", "a brand new password").status_code == 303  # the owner signs in anew
    with Session(engine) as session:  # the command line's reset (`evidence user passwd`) does the same
        set_password(session, "clerk", "yet another password", by="admin")
        session.commit()
    assert client.get("/api/recordings").status_code == 401
    with Session(engine) as session:
        reset = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "user_changed")
                             .order_by(col(CustodyEvent.id).desc())).first()
        assert reset is not None and reset.details == {"user": "clerk", "action": "password set", "sessions_ended": 1}


def test_deactivation_ends_sessions_and_reactivation_does_not_revive_them(web_site):
    client, engine = web_site
    assert web_login(client, "supervisor").status_code == 303
    kept = dict(client.cookies)
    assert client.get("/api/recordings").status_code == 200
    with _second_browser(client) as admin:
        assert web_login(admin, "admin").status_code == 303
        _admin_change(admin, action="deactivate", name="supervisor")
        assert client.get("/api/recordings").status_code == 401
        assert _sessions_of(engine, "supervisor") == 0
        _admin_change(admin, action="activate", name="supervisor")
    client.cookies.clear()
    client.cookies.update(kept)  # the old cookie, presented again after re-activation
    assert client.get("/api/recordings").status_code == 401
    assert web_login(client, "supervisor").status_code == 303  # a new sign-in works
    with Session(engine) as session:
        changes = [e.details for e in session.exec(select(CustodyEvent).where(
            CustodyEvent.kind == "user_changed", CustodyEvent.actor == "admin").order_by(col(CustodyEvent.id)))]
    assert {"user": "supervisor", "action": "deactivate", "sessions_ended": 1} in changes
    assert {"user": "supervisor", "action": "activate", "sessions_ended": 0} in changes


def _page_words(response) -> str:
    """The refusal page without its per-request form token."""
    return re.sub(r'name="csrf" value="[^"]*"', "", response.text)


def test_a_locked_name_and_an_unknown_name_get_the_same_answer(web_site):
    client, _engine = web_site
    answers = {}
    for name in ("clerk", "no-such-person"):
        for _ in range(MAX_FAILURES):
            refused = web_login(client, name, "wrong password!")
            assert refused.status_code == 401 and "用户名或密码错误" in refused.text
        waiting = web_login(client, name, WEB_PASSWORD)  # even the right password waits
        assert waiting.status_code == 401 and "登录失败次数过多" in waiting.text
        answers[name] = _page_words(waiting)
    assert answers["clerk"] == answers["no-such-person"]
    # another address is not slowed by this one's failures on other names, but the name itself still waits
    with _second_browser(client) as elsewhere:
        assert web_login(elsewhere, "admin").status_code == 303
        assert "登录失败次数过多" in web_login(elsewhere, "clerk").text


def test_backoff_numbers():
    assert [backoff(n, MAX_FAILURES, NAME_MAX_DELAY).total_seconds() for n in range(1, 12)] == \
        [0, 0, 0, 0, 30, 60, 120, 240, 300, 300, 300]
    assert backoff(ADDRESS_FREE_FAILURES - 1, ADDRESS_FREE_FAILURES, ADDRESS_MAX_DELAY) == timedelta(0)
    assert backoff(ADDRESS_FREE_FAILURES, ADDRESS_FREE_FAILURES, ADDRESS_MAX_DELAY) == BASE_DELAY
    assert backoff(10_000, ADDRESS_FREE_FAILURES, ADDRESS_MAX_DELAY) == ADDRESS_MAX_DELAY == timedelta(minutes=15)


def test_an_attacker_cannot_lock_the_administrator_out_for_long(web_site):
    """Guess as fast as the backoff allows: each wait is at most NAME_MAX_DELAY after the last guess, and once
    the attacker stops, the administrator signs in with the right password."""
    _client, engine = web_site
    now = utcnow()
    waits = []
    with Session(engine) as session:
        for _ in range(14):
            with pytest.raises(SignInRefused) as checked:
                authenticate(session, "admin", "guess guess guess", now=now, source="203.0.113.9")
            until = checked.value.locked_until
            assert until is None or until <= now  # a checked guess, not a wait
            with pytest.raises(SignInRefused) as next_guess:  # what the next guess right away gets
                authenticate(session, "admin", "guess guess guess", now=now, source="203.0.113.9")
            until = next_guess.value.locked_until
            if until is None:  # no wait yet: it was checked (and wrong)
                waits.append(0.0)
                continue
            assert isinstance(until, type(now))
            waits.append((until - now).total_seconds())
            now = until + timedelta(seconds=1)
        assert max(waits) <= NAME_MAX_DELAY.total_seconds() and waits[-1] == NAME_MAX_DELAY.total_seconds()
        # the attacker stops; the administrator comes from the office after the last wait
        user = authenticate(session, "admin", WEB_PASSWORD, now=now, source="10.1.1.1")
        assert user.name == "admin"
        failures = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "sign_in_failed",
                                                           CustodyEvent.actor == "admin")).all()
        assert {e.details["reason"] for e in failures} == {"wrong password", "locked"}


def test_one_address_spraying_many_names_is_slowed(web_site):
    _client, engine = web_site
    now = utcnow()
    with Session(engine) as session:
        for n in range(ADDRESS_FREE_FAILURES):
            with pytest.raises(SignInRefused) as caught:
                authenticate(session, f"guess-{n}", "password123456", now=now, source="198.51.100.4")
            assert caught.value.locked_until is None
        with pytest.raises(SignInRefused) as caught:  # even a real user with the right password, from there
            authenticate(session, "auditor", WEB_PASSWORD, now=now, source="198.51.100.4")
        assert caught.value.locked_until == now + BASE_DELAY
        assert authenticate(session, "auditor", WEB_PASSWORD, now=now, source="192.0.2.1").name == "auditor"
        later = now + ADDRESS_MAX_DELAY + timedelta(minutes=1)  # the address's failures age out of the window
        assert authenticate(session, "auditor", WEB_PASSWORD, now=later, source="198.51.100.4").name == "auditor"
        last = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "sign_in_failed")
                            .order_by(col(CustodyEvent.id).desc())).first()
        assert last is not None and last.details["by"] == "address" and last.details["reason"] == "locked"
