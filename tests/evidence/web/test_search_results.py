"""What a search result shows: the cases it serves (linked ones too, not only the stamped number), its length,
a thumbnail only where one was made, and why not otherwise (a damaged file, a preview or browser copy that failed
for good) instead of a broken image or a promise of a copy that will not come."""
from __future__ import annotations

import html
import math
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from catalog import Recording
from catalog.cases import get_case, link_recording
from catalog.models import DerivedMedia, MediaWorkFailure
from catalog.types import utcnow
from evidence.web.app import clock_duration
from evidence.web.search_form import QUICK_RANGES, parse_time, quick_range
from tests.evidence.web.conftest import CASE
from tests.webhelpers import web_login


def test_durations_read_as_a_player_shows_them():
    assert [clock_duration(s) for s in (None, math.nan, -3.0, 0.0, 7.4, 725, 3723.4, 36_000)] == [
        "-", "-", "-", "0:00", "0:07", "12:05", "1:02:03", "10:00:00"]


def _card(page: str, rid: int) -> str:
    found = re.search(rf'<div class="card" data-id="{rid}">(.*?)\n  </div>', page, re.DOTALL)
    assert found, f"no card for recording {rid}"
    return found.group(1)


def test_a_result_shows_its_cases_its_length_and_why_it_has_no_picture(web_site):
    client, engine = web_site
    with Session(engine) as session:
        one, two, three = (session.get(Recording, rid) for rid in (1, 2, 3))
        assert one is not None and two is not None and three is not None
        link_recording(session, get_case(session, CASE), one, purpose="证明现场", by="clerk")  # linked, not stamped
        one.duration_s, one.original_name = 3723.4, "执法记录仪_" + "很长的文件名" * 30 + ".mp4"
        session.add(DerivedMedia(recording_id=1, derived_from_sha256=one.sha256, kind="thumbnail", key="k",
                                 sha256="0" * 64, size_bytes=10, content_type="image/jpeg", created_at=utcnow()))
        two.integrity_status, two.integrity_detail = "damaged", "truncated at byte 4096 <script>alert(1)</script>"
        session.add(MediaWorkFailure(recording_id=3, derived_from_sha256=three.sha256, kind="thumbnail",
                                     reason="the decoder ran out of memory", failed_by="test", failed_at=utcnow()))
        session.add(MediaWorkFailure(recording_id=3, derived_from_sha256=three.sha256, kind="proxy",
                                     reason="no video stream", failed_by="test", failed_at=utcnow()))
        session.add_all([one, two])
        session.commit()
    web_login(client, "clerk")
    page = client.get("/", params={"sort": "captured"}).text

    first = _card(page, 1)
    assert '<img src="/media/1/thumbnail"' in first  # a thumbnail was made: shown
    assert f'<a href="/cases/{CASE}">{CASE}</a>' in first  # the case it was linked to, though not stamped with it
    assert "时长: 1:02:03" in first

    damaged = _card(page, 2)
    assert "<img" not in damaged  # no thumbnail was made: no broken image
    assert "原因: truncated at byte 4096 &lt;script&gt;" in damaged  # why, escaped

    failed = _card(page, 3)
    assert "<img" not in failed
    assert "无预览图: the decoder ran out of memory" in failed and "无浏览副本: no video stream" in failed
    assert "案件: -" in failed


def test_quick_ranges_are_whole_days_on_the_agencys_calendar():
    today = date(2026, 12, 5)
    assert {name: quick_range(name, today) for name in QUICK_RANGES} == {
        "Today": ("2026-12-05", "2026-12-05"), "Yesterday": ("2026-12-04", "2026-12-04"),
        "Last 7 days": ("2026-11-29", "2026-12-05"), "Last 30 days": ("2026-11-06", "2026-12-05"),
        "This month": ("2026-12-01", "2026-12-05")}
    assert quick_range("Yesterday", date(2027, 1, 1)) == ("2026-12-31", "2026-12-31")
    assert quick_range("This month", date(2026, 12, 1)) == ("2026-12-01", "2026-12-01")
    zone = ZoneInfo("Asia/Shanghai")  # "today" read back is all of it, 00:00 to 24:00 at +08:00
    start, end = (parse_time(v, zone, end=e) for v, e in zip(quick_range("Today", today), (False, True), strict=True))
    assert (start.isoformat(), end.isoformat()) == ("2026-12-05T00:00:00+08:00", "2026-12-05T23:59:59.999999+08:00")


def test_the_quick_ranges_keep_the_other_filters_and_find_the_days_recordings(web_site):
    client, _engine = web_site
    web_login(client, "clerk")
    page = client.get("/", params={"station": "station-1", "page": "1"}).text
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    links = dict((html.unescape(label), html.unescape(href)) for href, label in
                 re.findall(r'<a href="([^"]*)">([^<]*)</a>', page.split('class="quick"')[1].split("</p>")[0]))
    assert links["今天"] == f"/?station=station-1&from={today}&to={today}"  # the other filters kept, page 1
    # the fixture's recordings were captured on 2026-11-20 between 08:01 and 08:04 UTC: that day, at +08:00
    found = client.get("/", params={"from": "2026-11-20", "to": "2026-11-20"}).text
    assert "结果: 3" in found
    assert "结果: 0" in client.get("/", params={"from": "2026-11-21", "to": "2026-11-21"}).text
