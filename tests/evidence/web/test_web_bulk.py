"""Acting on many search results at once (evidence.web.bulk): add to a case, tag, change class, export — from the
ticked results or every match — with the single act's rights, scope and class checks, recorded; attacked with
selections outside the caller's scope, forged ids, a missing reason and a selection over the cap."""
from __future__ import annotations

import html
import io
import zipfile
from collections.abc import Sequence
from urllib.parse import quote

import bagit
from sqlmodel import Session, col, select

from catalog import CustodyEvent, Recording
from catalog.cases import get_case, member_ids
from catalog.stamps import stamp_history
from tests.evidence.web.conftest import CASE, seal_all
from tests.webhelpers import form_token, web_login


def _events(engine, kind: str, actor: str | None = None) -> list[CustodyEvent]:
    with Session(engine) as session:
        query = select(CustodyEvent).where(CustodyEvent.kind == kind).order_by(col(CustodyEvent.id))
        if actor is not None:
            query = query.where(CustodyEvent.actor == actor)
        return list(session.exec(query))


def _recording(engine, rid: int) -> Recording:
    with Session(engine) as session:
        found = session.get(Recording, rid)
        assert found is not None
        return found


def _post(client, data: dict[str, str], token: str, ids: Sequence[str] = (), **kwargs):
    return client.post("/recordings/bulk", data={"csrf": token, **data, "ids": list(ids)}, **kwargs)


def test_a_clerk_adds_ticked_results_to_a_case_and_the_holds_reach_the_store(web_site, store):
    client, engine = web_site
    web_login(client, "clerk")
    page = client.get("/", params={"station": "station-1"})
    assert page.status_code == 200 and 'id="bulk"' in page.text and 'name="ids" value="3"' in page.text
    assert f'<option value="{CASE}">' in page.text  # the open cases are offered to pick from
    token = form_token(page.text)

    linked = _post(client, {"action": "link", "case": CASE, "link_purpose": "证明无照经营",
                            "query": "station=station-1&page=2"}, token, ["1", "3"], follow_redirects=False)
    assert linked.status_code == 303 and linked.headers["location"] == "/?station=station-1"  # back to the search
    shown = client.get(linked.headers["location"])
    assert "已将 2 条录像加入案件 AB-2026-00042。" in shown.text  # said once after the redirect ...
    assert "已将 2 条录像加入案件" not in client.get("/?station=station-1").text  # ... and not on a reload
    with Session(engine) as session:
        assert sorted(member_ids(session, get_case(session, CASE))) == [1, 3]
    for rid in (1, 3):
        held = _recording(engine, rid)
        assert held.legal_hold and store.head(held.sha256).legal_hold  # the same retention pass as the case page
    assert sorted(e.recording_id or 0 for e in _events(engine, "case_linked")) == [1, 3]

    again = _post(client, {"action": "link", "case": CASE, "link_purpose": "证明无照经营"}, token, ["1", "2", "3"])
    assert again.status_code == 200 and "已将 1 条录像加入案件 AB-2026-00042；另有 2 条已在该案件中。" in again.text
    assert sorted(e.recording_id or 0 for e in _events(engine, "case_linked")) == [1, 2, 3]  # no second link of 1 or 3


def test_all_matching_takes_every_result_of_the_search_and_only_those(web_site):
    client, engine = web_site
    web_login(client, "clerk")
    token = form_token(client.get("/").text)
    done = _post(client, {"action": "link", "case": CASE, "link_purpose": "同一执法人员", "every": "matching",
                          "query": "officer=010203"}, token)
    assert done.status_code == 200 and "已将 2 条录像加入案件" in done.text
    with Session(engine) as session:
        assert sorted(member_ids(session, get_case(session, CASE))) == [1, 2]  # officer 030405's recording 3 is not


def test_a_selection_reaching_outside_the_callers_scope_is_refused_whole_and_recorded(web_site):
    client, engine = web_site
    web_login(client, "unit-2-supervisor")  # sees unit U2 only: recording 3
    page = client.get("/")
    assert 'name="ids" value="3"' in page.text and 'name="ids" value="1"' not in page.text
    token = form_token(page.text)
    refused = _post(client, {"action": "class", "sensitivity": "personal", "reason": "含个人信息",
                             "query": "kind=video"}, token, ["3", "1"])
    assert refused.status_code == 403
    assert "录像 1 不在 unit-2-supervisor 可变更敏感类别的范围内（单位 U2）" in html.unescape(refused.text)
    assert 'value="含个人信息"' in refused.text and 'name="kind"' in refused.text  # the form and the search kept
    assert [_recording(engine, rid).sensitivity for rid in (1, 3)] == ["internal", "internal"]  # nothing changed
    assert [(e.recording_id, e.details["why"], e.details["via"]) for e in _events(
        engine, "access_refused", actor="unit-2-supervisor")] == [(1, "scope", "web bulk")]

    # "all matching" is the search, and the search is their scope: only recording 3 is raised
    done = _post(client, {"action": "class", "sensitivity": "personal", "reason": "含个人信息",
                          "every": "matching", "query": ""}, token)
    assert done.status_code == 200 and "已将 1 条录像的敏感类别改为" in done.text
    assert [_recording(engine, rid).sensitivity for rid in (1, 2, 3)] == ["internal", "internal", "personal"]


def test_an_officer_tags_their_own_recordings_with_one_reason_and_nobody_elses(web_site):
    client, engine = web_site
    web_login(client, "officer")  # officer 010203: recordings 1 and 2
    page = client.get("/")
    assert '<option value="tag"' in page.text and '<option value="link"' not in page.text  # their rights only
    token = form_token(page.text)

    unstated = _post(client, {"action": "tag", "purpose": "日常巡查", "reason": " "}, token, ["1", "2"])
    assert unstated.status_code == 400 and "reason" in unstated.text
    assert 'value="日常巡查"' in unstated.text  # what was typed is kept
    nothing = _post(client, {"action": "tag", "reason": "补录"}, token, ["1"])
    assert nothing.status_code == 400 and "请填写要标注的内容" in nothing.text

    tagged = _post(client, {"action": "tag", "purpose": "日常巡查", "important": "yes", "reason": "补录用途"},
                   token, ["1", "2"], follow_redirects=False)
    assert tagged.status_code == 303
    assert "已标注 2 条录像。" in client.get(tagged.headers["location"]).text
    with Session(engine) as session:
        for rid in (1, 2):
            latest = stamp_history(session, rid)[-1]
            assert (latest.purpose, latest.important, latest.reason, latest.changed_by) == (
                "日常巡查", True, "补录用途", "officer")
    same = _post(client, {"action": "tag", "purpose": "日常巡查", "reason": "再次"}, token, ["1", "2"])
    assert same.status_code == 200 and "无需更改" in same.text  # no empty revision

    outside = _post(client, {"action": "tag", "purpose": "x", "reason": "y"}, token, ["2", "3"])
    assert outside.status_code == 403 and _recording(engine, 3).purpose is None
    # taking away "important" releases what it holds: a clerk's decision, refused to the officer (403, as on the
    # recording's own page)
    lift = _post(client, {"action": "tag", "important": "no", "reason": "误标"}, token, ["1"])
    assert lift.status_code == 403 and _recording(engine, 1).important
    linking = _post(client, {"action": "link", "case": CASE, "link_purpose": "x"}, token, ["1"])
    assert linking.status_code == 403 and _events(engine, "case_linked") == []


def test_a_clerk_exports_the_selection_as_one_valid_package(web_site, store, tmp_path):
    client, engine = web_site
    seal_all(engine, store)
    web_login(client, "clerk")
    token = form_token(client.get("/").text)
    unstated = _post(client, {"action": "export", "query": "kind=video"}, token, ["1", "3"])
    assert unstated.status_code == 422
    assert "无法生成 2 条录像 的证据包：已拒绝导出该证据包，未写入任何内容：请说明调阅录像 1, 3 的事由" in unstated.text
    assert "application/zip" not in unstated.headers["content-type"] and _events(engine, "exported") == []

    package = _post(client, {"action": "export", "reason": "移送法院"}, token, ["1", "3"])
    assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
    assert "recordings-" in package.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(package.content))
    assert sum("/data/recordings/" in n for n in archive.namelist()) == 2
    archive.extractall(tmp_path / "got")
    (bag,) = (tmp_path / "got").iterdir()
    bagit.Bag(str(bag)).validate()
    assert sorted(e.recording_id or 0 for e in _events(engine, "exported")) == [1, 3]


def test_bad_selections_get_a_clear_answer_and_change_nothing(web_site, monkeypatch):
    client, engine = web_site
    web_login(client, "clerk")
    token = form_token(client.get("/").text)
    before = len(_events(engine, "case_linked")) + len(_events(engine, "classified"))
    cases = {
        "no selection": ({"action": "link", "case": CASE, "link_purpose": "x"}, [], 400, "请至少选择一条录像"),
        "forged id": ({"action": "class", "sensitivity": "personal", "reason": "r"}, ["1; DROP TABLE recording"],
                      400, "不是录像编号"),
        "unknown id": ({"action": "class", "sensitivity": "personal", "reason": "r"}, ["1", "999"], 404,
                       "没有录像 999"),
        "unknown action": ({"action": "delete"}, ["1"], 400, "未知操作 'delete'；可选：link, tag, class, export"),
        "unknown case": ({"action": "link", "case": "AB-2026-99999", "link_purpose": "x"}, ["1"], 404,
                         "AB-2026-99999"),
        "bad search": ({"action": "link", "case": CASE, "link_purpose": "x", "every": "matching",
                        "query": "from=yesterday"}, [], 400, "yesterday"),
        "no purpose": ({"action": "link", "case": CASE, "link_purpose": " "}, ["1"], 400, "purpose"),
    }
    for name, (data, ids, status, said) in cases.items():
        answer = _post(client, data, token, ids)
        assert (name, answer.status_code) == (name, status)
        assert said in html.unescape(answer.text), name
    assert _post(client, {"action": "link"}, "forged", ["1"]).status_code == 403

    monkeypatch.setattr("evidence.web.bulk.BULK_CAP", 2)  # three recordings match: more than the cap
    over = _post(client, {"action": "link", "case": CASE, "link_purpose": "x", "every": "matching"}, token)
    assert over.status_code == 400 and "一次最多处理 2 条录像" in over.text
    assert len(_events(engine, "case_linked")) + len(_events(engine, "classified")) == before


def test_a_forged_done_cookie_says_nothing(web_site):
    client, _engine = web_site
    web_login(client, "clerk")
    for forged in ("garbage", quote('["drop", {}]'), quote('["linked", {}]'), quote('["linked", 5]')):
        client.cookies.set("evidence_done", forged)
        page = client.get("/")
        assert page.status_code == 200 and 'class="done"' not in page.text
