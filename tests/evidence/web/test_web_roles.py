"""Every role against every guarded route: each is refused what it must not do, on the server, and the
scopes hold (an officer sees their own recordings, a supervisor their units')."""
from __future__ import annotations

import pytest
from sqlmodel import Session, select

from catalog import CustodyEvent, Recording, get_case, link_recording
from catalog.types import utcnow
from catalog.users import ROLES
from tests.evidence.web.conftest import CASE
from tests.webhelpers import form_token, web_login

#: (label, method, path, form) — the form gets the session's CSRF token added.
ROUTES = [
    ("search page", "GET", "/", None),
    ("search api", "GET", "/api/recordings", None),
    ("recording page", "GET", "/recordings/1", None),
    ("recording api", "GET", "/api/recordings/1", None),
    ("thumbnail", "GET", "/media/1/thumbnail", None),
    ("play", "GET", "/media/1/proxy", None),
    ("photo", "GET", "/media/2/photo", None),
    ("download", "GET", "/media/1/original?reason=复核", None),
    ("stamp", "POST", "/recordings/1/stamp", {"reason": "补充标记", "purpose": "证明现场"}),
    ("cases", "GET", "/cases", None),
    ("case page", "GET", f"/cases/{CASE}", None),
    ("cases api", "GET", "/api/cases", None),
    ("case api", "GET", f"/api/cases/{CASE}", None),
    ("open case", "POST", "/cases", {"number": "AB-2026-00077", "title": "新案", "case_type": "penalty-general"}),
    ("link", "POST", f"/cases/{CASE}/link", {"recordings": "1", "purpose": "证明现场"}),
    ("close case", "POST", f"/cases/{CASE}/close", {}),
    ("export", "POST", f"/cases/{CASE}/export", {}),
    ("retention", "GET", "/retention", None),
    ("propose disposal", "POST", "/retention/sweep", {}),
    ("approve disposal", "POST", "/retention/batches/999/approve", {"confirm": "yes"}),
    ("statistics api", "GET", "/api/statistics", None),
    ("spot checks", "GET", "/spot-checks", None),
    ("draw", "POST", "/spot-checks", {"size": "1"}),
    ("audit", "GET", "/audit", None),
    ("statistics", "GET", "/stats", None),
    ("admin", "GET", "/admin", None),
    ("add user", "POST", "/admin/users", {"name": "new-user", "action": "add", "roles": "clerk"}),
]

#: What each role may do (everything else must be refused with 403).
ALLOWED = {
    "officer": {"search page", "search api", "recording page", "recording api", "thumbnail", "play", "photo",
                "download", "stamp"},
    "clerk": {"search page", "search api", "recording page", "recording api", "thumbnail", "play", "photo",
              "download", "stamp", "cases", "case page", "cases api", "case api", "open case", "link", "close case",
              "export", "statistics", "statistics api", "retention", "propose disposal"},
    "supervisor": {"search page", "search api", "recording page", "recording api", "thumbnail", "play", "photo",
                   "download", "cases", "case page", "cases api", "case api", "export", "spot checks", "draw",
                   "statistics", "statistics api", "retention", "approve disposal"},
    # an auditor may export only what they may download: nothing with originals (recording 3 is in the case)
    "auditor": {"search page", "search api", "recording page", "recording api", "thumbnail", "cases", "case page",
                "cases api", "case api", "audit", "statistics", "statistics api", "retention"},
    "admin": {label for label, *_ in ROUTES},
}


def _call(client, method, path, form, token):
    if method == "GET":
        return client.get(path, follow_redirects=False)
    return client.post(path, data={**form, "csrf": token}, follow_redirects=False)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_refused_what_it_may_not_do(web_site, role):
    client, engine = web_site
    with Session(engine) as session:
        link_recording(session, get_case(session, CASE), session.get(Recording, 3), purpose="证明现场", by="clerk")
        session.commit()
    assert web_login(client, role).status_code == 303
    token = form_token(client.get("/").text)  # every role may search (in its scope)
    wrong = []
    for label, method, path, form in ROUTES:
        response = _call(client, method, path, form, token)
        refused = response.status_code == 403
        if refused == (label in ALLOWED[role]) or response.status_code >= 500 or response.status_code == 401:
            wrong.append((label, response.status_code, response.text[:200]))
    assert wrong == []
    with Session(engine) as session:
        mine = session.exec(select(CustodyEvent.kind).where(CustodyEvent.actor == role)).all()
    assert ("accessed" in mine) == (role in ("officer", "clerk", "supervisor", "admin"))


def test_unsigned_callers_get_401_or_the_sign_in_page(web_site):
    client, _engine = web_site
    for _label, method, path, _form in ROUTES:
        response = client.request(method, path, follow_redirects=False)
        assert response.status_code in (303, 401, 422), (path, response.status_code)  # never the page itself
        if response.status_code == 303:
            assert response.headers["location"] == "/login"


def test_an_officer_sees_and_tags_only_their_own_recordings(web_site):
    client, engine = web_site
    web_login(client, "other-officer")
    page = client.get("/")
    assert "我的音视频记录" in page.text and "R3.video" in page.text and "R1.video" not in page.text
    assert [r["id"] for r in client.get("/api/recordings").json()["recordings"]] == [3]
    assert client.get("/recordings/1").status_code == 403
    assert client.get("/media/1/proxy").status_code == 403
    token = form_token(page.text)
    refused = client.post("/recordings/1/stamp", data={"csrf": token, "reason": "x", "purpose": "y"})
    assert refused.status_code == 403
    tagged = client.post("/recordings/3/stamp", data={"csrf": token, "reason": "补录案件编号", "case_number": CASE,
                                                      "purpose": "证明现场"}, follow_redirects=False)
    assert tagged.status_code == 303
    with Session(engine) as session:
        assert session.get(Recording, 1).stamp_revision == 1
        assert (session.get(Recording, 3).case_number, session.get(Recording, 3).stamp_revision) == (CASE, 2)
        refusals = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused")).all()
    assert {(e.actor, e.recording_id, e.details["action"]) for e in refusals} == {
        ("other-officer", 1, "view"), ("other-officer", 1, "play"), ("other-officer", 1, "stamp")}


def test_a_supervisor_plays_and_draws_only_in_their_units(web_site):
    client, engine = web_site
    web_login(client, "unit-2-supervisor")
    assert [r["id"] for r in client.get("/api/recordings").json()["recordings"]] == [3]
    assert client.get("/recordings/1").status_code == 403 and client.get("/recordings/3").status_code == 200
    token = form_token(client.get("/spot-checks").text)
    other = client.post("/spot-checks", data={"csrf": token, "size": "5", "unit": "U1"})
    assert other.status_code == 403 and "U2" in other.text
    drawn = client.post("/spot-checks", data={"csrf": token, "size": "5"}, follow_redirects=False)
    assert drawn.status_code == 303
    with Session(engine) as session:
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "spot_check_drawn")).one()
    assert event.details["recordings"] == [3] and event.details["criteria"]["unit"] == "U2"


def test_a_recording_missing_from_the_store_is_a_clear_404_and_not_an_access(web_site):
    client, engine = web_site
    with Session(engine) as session:
        ghost = Recording(sha256="f" * 64, size_bytes=10, media_kind="photo", original_name="GHOST.JPG",
                          station_code="station-1", time_source="container", integrity_status="ok",
                          state="archived", ingested_at=utcnow(), officer_number="010203")
        session.add(ghost)
        session.commit()
        ghost_id = ghost.id
    web_login(client, "clerk")
    for path in (f"/media/{ghost_id}/photo", f"/media/{ghost_id}/original?reason=复核"):
        missing = client.get(path)
        assert missing.status_code == 404 and "is not in the store" in missing.json()["error"]
        assert "evidence verify" in missing.json()["error"]
    with Session(engine) as session:
        accesses = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "accessed",
                                                           CustodyEvent.recording_id == ghost_id)).all()
    assert accesses == []


@pytest.mark.parametrize("policy", ["view", "play"])
def test_a_policy_can_ask_for_the_reason_before_viewing_or_playing(web_site, store, policy):
    from fastapi.testclient import TestClient

    from evidence.web import WebConfig, create_app

    _client, engine = web_site
    with TestClient(create_app(WebConfig(engine=engine, store=store, access_reason=policy))) as client:
        web_login(client, "clerk")
        first = client.get("/recordings/2")  # a photo
        if policy == "view":
            assert first.status_code == 200 and 'name="reason"' in first.text and "R2.photo" in first.text
            assert 'id="photo"' not in first.text  # nothing shown before the reason
        else:
            assert 'id="reason-form"' in first.text and 'id="photo"' not in first.text
        assert client.get("/media/2/photo").status_code == 422
        page = client.get("/recordings/2", params={"reason": "行政复议调阅"})
        assert page.status_code == 200 and 'src="/media/2/photo?reason=%E8%A1%8C' in page.text
        assert client.get("/media/2/photo", params={"reason": "行政复议调阅"}).status_code == 200
    with Session(engine) as session:
        events = session.exec(select(CustodyEvent).where(CustodyEvent.recording_id == 2,
                                                         CustodyEvent.actor == "clerk")).all()
    assert {(e.kind, e.details.get("reason")) for e in events} >= {("viewed", "行政复议调阅"),
                                                                   ("accessed", "行政复议调阅")}
    assert all(e.details.get("reason") for e in events if e.kind == "accessed")
