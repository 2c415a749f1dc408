"""Redaction jobs (issue 18, part 2): asked for now, rendered by the derive queue's worker with their progress, and
kept in the catalogue so that a lost message, a dead renderer or a broker that is away loses nothing. Attacked as
an outsider would: a person who may not redact, a request that cannot be carried out, a role taken away between the
request and the rendering, a renderer killed mid-job (again and again), the store away while it renders. On SQLite
and PostgreSQL, with the real dramatiq actor on an in-process broker."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog import CustodyEvent, CustodyKind, DerivedMedia, Recording, RedactionJob
from catalog import redaction_jobs as jobs
from catalog.access import AccessRefused
from catalog.types import utcnow
from catalog.users import add_user, set_roles
from ingest.queue.connection import open_queue
from ingest.queue.relay import relay_redaction_jobs
from ingest.redaction import RedactionInvalid, RedactionSpec, parse_box, parse_moving, parse_mute
from ingest.redaction.derivative import redact_recording
from ingest.redaction.jobs import overall_progress, request_redaction, run_pending_jobs, run_redaction_job
from storage import S3WormStore, make_s3_client
from tests.helpers.queues import drain
from tests.ingest.conftest import Card

SPEC = RedactionSpec(boxes=(parse_box("1-2:96,64,96,96"),), mutes=(parse_mute("0.5-1.5"),),
                     moving=(parse_moving("0:0,0,32,32;2:200,100,32,32"),))


def test_the_progress_bar_goes_from_the_search_through_the_rendering_to_the_archive() -> None:
    assert overall_progress("faces", 0.5, faces=True) == pytest.approx(0.275)
    assert overall_progress("tracking", 1.0, faces=True) == pytest.approx(0.15)
    assert overall_progress("rendering", 0.0, faces=True) == pytest.approx(0.4)
    assert overall_progress("rendering", 1.0, faces=False) == pytest.approx(0.95)
    assert overall_progress("archiving", 1.0, faces=False) == pytest.approx(1.0)
    assert overall_progress("rendering", 7.0, faces=False) == pytest.approx(0.95)  # never past its stage
    assert overall_progress("unknown", 0.5, faces=True) == 0.0


def _events(session: Session, kind: CustodyKind, recording_id: int) -> list[CustodyEvent]:
    return list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == kind.value,
                                                        CustodyEvent.recording_id == recording_id)
                             .order_by(col(CustodyEvent.id))))


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_queued_redaction_is_rendered_by_the_derive_worker_and_kept(card: Card) -> None:
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        officer = add_user(session, "officer", roles=["officer"], by="test", officer_number="000000")
        session.commit()
        # Whoever may not redact is refused when asking, the refusal recorded; nothing is queued
        with pytest.raises(AccessRefused, match="may not redact"):
            request_redaction(session, user=officer, original=clip, spec=SPEC, faces=None, reason="公示",
                              via="web")
        assert _events(session, CustodyKind.ACCESS_REFUSED, clip.id or 0)[-1].actor == "officer"
        # A request that cannot be carried out is refused when asking, every problem named
        with pytest.raises(RedactionInvalid, match="lies outside") as refused:
            request_redaction(session, user=clerk, original=clip, spec=RedactionSpec(
                boxes=(parse_box("0-1:300,300,64,64"),), mutes=(parse_mute("5-6"),)), faces=None, reason="公示",
                via="web")
        assert "starts after the recording ends" in str(refused.value)
        assert session.exec(select(RedactionJob)).all() == []
        job = request_redaction(session, user=clerk, original=clip, spec=SPEC, faces=None, reason="公示前遮蔽",
                                via="web")
        assert (job.state, job.progress, job.copy_id, job.requested_by) == ("queued", 0.0, None, "clerk")
        original_id, job_id = clip.id, job.id
        assert job_id is not None and original_id is not None

    # The relay hands the broker one message for it, and not again while it is fresh
    with open_queue(card.settings, engine=card.engine, store=card.store, key=card.key) as queue:
        assert relay_redaction_jobs(card.engine, queue.actors.redact.send) == 1
        assert relay_redaction_jobs(card.engine, queue.actors.redact.send) == 0
        # the real actor on the derive queue renders it
        drain(queue.broker, queue.actors.redact.queue_name, fail_fast=True)
    with Session(card.engine) as session:
        done = session.get(RedactionJob, job_id)
        assert done is not None and (done.state, done.stage, done.progress) == ("done", "done", 1.0), done
        assert done.holder is None and done.attempts == 1 and done.error is None
        copy = session.get(Recording, done.copy_id)
        assert copy is not None and copy.redacted_from_id == original_id
        assert copy.state in ("archived", "verified")
        made = _events(session, CustodyKind.REDACTED, copy.id or 0)
        assert made[0].actor == "clerk" and made[0].details["reason"] == "公示前遮蔽"
        assert made[0].details["spec"]["moving"][0]["keyframes"][1]["x"] == 200
        reads = _events(session, CustodyKind.ACCESSED, original_id)
        assert len(reads) == 1 and reads[0].details["via"] == "web"
        assert jobs.job_as_json(done)["copy_id"] == copy.id
        # and the actor queued the copy's browser copy and decode check, which the same drain did
        assert {d.kind for d in session.exec(select(DerivedMedia).where(DerivedMedia.recording_id == copy.id))} == {
            "thumbnail", "proxy"}
        # a message delivered twice finds the job done: nothing is made again
        assert run_redaction_job(card.engine, card.store, card.settings, card.key, job_id) is None
        assert session.exec(select(Recording).where(Recording.redacted_from_id == original_id)).all() == [copy]


@pytest.mark.usefixtures("ffmpeg_available")
def test_the_rendering_reports_each_stage_and_its_share(card: Card) -> None:
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        told: list[tuple[str, float]] = []
        redact_recording(session, card.store, card.settings, clip, SPEC, user=clerk, reason="公示", key=card.key,
                         via="test", progress=lambda stage, share: told.append((stage, share)))
    stages = [stage for stage, _ in told]
    assert stages[0] == "rendering" and stages[-1] == "archiving", told
    rendering = [share for stage, share in told if stage == "rendering"]
    # ffmpeg's own progress lines: rising, and ending near the whole 3 s
    assert rendering == sorted(rendering) and len(rendering) >= 2 and rendering[-1] > 0.9, rendering


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_role_taken_away_before_the_rendering_refuses_it(card: Card) -> None:
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        job = request_redaction(session, user=clerk, original=clip, spec=SPEC, faces=None, reason="公示", via="web")
        set_roles(session, "clerk", ["auditor"], by="admin")
        session.commit()
        assert job.id is not None
        assert run_redaction_job(card.engine, card.store, card.settings, card.key, job.id) == "failed"
        session.refresh(job)
        assert job.state == "failed" and "may not redact" in (job.error or "") and job.copy_id is None
        assert _events(session, CustodyKind.ACCESS_REFUSED, clip.id or 0)[-1].details["action"] == "redact"
        assert _events(session, CustodyKind.ACCESSED, clip.id or 0) == []


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_job_whose_renderer_died_is_taken_again_and_given_up_after_three_deaths(card: Card) -> None:
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        first = request_redaction(session, user=clerk, original=clip, spec=SPEC, faces=None, reason="公示",
                                  via="web")
        second = request_redaction(session, user=clerk, original=clip, spec=RedactionSpec(
            boxes=(parse_box("0-3:0,0,64,64"),)), faces=None, reason="公示", via="web")
        assert first.id is not None and second.id is not None
        # A renderer takes the first and dies (its lease is not renewed): while its lease lasts nobody else takes it
        now = utcnow()
        assert jobs.claim(session, first.id, holder="dead", now=now, lease_s=60) is not None
        assert jobs.claim(session, first.id, holder="other", now=now, lease_s=60) is None
        assert first.id not in jobs.pending(session, now=now)
        # once it has run out, the next renderer takes it and finishes it
        later = now + timedelta(seconds=61)
        assert first.id in jobs.pending(session, now=later)
        session.execute(update(RedactionJob).where(col(RedactionJob.id) == first.id)
                        .values(lease_until=now - timedelta(seconds=1)))
        session.commit()
        assert run_redaction_job(card.engine, card.store, card.settings, card.key, first.id) == "done"
        session.refresh(first)
        assert first.attempts == 2 and first.copy_id is not None
        # The second kills every renderer that takes it: after three it is failed, not taken for ever
        long_ago = utcnow() - timedelta(seconds=600)
        for n in range(3):
            assert jobs.claim(session, second.id, holder=f"dead-{n}", now=long_ago + timedelta(seconds=10 * n),
                              lease_s=1) is not None
        assert jobs.claim(session, second.id, holder="next", now=utcnow(), lease_s=60) is None
        session.refresh(second)
        assert second.state == "failed" and "stopped 3 times" in (second.error or "")
        assert run_pending_jobs(card.engine, card.store, card.settings, card.key).counts == {}


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_store_away_while_rendering_puts_the_job_back_not_failed(card: Card) -> None:
    # The original is in an S3 store that does not answer (nothing listens on its port): the rendering cannot read
    # it, which ffmpeg reports as it would a damaged file; the store is asked, and the job waits instead of failing
    away = S3WormStore(client=make_s3_client(endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b"),
                       bucket="nowhere")
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        job = request_redaction(session, user=clerk, original=clip, spec=SPEC, faces=None, reason="公示", via="web")
        assert job.id is not None
        assert run_redaction_job(card.engine, away, card.settings, card.key, job.id) == "queued"
        session.refresh(job)
        assert job.state == "queued" and job.attempts == 0 and "tried again" in (job.error or "")
        assert _events(session, CustodyKind.ACCESSED, clip.id or 0) == []  # nothing was read
        # and once the store answers, the next renderer makes the copy
        run = run_pending_jobs(card.engine, card.store, card.settings, card.key)
        assert run.counts == {"done": 1} and len(run.copies) == 1
