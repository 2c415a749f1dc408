"""双随机 spot checks: reproducible draws, filters by unit/officer/period/kind, recorded outcomes, the web pages."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from catalog import CustodyEvent, Officer, Recording
from catalog.access import EVERYTHING, scope_for
from catalog.models import SpotCheckItem
from catalog.spotcheck import (
    SpotCheckCriteria,
    SpotCheckError,
    SpotCheckRefused,
    draw,
    new_spot_check,
    population,
    record_outcome,
)
from catalog.types import utcnow
from evidence.web import WebConfig, create_app
from tests.webhelpers import add_web_users, form_token, web_login

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_the_same_seed_draws_the_same_sample_whatever_the_order():
    ids = list(range(1, 1001))
    first = draw(ids, 50, "seed-2026-11")
    assert first == draw(list(reversed(ids)), 50, "seed-2026-11")
    assert len(first) == 50 and len(set(first)) == 50 and set(first) <= set(ids)
    assert draw(ids, 50, "another seed") != first
    assert draw([3, 1, 2], 10, "x") == [1, 2, 3]


@pytest.fixture
def archive(engine):
    with Session(engine) as session:
        session.add_all([Officer(number="010203", name="张三", unit_number="U1", unit_name="朝阳大队"),
                         Officer(number="040506", name="李四", unit_number="U2", unit_name="海淀大队")])
        for n in range(40):
            session.add(Recording(sha256=f"{n:064x}", size_bytes=10, media_kind="video" if n % 4 else "photo",
                                  original_name=f"{n}.mp4", station_code="s", time_source="container",
                                  captured_start=T0 + timedelta(days=n % 20), integrity_status="ok",
                                  state="archived", ingested_at=T0, officer_number="010203" if n < 30 else "040506"))
        session.commit()
    add_web_users(engine, {"supervisor:赵": "supervisor"})  # whom a draw by anyone else takes as its reviewer
    return engine


def test_filters_and_a_recorded_reproducible_draw(archive):
    with Session(archive) as session:
        unit = population(session, SpotCheckCriteria(unit="朝阳大队"))
        assert len(unit) == 30
        window = SpotCheckCriteria(unit="U1", kind="video", start=T0, end=T0 + timedelta(days=10))
        check = new_spot_check(session, window, 5, by="supervisor:王", now=utcnow())
        ids = [i.recording_id for i in session.exec(select(SpotCheckItem).where(SpotCheckItem.check_id == check.id))]
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "spot_check_drawn")).one()
        assert event.details["seed"] == check.seed and event.details["recordings"] == sorted(ids)
        # An auditor redraws from what was recorded and gets the same recordings.
        assert draw(population(session, window), 5, event.details["seed"]) == sorted(ids)
        with pytest.raises(SpotCheckError, match="no archived enforcement recording matches"):
            new_spot_check(session, SpotCheckCriteria(officer="999999"), 5, by="x", now=utcnow())
        with pytest.raises(SpotCheckError, match="1 to 500"):
            new_spot_check(session, window, 0, by="x", now=utcnow())


def test_outcomes_are_recorded_and_an_issue_needs_notes(archive):
    with Session(archive) as session:
        check = new_spot_check(session, SpotCheckCriteria(), 3, by="supervisor:王", now=utcnow(), seed="fixed")
        item = session.exec(select(SpotCheckItem).where(SpotCheckItem.check_id == check.id)).first()
        assert item is not None and item.id is not None
        with pytest.raises(SpotCheckError, match="describe the issue"):
            record_outcome(session, item.id, outcome="issue", notes=" ", by="supervisor:赵", now=utcnow(),
                           scope=EVERYTHING)
        with pytest.raises(SpotCheckError, match="outcome must be one of"):
            record_outcome(session, item.id, outcome="fine", notes="", by="supervisor:赵", now=utcnow(),
                           scope=EVERYTHING)
        with pytest.raises(SpotCheckRefused, match="supervisor:王 is not one of them"):  # who drew it
            record_outcome(session, item.id, outcome="issue", notes="未佩戴执法证", by="supervisor:王", now=utcnow(),
                           scope=EVERYTHING)
        record_outcome(session, item.id, outcome="issue", notes="未佩戴执法证", by="supervisor:赵", now=utcnow(),
                       scope=EVERYTHING)
        reviewed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "reviewed")).one()
        assert (reviewed.recording_id, reviewed.details["outcome"]) == (item.recording_id, "issue")


def _refused_then_shown(client: TestClient, url: str, *, refused: str, shown: str) -> Any:
    """*url* is refused (403) to user *refused*, then shown to user *shown*, each signed in in turn on the same
    browser: the page *shown* gets."""
    web_login(client, refused)
    assert client.get(url).status_code == 403
    client.cookies.clear()
    web_login(client, shown)
    page = client.get(url)
    assert page.status_code == 200
    return page


def test_supervisors_run_spot_checks_in_the_browser(archive, store):
    """双随机: the sample and its reviewer are both drawn; the one who draws may not review."""
    add_web_users(archive, {"supervisor:王": "supervisor", "clerk:李四": "clerk"})
    with TestClient(create_app(WebConfig(engine=archive, store=store))) as client:
        page = _refused_then_shown(client, "/spot-checks", refused="clerk:李四", shown="supervisor:王")
        assert "双随机抽查" in page.text
        csrf = form_token(page.text)
        bad = client.post("/spot-checks", data={"csrf": csrf, "size": "5", "start": "last week"})
        assert bad.status_code == 400 and "不是有效时间（例如 2026-11-20、2026/11/20 08:30" in bad.text
        assert 'value="last week"' in bad.text  # the form keeps what was typed
        crowded = client.post("/spot-checks", data={"csrf": csrf, "size": "4", "unit": "U2", "reviewers": "2"})
        assert crowded.status_code == 400 and "需要 2 名检查人员，但人员库中只有 1 人可复核本次样本" in crowded.text
        drawn = client.post("/spot-checks", data={"csrf": csrf, "size": "4", "unit": "U2", "reviewers": "1"},
                            follow_redirects=False)
        assert drawn.status_code == 303
        check_page = client.get(drawn.headers["location"])
        assert check_page.status_code == 200 and 'name="outcome"' not in check_page.text  # 王 drew: no review
        assert "supervisor:赵" in check_page.text and "已复核 0 / 4" in check_page.text
        item_action = re.search(r'action="(/spot-checks/\d+/items/\d+)"', client.get(
            drawn.headers["location"]).text)
        assert item_action is None
        client.cookies.clear()
        web_login(client, "supervisor:赵")
        check_page = client.get(drawn.headers["location"])
        assert check_page.text.count('name="outcome"') == 4
        item_action = re.search(r'action="(/spot-checks/\d+/items/\d+)"', check_page.text)
        assert item_action is not None
        csrf = form_token(check_page.text)
        done = client.post(item_action.group(1), data={"csrf": csrf, "outcome": "compliant"}, follow_redirects=False)
        assert done.status_code == 303
        assert "合规 (supervisor:赵)" in client.get(drawn.headers["location"]).text


def test_statistics_page_counts_what_the_catalogue_holds(archive, store):
    from evidence.web.stats import statistics

    with Session(archive) as session:
        figures = statistics(session)
        assert figures["total"] == 40 and figures["pending_archive"] == 0
        assert {r["key"]: r["count"] for r in figures["by_officer"]} == {"010203": 30, "040506": 10}
        assert {r["label"]: r["count"] for r in figures["by_unit"]} == {"朝阳大队": 30, "海淀大队": 10}
        assert len(figures["by_day"]) == 20 and figures["integrity"] == {"ok": 40}
        haidian = statistics(session, scope_for(roles=["supervisor"], officer_number=None, units=["海淀大队"]))
        assert haidian["total"] == 10 and [r["key"] for r in haidian["by_unit"]] == ["U2"]
    add_web_users(archive, {"supervisor:王": "supervisor", "officer:张三": "officer", "supervisor:海淀": "supervisor"},
                  units={"supervisor:海淀": ["海淀大队"]})
    with TestClient(create_app(WebConfig(engine=archive, store=store))) as client:
        page = _refused_then_shown(client, "/stats", refused="officer:张三", shown="supervisor:王")
        assert "各执法人员记录数" in page.text and page.text.count("<svg") == 4  # units and officers: tables too
        assert 'id="officers"' in page.text and 'id="units"' in page.text
        assert "朝阳大队" in page.text
        client.cookies.clear()
        web_login(client, "supervisor:海淀")
        own = client.get("/api/statistics").json()
        assert own["total"] == 10 and own["scope"] == "unit 海淀大队"


def test_a_supervisor_of_other_units_learns_nothing_of_a_checks_items(archive, store):
    """Reviewing an item of a check outside the caller's units is refused before the item is looked up: the
    answer is the same 403 whether the item belongs to that check, to another one, or to none."""
    with Session(archive) as session:
        theirs = new_spot_check(session, SpotCheckCriteria(unit="U1"), 3, by="supervisor:王", now=utcnow(), seed="a")
        mine = new_spot_check(session, SpotCheckCriteria(unit="U2"), 2, by="supervisor:海淀", now=utcnow(), seed="b")
        their_item = session.exec(select(SpotCheckItem).where(SpotCheckItem.check_id == theirs.id)).first()
        my_item = session.exec(select(SpotCheckItem).where(SpotCheckItem.check_id == mine.id)).first()
        assert their_item is not None and my_item is not None
        their_check, mine_check, their_id, my_id = theirs.id, mine.id, their_item.id, my_item.id
    add_web_users(archive, {"supervisor:海淀": "supervisor"}, units={"supervisor:海淀": ["U2"]})
    with TestClient(create_app(WebConfig(engine=archive, store=store))) as client:
        web_login(client, "supervisor:海淀")
        csrf = form_token(client.get("/spot-checks").text)
        answers = []
        for item in (their_id, my_id, 99999999):
            answer = client.post(f"/spot-checks/{their_check}/items/{item}",
                                 data={"csrf": csrf, "outcome": "compliant"}, follow_redirects=False)
            answers.append(answer.status_code)
            assert f"抽查 {their_check}（抽取自 U1）超出 supervisor:海淀 可复核的范围" in answer.text
            assert "no item" not in answer.text and "中没有第" not in answer.text
        assert answers == [403, 403, 403]
        # In their own check, an item of another check is simply not there.
        foreign = client.post(f"/spot-checks/{mine_check}/items/{their_id}", data={"csrf": csrf,
                                                                                 "outcome": "compliant"})
        assert foreign.status_code == 404 and f"no item {their_id} in spot check {mine_check}" in foreign.text
        assert client.post(f"/spot-checks/99999999/items/{my_id}", data={"csrf": csrf, "outcome": "compliant"}
                           ).status_code == 404
    with Session(archive) as session:
        refused = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused")).all()
        assert [e.details["check"] for e in refused] == [their_check] * 3
        their_item, my_item = session.get(SpotCheckItem, their_id), session.get(SpotCheckItem, my_id)
        assert their_item is not None and my_item is not None
        assert (their_item.reviewed_by, my_item.reviewed_by) == (None, None)
