"""The media backlog: what is still to be done to an archived recording's media after it is safely stored.

A video gets a thumbnail, a browser proxy and a decode check; a photo a thumbnail and a decode check; an audio
recording a proxy and a decode check. None of it is evidence and none of it may hold up a dock, so it runs after
the recording is archived, by whoever renders at that site (`ingest.media_work`): the in-process renderer of
`evidence ingest`, the embedded station's render thread, `evidence derive-pending`, or the derive queue's workers.
The catalogue itself is the backlog: work is pending while a recording has neither its result (a `derived_media`
row, a decode-check integrity revision) nor a `media_work_failure` row saying it failed for good. A renderer that
dies, a store that is away, a message that is lost: the work stays pending and the next pass does it.

`pending_work` is pure (what a recording of a kind still needs, given what is done and what failed);
`media_backlog` asks the catalogue for the recordings with something pending, oldest first.

A file whose decode or render gets its ffmpeg killed (the kernel's out-of-memory killer ends it with SIGKILL, and
no message says why) leaves no result and no failure: it would be taken again at every pass, forever, and nothing
would say so. Each such kill is counted (`count_kill`); at the MAX_KILLS-th the work is recorded as failed for good
(`gave_up_reason`), which the recording's detail and the failure metric show. Only kills seen happening are
counted: a worker or renderer that dies itself (stopped, or killed) says nothing about the file, and a false
"failed for good" on evidence costs more than taking the work again.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, or_
from sqlmodel import Session, col, select

from catalog.integrity import DECODE_CHECK
from catalog.models import IN_ARCHIVE, DerivedMedia, IntegrityCheck, MediaWorkAttempt, MediaWorkFailure, Recording
from catalog.types import utcnow

__all__ = ["DECODE", "IN_ARCHIVE", "MAX_KILLS", "WORK_BY_KIND", "count_kill", "forget_failures", "gave_up_reason",
           "media_backlog", "media_failures", "pending_work", "record_media_failure", "work_done"]

#: The decode check's name among the kinds of media work (its result is an integrity revision).
DECODE = DECODE_CHECK
#: What each media kind gets after archiving, in the order it is done (the thumbnail first: it is quick, and what
#: a clerk's list shows).
WORK_BY_KIND: dict[str, tuple[str, ...]] = {
    "video": ("thumbnail", "proxy", DECODE),
    "photo": ("thumbnail", DECODE),
    "audio": ("proxy", DECODE),
}
#: SIGKILLs of one kind of work on one recording (out of memory) after which it is recorded as failed for good.
MAX_KILLS = 3
#: Reasons longer than this are cut (ffmpeg's last line on a hostile file can be anything).
MAX_REASON_CHARS = 1000


def pending_work(media_kind: str, *, done: Iterable[str], failed: Iterable[str]) -> tuple[str, ...]:
    """The work a recording of *media_kind* still needs: its kinds of work (WORK_BY_KIND) not *done* and not
    *failed* for good, in order. Nothing for documents and other files."""
    settled = set(done) | set(failed)
    return tuple(kind for kind in WORK_BY_KIND.get(media_kind, ()) if kind not in settled)


def work_done(session: Session, recording_id: int) -> tuple[set[str], set[str]]:
    """(the kinds of media work done, the kinds failed for good) for one recording."""
    done = set(session.exec(select(DerivedMedia.kind).where(DerivedMedia.recording_id == recording_id)))
    if session.exec(select(IntegrityCheck.id).where(IntegrityCheck.recording_id == recording_id,
                                                    IntegrityCheck.check == DECODE)).first() is not None:
        done.add(DECODE)
    failed = set(session.exec(select(MediaWorkFailure.kind).where(MediaWorkFailure.recording_id == recording_id)))
    return done, failed


def media_backlog(session: Session, *, limit: int = 100, after_id: int = 0,
                  archived_before: datetime | None = None) -> list[int]:
    """Ids of archived (or verified) recordings with media work pending, oldest first, at most *limit*, each above
    *after_id* (to page through the backlog while working on it) and, given *archived_before*, archived before
    it."""
    def settled(kind: str) -> ColumnElement[bool]:
        failed = exists().where(col(MediaWorkFailure.recording_id) == col(Recording.id),
                                col(MediaWorkFailure.kind) == kind)
        if kind == DECODE:
            made = exists().where(col(IntegrityCheck.recording_id) == col(Recording.id),
                                  col(IntegrityCheck.check) == DECODE)
        else:
            made = exists().where(col(DerivedMedia.recording_id) == col(Recording.id), col(DerivedMedia.kind) == kind)
        return or_(made, failed)

    wanted = or_(*(and_(col(Recording.media_kind) == media_kind, or_(*(~settled(kind) for kind in kinds)))
                   for media_kind, kinds in WORK_BY_KIND.items()))
    query = select(Recording.id).where(col(Recording.state).in_(IN_ARCHIVE), col(Recording.id) > after_id, wanted)
    if archived_before is not None:
        query = query.where(col(Recording.archived_at) < archived_before)
    rows = session.exec(query.order_by(col(Recording.id)).limit(limit))
    return [row for row in rows if row is not None]


def record_media_failure(session: Session, recording: Recording, kind: str, reason: str, *, by: str) -> None:
    """Record that *kind* of media work failed for good on *recording* (the backlog skips it from now on); a
    second failure of the same kind replaces the first. Not committed."""
    assert recording.id is not None
    row = session.exec(select(MediaWorkFailure).where(MediaWorkFailure.recording_id == recording.id,
                                                      MediaWorkFailure.kind == kind)).first()
    if row is None:
        row = MediaWorkFailure(recording_id=recording.id, kind=kind, derived_from_sha256=recording.sha256,
                               reason="", failed_by="")
    row.reason = reason[:MAX_REASON_CHARS]
    row.failed_by = by[:100]
    row.failed_at = utcnow()
    session.add(row)


def media_failures(session: Session, recording_id: int) -> list[MediaWorkFailure]:
    """The media work that failed for good on a recording, by kind."""
    return list(session.exec(select(MediaWorkFailure).where(MediaWorkFailure.recording_id == recording_id)
                             .order_by(col(MediaWorkFailure.kind))))


def count_kill(session: Session, recording_id: int, kind: str, *, by: str) -> int:
    """Count one SIGKILL from outside of *kind* of work on *recording_id* (not committed); return the kills so far.
    At MAX_KILLS or more, give up (`gave_up_reason`)."""
    row = session.get(MediaWorkAttempt, (recording_id, kind))
    if row is None:
        row = MediaWorkAttempt(recording_id=recording_id, kind=kind, kills=0, last_by="")
    row.kills, row.last_by, row.last_at = row.kills + 1, by[:100], utcnow()
    session.add(row)
    return row.kills


def gave_up_reason(kills: int) -> str:
    """Why work killed *kills* times is not tried again (the recorded failure's reason)."""
    return (f"killed {kills} times while it ran (SIGKILL from outside: out of memory, most likely); not tried again "
            "automatically")


def forget_failures(session: Session, *, killed_only: bool) -> int:
    """Put media work that failed for good back in the backlog (all of it, or with *killed_only* what was given up
    on after its ffmpeg was killed: after a machine got more memory, say), its kill counts with it; return how many
    kinds of work. Not committed. Derived media and decode checks are never evidence: nothing else changes."""
    query = select(MediaWorkFailure)
    if killed_only:  # given up on because of kills: its kill count reached MAX_KILLS
        query = query.where(exists().where(col(MediaWorkAttempt.recording_id) == col(MediaWorkFailure.recording_id),
                                           col(MediaWorkAttempt.kind) == col(MediaWorkFailure.kind),
                                           col(MediaWorkAttempt.kills) >= MAX_KILLS))
    failures = list(session.exec(query))
    for failure in failures:
        session.execute(delete(MediaWorkAttempt).where(col(MediaWorkAttempt.recording_id) == failure.recording_id,
                                                       col(MediaWorkAttempt.kind) == failure.kind))
        session.delete(failure)
    return len(failures)
