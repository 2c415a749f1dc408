"""Redaction jobs: asked for now (`request_redaction`), rendered later by a derive worker or the installation's
renderer (`run_redaction_job`), with their progress in the catalogue (catalog.redaction_jobs).

Asking checks everything that can be checked without reading the original, as `evidence redact` does before it
renders (catalog.access: role, rights, scope, class, a reason; every refusal recorded), and the specification
against the catalogued picture either way up (the shown size, which a rotation swaps, is known only once the
original is read). Running calls the one redaction operation (`ingest.redaction.derivative.redact_recording`) as the
person who asked, so their rights are checked again when the work is done: a role taken away meanwhile refuses it.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from catalog import CaseStateError, CatalogUnavailable, MediaKind, Recording, RecordingNotFound
from catalog import redaction_jobs as jobs
from catalog.access import AccessRefused, ReasonRequired
from catalog.models import RedactionJob
from catalog.said import said_of, say
from catalog.types import utcnow
from catalog.user_models import User
from ingest.config import Settings
from ingest.derive import FfmpegRefused
from ingest.errors import RenderInterrupted, first_line
from ingest.redaction.derivative import RedactionAbandoned, check_redaction_request, redact_recording
from ingest.redaction.faces import FaceSearch, FacesUnavailable
from ingest.redaction.spec import RedactionInvalid, RedactionSpec, spec_problems
from storage import EvidenceStore, StorageError

__all__ = ["LEASE_S", "JobsRun", "overall_progress", "request_redaction", "run_pending_jobs", "run_redaction_job"]

logger = logging.getLogger(__name__)

#: A running job's hold, renewed every third of it with its progress: a renderer that dies lets it go after this.
LEASE_S = 120.0
#: Where each stage lies on the job's progress bar, with and without a pass of its own before the rendering: regions
#: tracked, a face search (a video up to 1080p is searched in the rendering's own decode: its bar is the rendering's).
_BAR = {True: {"tracking": (0.0, 0.15), "faces": (0.15, 0.4), "rendering": (0.4, 0.95), "archiving": (0.95, 1.0)},
        False: {"rendering": (0.0, 0.95), "archiving": (0.95, 1.0)}}


def overall_progress(stage: str, share: float, *, faces: bool) -> float:
    """The job's share done (0 to 1) when *stage* is *share* done. Pure."""
    start, end = _BAR[faces].get(stage, (0.0, 0.0))
    return start + (end - start) * min(max(share, 0.0), 1.0)


def request_redaction(session: Session, *, user: User, original: Recording, spec: RedactionSpec,
                      faces: FaceSearch | None, reason: str, via: str) -> RedactionJob:
    """Queue a redaction of *original* for *user*, committed. Raises what `redact_recording` raises before it reads
    anything (AccessRefused, ReasonRequired, CaseStateError, RedactionInvalid), each refusal recorded."""
    why = check_redaction_request(session, user, original, reason, faces=faces)
    photo = original.media_kind == MediaKind.PHOTO.value
    side = max(original.width or 0, original.height or 0) or None  # the picture either way up
    problems = spec_problems(spec, width=side, height=side, duration_s=original.duration_s,
                             has_audio=bool(original.audio_codec) and not photo, photo=photo)
    problems = [p for p in problems if not (faces is not None and p.startswith("nothing to redact"))]
    if problems:
        raise RedactionInvalid(problems)
    assert original.id is not None
    face_request = None
    if faces is not None:
        face_request = {k: v for k, v in asdict(faces).items() if k != "found"}
    job = jobs.add_job(session, original_id=original.id, requested_by=user.name, reason=why, via=via,
                       spec=spec.as_json(), faces=face_request, now=utcnow())
    session.commit()
    return job


class _Reporter:
    """Keeps a running job's hold and tells the catalogue its progress, from a thread of its own every third of the
    lease (the rendering thread only sets the latest figures)."""

    def __init__(self, engine: Engine, job_id: int, holder: str, *, faces: bool, lease_s: float) -> None:
        self.engine, self.job_id, self.holder, self.faces, self.lease_s = engine, job_id, holder, faces, lease_s
        self.stage, self.progress = "starting", 0.0
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"redaction-job-{job_id}", daemon=True)

    def __call__(self, stage: str, share: float) -> None:
        if self.lost:  # another renderer holds the job now: stop (ffmpeg with it), record nothing
            raise RedactionAbandoned(f"redaction job {self.job_id} was taken over by another renderer")
        if stage in ("tracking", "faces"):  # a pass of its own first (tracking; faces of a photo, above 1080p)
            self.faces = True
        self.stage, self.progress = stage, overall_progress(stage, share, faces=self.faces)

    def still_held(self) -> bool:
        """Whether this renderer still holds the job, asked of the catalogue now (the hold renewed)."""
        self._tell()
        return not self.lost

    def _tell(self) -> None:
        try:
            with Session(self.engine) as session:
                if not jobs.renew(session, self.job_id, holder=self.holder, now=utcnow(), lease_s=self.lease_s,
                                  stage=self.stage, progress=self.progress):
                    self.lost = True
                session.commit()
        except Exception as exc:  # noqa: BLE001 - the catalogue is away: the next tick tries again
            logger.warning("Could not record the progress of redaction job %s: %s", self.job_id, first_line(exc))

    def _run(self) -> None:
        while not self._done.wait(min(2.0, self.lease_s / 3)):
            self._tell()

    def __enter__(self) -> _Reporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)


#: Failures that say something about the request or the original: recorded on the job, never tried again.
_FOR_GOOD = (AccessRefused, ReasonRequired, CaseStateError, RedactionInvalid, FacesUnavailable, FfmpegRefused,
             RecordingNotFound, ValueError)
#: Failures of the store, the catalogue or the renderer's process: the job goes back to `queued` for a worker.
_FOR_NOW = (StorageError, OperationalError, CatalogUnavailable, RenderInterrupted, OSError)


def run_redaction_job(engine: Engine, store: EvidenceStore, settings: Settings, key: Ed25519PrivateKey, job_id: int,
                      *, lease_s: float = LEASE_S) -> str | None:
    """Take job *job_id* and do it: its state after (`done`, `failed`, or `queued` when the store, the catalogue
    or the renderer failed for now and a worker must take it again; a renderer killed from outside counts towards
    catalog.redaction_jobs.MAX_ATTEMPTS); None when it was not takeable (another worker holds it, or it is
    finished), or was taken over while this one worked (its hold ran out: this one stops and records nothing)."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        job = jobs.claim(session, job_id, holder=holder, now=utcnow(), lease_s=lease_s)
        if job is None:
            return None
        request: dict[str, Any] = {"original_id": job.original_id, "requested_by": job.requested_by,
                                   "reason": job.reason, "via": job.via, "spec": job.spec, "faces": job.faces}
    state, error, copy_id, killed = "failed", "", None, False
    with _Reporter(engine, job_id, holder, faces=False, lease_s=lease_s) as reporter:
        try:
            copy_id = _redact(engine, store, settings, key, request, reporter)
            state = "done"
        except RedactionAbandoned:
            logger.warning("Redaction job %s was taken over by another renderer; this one stopped.", job_id)
            return None
        except RenderInterrupted as exc:  # killed from outside (out of memory) counts as a renderer's death
            state, error, killed = "queued", say("waiting to be tried again: {fault}", fault=first_line(exc)), \
                exc.killed
        except _FOR_GOOD as exc:
            error = said_of(exc)
        except _FOR_NOW as exc:
            state, error = "queued", say("waiting to be tried again: {fault}", fault=first_line(exc))
        except Exception as exc:  # recorded on the job for a person, with the whole trace in the log
            logger.exception("Redaction job %s failed unexpectedly.", job_id)
            error = say("unexpected: {kind}: {fault}", kind=type(exc).__name__, fault=first_line(exc))
    with Session(engine) as session:
        now = utcnow()
        if copy_id is not None:
            recorded = jobs.finish(session, job_id, holder=holder, now=now, copy_id=copy_id)
        else:
            recorded = jobs.fail(session, job_id, holder=holder, now=now, error=error, retry=state == "queued",
                                 counted=killed)
        session.commit()
    if not recorded:  # another renderer took the job over meanwhile: its outcome is the one recorded
        logger.warning("Redaction job %s was taken over by another renderer before this one ended (%s).", job_id,
                       state)
        return None
    logger.info("Redaction job %s of recording %s: %s%s", job_id, request["original_id"], state,
                f" ({error})" if error else f", copy {copy_id}")
    return state


def _redact(engine: Engine, store: EvidenceStore, settings: Settings, key: Ed25519PrivateKey,
            request: dict[str, Any], reporter: _Reporter) -> int:
    """The redaction *request* asks for, as the person who asked; the copy's id."""
    with Session(engine) as session:
        user = session.exec(select(User).where(User.name == request["requested_by"])).first()
        if user is None:
            raise AccessRefused(f"user {request['requested_by']!r} who asked for this redaction no longer exists",
                                recording_ids=[request["original_id"]], scope="")
        original = session.get(Recording, request["original_id"])
        if original is None:
            raise RecordingNotFound(str(request["original_id"]))
        spec = RedactionSpec.from_json(request["spec"])
        try:
            faces = FaceSearch(**request["faces"]) if request["faces"] is not None else None
        except TypeError as exc:
            raise RedactionInvalid([f"the queued face search cannot be read: {exc}"]) from exc
        made = redact_recording(session, store, settings, original, spec, user=user, reason=request["reason"],
                                key=key, via=request["via"], faces=faces, progress=reporter,
                                held=reporter.still_held)
        assert made.recording.id is not None
        return made.recording.id


@dataclass
class JobsRun:
    """What a pass over the waiting jobs did: how many ended in each state, and the copies made (their browser copy
    and decode check are to be queued)."""

    counts: dict[str, int] = field(default_factory=dict)
    copies: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return ", ".join(f"{n} {state}" for state, n in sorted(self.counts.items())) or "none"


def run_pending_jobs(engine: Engine, store: EvidenceStore, settings: Settings, key: Ed25519PrivateKey, *,
                     original_id: int | None = None,
                     should_stop: Callable[[], bool] = lambda: False) -> JobsRun:
    """Run every takeable job (of one original), oldest first, those asked for meanwhile included, until
    *should_stop*; how many ended in each state. Stops early when one must wait (the store or catalogue is away:
    the rest would wait too)."""
    run = JobsRun()
    tried: set[int] = set()
    while not should_stop():
        with Session(engine) as session:
            ids = [i for i in jobs.pending(session, now=utcnow(), original_id=original_id) if i not in tried]
        if not ids:
            return run
        for job_id in ids:
            if should_stop():
                return run
            tried.add(job_id)
            state = run_redaction_job(engine, store, settings, key, job_id)
            if state is None:
                continue
            run.counts[state] = run.counts.get(state, 0) + 1
            if state == "done":
                with Session(engine) as session:
                    done = session.get(RedactionJob, job_id)
                    if done is not None and done.copy_id is not None:
                        run.copies.append(done.copy_id)
            if state == "queued":
                return run
    return run
