"""Redaction jobs: a redaction asked for now and rendered by whoever renders at this site (issue 18, part 2).

The web app cannot render in a request (a long recording takes minutes), so it keeps the request here and the
derive queue's workers take it (`ingest.redaction.jobs`); the catalogue is the backlog, as it is for media work
(catalog.media_work): a message that is lost, a worker that dies mid-render, a broker that is away, and the job is
still here, `queued` or `running` with a lease that runs out, and the next worker or renderer takes it. The table is
its own outbox: every worker's relay hands the broker a message for each takeable job not sent in the last
RESEND_AFTER_S (`to_send`, `mark_sent`), whichever station asked for it (the web app is no station's worker).

A job goes queued -> running -> done (with the copy's id) or failed (with why, for a person). A worker takes it with
`claim` (one holder at a time, its lease renewed with the progress while it renders); a job whose holder stopped
renewing, or whose renderer was killed from outside (out of memory), is taken again, at most MAX_ATTEMPTS times,
then failed ("the renderer stopped N times"): a recording that kills every renderer must not be taken for ever.
Plain functions on a session; the caller commits.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from catalog.db import by_id
from catalog.models import RedactionJob
from catalog.said import kept, say

__all__ = ["JOB_STAGES", "JOB_STATES", "MAX_ATTEMPTS", "REDACT_ACTOR", "RESEND_AFTER_S", "add_job", "claim", "fail",
           "finish", "get_job", "job_as_json", "jobs_of", "mark_sent", "pending", "renew", "to_send"]

#: The redaction actor's wire name (ingest.queue.actors declares it with this name); its message is the original's id.
REDACT_ACTOR = "ingest.redact"
JOB_STATES = ("queued", "running", "done", "failed")
#: What a job is doing, as its page shows it (ingest.redaction.derivative.Progress names the middle three).
JOB_STAGES = ("queued", "starting", "tracking", "faces", "rendering", "archiving", "waiting", "done", "failed")
#: A job taken this many times whose holder stopped each time (killed, out of memory) is failed, not taken again.
MAX_ATTEMPTS = 3
#: A takeable job whose message was handed to the broker this long ago is sent again (the message was lost, or its
#: worker died): a message delivered twice finds the job taken or done.
RESEND_AFTER_S = 300.0


def add_job(session: Session, *, original_id: int, requested_by: str, reason: str, via: str, spec: dict[str, Any],
            faces: dict[str, Any] | None, now: datetime) -> RedactionJob:
    """Keep a redaction request (`queued`; its message goes with the next relay, `to_send`)."""
    job = RedactionJob(original_id=original_id, requested_by=requested_by, reason=reason[:500], via=via[:100],
                       spec=spec, faces=faces, created_at=now)
    session.add(job)
    session.flush()
    return job


def to_send(session: Session, *, now: datetime, limit: int = 100) -> list[RedactionJob]:
    """Takeable jobs whose message is not sent, or was sent over RESEND_AFTER_S ago, oldest first."""
    stale = now - timedelta(seconds=RESEND_AFTER_S)
    return list(session.exec(select(RedactionJob).where(
        _takeable(now), or_(col(RedactionJob.sent_at).is_(None), col(RedactionJob.sent_at) < stale))
        .order_by(col(RedactionJob.id)).limit(limit)))


def mark_sent(session: Session, jobs: list[RedactionJob], *, now: datetime) -> None:
    for job in jobs:
        job.sent_at = now
        session.add(job)


def _takeable(now: datetime) -> Any:
    return or_(col(RedactionJob.state) == "queued",
               (col(RedactionJob.state) == "running") & (col(RedactionJob.lease_until) < now))


def pending(session: Session, *, now: datetime, original_id: int | None = None, older_than: datetime | None = None,
            limit: int = 100) -> list[int]:
    """Ids of jobs a worker may take now (queued, or running with a lease run out), oldest first; of one original,
    or asked before *older_than*."""
    query = select(RedactionJob.id).where(_takeable(now))
    if original_id is not None:
        query = query.where(RedactionJob.original_id == original_id)
    if older_than is not None:
        query = query.where(col(RedactionJob.created_at) < older_than)
    return [i for i in session.exec(query.order_by(col(RedactionJob.id)).limit(limit)) if i is not None]


def claim(session: Session, job_id: int, *, holder: str, now: datetime, lease_s: float) -> RedactionJob | None:
    """Take job *job_id* for *holder* if it is takeable (one statement: of two workers, one gets it) and commit;
    None when another holds it or it is finished. A job taken MAX_ATTEMPTS times already is failed instead."""
    taken = session.execute(
        update(RedactionJob).where(col(RedactionJob.id) == job_id, _takeable(now),
                                   col(RedactionJob.attempts) < MAX_ATTEMPTS)
        .values(state="running", stage="starting", holder=holder, lease_until=now + timedelta(seconds=lease_s),
                attempts=RedactionJob.attempts + 1, started_at=now, error=None, error_said=None))
    if not getattr(taken, "rowcount", 0):
        stopped = say("the renderer stopped {n} times while rendering it (killed, or out of memory); not taken "
                      "again: ask again, perhaps for a shorter part", n=MAX_ATTEMPTS)
        session.execute(
            update(RedactionJob).where(col(RedactionJob.id) == job_id, _takeable(now),
                                       col(RedactionJob.attempts) >= MAX_ATTEMPTS)
            .values(state="failed", stage="failed", holder=None, finished_at=now, error=stopped,
                    error_said=kept(stopped)))
        session.commit()
        return None
    session.commit()
    return session.get(RedactionJob, job_id)


def renew(session: Session, job_id: int, *, holder: str, now: datetime, lease_s: float, stage: str,
          progress: float) -> bool:
    """Extend *holder*'s lease and record where it is; False when it no longer holds the job."""
    done = session.execute(
        update(RedactionJob).where(col(RedactionJob.id) == job_id, col(RedactionJob.holder) == holder,
                                   col(RedactionJob.state) == "running")
        .values(lease_until=now + timedelta(seconds=lease_s), stage=stage[:32],
                progress=min(max(progress, 0.0), 1.0)))
    return bool(getattr(done, "rowcount", 0))


def finish(session: Session, job_id: int, *, holder: str, now: datetime, copy_id: int) -> bool:
    """Record the copy made; False when *holder* no longer holds the job (nothing changed)."""
    done = session.execute(update(RedactionJob).where(col(RedactionJob.id) == job_id,
                                                      col(RedactionJob.holder) == holder)
                           .values(state="done", stage="done", progress=1.0, copy_id=copy_id, holder=None,
                                   lease_until=None, finished_at=now))
    return bool(getattr(done, "rowcount", 0))


def fail(session: Session, job_id: int, *, holder: str, now: datetime, error: str, retry: bool = False,
         counted: bool = False) -> bool:
    """Record why the job failed: for good, or (*retry*) back to `queued` for the next worker (the store or the
    catalogue was away; or, *counted*, its renderer was killed, which counts towards MAX_ATTEMPTS as a death
    does). False when *holder* no longer holds the job (nothing changed)."""
    values: dict[str, Any] = {"error": error[:2000], "error_said": kept(error), "holder": None, "lease_until": None}
    if retry:
        values |= {"state": "queued", "stage": "waiting"}
        if not counted:  # a take that ended by itself for now is not one of the MAX_ATTEMPTS deaths
            values["attempts"] = RedactionJob.attempts - 1
    else:
        values |= {"state": "failed", "stage": "failed", "finished_at": now}
    done = session.execute(update(RedactionJob).where(col(RedactionJob.id) == job_id,
                                                      col(RedactionJob.holder) == holder).values(**values))
    return bool(getattr(done, "rowcount", 0))


def get_job(session: Session, job_id: int) -> RedactionJob | None:
    """Job *job_id*, or None (a number no job can have included: `catalog.db.by_id`); who may see it is the
    caller's to check, against its original."""
    return by_id(session, RedactionJob, job_id)


def jobs_of(session: Session, original_id: int) -> list[RedactionJob]:
    """Every redaction job of one original, newest first."""
    return list(session.exec(select(RedactionJob).where(RedactionJob.original_id == original_id)
                             .order_by(col(RedactionJob.id).desc())))


def job_as_json(job: RedactionJob) -> dict[str, Any]:
    return {"id": job.id, "original_id": job.original_id, "state": job.state, "stage": job.stage,
            "progress": round(job.progress, 3), "copy_id": job.copy_id, "error": job.error,
            "requested_by": job.requested_by, "reason": job.reason, "spec": job.spec, "faces": job.faces,
            "attempts": job.attempts, "created_at": job.created_at.isoformat() if job.created_at else None,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}
