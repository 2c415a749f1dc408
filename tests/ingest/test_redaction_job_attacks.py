"""Redaction jobs and the web app's redaction attacked from outside (a hostile review found each of these broken;
fixed since): a state secret's job shown to someone its class refuses, a moving region far past the end (millions
of regions), a form with more lines than a request takes, a renderer killed for memory every time, a worker that
lost its job going on, a specification edited in the table behind the application's back."""
from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog import CustodyEvent, CustodyKind, Recording, RedactionJob
from catalog import redaction_jobs as jobs
from catalog.classification import classify_recordings
from catalog.types import utcnow
from catalog.users import add_user, get_user
from evidence.web import WebConfig, create_app
from ingest.redaction import RedactionInvalid, RedactionSpec, parse_box, parse_moving
from ingest.redaction.jobs import request_redaction, run_redaction_job
from tests.ingest.conftest import Card
from tests.webhelpers import add_web_users, form_token, web_login

pytestmark = pytest.mark.usefixtures("ffmpeg_available")
SPEC = RedactionSpec(boxes=(parse_box("0-3:96,64,96,96"),))


def _events(session: Session, kind: CustodyKind, recording_id: int) -> list[CustodyEvent]:
    return list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == kind.value,
                                                        CustodyEvent.recording_id == recording_id)))


def _app(card: Card) -> TestClient:
    config = WebConfig(engine=card.engine, store=card.store, key=card.key, case_pattern=card.settings.case_pattern)
    return TestClient(create_app(config), raise_server_exceptions=False)


# --- 1. the job page and API show a state secret's job to someone its class refuses --------------------------

def test_state_secret_job_is_not_shown_to_a_supervisor_without_a_grant(card: Card) -> None:
    add_web_users(card.engine, {"clerk": "clerk", "sup": "supervisor"})  # sup: no units, the whole agency
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = get_user(session, "clerk")
        job = request_redaction(session, user=clerk, original=clip, spec=SPEC, faces=None,
                                reason="SECRET-REASON informant 线人 witness", via="web")
        # the original becomes a state secret afterwards (its case was classed)
        admin = add_user(session, "boss", roles=["admin"], by="test")
        classify_recordings(session, admin, [clip], to="state_secret", reason="涉密")
        session.commit()
        clip_id, job_id, name = clip.id, job.id, clip.original_name
    with _app(card) as client:
        assert web_login(client, "sup").status_code == 303
        # the recording's own page refuses the entry (a state secret needs a grant even to view)
        assert client.get(f"/recordings/{clip_id}").status_code == 403
        page = client.get(f"/redactions/{job_id}")
        api = client.get(f"/api/redactions/{job_id}")
        leaked = [what for what, ok in (("page", page.status_code == 200 and "SECRET-REASON" in page.text),
                                        ("page name", name in page.text),
                                        ("api", api.status_code == 200 and "SECRET-REASON" in api.text)) if ok]
        assert leaked == [], f"state secret's job shown to a supervisor without a grant: {leaked}"


# --- 2. a moving region whose keyframes run far past the recording's end is queued ---------------------------

def test_moving_region_far_past_the_end_is_refused_when_asked(card: Card) -> None:
    with Session(card.engine) as session:
        clip = card.clip(session)  # 3 s long
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        hostile = RedactionSpec(moving=(parse_moving("0:0,0,32,32;100000:0,0,32,32"),))
        # 100,000 s on a 3 s clip is 500,000 drawboxes (9,999,999 s would be 50 million Box objects in the worker)
        assert len(hostile.moving[0].boxes()) == 500_000
        with pytest.raises(RedactionInvalid):
            request_redaction(session, user=clerk, original=clip, spec=hostile, faces=None, reason="公示", via="web")


def test_api_queues_a_job_that_would_build_fifty_million_regions(card: Card) -> None:
    add_web_users(card.engine, {"clerk": "clerk"})
    with Session(card.engine) as session:
        clip_id = card.clip(session).id
    with _app(card) as client:
        assert web_login(client, "clerk").status_code == 303
        token = form_token(client.get(f"/recordings/{clip_id}").text)
        asked = client.post(f"/api/recordings/{clip_id}/redactions", headers={"X-CSRF-Token": token},
                            json={"moving": ["0:0,0,32,32;9999999:0,0,32,32"] * 1000, "reason": "公示"})
        assert asked.status_code == 400, (asked.status_code, asked.text[:300])


# --- 3. the form path turns too many lines into a 500 -------------------------------------------------------

def test_form_with_more_lines_than_the_api_allows_is_a_400_not_a_500(card: Card) -> None:
    add_web_users(card.engine, {"clerk": "clerk"})
    with Session(card.engine) as session:
        clip_id = card.clip(session).id
    with _app(card) as client:
        assert web_login(client, "clerk").status_code == 303
        token = form_token(client.get(f"/recordings/{clip_id}").text)
        asked = client.post(f"/recordings/{clip_id}/redactions", data={
            "csrf": token, "boxes": "\n".join(["0,0,8,8"] * 10_001), "reason": "公示"}, follow_redirects=False)
        assert asked.status_code in (400, 413, 422), (asked.status_code, asked.text[:200])


# --- 4. ffmpeg killed by the OOM killer every time: the job is put back for ever ------------------------------

class _OomKiller:
    """SIGKILLs every rendering decoder (ffmpeg) this process starts, as the kernel's out-of-memory killer does."""

    def __init__(self) -> None:
        self.killed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    stat = (proc / "stat").read_text()
                    cmd = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if stat.rsplit(")", 1)[1].split()[1] == me and b"-write_crc32" in cmd:
                    try:
                        os.kill(int(proc.name), signal.SIGKILL)
                        self.killed += 1
                    except OSError:
                        pass
            time.sleep(0.002)

    def __enter__(self) -> _OomKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_job_whose_ffmpeg_is_oom_killed_every_time_is_failed_not_retried_for_ever(card: Card) -> None:
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        job = request_redaction(session, user=clerk, original=clip, spec=SPEC, faces=None, reason="公示", via="web")
        job_id = job.id
    assert job_id is not None
    states = []
    with _OomKiller() as killer:
        for _ in range(5):
            states.append(run_redaction_job(card.engine, card.store, card.settings, card.key, job_id))
            if states[-1] != "queued":
                break
    with Session(card.engine) as session:
        row = session.get(RedactionJob, job_id)
        assert row is not None
        assert killer.killed >= 3
        assert row.state == "failed", (f"renderer killed {killer.killed} times; states {states}; job still "
                                       f"{row.state}, attempts {row.attempts}, error {row.error!r}")


# --- 5. a holder that lost its lease still renders, reads the original and catalogues a copy -------------------

def test_a_worker_that_lost_its_job_does_not_make_a_copy_or_report_done(card: Card) -> None:
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        job = request_redaction(session, user=clerk, original=clip, spec=SPEC, faces=None, reason="公示", via="web")
        job_id, clip_id = job.id, clip.id
    assert job_id is not None
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(
        run_redaction_job(card.engine, card.store, card.settings, card.key, job_id, lease_s=30)))
    worker.start()
    # the first worker stalls past its lease (seen by a second worker whose clock is past it): the second takes it
    stolen = None
    deadline = time.monotonic() + 30
    while stolen is None and time.monotonic() < deadline and worker.is_alive():
        with Session(card.engine) as session:
            stolen = jobs.claim(session, job_id, holder="second-worker", now=utcnow() + timedelta(seconds=120),
                                lease_s=600)
        time.sleep(0.005)
    worker.join()
    assert stolen is not None, "could not take the job from the running worker (it finished too fast)"
    with Session(card.engine) as session:
        row = session.get(RedactionJob, job_id)
        copies = session.exec(select(Recording).where(Recording.redacted_from_id == clip_id)).all()
        reads = _events(session, CustodyKind.ACCESSED, clip_id or 0)
        assert row is not None
        assert (result, len(copies), len(reads)) == (["queued"], 0, 0) or result == [None], (
            f"the worker that lost job {job_id} to another returned {result}, made {len(copies)} copy(ies) and "
            f"{len(reads)} read(s) of the original; the job is {row.state} held by {row.holder}, copy {row.copy_id}")


# --- 6. a spec edited in the table behind the app's back --------------------------------------------------------

@pytest.mark.parametrize("bad", [["not", "a", "dict"], {"boxes": [{"x": 1}]}, {"boxes": "0,0,8,8"},
                                 {"block": "NaN"}, {"boxes": [{"start_s": "nan", "end_s": None, "x": 0, "y": 0,
                                                               "w": 8, "h": 8}]}])
def test_an_edited_spec_fails_the_job_cleanly_and_the_page_still_opens(card: Card, bad: object) -> None:
    add_web_users(card.engine, {"clerk": "clerk"})
    with Session(card.engine) as session:
        clip = card.clip(session)
        job = request_redaction(session, user=get_user(session, "clerk"), original=clip, spec=SPEC, faces=None,
                                reason="公示", via="web")
        job_id = job.id
        session.execute(update(RedactionJob).where(col(RedactionJob.id) == job_id).values(spec=bad))
        session.commit()
    assert job_id is not None
    state = run_redaction_job(card.engine, card.store, card.settings, card.key, job_id)
    with Session(card.engine) as session:
        row = session.get(RedactionJob, job_id)
        assert row is not None
        problems = []
        if state != "failed" or "unexpected" in (row.error or ""):
            problems.append(f"worker: {state}, {row.error!r}")
    with _app(card) as client:
        assert web_login(client, "clerk").status_code == 303
        page = client.get(f"/redactions/{job_id}")
        if page.status_code >= 500:
            problems.append(f"job page: {page.status_code}")
    assert problems == []


def test_the_workers_refusal_is_said_on_the_job_page_in_the_readers_language(card: Card) -> None:
    """The worker keeps its refusal as a message (catalog.said.kept): the page says it in Chinese or English."""
    add_web_users(card.engine, {"clerk": "clerk"})
    with Session(card.engine) as session:
        job = request_redaction(session, user=get_user(session, "clerk"), original=card.clip(session), spec=SPEC,
                                faces=None, reason="公示", via="web")
        job_id = job.id
        session.execute(update(RedactionJob).where(col(RedactionJob.id) == job_id).values(spec={"block": "NaN"}))
        session.commit()
    assert job_id is not None
    assert run_redaction_job(card.engine, card.store, card.settings, card.key, job_id) == "failed"
    with Session(card.engine) as session:
        row = session.get(RedactionJob, job_id)
        assert row is not None and (row.error or "").startswith("the specification cannot be read")
    with _app(card) as client:
        assert web_login(client, "clerk").status_code == 303
        assert "无法读取遮蔽说明：ValueError" in client.get(f"/redactions/{job_id}").text
        assert "the specification cannot be read: ValueError" in client.get(f"/redactions/{job_id}?lang=en").text
