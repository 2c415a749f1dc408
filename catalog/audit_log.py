"""Reading the custody log the way an auditor asks: narrowed to one log (access, administration,
verification), an event kind, a person, a recording, a case and a time window; counted, paged, or all at once.

The filter is a plain value (AuditFilter); turning it into SQL happens here and nowhere else. Reading the
log changes nothing: a caller who exports it records that itself (an `exported` custody event).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, or_, select
from sqlmodel.sql.expression import SelectOfScalar

from catalog.case_models import Case, CaseLink
from catalog.models import CustodyAnchor, CustodyEvent, CustodyHead

__all__ = ["ACCESS_KINDS", "LOGS", "AuditFilter", "VerificationState", "count_events", "list_events",
           "verification_state"]

#: The access log (调阅记录) is the custody log narrowed to these kinds; the others likewise.
ACCESS_KINDS = ("viewed", "accessed", "exported", "access_refused", "signed_in", "sign_in_failed", "signed_out")
LOGS: Mapping[str, tuple[str, ...]] = {
    "access": ACCESS_KINDS, "admin": ("user_changed", "registry_changed"),
    "verification": ("verification_run", "fixity_failed", "verified")}
#: Anchors listed with the verification results, newest first.
ANCHORS_SHOWN = 20


@dataclass(frozen=True)
class AuditFilter:
    """Which custody events to read; every field left empty (None, "") matches every event."""

    log: str = ""  # a name in LOGS; any other value reads the whole log
    kind: str = ""
    actor: str = ""
    recording_id: int | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # inclusive
    case: str = ""  # a case number: the case's own events and those of every recording it serves or served


def _of_case(number: str) -> ColumnElement[bool]:
    """The events of case *number*: those naming it (opened, linked, closed, its page viewed, exported) and every
    event of a recording ever linked to it (an unlinked one's history stays the case's to audit)."""
    members = select(CaseLink.recording_id).where(CaseLink.case_id == Case.id, Case.number == number)
    return or_(CustodyEvent.details["case"].as_string() == number, col(CustodyEvent.recording_id).in_(members))


def _query(where: AuditFilter) -> SelectOfScalar[CustodyEvent]:
    query = select(CustodyEvent)
    if where.case:
        query = query.where(_of_case(where.case))
    if where.log in LOGS:
        query = query.where(col(CustodyEvent.kind).in_(LOGS[where.log]))
    if where.kind:
        query = query.where(CustodyEvent.kind == where.kind)
    if where.actor:
        query = query.where(CustodyEvent.actor == where.actor)
    if where.recording_id is not None:
        query = query.where(CustodyEvent.recording_id == where.recording_id)
    if where.since is not None:
        query = query.where(col(CustodyEvent.at) >= where.since)
    if where.until is not None:
        query = query.where(col(CustodyEvent.at) <= where.until)
    return query


def count_events(session: Session, where: AuditFilter) -> int:
    """How many custody events *where* matches."""
    return int(session.exec(select(func.count()).select_from(_query(where).subquery())).one())


def list_events(session: Session, where: AuditFilter, *, newest_first: bool = False, offset: int = 0,
                limit: int = 100) -> list[CustodyEvent]:
    """The custody events *where* matches, in log order (or newest first), *offset* skipped, at most *limit*."""
    order = col(CustodyEvent.id).desc() if newest_first else col(CustodyEvent.id)
    return list(session.exec(_query(where).order_by(order).offset(offset).limit(limit)))


@dataclass(frozen=True)
class VerificationState:
    """The custody chain's head (None before the first event) and its latest anchors, newest first."""

    head: CustodyHead | None
    anchors: list[CustodyAnchor]


def verification_state(session: Session, *, anchors: int = ANCHORS_SHOWN) -> VerificationState:
    """The chain head and the *anchors* latest anchors written to WORM storage."""
    latest = session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id).desc()).limit(anchors))
    return VerificationState(head=session.get(CustodyHead, 1), anchors=list(latest))
