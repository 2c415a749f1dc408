"""Issue 13, attacked as an insider would: export without rights or scope, reads that left no record (Range
tricks, a page that fetched media nobody played), thumbnails and the API past the reason policy, spot checks of
other units, case numbers with `/`, and case pages that showed other units' recordings.

The web app runs for real: in-process (FastAPI's test client) and, for the Range attacks, under uvicorn on
127.0.0.1; the command line through click; the catalogue on SQLite and PostgreSQL with a real local WORM store.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import zipfile
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, col, select

from catalog import (
    DEFAULT_CASE_PATTERN,
    CustodyEvent,
    DerivedMedia,
    Recording,
    get_case,
    link_recording,
    open_catalog,
)
from catalog.cases import create_case
from catalog.retention import DEFAULT_CASE_TYPES, RetentionPolicy
from catalog.types import utcnow
from catalog.user_models import ViewingAccess
from evidence.web import WebConfig, create_app
from tests.evidence.web.conftest import CASE, seal_all
from tests.helpers.webserver import serving
from tests.webhelpers import form_token, web_login

PROXY = b"proxy bytes " * 300
THUMB = b"\xff\xd8\xff\xe0 not really a jpeg" * 10


def _events(engine: Any, kind: str, **where: Any) -> list[CustodyEvent]:
    with Session(engine) as session:
        query = select(CustodyEvent).where(CustodyEvent.kind == kind)
        for field, value in where.items():
            query = query.where(getattr(CustodyEvent, field) == value)
        return list(session.exec(query.order_by(col(CustodyEvent.id))))


def _recording_ids(events: list[CustodyEvent]) -> list[int]:
    """The recordings *events* are about, sorted; each of them must be about one."""
    ids = []
    for event in events:
        assert event.recording_id is not None, event
        ids.append(event.recording_id)
    return sorted(ids)


def _link_all(engine: Any, store: Any) -> None:
    """Recordings 1, 2 and 3, sealed, linked to the case."""
    seal_all(engine, store)
    with Session(engine) as session:
        case = get_case(session, CASE)
        for rid in (1, 2, 3):
            recording = session.get(Recording, rid)
            assert recording is not None
            link_recording(session, case, recording, purpose=f"证明事实{rid}", by="clerk")
        session.commit()


def _derive(engine: Any, store: Any, tmp_path: Path, recording_id: int, kind: str, data: bytes) -> None:
    """A derived file (proxy or thumbnail) for a recording, stored and catalogued as the derive worker does."""
    name, content_type = {"proxy": ("proxy.mp4", "video/mp4"), "thumbnail": ("thumbnail.jpg", "image/jpeg")}[kind]
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        path = tmp_path / f"{recording_id}.{name}"
        path.write_bytes(data)
        key = store.put_derived(recording.sha256, name, path, content_type=content_type)
        session.add(DerivedMedia(recording_id=recording_id, derived_from_sha256=recording.sha256, kind=kind, key=key,
                                 sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                                 content_type=content_type, created_at=utcnow()))
        session.commit()


def _app(engine: Any, store: Any, **config: Any) -> Any:
    return create_app(WebConfig(engine=engine, store=store, key=Ed25519PrivateKey.generate(), station="station-1",
                                **config))


# -- High 1: export applies the rights and scope of downloading each original, and a stated reason --------------

def test_export_is_refused_to_an_auditor_and_to_a_supervisor_of_other_units(web_site, store):
    client, engine = web_site
    _link_all(engine, store)
    url = f"/cases/{CASE}/export"

    web_login(client, "auditor")
    page = client.get(f"/cases/{CASE}")
    assert 'name="reason"' in page.text and 'id="export-form"' in page.text  # the form asks for the reason
    refused = client.post(url, data={"csrf": form_token(page.text), "reason": "审计抽查"})
    assert refused.status_code == 403 and "application/zip" not in refused.headers["content-type"]
    assert "auditor" in refused.text and "无权下载录像" in refused.text and "已拒绝：录像 1, 2, 3" in refused.text
    assert {(e.recording_id, e.details["action"], e.details["why"]) for e in _events(engine, "access_refused",
                                                                                        actor="auditor")} == {
        (1, "export", "role"), (2, "export", "role"), (3, "export", "role")}

    client.cookies.clear()
    web_login(client, "unit-2-supervisor")
    token = form_token(client.get(f"/cases/{CASE}").text)
    outside = client.post(url, data={"csrf": token, "reason": "复核"})
    assert outside.status_code == 403 and "application/zip" not in outside.headers["content-type"]
    assert "录像 1, 2 不在 unit-2-supervisor 可导出的范围内（单位 U2）" in outside.text
    assert f"无法生成 案件 {CASE} 的证据包：已拒绝导出案件 {CASE}，未写入任何内容" in outside.text
    assert _recording_ids(_events(engine, "access_refused", actor="unit-2-supervisor")) == [1, 2]
    assert _events(engine, "exported") == []

    client.cookies.clear()
    web_login(client, "supervisor")  # no units: the whole agency
    token = form_token(client.get(f"/cases/{CASE}").text)
    for blank in ("", "   "):
        unstated = client.post(url, data={"csrf": token, "reason": blank})
        assert unstated.status_code == 422 and "请说明调阅录像 1, 2, 3 的事由：下载一律需要说明事由" in unstated.text
    package = client.post(url, data={"csrf": token, "reason": "移送法院"})
    assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(package.content)).namelist()
    assert sum("/data/recordings/" in n for n in names) == 3
    exported = _events(engine, "exported")
    assert _recording_ids(exported) == [1, 2, 3]  # exactly one per recording
    assert {(e.actor, e.details["reason"]) for e in exported} == {("supervisor", "移送法院")}


def test_the_command_line_export_and_cat_apply_the_same_checks(web_site, store, tmp_path, catalog_url):
    from tests.cli import run_cli

    _client, engine = web_site
    _link_all(engine, store)
    env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url}

    auditor = run_cli(env, "export", CASE, "--out", str(tmp_path / "a.zip"), "--by", "auditor", "--reason", "审计")
    assert auditor.exit_code == 2 and "may not download" in auditor.stderr and "recordings 1, 2, 3" in auditor.stderr
    outside = run_cli(env, "export", CASE, "--out", str(tmp_path / "b"), "--by", "unit-2-supervisor",
                      "--reason", "复核")
    assert outside.exit_code == 2, outside.output
    assert "recordings 1, 2 are outside what unit-2-supervisor may export (unit U2)" in outside.stderr
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / "b").exists()
    unstated = run_cli(env, "export", CASE, "--out", str(tmp_path / "c"), "--by", "clerk")
    assert unstated.exit_code == 2 and "state the reason" in unstated.stderr
    assert _events(engine, "exported") == []
    done = run_cli(env, "export", CASE, "--out", str(tmp_path / "d"), "--by", "clerk", "--reason", "移送法院")
    assert done.exit_code == 0, done.output
    assert sorted((e.recording_id, e.details["reason"]) for e in _events(engine, "exported")) == [
        (1, "移送法院"), (2, "移送法院"), (3, "移送法院")]

    # `evidence cat` is the same read as a web download: scope and reason checked, one access recorded
    refused = run_cli(env, "cat", "1", "--by", "unit-2-supervisor", "--reason", "复核")
    assert refused.exit_code == 2 and "recording 1 is outside what unit-2-supervisor may download" in refused.stderr
    assert refused.stdout_bytes == b""
    read = run_cli(env, "cat", "3", "--by", "unit-2-supervisor", "--reason", "复核")
    assert read.exit_code == 0 and read.stdout_bytes == b"recording 3" * 100
    assert [(e.recording_id, e.details["reason"], e.details["what"]) for e in
            _events(engine, "accessed", actor="unit-2-supervisor")] == [(3, "复核", "original")]


# -- Medium 3: one recorded access per viewing session, whatever the Range header ---------------------------------

@pytest.fixture
def two_servers(web_site, store, tmp_path, catalog_url):
    """Two web servers on one catalogue, each with its own engine (as two processes would have), recording 1 with
    a browser proxy."""
    _client, engine = web_site
    _derive(engine, store, tmp_path, 1, "proxy", PROXY)
    other_engine = open_catalog(catalog_url)
    try:
        with serving(_app(engine, store)) as first, serving(_app(other_engine, store)) as second:
            yield first, second, engine
    finally:
        other_engine.dispose()


RANGES = [None, "bytes=00-", "bytes=-999999999", "bytes=1-"]
LATER = [*RANGES, "bytes=0-0", "bytes=5-9", "bytes=0-"]
MEDIA = {"original": ("/media/1/original?reason=复核", b"recording 1" * 100),
         "photo": ("/media/2/photo?reason=复核", b"recording 2" * 100),
         "proxy": ("/media/1/proxy", PROXY)}


@pytest.mark.parametrize("what", sorted(MEDIA))
def test_the_first_request_of_a_session_is_recorded_whatever_its_range(two_servers, what):
    first, second, engine = two_servers
    path, body = MEDIA[what]
    recording_id = 2 if what == "photo" else 1

    def accesses() -> list[CustodyEvent]:
        return _events(engine, "accessed", actor="clerk", recording_id=recording_id)

    for n, first_range in enumerate(RANGES, start=1):  # each sign-in is a new viewing session
        with httpx.Client(base_url=first if n % 2 else second) as browser:
            assert web_login(browser, "clerk").status_code == 303
            got = browser.get(path, headers={"Range": first_range} if first_range else {})
            assert got.status_code in (200, 206) and got.content and got.content in body
            assert [e.details["what"] for e in accesses()] == [what] * n, first_range
            for later in LATER:  # the same viewing session: no new event, whatever it asks for
                again = browser.get(path, headers={"Range": later} if later else {})
                assert again.status_code in (200, 206)
            # the same session served by the other server (its own engine): the mark is in the catalogue
            other = httpx.get((second if n % 2 else first) + path, cookies=browser.cookies,
                              headers={"Range": "bytes=0-"})
            assert other.status_code == 206 and other.content == body
            assert len(accesses()) == n
    with Session(engine) as session:
        marks = session.exec(select(ViewingAccess).where(ViewingAccess.recording_id == recording_id)).all()
        assert len(marks) == len(RANGES) and {m.what for m in marks} == {what}
        assert {m.event_id for m in marks} == {e.id for e in accesses()}


def test_parallel_first_requests_of_one_session_record_one_access(two_servers):
    first, second, engine = two_servers
    with httpx.Client(base_url=first) as browser:
        web_login(browser, "clerk")
        cookies = browser.cookies
    results: list[int] = []

    def fetch(n: int) -> None:
        base = first if n % 2 else second
        response = httpx.get(f"{base}/media/1/proxy", cookies=cookies, headers={"Range": f"bytes={n}-"})
        results.append(response.status_code)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [206] * 12
    assert len(_events(engine, "accessed", recording_id=1)) == 1


def test_opening_the_recording_page_fetches_and_records_no_media(web_site, store, tmp_path):
    client, engine = web_site
    _derive(engine, store, tmp_path, 1, "proxy", PROXY)
    _derive(engine, store, tmp_path, 1, "thumbnail", THUMB)
    web_login(client, "clerk")
    page = client.get("/recordings/1").text
    assert '<video id="player" controls preload="none"' in page and 'preload="metadata"' not in page
    assert 'src="/media/1/proxy"' in page
    assert _events(engine, "accessed") == [] and [e.recording_id for e in _events(engine, "viewed")] == [1]
    # an outsider's Range trick on someone else's recording is refused and recorded, whatever the spelling
    client.cookies.clear()
    web_login(client, "other-officer")
    for spelling in ("bytes=00-", "bytes=-999999999", "bytes=1-"):
        refused = client.get("/media/1/original", params={"reason": "x"}, headers={"Range": spelling})
        assert refused.status_code == 403 and "outside what other-officer may download" in refused.text
    assert _events(engine, "accessed") == []
    assert len(_events(engine, "access_refused", actor="other-officer", recording_id=1)) == 3


@pytest.mark.parametrize("policy", ["view", "play"])
def test_thumbnails_and_the_api_follow_the_reason_policy(web_site, store, tmp_path, policy):
    _client, engine = web_site
    _derive(engine, store, tmp_path, 1, "thumbnail", THUMB)
    with TestClient(_app(engine, store, access_reason=policy)) as client:
        web_login(client, "auditor")  # may view, never play
        search = client.get("/").text
        bare = client.get("/media/1/thumbnail")
        api = client.get("/api/recordings/1")
        if policy == "view":
            assert "/media/1/thumbnail" not in search  # the result grid shows no content without a reason
            assert bare.status_code == 422 and "state the reason" in bare.json()["error"]
            assert api.status_code == 422 and "state the reason" in api.json()["error"]
            page = client.get("/recordings/1", params={"reason": "审计核查"}).text
            assert 'src="/media/1/thumbnail?reason=%E5%AE%A1' in page
        else:
            assert "/media/1/thumbnail" in search and bare.status_code == 200 and api.status_code == 200
        stated = client.get("/media/1/thumbnail", params={"reason": "审计核查"})
        assert stated.status_code == 200 and stated.content == THUMB
        client.get("/media/1/thumbnail", params={"reason": "审计核查"})
        assert client.get("/media/1/proxy", params={"reason": "x"}).status_code == 403  # the role still rules
        client.cookies.clear()
        web_login(client, "other-officer")
        assert client.get("/media/1/thumbnail", params={"reason": "x"}).status_code == 403  # and the scope
    looks = _events(engine, "accessed", actor="auditor", recording_id=1)
    assert [(e.details["what"], e.details["reason"]) for e in looks] == (
        [("thumbnail", "审计核查")] if policy == "view" else [])  # recorded once a reason is asked for


# -- Medium 5: spot checks of other units -------------------------------------------------------------------------

def test_a_supervisor_of_other_units_can_neither_open_nor_review_a_spot_check(web_site):
    client, engine = web_site
    web_login(client, "admin")
    drawn = client.post("/spot-checks", data={"csrf": form_token(client.get("/spot-checks").text), "size": "2",
                                              "unit": "U1", "reviewers": "1"}, follow_redirects=False)
    assert drawn.status_code == 303
    check_id = int(drawn.headers["location"].rsplit("/", 1)[-1])
    with Session(engine) as session:
        from catalog.models import SpotCheckItem

        item_id = session.exec(select(SpotCheckItem.id).where(SpotCheckItem.check_id == check_id)).first()

    client.cookies.clear()
    web_login(client, "unit-2-supervisor")
    listing = client.get("/spot-checks")
    assert f'href="/spot-checks/{check_id}"' not in listing.text
    opened = client.get(f"/spot-checks/{check_id}")
    assert opened.status_code == 403 and "R1.video" not in opened.text
    assert f"抽查 {check_id}（抽取自 U1）超出 unit-2-supervisor 可查看的范围：其 2 条录像中有 2 条不在 单位 U2 之内" \
        in opened.text
    reviewed = client.post(f"/spot-checks/{check_id}/items/{item_id}",
                           data={"csrf": form_token(listing.text), "outcome": "compliant", "notes": ""})
    assert reviewed.status_code == 403 and f"抽查 {check_id}（抽取自 U1）超出 unit-2-supervisor 可复核的范围" \
        in reviewed.text
    assert _events(engine, "reviewed") == []
    refusals = _events(engine, "access_refused", actor="unit-2-supervisor")
    assert [(e.details["action"], e.details["check"], e.details["scope"]) for e in refusals] == [
        ("open spot check", check_id, "unit U2"), ("review spot check", check_id, "unit U2")]
    english = client.get(f"/spot-checks/{check_id}?lang=en")  # the same refusal, in English when asked
    assert english.status_code == 403 and f"spot check {check_id} (drawn from U1) is outside what " \
        "unit-2-supervisor may open: 2 of its 2 recordings lie outside unit U2" in english.text

    client.cookies.clear()
    web_login(client, "supervisor")  # the whole agency
    assert client.get(f"/spot-checks/{check_id}").status_code == 200


def test_a_spot_check_refusal_is_said_in_the_pages_language(web_site):
    """A spot check the catalogue refuses (nothing to draw from; a sign-off with items unreviewed) is said in
    Chinese on the default page and in English with ?lang=en."""
    client, engine = web_site
    web_login(client, "admin")
    token = form_token(client.get("/spot-checks").text)
    empty = client.post("/spot-checks", data={"csrf": token, "size": "2", "unit": "U1", "kind": "audio",
                                              "reviewers": "1"})
    assert empty.status_code == 400 and "没有符合 {&#39;unit&#39;: &#39;U1&#39;," in empty.text
    assert "的已归档执法记录" in empty.text and "no archived enforcement recording" not in empty.text
    drawn = client.post("/spot-checks", data={"csrf": token, "size": "2", "unit": "U1", "reviewers": "1"},
                        follow_redirects=False)
    assert drawn.status_code == 303
    check_id = int(drawn.headers["location"].rsplit("/", 1)[-1])
    with Session(engine) as session:
        from catalog.models import SpotCheck, SpotCheckItem

        check = session.get(SpotCheck, check_id)
        assert check is not None and len(check.reviewers) == 1
        reviewer = check.reviewers[0]
        items = ", ".join(str(i) for i in session.exec(select(SpotCheckItem.id).where(
            SpotCheckItem.check_id == check_id).order_by(col(SpotCheckItem.id))))
    not_theirs = client.post(f"/spot-checks/{check_id}/sign-off", data={"csrf": token})
    assert not_theirs.status_code == 403
    assert f"抽查 {check_id} 只能由抽中的检查人员签署（{reviewer}）；admin 不在其中" in not_theirs.text
    client.cookies.clear()
    web_login(client, reviewer)
    token = form_token(client.get(f"/spot-checks/{check_id}").text)
    early = client.post(f"/spot-checks/{check_id}/sign-off", data={"csrf": token})
    assert early.status_code == 400
    assert f"抽查 {check_id}：2 项中尚有 2 项未复核（第 {items} 项）；全部复核后方可签署" in early.text
    assert "not reviewed yet" not in early.text
    english = client.post(f"/spot-checks/{check_id}/sign-off?lang=en", data={"csrf": token})
    assert english.status_code == 400 and f"spot check {check_id}: 2 of 2 items are not reviewed yet (items " \
        f"{items}); sign off when every one is" in english.text
    assert _events(engine, "spot_check_signed") == []


# -- Low: case numbers with `/`, and case pages within the caller's scope -----------------------------------------

def test_case_numbers_with_slashes_work_on_every_route(web_site, store, settings, tmp_path):
    from ingest.documents import document_attacher

    _client, engine = web_site
    seal_all(engine, store)
    number = "罚/2026/001"
    key = Ed25519PrivateKey.generate()
    app = create_app(WebConfig(engine=engine, store=store, key=key, station="station-1",
                               case_pattern=DEFAULT_CASE_PATTERN, attach=document_attacher(settings, store, key),
                               settings=settings))
    with TestClient(app) as client:
        web_login(client, "admin")
        token = form_token(client.get("/cases").text)
        opened = client.post("/cases", data={"csrf": token, "number": number, "title": "斜杠编号",
                                             "case_type": "penalty-general"}, follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == f"/cases/{quote(number, safe='')}"
        for spelled in (quote(number, safe="/"), quote(number, safe="")):  # as a link, and fully escaped
            page = client.get(f"/cases/{spelled}")
            assert page.status_code == 200 and "斜杠编号" in page.text
        base = f"/cases/{quote(number, safe='/')}"
        assert f'action="{base}/link"' in page.text  # the page's own forms reach the right case

        def post(action: str, **form: Any) -> httpx.Response:
            response: httpx.Response = client.post(f"{base}/{action}", data={"csrf": token, **form},
                                                   follow_redirects=False)
            assert response.status_code in (200, 303), (action, response.status_code,
                                                         re.findall(r'role="alert">([^<]*)', response.text))
            return response

        post("link", recordings="1 3", purpose="证明现场")
        document = tmp_path / "询问笔录.txt"
        document.write_text("询问笔录：当事人陈述。", encoding="utf-8")
        attached = client.post(f"{base}/documents", data={"csrf": token, "title": "询问笔录"},
                               files={"files": (document.name, document.read_bytes(), "text/plain")},
                               follow_redirects=False)
        assert attached.status_code == 303, attached.text[:300]
        post("unlink", recording="3", reason="与本案无关")
        exported = post("export", reason="移送法院")
        assert exported.headers["content-type"] == "application/zip"
        api = client.get(f"/api/cases/{quote(number, safe='/')}").json()
        assert api["number"] == number and [r["recording_id"] for r in api["recordings"]] == [1]
        assert [d["purpose"] for d in api["documents"]] == ["询问笔录"] and api["unlinked"][0]["recording_id"] == 3
        post("close", closed_on=app.state.config.today().isoformat(), confirm=number)
        assert client.get(f"/api/cases/{quote(number, safe='')}").json()["status"] == "closed"
        post("reopen", reason="行政复议")
        assert client.get(f"{base}").status_code == 200
    with Session(engine) as session:
        kinds = [e.kind for e in session.exec(select(CustodyEvent).order_by(col(CustodyEvent.id)))
                 if e.details.get("case") == number]
    assert {"case_opened", "case_linked", "document_attached", "case_unlinked", "case_closed",
            "case_reopened"} <= set(kinds)
    assert len(_events(engine, "exported")) == 2  # recording 1 and the text record


def test_a_supervisor_of_some_units_sees_nothing_of_other_units_on_a_case(web_site, store):
    client, engine = web_site
    _link_all(engine, store)
    with Session(engine) as session:
        hidden = {r.sha256 for r in session.exec(select(Recording).where(col(Recording.id).in_([1, 2])))}
    web_login(client, "unit-2-supervisor")
    page = client.get(f"/cases/{CASE}")
    assert page.status_code == 200 and "R3.video" in page.text and "证明事实3" in page.text
    for secret in ("R1.video", "R2.photo", "证明事实1", "证明事实2", "/recordings/1\"", "/recordings/2\"", *hidden):
        assert secret not in page.text
    assert "2 条不在您的权限范围内（未显示）" in page.text
    api = client.get(f"/api/cases/{CASE}")
    assert [r["recording_id"] for r in api.json()["recordings"]] == [3]
    assert api.json()["outside_scope"] == {"recordings": 2, "documents": 0, "unlinked": 0}
    for secret in ("R1.video", "R2.photo", "证明事实1", *hidden):
        assert secret not in api.text
    client.cookies.clear()
    web_login(client, "clerk")  # the whole archive sees the whole case
    assert [r["recording_id"] for r in client.get(f"/api/cases/{CASE}").json()["recordings"]] == [1, 2, 3]
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(CustodyEvent)
                            .where(CustodyEvent.kind == "viewed")).one() == 3


def _row(session: Session, recording_id: int) -> Recording:
    recording = session.get(Recording, recording_id)
    assert recording is not None
    return recording


def test_a_case_with_nothing_in_a_supervisors_units_is_not_theirs_to_know_of(web_site, store, tmp_path, catalog_url):
    """Its title names who it is about ("内部调查：张三…"): the list, the page, the API and the command line show a
    supervisor of other units nothing of it, and opening it is a recorded refusal, until it holds one of theirs."""
    from tests.cli import run_cli

    client, engine = web_site
    seal_all(engine, store)
    secret_title = "内部调查：张三涉嫌违规执法"
    with Session(engine) as session:
        create_case(session, number="NB-2026-00007", title=secret_title, case_type="penalty-general",
                    unit="U1 一中队", opened_on=date(2026, 11, 2), by="clerk", case_pattern=DEFAULT_CASE_PATTERN,
                    policy=RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai"), today=date(2026, 11, 23))
        for rid in (1, 2):  # officer 010203's, unit U1
            link_recording(session, get_case(session, "NB-2026-00007"), _row(session, rid), purpose=f"证明事实{rid}",
                           by="clerk")
        session.commit()
    web_login(client, "unit-2-supervisor")
    for listing in (client.get("/cases"), client.get("/api/cases")):
        assert listing.status_code == 200
        assert "NB-2026-00007" not in listing.text and secret_title not in listing.text
    for opened in (client.get("/cases/NB-2026-00007"), client.get("/api/cases/NB-2026-00007")):
        assert opened.status_code == 403, opened.text
        assert secret_title not in opened.text and "U1 一中队" not in opened.text
    assert [(e.details["case"], e.details["scope"]) for e in _events(
        engine, "access_refused", actor="unit-2-supervisor")] == [("NB-2026-00007", "unit U2")] * 2
    env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url}
    listed = run_cli(env, "case", "list", "--json", "--by", "unit-2-supervisor")
    assert listed.exit_code == 0 and "NB-2026-00007" not in listed.stdout and secret_title not in listed.stdout
    shown = run_cli(env, "case", "show", "NB-2026-00007", "--by", "unit-2-supervisor")
    assert shown.exit_code == 2 and secret_title not in shown.output
    assert "case NB-2026-00007 is outside what unit-2-supervisor may see (unit U2)" in shown.stderr
    # the whole archive still sees it; and once it holds a recording of unit U2, so does their supervisor
    client.cookies.clear()
    web_login(client, "clerk")
    assert secret_title in client.get("/cases").text
    with Session(engine) as session:
        link_recording(session, get_case(session, "NB-2026-00007"), _row(session, 3), purpose="证明事实3", by="clerk")
        session.commit()
    client.cookies.clear()
    web_login(client, "unit-2-supervisor")
    assert "NB-2026-00007" in client.get("/cases").text
    assert client.get("/api/cases/NB-2026-00007").json()["outside_scope"]["recordings"] == 2


def test_a_refusal_by_role_is_recorded_on_the_web_and_the_command_line(web_site, store, tmp_path, catalog_url):
    """An auditor reads logs, not footage: asking for originals, proxies and photos is refused, and each refusal is
    an access_refused event (a review's auditor asked four times and left no trace)."""
    from tests.cli import run_cli

    client, engine = web_site
    seal_all(engine, store)
    web_login(client, "auditor")
    paths = ["/media/1/original", "/media/1/proxy", "/media/2/photo"]
    for path in paths:
        assert client.get(path, params={"reason": "审计"}).status_code == 403, path
    refused = _events(engine, "access_refused", actor="auditor")
    assert [(e.details["why"], e.details["via"], e.details["path"]) for e in refused] == [
        ("role", "web", path) for path in paths]
    assert all(e.details["roles"] == ["auditor"] for e in refused)
    env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url}
    cat = run_cli(env, "cat", "1", "--by", "auditor", "--reason", "审计")
    assert cat.exit_code == 2 and cat.stdout_bytes == b""
    [by_command] = [e for e in _events(engine, "access_refused", actor="auditor") if e.details["via"] == "cli"]
    assert by_command.details["why"] == "role" and "may not" in by_command.details["refused"]


def test_who_read_a_recording_and_why_is_the_audit_logs_not_its_officers(web_site, store):
    """A review's clerk downloaded the officer's recording with an internal investigation's reason; the officer saw
    that reason on the recording's page. Other people's reads are left out for whoever may not read the audit log,
    and counted; auditors see them all."""
    client, engine = web_site
    seal_all(engine, store)
    secret = "纪检内部调查：核查张三（保密）"
    web_login(client, "clerk")
    assert client.get("/media/1/original", params={"reason": secret}).status_code == 200
    client.cookies.clear()
    web_login(client, "officer")  # officer 010203: recording 1 is theirs
    page = client.get("/recordings/1")
    api = client.get("/api/recordings/1", params={"reason": "自查"})
    assert page.status_code == 200 and api.status_code == 200
    for text in (page.text, api.text):
        assert secret not in text
    assert api.json()["custody_reads_hidden"] >= 1
    assert "条他人调阅记录保存在审计日志中（未显示）" in page.text
    assert {e["kind"] for e in api.json()["custody"]} >= {"copied"}  # the recording's own history stays
    client.cookies.clear()
    web_login(client, "auditor")
    audited = client.get("/api/recordings/1", params={"reason": "审计"}).json()
    assert audited["custody_reads_hidden"] == 0 and secret in json.dumps(audited["custody"], ensure_ascii=False)


def test_an_exports_reason_is_the_audit_logs_not_the_officers_or_their_supervisors(web_site, store):
    """A clerk exported the case holding the officer's recording with an internal investigation's reason; the
    officer and their unit's supervisor read that reason in the recording's custody list (found by a review)."""
    client, engine = web_site
    _link_all(engine, store)
    secret = "纪检内部调查：核查张三违纪（勿告知本人）"
    web_login(client, "clerk")
    token = form_token(client.get(f"/cases/{CASE}").text)
    exported = client.post(f"/cases/{CASE}/export", data={"csrf": token, "reason": secret})
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    assert len(_events(engine, "exported")) == 3
    for user in ("officer", "supervisor"):  # officer 010203 and the supervisor of unit U1: recording 1 is theirs
        client.cookies.clear()
        web_login(client, user)
        page, api = client.get("/recordings/1"), client.get("/api/recordings/1", params={"reason": "自查"})
        assert page.status_code == 200 and api.status_code == 200, user
        for text in (page.text, api.text):
            assert secret not in text and "evidence-package" not in text, user
        assert api.json()["custody_reads_hidden"] >= 1
    client.cookies.clear()
    web_login(client, "auditor")
    audited = client.get("/api/recordings/1", params={"reason": "审计"}).json()
    assert audited["custody_reads_hidden"] == 0
    assert [e["reason"] for e in audited["custody"] if e["kind"] == "exported"] == [secret]


@pytest.mark.parametrize("invisible", ["\x00", "\u200b", "\u200b\ufeff\u2060", " \x01 "])
def test_a_reason_nobody_can_read_is_no_reason_and_a_long_one_is_refused(web_site, store, invisible):
    """A NUL or a zero-width space was taken as the stated reason for a download and an export, and a
    30,000-character reason was kept whole in the custody log (found by a review)."""
    client, engine = web_site
    _link_all(engine, store)
    web_login(client, "clerk")
    refused = 400 if "\x00" in invisible else 422  # a NUL is refused before any route (evidence.web.nul_guard)
    assert client.get("/media/1/original", params={"reason": invisible}).status_code == refused
    token = form_token(client.get(f"/cases/{CASE}").text)
    export = client.post(f"/cases/{CASE}/export", data={"csrf": token, "reason": invisible})
    assert export.status_code == refused and "application/zip" not in export.headers["content-type"]
    too_long = client.get("/media/1/original", params={"reason": "查" * 501})
    assert too_long.status_code == 422 and "501 characters long" in too_long.text
    api = client.get("/api/recordings/1", params={"reason": "查" * 501})
    assert api.status_code == 422 and "at most 500" in api.text
    assert _events(engine, "accessed") == [] and _events(engine, "exported") == []
    assert client.get("/media/1/original", params={"reason": "  复核 "}).status_code == 200
    assert [e.details["reason"] for e in _events(engine, "accessed")] == ["复核"]


def test_health_names_staged_recordings_only_to_those_who_see_the_whole_archive(web_site, store):
    """/health gave a supervisor of unit U1 the id of unit U2's recording left staged (found by a review)."""
    _client, engine = web_site
    with Session(engine) as session:
        for rid in (1, 3):  # officer 010203 (unit U1) and 030405 (unit U2)
            row = _row(session, rid)
            row.state, row.ingested_at = "staged", utcnow().replace(year=2025)
            session.add(row)
        session.commit()
    with TestClient(_app(engine, store, staged_alarm_s=5, metrics_token="s3cret-token")) as client:
        anonymous = client.get("/health").json()
        assert anonymous["status"] == "alarm" and anonymous["alarms"][0]["count"] == 2
        assert "recording_ids" not in anonymous["alarms"][0] and "ids" not in anonymous["alarms"][0]["message"]
        token = client.get("/health", headers={"Authorization": "Bearer s3cret-token"}).json()
        assert token["alarms"][0]["recording_ids"] == [1, 3]
        for user, named in (("unit-2-supervisor", False), ("supervisor", True), ("admin", True)):
            client.cookies.clear()
            web_login(client, user)
            alarm = client.get("/health").json()["alarms"][0]
            assert alarm["count"] == 2 and ("recording_ids" in alarm) is named, user
            assert ("ids 1, 3" in alarm["message"]) is named, user


def test_an_officer_stamping_a_case_number_does_not_learn_the_cases_title(web_site, store):
    """An officer stamped their own recording with another unit's case number: the stamp linked it into that case,
    and the recording's page and API then showed the case's title ("Secret: disciplinary probe of …"), case by
    case, for any number guessed (found by a review). Officers do not read case files: number and status only."""
    client, engine = web_site
    seal_all(engine, store)
    with Session(engine) as session:
        title = get_case(session, CASE).title
    web_login(client, "officer")  # 010203: recording 1 is theirs
    page = client.get("/recordings/1")
    stamped = client.post("/recordings/1/stamp", data={"csrf": form_token(page.text), "reason": "属于该案",
                                                       "case_number": CASE}, follow_redirects=False)
    assert stamped.status_code == 303, stamped.text
    api = client.get("/api/recordings/1", params={"reason": "自查"}).json()
    assert [(c["number"], c["title"]) for c in api["cases"]] == [(CASE, None)]  # linked by the stamp
    page = client.get("/recordings/1")
    assert CASE in page.text and title not in page.text and title not in json.dumps(api, ensure_ascii=False)
    client.cookies.clear()
    web_login(client, "clerk")
    assert [c["title"] for c in client.get("/api/recordings/1", params={"reason": "复核"}).json()["cases"]] == [title]


def test_integrity_history_is_a_look_like_show_reason_scope_and_record(web_site, store, tmp_path, catalog_url):
    """`evidence integrity history` checked scope without recording the refusal, asked no reason where the policy
    wants one and recorded no view (found by a review): it is now the same look as `evidence show`."""
    from tests.cli import run_cli

    _client, engine = web_site
    env = {"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url,
           "EVIDENCE_ACCESS_REASON": "view"}
    unstated = run_cli(env, "integrity", "history", "1", "--by", "officer")
    assert unstated.exit_code == 2 and "reason" in unstated.stderr
    outside = run_cli(env, "integrity", "history", "1", "--by", "other-officer", "--reason", "看看")
    assert outside.exit_code == 2 and "recording 1 is outside what other-officer may view" in outside.stderr
    assert [(e.recording_id, e.details["why"]) for e in _events(engine, "access_refused", actor="other-officer")] \
        == [(1, "scope")]
    done = run_cli(env, "integrity", "history", "1", "--by", "officer", "--reason", "自查")
    assert done.exit_code == 0, done.output
    assert [(e.details["via"], e.details["reason"]) for e in _events(engine, "viewed", actor="officer")] == [
        ("cli integrity history", "自查")]


def test_refusals_by_scope_role_and_reason_are_said_in_the_pages_language(web_site):
    """A refusal by scope (with the caller's scope and the step), one by role (with the roles) and one for a
    missing reason (调阅事由) are said in Chinese on the default page and in English with ?lang=en; the English of
    logs and the command line is unchanged."""
    from dataclasses import replace
    from html import unescape

    client, engine = web_site
    page = {"accept": "text/html"}
    web_login(client, "other-officer")  # officer 030405: recording 1 is officer 010203's
    outside = client.get("/recordings/1", headers=page)
    assert outside.status_code == 403
    assert "录像 1 不在 other-officer 可查看的范围内（执法人员 030405 本人的记录）" in outside.text
    assert "is outside what" not in outside.text
    english = client.get("/recordings/1", params={"lang": "en"}, headers=page)
    assert english.status_code == 403
    assert "recording 1 is outside what other-officer may view (officer 030405)" in english.text
    assert [e.details["scope"] for e in _events(engine, "access_refused", actor="other-officer")] == [
        "officer 030405"] * 2  # the custody log keeps the English

    client.cookies.clear()
    web_login(client, "unit-2-supervisor")
    assert "录像 1 不在 unit-2-supervisor 可查看的范围内（单位 U2）" in client.get("/recordings/1", headers=page).text

    client.cookies.clear()
    web_login(client, "clerk")  # a clerk raises a class; lowering one needs a supervisor or an administrator
    token = form_token(client.get("/recordings/1").text)
    lowered = client.post("/recordings/1/class", data={"csrf": token, "sensitivity": "public", "reason": "公开发布"})
    assert lowered.status_code == 403
    assert ("用户 'clerk'（角色：档案管理员）无权将录像 1 的敏感类别从“内部”（internal）降为“公开”（public）："
            "需要以下角色之一：管理员, 监督人员") in unescape(lowered.text)

    # the agency asks for a reason before anyone plays a recording: a still taken without one is refused
    config = client.app.state.config
    client.app.state.config = replace(config, settings=replace(config.settings, access_reason="play"))
    unstated = client.post("/recordings/1/snapshot", data={"csrf": token, "case": CASE, "at": "1", "reason": " "})
    assert unstated.status_code == 422
    assert "请说明调阅录像 1 的事由：本机关策略 EVIDENCE_ACCESS_REASON=play 要求在播放录像前说明事由" in unstated.text

    english = client.post("/recordings/1/class?lang=en", data={"csrf": token, "sensitivity": "public",
                                                                "reason": "公开发布"})
    assert english.status_code == 403 and (
        "user 'clerk' (roles: clerk) may not lower recording 1 from internal (内部) to public (公开): that needs "
        "one of admin, supervisor") in unescape(english.text)
    unstated = client.post("/recordings/1/snapshot?lang=en", data={"csrf": token, "case": CASE, "at": "1",
                                                                    "reason": ""})
    assert unstated.status_code == 422 and (
        "state the reason for this access (调阅事由) to recording 1: the agency's policy EVIDENCE_ACCESS_REASON=play "
        "asks for one before anyone may play a recording") in unescape(unstated.text)
    assert _events(engine, "snapshot_taken") == []
