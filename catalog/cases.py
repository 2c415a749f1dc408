"""Cases (案件): create, link recordings with a purpose, close and reopen, with every step in the custody log.

`validate_case` is pure. The other functions change the catalog inside the
caller's transaction; applying the resulting retention to the WORM store is
`catalog.retention_job`'s work.
"""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, select

from catalog.case_models import Case, CaseLink, CaseStatus
from catalog.classification import class_refusals, raise_to_case_class
from catalog.custody import CustodyKind, append_event
from catalog.errors import CaseInvalid, CaseNotFound, CaseStateError, PermissionDenied
from catalog.models import MediaKind, Recording, RecordingState
from catalog.replay import copy_counts_from, load_case_replays
from catalog.retention import CaseFacts, RetentionPolicy
from catalog.said import say
from catalog.stamps import MAX_PURPOSE  # a link's purpose is a stamp's: the same limit
from catalog.types import utcnow
from catalog.user_models import User

__all__ = [
    "Attach", "active_links", "adopt_stamped", "case_as_json", "case_facts", "case_number_exists", "cases_of",
    "close_case", "create_case", "get_case", "link_recording", "list_cases", "member_ids", "reopen_case",
    "unlink_recording", "validate_case",
]


class Attach(Protocol):
    """Store the file at *path* as a text record of *case* (hashed, in WORM storage, signed) and link it; the
    record and whether its bytes were new. `evidence serve` passes ingest.documents.attach_document in
    this shape to the web application."""

    def __call__(self, session: Session, case: Case, path: Path, *, title: str, by: str,
                 dated: date | None) -> tuple[Recording, bool]: ...


_MAX_TITLE = 300


def validate_case(*, number: str, title: str, case_type: str, opened_on: date, case_pattern: str,
                  policy: RetentionPolicy, today: date) -> list[str]:
    """Every rule a new case breaks (empty: valid)."""
    problems: list[str] = []
    if not re.fullmatch(case_pattern, number):
        problems.append(say("case number {number} does not match the pattern {pattern}", number=repr(number),
                            pattern=repr(case_pattern)))
    if not title.strip():
        problems.append(say("title is blank"))
    elif len(title) > _MAX_TITLE:
        problems.append(say("title is {n} characters; at most {max}", n=len(title), max=_MAX_TITLE))
    if case_type not in policy.case_types:
        problems.append(say("unknown case type {case_type}; known: {known}", case_type=repr(case_type),
                            known=", ".join(sorted(policy.case_types))))
    if opened_on > today:
        problems.append(say("opened date {opened} is in the future (today is {today})", opened=opened_on.isoformat(),
                            today=today.isoformat()))
    return problems


def _need(text: str | None, what: str) -> str:
    if text is None or not text.strip():
        raise CaseInvalid([say("{what} is required", what=what)])
    return text.strip()


def get_case(session: Session, number: str) -> Case:
    found = session.exec(select(Case).where(Case.number == number)).first()
    if found is None:
        raise CaseNotFound(number)
    return found


def list_cases(session: Session, *, status: str | None = None,
               where: ColumnElement[bool] | None = None, limit: int | None = None) -> list[Case]:
    """Cases newest first; only *status* ones, and only those *where* allows (catalog.access.cases_clause: what
    a caller limited to some recordings may know of); the first *limit* of them if one is given."""
    query = select(Case).order_by(col(Case.opened_on).desc(), col(Case.id).desc())
    if status:
        query = query.where(Case.status == status)
    if where is not None:
        query = query.where(where)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def case_number_exists(session: Session, number: str) -> bool:
    """Whether a case with this number is registered (open or closed)."""
    return session.exec(select(Case.id).where(Case.number == number)).first() is not None


def create_case(session: Session, *, number: str, title: str, case_type: str, unit: str, opened_on: date,
                by: str, case_pattern: str, policy: RetentionPolicy, today: date) -> Case:
    """Open a case; recordings already stamped with its number are linked to it (source `stamp`)."""
    by = _need(by, say("the name of who opens the case"))
    problems = validate_case(number=number, title=title, case_type=case_type, opened_on=opened_on,
                             case_pattern=case_pattern, policy=policy, today=today)
    if case_number_exists(session, number):
        problems.append(say("case {number} already exists", number=repr(number)))
    if problems:
        raise CaseInvalid(problems)
    case = Case(number=number, title=title.strip(), case_type=case_type, unit=unit.strip(),
                status=CaseStatus.OPEN.value, opened_on=opened_on, created_by=by, created_at=utcnow())
    session.add(case)
    session.flush()
    append_event(session, CustodyKind.CASE_OPENED, actor=by, details={
        "case": number, "title": case.title, "case_type": case_type, "unit": case.unit,
        "opened_on": opened_on.isoformat()})
    adopt_stamped(session, by=by, case_numbers=[number])
    return case


def adopt_stamped(session: Session, *, by: str, recording_ids: list[int] | None = None,
                  case_numbers: list[str] | None = None) -> list[CaseLink]:
    """Link recordings whose stamp names an open case to that case (source `stamp`).

    Once only: a recording that was ever linked to the case (even if a clerk unlinked it since) is left alone, and
    so is a redacted copy stating what it counts from (its stamp repeats its original's case number; it serves the
    cases it was linked to when made, and those a clerk links it to).
    """
    query = (select(Recording, Case).where(Recording.case_number == Case.number,
                                           Case.status == CaseStatus.OPEN.value,
                                           Recording.state != RecordingState.DISPOSED.value)
             .order_by(col(Recording.id)))
    if recording_ids is not None:
        query = query.where(col(Recording.id).in_(recording_ids))
    if case_numbers is not None:
        query = query.where(col(Case.number).in_(case_numbers))
    made = []
    for recording, case in list(session.exec(query)):
        if copy_counts_from(recording.technical) is not None:
            continue
        ever = session.exec(select(CaseLink.id).where(CaseLink.case_id == case.id,
                                                      CaseLink.recording_id == recording.id)).first()
        if ever is None:
            made.append(link_recording(session, case, recording, by=by, source="stamp",
                                       purpose=recording.purpose or "stamped with this case number at collection"))
    return made


def _active_link(session: Session, case_id: int, recording_id: int) -> CaseLink | None:
    return session.exec(select(CaseLink).where(CaseLink.case_id == case_id, CaseLink.recording_id == recording_id,
                                               col(CaseLink.unlinked_at).is_(None))).first()


def link_recording(session: Session, case: Case, recording: Recording, *, purpose: str, by: str,
                   source: str = "manual", linker: User | None = None) -> CaseLink:
    """Link *recording* to *case* with what it proves there; the same link twice is a no-op. A person's link
    (*linker*; the station's automatic ones have none) is refused (PermissionDenied) for a recording its class
    keeps from them: a grant on the case would open it to whoever holds one (a clerk linked another case's state
    secret into a case they held a grant on and read it, found by a review)."""
    assert case.id is not None and recording.id is not None
    if linker is not None:
        closed = class_refusals(session, linker, [recording], "play")
        if closed:
            raise PermissionDenied(say("user {user} may not link recording {recording} to case {case}: {why}",
                                       user=repr(linker.name), recording=recording.id, case=case.number,
                                       why=closed[0][1]))
    purpose = _need(purpose, say("the purpose (what the recording proves in this case)"))
    by = _need(by, say("the name of who links the recording"))
    if len(purpose) > MAX_PURPOSE:
        raise CaseInvalid([say("purpose is {n} characters; at most {max}", n=len(purpose), max=MAX_PURPOSE)])
    if case.status != CaseStatus.OPEN.value:
        raise CaseStateError(say("case {case} is closed (on {day}); reopen it before linking recording "
                                 "{recording}", case=case.number, day=str(case.closed_on), recording=recording.id))
    if recording.state == RecordingState.DISPOSED.value:
        raise CaseStateError(say("recording {recording} ({name}, sha256 {sha}…) was disposed of; only its "
                                 "tombstone remains and it cannot serve case {case}", recording=recording.id,
                                 name=recording.original_name, sha=recording.sha256[:12], case=case.number))
    existing = _active_link(session, case.id, recording.id)
    if existing is not None:
        if existing.purpose == purpose:
            return existing
        raise CaseStateError(say("recording {recording} is already linked to case {case} with purpose {purpose}; "
                                 "unlink it first to change the purpose", recording=recording.id, case=case.number,
                                 purpose=repr(existing.purpose)))
    link = CaseLink(case_id=case.id, recording_id=recording.id, purpose=purpose, source=source, linked_by=by,
                    linked_at=utcnow())
    session.add(link)
    append_event(session, CustodyKind.CASE_LINKED, actor=by, recording_id=recording.id, details={
        "case": case.number, "purpose": purpose, "source": source, "sha256": recording.sha256})
    raise_to_case_class(session, case, recording, by=by)  # a case's class reaches what serves it
    return link


def unlink_recording(session: Session, case: Case, recording: Recording, *, by: str, reason: str) -> CaseLink:
    """End a link (the row stays, with who, when and why). Retention already given is never taken back."""
    assert case.id is not None and recording.id is not None
    by = _need(by, say("the name of who unlinks the recording"))
    reason = _need(reason, say("a reason for unlinking"))
    link = _active_link(session, case.id, recording.id)
    if link is None:
        raise CaseStateError(say("recording {recording} is not linked to case {case}", recording=recording.id,
                                 case=case.number))
    link.unlinked_by, link.unlinked_at, link.unlink_reason = by, utcnow(), reason
    session.add(link)
    append_event(session, CustodyKind.CASE_UNLINKED, actor=by, recording_id=recording.id, details={
        "case": case.number, "reason": reason, "sha256": recording.sha256})
    return link


def close_case(session: Session, case: Case, *, by: str, closed_on: date, today: date) -> Case:
    by = _need(by, say("the name of who closes the case"))
    if case.status == CaseStatus.CLOSED.value:
        raise CaseStateError(say("case {case} is already closed (on {day} by {person})", case=case.number,
                                 day=str(case.closed_on), person=case.closed_by))
    problems: list[str] = []
    if closed_on < case.opened_on:
        problems.append(say("closed date {closed} is before the opened date {opened}", closed=closed_on.isoformat(),
                            opened=case.opened_on.isoformat()))
    if closed_on > today:
        problems.append(say("closed date {closed} is in the future (today is {today})", closed=closed_on.isoformat(),
                            today=today.isoformat()))
    if problems:
        raise CaseInvalid(problems)
    stated = load_case_replays(session).get(case.number)
    if stated is not None and stated.case_type is not None and stated.case_type != case.case_type:
        raise CaseStateError(say("case {case}: its row says type {row}, the custody chain {chain} (changed behind the "
                                 "application's back); it is not closed until that is looked into", case=case.number,
                                 row=repr(case.case_type), chain=repr(stated.case_type)))
    case.status, case.closed_on, case.closed_by = CaseStatus.CLOSED.value, closed_on, by
    session.add(case)
    append_event(session, CustodyKind.CASE_CLOSED, actor=by, details={
        "case": case.number, "closed_on": closed_on.isoformat(), "case_type": case.case_type})
    return case


def reopen_case(session: Session, case: Case, *, by: str, reason: str) -> Case:
    by = _need(by, say("the name of who reopens the case"))
    reason = _need(reason, say("a reason for reopening"))
    if case.status == CaseStatus.OPEN.value:
        raise CaseStateError(say("case {case} is open already", case=case.number))
    previous = case.closed_on
    case.status, case.closed_on, case.closed_by = CaseStatus.OPEN.value, None, None
    session.add(case)
    append_event(session, CustodyKind.CASE_REOPENED, actor=by, details={
        "case": case.number, "reason": reason, "was_closed_on": previous.isoformat() if previous else None})
    return case


def active_links(session: Session, case_id: int) -> list[tuple[CaseLink, Recording]]:
    rows = session.exec(select(CaseLink, Recording).where(CaseLink.case_id == case_id,
                                                          col(CaseLink.unlinked_at).is_(None),
                                                          CaseLink.recording_id == Recording.id)
                        .order_by(col(CaseLink.id)))
    return [(link, recording) for link, recording in rows]


def member_ids(session: Session, case: Case) -> list[int]:
    """The ids of the recordings and text records linked to *case* now (what its retention pass covers)."""
    assert case.id is not None
    return [recording.id for _link, recording in active_links(session, case.id) if recording.id is not None]


def cases_of(session: Session, recording_id: int) -> list[tuple[Case, CaseLink]]:
    """The cases a recording serves now (active links)."""
    rows = session.exec(select(Case, CaseLink).where(CaseLink.recording_id == recording_id,
                                                     col(CaseLink.unlinked_at).is_(None),
                                                     CaseLink.case_id == Case.id).order_by(col(Case.number)))
    return [(case, link) for case, link in rows]


def case_facts(session: Session, recording_ids: list[int]) -> dict[int, list[CaseFacts]]:
    """For each recording id, the facts of every case it is linked to now."""
    found: dict[int, list[CaseFacts]] = {rid: [] for rid in recording_ids}
    for start in range(0, len(recording_ids), 500):
        chunk = recording_ids[start:start + 500]
        rows = session.exec(select(CaseLink.recording_id, Case).where(
            col(CaseLink.recording_id).in_(chunk), col(CaseLink.unlinked_at).is_(None),
            CaseLink.case_id == Case.id))
        for recording_id, case in rows:
            found[recording_id].append(CaseFacts(number=case.number, case_type=case.case_type, status=case.status,
                                                 closed_on=case.closed_on))
    return found


def case_as_json(session: Session, case: Case, policy: RetentionPolicy | None = None) -> dict[str, Any]:
    assert case.id is not None
    kind = policy.case_types.get(case.case_type) if policy else None
    links = active_links(session, case.id)
    history = session.exec(select(CaseLink).where(CaseLink.case_id == case.id,
                                                  col(CaseLink.unlinked_at).is_not(None))
                           .order_by(col(CaseLink.id)))

    def item(link: CaseLink, recording: Recording) -> dict[str, Any]:
        return {"recording_id": recording.id, "sha256": recording.sha256, "media_kind": recording.media_kind,
                "original_name": recording.original_name, "purpose": link.purpose, "source": link.source,
                "linked_by": link.linked_by, "linked_at": link.linked_at.isoformat() if link.linked_at else None,
                "state": recording.state, "legal_hold": recording.legal_hold, "sensitivity": recording.sensitivity,
                "retain_until": recording.retain_until.isoformat() if recording.retain_until else None}

    return {
        "number": case.number, "title": case.title, "case_type": case.case_type,
        "case_type_name": kind.name if kind else None,
        "case_retention": kind.describe() if kind else None,
        "unit": case.unit, "status": case.status, "sensitivity": case.sensitivity,
        "opened_on": case.opened_on.isoformat(),
        "closed_on": case.closed_on.isoformat() if case.closed_on else None, "closed_by": case.closed_by,
        "created_by": case.created_by,
        "recordings": [item(link, r) for link, r in links if r.media_kind != "document"],
        "documents": [item(link, r) for link, r in links if r.media_kind == MediaKind.DOCUMENT],
        "unlinked": [{"recording_id": link.recording_id, "purpose": link.purpose, "unlinked_by": link.unlinked_by,
                      "unlinked_at": link.unlinked_at.isoformat() if link.unlinked_at else None,
                      "reason": link.unlink_reason} for link in history],
    }
