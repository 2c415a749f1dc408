"""Sensitivity classes in the browser's routes (issue 18, part 1), on real ingested media with thumbnails and
proxies: the class is shown, searched and changed with a reason; the page, thumbnail, proxy and original obey the
same table as the command line (catalog.access.check_access); grants are given and revoked on the case page."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from catalog import (
    DEFAULT_CASE_PATTERN,
    DEFAULT_CASE_TYPES,
    CustodyEvent,
    DerivedMedia,
    Recording,
    RetentionPolicy,
    load_or_create_key,
    open_catalog,
)
from catalog.cases import create_case
from catalog.sensitivity import parse_names
from evidence.web import WebConfig, create_app
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from storage import LocalStore
from tests.webhelpers import add_web_users, form_token, web_login

CASE = "AB-2026-00042"


@pytest.fixture
def site(samples, settings):
    run_ingest(samples.sidecar_recorder, settings, IngestOptions(purpose="巡查"))  # with thumbnails and proxies
    engine = open_catalog(settings.database_url)
    add_web_users(engine, {"clerk": "clerk", "supervisor": "supervisor", "admin": "admin", "auditor": "auditor"})
    with Session(engine) as session:
        video = session.exec(select(Recording).join(DerivedMedia, col(DerivedMedia.recording_id) == Recording.id)
                             .where(DerivedMedia.kind == "proxy", Recording.media_kind == "video")).first()
        assert video is not None
        create_case(session, number=CASE, title="无照经营", case_type="penalty-general", unit="",
                    opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN,
                    policy=RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai"), today=date(2026, 11, 23))
        session.commit()
        video_id = video.id
    config = WebConfig(engine=engine, store=LocalStore(settings.store_path),
                       key=load_or_create_key(settings.station_key_path), case_pattern=settings.case_pattern,
                       settings=settings)
    with TestClient(create_app(config)) as client:
        yield client, engine, video_id
    engine.dispose()


def _as(client: TestClient, name: str) -> str:
    client.cookies.clear()
    assert web_login(client, name).status_code == 303
    return form_token(client.get("/cases").text)


def _reads(client: TestClient, video_id: int) -> dict[str, int]:
    """What each read of the recording answers: the page, the thumbnail, the proxy, the original."""
    return {"page": client.get(f"/recordings/{video_id}?reason=复核").status_code,
            "thumbnail": client.get(f"/media/{video_id}/thumbnail?reason=复核").status_code,
            "proxy": client.get(f"/media/{video_id}/proxy?reason=复核", headers={"Range": "bytes=0-99"}).status_code,
            "original": client.get(f"/media/{video_id}/original?reason=复核",
                                   headers={"Range": "bytes=0-99"}).status_code}


def test_a_class_is_changed_shown_searched_and_enforced_on_every_route(site):
    client, engine, video_id = site
    csrf = _as(client, "clerk")
    case_url = f"/cases/{CASE}"
    assert client.post(f"{case_url}/link", data={"csrf": csrf, "recordings": str(video_id), "purpose": "现场"},
                       follow_redirects=False).status_code == 303
    url = f"/recordings/{video_id}/class"
    # A clerk classes the video personal privacy, with a reason (none: 400; forged token: 403)
    assert client.post(url, data={"csrf": "forged", "sensitivity": "personal", "reason": "x"}).status_code == 403
    blank = client.post(url, data={"csrf": csrf, "sensitivity": "personal", "reason": " "})
    assert blank.status_code == 400 and "变更敏感类别需要说明理由，理由将随变更一并记录" in blank.text
    assert client.post(url, data={"csrf": csrf, "sensitivity": "personal", "reason": "拍到未成年人"},
                       follow_redirects=False).status_code == 303
    page = client.get(f"/recordings/{video_id}").text
    assert 'id="sensitivity">个人隐私<' in page and 'id="sensitivity-badge"' in page
    assert f'action="/recordings/{video_id}/class"' in page  # the change form posts to the route tested here
    # and may not lower it
    lowered = client.post(url, data={"csrf": csrf, "sensitivity": "public", "reason": "误设"})
    assert lowered.status_code == 403 and (f"无权将录像 {video_id} 的敏感类别从“个人隐私”（personal privacy）降为“公开”"
                                           "（public）：需要以下角色之一：管理员, 监督人员") in lowered.text
    # The search filters by class and marks it
    found = client.get("/?sensitivity=personal").text
    assert f'href="/recordings/{video_id}"' in found and "个人隐私" in found
    assert f'href="/recordings/{video_id}"' not in client.get("/?sensitivity=internal").text
    assert client.get("/?sensitivity=secret").status_code == 400
    # The custodian reads it all; a supervisor sees the page and thumbnail but not the footage
    assert _reads(client, video_id) == {"page": 200, "thumbnail": 200, "proxy": 206, "original": 206}
    _as(client, "supervisor")
    refused = client.get(f"/media/{video_id}/proxy?reason=复核")
    assert refused.status_code == 403 and "个人隐私" in refused.text
    assert _reads(client, video_id) == {"page": 200, "thumbnail": 200, "proxy": 403, "original": 403}
    # Made a state secret by an administrator, it is closed to everyone, the custodian too, page included
    csrf = _as(client, "admin")
    assert client.post(url, data={"csrf": csrf, "sensitivity": "state_secret", "reason": "定密"},
                       follow_redirects=False).status_code == 303
    for name in ("clerk", "supervisor", "admin"):
        _as(client, name)
        assert _reads(client, video_id) == {"page": 403, "thumbnail": 403, "proxy": 403, "original": 403}, name
        assert client.get(f"/api/recordings/{video_id}").status_code == 403
    # The search does not promise a thumbnail it will refuse
    assert f"/media/{video_id}/thumbnail" not in client.get("/?sensitivity=state_secret").text
    # The administrator, closed out too, may not link it anywhere (a grant there would open it)
    csrf = _as(client, "admin")
    relinked = client.post(f"{case_url}/link", data={"csrf": csrf, "recordings": str(video_id), "purpose": "并案"})
    assert relinked.status_code == 403 and (f"无权将录像 {video_id} 关联到案件 {CASE}：该录像属于“国家秘密”"
                                            "（state secret）：播放需要其所服务案件的调阅授权") in relinked.text
    # but grants the supervisor access to the case it serves until a day: the supervisor reads it
    bad_day = client.post(f"{case_url}/grants", data={"csrf": csrf, "user": "supervisor", "reason": "督察",
                                                      "until": "2099-13-01"})
    assert bad_day.status_code == 400 and "&#39;2099-13-01&#39; 不是日期（YYYY-MM-DD）" in bad_day.text
    assert client.post(f"{case_url}/grants", data={"csrf": csrf, "user": "supervisor", "reason": "督察",
                                                   "until": "2099-12-31"}, follow_redirects=False).status_code == 303
    shown = client.get(case_url).text
    assert 'id="grants"' in shown and "supervisor" in shown and "国家秘密" in shown
    _as(client, "supervisor")
    assert _reads(client, video_id) == {"page": 200, "thumbnail": 200, "proxy": 206, "original": 206}
    # Revoked, the supervisor is refused again
    csrf = _as(client, "admin")
    assert client.post(f"{case_url}/grants", data={"csrf": csrf, "user": "supervisor", "reason": "办结",
                                                   "revoke": "on"}, follow_redirects=False).status_code == 303
    _as(client, "supervisor")
    assert _reads(client, video_id)["proxy"] == 403
    # Every refusal by class is in the custody log with why "class"
    with Session(engine) as session:
        refusals = [e for e in session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused",
                                                                        CustodyEvent.recording_id == video_id))]
        assert refusals and all(e.details["why"] == "class" for e in refusals)
        kinds = [e.kind for e in session.exec(select(CustodyEvent).order_by(col(CustodyEvent.id)))]
        assert kinds.count("access_granted") == 1 and kinds.count("access_revoked") == 1


def test_a_case_class_set_in_the_browser_raises_its_recordings(site):
    client, engine, video_id = site
    csrf = _as(client, "clerk")
    case_url = f"/cases/{CASE}"
    assert client.post(f"{case_url}/link", data={"csrf": csrf, "recordings": str(video_id), "purpose": "现场"},
                       follow_redirects=False).status_code == 303
    assert client.post(f"{case_url}/class", data={"csrf": csrf, "sensitivity": "commercial", "reason": "涉及商户"},
                       follow_redirects=False).status_code == 303
    page = client.get(case_url).text
    assert 'id="case-sensitivity">商业秘密<' in page and f'action="/cases/{CASE}/class"' in page
    with Session(engine) as session:
        row = session.get(Recording, video_id)
        assert row is not None and row.sensitivity == "commercial"
    # A clerk may not lower the case, nor grant access (no such form for them, and the route refuses)
    lowered = client.post(f"{case_url}/class", data={"csrf": csrf, "sensitivity": "public", "reason": "x"})
    assert lowered.status_code == 403 and ("无权将案件 AB-2026-00042 的敏感类别从“商业秘密”（commercial secret）"
                                           "降为“公开”（public）：需要以下角色之一：管理员, 监督人员") in lowered.text
    assert 'id="grant-form"' not in page
    assert client.post(f"{case_url}/grants", data={"csrf": csrf, "user": "clerk", "reason": "x"}).status_code == 403


def test_the_agencys_names_for_the_classes_are_shown(site):
    client, _engine, video_id = site
    config = client.app.state.config
    client.app.state.config = replace(config, class_names=parse_names({"personal": {"zh": "隐私", "en": "private"}}))
    csrf = _as(client, "clerk")
    assert client.post(f"/recordings/{video_id}/class", data={"csrf": csrf, "sensitivity": "personal",
                                                             "reason": "拍到未成年人"}, follow_redirects=False
                       ).status_code == 303
    assert 'id="sensitivity">隐私<' in client.get(f"/recordings/{video_id}").text
    assert 'id="sensitivity">private<' in client.get(f"/recordings/{video_id}?lang=en").text
    assert ">隐私<" in client.get("/?sensitivity=personal&lang=zh_CN").text
