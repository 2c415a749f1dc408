"""Doing the media backlog (`catalog.media_work`): thumbnails, proxies and decode checks after archiving.

`do_media_work` does what one recording still needs, each kind on its own: a thumbnail that cannot be made does not
keep its proxy from being made. What fails because of the media (DeriveFailed, a decode that runs past its deadline,
a format this machine cannot decode) is recorded for good (`record_media_failure`) and not tried again; what fails
because the store or catalogue is away is left pending for the next pass.

`work_through_backlog` is one pass over the backlog, each recording tried once. `render_backlog` is the pass as
one renderer per installation does it (`EVIDENCE_HOME/media-work.lock`): the station's render thread,
`evidence derive-pending`, and the renderer `evidence ingest` starts in the background (`start_renderer`) all go
through it, so two of them never render the same recording at once, and a dock that finds the renderer busy
leaves its recordings to it (the renderer looks again after it lets go).
"""
from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from catalog import Recording, RecordingNotFound
from catalog.media_work import DECODE, media_backlog, pending_work, record_media_failure, work_done
from ingest.config import Settings
from ingest.decode_check import check_recording
from ingest.derive import derive_recording
from ingest.errors import DecodeIncomplete, DeriveFailed, first_line
from storage import BackendUnavailable, EvidenceStore, StorageError

__all__ = ["BacklogPass", "MediaWorkOutcome", "do_media_work", "render_backlog", "renderer_lock", "start_renderer",
           "work_through_backlog"]

logger = logging.getLogger(__name__)

#: The lock file (in EVIDENCE_HOME) held by the one renderer at work; it holds that renderer's process id.
LOCK_NAME = "media-work.lock"
#: Where the renderer that `evidence ingest` starts in the background writes its log (in EVIDENCE_HOME).
LOG_NAME = "logs/media-work.log"
#: Recordings asked of the catalogue at a time.
PAGE = 50


@dataclass
class MediaWorkOutcome:
    recording_id: int
    done: list[str] = field(default_factory=list)  # kinds of work done now
    failed: dict[str, str] = field(default_factory=dict)  # kind -> why it failed for good (recorded)
    deferred: str | None = None  # why the rest was left pending (the store or catalogue is away)
    unavailable: bool = False  # deferred because the store or catalogue does not answer at all


def do_media_work(engine: Engine, store: EvidenceStore, work_dir: Path, recording_id: int, *, by: str,
                  threads: int = 2, only: Collection[str] | None = None) -> MediaWorkOutcome:
    """Do the media work *recording_id* still needs (`pending_work`; of those, the kinds in *only*), each kind on
    its own, recording failures caused by the media for good. Raises RecordingNotFound; nothing else (a store or
    catalogue away defers)."""
    outcome = MediaWorkOutcome(recording_id)
    try:
        with Session(engine) as session:
            recording = session.get(Recording, recording_id)
            if recording is None:
                raise RecordingNotFound(str(recording_id))
            done, failed = work_done(session, recording_id)
            todo = pending_work(recording.media_kind, done=done, failed=failed)
            if recording.state not in ("archived", "verified"):
                todo = ()
            todo = tuple(kind for kind in todo if only is None or kind in only)
        for kind in todo:
            reason = _one(engine, store, work_dir, recording_id, kind, by=by, threads=threads)
            if reason is None:
                outcome.done.append(kind)
            else:
                outcome.failed[kind] = reason
                _record_failure(engine, recording_id, kind, reason, by=by)
    except (BackendUnavailable, OperationalError) as exc:
        outcome.deferred, outcome.unavailable = first_line(exc), True
    except (StorageError, _Transient) as exc:
        outcome.deferred = first_line(exc)
    if outcome.deferred:
        logger.warning("Media work on recording %r left for later: %s", recording_id, outcome.deferred)
    for kind, reason in outcome.failed.items():
        logger.warning("Recording %r: no %s (%s); recorded, not tried again.", recording_id, kind, reason)
    return outcome


class _Transient(Exception):
    """A decode stopped from outside (a signal, no ffmpeg): another pass may finish it."""


def _one(engine: Engine, store: EvidenceStore, work_dir: Path, recording_id: int, kind: str, *, by: str,
         threads: int) -> str | None:
    """Do one kind of work; None when done, else why it failed because of the media."""
    if kind != DECODE:
        try:
            derive_recording(engine, store, work_dir, recording_id, threads=threads, kinds=(kind,))
        except DeriveFailed as exc:
            return exc.reason
        return None
    try:
        verdict = check_recording(engine, store, work_dir, recording_id, by=by, threads=threads)
    except DecodeIncomplete as exc:
        if exc.transient:
            raise _Transient(str(exc)) from exc
        return exc.reason
    if verdict is None:
        with Session(engine) as session:
            done, _failed = work_done(session, recording_id)
        if DECODE not in done:  # not checked by another renderer meanwhile: its format cannot be decoded here
            return "this machine cannot decode its format"
    return None


def _record_failure(engine: Engine, recording_id: int, kind: str, reason: str, *, by: str) -> None:
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        if recording is not None:
            record_media_failure(session, recording, kind, reason, by=by)
            session.commit()


@dataclass
class BacklogPass:
    recordings: int = 0  # recordings worked on
    done: int = 0  # kinds of work done
    failed: int = 0  # kinds of work failed for good
    deferred: int = 0  # recordings left pending (store or catalogue away)
    last_id: int = 0  # the highest recording id this pass looked at
    stopped: str | None = None  # why the pass ended early

    def summary(self) -> str:
        text = (f"{self.recordings} recording(s): {self.done} derived file(s) or decode check(s) made, "
                f"{self.failed} failed for good, {self.deferred} left for later")
        return text + (f" (stopped: {self.stopped})" if self.stopped else "")


def work_through_backlog(engine: Engine, store: EvidenceStore, work_dir: Path, *, by: str,
                         should_stop: Callable[[], bool] = lambda: False, threads: int = 2) -> BacklogPass:
    """One pass over the media backlog, oldest first, each recording tried once; it ends early when
    *should_stop* says so or the store or catalogue stops answering (the rest waits for the next pass)."""
    result = BacklogPass()
    while not should_stop():
        try:
            with Session(engine) as session:
                page = media_backlog(session, limit=PAGE, after_id=result.last_id)
        except OperationalError as exc:
            result.stopped = f"the catalogue does not answer: {first_line(exc)}"
            return result
        if not page:
            return result
        for recording_id in page:
            if should_stop():
                result.stopped = "asked to stop"
                return result
            result.last_id = recording_id
            try:
                outcome = do_media_work(engine, store, work_dir, recording_id, by=by, threads=threads)
            except RecordingNotFound:
                continue
            result.recordings += 1
            result.done += len(outcome.done)
            result.failed += len(outcome.failed)
            if outcome.deferred:
                result.deferred += 1
                if outcome.unavailable:
                    result.stopped = outcome.deferred
                    return result
    result.stopped = result.stopped or "asked to stop"
    return result


@contextmanager
def renderer_lock(home: Path) -> Iterator[bool]:
    """Hold EVIDENCE_HOME's renderer lock for the block if no other renderer holds it: yields whether it was taken
    (the holder's process id is written in it)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield True
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def render_backlog(settings: Settings, engine: Engine, store: EvidenceStore, *, by: str,
                   should_stop: Callable[[], bool] = lambda: False) -> BacklogPass | None:
    """Work through the media backlog as this installation's one renderer; None when another renderer holds the
    lock (it does the work). After letting go, it looks again for recordings newer than any it saw (a dock that
    found the lock held while it was finishing left them to it) and goes on if there are."""
    total: BacklogPass | None = None
    while True:
        with renderer_lock(settings.home) as held:
            if not held:
                return total
            done = work_through_backlog(engine, store, settings.home / "work", by=by, should_stop=should_stop)
        if total is None:
            total = done
        else:
            total.recordings += done.recordings
            total.done += done.done
            total.failed += done.failed
            total.deferred += done.deferred
            total.stopped = done.stopped
            total.last_id = max(total.last_id, done.last_id)
        if done.stopped:
            return total
        with Session(engine) as session:
            if not media_backlog(session, limit=1, after_id=total.last_id):
                return total


def start_renderer(settings: Settings) -> int:
    """Start `evidence derive-pending` in the background, detached from this process and its terminal, logging to
    EVIDENCE_HOME/logs/media-work.log; return its process id. It exits when the backlog is done (or at once when
    another renderer is at work)."""
    log_path = settings.home / LOG_NAME
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # This ingest's settings, whatever the environment says (a caller may have built them itself).
    env = {**os.environ, **settings.as_environ()}
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "evidence.cli.main", "derive-pending", "--quiet"], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    _STARTED.append(proc)  # reaped by the interpreter; not waited for
    return proc.pid


#: Renderers this process started (kept so that their Popen objects are not collected while they run).
_STARTED: list[subprocess.Popen[bytes]] = []
