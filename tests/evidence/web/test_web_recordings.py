"""The recording page with real media: player with HTTP range requests, recorded accesses, stamp edits."""
from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from catalog import CustodyEvent, Recording, load_or_create_key, open_catalog, read_manifest
from evidence.web import WebConfig, create_app
from evidence.web.ranges import parse_range
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from storage import LocalStore
from tests.webhelpers import add_web_users, form_token, served_app, web_login


def test_range_headers_are_parsed_strictly():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=50-1000", 100) == (50, 99)
    for bad in ("bytes=100-", "bytes=5-4", "items=0-1", "bytes=-", "bytes=0-1,5-6", "bytes=-0"):
        with pytest.raises(ValueError, match="range"):
            parse_range(bad, 100)


@pytest.fixture
def site(samples, settings):
    run_ingest(samples.sidecar_recorder, settings, IngestOptions(purpose="巡查"))  # with thumbnails and proxies
    engine = open_catalog(settings.database_url)
    add_web_users(engine, {"clerk:李四": "clerk", "auditor:赵": "auditor", "officer:张三": "officer"})
    app, video_id = served_app(engine, settings)
    store = app.state.config.store
    with TestClient(app) as client:
        yield client, engine, store, video_id
    engine.dispose()


def _login(client, name):
    assert web_login(client, name).status_code == 303


def _events(engine, kind):
    with Session(engine) as session:
        return session.exec(select(CustodyEvent).where(CustodyEvent.kind == kind)
                            .order_by(col(CustodyEvent.id))).all()


def test_clerk_plays_with_range_requests_and_each_playback_is_recorded(site):
    client, engine, store, video_id = site
    _login(client, "clerk:李四")
    page = client.get(f"/recordings/{video_id}")
    assert page.status_code == 200 and f'src="/media/{video_id}/proxy"' in page.text
    assert [e.actor for e in _events(engine, "viewed")] == ["clerk:李四"]
    with Session(engine) as session:
        recording = session.get(Recording, video_id)
        assert recording is not None
        with store.open_derived(recording.sha256, "proxy.mp4") as fh:
            proxy = fh.read()
    first = client.get(f"/media/{video_id}/proxy.mp4", headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and first.content == proxy[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{len(proxy)}"
    more = client.get(f"/media/{video_id}/proxy.mp4", headers={"Range": f"bytes=100-{len(proxy) - 1}"})
    assert more.status_code == 206 and first.content + more.content == proxy
    assert len(_events(engine, "accessed")) == 1  # the start of playback, not every range
    beyond = client.get(f"/media/{video_id}/proxy.mp4", headers={"Range": f"bytes={len(proxy)}-"})
    assert beyond.status_code == 416

    assert client.get(f"/media/{video_id}/original").status_code == 422  # a reason is required
    original = client.get(f"/media/{video_id}/original", params={"reason": "复议调阅"})
    assert original.status_code == 200 and hashlib.sha256(original.content).hexdigest() == recording.sha256
    accesses = _events(engine, "accessed")
    assert accesses[-1].details == {"via": "web download", "what": "original", "reason": "复议调阅"}


def test_clerk_changes_the_stamp_with_a_reason_and_a_signed_revision(site):
    client, engine, store, video_id = site
    _login(client, "clerk:李四")
    page = client.get(f"/recordings/{video_id}").text
    csrf = form_token(page)
    url = f"/recordings/{video_id}/stamp"
    form = {"csrf": csrf, "case_number": "AB-2026-00042", "purpose": "证明无照经营", "reason": "复核后关联案件"}
    assert client.post(url, data={**form, "csrf": "forged"}).status_code == 403
    blank = client.post(url, data={**form, "reason": " "})
    assert blank.status_code == 400 and "证据标注有误：修改标注需要说明理由" in blank.text
    bad = client.post(url, data={**form, "case_number": "?"})
    assert bad.status_code == 400 and "证据标注有误：案件编号 &#39;?&#39; 不符合格式" in bad.text
    saved = client.post(url, data=form, follow_redirects=False)
    assert saved.status_code == 303
    with Session(engine) as session:
        recording = session.get(Recording, video_id)
        assert recording is not None
        assert (recording.stamp_revision, recording.case_number) == (2, "AB-2026-00042")
        manifest = read_manifest(store, recording.sha256, 2)
        assert manifest["stamp"]["changed_by"] == "clerk:李四" and manifest["stamp"]["reason"] == "复核后关联案件"


def test_auditors_read_but_do_not_play_and_officers_do_not_browse(site):
    client, engine, _store, video_id = site
    _login(client, "auditor:赵")
    page = client.get(f"/recordings/{video_id}")
    assert page.status_code == 200 and "<video" not in page.text and "/stamp" not in page.text
    assert client.get(f"/media/{video_id}/proxy.mp4").status_code == 403
    assert client.get(f"/media/{video_id}/original", params={"reason": "x"}).status_code == 403
    client.cookies.clear()
    _login(client, "officer:张三")
    assert client.get(f"/recordings/{video_id}").status_code == 403
    assert client.post(f"/recordings/{video_id}/stamp", data={"csrf": "x", "reason": "y"}).status_code == 403
    assert _events(engine, "accessed") == []


def test_case_page_lists_the_case_and_exports_a_valid_package(site, tmp_path):
    import io
    import zipfile
    from datetime import date

    import bagit

    from catalog import (
        DEFAULT_CASE_PATTERN,
        DEFAULT_CASE_TYPES,
        RetentionPolicy,
        create_case,
        get_recording,
        link_recording,
    )

    client, engine, _store, video_id = site
    with Session(engine) as session:
        case = create_case(session, number="AB-2026-00042", title="无照经营", case_type="penalty-general", unit="",
                           opened_on=date(2026, 11, 1), by="clerk:李四", case_pattern=DEFAULT_CASE_PATTERN,
                           policy=RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai"), today=date(2026, 11, 23))
        link_recording(session, case, get_recording(session, video_id), purpose="证明现场", by="clerk:李四")
        session.commit()
    _login(client, "clerk:李四")
    page = client.get("/cases/AB-2026-00042")
    assert page.status_code == 200 and "证明现场" in page.text and "导出证据包" in page.text
    assert client.get("/cases/AB-404").status_code == 404
    csrf = form_token(page.text)
    assert client.post("/cases/AB-2026-00042/export", data={"csrf": "forged"}).status_code == 403
    unstated = client.post("/cases/AB-2026-00042/export", data={"csrf": csrf})
    assert unstated.status_code == 422 and _events(engine, "exported") == []
    assert "无法生成 案件 AB-2026-00042 的证据包" in unstated.text and "事由" in unstated.text  # the page's language
    package = client.post("/cases/AB-2026-00042/export", data={"csrf": csrf, "reason": "移送法院"})
    assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(package.content)).extractall(tmp_path / "got")
    bagit.Bag(str(tmp_path / "got" / "AB-2026-00042")).validate()
    assert '<html lang="zh-CN">' in (tmp_path / "got" / "AB-2026-00042" / "data/report.html").read_text("utf-8")
    english = client.post("/cases/AB-2026-00042/export?lang=en", data={"csrf": csrf, "reason": "to the court"})
    zipfile.ZipFile(io.BytesIO(english.content)).extractall(tmp_path / "en")
    assert '<html lang="en">' in (tmp_path / "en" / "AB-2026-00042" / "data/report.html").read_text("utf-8")
    assert [e.actor for e in _events(engine, "exported")] == ["clerk:李四", "clerk:李四"]
    client.cookies.clear()
    _login(client, "officer:张三")
    assert client.get("/cases/AB-2026-00042").status_code == 403


def test_a_clerk_attaches_text_records_to_a_case_in_the_browser(site):
    from datetime import date

    from catalog import DEFAULT_CASE_PATTERN, DEFAULT_CASE_TYPES, RetentionPolicy, create_case
    from tests.helpers.documents import pdf_bytes

    client, engine, store, _video_id = site
    with Session(engine) as session:
        create_case(session, number="AB-2026-00042", title="无照经营", case_type="penalty-general", unit="",
                    opened_on=date(2026, 11, 1), by="clerk:李四", case_pattern=DEFAULT_CASE_PATTERN,
                    policy=RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai"), today=date(2026, 11, 23))
        session.commit()
    _login(client, "clerk:李四")
    csrf = form_token(client.get("/cases/AB-2026-00042").text)
    url = "/cases/AB-2026-00042/documents"
    files = [("files", ("../../询问笔录.pdf", pdf_bytes(), "application/pdf")),
             ("files", ("scan.pdf", b"%PDF-1.4 cut off", "application/pdf"))]
    untitled = client.post(url, data={"csrf": csrf, "title": " "}, files=files)
    assert untitled.status_code == 400 and "title" in untitled.text
    nothing = [("files", ("x.pdf", b"", "application/pdf"))]
    empty = client.post(url, data={"csrf": csrf, "title": "询问笔录"}, files=nothing)
    assert empty.status_code == 400 and "x.pdf 是空文件" in empty.text
    done = client.post(url, data={"csrf": csrf, "title": "询问笔录", "dated": "2026-11-02"}, files=files,
                       follow_redirects=False)
    assert done.status_code == 303
    page = client.get("/cases/AB-2026-00042").text
    assert "询问笔录.pdf" in page and "scan.pdf" in page and "../" not in page
    with Session(engine) as session:
        docs = {r.original_name: r for r in session.exec(select(Recording).where(Recording.media_kind == "document"))}
    assert set(docs) == {"询问笔录.pdf", "scan.pdf"}
    assert docs["询问笔录.pdf"].integrity_status == "ok" and docs["scan.pdf"].integrity_status == "damaged"
    assert all(store.verify(d.sha256) == d.sha256 for d in docs.values())  # in WORM storage, as uploaded
    assert read_manifest(store, docs["scan.pdf"].sha256, 1)["stamp"]["purpose"] == "询问笔录"
    assert [e.actor for e in _events(engine, "document_attached")] == ["clerk:李四", "clerk:李四"]


def test_a_recording_no_browser_copy_can_be_made_of_says_why_and_offers_the_original(tmp_path, settings):
    from catalog import MediaWorkFailure
    from ingest.media_work import render_backlog
    from tests.helpers.clips import damaged_clip, noisy_clip

    # Given a clip whose coded data is destroyed, archived, and the renderer's pass over it
    folder = tmp_path / "cam" / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    damaged_clip(folder / "MVI_0009.MP4", noisy_clip(tmp_path / "good.mp4"))
    (row,) = run_ingest(tmp_path / "cam", settings, IngestOptions(), derive="later").recordings
    engine = open_catalog(settings.database_url)
    store = LocalStore(settings.store_path)
    render_backlog(settings, engine, store, by="station:test")
    with Session(engine) as session:
        reason = session.exec(select(MediaWorkFailure.reason).where(MediaWorkFailure.kind == "proxy")).one()
    add_web_users(engine, {"clerk:李四": "clerk"})
    app = create_app(WebConfig(engine=engine, store=store, key=load_or_create_key(settings.station_key_path),
                               settings=settings))
    try:
        with TestClient(app) as client:
            _login(client, "clerk:李四")
            # Then its page says, in Chinese by default, that no browser copy can be made and why
            page = client.get(f"/recordings/{row['id']}").text
            assert "无法为此记录生成浏览副本" in page and reason.replace("'", "&#39;") in page
            assert "尚未生成" not in page  # not "not ready yet": it never will be
            assert f'action="/media/{row["id"]}/original"' in page
    finally:
        engine.dispose()
