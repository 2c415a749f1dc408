"""Redaction jobs attacked from outside (a hostile review, kept): outsiders reading a job, forged forms, hostile
request bodies, markup in a reason, two workers claiming one job, a user deactivated after asking, hostile frame
rates, a malformed request by someone the class refuses (recorded as a refusal, rights checked first)."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from catalog import CustodyEvent, CustodyKind, Officer, RedactionJob
from catalog import redaction_jobs as jobs
from catalog.classification import classify_recordings
from catalog.detail import frame_rate
from catalog.types import utcnow
from catalog.users import add_user, get_user, set_active
from evidence.web import WebConfig, create_app
from ingest.redaction import RedactionSpec, parse_box
from ingest.redaction.jobs import request_redaction, run_redaction_job
from tests.ingest.conftest import Card
from tests.webhelpers import add_web_users, form_token, web_login

pytestmark = pytest.mark.usefixtures("ffmpeg_available")
SPEC = RedactionSpec(boxes=(parse_box("0-3:96,64,96,96"),))


def _refusals(session: Session, recording_id: int) -> int:
    return len(session.exec(select(CustodyEvent).where(CustodyEvent.kind == CustodyKind.ACCESS_REFUSED.value,
                                                       CustodyEvent.recording_id == recording_id)).all())


def _app(card: Card) -> TestClient:
    config = WebConfig(engine=card.engine, store=card.store, key=card.key, case_pattern=card.settings.case_pattern)
    return TestClient(create_app(config), raise_server_exceptions=False)


def _in_unit(card: Card) -> int:
    """The clip as officer 010203's of unit U1 (set up in SQL: the card's device names no officer)."""
    with Session(card.engine) as session:
        clip = card.clip(session)
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
        clip.officer_number = "010203"
        session.add(clip)
        session.commit()
        assert clip.id is not None
        return clip.id


def test_outsiders_cannot_read_a_job_and_each_refusal_is_recorded(card: Card) -> None:
    clip_id = _in_unit(card)
    add_web_users(card.engine, {"clerk": "clerk", "u2sup": "supervisor", "officer": "officer", "aud": "auditor"},
                  officer_numbers={"officer": "030405"}, units={"u2sup": ["U2"]})
    with Session(card.engine) as session:
        job = request_redaction(session, user=get_user(session, "clerk"), original=card.clip(session), spec=SPEC,
                                faces=None, reason="SECRET-REASON", via="web")
        job_id = job.id
    with _app(card) as client:
        for name in ("u2sup", "officer", "aud"):
            assert web_login(client, name).status_code == 303
            with Session(card.engine) as session:
                before = _refusals(session, clip_id)
            page, api = client.get(f"/redactions/{job_id}"), client.get(f"/api/redactions/{job_id}")
            assert page.status_code == 403 and api.status_code == 403, name
            assert "SECRET-REASON" not in page.text + api.text
            # a job id that does not exist answers 404 to a refused role? (no oracle for other users' jobs)
            client.post("/logout", data={"csrf": form_token(client.get("/").text)})
            if name == "u2sup":  # scope refusals name the recording
                with Session(card.engine) as session:
                    assert _refusals(session, clip_id) == before + 2


def test_csrf_is_required_for_form_and_api(card: Card) -> None:
    add_web_users(card.engine, {"clerk": "clerk"})
    with Session(card.engine) as session:
        clip_id = card.clip(session).id
    with _app(card) as client:
        assert web_login(client, "clerk").status_code == 303
        no_token = client.post(f"/recordings/{clip_id}/redactions", data={"boxes": "0,0,8,8", "reason": "x"})
        wrong = client.post(f"/recordings/{clip_id}/redactions", data={"csrf": "x", "boxes": "0,0,8,8", "reason": "x"})
        api = client.post(f"/api/recordings/{clip_id}/redactions", json={"boxes": ["0,0,8,8"], "reason": "x"})
        assert no_token.status_code in (403, 422) and wrong.status_code == 403 and api.status_code == 403
    with Session(card.engine) as session:
        assert session.exec(select(RedactionJob)).all() == []


HOSTILE: list[dict[str, Any]] = [
    {"boxes": ["0,0,8,8"], "block": 1}, {"boxes": ["0,0,8,8"], "block": 0}, {"boxes": ["0,0,8,8"], "block": 513},
    {"boxes": ["0,0,8,8"], "faces": True, "face_threshold": 2}, {"boxes": ["0,0,8,8"], "face_threshold": "NaN"},
    {"boxes": ["-1,0,8,8"]}, {"boxes": ["0,0,0,8"]}, {"boxes": ["0,0,99999999999999999999999,8"]},
    {"boxes": ["nan-inf:0,0,8,8"]}, {"boxes": ["2-1:0,0,8,8"]}, {"boxes": ["5-6:0,0,8,8"]},
    {"boxes": ["0-1e309:0,0,8,8"]}, {"boxes": ["0-" + "9" * 400 + ":0,0,8,8"]},
    {"moving": ["2:0,0,8,8;1:0,0,8,8"]}, {"moving": ["1:0,0,8,8;1:0,0,8,8"]}, {"moving": ["0:0,0,8,8"]},
    {"moving": ["0:0,0,8,8;1:400,0,8,8"]}, {"moving": ["4:0,0,8,8;5:0,0,8,8"]},
    {"mutes": ["1-1"]}, {"bleeps": ["9-10"]}, {"boxes": "0,0,8,8"}, {"boxes": [1, 2]}, {"boxes": [None]},
    {"boxes": ["0,0,8,8"], "reason": ""}, {"boxes": ["0,0,8,8"], "reason": "\u200b\u0000 "},
    {"boxes": ["0,0,8,8"], "reason": "x" * 5000}, {"boxes": ["0,0,8,8"] * 10_001}, {},
    {"boxes": ["٠,٠,٨,٨", "0,0,²,8"]}, {"boxes": ["0:0:0:0-1:0,0,8,8"]},
]


def test_hostile_api_bodies_are_refused_without_a_500_and_nothing_is_queued(card: Card) -> None:
    add_web_users(card.engine, {"clerk": "clerk"})
    with Session(card.engine) as session:
        clip_id = card.clip(session).id
    wrong = []
    with _app(card) as client:
        assert web_login(client, "clerk").status_code == 303
        token = form_token(client.get(f"/recordings/{clip_id}").text)
        for n, body in enumerate(HOSTILE):
            answer = client.post(f"/api/recordings/{clip_id}/redactions", headers={"X-CSRF-Token": token},
                                 json={"reason": "公示", **body})
            if answer.status_code not in (400, 422):
                wrong.append((n, answer.status_code, answer.text[:200]))
    assert wrong == []
    with Session(card.engine) as session:
        assert session.exec(select(RedactionJob)).all() == []


def test_markup_in_the_reason_is_escaped_on_the_job_page(card: Card) -> None:
    add_web_users(card.engine, {"clerk": "clerk"})
    with Session(card.engine) as session:
        clip_id = card.clip(session).id
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    with _app(card) as client:
        assert web_login(client, "clerk").status_code == 303
        token = form_token(client.get(f"/recordings/{clip_id}").text)
        asked = client.post(f"/recordings/{clip_id}/redactions", data={"csrf": token, "boxes": "0,0,8,8",
                                                                        "reason": evil}, follow_redirects=False)
        assert asked.status_code == 303
        page = client.get(asked.headers["location"])
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        review = client.get(asked.headers["location"] + "?reason=" + evil)
        assert "<script>alert" not in review.text


def test_two_workers_claiming_at_once_get_one_job_once(card: Card) -> None:
    with Session(card.engine) as session:
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        job = request_redaction(session, user=clerk, original=card.clip(session), spec=SPEC, faces=None,
                                reason="公示", via="web")
        job_id = job.id
    assert job_id is not None
    barrier = threading.Barrier(8)
    got: list[object] = []

    def take(n: int) -> None:
        with Session(card.engine) as session:
            barrier.wait()
            try:
                got.append(jobs.claim(session, job_id, holder=f"w{n}", now=utcnow(), lease_s=60))
            except Exception as exc:  # noqa: BLE001
                got.append(exc)
    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for g in got if isinstance(g, RedactionJob)) == 1, got
    assert not [g for g in got if isinstance(g, Exception)], got


def test_a_user_deactivated_after_asking_is_refused_and_recorded(card: Card) -> None:
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        job = request_redaction(session, user=clerk, original=clip, spec=SPEC, faces=None, reason="公示", via="web")
        set_active(session, "clerk", False, by="admin")
        session.commit()
        job_id, clip_id = job.id, clip.id
        before = _refusals(session, clip_id or 0)
    assert job_id is not None
    assert run_redaction_job(card.engine, card.store, card.settings, card.key, job_id) == "failed"
    with Session(card.engine) as session:
        assert _refusals(session, clip_id or 0) == before + 1


def test_frame_rate_of_hostile_technical_values() -> None:
    for value in ("nan", "inf", "-inf/1", "1e400/1e399", "0/0", "25/0", "-25/1", "100000/1", "a/b", "", None, 7,
                  [1], {"x": 1}, "30000/1001/7"):
        assert 1 <= frame_rate({"video": {"frame_rate": value}}) <= 240
    technical: Any
    for technical in (None, {}, {"video": None}, {"video": []}, {"video": "25/1"}, {"video": ["25/1"]}):
        assert frame_rate(technical) == 25.0


def test_a_malformed_request_by_someone_the_class_refuses_is_recorded_as_a_refusal(card: Card) -> None:
    add_web_users(card.engine, {"sup": "supervisor"})
    with Session(card.engine) as session:
        clip = card.clip(session)
        classify_recordings(session, add_user(session, "boss", roles=["admin"], by="t"), [clip], to="state_secret",
                            reason="涉密")
        session.commit()
        clip_id = clip.id or 0
        before = _refusals(session, clip_id)
    with _app(card) as client:
        assert web_login(client, "sup").status_code == 303
        token = form_token(client.get("/").text)
        well = client.post(f"/api/recordings/{clip_id}/redactions", headers={"X-CSRF-Token": token},
                           json={"boxes": ["0,0,8,8"], "reason": "看看"})
        assert well.status_code == 403
        with Session(card.engine) as session:
            assert _refusals(session, clip_id) == before + 1
        bad = client.post(f"/api/recordings/{clip_id}/redactions", headers={"X-CSRF-Token": token},
                          json={"boxes": ["garbage"], "reason": "看看"})
        with Session(card.engine) as session:
            assert (bad.status_code, _refusals(session, clip_id)) == (403, before + 2), bad.text
