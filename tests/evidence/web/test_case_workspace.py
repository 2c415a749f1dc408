"""The case workspace (catalog.case_workspace): one timeline by capture time, the case's releases and exported
packages, a playlist in order, retention in words, and closing kept apart from export, behind a typed
confirmation. Attacked with device clocks out of order or missing, a caller limited to one unit, a release
that reaches outside the caller's scope, and a state-secret item in the playlist."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from catalog import Recording
from catalog.case_workspace import timeline_order
from catalog.models import DerivedMedia
from catalog.releases import propose_release
from catalog.types import utcnow
from catalog.user_models import User
from evidence.web.cases import close_form_problem
from tests.evidence.web.conftest import CASE, add_recording, seal_all
from tests.webhelpers import form_token, web_login


def test_the_timeline_runs_by_capture_time_with_undated_items_last():
    items: list[dict[str, Any]] = [{"recording_id": 1, "captured_start": "2026-11-20T09:00:00+00:00"},
             {"recording_id": 2, "captured_start": None},
             {"recording_id": 3, "captured_start": "2026-11-20T08:03:00+00:00"},
             {"recording_id": 4, "captured_start": "1970-01-01T00:00:00+00:00"}]  # a reset device clock
    assert [i["recording_id"] for i in timeline_order(items)] == [4, 3, 1, 2]


def test_a_close_form_needs_a_date_and_the_case_number_typed_again():
    assert close_form_problem("AB-1", "2026-11-20", "AB-1") is None
    assert close_form_problem("AB-1", " 2026-11-20 ", " AB-1 ") is None
    assert "give the closing date" in (close_form_problem("AB-1", "", "AB-1") or "")
    assert "not a date" in (close_form_problem("AB-1", "20/11/2026", "AB-1") or "")
    for typed in ("", "ab-1", "AB-", "AB-1 AB-1"):
        assert "type the case number 'AB-1' to confirm" in (close_form_problem("AB-1", "2026-11-20", typed) or "")


def _user(session: Session, name: str) -> User:
    return session.exec(select(User).where(User.name == name)).one()


def _out_of_order(engine, store, tmp_path) -> None:
    """Recording 4 (unit 1) from a device whose clock says 07:00, before 1's 08:01 and 3's 08:03; photo 5 (unit
    1) from one that gave no time at all."""
    with Session(engine) as session:
        add_recording(session, store, tmp_path, 4, "010203", start=datetime(2026, 11, 20, 7, 0, tzinfo=UTC))
        add_recording(session, store, tmp_path, 5, "010203", "photo", undated=True)
        session.commit()


def test_the_workspace_shows_its_timeline_releases_and_exports_within_the_callers_scope(web_site, store, tmp_path):
    client, engine = web_site
    _out_of_order(engine, store, tmp_path)
    seal_all(engine, store, (1, 3, 4, 5))
    web_login(client, "clerk")
    token = form_token(client.get(f"/cases/{CASE}").text)
    linked = client.post(f"/cases/{CASE}/link", data={"csrf": token, "recordings": "1 3 4 5",
                                                             "purpose": "证明现场"}, follow_redirects=False)
    assert linked.status_code == 303
    exported = client.post(f"/cases/{CASE}/export", data={"csrf": token, "reason": "移送法院"})
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    with Session(engine) as session:
        clerk = _user(session, "clerk")
        recordings = {r.id: r for r in session.exec(select(Recording))}
        only_unit_2 = propose_release(session, clerk, kind="transfer", title="移送二中队", recipient="区检察院",
                                      legal_basis="行政处罚法", recordings=[recordings[3]], reason="移送",
                                      now=utcnow())
        both_units = propose_release(session, clerk, kind="transfer", title="移送全案", recipient="区法院",
                                     legal_basis="行政诉讼法", recordings=[recordings[1], recordings[3]],
                                     reason="应诉", now=utcnow())
        only_unit_2_id, both_units_id = only_unit_2.id, both_units.id

    case = client.get(f"/api/cases/{CASE}").json()
    assert [i["recording_id"] for i in case["timeline"]] == [4, 1, 3, 5]  # by capture time; undated last
    first = case["timeline"][2]
    assert (first["officer_number"], first["station_code"], first["duration_s"] is None) == ("030405", "station-1",
                                                                                           True)
    assert first["purpose"] == "证明现场" and first["legal_hold"]
    assert first["hold_reasons"] == [f"case {CASE} is open"] and first["retention_rule"].startswith("routine")
    assert [(r["id"], r["case_items"]) for r in case["releases"]] == [(both_units_id, 2), (only_unit_2_id, 1)]
    assert len(case["exports"]) == 1
    package = case["exports"][0]
    assert (package["case_items"], package["reason"], package["by"], package["case"]) == (4, "移送法院", "clerk",
                                                                                          CASE)
    # The administrator exports the same case again: a package of the same name, a build of its own; who exported
    # what and why is the audit log's, so the clerk still sees only their own
    web_login(client, "admin")
    admin_token = form_token(client.get(f"/cases/{CASE}").text)
    again = client.post(f"/cases/{CASE}/export", data={"csrf": admin_token, "reason": "内部调查：王五"})
    assert again.status_code == 200
    everyone = client.get(f"/api/cases/{CASE}").json()["exports"]
    assert [(p["by"], p["reason"], p["case_items"]) for p in everyone] == [("admin", "内部调查：王五", 4),
                                                                          ("clerk", "移送法院", 4)]
    assert everyone[0]["package"] == everyone[1]["package"]
    web_login(client, "clerk")
    assert [p["by"] for p in client.get(f"/api/cases/{CASE}").json()["exports"]] == ["clerk"]

    # A supervisor of unit 2 sees recording 3 only: not the others, nor a release that reaches into unit 1
    web_login(client, "unit-2-supervisor")
    theirs = client.get(f"/api/cases/{CASE}").json()
    assert [i["recording_id"] for i in theirs["timeline"]] == [3]
    assert theirs["outside_scope"]["recordings"] == 3
    assert [r["id"] for r in theirs["releases"]] == [only_unit_2_id]
    assert theirs["exports"] == []  # others' exports, with their reasons, are the audit log's
    page = client.get(f"/cases/{CASE}")
    assert page.status_code == 200 and "R1.video" not in page.text and "移送全案" not in page.text
    assert "内部调查" not in page.text
    assert "移送二中队" in page.text


def test_the_page_plays_the_case_in_order_and_keeps_closing_apart_from_export(web_site, store, tmp_path):
    client, engine = web_site
    _out_of_order(engine, store, tmp_path)
    with Session(engine) as session:  # browser copies for 1, 3 and 4 (the photos have none; 3 is made secret)
        for rid in (1, 3, 4):
            session.add(DerivedMedia(recording_id=rid, derived_from_sha256="0" * 64, kind="proxy",
                                     key=f"derived/{rid}/proxy.mp4", sha256="0" * 64, size_bytes=10,
                                     content_type="video/mp4", created_at=utcnow()))
        session.commit()
    web_login(client, "admin")
    token = form_token(client.get(f"/cases/{CASE}").text)
    client.post(f"/cases/{CASE}/link", data={"csrf": token, "recordings": "1 2 3 4 5", "purpose": "证明现场"})
    page = client.get(f"/cases/{CASE}").text
    playlist = re.findall(r'data-src="/media/(\d+)/proxy"', page)
    assert playlist == ["4", "1", "3"]  # capture order; the photos are in the timeline, not the playlist
    assert page.index('id="timeline"') < page.index('id="playlist"')
    assert page.index('id="export-form"') < page.index('id="close-case"')  # closing sits apart, after export
    close_form = page[page.index('id="close-form"'):]
    close_form = close_form[:close_form.index("</form>")]
    assert 'name="confirm" required' in close_form and 'name="closed_on" type="date" required' in close_form
    assert "案件未结期间" in page and f"案件 {CASE} 尚未结案" in page  # retention and holds said in words

    # a supervisor may play recordings, but not a personal one without a grant: it is not queued for them
    personal = client.post("/recordings/1/class", data={"csrf": token, "sensitivity": "personal",
                                                         "reason": "含个人信息"}, follow_redirects=False)
    assert personal.status_code == 303, personal.text
    web_login(client, "supervisor")
    assert re.findall(r'data-src="/media/(\d+)/proxy"', client.get(f"/cases/{CASE}").text) == ["4", "3"]
    web_login(client, "admin")
    token = form_token(client.get(f"/cases/{CASE}").text)
    classed = client.post("/recordings/3/class", data={"csrf": token, "sensitivity": "state_secret",
                                                         "reason": "涉密"}, follow_redirects=False)
    assert classed.status_code == 303, classed.text
    # neither a secret nor a personal recording is queued for an administrator without a grant on the case; the
    # clerk, custodian of the archive, plays the personal one but not the secret
    assert re.findall(r'data-src="/media/(\d+)/proxy"', client.get(f"/cases/{CASE}").text) == ["4"]
    web_login(client, "clerk")
    assert re.findall(r'data-src="/media/(\d+)/proxy"', client.get(f"/cases/{CASE}").text) == ["4", "1"]
