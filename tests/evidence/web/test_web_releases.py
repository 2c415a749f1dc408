"""Releases in the browser (issue 18, part 3): a clerk proposes, legal review decides (the proposer never sees the
decision form, and a post of it is refused), the package downloads, a share link's code is shown once, and the
release is withdrawn; each through the same catalogue functions as `evidence release`."""
from __future__ import annotations

import io
import re
import zipfile

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from catalog import Recording, load_or_create_key, open_catalog
from evidence.web import WebConfig, create_app
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from storage import LocalStore
from tests.ingest.test_redaction_copies import _device
from tests.webhelpers import add_web_users, form_token, web_login


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_release_is_proposed_decided_packaged_shared_and_withdrawn_in_the_browser(tmp_path, settings):
    run_ingest(_device(tmp_path / "card"), settings, IngestOptions(purpose="巡查"))
    engine = open_catalog(settings.database_url)
    add_web_users(engine, {"clerk": "clerk", "reviewer": "reviewer"})
    with Session(engine) as session:
        ids = [str(r.id) for r in session.exec(select(Recording).order_by(col(Recording.id)))]
    config = WebConfig(engine=engine, store=LocalStore(settings.store_path),
                       key=load_or_create_key(settings.station_key_path), settings=settings)
    try:
        with TestClient(create_app(config)) as clerk, TestClient(create_app(config)) as reviewer:
            assert web_login(clerk, "clerk").status_code == 303
            assert web_login(reviewer, "reviewer").status_code == 303
            page = clerk.get("/releases")
            assert 'id="release-form"' in page.text and "申请发布或移送" in page.text
            token = form_token(page.text)
            form = {"csrf": token, "kind": "publication", "title": "整治公示", "recipient": "社会公众",
                    "legal_basis": "政府信息公开条例", "reason": "执法公示", "recordings": " ".join(ids)}
            # an unredacted original is not published: the form comes back with the reason and its values
            refused = clerk.post("/releases", data=form)
            assert refused.status_code == 400
            assert "属原始文件（请改为公示遮蔽处理件：`evidence redact`）" in refused.text
            assert "publish a redacted copy instead" not in refused.text  # said in the page's language
            assert 'value="整治公示"' in refused.text
            english = clerk.post("/releases?lang=en", data=form)
            assert english.status_code == 400
            assert "an original (publish a redacted copy instead: `evidence redact`): a publication (公示) carries " \
                "only what is classed public (公开)" in english.text
            assert "属原始文件" not in english.text
            assert clerk.get("/releases?lang=zh_CN").status_code == 200  # back to the default language
            made = clerk.post("/releases", data={**form, "kind": "transfer", "recipient": "区人民检察院",
                                                 "reason": "移送审查"}, follow_redirects=False)
            assert made.status_code == 303
            path = made.headers["location"]
            number = path.rsplit("/", 1)[1]
            # the proposer sees no decision form, and a post of one is refused
            mine = clerk.get(path)
            assert 'id="decide-form"' not in mine.text and "待审核" in mine.text
            assert clerk.post(f"{path}/decide", data={"csrf": token, "decision": "approve",
                                                      "note": "同意"}).status_code == 403
            # legal review approves
            theirs = reviewer.get(path)
            assert 'id="decide-form"' in theirs.text
            decided = reviewer.post(f"{path}/decide", data={"csrf": form_token(theirs.text), "decision": "approve",
                                                            "note": "符合移送条件"}, follow_redirects=False)
            assert decided.status_code == 303
            assert f"发布申请 {number} 已批准。" in reviewer.get(decided.headers["location"]).text
            approved = clerk.get(path)
            assert "已批准" in approved.text and f"releases/release-{int(number):06d}-01-approved-" in approved.text
            # the package downloads, its signed decision inside
            package = clerk.post(f"{path}/package", data={"csrf": token})
            assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
            with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
                assert any(f"data/release/records/release-{int(number):06d}-01-approved-" in n
                           for n in archive.namelist())
            # a share link: its code shown once, never stored on the page again
            shared = clerk.post(f"{path}/shares", data={"csrf": token, "recipient": "王检察官", "days": "3"})
            assert shared.status_code == 200 and shared.headers["cache-control"] == "no-store"
            code = re.search(r'id="share-code-value">(\d{8})<', shared.text)
            link = re.search(r'id="share-path">(/share/[^<]+)<', shared.text)
            assert code and link
            assert code.group(1) not in clerk.get(path).text and "王检察官" in clerk.get(path).text
            with TestClient(create_app(config)) as outsider:
                assert 'id="share-code"' in outsider.get(link.group(1)).text
            # withdrawn: recorded and signed, and the share link is dead
            withdrawn = clerk.post(f"{path}/withdraw", data={"csrf": token, "reason": "退回补充侦查"},
                                   follow_redirects=False)
            assert withdrawn.status_code == 303 and "已撤回" in clerk.get(path).text
            with TestClient(create_app(config)) as outsider:
                assert outsider.get(link.group(1)).status_code == 410
            assert "Releases" in clerk.get("/releases?lang=en").text
    finally:
        engine.dispose()


def test_sharing_a_release_holding_what_the_sharer_may_not_download_is_refused_not_a_crash(web_site):
    """A supervisor may propose releases but not download a personal-privacy recording they were granted nothing
    on: sharing a release that holds one is a 403 naming it, recorded (it was a 500: the refusal went uncaught)."""
    from sqlmodel import Session, select

    from catalog import CustodyEvent
    from tests.webhelpers import form_token, web_login

    client, engine = web_site
    web_login(client, "clerk")
    token = form_token(client.get("/releases").text)
    client.post("/recordings/1/class", data={"csrf": token, "sensitivity": "personal", "reason": "含个人信息"})
    proposed = client.post("/releases", data={"csrf": token, "kind": "transfer", "title": "证据移送",
                                              "recipient": "区检察院", "legal_basis": "刑事诉讼法", "reason": "移送",
                                              "recordings": "1"}, follow_redirects=False)
    assert proposed.status_code == 303
    client.cookies.clear()
    web_login(client, "supervisor")
    token = form_token(client.get("/releases").text)
    shared = client.post("/releases/1/shares", data={"csrf": token, "recipient": "王检察官", "days": "7"})
    assert shared.status_code == 403 and "个人隐私" in shared.text and "share" not in shared.headers.get("location", "")
    with Session(engine) as session:
        refused = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused",
                                                          CustodyEvent.actor == "supervisor")).all()
    assert [(e.recording_id, e.details["action"]) for e in refused] == [(1, "share")]
