"""Every role against every guarded route: each is refused what it must not do, on the server, and the
scopes hold (an officer sees their own recordings, a supervisor their units')."""
from __future__ import annotations

import re
from itertools import count

import pytest
from sqlmodel import Session, select

from catalog import CustodyEvent, Recording, get_case, link_recording
from catalog.spotcheck import SpotCheckCriteria, new_spot_check
from catalog.spotcheck_team import draw_names, reviewer_seed
from catalog.types import utcnow
from catalog.users import ROLES, set_roles
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
    ("photo", "GET", "/media/2/photo?reason=复核", None),
    ("download", "GET", "/media/1/original?reason=复核", None),
    ("stamp", "POST", "/recordings/1/stamp", {"reason": "补充标记", "purpose": "证明现场"}),
    ("redact", "POST", "/recordings/1/redactions", {"boxes": "0,0,16,16", "reason": "公示前遮蔽"}),
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
    ("draw", "POST", "/spot-checks", {"size": "1", "reviewers": "1"}),
    ("audit", "GET", "/audit", None),
    ("statistics", "GET", "/stats", None),
    ("statistics report", "GET", "/stats/report.csv", None),
    ("admin", "GET", "/admin", None),
    ("add user", "POST", "/admin/users", {"name": "new-user", "action": "add", "roles": "clerk"}),
    ("snapshot", "POST", "/recordings/1/snapshot", {"case": CASE, "at": "0", "reason": "固定画面"}),
    # last: a class raised here changes what later reads of these recordings may do
    ("classify", "POST", "/recordings/1/class", {"sensitivity": "personal", "reason": "含个人信息"}),
    ("classify case", "POST", f"/cases/{CASE}/class", {"sensitivity": "personal", "reason": "涉及隐私"}),
    ("grant", "POST", f"/cases/{CASE}/grants", {"user": "clerk", "reason": "办案需要"}),
]

#: What each role may do (everything else must be refused with 403).
ALLOWED = {
    "officer": {"search page", "search api", "recording page", "recording api", "thumbnail", "play", "photo",
                "download", "stamp"},
    "clerk": {"search page", "search api", "recording page", "recording api", "thumbnail", "play", "photo",
              "download", "stamp", "cases", "case page", "cases api", "case api", "open case", "link", "close case",
              "export", "statistics", "statistics report", "statistics api", "retention", "propose disposal",
              "classify", "classify case", "redact", "snapshot"},
    "supervisor": {"search page", "search api", "recording page", "recording api", "thumbnail", "play", "photo",
                   "download", "cases", "case page", "cases api", "case api", "export", "spot checks", "draw",
                   "statistics", "statistics report", "statistics api", "retention", "approve disposal", "classify",
                   "classify case", "redact", "grant"},
    # an auditor may export only what they may download: nothing with originals (recording 3 is in the case)
    "reviewer": {"search page", "search api", "recording page", "recording api", "thumbnail", "play", "photo",
                 "download", "cases", "case page", "cases api", "case api"},
    "auditor": {"search page", "search api", "recording page", "recording api", "thumbnail", "cases", "case page",
                "cases api", "case api", "audit", "statistics", "statistics report", "statistics api", "retention"},
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
        recording = session.get(Recording, 3)
        assert recording is not None
        link_recording(session, get_case(session, CASE), recording, purpose="证明现场", by="clerk")
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
    assert ("accessed" in mine) == (role in ("officer", "clerk", "supervisor", "admin", "reviewer"))


#: Routes anyone may call: signing in, signing out (without a session it only sends you to sign in), liveness.
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/health"),
          ("GET", "/static"),  # the pages' scripts (a mount of files shipped in the package)
          # a release shared with a recipient who has no account: the link's token and one-time code (catalog.shares)
          ("GET", "/share/{token}"), ("POST", "/share/{token}"), ("GET", "/share/{token}/items/{recording_id}")}

PAGE, API = "page", "api"  # how each route refuses an unsigned caller: the sign-in page, or 401
#: Every guarded route of the app: (method, path as the app declares it) -> (a path to call, the form to post,
#: files to upload, how it refuses). Each request is valid in every respect but the caller's: a signed-in
#: administrator gets no refusal and no 422 with it (test_every_guarded_request_is_otherwise_valid).
GUARDED = {
    ("GET", "/"): ("/", None, None, PAGE),
    ("GET", "/api/recordings"): ("/api/recordings?sort=captured", None, None, API),
    ("POST", "/saved-searches"): ("/saved-searches", {"name": "本案录像", "query": f"case={CASE}"}, None, PAGE),
    ("POST", "/saved-searches/{saved_id}/delete"): ("/saved-searches/1/delete", {}, None, PAGE),
    ("GET", "/api/saved-searches"): ("/api/saved-searches", None, None, API),
    ("GET", "/media/{ref}/thumbnail"): ("/media/1/thumbnail", None, None, API),
    ("GET", "/media/{ref}/proxy"): ("/media/1/proxy", None, None, API),
    ("GET", "/media/{ref}/proxy.mp4"): ("/media/1/proxy.mp4", None, None, API),
    ("GET", "/media/{ref}/photo"): ("/media/2/photo?reason=复核", None, None, API),
    ("GET", "/media/{ref}/original"): ("/media/1/original?reason=复核", None, None, API),
    ("GET", "/recordings/{ref}"): ("/recordings/1", None, None, PAGE),
    ("POST", "/recordings/{ref}/stamp"): ("/recordings/1/stamp", {"reason": "补充标记", "purpose": "证明现场"}, None,
                                          PAGE),
    ("GET", "/api/recordings/{ref}"): ("/api/recordings/1", None, None, API),
    ("POST", "/recordings/bulk"): ("/recordings/bulk", {"action": "tag", "ids": ["1"], "purpose": "证明现场",
                                                        "reason": "补充标记"}, None, PAGE),
    ("POST", "/recordings/{ref}/redactions"): ("/recordings/1/redactions", {"boxes": "0,0,16,16", "reason": "公示"},
                                               None, PAGE),
    ("POST", "/api/recordings/{ref}/redactions"): ("/api/recordings/1/redactions",
                                                   {"boxes": ["0,0,16,16"], "reason": "公示"}, None, API),
    ("GET", "/redactions/{job_id}"): ("/redactions/1", None, None, PAGE),
    ("GET", "/api/redactions/{job_id}"): ("/api/redactions/1", None, None, API),
    ("GET", "/case-actions"): (f"/case-actions?case={CASE}", None, None, PAGE),
    ("POST", "/case-actions"): ("/case-actions", {"case": CASE, "action_type": "questioning",
                                                  "start": "2026-11-20 16:01", "end": "2026-11-20 16:02"}, None, PAGE),
    ("POST", "/case-actions/import"): ("/case-actions/import", {"case": CASE},
                                       [("file", ("x.csv", "事项类型,开始时间,结束时间\n询问,2026-11-20 17:00:00+08:00,"
                                                            "2026-11-20 17:10:00+08:00\n".encode(), "text/csv"))],
                                       PAGE),
    ("GET", "/api/case-actions"): (f"/api/case-actions?case={CASE}", None, None, API),
    ("GET", "/checklist"): ("/checklist", None, None, PAGE),
    ("GET", "/checklist.csv"): ("/checklist.csv", None, None, PAGE),
    ("GET", "/api/checklist"): ("/api/checklist", None, None, API),
    ("GET", "/devices"): ("/devices", None, None, PAGE),
    ("GET", "/api/devices"): ("/api/devices", None, None, API),
    ("GET", "/coverage"): ("/coverage?unit=U1", None, None, PAGE),
    ("GET", "/coverage.csv"): ("/coverage.csv?unit=U1", None, None, PAGE),
    ("GET", "/api/coverage"): ("/api/coverage?unit=U1", None, None, API),
    ("GET", "/cases"): ("/cases", None, None, PAGE),
    ("POST", "/cases"): ("/cases", {"number": "AB-2026-00077", "title": "新案", "case_type": "penalty-general"},
                         None, PAGE),
    ("GET", "/cases/{number:path}"): (f"/cases/{CASE}", None, None, PAGE),
    ("POST", "/cases/{number:path}/link"): (f"/cases/{CASE}/link", {"recordings": "1", "purpose": "证明现场"}, None,
                                            PAGE),
    ("POST", "/recordings/{ref}/link"): ("/recordings/2/link", {"case": CASE, "purpose": "证明现场"}, None, PAGE),
    ("POST", "/recordings/{ref}/snapshot"): ("/recordings/1/snapshot", {"case": CASE, "at": "0", "reason": "固定画面"},
                                             None, PAGE),
    ("POST", "/cases/{number:path}/documents"): (f"/cases/{CASE}/documents", {"title": "询问笔录", "dated": ""},
                                                 [("files", ("note.txt", "询问笔录".encode(), "text/plain"))], PAGE),
    ("POST", "/cases/{number:path}/unlink"): (f"/cases/{CASE}/unlink", {"recording": "1", "reason": "误关联"}, None,
                                              PAGE),
    ("POST", "/cases/{number:path}/export"): (f"/cases/{CASE}/export", {"reason": "移送"}, None, PAGE),
    ("POST", "/cases/{number:path}/close"): (f"/cases/{CASE}/close", {"closed_on": "", "confirm": ""}, None, PAGE),
    ("POST", "/cases/{number:path}/reopen"): (f"/cases/{CASE}/reopen", {"reason": "复议"}, None, PAGE),
    ("GET", "/api/cases"): ("/api/cases", None, None, API),
    ("GET", "/api/cases/{number:path}"): (f"/api/cases/{CASE}", None, None, API),
    ("GET", "/retention"): ("/retention", None, None, PAGE),
    ("POST", "/retention/sweep"): ("/retention/sweep", {}, None, PAGE),
    ("POST", "/retention/batches/{batch_id}/approve"): ("/retention/batches/1/approve", {"confirm": "yes"}, None,
                                                         PAGE),
    ("GET", "/releases"): ("/releases", None, None, PAGE),
    ("POST", "/releases"): ("/releases", {"kind": "transfer", "title": "证据移送", "recipient": "区检察院",
                                          "legal_basis": "刑事诉讼法", "reason": "移送", "recordings": "1"}, None,
                            PAGE),
    ("GET", "/releases/{number}"): ("/releases/1", None, None, PAGE),
    ("POST", "/releases/{number}/decide"): ("/releases/1/decide", {"decision": "approve", "note": "同意"}, None, PAGE),
    ("POST", "/releases/{number}/shares"): ("/releases/1/shares", {"recipient": "王检察官", "days": "7"}, None, PAGE),
    ("POST", "/releases/{number}/shares/{link}/revoke"): ("/releases/1/shares/1/revoke", {"reason": "改期"}, None,
                                                          PAGE),
    ("POST", "/releases/{number}/package"): ("/releases/1/package", {}, None, PAGE),
    ("POST", "/releases/{number}/withdraw"): ("/releases/1/withdraw", {"reason": "撤回"}, None, PAGE),
    ("GET", "/spot-checks"): ("/spot-checks", None, None, PAGE),
    ("POST", "/spot-checks"): ("/spot-checks", {"size": "1", "reviewers": "1"}, None, PAGE),
    ("POST", "/spot-checks/{check_id}/sign-off"): ("/spot-checks/1/sign-off", {}, None, PAGE),
    ("GET", "/spot-checks/{check_id}/summary.{fmt}"): ("/spot-checks/1/summary.json", None, None, PAGE),
    ("GET", "/spot-checks/{check_id}"): ("/spot-checks/1", None, None, PAGE),
    ("POST", "/spot-checks/{check_id}/items/{item_id}"): ("/spot-checks/1/items/1",
                                                          {"outcome": "compliant", "notes": "无异常"}, None, PAGE),
    ("GET", "/audit"): ("/audit?log=access", None, None, PAGE),
    ("GET", "/audit.csv"): ("/audit.csv?log=access", None, None, PAGE),
    ("GET", "/stats"): ("/stats", None, None, PAGE),
    ("GET", "/stats/report.{fmt}"): ("/stats/report.csv?period=quarter", None, None, PAGE),
    ("GET", "/api/statistics"): ("/api/statistics", None, None, API),
    ("GET", "/admin"): ("/admin", None, None, PAGE),
    ("POST", "/admin/users"): ("/admin/users", {"name": "new-user", "action": "add", "roles": "clerk"}, None, PAGE),
    ("GET", "/admin/officers"): ("/admin/officers", None, None, PAGE),
    ("POST", "/admin/officers"): ("/admin/officers", {"number": "050607", "name": "李四", "unit_number": "U1"}, None,
                                  PAGE),
    ("GET", "/admin/stations"): ("/admin/stations", None, None, PAGE),
    ("POST", "/admin/stations/{code}"): ("/admin/stations/station-9", {"name": "九号站"}, None, PAGE),
    ("GET", "/admin/devices"): ("/admin/devices", None, None, PAGE),
    ("POST", "/admin/devices/{serial}"): ("/admin/devices/DEV-1", {"officer_number": "010203"}, None, PAGE),
    ("GET", "/admin/policy"): ("/admin/policy", None, None, PAGE),
    ("GET", "/metrics"): ("/metrics", None, None, API),
    ("GET", "/api/openapi.json"): ("/api/openapi.json", None, None, API),
    ("GET", "/api/docs"): ("/api/docs", None, None, API),
    # last: a class raised here changes what later reads of these recordings may do
    ("POST", "/recordings/{ref}/class"): ("/recordings/1/class", {"sensitivity": "personal", "reason": "含个人信息"},
                                          None, PAGE),
    ("POST", "/cases/{number:path}/class"): (f"/cases/{CASE}/class", {"sensitivity": "personal", "reason": "涉及隐私"},
                                             None, PAGE),
    ("POST", "/cases/{number:path}/grants"): (f"/cases/{CASE}/grants", {"user": "clerk", "reason": "办案需要"}, None,
                                              PAGE),
}


def _declared_routes(routes, prefix=""):
    """(method, path) of every route the app serves, read from the app itself (routers included in it too)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:  # FastAPI keeps an included router whole
            context = getattr(route, "include_context", None)
            yield from _declared_routes(inner.routes, prefix + getattr(context, "prefix", ""))
        elif not hasattr(route, "methods"):  # a mount of static files: read with GET
            yield "GET", prefix + route.path
        else:
            for method in set(route.methods) - {"HEAD"}:
                yield method, prefix + route.path


def _send(client, method, path, form, files, token):
    """The request as a signed-in browser would send it: the form with its token, API writes with the header."""
    if method == "GET":
        return client.get(path, follow_redirects=False)
    if path.startswith("/api/"):  # the API takes JSON
        return client.post(path, json=form, headers={"X-CSRF-Token": token}, follow_redirects=False)
    return client.post(path, data={**form, "csrf": token}, files=files, headers={"X-CSRF-Token": token},
                       follow_redirects=False)


def test_every_route_of_the_app_has_a_case_here(web_site):
    client, _engine = web_site
    declared = set(_declared_routes(client.app.routes))
    assert ("GET", "/api/recordings/{ref}") in declared and len(declared) > 40  # the walk found the routers' routes
    assert declared - PUBLIC - set(GUARDED) == set(), "a new route: add its case to GUARDED (or PUBLIC)"
    assert (set(GUARDED) | PUBLIC) - declared == set(), "a case for a route the app no longer has"


def test_unsigned_callers_are_refused_every_guarded_route(web_site):
    """Nothing else is wrong with these requests (a real form token, every field), so the refusal can only be
    the missing sign-in: the sign-in page for pages and forms, 401 for the API, never 422 or the answer."""
    client, _engine = web_site
    web_login(client, "admin")
    token = form_token(client.get("/").text)  # a real session's token, sent without its session
    client.cookies.clear()
    wrong = []
    for (method, declared), (path, form, files, refusal) in GUARDED.items():
        response = _send(client, method, path, form, files, token)
        if refusal == PAGE:
            refused = response.status_code == 303 and response.headers.get("location") == "/login"
        else:
            refused = response.status_code == 401
        if not refused:
            wrong.append((method, declared, response.status_code, response.text[:120]))
    assert wrong == []


def _administrator_with_a_check(client, engine) -> str:
    """Sign in the administrator (a legal reviewer too, and the drawn reviewer of spot check 1); their form
    token."""
    with Session(engine) as session:  # legal review's routes are a reviewer's alone: this administrator is one too
        set_roles(session, "admin", ["admin", "reviewer"], by="test")
        session.commit()
        # spot check 1, drawn by a supervisor with this administrator as its reviewer (the first seed that draws
        # them): its review and sign-off are theirs to ask for
        seed = next(f"s{n}" for n in count() if draw_names(["admin", "unit-2-supervisor"], 1,
                                                            reviewer_seed(f"s{n}")) == ["admin"])
        check = new_spot_check(session, SpotCheckCriteria(unit="U2"), 1, by="supervisor", now=utcnow(), seed=seed)
        assert (check.id, check.reviewers) == (1, ["admin"]), (check.id, check.reviewer_pool)
    web_login(client, "admin")
    return form_token(client.get("/").text)


def test_every_guarded_request_is_otherwise_valid(web_site):
    """The same requests from a signed-in administrator are neither refused nor malformed (a case may be
    missing or in the wrong state: that is the route's own answer, after the sign-in check)."""
    client, engine = web_site
    token = _administrator_with_a_check(client, engine)
    wrong = []
    for (method, declared), (path, form, files, _refusal) in GUARDED.items():
        response = _send(client, method, path, form, files, token)
        if response.status_code in (401, 403, 422, 500) or response.headers.get("location") == "/login":
            wrong.append((method, declared, response.status_code, response.text[:160]))
    assert wrong == []


#: Form posts whose success is not a redirect: downloads, and the share link, whose one-time code is shown once on
#: the answer (never put in a cookie or an address to survive a redirect).
NOT_REDIRECTED = {("POST", "/cases/{number:path}/export"), ("POST", "/releases/{number}/package"),
                  ("POST", "/releases/{number}/shares"), ("POST", "/recordings/bulk")}  # bulk: its own test file


def test_every_form_post_that_succeeds_redirects_and_says_once_what_it_did(web_site):
    """Post/redirect/get everywhere: a form post that worked answers 303 (a reload does not post again) and the
    page it leads to says what was done, once; none answers a page of its own."""
    client, engine = web_site
    token = _administrator_with_a_check(client, engine)
    worked, silent, answered = [], [], []
    for (method, declared), (path, form, files, refusal) in GUARDED.items():
        if method != "POST" or refusal != PAGE or (method, declared) in NOT_REDIRECTED:
            continue
        response = _send(client, method, path, form, files, token)
        if response.status_code == 303:
            worked.append(declared)
            shown = client.get(response.headers["location"])
            said = re.search(r'<p class="done" role="status">([^<]+)</p>', shown.text)
            if said is None:
                silent.append(declared)
            elif said.group(1) in client.get(response.headers["location"]).text:
                silent.append(f"{declared}: said again on a reload")
        elif response.status_code == 200:
            answered.append(declared)
    assert (silent, answered) == ([], [])
    # those that succeed as sent here (the others need a state of their own: their files test what they say)
    assert len(worked) >= 17, worked


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
        untouched, tagged_row = session.get(Recording, 1), session.get(Recording, 3)
        assert untouched is not None and tagged_row is not None
        assert untouched.stamp_revision == 1
        assert (tagged_row.case_number, tagged_row.stamp_revision) == (CASE, 2)
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
    for path in (f"/media/{ghost_id}/photo?reason=复核", f"/media/{ghost_id}/original?reason=复核"):
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


def test_a_photo_s_original_is_shown_only_with_a_reason_whatever_the_policy(web_site, store):
    """The browser gets the photo's evidence bytes themselves (no proxy stands between), one click from saved: under
    the default policy (a reason at download only) the page shows the form, not the photo, and the bytes are
    refused without a reason; with one they are shown and the access is recorded with it."""
    from fastapi.testclient import TestClient

    from evidence.web import WebConfig, create_app

    _client, engine = web_site
    with TestClient(create_app(WebConfig(engine=engine, store=store))) as client:
        web_login(client, "clerk")
        first = client.get("/recordings/2")
        assert first.status_code == 200 and 'id="reason-form"' in first.text and 'id="photo"' not in first.text
        refused = client.get("/media/2/photo")
        assert refused.status_code == 422 and "reason" in refused.text
        page = client.get("/recordings/2", params={"reason": "行政复议调阅"})
        assert 'src="/media/2/photo?reason=%E8%A1%8C' in page.text
        shown = client.get("/media/2/photo", params={"reason": "行政复议调阅"})
        assert shown.status_code == 200 and shown.content
    with Session(engine) as session:
        accessed = session.exec(select(CustodyEvent).where(
            CustodyEvent.recording_id == 2, CustodyEvent.actor == "clerk", CustodyEvent.kind == "accessed")).all()
    assert [(e.details.get("reason"), e.details.get("via")) for e in accessed] == [("行政复议调阅", "web view")]


def test_the_statistics_alarm_counts_only_what_the_supervisor_may_see(web_site):
    """A recording of unit U1 stuck in staging raises the alarm for a supervisor of the whole archive, and not for
    U2's supervisor, whose page covers U2 only (it named the archive-wide count)."""
    from datetime import timedelta

    client, engine = web_site
    with Session(engine) as session:
        stuck = session.get(Recording, 1)
        assert stuck is not None and stuck.officer_number == "010203"  # unit U1
        stuck.state, stuck.ingested_at = "staged", utcnow() - timedelta(days=2)
        session.add(stuck)
        session.commit()
    web_login(client, "supervisor")
    assert 'id="staged-alarm"' in client.get("/stats").text
    client.cookies.clear()
    web_login(client, "unit-2-supervisor")
    page = client.get("/stats")
    assert page.status_code == 200 and 'id="staged-alarm"' not in page.text


@pytest.mark.parametrize("number", ["99999999999", "9" * 30, "0", "00000000001", "²", "9" * 5000])
def test_numbers_past_any_row_id_are_answered_not_crashed_on(web_site, number):
    """Every route that takes a number or a reference in its path, called by a signed-in administrator with one no
    row can have (past PostgreSQL's integer, past any integer, past the digits Python reads as a number, a digit
    that is not 0-9): a 404 or a refusal, never a server error."""
    client, engine = web_site
    with Session(engine) as session:
        set_roles(session, "admin", ["admin", "reviewer"], by="test")
        session.commit()
    web_login(client, "admin")
    token = form_token(client.get("/").text)
    crashed, tried = [], 0
    for (method, declared), (path, form, files, _refusal) in GUARDED.items():
        if "{" not in declared or "{number:path}" in declared or "{code}" in declared or "{serial}" in declared:
            continue
        called = "/".join(number if part.isdigit() else part for part in path.split("?")[0].split("/"))
        called += path[len(path.split("?")[0]):]
        tried += 1
        try:  # the test client raises what the app did not answer
            status = _send(client, method, called, form, files, token).status_code
        except Exception as error:  # noqa: BLE001 - each crash is listed, not only the first
            status = f"{type(error).__name__}: {str(error)[:100]}"
        if not isinstance(status, int) or status >= 500:
            crashed.append((method, called, status))
    for field in ("page", "size"):  # the search's and the log's page numbers too
        for page in ("/", "/api/recordings", "/audit"):
            answered = client.get(page, params={field: number, "log": "access"})
            assert answered.status_code < 500, (page, field, answered.status_code)
    audit = client.get("/audit", params={"log": "access", "recording": number})
    # a filter no recording can match is named, not run
    if number.isascii() and number.lstrip("0") and int(number[:12]) > 2**31 - 1:
        assert audit.status_code == 400 and "录像编号须为 1 至 2147483647 之间的数字" in audit.text
    assert tried >= 15 and crashed == [], crashed
