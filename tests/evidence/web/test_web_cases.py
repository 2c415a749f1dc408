"""Cases managed in the browser: open, link with a purpose, unlink with a reason, close, reopen — each a
custody event, and each followed by the same retention pass as the command line (holds reach the store)."""
from __future__ import annotations

import html

from sqlmodel import Session, col, select

from catalog import CustodyEvent, Recording
from catalog.cases import get_case
from tests.evidence.web.conftest import CASE
from tests.webhelpers import form_token, web_login


def _kinds(engine) -> list[str]:
    with Session(engine) as session:
        return [e.kind for e in session.exec(select(CustodyEvent).order_by(col(CustodyEvent.id)))]


def get_case_status(engine, number: str) -> str:
    with Session(engine) as session:
        return get_case(session, number).status


def test_a_clerk_runs_a_case_in_the_browser(web_site, store):
    client, engine = web_site
    web_login(client, "clerk")
    listing = client.get("/cases")
    assert listing.status_code == 200 and CASE in listing.text and "新建案件" in listing.text
    token = form_token(listing.text)

    bad = client.post("/cases", data={"csrf": token, "number": "?", "title": " ", "case_type": "nope"})
    shown = html.unescape(bad.text)  # every problem, said in the page's language (catalog.said)
    assert bad.status_code == 400 and "案件信息有误：案件编号 '?' 不符合格式" in shown and "案件名称为空" in shown
    assert "未知的案件类型 'nope'" in shown and 'value="nope"' not in shown  # the form keeps what was typed
    client.get("/cases?lang=en")  # the same refusal on an English page is English
    english = html.unescape(client.post("/cases", data={"csrf": token, "number": "?", "title": " ",
                                                        "case_type": "nope"}).text)
    assert "invalid case: case number '?' does not match the pattern" in english and "title is blank" in english
    client.get("/cases?lang=zh_CN")
    opened = client.post("/cases", data={"csrf": token, "number": "AB-2026-00100", "title": "夜间施工噪声",
                                         "case_type": "penalty-general", "unit": "一中队"}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/cases/AB-2026-00100"

    missing = client.post("/cases/AB-2026-00100/link", data={"csrf": token, "recordings": "1 999",
                                                             "purpose": "证明噪声"})
    assert missing.status_code == 400 and "999" in missing.text
    no_purpose = client.post("/cases/AB-2026-00100/link", data={"csrf": token, "recordings": "1", "purpose": " "})
    assert no_purpose.status_code == 400
    linked = client.post("/cases/AB-2026-00100/link", data={"csrf": token, "recordings": "1, 3",
                                                            "purpose": "证明噪声"}, follow_redirects=False)
    assert linked.status_code == 303
    page = client.get("/cases/AB-2026-00100")
    assert page.text.count("证明噪声") == 2 and "法律保全" in page.text
    with Session(engine) as session:
        held = session.get(Recording, 1)
        assert held is not None
        assert held.legal_hold and store.head(held.sha256).legal_hold  # the hold reached the WORM store

    no_reason = client.post("/cases/AB-2026-00100/unlink", data={"csrf": token, "recording": "3", "reason": ""},
                            headers={"Accept": "text/html"})
    assert no_reason.status_code == 422 and "reason：必须填写" in no_reason.text
    client.post("/cases/AB-2026-00100/unlink", data={"csrf": token, "recording": "3", "reason": "误关联"})
    page = client.get("/cases/AB-2026-00100")
    assert "误关联" in page.text and "R3.video</a>" not in page.text

    confirmed = {"csrf": token, "confirm": "AB-2026-00100"}
    future = client.post("/cases/AB-2026-00100/close", data={**confirmed, "closed_on": "2999-01-01"})
    assert future.status_code == 400 and "晚于今天" in future.text
    garbage = client.post("/cases/AB-2026-00100/close", data={**confirmed, "closed_on": "yesterday"})
    assert garbage.status_code == 400 and "不是日期" in garbage.text
    undated = client.post("/cases/AB-2026-00100/close", data=confirmed)
    assert undated.status_code == 400 and "请填写结案日期" in undated.text
    today = client.app.state.config.today().isoformat()
    unconfirmed = client.post("/cases/AB-2026-00100/close", data={"csrf": token, "closed_on": today,
                                                                  "confirm": "AB-2026-0010"})
    shown = html.unescape(unconfirmed.text)
    assert unconfirmed.status_code == 400 and "请再次输入案件编号 'AB-2026-00100' 以确认" in shown
    assert 'value="AB-2026-0010"' in shown  # what was typed is kept
    assert get_case_status(engine, "AB-2026-00100") == "open" and "case_closed" not in _kinds(engine)
    closed = client.post("/cases/AB-2026-00100/close", data={**confirmed, "closed_on": today},
                         follow_redirects=False)
    assert closed.status_code == 303
    assert f"案件 AB-2026-00100 已于 {today} 结案。" in client.get(closed.headers["location"]).text  # said once
    with Session(engine) as session:
        assert get_case(session, "AB-2026-00100").status == "closed"
        released = session.get(Recording, 1)
        assert released is not None
        assert not released.legal_hold  # kept for the case type's period instead
    relink = client.post("/cases/AB-2026-00100/link", data={"csrf": token, "recordings": "3", "purpose": "x"})
    assert relink.status_code == 400 and "请先重新开启" in relink.text
    reopened = client.post("/cases/AB-2026-00100/reopen", data={"csrf": token, "reason": "复议"},
                           follow_redirects=False)
    assert reopened.status_code == 303
    assert "案件 AB-2026-00100 已重新开启。" in client.get(reopened.headers["location"]).text
    api = client.get("/api/cases/AB-2026-00100").json()
    assert (api["status"], [r["recording_id"] for r in api["recordings"]]) == ("open", [1])
    assert api["unlinked"][0]["reason"] == "误关联"
    assert [c["number"] for c in client.get("/api/cases", params={"status": "open"}).json()["cases"]] == [
        "AB-2026-00100", CASE]
    assert client.get("/api/cases", params={"status": "archived"}).status_code == 422
    kinds = _kinds(engine)
    for kind in ("case_opened", "case_linked", "case_unlinked", "case_closed", "case_reopened", "legal_hold"):
        assert kind in kinds


def test_a_clerk_links_from_the_recording_page(web_site):
    client, _engine = web_site
    web_login(client, "clerk")
    page = client.get("/recordings/3")
    assert 'action="/recordings/3/link"' in page.text
    token = form_token(page.text)
    unknown = client.post("/recordings/3/link", data={"csrf": token, "case": "AB-404", "purpose": "x"})
    assert unknown.status_code == 404 and "AB-404" in unknown.text
    done = client.post("/recordings/3/link", data={"csrf": token, "case": CASE, "purpose": "证明现场"},
                       follow_redirects=False)
    assert done.status_code == 303
    assert CASE in client.get("/recordings/3").text
    assert "证明现场" in client.get(f"/cases/{CASE}").text


def test_document_upload_needs_a_server_that_can_store_documents(web_site):
    client, _engine = web_site
    web_login(client, "clerk")
    token = form_token(client.get(f"/cases/{CASE}").text)
    refused = client.post(f"/cases/{CASE}/documents", data={"csrf": token, "title": "询问笔录"},
                          files=[("files", ("a.pdf", b"%PDF-1.4", "application/pdf"))])
    assert refused.status_code == 501 and "evidence case attach" in refused.json()["error"]


def test_upload_names_are_made_safe():
    from evidence.web.cases import upload_name

    assert upload_name("../../etc/passwd") == "passwd"
    assert upload_name("C:\\Users\\张三\\询问笔录.pdf") == "询问笔录.pdf"
    assert upload_name("a\x00b\nc.pdf") == "abc.pdf"
    assert upload_name("..") == upload_name(None) == upload_name("  ") == "document"


def test_a_server_left_running_with_old_terms_changes_no_case(web_site):
    """An administrator adopted new terms (a 12-month routine period) while this server still runs with the old
    ones: closing a case is refused before anything changes (409, both terms named), never half done."""
    from dataclasses import replace

    from catalog.policy_adoption import PolicyTerms, adopt_policy
    from catalog.retention import DEFAULT_CASE_TYPES, RetentionPolicy

    client, engine = web_site
    new = RetentionPolicy(12, DEFAULT_CASE_TYPES, "Asia/Shanghai")
    with Session(engine) as session:
        adopt_policy(session, PolicyTerms.of(new, disposal_approval="required"), by="admin", reason="新规定")
        session.commit()
    web_login(client, "clerk")
    token = form_token(client.get(f"/cases/{CASE}").text)
    today = client.app.state.config.today().isoformat()
    close = {"csrf": token, "closed_on": today, "confirm": CASE}
    refused = client.post(f"/cases/{CASE}/close", data=close, follow_redirects=False)
    assert refused.status_code == 409, refused.text
    assert "routine_months: adopted 12, here 6" in html.unescape(refused.text)
    with Session(engine) as session:
        assert get_case(session, CASE).status == "open"
        assert "case_closed" not in _kinds(engine)
    # The same server, restarted with the adopted terms, closes it
    client.app.state.config = replace(client.app.state.config, policy=new)
    closed = client.post(f"/cases/{CASE}/close", data=close, follow_redirects=False)
    assert closed.status_code == 303, closed.text
