"""The web application in a real browser: Debian's chromium driven by Playwright (headless, no downloaded
browser). Screenshots of the main pages go to test-artifacts/screenshots/."""
from __future__ import annotations

import os
import re
import shutil
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from catalog import (
    DEFAULT_CASE_TYPES,
    CustodyEvent,
    DerivedMedia,
    Recording,
    RetentionPolicy,
    load_or_create_key,
    open_catalog,
)
from catalog.cases import create_case
from catalog.models import Device
from catalog.package_verifier import pdf_text
from evidence.web import WebConfig, create_app
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from storage import LocalStore
from tests.conftest import _missing
from tests.helpers.webserver import serving
from tests.webhelpers import WEB_PASSWORD, add_web_users

pytestmark = [pytest.mark.usefixtures("ffmpeg_available"), pytest.mark.slow]

PASSWORD = WEB_PASSWORD
SHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"


def _chromium() -> str:
    path = os.environ.get("EVIDENCE_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        _missing("Debian's chromium (apt-get install chromium)")
    return str(path)


@pytest.fixture
def server(samples, settings):
    run_ingest(samples.sidecar_recorder, settings, IngestOptions(purpose="日常巡查", case_number="AB-2026-00042"))
    run_ingest(samples.dcim_camera, settings, IngestOptions(purpose="日常巡查"))
    engine = open_catalog(settings.database_url)
    add_web_users(engine, {"clerk:李四": "clerk", "supervisor:王": "supervisor", "officer:李四": "officer",
                           "auditor:赵": "auditor", "admin:钱": "admin"}, officer_numbers={"officer:李四": "020304"})
    with Session(engine) as session:
        video = session.exec(select(Recording).join(DerivedMedia, col(DerivedMedia.recording_id) == Recording.id)
                             .where(DerivedMedia.kind == "proxy", Recording.media_kind == "video")).first()
        assert video is not None
        video_id = video.id
    app = create_app(WebConfig(engine=engine, store=LocalStore(settings.store_path),
                               key=load_or_create_key(settings.station_key_path), case_pattern=settings.case_pattern,
                               settings=settings))  # settings: the export key (EVIDENCE_EXPORT_KEY)
    try:
        with serving(app) as base:
            yield base, engine, video_id
    finally:
        engine.dispose()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            yield launched
        finally:
            launched.close()


def _login(page, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_clerk_and_supervisor_do_their_work_in_the_browser(server, browser):
    base, engine, video_id = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{base}/login")
    assert page.locator("h1").inner_text() == "登录"
    page.screenshot(path=str(SHOTS / "login.png"))
    _login(page, base, "clerk:李四")

    page.fill("input[name=case]", "AB-2026-00042")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert page.locator(".card").count() == 7  # three clips, their GPS sidecars, the recorder's identity file
    page.screenshot(path=str(SHOTS / "search.png"), full_page=True)
    # the search on screen kept under a name, then run again from its link after a search for something else
    page.fill("#save-search input[name=name]", "本案全部")
    page.click("#save-search button[type=submit]")
    page.wait_for_selector("p.done:has-text('检索已保存为“本案全部”')")
    page.goto(f"{base}/?kind=audio")
    assert page.locator(".card").count() == 1
    page.click(".saved-search a:has-text('本案全部')")
    page.wait_for_selector("input[name=case][value='AB-2026-00042']")
    assert page.locator(".card").count() == 7

    page.goto(f"{base}/recordings/{video_id}")
    video = page.locator("video#player")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("document.querySelector('video#player').readyState >= 2", timeout=20_000)
    page.screenshot(path=str(SHOTS / "recording.png"), full_page=True)

    stamp = page.locator("form[action$='/stamp']")
    stamp.locator("input[name=purpose]").fill("证明当事人无照经营")
    stamp.locator("input[name=reason]").fill("复核后补充证明对象")
    page.click("form[action$='/stamp'] button[type=submit]")
    page.wait_for_url(f"{base}/recordings/{video_id}")
    assert "r2" in page.content() and "复核后补充证明对象" in page.content()

    page.goto(f"{base}/?lang=en")
    assert page.locator("h1").inner_text() == "Search recordings"
    page.goto(f"{base}/?lang=zh_CN")
    assert page.locator("h1").inner_text() == "检索音视频记录"

    # 双随机: the supervisor draws the recordings and one reviewer; the reviewer reviews beside the player, signs
    # off, and downloads the summary to publish
    supervisor = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(supervisor, base, "supervisor:王")
    supervisor.goto(f"{base}/spot-checks")
    supervisor.fill("input[name=size]", "3")
    supervisor.fill("input[name=reviewers]", "1")
    supervisor.click("form[action='/spot-checks'] button[type=submit]")
    supervisor.wait_for_url(re.compile(r".*/spot-checks/\d+$"))
    check_url = supervisor.url
    assert supervisor.locator("#reviewers").inner_text().startswith("admin:钱")  # the one other who may review
    assert supervisor.locator("select[name=outcome]").count() == 0  # who draws does not review
    reviewer = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(reviewer, base, "admin:钱")
    reviewer.goto(check_url)
    assert reviewer.locator("#progress-text").inner_text() == "已复核 0 / 3"
    playable = reviewer.locator("button[data-review][data-kind=video], button[data-review][data-kind=audio]")
    if playable.count():
        reviewer.locator("#review-player").evaluate("m => { m.muted = true; }")
        playable.first.click()
        reviewer.wait_for_function("() => document.querySelector('#review-player').readyState >= 2", timeout=20_000)
        assert reviewer.locator("#review-title").inner_text() == playable.first.get_attribute("data-name")
    for n in range(reviewer.locator("form[action*='/items/']").count()):
        form = reviewer.locator("form[action*='/items/']").nth(n)
        if n == 0:
            form.locator("select[name=outcome]").select_option("issue")
            form.locator("input[name=notes]").fill("执法记录仪未全程开启")
        form.locator("button[type=submit]").click()
        # the page after the post says so: never act on the page before it (a busy machine navigates late)
        reviewer.wait_for_function(f"() => document.querySelector('#progress-text').textContent === "
                                   f"'已复核 {n + 1} / 3'")
    assert reviewer.locator("#progress-text").inner_text() == "已复核 3 / 3"
    assert reviewer.locator("#findings").inner_text() == "1"
    reviewer.click("#sign-off button[type=submit]")
    reviewer.wait_for_url(check_url)
    assert "admin:钱" in reviewer.locator("#signed-off").inner_text()
    reviewer.screenshot(path=str(SHOTS / "spot-check.png"), full_page=True)
    with reviewer.expect_download() as downloading:
        reviewer.click("a[href$='summary.csv']")
    summary = Path(downloading.value.path()).read_text(encoding="utf-8-sig")
    assert "findings" in summary and "admin:钱" not in summary and "李四" not in summary
    # ... and the supervisor takes the quarter's 执法数据分析报告 as a PDF
    supervisor.goto(f"{base}/stats")
    supervisor.select_option("#period-form select[name=period]", "quarter")
    supervisor.fill("#period-form input[name=on]", "2026-11-20")
    supervisor.click("#period-form button[type=submit]")
    supervisor.wait_for_url(re.compile(r".*period=quarter.*"))
    assert supervisor.locator("#period-title").inner_text().startswith("2026年第4季度")
    with supervisor.expect_download() as downloading:
        supervisor.click("#reports a[href^='/stats/report.pdf']")
    assert downloading.value.suggested_filename == "enforcement-report-2026-10-01-2026-12-31.pdf"
    report_text = pdf_text(Path(downloading.value.path()).read_bytes())
    assert "执法数据分析报告（2026年第4季度）" in report_text and "双随机抽查" in report_text
    with Session(engine) as session:
        from catalog import CustodyEvent

        kinds = {e.kind for e in session.exec(select(CustodyEvent))}
    assert {"signed_in", "viewed", "accessed", "restamped", "spot_check_drawn", "reviewed",
            "spot_check_signed"} <= kinds


def _ids(engine, **where) -> list[int]:
    with Session(engine) as session:
        query = select(Recording.id)
        for field, value in where.items():
            query = query.where(getattr(Recording, field) == value)
        return [i for i in session.exec(query.order_by(col(Recording.id))) if i is not None]


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_officer_clerk_auditor_and_admin_in_the_browser(server, browser):
    base, engine, _video_id = server
    SHOTS.mkdir(parents=True, exist_ok=True)

    # the officer sees only their own recordings, plays their audio and tags it
    officer = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(officer, base, "officer:李四")
    assert officer.locator("h1").inner_text() == "我的音视频记录"
    own = _ids(engine, officer_number="020304")
    assert officer.locator(".card").count() == len(own) >= 2
    audio_id = _ids(engine, officer_number="020304", media_kind="audio")[0]
    officer.goto(f"{base}/recordings/{audio_id}")
    officer.locator("audio#player").evaluate("a => { a.muted = true; return a.play(); }")
    officer.wait_for_function("document.querySelector('audio#player').readyState >= 2", timeout=20_000)
    stamp = officer.locator("form[action$='/stamp']")
    stamp.locator("input[name=purpose]").fill("证明现场陈述")
    stamp.locator("input[name=reason]").fill("执法人员补充标注")
    officer.click("form[action$='/stamp'] button[type=submit]")
    officer.wait_for_url(f"{base}/recordings/{audio_id}")
    assert "执法人员补充标注" in officer.content()
    officer.screenshot(path=str(SHOTS / "officer.png"), full_page=True)
    others = [i for i in _ids(engine) if i not in own]
    refused = officer.goto(f"{base}/recordings/{others[0]}")
    assert refused is not None and refused.status == 403

    # the clerk views a photo, searches near a place, switches language without losing the filters, runs a case
    clerk = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(clerk, base, "clerk:李四")
    photo_id = _ids(engine, original_name="IMG_0001.JPG")[0]
    clerk.goto(f"{base}/recordings/{photo_id}?reason=复核调阅")  # a photo's original is shown with a reason
    clerk.wait_for_function("document.querySelector('img#photo').complete && "
                            "document.querySelector('img#photo').naturalWidth > 0", timeout=20_000)
    clerk.goto(f"{base}/?lat=31.2304&lon=121.4737&radius=2000&sort=captured")
    near = clerk.locator(".card").count()
    assert near >= 2
    clerk.click("text=English")
    assert clerk.locator("h1").inner_text() == "Search recordings"
    assert clerk.locator("input[name=lat]").input_value() == "31.2304" and clerk.locator(".card").count() == near
    clerk.goto(f"{base}/?lang=zh_CN")
    clerk.goto(f"{base}/cases")
    form = clerk.locator("form[action='/cases']")
    form.locator("input[name=number]").fill("AB-2026-00100")
    form.locator("input[name=title]").fill("无照经营（浏览器立案）")
    form.locator("button[type=submit]").click()
    clerk.wait_for_url(f"{base}/cases/AB-2026-00100")
    # ... and adds search results to it by ticking them (no ids typed), then exports every result of a search
    clerk.goto(f"{base}/?size=96")
    for rid in (photo_id, audio_id):
        clerk.check(f"input[name=ids][value='{rid}']")
    assert clerk.locator("#picked").inner_text() == "2"
    bulk = clerk.locator("#bulk")
    bulk.locator("select[name=action]").select_option("link")
    assert bulk.locator("fieldset[data-action=tag]").is_hidden()  # only the chosen action's fields are shown
    bulk.locator("input[name=case]").fill("AB-2026-00100")
    bulk.locator("input[name=link_purpose]").fill("证明经营场所")
    bulk.locator("button[type=submit]").click()
    clerk.wait_for_url(f"{base}/?size=96")
    assert clerk.locator("p.done").inner_text() == "已将 2 条录像加入案件 AB-2026-00100。"
    clerk.goto(f"{base}/?case=AB-2026-00042")
    clerk.check("#pick-page")
    assert clerk.locator("#picked").inner_text() == str(clerk.locator(".card").count())
    bulk.locator("select[name=action]").select_option("export")
    bulk.locator("input[name=reason]").fill("移送法院")
    with clerk.expect_download() as downloading:
        bulk.locator("button[type=submit]").click()
    assert re.fullmatch(r"recordings-\d{8}-\d{6}\.zip", downloading.value.suggested_filename)
    clerk.goto(f"{base}/cases/AB-2026-00100")
    assert clerk.locator("#timeline tr").count() == 3  # header + two linked recordings
    assert "法律保全" in clerk.content()
    clerk.screenshot(path=str(SHOTS / "case.png"), full_page=True)
    clerk.goto(f"{base}/retention")
    assert clerk.locator("h1").inner_text() == "保存与销毁" and clerk.locator("#plan tr").count() >= 2
    clerk.screenshot(path=str(SHOTS / "retention.png"), full_page=True)

    # the auditor reads who looked at what, and why
    auditor = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(auditor, base, "auditor:赵")
    auditor.goto(f"{base}/audit?log=access&actor=officer:李四")
    assert auditor.locator("#events td[data-kind='accessed']").count() >= 1
    assert auditor.locator("#events td[data-kind='accessed']").first.inner_text() == "调阅原件"  # its Chinese name
    auditor.screenshot(path=str(SHOTS / "audit.png"), full_page=True)

    admin = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(admin, base, "admin:钱")
    admin.goto(f"{base}/admin")
    assert admin.locator("#users tr").count() == 6  # header + five users
    admin.screenshot(path=str(SHOTS / "admin.png"), full_page=True)


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_a_reviewer_steps_frames_and_draws_regions_on_the_redacted_copy(server, browser, settings):
    """The review's script in a real browser: the copy and the original step together frame by frame, a region
    drawn on the copy goes into the form for one second from the frame shown, and with a time to follow it until,
    into the tracker's field from that frame; the form sent as drawn makes the next version."""
    from ingest.redaction import parse_track
    from ingest.redaction.jobs import run_pending_jobs

    base, engine, video_id = server
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _login(page, base, "clerk:李四")
    page.goto(f"{base}/recordings/{video_id}")
    form = page.locator("#redaction-form")
    form.locator("textarea[name=boxes]").fill("0-1:0,0,32,32")
    form.locator("input[name=reason]").fill("公示前遮蔽")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/redactions/\d+$"))
    job_url = page.url
    key = load_or_create_key(settings.station_key_path)
    assert run_pending_jobs(engine, LocalStore(settings.store_path), settings, key).counts == {"done": 1}
    page.goto(f"{job_url}?reason=审核遮蔽效果")
    page.wait_for_function("() => document.querySelector('video#review-copy').readyState >= 1",
                           timeout=20_000)
    # Three frames forward: both pictures at the same time, shown to the millisecond
    fps = float(page.locator("#review").get_attribute("data-fps") or 0)
    assert fps > 0
    at = 3 / fps
    for _ in range(3):
        page.click("#review-controls [data-step='1']")
    page.wait_for_function("t => Math.abs(document.querySelector('video#review-copy').currentTime - t) < 0.001", arg=at)
    page.wait_for_function("t => Math.abs(document.querySelector('video#review-original').currentTime - t) < 0.5 / 15",
                           arg=at)
    assert page.locator("#review-time").inner_text() == f"{at:.3f} s"
    assert errors == []
    # A region drawn on the copy: a line for one second from this frame, in pixels of the original picture
    stage = page.locator("#review-stage").bounding_box()
    scale = int(page.locator("#review").get_attribute("data-width") or 0) / stage["width"]

    def drag(x0: float, y0: float, x1: float, y1: float) -> None:
        page.click("#review-draw")
        page.mouse.move(stage["x"] + x0, stage["y"] + y0)
        page.mouse.down()
        page.mouse.move(stage["x"] + x1, stage["y"] + y1, steps=5)
        page.mouse.up()

    boxes, tracks = page.locator("#redaction-boxes"), page.locator("#redaction-tracks")
    before = boxes.input_value().strip().splitlines()
    drag(40, 30, 140, 110)
    added = boxes.input_value().strip().splitlines()[len(before):]
    assert len(added) == 1 and added[0].startswith(f"{at:.2f}-{at + 1:.2f}:"), added
    x, y, w, h = (int(v) for v in added[0].split(":")[1].split(","))
    assert abs(x - 40 * scale) <= 2 and abs(y - 30 * scale) <= 2 and abs(w - 100 * scale) <= 2, added
    assert abs(h - 80 * scale) <= 2
    # A time to follow it until that is not after this frame adds nothing (never a still box in its place)
    page.fill("#review-follow", "0:00.05")
    drag(150, 40, 210, 100)
    assert tracks.input_value().strip() == "" and len(boxes.input_value().strip().splitlines()) == len(before) + 1
    assert "not a time after" in page.locator("#review-follow").evaluate("i => i.validationMessage")
    # With a time to follow it until (MM:SS, as the form's fields take times), the next one goes to the tracker
    page.fill("#review-follow", "0:02.5")
    drag(150, 40, 210, 100)
    tracked = tracks.input_value().strip().splitlines()[-1]
    assert tracked.startswith(f"{at:.2f}-2.50:"), tracks.input_value()
    assert len(boxes.input_value().strip().splitlines()) == len(before) + 1
    # The form sent as drawn: the next version, with the drawn region and the tracked one
    page.locator("#redaction-form input[name=reason]").fill("复核后补充")
    page.locator("#redaction-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/redactions/\d+$"))
    assert page.url != job_url
    ran = run_pending_jobs(engine, LocalStore(settings.store_path), settings, key)
    assert ran.counts == {"done": 1}, page.goto(page.url) and page.locator("#job-error").inner_text()
    page.goto(f"{page.url}?reason=复核")
    [asked] = page.locator("#redaction-tracks").input_value().strip().splitlines()
    assert parse_track(asked) == parse_track(tracked)
    assert errors == []
    page.screenshot(path=str(SHOTS / "redaction-review.png"), full_page=True)


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_the_api_docs_work_without_internet_access(server, browser):
    """Swagger UI comes from the package (static/vendor): with every other address refused, /api/docs still lists
    the API's operations, and the page's policy refuses nothing it needs."""
    base, _engine, _video_id = server
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    outside: list[str] = []
    refused: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(base) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    _login(page, base, "clerk:李四")
    page.goto(f"{base}/api/docs")
    page.wait_for_function("() => document.querySelectorAll('.opblock').length > 10", timeout=20_000)
    assert page.locator(".opblock-summary-path[data-path='/api/recordings']").count() >= 1
    assert (outside, refused) == ([], [])


AXE = Path(__file__).resolve().parents[2] / "vendor" / "axe-core" / "axe.min.js"  # from npm: scripts/vendor_npm.py


def _serious_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands, one line each."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
        .filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`)""")
    return list(found)


PAGES = ["/", "/?case=AB-2026-00042", "/recordings/{video}", "/recordings/{video}?reason=复核", "/cases",
         "/cases/AB-2026-00042", "/retention", "/releases", "/spot-checks", "/stats", "/audit", "/audit?log=custody",
         "/coverage?officer=020304&from=2026-11-19&to=2026-11-21", "/checklist", "/case-actions?case=AB-2026-00042",
         "/devices", "/devices?serial=GPS7788", "/admin", "/admin/officers",
         "/admin/devices", "/admin/stations", "/admin/policy"]


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_every_page_wears_the_component_library_and_breaks_none_of_its_policy(server, browser):
    """Each page, with its policy in force, loads the vendored Pico CSS and the archive's own sheet (the same
    components everywhere), and the browser reports no refused script or style: a stray style attribute or
    inline script would show here as an unstyled or dead page."""
    base, _engine, video_id = server
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    refused: list[str] = []
    page.on("console", lambda message: refused.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text else None)
    _login(page, base, "admin:钱")
    styled = {}
    for path in ["/login", *(p.format(video=video_id) for p in PAGES)]:
        page.goto(base + path)
        styled[path] = page.evaluate("""() => [
            getComputedStyle(document.documentElement).getPropertyValue('--pico-primary').trim() !== '',
            getComputedStyle(document.querySelector('body > header')).backgroundColor]""")
    assert {p: s for p, s in styled.items() if s != [True, "rgb(31, 58, 95)"]} == {}
    assert refused == []


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_no_page_has_a_serious_or_critical_accessibility_violation(server, browser):
    """axe-core, injected into each page (the pages' policy allows no injected script, so this page bypasses it),
    at a desktop and a phone width."""
    base, _engine, video_id = server
    pages = [p.format(video=video_id) for p in PAGES]
    for width in (1366, 390):
        page = browser.new_page(viewport={"width": width, "height": 900}, bypass_csp=True)
        page.goto(f"{base}/login")
        found = {"/login": _serious_violations(page)}
        _login(page, base, "admin:钱")
        for path in pages:
            page.goto(base + path)
            found[path] = _serious_violations(page)
        page.goto(base + "/")
        page.click("#map-box summary")  # the map opened: Leaflet's controls and the drawing button
        page.wait_for_selector("#map .leaflet-control-zoom-in")
        found["/ (map)"] = _serious_violations(page)
        assert {p: v for p, v in found.items() if v} == {}, width
        page.close()


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_the_player_steps_frames_changes_speed_and_tells_the_agencys_time(server, browser):
    base, engine, video_id = server
    with Session(engine) as session:
        video = session.get(Recording, video_id)
        assert video is not None and video.captured_start is not None
        captured = video.captured_start
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(page, base, "clerk:李四")
    page.goto(f"{base}/recordings/{video_id}")
    player = page.locator("video#player")
    player.evaluate("v => { v.muted = true; v.preload = 'auto'; v.load(); }")
    page.wait_for_function("() => document.querySelector('video#player').readyState >= 2", timeout=20_000)
    assert page.locator(".split .meta-pane table").count() >= 1  # the stamp beside the player
    page.select_option("#speed", "0.5")
    assert player.evaluate("v => v.playbackRate") == 0.5
    page.locator("body").press("]")
    assert player.evaluate("v => v.playbackRate") == 1
    fps = float(page.locator("#player-controls").get_attribute("data-fps") or 0)
    page.locator("body").press(".")
    page.locator("body").press(".")
    page.wait_for_function("() => document.querySelector('video#player').currentTime > 0")
    assert abs(player.evaluate("v => v.currentTime") - 2 / fps) < 0.5 / fps
    assert player.evaluate("v => v.paused")
    page.locator("[data-step='-1']").click()
    page.wait_for_function(f"() => Math.abs(document.querySelector('video#player').currentTime - {1 / fps}) < "
                           f"{0.5 / fps}")
    local = captured.astimezone(ZoneInfo("Asia/Shanghai"))
    # the timecode follows the seek's `seeked` event, which comes after currentTime moved (late on a busy machine)
    page.wait_for_function("() => document.querySelector('#timecode').textContent.endsWith(' +01f')")
    shown = page.locator("#timecode").inner_text()
    # as the page writes every time (evidence.web.app.local_time), then the frame within the second
    assert shown == local.strftime("%Y-%m-%d %H:%M:%S +08:00") + " +01f", shown


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_a_case_plays_in_capture_order_and_a_frame_becomes_a_still_of_it(server, browser, settings):
    """The case page's playlist: the clerk links two recordings with browser copies (in the browser, by id),
    plays the first, and when it ends the next starts; each play is the session's recorded access. Then on the
    first one's page the frame on screen is kept as a still of the case."""
    base, engine, _video_id = server
    with Session(engine) as session:
        playable = list(session.exec(select(Recording)
                                     .join(DerivedMedia, col(DerivedMedia.recording_id) == Recording.id)
                                     .where(DerivedMedia.kind == "proxy", col(Recording.captured_start).is_not(None))
                                     .order_by(col(Recording.captured_start), col(Recording.id))))
        assert len(playable) >= 2
        first, second = playable[0].id, playable[1].id
        create_case(session, number="AB-2026-00300", title="按序播放", case_type="penalty-general", unit="",
                    opened_on=date(2026, 11, 1), by="clerk:李四", case_pattern=settings.case_pattern,
                    policy=RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai"), today=date(2026, 11, 23))
        session.commit()
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(page, base, "clerk:李四")
    page.goto(f"{base}/cases/AB-2026-00300")
    link = page.locator("#link-form")
    link.locator("input[name=recordings]").fill(f"{second} {first}")  # typed out of order
    link.locator("input[name=purpose]").fill("证明现场")
    link.locator("button[type=submit]").click()
    page.wait_for_url(f"{base}/cases/AB-2026-00300")
    queued = page.locator("#playlist-items button").evaluate_all("bs => bs.map(b => b.dataset.id)")
    assert queued[:2] == [str(first), str(second)], queued  # capture order, whatever order they were linked
    player = page.locator("#playlist-player")
    player.evaluate("v => { v.muted = true; }")
    page.locator("#playlist-items button").first.click()
    page.wait_for_function(f"() => document.querySelector('#playlist-player').src.includes('/media/{first}/proxy')"
                           " && document.querySelector('#playlist-player').readyState >= 2", timeout=20_000)
    assert page.locator("#playlist-now").inner_text().startswith("1 / ")
    player.evaluate("v => { v.currentTime = Math.max(0, v.duration - 0.2); return v.play(); }")
    page.wait_for_function(f"() => document.querySelector('#playlist-player').src.includes('/media/{second}/proxy')"
                           " && document.querySelector('#playlist-player').readyState >= 2", timeout=20_000)
    page.wait_for_function("() => document.querySelector('#playlist-now').textContent.startsWith('2 / ')")
    with Session(engine) as session:
        plays = [e.recording_id for e in session.exec(select(CustodyEvent).where(CustodyEvent.kind == "accessed"))
                 if e.details.get("via") == "web play"]
    assert plays.count(first) == 1 and plays.count(second) == 1, plays
    page.screenshot(path=str(SHOTS / "case-playlist.png"), full_page=True)

    # the player's snapshot: the frame on screen becomes a still of the case
    page.goto(f"{base}/recordings/{first}")
    video = page.locator("video#player")
    video.evaluate("v => { v.muted = true; v.preload = 'auto'; v.load(); }")
    page.wait_for_function("() => document.querySelector('video#player').readyState >= 2", timeout=20_000)
    video.evaluate("v => { v.currentTime = 0.6; }")
    page.wait_for_function("() => document.querySelector('#snapshot-at').value === "
                           "document.querySelector('video#player').currentTime.toFixed(3)")
    at = page.locator("#snapshot-at").input_value()
    form = page.locator("#snapshot-form")
    form.locator("input[name=purpose]").fill("现场全景")
    form.locator("input[name=reason]").fill("固定现场画面")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf".*/recordings/{first}.*"))
    said = page.locator("p.done").inner_text()
    assert said.startswith(f"第 {float(at):.3f} 秒处画面已作为第 ") and "AB-2026-00300" in said, said
    with Session(engine) as session:
        still = session.exec(select(Recording).where(Recording.container == "png",
                                                     Recording.media_kind == "document")).one()
        assert still.technical["derived_from"]["recording_id"] == first


def _no_sideways_scroll(page) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1"))


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_an_officer_on_a_phone_finds_what_is_untagged_and_tags_it_at_once(server, browser, samples, settings):
    """390 px wide (a phone): the header, the search, a recording with its player and the tagging fit without
    scrolling sideways; the officer's untagged recordings come first and are tagged in one go with one reason."""
    base, engine, _video_id = server
    run_ingest(samples.cn_recorder, settings, IngestOptions())  # officer 010203's recorder, docked with no tag
    add_web_users(engine, {"officer:张三": "officer"}, officer_numbers={"officer:张三": "010203"})
    SHOTS.mkdir(parents=True, exist_ok=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    _login(phone, base, "officer:张三")
    with Session(engine) as session:
        own = [r for r in session.exec(select(Recording).where(Recording.officer_number == "010203")
                                       .order_by(col(Recording.id)))]
        untagged = [r.id for r in own if not r.case_number and not r.purpose and not r.important]
    assert _no_sideways_scroll(phone)
    assert len(untagged) >= 2
    assert f"您有 {len(untagged)} 条记录尚未标注" in phone.locator("#untagged").inner_text()
    phone.click("#untagged a")
    phone.wait_for_url(re.compile(r".*tagged=no.*"))
    assert phone.locator(".card").count() == len(untagged)
    phone.check("#pick-page")
    bulk = phone.locator("#bulk")
    bulk.locator("select[name=action]").select_option("tag")
    bulk.locator("input[name=purpose]").fill("证明现场情况")
    bulk.locator("input[name=reason]").fill("下班前补标")
    assert _no_sideways_scroll(phone)
    phone.screenshot(path=str(SHOTS / "officer-390.png"), full_page=True)
    bulk.locator("button[type=submit]").click()
    phone.wait_for_selector("p.done")
    assert phone.locator("p.done").inner_text() == f"已标注 {len(untagged)} 条录像。"
    assert phone.locator("#untagged").count() == 0
    first = own[0].id
    phone.goto(f"{base}/recordings/{first}")
    assert _no_sideways_scroll(phone)
    phone.screenshot(path=str(SHOTS / "recording-390.png"), full_page=True)


def _outside_refused(page, base: str) -> list[str]:
    """Refuse (and list) every request the page makes anywhere but *base* and data: URLs."""
    outside: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith((base, "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    return outside


def _map_point(page, lat: float, lon: float) -> tuple[float, float]:
    """Where on the screen the map draws (*lat*, *lon*)."""
    box = page.locator("#map").bounding_box()
    assert box is not None
    x, y = page.evaluate("([lat, lon]) => { const p = document.getElementById('map').leafletMap"
                         ".latLngToContainerPoint([lat, lon]); return [p.x, p.y]; }", [lat, lon])
    return box["x"] + x, box["y"] + y


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_the_results_are_on_a_map_and_a_circle_drawn_on_it_searches_near_a_place(server, browser):
    """No tiles configured: the points on a plain latitude/longitude grid, nothing fetched from anywhere else.
    Every result with a place is a point that opens its recording; a circle drawn with two clicks around one of
    them fills the near-a-place filters, and the search finds what the API finds there."""
    base, _engine, _video_id = server
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    outside = _outside_refused(page, base)
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    _login(page, base, "clerk:李四")
    page.goto(f"{base}/?size=96")
    placed = [r for r in page.request.get(f"{base}/api/recordings?size=1000").json()["recordings"] if r["place"]]
    assert placed, "the samples carry GPS places"
    page.click("#map-box summary")
    page.wait_for_selector("#map canvas.leaflet-tile")  # the grid drawn in place of tiles
    assert page.locator("#map path.evidence-point").count() == len(placed)
    centre = placed[0]["place"]
    near = [r for r in placed if abs(r["place"]["lat"] - centre["lat"]) < 1e-4
            and abs(r["place"]["lon"] - centre["lon"]) < 1e-4]
    page.evaluate("([lat, lon]) => document.getElementById('map').leafletMap.setView([lat, lon], 15)",
                  [centre["lat"], centre["lon"]])
    page.click("#draw-near")
    assert page.locator("#draw-near").get_attribute("aria-pressed") == "true"
    page.mouse.click(*_map_point(page, centre["lat"], centre["lon"]))
    page.mouse.click(*_map_point(page, centre["lat"], centre["lon"] + 0.003))  # about 285 m east
    form = page.locator("form.filters")
    lat, lon = float(form.locator("[name=lat]").input_value()), float(form.locator("[name=lon]").input_value())
    metres = float(form.locator("[name=radius]").input_value())
    assert abs(lat - centre["lat"]) < 2e-4 and abs(lon - centre["lon"]) < 2e-4 and 200 < metres < 380
    assert "press Search" not in page.locator("#draw-status").inner_text()  # said in Chinese
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#map-box[open] #map path.near-searched")  # the circle searched, drawn on the result
    expected = page.request.get(f"{base}/api/recordings", params={"lat": str(lat), "lon": str(lon),
                                                                  "radius": str(metres), "size": "1000"}).json()
    assert expected["total"] >= len(near) >= 1
    assert page.locator(".card").count() == expected["total"]
    page.locator("#map path.evidence-point").last.click()  # the top one of points at the same place
    page.locator(".leaflet-popup-content a").click()
    page.wait_for_selector("h1")
    assert re.search(r"/recordings/\d+$", page.url)
    assert (outside, refused) == ([], [])


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_an_agencys_own_tile_server_draws_the_map_and_its_policy_lets_it(samples, settings, browser):
    """EVIDENCE_MAP_TILES pointing at a tile server of the agency's (here one on 127.0.0.1): the map asks it for
    tiles and shows them, and the pages' policy names that server, so no tile is refused."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from io import BytesIO

    from PIL import Image

    from tests.webhelpers import served_app

    run_ingest(samples.sidecar_recorder, settings, IngestOptions(purpose="日常巡查", case_number="AB-2026-00042"))
    tile = BytesIO()
    Image.new("RGB", (256, 256), (180, 210, 180)).save(tile, "PNG")
    asked: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(tile.getvalue())

        def log_message(self, *args: object) -> None:
            pass

    tiles = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    engine = open_catalog(settings.database_url)
    try:
        add_web_users(engine, {"clerk:李四": "clerk"})
        credit_typed = '© 本局测绘 <a href="https://phish.example/">重新登录</a>'
        app, _video = served_app(engine, settings, map_attribution=credit_typed,
                                 map_tiles=f"http://127.0.0.1:{tiles.server_port}/{{z}}/{{x}}/{{y}}.png")
        with serving(app) as base:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            refused: list[str] = []
            page.on("console", lambda message: refused.append(message.text)
                    if "Content Security Policy" in message.text else None)
            _login(page, base, "clerk:李四")
            page.goto(f"{base}/")
            page.click("#map-box summary")
            page.wait_for_selector("#map img.leaflet-tile-loaded")
            assert asked and all(re.fullmatch(r"/\d+/\d+/\d+\.png", p) for p in asked)
            credit = page.locator(".leaflet-control-attribution")
            # the credit is text: markup slipped into the setting shows as typed, no link is made of it
            assert credit_typed in credit.inner_text()
            assert credit.locator("a").count() == 0
            assert refused == []
    finally:
        tiles.shutdown()
        tiles.server_close()
        engine.dispose()


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_a_supervisor_goes_from_a_recorder_alert_to_its_recordings(server, browser):
    """The sample recorders registered themselves by docking (unknown serials): each is an alert in the
    supervisor's inbox, and its link shows exactly that recorder's recordings."""
    base, engine, _video_id = server
    with Session(engine) as session:
        docked = set(session.exec(select(Device.serial).where(col(Device.unreviewed))))
        made = {serial: n for serial, n in session.exec(
            select(Recording.device_serial, func.count()).where(col(Recording.device_serial).in_(docked),
                                                                col(Recording.belongs_to_id).is_(None))
            .group_by(Recording.device_serial)).all()}
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(page, base, "supervisor:王")
    page.click("nav >> text=执法记录仪")
    page.wait_for_selector("#device-alerts tr[data-kind=unreviewed]")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "devices.png"), full_page=True)
    rows = page.locator("#device-alerts tr[data-kind=unreviewed]")
    serials = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]
    assert set(serials) == docked and made  # every recorder that docked unknown, none invented
    serial = max(made, key=lambda s: made[s])
    # its unknown serial's alert (a GPS recorder also raises its clock drift, measured from its sidecars)
    page.locator(f"#device-alerts tr[data-kind=unreviewed]:has(td:text-is('{serial}')) a").click()
    page.wait_for_url(lambda url: "device=" in url)
    page.wait_for_selector(".card")
    found = page.request.get(f"{base}/api/recordings", params={"device": serial, "size": "100"}).json()
    assert page.locator(".card").count() == found["total"] >= made[serial]  # what came off it, its own or seen on it
    assert page.input_value("input[name=device]") == serial  # the search says what it was asked
    page.close()
