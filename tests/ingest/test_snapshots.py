"""The player's snapshot (ingest.snapshots, POST /recordings/{id}/snapshot): the frame on screen kept as a still
of the case, decoded from the original, hashed, in WORM storage, signed and recorded on both sides.

Attacked as an outsider would: positions that are not times (text, NaN, infinity, negative, past the end), a case
the recording is not in or that is closed, a user who may not manage cases or whose scope stops short, the
stored original edited behind the archive's back, and the same frame kept twice."""
from __future__ import annotations

import hashlib
import io
import re
import subprocess
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, col, select

from catalog import CustodyEvent, Recording, open_catalog
from catalog.case_models import CaseLink
from catalog.cases import get_case
from ingest.config import Settings
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from ingest.snapshots import snapshot_problem
from storage import LocalStore
from tests.webhelpers import add_web_users, form_token, served_app, web_login

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

CASE = "AB-2026-00510"


def test_what_a_still_needs_is_decided_without_services():
    from catalog.case_models import Case

    video = Recording(id=7, sha256="a" * 64, size_bytes=1, media_kind="video", original_name="C.MP4",
                      station_code="s", time_source="container", integrity_status="ok", state="verified",
                      duration_s=10.0)
    case = Case(id=1, number="AB-1", title="t", case_type="penalty-general", status="open", created_by="x",
                opened_on=date(2026, 11, 1))
    assert snapshot_problem(video, 4.2, case, ("AB-1",)) is None
    assert snapshot_problem(video, 10.4, case, ("AB-1",)) is None  # the probe rounds: the last frame
    for at, why in ((-0.1, "not a time"), (float("nan"), "not a time"), (float("inf"), "not a time"),
                    (10.6, "past its end")):
        assert why in (snapshot_problem(video, at, case, ("AB-1",)) or ""), at
    assert "not in case AB-1" in (snapshot_problem(video, 1, case, ("AB-2",)) or "")
    photo = video.model_copy(update={"media_kind": "photo"})
    assert "a still is taken of a video" in (snapshot_problem(photo, 0, case, ("AB-1",)) or "")
    staged = video.model_copy(update={"state": "staged"})
    assert "not in the archive" in (snapshot_problem(staged, 0, case, ("AB-1",)) or "")
    closed = case.model_copy(update={"status": "closed"})
    assert "is closed" in (snapshot_problem(video, 0, closed, ("AB-1",)) or "")


@pytest.fixture
def site(samples, settings):
    run_ingest(samples.sidecar_recorder, settings, IngestOptions(purpose="巡查"))
    engine = open_catalog(settings.database_url)
    add_web_users(engine, {"clerk:李四": "clerk", "officer:张三": "officer", "auditor:赵": "auditor"})
    app, video_id = served_app(engine, settings)
    with Session(engine) as session:
        video = session.get(Recording, video_id)
        assert video is not None and video.duration_s and video.duration_s >= 1.5
    store = app.state.config.store
    with TestClient(app) as client:
        web_login(client, "clerk:李四")
        token = form_token(client.get("/cases").text)
        for number in (CASE, "AB-2026-00511"):
            opened = client.post("/cases", data={"csrf": token, "number": number, "title": "占道经营",
                                                 "case_type": "penalty-general"}, follow_redirects=False)
            assert opened.status_code == 303, opened.text
        linked = client.post(f"/recordings/{video_id}/link", data={"csrf": token, "case": CASE,
                                                                   "purpose": "证明占道"}, follow_redirects=False)
        assert linked.status_code == 303
        yield client, engine, store, video_id, token
    engine.dispose()


def _still(client, video_id, token, **form):
    return client.post(f"/recordings/{video_id}/snapshot",
                       data={"csrf": token, "case": CASE, "reason": "固定占道画面", **form}, follow_redirects=False)


def _documents(engine) -> list[Recording]:
    with Session(engine) as session:
        return list(session.exec(select(Recording).where(Recording.media_kind == "document")))


def _frame_from_original(store: LocalStore, sha256: str, at_s: float) -> bytes:
    """The frame at *at_s* decoded independently of the product (a select filter over every frame), as RGB."""
    with store.read_in_place(sha256) as source:
        done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", source, "-map", "0:V:0",
                               "-vf", f"select='gte(t\\,{at_s})'", "-frames:v", "1", "-f", "rawvideo",
                               "-pix_fmt", "rgb24", "-"], capture_output=True, check=True, timeout=60)
    return done.stdout


def test_a_clerk_keeps_the_frame_on_screen_as_a_still_of_the_case(site):
    client, engine, store, video_id, token = site
    page = client.get(f"/recordings/{video_id}").text
    assert 'id="snapshot-form"' in page and f'<option value="{CASE}">' in page
    kept = _still(client, video_id, token, at="1.000", purpose="占道摊位全景")
    assert kept.status_code == 303, kept.text
    shown = client.get(kept.headers["location"]).text
    [still] = _documents(engine)
    assert f"第 1.000 秒处画面已作为第 {still.id} 号材料归入案件 {CASE}。" in shown
    with Session(engine) as session:
        video = session.get(Recording, video_id)
        assert video is not None and video.captured_start is not None and still.captured_start is not None
        assert (still.container, still.time_source) == ("png", "still frame")
        assert still.captured_start == video.captured_start + timedelta(seconds=1)
        assert still.technical["derived_from"] == {"recording_id": video_id, "sha256": video.sha256, "at_s": 1.0,
                                                   "original_name": video.original_name}
        assert still.legal_hold and store.head(still.sha256).legal_hold  # the open case holds it in the store
        link = session.exec(select(CaseLink).where(CaseLink.recording_id == still.id)).one()
        assert (link.case_id, link.purpose) == (get_case(session, CASE).id, "占道摊位全景")
        events = {e.kind: e for e in session.exec(select(CustodyEvent).where(
            col(CustodyEvent.recording_id).in_([video_id, still.id])))}
        taken = events["snapshot_taken"]
        assert (taken.recording_id, taken.actor) == (video_id, "clerk:李四")
        assert {k: taken.details[k] for k in ("case", "at_s", "still_id", "still_sha256", "reason",
                                              "original_verified")} == {
            "case": CASE, "at_s": 1.0, "still_id": still.id, "still_sha256": still.sha256, "reason": "固定占道画面",
            "original_verified": True}
        assert "document_attached" in events and "manifested" in events
    with store.open(still.sha256) as fh:
        png = fh.read()
    assert hashlib.sha256(png).hexdigest() == still.sha256
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.convert("RGB").tobytes() == _frame_from_original(store, still.technical["derived_from"]["sha256"],
                                                                  1.0)  # the very frame, losslessly
    timeline = client.get(f"/api/cases/{CASE}").json()["timeline"]
    assert still.id in [i["recording_id"] for i in timeline]

    again = _still(client, video_id, token, at="1")  # the same frame: the same bytes, kept once
    assert again.status_code == 303, re.findall(r'role="alert">([^<]*)', again.text)
    assert [d.id for d in _documents(engine)] == [still.id]


def test_a_still_keeps_its_videos_class_and_people_and_a_long_caption_stages_nothing(site, settings):
    """A still shows what its video shows: the same class (a review found a still of a personal video catalogued
    internal and downloadable by those the video is closed to) and the same officer (so the same people see it)."""
    client, engine, _store, video_id, token = site
    classed = client.post(f"/recordings/{video_id}/class", data={"csrf": token, "sensitivity": "personal",
                                                                 "reason": "含个人信息"}, follow_redirects=False)
    assert classed.status_code == 303, classed.text
    long = _still(client, video_id, token, at="0.5", purpose="x" * 600)
    assert long.status_code == 400 and "截图说明有 600 个字符，最多 500 个" in long.text
    assert _documents(engine) == [] and not any(settings.staging_dir.glob("*"))  # nothing staged, nothing left
    kept = _still(client, video_id, token, at="0.5")
    assert kept.status_code == 303, kept.text
    [still] = _documents(engine)
    with Session(engine) as session:
        video = session.get(Recording, video_id)
        assert video is not None
        assert (still.sensitivity, still.officer_number, still.device_serial) == (
            "personal", video.officer_number, video.device_serial)
    web_login(client, "auditor:赵")
    assert client.get(f"/media/{still.id}/original", params={"reason": "核查"}).status_code == 403


@pytest.mark.parametrize(("at", "status", "says", "english"), [
    ("abc", 400, "不是以秒计的位置", "is not a position in seconds"), ("nan", 400, "不是录像中的时间", "not a time"),
    ("inf", 400, "不是录像中的时间", "not a time"), ("-1", 400, "不是录像中的时间", "not a time"),
    ("99999", 400, "已超过录像结尾", "past its end")])
def test_a_position_that_is_not_in_the_recording_keeps_nothing(site, at, status, says, english):
    """Said in the page's language (Chinese by default, English when chosen)."""
    client, engine, _store, video_id, token = site
    refused = _still(client, video_id, token, at=at)
    assert refused.status_code == status and says in refused.text and english not in refused.text
    client.cookies.set("lang", "en")
    refused = _still(client, video_id, token, at=at)
    assert refused.status_code == status and english in refused.text and says not in refused.text
    assert _documents(engine) == []


def test_a_still_goes_only_to_an_open_case_the_recording_serves(site):
    client, engine, _store, video_id, token = site
    other = _still(client, video_id, token, at="0.5", case="AB-2026-00511")
    assert other.status_code == 400 and "不在案件 AB-2026-00511 中：请先将其关联到该案件" in other.text
    missing = _still(client, video_id, token, at="0.5", case="AB-2026-09999")
    assert missing.status_code == 404
    today = client.app.state.config.today().isoformat()
    closed = client.post(f"/cases/{CASE}/close", data={"csrf": token, "closed_on": today, "confirm": CASE},
                         follow_redirects=False)
    assert closed.status_code == 303
    late = _still(client, video_id, token, at="0.5")
    assert late.status_code == 400 and "结案；请先重新开启，再添加截图" in late.text
    assert _documents(engine) == []


def test_only_who_may_manage_the_case_and_read_the_recording_takes_a_still(site):
    """An officer may play but not add to a case; a clerk may not read a state secret without a grant on its
    case (a refusal recorded as `snapshot`). Every clerk and administrator sees the whole archive (scope_for),
    so scope itself is the route's visible_recording, as on every recording route."""
    client, engine, _store, video_id, _token = site
    web_login(client, "officer:张三")
    officer_token = form_token(client.get("/").text)
    assert _still(client, video_id, officer_token, at="0.5").status_code == 403
    web_login(client, "clerk:李四")
    token = form_token(client.get("/").text)
    classed = client.post(f"/recordings/{video_id}/class", data={"csrf": token, "sensitivity": "state_secret",
                                                                 "reason": "涉密"}, follow_redirects=False)
    assert classed.status_code == 303, classed.text
    refused = _still(client, video_id, token, at="0.5")  # a state secret needs a grant on its case first
    assert refused.status_code == 403 and "state_secret" in refused.text
    with Session(engine) as session:
        refusals = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused",
                                                           CustodyEvent.recording_id == video_id)).all()
    assert [(e.actor, e.details.get("action")) for e in refusals] == [("clerk:李四", "snapshot")]
    assert _documents(engine) == []


def test_a_still_is_never_made_from_an_original_edited_behind_the_archives_back(site):
    client, engine, store, video_id, token = site
    with Session(engine) as session:
        video = session.get(Recording, video_id)
        assert video is not None
        path = store.tree.object_path(video.sha256)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    refused = _still(client, video_id, token, at="0.5")
    assert refused.status_code == 400 and "存储的原件与其 SHA-256 不再一致" in refused.text
    assert _documents(engine) == []
    with Session(engine) as session:
        failed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "fixity_failed",
                                                         CustodyEvent.recording_id == video_id)).all()
    assert len(failed) == 1 and "before a still was taken" in failed[0].details["how"]


def test_the_command_line_keeps_a_still_by_the_same_function(samples, env):
    """`evidence case snapshot` is the player's snapshot: the same checks, the same still, the same events."""
    import json

    from tests.cli import run_cli

    rows = json.loads(run_cli(env, "ingest", str(samples.sidecar_recorder), "--case", CASE, "--purpose", "证明占道",
                              "--json").stdout)["recordings"]
    video = next(r for r in rows if r["media_kind"] == "video")
    created = run_cli(env, "case", "create", CASE, "--title", "占道经营", "--type", "penalty-general",
                      "--by", "clerk:李四")
    assert created.exit_code == 0, created.output
    past = run_cli(env, "case", "snapshot", CASE, str(video["id"]), "--at", "99999", "--reason", "固定画面",
                   "--by", "clerk:李四")
    assert past.exit_code == 2 and "past its end" in past.stderr
    kept = run_cli(env, "case", "snapshot", CASE, str(video["id"]), "--at", "0.5", "--reason", "固定画面",
                   "--by", "clerk:李四", "--json")
    assert kept.exit_code == 0, kept.output
    still = json.loads(kept.stdout)["still"]
    assert still["new"] and still["name"].endswith(".png")
    shown = json.loads(run_cli(env, "case", "show", CASE, "--json", "--by", "clerk:李四").stdout)
    assert still["recording_id"] in [i["recording_id"] for i in shown["timeline"]]
    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            taken = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "snapshot_taken")).one()
        assert (taken.recording_id, taken.details["still_id"], taken.details["reason"]) == (
            video["id"], still["recording_id"], "固定画面")
    finally:
        engine.dispose()
