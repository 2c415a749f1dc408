"""Integrity verdicts as revisions: the ingest check is revision 1, later checks (the background decode check)
add revisions and never overwrite an earlier one.

`worst` is pure. `record_integrity` is the one function every path uses to record a verdict: it adds the
revision, moves the recording's current status to the worst verdict so far (a later check never "heals" a file
an earlier one found damaged) and, for any check after ingest (or a first verdict that changes the row's status),
appends an `integrity_checked` custody event carrying the new status (`now`), which `evidence verify` replays.
A recording catalogued without its ingest revision (by a path that set only `Recording.integrity_status`) gets
that verdict written as revision 1 before a later check is added, so the first verdict is never lost.
`decode_revisions` and `undecoded_ids` answer which recordings the decode check has still to see.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.models import IN_ARCHIVE, IntegrityCheck, IntegrityStatus, Recording
from catalog.types import utcnow

__all__ = ["DECODE_CHECK", "INGEST_CHECK", "INTEGRITY_CHECKS", "decode_revisions", "integrity_history",
           "record_integrity", "undecoded_ids", "worst"]

#: The check name of revision 1: structure and probe at ingest.
INGEST_CHECK = "ingest"
#: The background decode check (ffmpeg decoding every stream, on the derive queue).
DECODE_CHECK = "decode"
#: Every kind of integrity check, as shown in histories and pages.
INTEGRITY_CHECKS = (INGEST_CHECK, DECODE_CHECK)

_RANK = {IntegrityStatus.OK.value: 0, IntegrityStatus.DAMAGED.value: 1, IntegrityStatus.UNREADABLE.value: 2}


def worst(a: str, b: str) -> str:
    """The more serious of two integrity statuses (ok < damaged < unreadable)."""
    return a if _RANK.get(a, 0) >= _RANK.get(b, 0) else b


def record_integrity(session: Session, recording: Recording, *, check: str, status: str, detail: str, by: str,
                     details: dict[str, Any] | None = None, at: datetime | None = None) -> IntegrityCheck:
    """Add an integrity revision for *recording* (flushed first if new) and update its current status."""
    if status not in _RANK:
        raise ValueError(f"integrity status {status!r} is not one of {', '.join(_RANK)}")
    if recording.id is None:
        session.add(recording)
        session.flush()
    assert recording.id is not None
    # The ingest verdict is the first revision, recorded with the new row (no query: one fewer per file at a dock).
    last = None if check == INGEST_CHECK else session.exec(select(func.max(IntegrityCheck.revision))
                                                           .where(IntegrityCheck.recording_id == recording.id)).one()
    if not last and check != INGEST_CHECK:
        # The ingest verdict lives only on the recording: keep it as revision 1 before adding this one.
        session.add(IntegrityCheck(recording_id=recording.id, revision=1, check=INGEST_CHECK,
                                   status=recording.integrity_status, detail=recording.integrity_detail,
                                   checked_by="ingest", checked_at=recording.ingested_at or utcnow(), details={}))
        last = 1
    revision = (last or 0) + 1
    row = IntegrityCheck(recording_id=recording.id, revision=revision, check=check, status=status,
                         detail=detail[:2000], checked_by=by, checked_at=at or utcnow(), details=details or {})
    session.add(row)
    before = recording.integrity_status
    if revision == 1:
        recording.integrity_status, recording.integrity_detail = status, detail[:2000]
        if before != status:  # the ingest path records its verdict in the row's `copied` event; any other is one
            append_event(session, CustodyKind.INTEGRITY_CHECKED, actor=by, recording_id=recording.id, details={
                **(details or {}), "check": check, "revision": 1, "status": status, "detail": detail[:2000],
                "was": before, "now": status})
    else:
        if status != IntegrityStatus.OK.value:
            recording.integrity_status = worst(before, status)
            finding = f"{check} check: {detail}"
            if finding not in recording.integrity_detail:  # the same finding again adds nothing
                recording.integrity_detail = "; ".join(filter(None, [recording.integrity_detail, finding]))[:2000]
        append_event(session, CustodyKind.INTEGRITY_CHECKED, actor=by, recording_id=recording.id, details={
            **(details or {}), "check": check, "revision": revision, "status": status, "detail": detail[:2000],
            "was": before, "now": recording.integrity_status})
    session.add(recording)
    return row


def integrity_history(session: Session, recording_id: int) -> list[IntegrityCheck]:
    """Every integrity revision of a recording, oldest first."""
    return list(session.exec(select(IntegrityCheck).where(IntegrityCheck.recording_id == recording_id)
                             .order_by(col(IntegrityCheck.revision))))


def decode_revisions(session: Session, recording_id: int) -> int:
    """How many decode-check verdicts the recording has."""
    return len(session.exec(select(IntegrityCheck.id).where(IntegrityCheck.recording_id == recording_id,
                                                            IntegrityCheck.check == DECODE_CHECK)).all())


def undecoded_ids(session: Session, *, media_kinds: Iterable[str]) -> list[int]:
    """Archived (or verified) recordings of *media_kinds* without a decode verdict, oldest first."""
    decoded = select(IntegrityCheck.recording_id).where(IntegrityCheck.check == DECODE_CHECK)
    rows = session.exec(select(Recording.id).where(
        col(Recording.media_kind).in_(list(media_kinds)),
        col(Recording.state).in_(IN_ARCHIVE),
        col(Recording.id).not_in(decoded)).order_by(col(Recording.id)))
    return [row for row in rows if row is not None]
