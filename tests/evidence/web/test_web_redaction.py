"""A redacted copy on the recording pages (issue 18, part 2): the copy names its original (version, hash, who, why,
what was hidden) and the original lists its copies, in Chinese by default and in English."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from catalog import Recording, load_or_create_key, open_catalog
from catalog.users import get_user
from evidence.web import WebConfig, create_app
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from ingest.redaction import RedactionSpec, parse_box, parse_mute
from ingest.redaction.derivative import redact_recording
from storage import LocalStore
from tests.webhelpers import add_web_users, web_login


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
