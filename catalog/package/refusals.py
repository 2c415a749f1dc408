"""Why a package must not be written, checked before anything is: rights, scope and reason (catalog.access), a
destination that exists, items not yet in WORM storage, and rows whose custody events do not vouch for them."""
from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from catalog.access import AccessRefused, ReasonRequired, check_access, stated_reason
from catalog.case_models import Case
from catalog.errors import ExportFailed
from catalog.models import Recording, RecordingState
from catalog.package.payload import IN_STORE
from catalog.replay import load_case_replays, load_replays
from catalog.replay_compare import case_findings, origin_findings, row_findings
from catalog.said import listed, say
from catalog.user_models import User
from catalog.verify_records import revision_rollback

__all__ = ["provenance_problems", "refuse_unless_exportable"]


def refuse_unless_exportable(session: Session, user: User, recordings: list[Recording], *, out: Path, reason: str,
                             subject: str, case: Case | None = None) -> None:
    """Raise unless every recording may be handed over by *user* for *reason* into a new *out*, and each is in the
    WORM store (or a tombstone) with a row its custody events account for, as is the *case* row; checked in this
    order."""
    try:
        # what a tombstone says is a view; an original (or a text record) in the package is a download
        check_access(session, user, recordings, step="view", reason=reason, policy="download", action="export")
        check_access(session, user, [r for r in recordings if r.state != RecordingState.DISPOSED.value],
                     step="download", reason=reason, policy="download", action="export")
    except AccessRefused as exc:
        exc.args = (say("export of {subject} refused, nothing was written: {problem}", subject=subject,
                        problem=str(exc)),)
        raise
    if stated_reason(reason) is None:
        raise ReasonRequired(say("export of {subject} refused: state the reason for handing over this evidence "
                                 "(调阅事由); it is recorded with every item", subject=subject), recording_ids=[])
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise ExportFailed(say("{out} already exists; an evidence package is never written over another", out=out))
    waiting = [r for r in recordings if r.state == RecordingState.STAGED.value]
    if waiting:
        raise ExportFailed(say("not in the WORM store yet (still staged): {recordings}", recordings=listed(
            say("recording {id} ({name})", id=r.id, name=r.original_name) for r in waiting)))
    unproven = provenance_problems(session, recordings)
    if case is not None:  # its title, unit, type and dates go into the package and the court report
        unproven += [f"case {number}: {text}" for number, text in case_findings(load_case_replays(session), [case],
                                                                                  [case.number])]
    if unproven:
        raise ExportFailed(say("export of {subject} refused, nothing was written: {problems} (run `evidence verify "
                               "{ids}`)", subject=subject, problems=unproven,
                               ids=" ".join(str(r.id) for r in recordings)))


def provenance_problems(session: Session, recordings: list[Recording]) -> list[str]:
    """Why a package must not carry these recordings: a row that no custody event created (planted), a row that
    differs from what its custody events set, a re-stamp rolled back (the chain names a later revision), a row in
    the store with no stamp revision (so no signed manifest).
    Each names the recording. One query for the lot (catalog.replay)."""
    ids = [r.id for r in recordings if r.id is not None]
    replays = load_replays(session, ids)[0]
    found = []
    for r in recordings:
        assert r.id is not None
        who = f"recording {r.id} ({r.original_name})"
        found += [f"{who}: {text}" for text in origin_findings(r, replays[r.id]) + row_findings(r, replays[r.id])]
        found += [f"{who}: {problem.detail}" for problem in revision_rollback(r, replays[r.id])]
        if r.state in IN_STORE and r.stamp_revision < 1:
            found.append(f"{who}: in the store, but it has no stamp revision and so no signed manifest: nothing "
                         "vouches for it")
    return found
