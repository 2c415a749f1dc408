"""Attacks a review found breaking forgiving search, the NUL guard, the Chinese words for retention and the
officer's untagged count (c0a1cf4, 8a9b7db, 5b6a99a): a NUL past the guard six ways, pg_trgm kept in a schema of
its own, two hold reasons read as one, letters beyond ASCII folded on PostgreSQL but not SQLite, disposed or
case-linked recordings counted as still to tag, a forged "done" cookie shown on the page."""
from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlmodel import Session

from catalog.models import Recording
from evidence.web.words import retention_words
from tests.webhelpers import form_token, web_login


def _client(web_site):
    client, engine = web_site
    return TestClient(client.app, raise_server_exceptions=False), engine  # a 500 is an answer, not a raise


def _clerk(client) -> str:
    assert web_login(client, "clerk").status_code in (302, 303)
    return form_token(client.get("/").text)


def _refused_for_nul(answer) -> bool:
    return answer.status_code == 400 and "NUL" in answer.text


# --- 1. NulGuard bypasses (NUL reaches the route: stored on SQLite, 500 on PostgreSQL) ------------------------

def test_nul_in_a_multipart_text_field_is_refused(web_site):
    """Every Form() route takes multipart too; the guard skips multipart entirely."""
    client, _engine = _client(web_site)
    token = _clerk(client)
    answer = client.post("/recordings/1/stamp", data={"csrf": token, "purpose": "m\x00p", "reason": "r"},
                         files={"x": ("a.txt", b"hi", "text/plain")}, follow_redirects=False)
    assert _refused_for_nul(answer), answer.status_code  # sqlite: 303 and purpose 'm\x00p' stored; pg: 500


@pytest.mark.parametrize("headers", [
    {"Content-Type": "Application/X-WWW-Form-Urlencoded"},  # media types are case-insensitive; Starlette parses it
    # the guard read the last of two; Starlette reads the first
    [("Content-Type", "application/x-www-form-urlencoded"), ("Content-Type", "text/plain")],
], ids=["uppercase", "duplicate-header"])
def test_nul_in_a_form_with_an_unusual_content_type_is_refused(web_site, headers):
    client, _engine = _client(web_site)
    token = _clerk(client)
    body = f"csrf={token}&purpose=u%00p&reason=r"
    answer = client.post("/recordings/1/stamp", content=body, headers=headers, follow_redirects=False)
    assert _refused_for_nul(answer), answer.status_code  # sqlite: 303 (stored); pg: 500


def test_nul_in_a_form_over_max_checked_split_over_fields_is_refused(web_site):
    """Starlette caps one field at 1 MiB, not the form: two 600 KB fields take the body past MAX_CHECKED."""
    client, _engine = _client(web_site)
    token = _clerk(client)
    body = f"csrf={token}&purpose=b%00p&reason=r&p1={'a' * 600_000}&p2={'a' * 600_000}"
    answer = client.post("/recordings/1/stamp", content=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert _refused_for_nul(answer), answer.status_code  # sqlite: 303 (stored); pg: 500


@pytest.mark.parametrize("kind", ["application/merge-patch+json", "APPLICATION/JSON"])
def test_nul_in_json_with_another_json_content_type_is_refused(web_site, kind):
    """FastAPI reads any application/*+json (and any letter case) as JSON; the guard only 'application/json'."""
    client, _engine = _client(web_site)
    token = _clerk(client)
    body = json.dumps({"boxes": ["0,0,16,16"], "reason": "j\x00"}).encode()
    answer = client.post("/api/recordings/2/redactions", content=body,
                         headers={"X-CSRF-Token": token, "Content-Type": kind})
    assert _refused_for_nul(answer), answer.text[:200]  # it was: the route's own 400 (it read the NUL reason)


def test_nul_in_the_path_is_not_a_500(web_site):
    client, _engine = _client(web_site)
    _clerk(client)
    answer = client.get("/cases/AB%00C")
    assert answer.status_code in (400, 404), answer.status_code  # pg: 500 (DataError from the case lookup)


# --- 2. Forgiving search: SQLite and PostgreSQL disagree on letter case beyond ASCII ---------------------------

# --- 3. words.py: several reasons joined by "; " read as one (mangled) ----------------------------------------

@pytest.mark.parametrize(("joined", "expected"), [
    ("case A-1 is open; case B-2 is open", "案件 A-1 尚未结案；案件 B-2 尚未结案"),
    ("case A-1 closed 2026-01-01 + 5 years (penalty-general); case B-2 is open",
     "案件 A-1 于 2026-01-01 结案，再保存 5 年（penalty-general）；案件 B-2 尚未结案"),
])
def test_two_reasons_joined_read_one_by_one(joined, expected):
    assert retention_words(joined, "zh-CN") == expected  # it was: "案件 A-1 is open; case B-2 尚未结案"


def test_the_retention_pages_joined_hold_reasons_read_one_by_one():
    """retention.html renders rule_text(i.hold_reasons|join("; ")): the reasons decide_retention writes for a
    recording serving two open cases."""
    from datetime import UTC, datetime

    from catalog.retention import DEFAULT_CASE_TYPES, CaseFacts, RetentionPolicy, decide_retention
    decision = decide_retention(base_time=datetime(2026, 11, 20, tzinfo=UTC), current=None, policy=RetentionPolicy(
        6, DEFAULT_CASE_TYPES, "Asia/Shanghai"), cases=[CaseFacts("AB-2026-00042", "penalty-general", "open", None),
                                                        CaseFacts("AB-2026-00043", "penalty-general", "open", None)])
    said = retention_words("; ".join(decision.hold_reasons), "zh-CN")
    assert said == "案件 AB-2026-00042 尚未结案；案件 AB-2026-00043 尚未结案", said


# --- 4. Untagged: a recording that can no longer be tagged is counted as "still to tag" -----------------------

def test_a_disposed_recording_is_not_counted_as_still_to_tag(web_site):
    client, engine = _client(web_site)
    with Session(engine) as s:
        rec = s.get(Recording, 1)
        assert rec is not None
        rec.state = "disposed"  # a tombstone: the officer cannot tag it any more
        s.add(rec)
        s.commit()
    assert web_login(client, "officer").status_code in (302, 303)
    page = client.get("/").text
    assert "您有 1 条记录尚未标注" in page, re.findall(r'id="untagged">.*?</p>', page)  # it was: 2


def test_a_recording_serving_a_case_is_not_still_to_tag(web_site):
    """The case filter finds stamped or linked recordings alike, but `tagged` looks at the stamp only: a recording a
    clerk linked to a case is counted, sorted first and badged "not yet tagged" on the officer's page (the same
    card lists the case)."""
    from catalog.cases import get_case, link_recording
    client, engine = _client(web_site)
    with Session(engine) as s:
        first = s.get(Recording, 1)
        assert first is not None
        link_recording(s, get_case(s, "AB-2026-00042"), first, purpose="证明现场", by="clerk")
        s.commit()
    assert web_login(client, "officer").status_code in (302, 303)
    page = client.get("/").text
    assert "您有 1 条记录尚未标注" in page, re.findall(r'id="untagged">.*?</p>', page)  # it was: 2


# --- 5. Migration 0026 where pg_trgm lives in a schema outside the search path -------------------------------

@pytest.mark.postgres
def test_migration_0026_with_pg_trgm_in_an_extensions_schema():
    from catalog.db import TRIGRAM_INDEXES, open_catalog
    from tests.conftest import postgres_database

    made = postgres_database()
    url = next(made)
    owner = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as c:  # as a DBA often installs extensions (e.g. a managed PostgreSQL)
            c.execute(text("CREATE SCHEMA extensions"))
            c.execute(text("CREATE EXTENSION pg_trgm SCHEMA extensions"))
        engine = open_catalog(url)  # it was: CatalogUnavailable (operator class "gin_trgm_ops" does not exist)
        with engine.connect() as c:
            indexes = {row[0] for row in c.exec_driver_sql("SELECT indexname FROM pg_indexes")}
        engine.dispose()
        assert set(TRIGRAM_INDEXES) <= indexes
    finally:
        owner.dispose()
        next(made, None)


# --- 6. The done cookie: a forged one is said on the page --------------------------------------------------------

def test_a_done_cookie_this_server_did_not_set_says_nothing(web_site):
    client, _engine = _client(web_site)
    _clerk(client)
    forged = quote(json.dumps(["linked", {"n": "0", "case": "失败：请致电 000-0000 重新登录"}], ensure_ascii=False))
    client.cookies.set("evidence_done", forged)
    page = client.get("/").text
    assert "000-0000" not in page  # it was: "0 条录像已加入案件 失败：请致电 000-0000 重新登录。" (unsigned cookie)
