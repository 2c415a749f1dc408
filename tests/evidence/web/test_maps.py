"""The maps (evidence.web.maps, static/map.js): where tiles may come from (EVIDENCE_MAP_TILES, checked at start and
named in the pages' policy), what a point carries, and that a case's map shows only what its reader may see."""
from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from catalog import Recording
from catalog.cases import get_case, link_recording
from catalog.search import Near
from evidence.web import WebConfig, create_app
from evidence.web.app import security_headers, tile_origin
from evidence.web.maps import MapPoint, map_context
from ingest.errors import ConfigInvalid
from ingest.settings_parsers import tile_url
from tests.evidence.web.conftest import CASE
from tests.webhelpers import web_login


@pytest.mark.parametrize("good", ["https://tiles.example.gov.cn/{z}/{x}/{y}.png", "/tiles/{z}/{x}/{y}.png",
                                  "https://{s}.tiles.example.gov.cn/{z}/{x}/{y}{r}.png",
                                  "http://10.0.0.5:8080/wmts/{z}/{y}/{x}", ""])
def test_an_agencys_tile_address_is_taken(good):
    assert tile_url("EVIDENCE_MAP_TILES", good) == good


@pytest.mark.parametrize(("bad", "said"), [
    ("https://{s}.com/{z}/{x}/{y}.png", "two labels or more"),  # *.com: every server under .com
    ("/{r}/evil.example/{z}/{x}/{y}.png", "another server's address"),  # {r} empty: //evil.example/…
    ("http://t.example:99999/{z}/{x}/{y}.png", "from 1 to 65535"),
    ("https://瓦片.公安.cn/{z}/{x}/{y}.png", "punycode"),
    ("javascript:alert(1)//{z}/{x}/{y}", "Expected an http(s) URL"),
    ("//evil.example/{z}/{x}/{y}.png", "Expected an http(s) URL"),  # protocol-relative: anyone's server
    ("https://t.example/{z}/{x}/{y}.png; script-src *", "Expected an http(s) URL"),  # a policy header broken into
    ("https://t.example/{z}/{x}/{y}.png'", "Expected an http(s) URL"),
    ("https://t.example/{z}/{x}.png", "needs {y}"),
    ("https://t.example/{z}/{x}/{y}/{token}.png", "not {token}"),
    ("ftp://t.example/{z}/{x}/{y}.png", "Expected an http(s) URL"),
])
def test_a_tile_address_that_could_break_a_page_or_its_policy_stops_the_start(bad, said):
    with pytest.raises(ConfigInvalid) as refused:
        tile_url("EVIDENCE_MAP_TILES", bad)
    assert "EVIDENCE_MAP_TILES" in str(refused.value) and said in str(refused.value)


def test_an_app_made_in_code_with_a_tile_address_that_breaks_the_policy_does_not_start(engine, store):
    with pytest.raises(ConfigInvalid):
        create_app(WebConfig(engine=engine, store=store, map_tiles="https://t.example;script-src *;/{z}/{x}/{y}"))


def test_a_row_with_a_latitude_and_no_longitude_is_left_off_the_map_not_a_failed_page(web_site):
    """A catalogue row edited behind the archive's back (its longitude set to NULL): the search page still lists
    it, and the map leaves it off (found by a review: a 500)."""
    client, engine = web_site
    with Session(engine) as session:
        session.execute(text("UPDATE recording SET lat = 31.2, lon = NULL WHERE id = 1"))
        session.execute(text("UPDATE recording SET lat = 31.3, lon = 121.5 WHERE id = 3"))
        session.commit()
    web_login(client, "clerk")
    page = client.get("/")
    assert page.status_code == 200 and [p["id"] for p in _points(page.text)] == [3]
    assert map_context("", "", [MapPoint(1, float("nan"), 1.0, "a", ""), MapPoint(2, 1.0, None, "b", "")])[
        "points"] == []


def test_the_policy_names_the_tile_server_and_nothing_else():
    assert tile_origin("") == tile_origin("/tiles/{z}/{x}/{y}.png") == ""  # none, or this server's own
    assert tile_origin("https://{s}.tiles.example.gov.cn/{z}/{x}/{y}.png") == " https://*.tiles.example.gov.cn"
    policy = security_headers("http://10.0.0.5:8080/wmts/{z}/{y}/{x}")["Content-Security-Policy"]
    assert "img-src 'self' data: http://10.0.0.5:8080;" in policy
    assert "script-src 'self';" in policy and "10.0.0.5" not in policy.split("img-src")[0]


def test_a_point_with_an_impossible_place_is_left_off_and_a_circle_opens_the_map():
    shown = map_context("", "", [MapPoint(1, 31.2, 121.4, "a.mp4", "2026-11-20 10:00:00 +08:00"),
                                 MapPoint(2, 91.0, 121.4, "b.mp4", ""), MapPoint(3, 31.2, 181.0, "c.mp4", "")])
    assert [p["id"] for p in shown["points"]] == [1] and shown["points"][0]["href"] == "/recordings/1"
    assert not shown["open"] and shown["near"] is None
    assert map_context("", "", [], near=Near(31.2, 121.4, 500.0))["open"]


def _points(text: str) -> list[dict[str, Any]]:
    found = re.search(r'id="map"[^>]*data-points="([^"]*)"', text)
    assert found is not None
    points: list[dict[str, Any]] = json.loads(html.unescape(found.group(1)))
    return points


def test_a_case_map_shows_only_the_readers_own_points_and_the_policy_lets_the_tiles_in(engine, store, web_site):
    """Recording 1 (unit U1) and 3 (unit U2), both with places, in one case: the supervisor of U2 sees point 3
    only, the clerk both; a server with tiles names their origin in every answer's policy."""
    client, _engine = web_site
    with Session(engine) as session:
        for rid, (lat, lon) in {1: (31.2304, 121.4737), 3: (31.2404, 121.4837)}.items():
            recording = session.get(Recording, rid)
            assert recording is not None
            recording.lat, recording.lon = lat, lon
            session.add(recording)
            link_recording(session, get_case(session, CASE), recording, by="clerk", purpose="证明现场")
        session.commit()
    web_login(client, "clerk")
    page = client.get(f"/cases/{CASE}")
    assert sorted(p["id"] for p in _points(page.text)) == [1, 3]
    client.cookies.clear()
    web_login(client, "unit-2-supervisor")
    page = client.get(f"/cases/{CASE}")
    assert [p["id"] for p in _points(page.text)] == [3]
    assert "121.4737" not in page.text  # the other unit's place is not in the page at all
    tiles = "https://{s}.tiles.example.gov.cn/{z}/{x}/{y}.png"
    with TestClient(create_app(WebConfig(engine=engine, store=store, map_tiles=tiles))) as other:
        for answer in (other.get("/login"), other.get("/health"), other.get("/no/such")):
            assert "img-src 'self' data: https://*.tiles.example.gov.cn;" in answer.headers["content-security-policy"]
