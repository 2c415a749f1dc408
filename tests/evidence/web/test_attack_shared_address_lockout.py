"""Outside review of issue 13 (sign-in backoff): the per-address backoff lets an outsider lock every user out,
the administrator included, whenever they share the attacker's address.

Behind the documented Docker Compose deployment every browser reaches `evidence serve` from the same address
(the port is published by Docker, and uvicorn trusted X-Forwarded-For only from 127.0.0.1), and behind an office
NAT or a reverse proxy that sends no X-Forwarded-For the same holds. Twenty wrong guesses on made-up names from
there made the application refuse the administrator's right password ("Too many failed sign-ins"), for up to
15 minutes per guess, and an attacker who guesses again each time the wait ends kept it so. Issue 13 asks that
the backoff slow an attacker "without letting anyone lock an administrator out for long".

The fix: OWASP device cookies (a browser that has signed in as a name is slowed only by its own failures for that
name) and a configurable set of trusted proxies (`EVIDENCE_WEB_TRUSTED_PROXIES`), trusted in the Compose file for
the gateway the published port arrives from. Attacks go through the real web app (FastAPI's test client: an
attacker's browser and the administrator's browser on one address), the catalogue's sign-in function with a moving
clock, direct SQL on the device table, and the real `evidence serve` on 127.0.0.1 behind a forged proxy header.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlmodel import Session, col, select

from catalog import CustodyEvent, open_catalog
from catalog.errors import SignInRefused
from catalog.sign_in import (
    ADDRESS_FREE_FAILURES,
    BASE_DELAY,
    DEVICE_COOKIE,
    DEVICE_TTL,
    MAX_FAILURES,
    NAME_MAX_DELAY,
    sign_in,
)
from catalog.types import utcnow
from catalog.user_models import SignInDevice
from catalog.users import get_user
from tests.helpers.webserver import start_serve, stop_serve
from tests.webhelpers import WEB_PASSWORD, form_token, web_login

SHARED = "172.18.0.1"  # what the app sees of every browser behind Docker's published port
LOCKED = "登录失败次数过多"  # "Too many failed sign-ins; try again later."
WRONG = "用户名或密码错误"  # "Wrong user name or password."
ROOT = Path(__file__).resolve().parents[3]


def _browser(client: TestClient, port: int, address: str = SHARED) -> TestClient:
    """Another browser on the same running app (its own cookies), reaching it from *address*."""
    return TestClient(client.app, client=(address, port))


def _sign_out(browser: TestClient) -> None:
    assert browser.post("/logout", data={"csrf": form_token(browser.get("/").text)},
                        follow_redirects=False).status_code == 303


def _events(engine, kind: str, actor: str) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return [e.details for e in session.exec(select(CustodyEvent).where(
            CustodyEvent.kind == kind, CustodyEvent.actor == actor).order_by(col(CustodyEvent.id)))]


def test_guesses_on_made_up_names_do_not_lock_out_an_administrator_who_signed_in_from_this_browser(web_site):
    client, engine = web_site
    admin = _browser(client, 40001)
    attacker = _browser(client, 40002)
    # The administrator works from this browser every day.
    assert web_login(admin, "admin").status_code == 303
    _sign_out(admin)

    for n in range(ADDRESS_FREE_FAILURES + 1):  # an outsider sprays made-up names
        refused = web_login(attacker, f"nobody-{n}", "not the password")
        assert refused.status_code == 401

    back = web_login(admin, "admin")
    assert back.status_code == 303, ("the administrator's right password, from the browser they signed in with, is "
                                     "refused because an outsider guessed made-up names from the same address: "
                                     f"{back.status_code} {back.text[:300]}")
    first, again = _events(engine, "signed_in", "admin")
    assert first["new_device"] is True and again == {"source": SHARED, "device": first["device"], "new_device": False}


def test_the_attacker_guessing_the_administrators_name_itself_keeps_only_unknown_browsers_waiting(web_site):
    client, engine = web_site
    admin = _browser(client, 40001)
    assert web_login(admin, "admin").status_code == 303
    _sign_out(admin)
    attacker = _browser(client, 40002)
    for _ in range(MAX_FAILURES):
        assert WRONG in web_login(attacker, "admin", "a guessed password").text
    for n in range(ADDRESS_FREE_FAILURES):
        web_login(attacker, f"nobody-{n}", "not the password")
    assert LOCKED in web_login(attacker, "admin", "a guessed password").text
    # a browser that never signed in as admin (the attacker's, or a new one on this address) still waits:
    # the backoff keeps slowing the attacker ...
    stranger = _browser(client, 40003)
    assert LOCKED in web_login(stranger, "admin").text
    with _browser(client, 40004, "10.9.9.9") as elsewhere:  # ... and the name waits from every unknown browser
        assert LOCKED in web_login(elsewhere, "admin").text
    # ... but not the administrator's own browser
    assert web_login(admin, "admin").status_code == 303
    assert admin.get("/admin").status_code == 200
    waits = [d["by"] for d in _events(engine, "sign_in_failed", "admin") if d["reason"] == "locked"]
    assert waits and set(waits) <= {"name", "address"}


def test_an_attacker_who_guesses_whenever_the_wait_ends_never_keeps_the_administrator_out(web_site):
    """An hour (simulated) of guessing, each guess as soon as the backoff allows, on made-up names and on the
    administrator's name, from the shared address. Whenever the attacker is made to wait, a browser that never
    signed in as admin is refused even with the right password, and the administrator's own browser gets in."""
    _client, engine = web_site
    now = utcnow()
    with Session(engine) as session:
        device = sign_in(session, "admin", WEB_PASSWORD, now=now, source=SHARED).device_cookie
        start, n, blocked = now, 0, 0
        while now < start + timedelta(hours=1):
            allowed = now
            for name in (f"nobody-{n}", f"nobody-{n + 1}", "admin"):
                with pytest.raises(SignInRefused) as guess:
                    sign_in(session, name, "a guessed password", now=now, source=SHARED)
                until = guess.value.locked_until
                allowed = max(allowed, until or now)
            n += 2
            if until is not None and until > now:  # the attacker's guess on "admin" waits: so does everyone's
                blocked += 1
                with pytest.raises(SignInRefused) as stranger:
                    sign_in(session, "admin", WEB_PASSWORD, now=now, source=SHARED)
                assert stranger.value.locked_until is not None
                signed = sign_in(session, "admin", WEB_PASSWORD, now=now, source=SHARED, device_cookie=device)
                assert signed.user.name == "admin" and signed.device_cookie == device
            now = allowed + timedelta(seconds=1)
        assert blocked >= 10  # the attack did keep unknown browsers out most of the time
    waits = [d for d in _events(engine, "sign_in_failed", "admin") if d["reason"] == "locked"]
    assert {d["by"] for d in waits} <= {"name", "address"} and len(waits) >= 2 * blocked


def test_a_browser_that_signed_in_has_its_own_counter(web_site):
    """Someone at the administrator's own computer guessing gets MAX_FAILURES free guesses, then waits; their
    failures do not slow the administrator elsewhere, nor anyone else on the address."""
    _client, engine = web_site
    signed_at = utcnow()
    now = signed_at + timedelta(seconds=1)
    with Session(engine) as session:
        device = sign_in(session, "admin", WEB_PASSWORD, now=signed_at, source=SHARED).device_cookie
        for _ in range(MAX_FAILURES):
            with pytest.raises(SignInRefused) as caught:
                sign_in(session, "admin", "a guessed password", now=now, source=SHARED, device_cookie=device)
            assert caught.value.locked_until is None
        with pytest.raises(SignInRefused) as caught:  # even the right password waits now on this browser
            sign_in(session, "admin", WEB_PASSWORD, now=now, source=SHARED, device_cookie=device)
        assert caught.value.locked_until == now + BASE_DELAY
        last = _events(engine, "sign_in_failed", "admin")[-1]
        assert last["reason"] == "locked" and last["by"] == "device" and last["device"] > 0
        # the name and the address have not counted those failures
        assert sign_in(session, "admin", WEB_PASSWORD, now=now, source="10.1.1.1").user.name == "admin"
        assert sign_in(session, "auditor", WEB_PASSWORD, now=now, source=SHARED).user.name == "auditor"
        # after the wait the browser is let in again
        later = now + BASE_DELAY + timedelta(seconds=1)
        assert sign_in(session, "admin", WEB_PASSWORD, now=later, source=SHARED, device_cookie=device).user.name == \
            "admin"
        # the wait doubles and stops at NAME_MAX_DELAY, as a name's
        later += timedelta(seconds=1)
        waits = []
        for _ in range(MAX_FAILURES + 6):
            with pytest.raises(SignInRefused) as caught:  # a checked guess
                sign_in(session, "admin", "a guessed password", now=later, source=SHARED, device_cookie=device)
            assert caught.value.locked_until is None
            with pytest.raises(SignInRefused) as caught:  # the next one, right away
                sign_in(session, "admin", "a guessed password", now=later, source=SHARED, device_cookie=device)
            if caught.value.locked_until is not None:
                waits.append((caught.value.locked_until - later).total_seconds())
                later = caught.value.locked_until
        assert waits[:5] == [30, 60, 120, 240, 300] and set(waits[4:]) == {NAME_MAX_DELAY.total_seconds()}


def test_a_device_cookie_helps_only_the_name_it_was_earned_for(web_site):
    """An insider who signs in as themselves, or an attacker with a made-up cookie, still waits on other names."""
    client, _engine = web_site
    insider = _browser(client, 40005)
    assert web_login(insider, "officer").status_code == 303
    _sign_out(insider)
    own = insider.cookies.get(DEVICE_COOKIE)
    assert own
    for n in range(ADDRESS_FREE_FAILURES):
        assert WRONG in web_login(insider, f"nobody-{n}", "not the password").text
    assert LOCKED in web_login(insider, "nobody-x", "not the password").text
    assert LOCKED in web_login(insider, "admin").text  # the officer's cookie does not open the admin's name
    assert web_login(insider, "officer").status_code == 303  # their own name: their own counter
    forger = _browser(client, 40006)
    forger.cookies.set(DEVICE_COOKIE, "A" * 43 + "." + own[:-2] + "xx", path="/login")
    assert LOCKED in web_login(forger, "officer").text  # a made-up or altered token is no device


def test_the_device_cookie_is_stored_hashed_kept_on_sign_out_and_sent_only_to_the_sign_in_form(web_site):
    client, engine = web_site
    browser = _browser(client, 40007)
    signed = web_login(browser, "clerk")
    header = next(h for h in signed.headers.get_list("set-cookie") if h.startswith(DEVICE_COOKIE + "="))
    assert "path=/login" in header.lower() and "httponly" in header.lower() and "samesite=strict" in header.lower()
    assert f"Max-Age={int(DEVICE_TTL.total_seconds())}" in header
    token = browser.cookies.get(DEVICE_COOKIE)
    assert token is not None
    with Session(engine) as session:
        rows = session.exec(select(SignInDevice)).all()
        assert [r.token_sha256 for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
        assert rows[0].user_id == get_user(session, "clerk").id
        dump = "\n".join(str(tuple(r)) for r in session.execute(text("SELECT * FROM sign_in_device")))
    assert token not in dump
    _sign_out(browser)
    assert browser.cookies.get(DEVICE_COOKIE) == token
    # a second person on the same computer: the browser keeps both tokens, the newest first
    assert web_login(browser, "auditor").status_code == 303
    both_cookie = browser.cookies.get(DEVICE_COOKIE)
    assert both_cookie is not None
    both = both_cookie.split(".")
    assert len(both) == 2 and both[1] == token


def test_an_expired_device_is_an_unknown_browser_again(web_site):
    client, engine = web_site
    admin = _browser(client, 40008)
    assert web_login(admin, "admin").status_code == 303
    _sign_out(admin)
    with Session(engine) as session:  # the browser last signed in longer ago than DEVICE_TTL
        session.execute(update(SignInDevice).values(signed_in_at=utcnow() - DEVICE_TTL - timedelta(days=1)))
        session.commit()
    attacker = _browser(client, 40009)
    for n in range(ADDRESS_FREE_FAILURES):
        web_login(attacker, f"nobody-{n}", "not the password")
    assert LOCKED in web_login(admin, "admin").text


def _page_words(response) -> str:
    return re.sub(r'name="csrf" value="[^"]*"', "", response.text)


def test_a_browser_with_a_device_cookie_still_cannot_tell_known_from_unknown_names(web_site):
    """The per-name backoff gives an existing name that this browser never signed in as, and a made-up name, the
    same answers: first "wrong", then "too many", with the same events."""
    client, engine = web_site
    browser = _browser(client, 40010, "10.2.2.2")
    assert web_login(browser, "clerk").status_code == 303  # it has a device cookie (for clerk)
    _sign_out(browser)
    answers: dict[str, list[str]] = {}
    for name in ("auditor", "no-such-person"):
        pages = [web_login(browser, name, "wrong password!") for _ in range(MAX_FAILURES)]
        pages.append(web_login(browser, name, WEB_PASSWORD if name == "auditor" else "right?"))
        assert [p.status_code for p in pages] == [401] * (MAX_FAILURES + 1)
        assert all(WRONG in p.text for p in pages[:-1]) and LOCKED in pages[-1].text
        answers[name] = [_page_words(p) for p in pages]
        shapes = [(d["reason"], sorted(d)) for d in _events(engine, "sign_in_failed", name)]
        answers[name + " events"] = [f"{r} {k}" for r, k in shapes]
    assert answers["auditor"] == answers["no-such-person"]
    known = [s.replace("'failures', ", "") for s in answers["auditor events"]]  # only an existing name counts them
    assert [s.replace("wrong password", "unknown or inactive") for s in known] == answers["no-such-person events"]


# -- trusted proxies: the real `evidence serve` --------------------------------------------------------------


def _failed_sign_in(base: str, name: str, forwarded: str) -> None:
    """A browser (with its cookies) behind a proxy that says the client is *forwarded*: a wrong password."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with browser.open(base + "/login", timeout=30) as form:
        token = form_token(form.read().decode())
    data = urllib.parse.urlencode({"name": name, "password": "whatever", "csrf": token}).encode()
    request = urllib.request.Request(base + "/login", data=data, headers={"X-Forwarded-For": forwarded})
    with pytest.raises(urllib.error.HTTPError) as refused:
        browser.open(request, timeout=30)
    refused.value.close()
    assert refused.value.code == 401


@pytest.mark.parametrize(("trusted", "recorded"), [(None, "203.0.113.77"), ("192.0.2.1,10.0.0.0/8", "127.0.0.1"),
                                                   ("127.0.0.0/8", "203.0.113.77"), ("", "127.0.0.1")])
def test_serve_believes_forwarded_for_only_from_the_configured_proxies(settings, tmp_path, trusted, recorded):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_") or k == "EVIDENCE_TEST_PG_URL"}
    env |= {"EVIDENCE_HOME": str(settings.home), "EVIDENCE_DATABASE_URL": settings.database_url}
    if trusted is not None:
        env["EVIDENCE_WEB_TRUSTED_PROXIES"] = trusted
    proc, base = start_serve(env)
    try:
        name = f"probe-{trusted}"
        _failed_sign_in(base, name, "203.0.113.77")
    finally:
        stop_serve(proc)  # the server keeps logging to its pipe until it ends; nobody reads it after the start
    engine = open_catalog(settings.database_url)
    try:
        assert [d["source"] for d in _events(engine, "sign_in_failed", name)] == [recorded]
    finally:
        engine.dispose()


def test_the_compose_deployment_trusts_exactly_the_gateway_its_published_port_arrives_from():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    web = compose["services"]["web"]
    assert web["ports"] == ["127.0.0.1:8000:8000"]  # only the host's loopback (the reverse proxy) reaches it
    (network,) = compose["networks"]["default"]["ipam"]["config"]
    trusted = web["environment"]["EVIDENCE_WEB_TRUSTED_PROXIES"]
    assert trusted == "${EVIDENCE_WEB_TRUSTED_PROXIES:-" + network["gateway"] + "}"
    assert ipaddress.ip_address(network["gateway"]) in ipaddress.ip_network(network["subnet"])
