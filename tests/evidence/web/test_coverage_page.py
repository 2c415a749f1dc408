"""The coverage timeline in the browser (/coverage, /coverage.csv, /api/coverage): days on the agency's calendar
(midnight at +08:00), a recording across midnight on both days, an implausible time listed apart and linked, and
who sees whom (a supervisor their units, an officer only themself)."""
from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta, timezone

from sqlmodel import Session, col, select

from catalog.models import CustodyEvent, Officer
from evidence.web.coverage import CSV_HEADER
from tests.helpers.recordings import add_recording
from tests.webhelpers import web_login

CST = timezone(timedelta(hours=8))
WINDOW = "from=2026-11-19&to=2026-11-21"


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=CST)


def _day(engine) -> dict[str, int]:
    """Officer 010203 (unit U1; the fixture's recording 1 at 16:01 on the 20th): one recording from 23:50 on the
    19th to 00:10 on the 20th, one at 00:00-00:05 on the 21st (16:00 UTC on the 20th), two recorders at once on the
    20th, and a file whose recorder said 2000-01-01, docked on the 20th. Officer 050607 in U1 too, named like a
    formula."""
    made: dict[str, int] = {}
    with Session(engine) as session:
        session.add(Officer(number="050607", name="=HYPERLINK(\"x\")", unit_number="U1", unit_name="一中队"))
        for key, start, end, device, extra in (
                ("across", _at(19, 23, 50), _at(20, 0, 10), "A", {}),
                ("next", datetime(2026, 11, 20, 16, 0, tzinfo=UTC), datetime(2026, 11, 20, 16, 5, tzinfo=UTC), "A",
                 {}),
                ("one", _at(20, 8), _at(20, 8, 30), "A", {}),
                ("other", _at(20, 8, 20), _at(20, 8, 40), "B", {}),
                ("clock", datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, 0, 5, tzinfo=UTC), "A",
                 {"time_implausible": True, "ingested_at": _at(20, 10)})):
            recording = add_recording(session, 100 + len(made), captured_start=start, captured_end=end,
                                      device_serial=device, **extra)
            assert recording.id is not None
            made[key] = recording.id
        session.commit()
    return made


def test_the_days_edges_are_midnight_on_the_agencys_clock(web_site):
    client, engine = web_site
    made = _day(engine)
    web_login(client, "supervisor")
    page = client.get(f"/coverage?officer=010203&{WINDOW}&lang=en")
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr data-day="([\d-]+)"[^>]*><td>[\d-]+</td><td>([\d:]+)</td>', page.text))
    # 19th: 23:50-24:00 of the recording across midnight; 21st: 00:00-00:05, though it began on the 20th in UTC
    assert rows == {"2026-11-19": "0:10:00", "2026-11-20": "0:50:30", "2026-11-21": "0:05:00"}
    day = page.text.split('data-day="2026-11-20"')[1].split("</tr>")[0]
    assert "00:10:00–08:00:00 (7:50:00)" in day and "08:40:00–16:01:00" in day  # the gaps
    assert f'08:20:00–08:30:00 <a href="/recordings/{made["one"]}">' in day  # the overlap of the two recorders
    assert f'href="/recordings/{made["other"]}"' in day and 'class="coverage-bar"' in day
    assert "A 0:40:00" in day and "B 0:20:00" in day  # per recorder
    assert 'href="/?officer=010203&amp;from=2026-11-20&amp;to=2026-11-20&amp;sort=captured"' in day
    first = page.text.split('data-day="2026-11-19"')[1].split("</tr>")[0]
    assert "00:10:00" not in first and "0:10:00" in first


def test_a_recording_across_midnight_is_exported_on_both_days_and_the_csv_opens_as_utf8(web_site):
    client, engine = web_site
    made = _day(engine)
    web_login(client, "clerk")
    response = client.get(f"/coverage.csv?unit=U1&{WINDOW}")
    assert response.status_code == 200 and response.content.startswith(b"\xef\xbb\xbf")
    assert "coverage-unit-U1-2026-11-19-2026-11-21.csv" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert tuple(rows[0]) == CSV_HEADER
    across = [r for r in rows if r[9] == str(made["across"])]
    assert [(r[3], r[4], r[5], r[6], r[7]) for r in across] == [
        ("2026-11-19", "recorded", "2026-11-19 23:50:00+08:00", "2026-11-20 00:00:00+08:00", "600"),
        ("2026-11-20", "recorded", "2026-11-20 00:00:00+08:00", "2026-11-20 00:10:00+08:00", "600")]
    assert ["010203", "张三", "U1", "2026-11-20", "overlap", "2026-11-20 08:20:00+08:00", "2026-11-20 08:30:00+08:00",
            "600", "", f"{made['one']} {made['other']}", ""] in rows
    assert ["010203", "张三", "U1", "2000-01-01", "implausible", "2000-01-01 08:00:00+08:00",
            "2000-01-01 08:05:00+08:00", "300", "A", str(made["clock"]), "2026-11-20 10:00:00+08:00"] in rows
    assert any(r[4] == "gap" and r[5] == "2026-11-20 00:10:00+08:00" for r in rows)
    assert {r[1] for r in rows[1:]} == {"张三"}  # 050607 recorded nothing: no row of theirs
    with Session(engine) as session:
        viewed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "viewed")).all()
    assert [(e.actor, e.details["via"], e.details["unit"]) for e in viewed] == [("clerk", "web coverage.csv", "U1")]


def test_a_formula_in_an_officers_name_is_defused_in_the_export(web_site):
    client, engine = web_site
    with Session(engine) as session:
        session.add(Officer(number="050607", name="=HYPERLINK(\"x\")", unit_number="U1", unit_name="一中队"))
        add_recording(session, 100, officer_number="050607", captured_start=_at(20, 9), captured_end=_at(20, 9, 1))
        session.commit()
    web_login(client, "clerk")
    text = client.get(f"/coverage.csv?unit=U1&{WINDOW}").content.decode("utf-8-sig")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_an_implausible_time_is_listed_apart_linked_and_not_counted(web_site):
    client, engine = web_site
    made = _day(engine)
    web_login(client, "officer")
    page = client.get(f"/coverage?{WINDOW}&lang=en")  # an officer's own, without asking
    assert page.status_code == 200
    listed = page.text.split('id="implausible-010203"')[1].split("</table>")[0]
    assert f'<a href="/recordings/{made["clock"]}">#{made["clock"]} clip104.mp4</a>' in listed
    assert "2000-01-01 08:00:00+08:00" in listed and "2026-11-20 10:00:00+08:00" in listed
    api = client.get(f"/api/coverage?{WINDOW}").json()
    [officer] = api["officers"]
    assert officer["number"] == "010203" and [f["recording"] for f in officer["implausible"]] == [made["clock"]]
    assert all(made["clock"] not in p["recordings"] for d in officer["days"] for p in d["by_device"])
    assert sum(d["recorded_s"] for d in officer["days"]) == 600 + 3030 + 300


def test_an_officer_sees_only_themself(web_site):
    client, engine = web_site
    _day(engine)
    web_login(client, "officer")
    page = client.get(f"/coverage?{WINDOW}")
    assert 'id="officer-010203"' in page.text and 'name="unit"' not in page.text
    assert client.get(f"/coverage?officer=030405&{WINDOW}").status_code == 403
    assert client.get(f"/api/coverage?officer=030405&{WINDOW}").status_code == 403
    unit = client.get(f"/api/coverage?unit=U1&{WINDOW}").json()  # their unit: themself, the other left out
    assert [o["number"] for o in unit["officers"]] == ["010203"] and unit["outside_scope"] == 1
    with Session(engine) as session:
        refused = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused")).all()
    assert {(e.actor, e.details["action"], e.details.get("officer")) for e in refused} == {
        ("officer", "coverage", "030405")}


def test_a_supervisor_outside_the_unit_is_refused(web_site):
    client, engine = web_site
    _day(engine)
    web_login(client, "unit-2-supervisor")
    own = client.get(f"/api/coverage?{WINDOW}").json()  # their unit without asking
    assert own["unit"] == "U2" and [o["number"] for o in own["officers"]] == ["030405"]
    refused = client.get(f"/coverage?unit=U1&{WINDOW}&lang=en", headers={"Accept": "text/html"})
    assert refused.status_code == 403 and "unit U1 is outside what unit-2-supervisor may see" in refused.text
    assert client.get(f"/coverage?officer=010203&{WINDOW}").status_code == 403
    assert client.get(f"/coverage.csv?unit=一中队&{WINDOW}").status_code == 403  # by its name
    assert client.get(f"/coverage?unit=二中队&{WINDOW}").status_code == 200
    with Session(engine) as session:
        kinds = col(CustodyEvent.kind).in_(("access_refused", "viewed"))
        events = session.exec(select(CustodyEvent).where(kinds)).all()
    assert sorted((e.kind, e.details.get("unit") or e.details.get("officer")) for e in events) == [
        ("access_refused", "010203"), ("access_refused", "U1"), ("access_refused", "一中队")]


def test_the_query_is_checked_and_the_default_is_the_last_seven_days(web_site):
    client, engine = web_site
    with Session(engine) as session:  # a second unit named 一中队: the name now names neither
        session.add(Officer(number="070809", name="赵六", unit_number="U9", unit_name="一中队"))
        session.commit()
    web_login(client, "clerk")
    page = client.get("/coverage?lang=en")
    assert page.status_code == 200 and 'id="coverage-ask"' in page.text
    today = re.search(r'name="to" type="date" value="([\d-]+)"', page.text)
    first = re.search(r'name="from" type="date" value="([\d-]+)"', page.text)
    assert today and first and (datetime.fromisoformat(today[1]) - datetime.fromisoformat(first[1])).days == 6
    assert client.get("/api/coverage?unit=U1&from=2026-10-01&to=2026-11-30").status_code == 400
    assert client.get("/api/coverage?unit=U1&from=2026-11-30&to=2026-11-01").status_code == 400
    assert client.get("/api/coverage?unit=U1&from=tomorrow").status_code == 400
    assert client.get("/api/coverage?unit=U1&from=9999-12-31&to=9999-12-31").status_code == 400
    assert client.get("/api/coverage?unit=U1&to=0001-01-02").status_code == 400  # 7 days before: no such day
    assert client.get(f"/api/coverage?unit=一中队&{WINDOW}").status_code == 404
    assert [o["number"] for o in client.get(f"/api/coverage?unit=U1&{WINDOW}").json()["officers"]] == ["010203"]
