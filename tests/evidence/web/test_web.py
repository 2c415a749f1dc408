"""The web application's first slice: sign-in with lock-out and CSRF, roles on the API, languages, operations."""
from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from catalog import CustodyEvent, Recording
from catalog.sign_in import MAX_FAILURES
from catalog.stamps import record_stamp
from catalog.types import utcnow
from catalog.users import add_user, set_password
from evidence.web import WebConfig, create_app
from evidence.web.i18n import catalog_messages
from tests.webhelpers import WEB_PASSWORD, form_token, web_login

PASSWORD = WEB_PASSWORD


@pytest.fixture
def client(engine, store):
    with Session(engine) as session:
        for name, role in (("clerk:李四", "clerk"), ("officer:张三", "officer"), ("auditor:赵", "auditor")):
            add_user(session, name, roles=[role], by="admin")
            set_password(session, name, PASSWORD, by="admin")
        recording = Recording(sha256="a" * 64, size_bytes=10, media_kind="video", original_name="CLIP0001.mp4",
                              station_code="station-1", captured_start=datetime(2026, 11, 20, tzinfo=UTC),
                              captured_end=datetime(2026, 11, 20, 0, 1, tzinfo=UTC), time_source="container",
                              integrity_status="ok", state="archived", ingested_at=utcnow(),
                              retain_until=utcnow() + timedelta(days=180), officer_number="010203",
                              case_number="AB-2026-00042", purpose="证明无照经营")
        session.add(recording)
        session.flush()
        record_stamp(session, recording, by="station:test", reason="ingest")
        session.commit()
    with TestClient(create_app(WebConfig(engine=engine, store=store))) as test_client:
        yield test_client


_csrf, _login = form_token, web_login


def test_health_metrics_and_openapi(client):
    assert client.get("/health").json() == {"status": "ok", "database": "ok", "store": "local", "alarms": []}
    assert client.get("/metrics").status_code == 401  # sign-in or EVIDENCE_METRICS_TOKEN
    _login(client, "auditor:赵")
    metrics = client.get("/metrics").text
    assert "evidence_staged_overdue_recordings 0.0" in metrics
    assert 'evidence_recordings{state="archived"} 1.0' in metrics and "evidence_http_requests_total" in metrics
    assert "/api/recordings" in client.get("/api/openapi.json").json()["paths"]


def test_sign_in_in_chinese_by_default_english_on_a_switch(client):
    assert "登录" in client.get("/login").text
    english = client.get("/login?lang=en")
    assert "Sign in" in english.text and "登录" not in english.text
    assert client.cookies.get("lang") == "en"
    signed = _login(client, "clerk:李四")
    assert signed.status_code == 303 and client.cookies.get("evidence_session")
    page = client.get("/")
    assert page.status_code == 200 and "Search recordings" in page.text and "CLIP0001.mp4" in page.text
    assert "检索音视频记录" in client.get("/?lang=zh_CN").text


def test_wrong_passwords_lock_the_account_and_are_recorded(client, engine):
    for _ in range(MAX_FAILURES):
        refused = _login(client, "clerk:李四", "wrong password!")
        assert refused.status_code == 401 and "用户名或密码错误" in refused.text
    locked = _login(client, "clerk:李四")  # even the right password waits out the lock
    assert locked.status_code == 401 and "登录失败次数过多" in locked.text
    unknown = _login(client, "nobody", "whatever123")
    assert unknown.status_code == 401 and "用户名或密码错误" in unknown.text  # same words: names are not revealed
    with Session(engine) as session:
        failures = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "sign_in_failed")).all()
        assert [e.details["reason"] for e in failures] == ["wrong password"] * MAX_FAILURES + ["locked",
                                                                                              "unknown or inactive"]


def test_sign_in_without_the_form_token_is_refused(client):
    client.get("/login")
    forged = client.post("/login", data={"name": "clerk:李四", "password": PASSWORD, "csrf": "forged"},
                         follow_redirects=False)
    assert forged.status_code == 403 and "表单已过期" in forged.text
    assert client.cookies.get("evidence_session") is None


def test_every_role_gets_only_what_it_may(client, engine):
    assert client.get("/api/recordings").status_code == 401
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    _login(client, "officer:张三")  # an officer account not yet tied to an officer number sees nothing
    assert client.get("/api/recordings").json()["recordings"] == []
    refused = client.get("/api/recordings/1")
    assert refused.status_code == 403 and "outside what officer:张三 may view" in refused.json()["error"]
    client.cookies.clear()
    _login(client, "auditor:赵")
    found = client.get("/api/recordings", params={"case": "AB-2026-00042"}).json()["recordings"]
    assert [r["original_name"] for r in found] == ["CLIP0001.mp4"]
    viewed = client.get(f"/api/recordings/{found[0]['id']}", params={"reason": "年度审计"})
    assert viewed.status_code == 200
    with Session(engine) as session:
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "viewed")).one()
        assert (event.actor, event.details["reason"], event.recording_id) == ("auditor:赵", "年度审计", found[0]["id"])
        refusal = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused")).one()
        assert (refusal.actor, refusal.recording_id, refusal.details["action"]) == ("officer:张三", 1, "view")


def test_bad_input_gets_clear_answers_never_a_500(client):
    _login(client, "clerk:李四")
    assert client.get("/api/recordings", params={"from": "yesterday"}).status_code == 422
    too_big = client.get("/api/recordings", params={"size": 10**9})
    assert too_big.status_code == 422 and too_big.json()["error"] == ["size: '1000000000' is not one of 1-1000"]
    assert client.get("/api/recordings", params={"page": 10**20}).status_code == 422
    assert client.get("/api/recordings/99999999").status_code == 404
    injection = client.get("/api/recordings", params={"case": "' OR 1=1 --", "purpose": "%'; DROP TABLE recording;"})
    assert injection.status_code == 200 and injection.json()["recordings"] == []
    page = client.get("/", params={"from": "2026-13-45", "lat": "91", "lon": "x", "radius": "5"})
    shown = html.unescape(page.text)
    assert page.status_code == 400 and "起始时间: '2026-13-45' 不是有效时间" in shown and "经度: 'x' 不是数字" in shown
    huge = client.get("/", params={"page": "99999999999999999999"})
    assert huge.status_code == 400 and "页码" in huge.text
    past = client.get("/", params={"page": "50"})
    assert past.status_code == 200 and "没有第 50 页" in past.text
    assert client.get("/api/recordings").json()["recordings"]  # the table is still there


def test_sign_out_needs_the_session_token(client):
    _login(client, "clerk:李四")
    page = client.get("/")
    client.post("/logout", data={"csrf": "forged"}, follow_redirects=False)
    assert client.get("/api/recordings").status_code == 200  # a forged sign-out does nothing
    client.post("/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert client.get("/api/recordings").status_code == 401


def test_both_catalogs_translate_every_message():
    chinese, english = catalog_messages("zh_CN"), catalog_messages("en")
    assert set(chinese) == set(english) and len(chinese) >= 15
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in chinese.values())


def test_auditors_read_the_access_and_custody_logs(client):
    _login(client, "clerk:李四")
    assert client.get("/audit").status_code == 403
    client.get("/api/recordings/1", params={"reason": "复核"})
    client.cookies.clear()
    _login(client, "auditor:赵")
    access = client.get("/audit", params={"log": "access"})
    assert access.status_code == 200 and "调阅记录" in access.text
    assert "viewed" in access.text and "signed_in" in access.text and "复核" in access.text
    # in words an auditor reads: the event's Chinese name, the stated reason in its own column, the details as a
    # sentence (the JSON kept beside it), the time on the agency's clock
    assert '<td data-kind="viewed">查看信息</td>' in access.text and '<td class="reason">复核</td>' in access.text
    assert "查看目录信息（api），事由：复核" in access.text and "登录" in access.text
    offset = datetime.now(ZoneInfo(client.app.state.config.zone)).strftime("%z")
    assert f" {offset[:3]}:{offset[3:]}</td>" in access.text
    english = client.get("/audit", params={"log": "access", "lang": "en"})
    assert '<td data-kind="viewed">viewed</td>' in english.text and "Catalogue entry viewed (api)" in english.text
    assert 'data-kind="user_changed"' not in access.text  # the access log leaves other events out
    assert 'data-kind="user_changed"' in client.get("/audit").text
    assert 'data-kind="user_changed"' in client.get("/audit", params={"log": "admin"}).text
    only = client.get("/audit", params={"actor": "clerk:李四", "kind": "viewed"})
    assert only.text.count('data-kind="viewed"') == 1
    assert client.get("/audit", params={"recording": "1; DROP TABLE x"}).status_code == 400
    assert client.get("/audit", params={"page": 10**12}).status_code == 200
    bad_time = client.get("/audit", params={"from": "last week"})
    assert bad_time.status_code == 400 and "From: &#39;last week&#39; is not a time (e.g." in bad_time.text
    chinese = client.get("/audit", params={"from": "last week", "lang": "zh_CN"})  # the reader's language
    assert chinese.status_code == 400 and "起始时间：&#39;last week&#39; 不是时间（例如 2026-11-20" in chinese.text
    client.get("/audit", params={"lang": "en"})
    future = client.get("/audit", params={"from": "2999-01-01T00:00"})
    assert future.text.count('data-kind="viewed"') == 0
    # today, typed as a date at both ends (as an agency writes it): the whole of today, not its first instant
    today = datetime.now(ZoneInfo(client.app.state.config.zone)).date()
    for typed in (today.isoformat(), today.strftime("%Y/%m/%d"), f"{today.year}年{today.month}月{today.day}日"):
        assert client.get("/audit", params={"from": typed, "to": typed}).text.count('data-kind="viewed"') == 1, typed
    download = client.get("/audit.csv", params={"log": "access", "actor": "clerk:李四"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    # named after its filters (the person's name in UTF-8, an ASCII name beside it), so saved downloads say what
    # each holds
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"audit-access-actor-clerk__.csv\"; "
        "filename*=UTF-8''audit-access-actor-clerk_%E6%9D%8E%E5%9B%9B.csv")
    lines = download.text.strip().splitlines()
    assert lines[0].startswith("\ufeffid,at,kind,actor")  # a UTF-8 BOM first: Excel reads the Chinese names
    assert any(",viewed,clerk:李四," in line for line in lines)
    assert all(",clerk:李四," in line for line in lines[1:])
    assert "audit log (CSV)" in client.get("/audit", params={"kind": "exported"}).text  # the download is recorded
    # a filter typed to break out of the header or the file name stays inside both
    hostile = client.get("/audit.csv", params={"actor": 'x"; filename=evil.exe\r\nSet-Cookie: a=b/../..'})
    disposition = hostile.headers["content-disposition"]
    assert "set-cookie" not in {k.lower() for k in hostile.headers} and disposition.count('"') == 2
    assert disposition == ('attachment; filename="audit-custody-actor-x_filename_evil.exe_Set-Cookie_a_b.csv"; '
                           "filename*=UTF-8''audit-custody-actor-x_filename_evil.exe_Set-Cookie_a_b.csv")


def test_admins_manage_users_and_nobody_else_can(client, engine):
    with Session(engine) as session:
        add_user(session, "admin:钱", roles=["admin"], by="setup")
        set_password(session, "admin:钱", PASSWORD, by="setup")
        session.commit()
    _login(client, "clerk:李四")
    assert client.get("/admin").status_code == 403
    assert client.post("/admin/users", data={"csrf": "x", "name": "n", "action": "add"}).status_code == 403
    client.cookies.clear()
    _login(client, "admin:钱")
    page = client.get("/admin")
    assert page.status_code == 200 and "clerk:李四" in page.text and "执法人员清单" in page.text
    csrf = _csrf(page.text)
    added = client.post("/admin/users", data={"csrf": csrf, "action": "add", "name": "supervisor:孙",
                                              "roles": ["supervisor"], "password": "long enough pass"},
                        follow_redirects=False)
    assert added.status_code == 303
    short = client.post("/admin/users", data={"csrf": csrf, "action": "password", "name": "supervisor:孙",
                                              "password": "short"})
    assert short.status_code == 400 and "密码至少需要 10 个字符（当前为 5 个）" in short.text
    self_off = client.post("/admin/users", data={"csrf": csrf, "action": "deactivate", "name": "admin:钱"})
    assert self_off.status_code == 400 and "不能停用自己的账户" in self_off.text
    client.post("/admin/users", data={"csrf": csrf, "action": "deactivate", "name": "clerk:李四"})
    client.cookies.clear()
    assert _login(client, "clerk:李四").status_code == 401  # a deactivated user cannot sign in
    assert _login(client, "supervisor:孙", "long enough pass").status_code == 303


def test_times_are_shown_on_the_agencys_clock():
    from evidence.web.app import local_time

    assert local_time("2026-11-20T02:20:00Z", "Asia/Shanghai") == "2026-11-20 10:20:00 +08:00"
    assert local_time(datetime(2026, 11, 20, 2, 20, tzinfo=UTC), "UTC") == "2026-11-20 02:20:00 +00:00"
    assert local_time(None, "Asia/Shanghai") == "-"


def test_the_api_shows_a_recording_in_the_shape_evidence_show_prints(client, engine):
    """GET /api/recordings/{id} and `evidence show --json` both print catalog.detail.recording_detail."""
    import json

    from catalog.detail import recording_detail

    _login(client, "clerk:李四")
    shown = client.get("/api/recordings/1")
    assert shown.status_code == 200
    with Session(engine) as session:
        recording = session.get(Recording, 1)
        assert recording is not None
        detail = recording_detail(session, recording, client.app.state.config.policy)
    assert shown.json() == json.loads(json.dumps(detail))
    assert shown.json()["has_proxy"] is False and shown.json()["custody"][-1]["kind"] == "viewed"
