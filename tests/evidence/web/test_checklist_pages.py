"""The action checklist in the browser (/case-actions, /checklist, their CSV and API): a clerk enters and imports a
case's actions and sees each judged by the case's recordings; a supervisor sees the unit's cases for legal review;
nobody outside the case's scope sees it, and nobody but a clerk changes it.

Attacked as an outsider would: a form post without the right to change cases, a time that is no time, a file that is
not the export, a case outside the reader's scope, a reader who may see only part of a case's recordings."""
from __future__ import annotations

import csv
import html
import io
import json

from sqlmodel import Session, col, select

from catalog import CustodyEvent, Recording
from catalog.cases import get_case, link_recording
from tests.evidence.web.conftest import CASE
from tests.webhelpers import form_token, web_login

HTML = {"Accept": "text/html"}
PAGE = f"/case-actions?case={CASE}"


def _link_both(engine) -> None:
    """Recordings 1 (officer 010203, unit U1, 16:01:00-16:01:30 Beijing) and 3 (030405, U2, 16:03:00-16:03:30)
    in the case."""
    with Session(engine) as session:
        case = get_case(session, CASE)
        for rid in (1, 3):
            recording = session.get(Recording, rid)
            assert recording is not None
            link_recording(session, case, recording, purpose="现场", by="clerk")
        session.commit()


def test_a_clerk_enters_and_imports_actions_and_sees_each_judged(web_site):
    client, engine = web_site
    _link_both(engine)
    web_login(client, "clerk")
    page = client.get(PAGE, headers=HTML)
    assert page.status_code == 200 and "本案尚未登记执法事项。" in page.text
    csrf = form_token(page.text)
    entered = client.post("/case-actions", data={
        "csrf": csrf, "case": CASE, "action_type": "questioning", "start": "2026-11-20 16:01",
        "end": "2026-11-20 16:01:30", "officers": "010203、030405", "external_id": "XZ-1"}, follow_redirects=False)
    assert entered.status_code == 303
    shown = client.get(entered.headers["location"], headers=HTML).text
    assert f"案件 {CASE} 的第 1 号执法事项已登记。" in shown
    assert 'data-verdict="covered"' in shown and "需法制审核" not in shown
    # an export of the case-handling system: UTF-8 with a BOM, Chinese headers, a seizure nothing recorded
    export = ("\ufeff事项类型,开始时间,结束时间,地点,外部编号\n"
              "查封扣押,2026-11-20 17:00:00+08:00,2026-11-20 17:30:00+08:00,某商店,XZ-2\n").encode()
    imported = client.post("/case-actions/import", data={"csrf": csrf, "case": CASE},
                           files={"file": ("导出.csv", export, "text/csv")}, follow_redirects=False)
    assert imported.status_code == 303
    shown = client.get(PAGE, headers=HTML).text
    assert "导出.csv：新增 1 项，已登记 0 项，更正 0 项。" in shown
    assert 'data-verdict="not_recorded"' in shown and "需法制审核" in shown
    again = client.post("/case-actions/import", data={"csrf": csrf, "case": CASE},
                        files={"file": ("导出.csv", export, "text/csv")}, follow_redirects=False)
    assert again.status_code == 303  # the same export again adds nothing
    assert client.get("/api/case-actions", params={"case": CASE}).json()["needs_legal_review"] is True
    assert len(client.get("/api/case-actions", params={"case": CASE}).json()["actions"]) == 2
    with Session(engine) as session:
        kinds = [e.kind for e in session.exec(select(CustodyEvent).order_by(col(CustodyEvent.id)))]
    assert kinds.count("case_action_recorded") == 2


def test_what_is_not_an_action_is_refused_in_the_readers_language_and_the_form_keeps_what_was_typed(web_site):
    client, engine = web_site
    web_login(client, "clerk")
    csrf = form_token(client.get(PAGE, headers=HTML).text)
    bad = client.post("/case-actions", data={"csrf": csrf, "case": CASE, "action_type": "questioning",
                                             "start": "yesterday", "end": "2026-11-20 16:01", "place": "某地"})
    assert bad.status_code == 400
    assert "开始时间 'yesterday' 不是有效时间（例如 2026-11-20 09:00）" in html.unescape(bad.text)
    assert 'value="某地"' in bad.text and 'value="yesterday"' in bad.text
    before_after = client.post("/case-actions", data={"csrf": csrf, "case": CASE, "action_type": "questioning",
                                                      "start": "2026-11-20 16:00", "end": "2026-11-20 15:00"})
    assert before_after.status_code == 400
    wrong_file = client.post("/case-actions/import", data={"csrf": csrf, "case": CASE},
                             files={"file": ("x.csv", "事项类型,开始时间\n拘留,明天\n".encode(), "text/csv")})
    assert wrong_file.status_code == 400 and "导入 x.csv 被拒绝" in html.unescape(wrong_file.text)
    zone = client.post("/case-actions/import", data={"csrf": csrf, "case": CASE, "zone": "../../etc/passwd"},
                       files={"file": ("x.csv", "事项类型,开始时间,结束时间\n询问,2026-11-20 17:00,2026-11-20 17:10\n"
                                                 .encode(), "text/csv")})
    assert zone.status_code == 400 and "不是有效的时区（例如 Asia/Shanghai）" in zone.text
    english = client.post("/case-actions?lang=en", data={"csrf": csrf, "case": CASE, "action_type": "questioning",
                                                         "start": "soon", "end": "2026-11-20 16:01"})
    assert "start 'soon' is not a time such as 2026-11-20 09:00" in html.unescape(english.text)
    client.get("/?lang=zh_CN")
    with Session(engine) as session:
        assert session.exec(select(CustodyEvent).where(CustodyEvent.kind == "case_action_recorded")).all() == []


def test_only_a_clerk_changes_and_nobody_outside_the_case_reads_it(web_site):
    client, engine = web_site
    web_login(client, "unit-2-supervisor")  # nothing of the case is in unit U2 yet
    assert client.get(PAGE, headers=HTML).status_code == 403
    assert client.get("/api/case-actions", params={"case": CASE}).status_code == 403
    with Session(engine) as session:
        refused = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused")).all()
        assert refused and all(e.actor == "unit-2-supervisor" for e in refused)
    client.cookies.clear()
    _link_both(engine)
    web_login(client, "supervisor")
    page = client.get(PAGE, headers=HTML)
    assert page.status_code == 200 and 'id="add-action"' not in page.text  # may read, not change
    denied = client.post("/case-actions", data={"csrf": form_token(page.text), "case": CASE,
                                                "action_type": "questioning", "start": "2026-11-20 16:01",
                                                "end": "2026-11-20 16:02"}, headers=HTML)
    assert denied.status_code == 403
    with Session(engine) as session:
        assert session.exec(select(CustodyEvent).where(CustodyEvent.kind == "case_action_recorded")).all() == []


def test_a_reader_who_sees_part_of_a_case_gets_its_verdicts_but_not_the_gaps_a_hidden_recording_would_date(
        web_site):
    client, engine = web_site
    _link_both(engine)
    web_login(client, "clerk")
    csrf = form_token(client.get(PAGE, headers=HTML).text)
    assert client.post("/case-actions", data={"csrf": csrf, "case": CASE, "action_type": "questioning",
                                              "start": "2026-11-20 16:00", "end": "2026-11-20 16:05"},
                       follow_redirects=False).status_code == 303
    whole = client.get("/api/case-actions", params={"case": CASE}).json()["actions"][0]
    client.cookies.clear()
    web_login(client, "unit-2-supervisor")  # sees recording 3 (U2), not 1 (U1)
    part = client.get("/api/case-actions", params={"case": CASE}).json()["actions"][0]
    assert (part["verdict"], part["covered_s"]) == (whole["verdict"], whole["covered_s"]) == ("partly_covered", 60)
    assert part["recordings"] == [3] and part["recordings_outside_scope"] == 1
    assert whole["uncovered"] and part["uncovered"] == [] and part["uncovered_withheld"]
    page = client.get(PAGE, headers=HTML).text
    assert 'href="/recordings/1"' not in page and "另有 1 条不在您的查看范围内" in page
    assert "not shown" not in page  # why the gaps are withheld is said in Chinese too


def test_the_units_cases_for_legal_review_their_csv_and_api(web_site):
    client, engine = web_site
    _link_both(engine)
    web_login(client, "clerk")
    csrf = form_token(client.get(PAGE, headers=HTML).text)
    client.post("/case-actions", data={"csrf": csrf, "case": CASE, "action_type": "seizure",
                                       "start": "2026-11-20 18:00", "end": "2026-11-20 18:30"})
    listing = client.get("/checklist?first=2026-11-20&last=2026-11-20&review=1", headers=HTML)
    assert listing.status_code == 200 and f'data-case="{CASE}"' in listing.text and "需法制审核" in listing.text
    assert f'data-case="{CASE}"' not in client.get("/checklist?first=2026-11-21&last=2026-11-22", headers=HTML).text
    sheet = client.get("/checklist.csv?first=2026-11-20&last=2026-11-20&review=1")
    assert sheet.content.startswith("\ufeff".encode()) and "checklist-2026-11-20-2026-11-20-review.csv" in \
        sheet.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert rows[0][0] == "案件编号" and rows[1][0] == CASE and rows[1][-1] == "是"
    api = client.get("/api/checklist", params={"first": "2026-11-20", "last": "2026-11-20"}).json()
    assert api["figures"]["cases_for_review"] == 1 and [c["case"] for c in api["cases"]] == [CASE]
    assert client.get("/checklist?first=someday", headers=HTML).status_code == 400
    assert client.get("/checklist?first=2026-11-21&last=2026-11-20", headers=HTML).status_code == 400
    for edge in ("first=0001-01-01", "last=9999-12-31"):  # days no action can be on: clamped, never a 500
        assert client.get(f"/api/checklist?{edge}").status_code == 200
        assert client.get(f"/checklist.csv?{edge}").status_code == 200
    with Session(engine) as session:
        handed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "viewed")).all()
        assert sum(e.details.get("via") == "web checklist.csv" for e in handed) == 3  # each download recorded
    assert json.loads(json.dumps(api))  # plain JSON, nothing a client cannot read
    client.cookies.clear()
    web_login(client, "supervisor")  # the statistics count the period's cases for legal review, linking to them
    stats = client.get("/stats?period=day&on=2026-11-20", headers=HTML).text
    assert 'id="checklist-cases">1 · <a href="/checklist?first=2026-11-20&amp;last=2026-11-20&amp;review=1">' in stats
    assert "需法制审核: 1" in stats
    assert 'id="checklist-cases">0 ·' in client.get("/stats?period=day&on=2026-11-21", headers=HTML).text
    report = client.get("/stats/report.csv?period=day&on=2026-11-20").content.decode("utf-8-sig")
    overview = {row[1]: row[2] for row in csv.reader(io.StringIO(report)) if row[0] == "overview"}
    assert (overview["有执法事项的案件"], overview["其中需法制审核"]) == ("1", "1")  # in the 执法数据分析报告 too
    assert overview["须全过程记录事项（全程 / 部分 / 未记录）"] == "0 / 0 / 1"
