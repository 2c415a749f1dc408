"""Fixity checks: verify a rolling sample of the archive and record the outcome in the custody log.

Every whole read-back that re-hashes a stored object and finds it equal is recorded by `mark_verified`: an
`archived` recording (stored, every part checked by the server, not read back yet) becomes `verified` there,
whoever read it back (the verify queue, `evidence verify`, a fixity sample, a device's clearing)."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlmodel import Session

from catalog.custody import CustodyKind, append_event
from catalog.models import Recording, RecordingState
from catalog.replay import ROW_KEY, row_values
from catalog.verification import Problem, VerifyReport, select_recordings, verify_archive
from storage import EvidenceStore

__all__ = ["mark_verified", "record_results", "run_fixity"]


def mark_verified(session: Session, recording: Recording, *, actor: str, how: str, at: datetime | None = None,
                  **details: object) -> None:
    """Record that *recording*'s stored bytes were read back whole and hash to its SHA-256 (a VERIFIED custody
    event saying *how*, with *details*); an `archived` recording becomes `verified`. The caller commits."""
    recording.state = RecordingState.VERIFIED.value
    session.add(recording)
    append_event(session, CustodyKind.VERIFIED, actor=actor, recording_id=recording.id, at=at, details={
        "how": how, "sha256": recording.sha256, **details, ROW_KEY: row_values(recording, "state")})


def record_results(session: Session, report: VerifyReport, *, actor: str, now: datetime, how: str) -> None:
    """A `verified` event (and the fixity time) for each recording that passed, `fixity_failed` for the rest."""
    failed: dict[int, list[Problem]] = defaultdict(list)
    for problem in report.problems:
        if problem.recording_id is not None:
            failed[problem.recording_id].append(problem)
    for recording_id in report.verified_ids:
        recording = session.get(Recording, recording_id)
        if recording is None:
            continue
        recording.fixity_checked_at = now
        if recording.state in (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value):
            mark_verified(session, recording, actor=actor, how=how, at=now)
        else:  # disposed meanwhile: the check stands, the state does not move back
            append_event(session, CustodyKind.VERIFIED, actor=actor, recording_id=recording_id, at=now,
                         details={"how": how, "sha256": recording.sha256})
    for recording_id, problems in sorted(failed.items()):
        append_event(session, CustodyKind.FIXITY_FAILED, actor=actor, recording_id=recording_id, at=now,
                     details={"how": how, "problems": [str(p) for p in problems]})
    session.commit()


def run_fixity(session: Session, store: EvidenceStore, *, sample: int, actor: str, now: datetime,
               workers: int = 4) -> VerifyReport:
    """Verify the *sample* least recently checked recordings (bytes and manifests) and record the results."""
    ids = select_recordings(session, sample=sample, rolling=True, now=now)
    report = verify_archive(session, store, ids, chain=False, workers=workers)
    record_results(session, report, actor=actor, now=now, how="scheduled fixity check: re-hashed from the store, "
                                                               "manifests and signatures checked")
    return report
