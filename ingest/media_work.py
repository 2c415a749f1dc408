"""Doing the media backlog (`catalog.media_work`): thumbnails, proxies and decode checks after archiving.

`do_media_work` does what one recording still needs, each kind on its own: a thumbnail that cannot be made does not
keep its proxy from being made. What fails because of the media (DeriveFailed, a decode that runs past its deadline,
a format this machine cannot decode) is recorded for good (`record_media_failure`) and not tried again; what fails
because the store or catalogue is away is left pending for the next pass.

`work_through_backlog` is one pass over the backlog, each recording tried once. `render_backlog` is the pass as
one renderer per installation does it (a lock on the EVIDENCE_HOME folder): the station's render thread,
`evidence derive-pending`, and the renderer `evidence ingest` starts in the background (`start_renderer`) all go
through it, so two of them never render the same recording at once, and a dock that finds the renderer busy
leaves its recordings to it (the renderer looks again after it lets go).
"""
from __future__ import annotations

import fcntl
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from catalog import Recording, RecordingNotFound, load_or_create_key, redaction_jobs
from catalog.media_work import (
    DECODE,
    IN_ARCHIVE,
    MAX_KILLS,
    count_kill,
    gave_up_reason,
    media_backlog,
    pending_work,
    record_media_failure,
    work_done,
)
from catalog.types import utcnow
from ingest.config import Settings
from ingest.decode_check import check_recording
from ingest.derive import derive_recording
from ingest.errors import DecodeIncomplete, DeriveFailed, RenderInterrupted, first_line
from storage import BackendUnavailable, EvidenceStore, StorageError

__all__ = ["BacklogPass", "MediaWorkOutcome", "do_media_work", "render_backlog", "renderer_lock", "start_renderer",
           "work_through_backlog"]

logger = logging.getLogger(__name__)

#: The file (in EVIDENCE_HOME) that names the process id of the one renderer at work (the lock itself is on the
#: EVIDENCE_HOME folder: renderer_lock).
PID_NAME = "media-work.pid"
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
            if recording.state not in IN_ARCHIVE:
                todo = ()
            todo = tuple(kind for kind in todo if only is None or kind in only)
        for kind in todo:
            reason = _attempt(engine, store, work_dir, recording_id, kind, by=by, threads=threads)
            if reason is None:
                outcome.done.append(kind)
            else:
                outcome.failed[kind] = reason
                _record_failure(engine, recording_id, kind, reason, by=by)
    except (BackendUnavailable, OperationalError) as exc:
        outcome.deferred, outcome.unavailable = first_line(exc), True
    except (StorageError, RenderInterrupted, OSError) as exc:
        # The store, the tools or this machine (a full work folder), never the media: the next pass tries again.
        outcome.deferred = first_line(exc)
    if outcome.deferred:
        logger.warning("Media work on recording %r left for later: %s", recording_id, outcome.deferred)
    for kind, reason in outcome.failed.items():
        logger.warning("Recording %r: no %s (%s); recorded, not tried again.", recording_id, kind, reason)
    return outcome


def _attempt(engine: Engine, store: EvidenceStore, work_dir: Path, recording_id: int, kind: str, *, by: str,
             threads: int) -> str | None:
    """`_one`; an ffmpeg of it killed by SIGKILL from outside is counted (catalog.media_work.count_kill), and at
    MAX_KILLS the work's reason is that it was given up on (the caller records it for good). Any other end of the
    work, the worker's own death or stop included, counts nothing."""
    try:
        return _one(engine, store, work_dir, recording_id, kind, by=by, threads=threads)
    except RenderInterrupted as exc:
        if not exc.killed:
            raise
        kills = _count_kill(engine, recording_id, kind, by=by)
        if kills < MAX_KILLS:
            raise
        logger.error("Recording %r: its %s was killed %d times while it ran; giving up on it.", recording_id, kind,
                     kills)
        return gave_up_reason(kills)


def _count_kill(engine: Engine, recording_id: int, kind: str, *, by: str) -> int:
    """count_kill, committed. Two workers counting the first kill of the same work at the same moment: the second
    one's insert fails, and its kill is counted on the first one's row."""
    def count() -> int:
        with Session(engine) as session:
            kills = count_kill(session, recording_id, kind, by=by)
            session.commit()
            return kills

    try:
        return count()
    except IntegrityError:
        return count()


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
            raise RenderInterrupted(exc.path, exc.reason, killed=exc.killed) from exc
        return exc.reason
    if verdict is None:
        with Session(engine) as session:
            recording = session.get(Recording, recording_id)
            if recording is None or recording.state not in IN_ARCHIVE:
                raise RenderInterrupted(f"recording {recording_id}", "it left the archive while it was decoded")
            done, _failed = work_done(session, recording_id)
        if DECODE not in done:  # not checked by another renderer meanwhile: its format cannot be decoded here
            return "this machine cannot decode its format"
    return None


def _record_failure(engine: Engine, recording_id: int, kind: str, reason: str, *, by: str) -> None:
    """record_media_failure, unless the recording left the archive meanwhile; a second worker recording the same
    failure at the same moment is not an error (the first one's row stands)."""
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.state not in IN_ARCHIVE:
            return
        record_media_failure(session, recording, kind, reason, by=by)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


@dataclass
class BacklogPass:
    recordings: int = 0  # recordings worked on
    done: int = 0  # kinds of work done
    failed: int = 0  # kinds of work failed for good
    deferred: int = 0  # recordings left pending (store or catalogue away)
    last_id: int = 0  # the highest recording id this pass looked at
    stopped: str | None = None  # why the pass ended early
    redactions: int = 0  # redaction jobs run (catalog.redaction_jobs)
    deferred_ids: set[int] = field(default_factory=set)  # the recordings left pending

    def add(self, other: BacklogPass) -> None:
        """Count *other*, a later pass, in this one."""
        self.recordings += other.recordings
        self.done += other.done
        self.failed += other.failed
        self.deferred += other.deferred
        self.deferred_ids |= other.deferred_ids
        self.last_id = max(self.last_id, other.last_id)
        self.stopped = other.stopped

    def summary(self) -> str:
        text = (f"{self.recordings} recording(s): {self.done} derived file(s) or decode check(s) made, "
                f"{self.failed} failed for good, {self.deferred} left for later")
        if self.redactions:
            text += f"; {self.redactions} redaction job(s) run"
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
            except Exception as exc:  # one recording never stops the pass (logged whole)
                logger.exception("Media work on recording %r failed unexpectedly; left for the next pass.",
                                 recording_id)
                outcome = MediaWorkOutcome(recording_id, deferred=f"unexpected: {first_line(exc)}")
            result.recordings += 1
            result.done += len(outcome.done)
            result.failed += len(outcome.failed)
            if outcome.deferred:
                result.deferred += 1
                result.deferred_ids.add(recording_id)
                if outcome.unavailable:
                    result.stopped = outcome.deferred
                    return result
    result.stopped = result.stopped or "asked to stop"
    return result


@contextmanager
def renderer_lock(home: Path) -> Iterator[bool]:
    """Hold EVIDENCE_HOME's renderer lock for the block if no other renderer holds it: yields whether it was taken.

    The lock is flock(2) on the EVIDENCE_HOME folder itself, so no file in it can be deleted, replaced or turned
    into a symlink to take it away or to make the renderer write elsewhere. The holder's process id is written to
    PID_NAME for people (never followed if it is a symlink; a pid file that cannot be written is only logged)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            _write_pid(home / PID_NAME, f"{os.getpid()}\n")
            yield True
        finally:
            _write_pid(home / PID_NAME, "")
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write_pid(path: Path, text: str) -> None:
    try:
        pid_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        logger.warning("Cannot write the renderer's process id to %s: %s", path, exc)
        return
    try:
        info = os.fstat(pid_fd)
        # Only a plain file of its own: never truncate a second name of another file (a hard link to evidence).
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            os.ftruncate(pid_fd, 0)
            os.write(pid_fd, text.encode())
        else:
            logger.warning("%s is not a plain file of its own; the renderer's process id is not written.", path)
    finally:
        os.close(pid_fd)


def render_backlog(settings: Settings, engine: Engine, store: EvidenceStore, *, by: str,
                   should_stop: Callable[[], bool] = lambda: False) -> BacklogPass | None:
    """Work through the media backlog as this installation's one renderer; None when another renderer holds the
    lock (it does the work). After letting go, it looks at the backlog again and goes on if it holds anything but
    what this renderer left for later: a dock that found the lock held while the pass was ending left its
    recordings to it, whatever their place in the backlog."""
    total = BacklogPass()
    held_once = False
    while True:
        with renderer_lock(settings.home) as held:
            if not held:
                return total if held_once else None
            held_once = True
            done = work_through_backlog(engine, store, settings.home / "work", by=by, should_stop=should_stop)
            if not done.stopped:
                redactions = _redaction_pass(settings, engine, store, should_stop)
                total.redactions += sum(redactions.values())
                if redactions.get("queued"):
                    done.stopped = "a redaction job waits for the store or the catalogue"
        total.add(done)
        if done.stopped:
            return total
        with Session(engine) as session:
            left = media_backlog(session, limit=len(total.deferred_ids) + 1)
            jobs_left = redaction_jobs.pending(session, now=utcnow(), limit=1)
        if set(left) <= total.deferred_ids and not jobs_left:
            return total


def _redaction_pass(settings: Settings, engine: Engine, store: EvidenceStore,
                    should_stop: Callable[[], bool]) -> dict[str, int]:
    """The redaction jobs waiting (catalog.redaction_jobs), run by this renderer: where no derive worker runs (the
    embedded default), the web app starts a renderer for them."""
    from ingest.redaction.jobs import run_pending_jobs

    try:
        return run_pending_jobs(engine, store, settings, load_or_create_key(settings.station_key_path),
                                should_stop=should_stop).counts
    except Exception:  # one job's trouble never stops the renderer: each job records its own failure
        logger.exception("Redaction jobs could not be run in this pass; left for the next.")
        return {}


def start_renderer(settings: Settings) -> int:
    """Start `evidence derive-pending` in the background, detached from this process and its terminal, logging to
    EVIDENCE_HOME/logs/media-work.log; return its process id. It exits when the backlog is done (or at once when
    another renderer is at work)."""
    log_path = settings.home / LOG_NAME
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # This ingest's settings, whatever the environment says (a caller may have built them itself).
    env = {**os.environ, **settings.as_environ()}
    with log_path.open("ab") as log:
        # -P: the folder `evidence ingest` was started in (perhaps the docked device) is not on the module path.
        proc = subprocess.Popen([sys.executable, "-P", "-m", "evidence.cli.main", "derive-pending", "--quiet"], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    _STARTED.append(proc)  # reaped by the interpreter; not waited for
    return proc.pid


#: Renderers this process started (kept so that their Popen objects are not collected while they run).
_STARTED: list[subprocess.Popen[bytes]] = []
