"""Statistics by period on the agency's calendar, from a unit down to its officers and their recordings, and the
执法数据分析报告 of a quarter as CSV and PDF.

Attacked at the edges an agency's calendar has: a recording at 00:30 on the first day of a quarter in Beijing (the
UTC day before), one at 23:59 on the quarter's last day, a week that spans two years, a custom period backwards
or a decade long, a supervisor of one unit asking for the whole agency's report."""
from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from sqlmodel import Session, col, select

from catalog import CustodyEvent, Officer
from catalog.access import EVERYTHING
from catalog.package_verifier import pdf_text
from catalog.periods import Period, period_of
from catalog.statistics import statistics
from tests.helpers.recordings import add_recording
from tests.webhelpers import add_web_users, web_login

NOW = datetime(2026, 12, 5, tzinfo=UTC)
ZONE = "Asia/Shanghai"


def test_periods_are_whole_calendar_days_of_the_agency():
    assert period_of("week", date(2026, 12, 31)) == Period("week", date(2026, 12, 28), date(2027, 1, 3))
    assert period_of("month", date(2028, 2, 10)) == Period("month", date(2028, 2, 1), date(2028, 2, 29))
    assert period_of("quarter", date(2026, 11, 20)) == Period("quarter", date(2026, 10, 1), date(2026, 12, 31))
    assert period_of("year", date(2026, 5, 1)).label("zh") == "2026年度"
    assert period_of("quarter", date(2026, 11, 20)).label("zh") == "2026年第4季度"
    assert period_of("quarter", date(2026, 11, 20)).label("en") == "2026 Q4"
    assert period_of("week", date(2026, 12, 31)).label("zh") == "2026年第53周（2026-12-28 至 2027-01-03）"
    start, end = period_of("day", date(2026, 10, 1)).bounds(ZONE)
    assert (start, end) == (datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 10, 1, 16, tzinfo=UTC))
    spring = period_of("day", date(2026, 3, 8)).bounds("America/New_York")  # 23 hours long there
    assert spring[1] - spring[0] == datetime(2026, 3, 9, 4, tzinfo=UTC) - datetime(2026, 3, 8, 5, tzinfo=UTC)
    for kind, first, last, says in (("custom", None, date(2026, 1, 1), "first and its last day"),
                                    ("custom", date(2026, 2, 1), date(2026, 1, 1), "before it begins"),
                                    ("custom", date(2010, 1, 1), date(2026, 1, 1), "at most 3660 days"),
                                    ("fortnight", None, None, "a period is one of")):
        with pytest.raises(ValueError, match=says):
            period_of(kind, date(2026, 1, 1), first=first, last=last)


def _archive(engine) -> None:
    """Officer 010203 (unit U1, 一中队) and 030405 (U2, 二中队); recordings at the edges of Q4 2026 in Beijing."""
    with Session(engine) as session:
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
        for n, when, officer, extra in (
                (1, datetime(2026, 9, 30, 16, 30, tzinfo=UTC), "010203", {"case_number": "AB-2026-00042"}),  # 1 Oct
                (2, datetime(2026, 9, 30, 15, 59, tzinfo=UTC), "010203", {}),  # 23:59 on 30 Sep: Q3
                (3, datetime(2026, 12, 31, 15, 59, tzinfo=UTC), "030405", {}),  # 23:59 on 31 Dec: Q4
                (4, datetime(2026, 12, 31, 16, 0, tzinfo=UTC), "030405", {}),  # 00:00 on 1 Jan 2027
                (5, datetime(2026, 11, 20, 2, 0, tzinfo=UTC), "030405", {"duration_s": 7200.0}),
                (6, datetime(2026, 11, 20, 3, 0, tzinfo=UTC), "030405", {"media_kind": "document"})):
            add_recording(session, n, captured_start=when, officer_number=officer, **extra)
        session.commit()


def test_a_quarter_counts_what_was_recorded_in_its_days_and_a_unit_drills_down(engine):
    _archive(engine)
    q4 = period_of("quarter", date(2026, 11, 20))
    with Session(engine) as session:
        quarter = statistics(session, EVERYTHING, now=NOW, zone=ZONE, period=q4)
        unit_2 = statistics(session, EVERYTHING, now=NOW, zone=ZONE, period=q4, unit="二中队")
    assert (quarter["total"], quarter["documents"]) == (3, 1)  # 1, 3 and 5; not 2 (Q3) nor 4 (2027)
    assert {r["key"]: r["count"] for r in quarter["by_day"]} == {"2026-10-01": 1, "2026-11-20": 1, "2026-12-31": 1}
    assert {r["label"]: (r["count"], r["tagged"]) for r in quarter["by_unit"]} == {"一中队": (1, 1),
                                                                                  "二中队": (2, 0)}
    assert quarter["hours"] == 2.0 and quarter["by_day_unit"] == "day"
    assert [r["key"] for r in unit_2["by_officer"]] == ["030405"] and unit_2["unit"] == "二中队"
    assert unit_2["by_officer"][0]["hours"] == 2.0 and unit_2["period"] == q4.as_json()


@pytest.fixture
def client(engine, store):
    from fastapi.testclient import TestClient

    from evidence.web import WebConfig, create_app

    _archive(engine)
    add_web_users(engine, {"supervisor:王": "supervisor", "supervisor:二中队": "supervisor"},
                  units={"supervisor:二中队": ["U2"]})
    with TestClient(create_app(WebConfig(engine=engine, store=store, zone=ZONE))) as client:
        yield client


def test_the_page_drills_from_a_unit_to_its_officers_recordings(client):
    web_login(client, "supervisor:王")
    page = client.get("/stats", params={"period": "quarter", "on": "2026-11-20"}).text
    assert "2026年第4季度" in page and 'id="total">3<' in page
    assert 'href="/stats?from=&amp;on=2026-11-20&amp;period=quarter&amp;to=&amp;unit=U2">二中队<' in page
    unit = client.get("/stats", params={"period": "quarter", "on": "2026-11-20", "unit": "U2"}).text  # its officers
    assert 'href="/?officer=030405&amp;from=2026-10-01&amp;to=2026-12-31"' in unit  # ... and theirs, the recordings
    assert "010203" not in unit
    assert client.get("/stats", params={"period": "custom", "from": "2026-12-01", "to": "2026-11-01"}
                      ).status_code == 400
    assert client.get("/api/statistics", params={"period": "day", "on": "2026-10-01"}).json()["total"] == 1
    for edge in ("9999-12-31", "0001-01-01"):  # no instants bound a day at the calendar's end: a 400, never a 500
        for kind in ("day", "week", "year"):
            answer = client.get("/stats", params={"period": kind, "on": edge})
            assert answer.status_code == 400 and "calendar" in answer.text, (kind, edge, answer.status_code)
    decade = client.get("/api/statistics", params={"period": "custom", "from": "2020-01-01", "to": "2029-12-31"})
    assert decade.json()["by_day_unit"] == "month"
    assert {r["key"]: r["count"] for r in decade.json()["by_day"]} == {"2026-10": 1, "2026-11": 1, "2026-12": 1,
                                                                      "2026-09": 1, "2027-01": 1}


def test_a_period_refused_is_said_in_the_pages_language(client):
    """A period the statistics page cannot count is refused in the reader's language (Chinese by default), as the
    API and ?lang=en say it in English."""
    web_login(client, "supervisor:王")
    backwards = {"period": "custom", "from": "2026-12-01", "to": "2026-11-01"}
    page = client.get("/stats", params=backwards, headers={"accept": "text/html"})
    assert page.status_code == 400 and "统计期间的结束日期（2026-11-01）早于开始日期（2026-12-01）" in page.text
    assert "before it begins" not in page.text
    unknown = client.get("/stats", params={"period": "fortnight"}, headers={"accept": "text/html"})
    assert unknown.status_code == 400 and "统计期间须为 day, week, month, quarter, year, custom 之一，不能是 " \
        "&#39;fortnight&#39;" in unknown.text
    edge = client.get("/stats", params={"period": "day", "on": "9999-12-31"}, headers={"accept": "text/html"})
    assert edge.status_code == 400 and "无法按 &#39;9999-12-31&#39; 计算统计期间" in edge.text
    english = client.get("/stats", params={**backwards, "lang": "en"}, headers={"accept": "text/html"})
    assert english.status_code == 400 and "the period ends (2026-11-01) before it begins (2026-12-01)" in english.text
    api = client.get("/api/statistics", params=backwards)
    assert api.status_code == 400 and api.json() == {"error": "the period ends (2026-11-01) before it begins "
                                                              "(2026-12-01)"}


def test_the_quarterly_report_is_a_csv_and_a_pdf_of_the_callers_scope(client, engine):
    web_login(client, "supervisor:王")
    as_csv = client.get("/stats/report.csv", params={"on": "2026-11-20"})  # a quarter unless asked otherwise
    assert as_csv.status_code == 200 and as_csv.text.startswith("\ufeff")
    assert 'filename="enforcement-report-2026-10-01-2026-12-31.csv"' in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.text.lstrip("\ufeff"))))
    assert rows[1] == ["title", "执法数据分析报告（2026年第4季度）", "", "", "", ""]
    assert {r[1]: r[2] for r in rows if r[0] == "by_unit"} == {"一中队": "1", "二中队": "2"}
    assert ["overview", "音视频记录", "3", "", "", ""] in rows and ["overview", "文字记录", "1", "", "", ""] in rows
    as_pdf = client.get("/stats/report.pdf", params={"on": "2026-11-20"})
    assert as_pdf.status_code == 200 and as_pdf.content.startswith(b"%PDF")
    text = pdf_text(as_pdf.content)
    for shown in ("执法数据分析报告", "2026年第4季度", "一中队", "二中队", "030405", "双随机抽查"):
        assert shown in text, shown
    client.cookies.clear()
    web_login(client, "supervisor:二中队")  # one unit's supervisor: the report of their unit alone
    theirs = list(csv.reader(io.StringIO(client.get("/stats/report.csv", params={"on": "2026-11-20"})
                                         .text.lstrip("\ufeff"))))
    assert {r[1] for r in theirs if r[0] == "by_unit"} == {"二中队"} and "010203" not in str(theirs)
    with Session(engine) as session:
        asked = [e for e in session.exec(select(CustodyEvent).where(CustodyEvent.kind == "viewed")
                                         .order_by(col(CustodyEvent.id))) if e.details.get("report")]
    assert [(e.actor, e.details["via"], e.details["scope"]) for e in asked] == [
        ("supervisor:王", "web report.csv", "the whole archive"),
        ("supervisor:王", "web report.pdf", "the whole archive"),
        ("supervisor:二中队", "web report.csv", "unit U2")]
