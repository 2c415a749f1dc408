"""A redacted copy on the recording pages (issue 18, part 2): the copy names its original (version, hash, who, why,
what was hidden) and the original lists its copies, in Chinese by default and in English."""
from __future__ import annotations

import hashlib
import time

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from catalog import CustodyEvent, Recording, RedactionJob, load_or_create_key, open_catalog
from catalog.users import get_user
from evidence.web import WebConfig, create_app
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from ingest.redaction import RedactionSpec, parse_box, parse_mute
from ingest.redaction.derivative import redact_recording
from ingest.redaction.jobs import run_pending_jobs
from storage import LocalStore
from tests.helpers.renderers import wait_for_renderers
from tests.webhelpers import add_web_users, form_token, web_login


@pytest.mark.usefixtures("ffmpeg_available")
def test_the_copy_and_its_original_name_each_other_on_their_pages(samples, settings):
    run_ingest(samples.sidecar_recorder, settings, IngestOptions(purpose="巡查"))
    engine = open_catalog(settings.database_url)
    add_web_users(engine, {"clerk": "clerk"})
    store = LocalStore(settings.store_path)
    key = load_or_create_key(settings.station_key_path)
    try:
        with Session(engine) as session:
            clip = session.exec(select(Recording).where(Recording.media_kind == "video",
                                                        col(Recording.audio_codec).is_not(None))).first()
            assert clip is not None
            made = redact_recording(session, store, settings, clip, RedactionSpec(
                boxes=(parse_box("0-1:0,0,64,64"),), mutes=(parse_mute("0-0.5"),)), user=get_user(session, "clerk"),
                reason="公示前遮蔽车牌", key=key, via="test")
            original_id, copy_id = clip.id, made.recording.id
        config = WebConfig(engine=engine, store=store, key=key, case_pattern=settings.case_pattern,
                           settings=settings)
        with TestClient(create_app(config)) as client:
            assert web_login(client, "clerk").status_code == 303
            page = client.get(f"/recordings/{copy_id}")
            assert page.status_code == 200, page.text
            assert "遮蔽处理件" in page.text and f'<a href="/recordings/{original_id}">' in page.text
            assert "公示前遮蔽车牌" in page.text and "遮蔽区域: 1" in page.text and "静音区间: 1" in page.text
            page = client.get(f"/recordings/{original_id}")
            assert 'id="redacted-copies"' in page.text and f'<a href="/recordings/{copy_id}">' in page.text
            page = client.get(f"/recordings/{copy_id}?lang=en")
            assert "Redacted copy" in page.text and "Regions hidden: 1" in page.text
    finally:
        engine.dispose()


def _card(card_dir, settings):
    from tests.ingest.test_redaction_copies import _device

    run_ingest(_device(card_dir), settings, IngestOptions(purpose="巡查"))


def _clip_id(engine) -> int:
    with Session(engine) as session:
        clip = session.exec(select(Recording).where(Recording.original_name == "MVI_0001.MP4")).one()
        assert clip.id is not None
        return clip.id


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_clerk_asks_follows_reviews_and_asks_again_in_the_browser(tmp_path, settings):
    _card(tmp_path / "card", settings)
    engine = open_catalog(settings.database_url)
    add_web_users(engine, {"clerk": "clerk", "officer": "officer"}, officer_numbers={"officer": "000000"})
    store = LocalStore(settings.store_path)
    key = load_or_create_key(settings.station_key_path)
    clip_id = _clip_id(engine)
    try:
        # no deployment settings: nothing starts a renderer; the test renders as the derive worker would
        config = WebConfig(engine=engine, store=store, key=key, case_pattern=settings.case_pattern)
        with TestClient(create_app(config)) as client:
            # An officer sees no redaction form, and a post of one is refused and recorded
            assert web_login(client, "officer").status_code == 303
            page = client.get(f"/recordings/{clip_id}")
            assert page.status_code in (200, 403) and 'id="redaction-form"' not in page.text
            refused = client.post(f"/recordings/{clip_id}/redactions", data={
                "csrf": form_token(client.get("/").text), "boxes": "1-2:96,64,96,96", "reason": "公示"})
            assert refused.status_code == 403
            client.post("/logout", data={"csrf": form_token(client.get("/").text)})
            # The clerk sees the form on the recording's page
            assert web_login(client, "clerk").status_code == 303
            page = client.get(f"/recordings/{clip_id}")
            assert 'id="redaction-form"' in page.text and "制作遮蔽处理件" in page.text
            token = form_token(page.text)
            # A region outside the picture and an unreadable line are refused, each named; nothing is queued
            bad = client.post(f"/recordings/{clip_id}/redactions", data={
                "csrf": token, "boxes": "0-1:300,0,64,64\n1-x:1,1,8,8", "reason": "公示"})
            assert bad.status_code == 400 and "'x' is not a time" in bad.text, bad.text  # a client that is no browser
            bad = client.post(f"/recordings/{clip_id}/redactions", headers={"Accept": "text/html"}, data={
                "csrf": token, "boxes": "0-1:300,300,64,64", "reason": "公示"})
            assert bad.status_code == 400
            assert f"录像 {clip_id} 无法按要求遮蔽：区域 1（300,300,64,64，自 0 秒至 1 秒）：超出了" in bad.text
            bad = client.post(f"/recordings/{clip_id}/redactions?lang=en", headers={"Accept": "text/html"}, data={
                "csrf": token, "boxes": "1-x:1,1,8,8", "reason": "公示"})
            assert bad.status_code == 400 and "&#39;x&#39; is not a time" in bad.text
            client.get("/?lang=zh_CN")  # back to the default language for the rest
            bad = client.post(f"/recordings/{clip_id}/redactions", data={
                "csrf": token, "boxes": "0-1:300,300,64,64", "reason": "公示"})
            assert bad.status_code == 400 and "lies outside" in bad.text
            with Session(engine) as session:
                assert session.exec(select(RedactionJob)).all() == []
            # A good request: the job's page, queued, reloading itself, with its progress bar
            asked = client.post(f"/recordings/{clip_id}/redactions", data={
                "csrf": token, "boxes": "1-2:96,64,96,96", "moving": "0.5:0,80,64,64;2.5:224,80,64,64",
                "bleeps": "1-2", "reason": "公示前遮蔽", "block": "16"}, follow_redirects=False)
            assert asked.status_code == 303 and asked.headers["location"].startswith("/redactions/")
            job_page = client.get(asked.headers["location"])
            assert 'http-equiv="refresh"' in job_page.text and 'id="job-progress"' in job_page.text
            assert "排队" in job_page.text and "正在制作遮蔽处理件" in job_page.text
            job_id = int(asked.headers["location"].rsplit("/", 1)[1])
            assert client.get(f"/api/redactions/{job_id}").json()["state"] == "queued"
            # the recording's page lists the job
            assert f'href="/redactions/{job_id}"' in client.get(f"/recordings/{clip_id}").text

            # The derive worker renders it (the same function the actor and the renderer call)
            assert run_pending_jobs(engine, store, settings, key).counts == {"done": 1}
            done = client.get(f"/api/redactions/{job_id}").json()
            assert done["state"] == "done" and done["progress"] == 1.0 and done["copy_id"]
            copy_id = done["copy_id"]
            # Done: no more reloading; the copy is named; the review asks for a reason first
            job_page = client.get(f"/redactions/{job_id}")
            assert 'http-equiv="refresh"' not in job_page.text and f'href="/recordings/{copy_id}"' in job_page.text
            assert 'id="review-reason"' in job_page.text
            review = client.get(f"/redactions/{job_id}?reason=审核遮蔽效果")
            assert f'src="/media/{copy_id}/original?reason=' in review.text
            assert 'id="review-copy"' in review.text and 'src="/static/redaction-review.js"' in review.text
            assert 'data-width="320" data-height="240" data-fps="25.0"' in review.text
            script = client.get("/static/redaction-review.js")
            assert script.status_code == 200 and "javascript" in script.headers["content-type"]
            assert "script-src 'self'" in script.headers["content-security-policy"]
            # The copy the reviewer plays is the copy's bytes, read through its media route and recorded once
            with Session(engine) as session:
                copy = session.get(Recording, copy_id)
                assert copy is not None and copy.redacted_from_id == clip_id
                played = client.get(f"/media/{copy_id}/original?reason=审核遮蔽效果")
                assert hashlib.sha256(played.content).hexdigest() == copy.sha256
                client.get(f"/media/{copy_id}/original?reason=审核遮蔽效果", headers={"Range": "bytes=0-99"})
                reads = session.exec(select(CustodyEvent).where(CustodyEvent.recording_id == copy_id,
                                                                CustodyEvent.kind == "accessed")).all()
                assert len(reads) == 1 and reads[0].actor == "clerk"
            # Ask again with what was asked, a region taken away, one added and one for the tracker to follow (the
            # review offers it: a time to follow a drawn region until, and the form's field): a new version
            assert "1-2:96,64,96,96" in review.text and "0.5:0,80,64,64;2.5:224,80,64,64" in review.text
            assert 'id="review-follow"' in review.text and 'id="redaction-tracks"' in review.text
            again = client.post(f"/recordings/{clip_id}/redactions", data={
                "csrf": form_token(review.text), "boxes": "0-3:0,0,64,64", "tracks": "0.5-2:96,64,96,96",
                "reason": "复核后调整"}, follow_redirects=False)
            assert again.status_code == 303
            assert run_pending_jobs(engine, store, settings, key).counts == {"done": 1}
            second = client.get(again.headers["location"].replace("/redactions/", "/api/redactions/")).json()
            assert second["copy_id"] not in (None, copy_id)
            # the tracked region asked is in the form to ask again; the copy's page says it was tracked, by what
            assert "0.5-2:96,64,96,96" in client.get(again.headers["location"] + "?reason=复核").text
            copy_page = client.get(f"/recordings/{second['copy_id']}")
            assert "自动跟踪区域" in copy_page.text and "TrackerMIL" in copy_page.text
            # The API asks the same way (with the session's token) and answers the job
            api = client.post(f"/api/recordings/{clip_id}/redactions", json={
                "boxes": ["0,0,32,32"], "reason": "接口"}, headers={"X-CSRF-Token": form_token(review.text)})
            assert api.status_code == 202 and api.json()["state"] == "queued", api.text
            assert client.get(f"/redactions/{job_id}?lang=en").text.count("Redaction job") >= 1
    finally:
        engine.dispose()


@pytest.mark.usefixtures("ffmpeg_available")
def test_in_the_embedded_default_the_server_starts_a_renderer_that_does_the_job(tmp_path, settings):
    # The embedded default has no broker and no worker: asking in the browser must be enough
    assert not settings.broker_url
    _card(tmp_path / "card", settings)
    engine = open_catalog(settings.database_url)
    add_web_users(engine, {"clerk": "clerk"})
    store = LocalStore(settings.store_path)
    key = load_or_create_key(settings.station_key_path)
    clip_id = _clip_id(engine)
    try:
        with TestClient(create_app(WebConfig.from_settings(settings, engine=engine, store=store, key=key))) as client:
            assert web_login(client, "clerk").status_code == 303
            asked = client.post(f"/recordings/{clip_id}/redactions", data={
                "csrf": form_token(client.get("/").text), "boxes": "1-2:96,64,96,96", "reason": "公示前遮蔽"},
                follow_redirects=False)
            assert asked.status_code == 303, asked.text
            follow = asked.headers["location"].replace("/redactions/", "/api/redactions/")
            deadline = time.monotonic() + 180
            while (job := client.get(follow).json())["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, job
                time.sleep(0.2)
            assert job["state"] == "done" and job["copy_id"], job
        wait_for_renderers()
    finally:
        engine.dispose()
