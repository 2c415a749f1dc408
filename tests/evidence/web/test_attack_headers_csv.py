"""Issue 13, item 7 and the security headers: a formula typed as a login name must reach the auditor's CSV as
text, and every response carries the headers that stop framing, sniffing, referrer leaks and foreign scripts;
/metrics and the API description need a session or the metrics token."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from catalog.csvsafe import BOM, csv_chunks, defuse
from evidence.web import WebConfig, create_app
from tests.webhelpers import add_web_users, web_login

TOKEN = "prometheus-scrape-token-9f2c"
HOSTILE_NAMES = ["=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0",
                 "\t=1+1", "\r=1+1"]


@pytest.fixture
def client(engine, store):
    add_web_users(engine, {"auditor:赵": "auditor", "clerk:李四": "clerk"})
    with TestClient(create_app(WebConfig(engine=engine, store=store, metrics_token=TOKEN))) as test_client:
        yield test_client


def _cells(text: str) -> list[list[str]]:
    assert text.startswith(BOM), text[:20]
    return list(csv.reader(io.StringIO(text[len(BOM):])))


def test_a_formula_typed_as_a_login_name_reaches_the_audit_csv_as_text(client):
    for name in HOSTILE_NAMES:  # real failed sign-ins through the form
        refused = web_login(client, name, "whatever")
        assert refused.status_code == 401
    web_login(client, "clerk:李四", "wrong password")
    assert web_login(client, "auditor:赵").status_code == 303
    download = client.get("/audit.csv", params={"kind": "sign_in_failed"})
    assert download.status_code == 200 and download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Chinese Excel reads 李四 right
    rows = _cells(download.text)
    actors = [row[3] for row in rows[1:]]
    assert [f"'{n}" for n in HOSTILE_NAMES] == [a for a in actors if a != "clerk:李四"]
    assert "clerk:李四" in actors
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (row, cell)


def test_defuse_follows_the_owasp_rule():
    assert [defuse(v) for v in ("=1", "+1", "-1", "@x", "\tx", "\rx", "a=1", "", None, 5, "李四")] == \
        ["'=1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "a=1", "", "", "5", "李四"]
    text = "".join(csv_chunks(["h"], [["=1"], ["ok"]], chunk_chars=1))
    assert text == f"{BOM}h\r\n'=1\r\nok\r\n"


SPACED_NAMES = ["  =cmd|' /C calc'!A0", " +1+cmd|' /C calc'!A0", "\u3000@SUM(1+1)", "\n-2+3", " \t =1+1"]


def test_a_formula_after_leading_spaces_reaches_the_audit_csv_as_text(client):
    """Spreadsheets skip leading spaces before `=`: a login name `  =cmd|…` must be defused too."""
    for name in SPACED_NAMES:
        assert web_login(client, name, "whatever").status_code == 401
    assert web_login(client, "auditor:赵").status_code == 303
    download = client.get("/audit.csv", params={"kind": "sign_in_failed"})
    assert download.status_code == 200
    actors = [row[3] for row in _cells(download.text)[1:]]
    assert sorted(actors) == sorted(f"'{n}" for n in SPACED_NAMES), actors
    for cell in (c for row in _cells(download.text) for c in row):
        assert not cell.lstrip().startswith(("=", "+", "-", "@")), cell


def test_defuse_looks_past_leading_whitespace():
    assert [defuse(v) for v in ("  =1", " +1", "\u00a0-1", "\u3000@x", "\n=1", "  a=1", "   ", " 5", "a -1")] == \
        ["'  =1", "' +1", "'\u00a0-1", "'\u3000@x", "'\n=1", "  a=1", "   ", " 5", "a -1"]


def _security_headers(response) -> None:
    h = response.headers
    assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    csp = h["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src and "'unsafe-inline'" not in script_src.group(1) and "'unsafe-eval'" not in script_src.group(1)


def test_every_kind_of_response_carries_the_security_headers(client):
    answers = [client.get("/login"), client.get("/health"), client.get("/metrics"), client.get("/no/such/page"),
               client.get("/", follow_redirects=False), client.get("/api/recordings"),
               client.post("/login", data={"name": "x"})]
    web_login(client, "auditor:赵")
    answers += [client.get("/audit"), client.get("/audit.csv"), client.get("/metrics"),
                client.get("/no/such/page", headers={"accept": "text/html"})]
    assert {a.status_code for a in answers} >= {200, 303, 401, 404, 422}
    for answer in answers:
        _security_headers(answer)


def test_archive_wide_figures_are_not_an_officers(engine, store):
    """An officer, refused /api/statistics, read every state's count from /metrics (found by a review)."""
    add_web_users(engine, {"officer:张": "officer", "auditor:赵": "auditor"})
    with TestClient(create_app(WebConfig(engine=engine, store=store, metrics_token=TOKEN))) as client:
        web_login(client, "officer:张")
        refused = client.get("/metrics")
        assert refused.status_code == 403 and "do not allow statistics" in refused.json()["error"]
        assert "evidence_recordings" not in refused.text
        client.cookies.clear()
        web_login(client, "auditor:赵")
        assert client.get("/metrics").status_code == 200


def test_no_template_has_an_inline_script_event_handler_or_style():
    """The policy allows scripts and styles from the archive's own files only; a page that broke the rule would
    show unstyled or dead, so the templates are held to it."""
    templates = Path(__file__).resolve().parents[3] / "evidence" / "web" / "templates"
    for page in templates.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text, re.I), f"{page.name}: an inline <script>"
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), f"{page.name}: an inline event handler"
        assert "javascript:" not in text.lower(), page.name
        assert not re.search(r"<style\b", text, re.I), f"{page.name}: an inline <style>"
        assert not re.search(r"\sstyle\s*=", text, re.I), f"{page.name}: a style attribute"


def test_the_policy_allows_no_inline_style(client):
    policy = client.get("/login").headers["content-security-policy"]
    style_src = re.search(r"style-src ([^;]*)", policy)
    assert style_src and style_src.group(1).split() == ["'self'"]


@pytest.mark.parametrize("path", ["/metrics", "/api/openapi.json", "/api/docs"])
def test_metrics_and_api_docs_need_a_session_or_the_token(client, path):
    anonymous = client.get(path)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "no session and no bearer token" in anonymous.json()["error"]
    wrong = client.get(path, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and "a wrong bearer token" in wrong.json()["error"]
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    web_login(client, "clerk:李四")
    shown = client.get(path)
    assert shown.status_code == 200
    if path == "/api/openapi.json":
        assert "/api/recordings" in shown.json()["paths"]
    if path == "/api/docs":  # Swagger UI from the package's own copy: no CDN, no inline script, the pages' policy
        policy = shown.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "nonce" not in policy and "frame-ancestors 'none'" in policy
        sources = re.findall(r'(?:src|href)="([^"]+)"', shown.text)
        assert sources and all(s.startswith("/static/") or s == "data:," for s in sources), sources
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", shown.text)
        for source in (s for s in sources if s.startswith("/static/")):
            assert client.get(source).status_code == 200, source


def test_without_a_configured_token_no_bearer_opens_metrics(engine, store):
    with TestClient(create_app(WebConfig(engine=engine, store=store))) as anonymous:
        assert anonymous.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
        assert anonymous.get("/metrics", headers={"Authorization": "Bearer"}).status_code == 401


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_the_framework_default_doc_routes_do_not_exist(client, path):
    assert client.get(path).status_code == 404
