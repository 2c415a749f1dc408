"""Evidence is held until its case says otherwise: case numbers that name no registered case, and recordings
marked important, are under a pending-case hold from the moment they are catalogued, through every path that
stamps them (ingest, `evidence tag`, the station's tag endpoint, the browser), until a clerk decides."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from catalog import DEFAULT_CASE_PATTERN, CaseLink, Recording, apply_retention, create_case, plan_disposal
from catalog.cases import close_case, get_case
from catalog.disposal import Signer, start_sweep
from evidence.web import WebConfig, create_app
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.station.tagging import tag_dock_session
from tests.cli import run_cli
from tests.webhelpers import add_web_users, form_token, web_login

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

UNREGISTERED = "京朝城管罚字〔2026〕第00999号"
FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)
IMP = "ZFY_A123456_010203_20261120_083500_IMP.mp4"


def _held_reasons(session, policy):
    return {item.original_name: (item.status, item.hold_reasons)
            for item in plan_disposal(session, policy, as_of=FAR_FUTURE)}


def _row(report, name_ending: str):
    """The report's recording whose original name ends with *name_ending*."""
    return next(r for r in report.recordings if r["original_name"].endswith(name_ending))


@pytest.fixture
def cn_docked(samples, settings, engine, store):
    """The Chinese recorder sample docked with nothing stamped: its ingest report."""
    return ingest_folder(samples.cn_recorder, settings=settings, engine=engine, store=store, options=IngestOptions())


def _browser(engine, store, policy) -> TestClient:
    """A browser on the web app over this archive (a fresh station key, the default case pattern)."""
    config = WebConfig(engine=engine, store=store, key=Ed25519PrivateKey.generate(), case_pattern=DEFAULT_CASE_PATTERN,
                       policy=policy)
    return TestClient(create_app(config))


def test_a_case_number_without_a_registered_case_is_held_until_its_case_decides(samples, settings, engine, store,
                                                                               env):
    policy = settings.retention_policy
    # Given recordings stamped at the dock with a case number this archive has not registered
    report = ingest_folder(samples.cn_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions(case_number=UNREGISTERED, purpose="占道经营"))
    clip = _row(report, "083000.mp4")
    # Then they are held from the start, in the catalogue and in the store
    assert clip["legal_hold"] is True and store.head(clip["sha256"]).legal_hold is True
    with Session(engine) as session:
        plan = _held_reasons(session, policy)
        status, reasons = plan[clip["original_name"]]
        assert status == "held"
        assert reasons == (f"pending case: case number {UNREGISTERED} is not registered here; held until a clerk "
                           "links the recording to a registered case or removes the case number with a reason",)
        # and a disposal sweep long after the routine period proposes none of them
        signer = Signer("station-1", Ed25519PrivateKey.generate())
        assert start_sweep(session, store, policy, now=FAR_FUTURE, by="clerk", approval_required=True,
                           signer=signer) is None
    # and `evidence show` says why
    shown = json.loads(run_cli(env, "show", str(clip["id"]), "--json").output)
    assert shown["retention"]["pending_case"] == list(reasons)
    plan_json = json.loads(run_cli(env, "retention", "plan", "--as-of", "2099-01-01", "--json").output)
    assert any(item["hold_reasons"] == list(reasons) for item in plan_json["items"])

    # When the clerk registers the case, the recordings join it (the open case holds them)
    with Session(engine) as session:
        create_case(session, number=UNREGISTERED, title="占道经营", case_type="penalty-summary", unit="",
                    opened_on=date(2026, 11, 20), by="clerk:李四", case_pattern=DEFAULT_CASE_PATTERN, policy=policy,
                    today=date(2026, 11, 30))
        session.commit()
        apply_retention(session, store, policy, actor="clerk:李四")
        status, reasons = _held_reasons(session, policy)[clip["original_name"]]
        assert reasons == (f"case {UNREGISTERED} is open",)
        # and when it closes, the case type decides: ten years from closing, no hold
        close_case(session, get_case(session, UNREGISTERED), by="clerk:李四", closed_on=date(2026, 11, 29),
                   today=date(2026, 11, 30))
        session.commit()
        apply_retention(session, store, policy, actor="clerk:李四")
        row = session.exec(select(Recording).where(Recording.sha256 == clip["sha256"])).one()
        assert row.legal_hold is False and row.retention_rule.startswith(f"case {UNREGISTERED} closed 2026-11-29")
        assert row.retain_until == datetime(2036, 11, 29, 16, 0, tzinfo=UTC)
        assert store.head(row.sha256).legal_hold is False


def test_an_important_recording_is_held_until_a_clerk_removes_the_flag_with_a_reason(cn_docked, engine, store, env):
    imp, plain = _row(cn_docked, IMP), _row(cn_docked, "083000.mp4")
    assert imp["important"] is True and imp["legal_hold"] is True and plain["legal_hold"] is False
    assert store.head(imp["sha256"]).legal_hold is True
    # A clerk removes the flag, with a reason: the same command applies retention at once
    done = run_cli(env, "tag", str(imp["id"]), "--not-important", "--by", "clerk:李四",
                   "--reason", "复核：非重要文件", "--json")
    assert done.exit_code == 0, done.output
    with Session(engine) as session:
        row = session.get(Recording, imp["id"])
        assert row is not None and row.important is False and row.legal_hold is False
        assert row.stamp_revision == 2
    assert store.head(imp["sha256"]).legal_hold is False


def test_tagging_at_the_station_holds_at_once(cn_docked, settings, engine, store):
    clip = _row(cn_docked, "083000.mp4")
    results = tag_dock_session(engine, store, Ed25519PrivateKey.generate(), session_id=cn_docked.dock_session_id,
                               files=(clip["device_path"],), by="officer:010203", reason="现场补录",
                               case_pattern=settings.case_pattern, changes={"case_number": UNREGISTERED},
                               policy=settings.retention_policy)
    assert results == [{"id": clip["id"], "device_path": clip["device_path"], "revision": 2, "legal_hold": True}]
    assert store.head(clip["sha256"]).legal_hold is True


def test_stamping_a_case_number_in_the_browser_links_or_holds_without_waiting_for_the_nightly_job(
        samples, settings, engine, store):
    report = ingest_folder(samples.dcim_camera, settings=settings, engine=engine, store=store,
                           options=IngestOptions())
    photo, video = _row(report, "IMG_0001.JPG"), _row(report, "MVI_0003.MP4")
    assert not photo["legal_hold"] and not video["legal_hold"]
    policy = settings.retention_policy
    with Session(engine) as session:
        create_case(session, number="AB-2026-00042", title="无照经营", case_type="penalty-general", unit="",
                    opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN, policy=policy,
                    today=date(2026, 11, 30))
        session.commit()
    add_web_users(engine, {"clerk": "clerk"})
    with _browser(engine, store, policy) as client:
        assert web_login(client, "clerk").status_code == 303
        token = form_token(client.get(f"/recordings/{photo['id']}").text)
        # a registered, open case: linked and held at once
        done = client.post(f"/recordings/{photo['id']}/stamp", data={
            "csrf": token, "reason": "补录案件编号", "case_number": "AB-2026-00042"}, follow_redirects=False)
        assert done.status_code == 303
        # a number nobody registered: held pending the case, at once
        done = client.post(f"/recordings/{video['id']}/stamp", data={
            "csrf": token, "reason": "补录案件编号", "case_number": UNREGISTERED}, follow_redirects=False)
        assert done.status_code == 303
        page = client.get(f"/recordings/{video['id']}").text
        # the hold reason in the page's language (evidence.web.words; the catalogue records it in English)
        assert "待关联案件：案件编号" in page and 'id="hold-reasons"' in page
    with Session(engine) as session:
        links = session.exec(select(CaseLink).where(CaseLink.recording_id == photo["id"])).all()
        assert [(link.source, link.unlinked_at) for link in links] == [("stamp", None)]
        for recording_id in (photo["id"], video["id"]):
            row = session.get(Recording, recording_id)
            assert row is not None and row.legal_hold is True
            assert store.head(row.sha256).legal_hold is True


def test_an_officer_in_the_browser_may_mark_but_not_unmark_an_important_recording(cn_docked, settings, engine,
                                                                                   store):
    imp = _row(cn_docked, IMP)
    add_web_users(engine, {"officer": "officer", "clerk": "clerk"}, officer_numbers={"officer": "010203"})
    with _browser(engine, store, settings.retention_policy) as client:
        assert web_login(client, "officer").status_code == 303
        token = form_token(client.get(f"/recordings/{imp['id']}").text)
        refused = client.post(f"/recordings/{imp['id']}/stamp", data={"csrf": token, "reason": "不重要"})
        assert refused.status_code == 403 and "此修改将去除重要标记，从而解除其保全" in refused.text
        client.post("/logout", data={"csrf": token})
    with Session(engine) as session:
        row = session.get(Recording, imp["id"])
        assert row is not None and row.important is True and row.legal_hold is True
    assert store.head(imp["sha256"]).legal_hold is True
