"""Which recordings a person may see: the whole archive, their own, or their units'.

Roles say *what* a person may do (users.PERMISSIONS); the scope says *to which recordings*. A clerk,
auditor or admin works on the whole archive; a supervisor on the recordings of the officers in their
units (all of them when no unit is set: an agency-wide supervisor); an officer on the recordings they
collected. A person with several roles gets the widest. `scope_for` is pure; `scope_clause` turns a scope
into SQL so a search, a draw or a single lookup never returns what the caller may not see.

Every read of a recording's content goes through `read_evidence` (web media routes, `evidence cat`) or
`check_access` (the evidence package, which records `exported` itself): the role must allow the step
(view < play < download; a download of an original is a play of it, so an auditor does neither), the
recording must be in the caller's scope (a refusal is an `access_refused` custody event naming both), and
a reason must be stated where the agency's policy (EVIDENCE_ACCESS_REASON) asks for one — a download always.
An access is then recorded once: once per web session and recording and what was read (original, photo,
proxy, thumbnail), whatever HTTP range the request asked for, and once per command-line read.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import ColumnElement, and_, distinct, false, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, or_, select
from sqlmodel.sql.expression import SelectOfScalar

from catalog.case_models import Case, CaseLink, Disposal, DisposalBatch
from catalog.cases import case_as_json, get_case
from catalog.classification import class_refusals
from catalog.custody import CustodyKind, append_event
from catalog.errors import CaseStateError, PermissionDenied
from catalog.models import Officer, Recording, RecordingState
from catalog.retention import RetentionPolicy
from catalog.said import Said, listed, say
from catalog.sensitivity import step_word
from catalog.types import utcnow
from catalog.user_models import User, ViewingAccess

if TYPE_CHECKING:  # catalog.disposal imports this module (scopes)
    from catalog.disposal import PlanItem

__all__ = ["ACCESS_STEPS", "EVERYTHING", "MAX_REASON_CHARS", "STEP_PERMISSION", "AccessRefused", "BatchInScope",
           "DisposalInScope", "ReasonRequired", "Scope", "ambiguous_unit_names", "can_see", "case_in_scope",
           "cases_clause", "check_access", "disposal_in_scope", "disposed_message", "out_of_scope", "read_evidence",
           "reason_needed", "record_access", "record_refusal", "record_refusals", "role_problem", "scope_clause",
           "scope_for", "stated_reason", "unit_members", "unit_numbers", "user_scope", "visible_case"]

#: The steps of looking at evidence, in order; EVIDENCE_ACCESS_REASON names the first that needs a reason.
ACCESS_STEPS = ("view", "play", "download")
#: The role permission (users.PERMISSIONS) each step needs: downloading an original is playing it.
STEP_PERMISSION = {"view": "view", "play": "play", "download": "play"}


@dataclass(frozen=True)
class Scope:
    everything: bool = False
    officers: frozenset[str] = frozenset()  # officer numbers whose recordings are in scope
    units: frozenset[str] = frozenset()  # unit numbers, or unambiguous names, whose officers' recordings are in scope

    def describe(self) -> Said:
        """What the scope covers, said in the reader's language on a page ("officer 010203, unit U2")."""
        if self.everything:
            return say("the whole archive")
        parts = ([say("officer {number}", number=n) for n in sorted(self.officers)]
                 + [say("unit {unit}", unit=u) for u in sorted(self.units)])
        return listed(parts) if parts else say("nothing (an officer account without an officer number)")


#: The whole archive (clerks, auditors, administrators, agency-wide supervisors).
EVERYTHING = Scope(everything=True)


def scope_for(*, roles: list[str], officer_number: str | None, units: list[str]) -> Scope:
    """The widest scope any of the roles gives. Pure."""
    if {"clerk", "auditor", "admin", "reviewer"} & set(roles):  # a legal reviewer reviews the whole agency's
        return EVERYTHING
    wanted_units = frozenset(u.strip() for u in units if u.strip())
    if "supervisor" in roles and not wanted_units:
        return EVERYTHING
    officers = frozenset({officer_number}) if "officer" in roles and officer_number else frozenset()
    return Scope(officers=officers, units=wanted_units if "supervisor" in roles else frozenset())


def user_scope(user: User) -> Scope:
    return scope_for(roles=list(user.roles), officer_number=user.officer_number, units=list(user.units))


def scope_clause(scope: Scope) -> ColumnElement[bool] | None:
    """A WHERE condition on Recording for *scope*; None for the whole archive."""
    if scope.everything:
        return None
    parts: list[ColumnElement[bool]] = []
    if scope.officers:
        parts.append(col(Recording.officer_number).in_(sorted(scope.officers)))
    if scope.units:
        parts.append(col(Recording.officer_number).in_(unit_members(scope.units)))
    return or_(*parts) if parts else false()


def _of_units(units: Iterable[str]) -> ColumnElement[bool]:
    """Officers of *units* (numbers, or names): a name counts only when one unit carries it and it is no unit's
    number: "U1" given for the unit numbered U1 also took in another unit named "U1" (found by a review); a number
    always means its own unit."""
    wanted = sorted(units)
    numbers = select(Officer.unit_number).where(col(Officer.unit_number).in_(wanted))
    by_name = and_(col(Officer.unit_name).in_(wanted), col(Officer.unit_name).not_in(ambiguous_unit_names(wanted)),
                   col(Officer.unit_name).not_in(numbers))
    return or_(col(Officer.unit_number).in_(wanted), by_name)


def unit_members(units: Iterable[str]) -> SelectOfScalar[str]:
    """The officer numbers of *units*, as a supervisor's scope holds them (numbers, or unambiguous names)."""
    return select(Officer.number).where(_of_units(units))


def unit_numbers(units: Iterable[str]) -> SelectOfScalar[str]:
    """The unit numbers *units* name (a number itself; a name only when it is unambiguous, as unit_members)."""
    return select(Officer.unit_number).where(_of_units(units))


def ambiguous_unit_names(names: Sequence[str]) -> SelectOfScalar[str]:
    """Those of *names* that officers of more than one unit number carry (every 大队 may have its 一中队): a
    supervisor's unit given by such a name matches nobody (a review's supervisor of 一中队 read the recordings
    of another unit's 一中队); by its number it matches its own. Names are set unambiguous at assignment
    (catalog.users), but officers added later may share them."""
    return (select(Officer.unit_name).where(col(Officer.unit_name).in_(sorted(names)))
            .group_by(col(Officer.unit_name)).having(func.count(distinct(col(Officer.unit_number))) > 1))


def can_see(session: Session, scope: Scope, recording_id: int) -> bool:
    return not out_of_scope(session, scope, [recording_id])


def out_of_scope(session: Session, scope: Scope, recording_ids: Iterable[int]) -> list[int]:
    """Which of *recording_ids* lie outside *scope* (sorted; asked 500 at a time: a case or a disposal batch
    may hold many). An id with no recording is outside."""
    wanted = sorted(set(recording_ids))
    clause = scope_clause(scope)
    if clause is None or not wanted:
        return []
    inside: set[int] = set()
    for start in range(0, len(wanted), 500):
        inside.update(rid for rid in session.exec(select(Recording.id).where(
            col(Recording.id).in_(wanted[start:start + 500]), clause)) if rid is not None)
    return [i for i in wanted if i not in inside]


class AccessRefused(PermissionDenied):
    """A read refused: the role does not allow it, or the recordings are outside the caller's scope (listed)."""

    def __init__(self, message: str, *, recording_ids: Iterable[int] = (), scope: str = "") -> None:
        self.recording_ids = sorted(set(recording_ids))
        self.scope = scope
        super().__init__(message)


class ReasonRequired(AccessRefused):
    """The agency's policy asks for a stated reason (调阅事由) for this step and none was given (or one too long to
    keep)."""


#: The longest stated reason kept with an access (the web forms' limit too): a reason is a sentence, and a
#: 30,000-character one went whole into every custody event it was given with (found by a review).
MAX_REASON_CHARS = 500


def stated_reason(reason: str | None) -> str | None:
    """*reason* as it is recorded: stripped of surrounding whitespace; None when nothing readable is in it (blank,
    or only whitespace, control and format characters: a NUL or a zero-width space counted as a stated reason,
    found by a review). ReasonRequired when it is longer than MAX_REASON_CHARS. Pure."""
    if reason is None:
        return None
    if len(reason) > MAX_REASON_CHARS:
        raise ReasonRequired(say("the stated reason is {n} characters long; state it in at most {max}", n=len(reason),
                                 max=MAX_REASON_CHARS))
    if not any(unicodedata.category(c)[0] not in "CZ" for c in reason):
        return None
    return reason.strip()


def reason_needed(policy: str, step: str) -> bool:
    """Whether EVIDENCE_ACCESS_REASON=*policy* asks for a reason at *step* (view < play < download: a policy
    naming an earlier step asks at every later one too; a download always needs one). Pure."""
    return ACCESS_STEPS.index(step) >= ACCESS_STEPS.index(policy)


def record_refusals(session: Session, actor: str, recording_ids: Iterable[int], *, action: str, why: str,
                    details: dict[str, Any] | None = None) -> None:
    """One committed `access_refused` custody event per recording (what was asked and why it was refused)."""
    for rid in sorted(set(recording_ids)):
        append_event(session, CustodyKind.ACCESS_REFUSED, actor=actor, recording_id=rid,
                     details={"action": action, "why": why, **(details or {})})
    session.commit()


def record_refusal(session: Session, actor: str, *, action: str, why: str, details: dict[str, Any]) -> None:
    """One committed `access_refused` event naming no recording: a case outside the caller's scope
    (visible_case), a web route or command whose caller's roles do not allow it (why "role": before, only
    refusals by scope were recorded, so an auditor asking for originals again and again left no trace, found by
    a review). Nothing of the refused request is kept."""
    session.rollback()
    append_event(session, CustodyKind.ACCESS_REFUSED, actor=actor, details={"action": action, "why": why, **details})
    session.commit()


def role_problem(user: User, step: str) -> Said | None:
    """Why *user*'s roles (or an inactive account) do not allow *step* on recordings (a STEP_PERMISSION key, or a
    permission of its own such as `redact`), or None. Pure."""
    from catalog.users import PERMISSIONS  # users imports this module (scopes) at its top

    allowed = PERMISSIONS[STEP_PERMISSION.get(step, step)]
    if user.active and allowed & set(user.roles):
        return None
    if not user.active:
        return say("user {name!r} is not active", name=user.name)
    return say("user {name!r} (roles: {roles}) may not {step} recordings: that needs one of {allowed}",
               name=user.name, roles=listed([say(role) for role in user.roles]), step=step_word(step),
               allowed=listed([say(role) for role in sorted(allowed)]))


def check_access(session: Session, user: User, recordings: list[Recording], *, step: str, reason: str | None,
                 policy: str, action: str | None = None) -> None:
    """Refuse (AccessRefused) unless *user* may take *step* on every one of *recordings*: their role allows it
    and each is in their scope; each refused recording is an `access_refused` custody event (committed), and the
    message names the refused ids and the caller's scope. ReasonRequired when *policy* asks for a reason at
    *step* and *reason* is blank (nothing recorded: nothing was asked for yet)."""
    action = action or step
    ids = [r.id for r in recordings if r.id is not None]
    scope = user_scope(user)
    problem = role_problem(user, step)
    if problem is not None:
        record_refusals(session, user.name, ids, action=action, why="role", details={"roles": list(user.roles)})
        raise AccessRefused(say("{problem}; refused: {recordings}", problem=problem, recordings=_ids(ids)),
                            recording_ids=ids, scope=scope.describe())
    outside = out_of_scope(session, scope, ids)
    if outside:
        record_refusals(session, user.name, outside, action=action, why="scope",
                        details={"scope": str(scope.describe())})
        said = (say("{recordings} is outside what {person} may {action} ({scope})", recordings=_ids(outside),
                    person=user.name, action=step_word(action), scope=scope.describe()) if len(outside) == 1 else
                say("{recordings} are outside what {person} may {action} ({scope})", recordings=_ids(outside),
                    person=user.name, action=step_word(action), scope=scope.describe()))
        raise AccessRefused(said, recording_ids=outside, scope=scope.describe())
    classed = class_refusals(session, user, recordings, "export" if action == "export" else step)
    if classed:
        refused = [rid for rid, _ in classed]
        record_refusals(session, user.name, refused, action=action, why="class",
                        details={"class": "; ".join(sorted({why for _, why in classed}))})
        raise AccessRefused(say("{recordings} refused to {person}: {problems}", recordings=_ids(refused),
                                person=user.name, problems=[say("recording {id}: {problem}", id=rid, problem=why)
                                                            for rid, why in classed]),
                            recording_ids=refused, scope=scope.describe())
    if stated_reason(reason) is None and reason_needed(policy, step):
        why = (say("a download always needs one") if step == "download" else
               say("the agency's policy EVIDENCE_ACCESS_REASON={policy} asks for one before anyone may {step} a "
                   "recording", policy=policy, step=step_word(step)))
        raise ReasonRequired(say("state the reason for this access (调阅事由) to {recordings}: {why}",
                                 recordings=_ids(ids), why=why), recording_ids=ids, scope=scope.describe())


def _ids(ids: list[int]) -> Said:
    return (say("recording {recording}", recording=", ".join(str(i) for i in ids)) if len(ids) == 1 else
            say("recordings {recordings}", recordings=", ".join(str(i) for i in ids)))


def record_access(session: Session, *, actor: str, recording: Recording, what: str, details: dict[str, Any],
                  viewing_session: str | None) -> bool:
    """Record one `accessed` custody event for *recording* (committed). With a *viewing_session* (the web
    session's key) only its first read of this recording's *what* is recorded — a marker row in the same
    transaction as the event, so a follow-up range request, a parallel one or one served by another process
    adds nothing. True if an event was written."""
    assert recording.id is not None
    marker: int | None = None
    if viewing_session is not None:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(ViewingAccess).values(session_key=viewing_session, recording_id=recording.id, what=what,
                                                 at=utcnow()).on_conflict_do_nothing(
            index_elements=["session_key", "recording_id", "what"]).returning(col(ViewingAccess.id))
        marker = session.execute(statement).scalar_one_or_none()
        if marker is None:  # this session's read of it is already recorded
            session.rollback()
            return False
    event = append_event(session, CustodyKind.ACCESSED, actor=actor, recording_id=recording.id,
                         details={**details, "what": what})
    if marker is not None:
        session.execute(update(ViewingAccess).where(col(ViewingAccess.id) == marker).values(event_id=event.id))
    session.commit()
    return True


def disposed_message(session: Session, recording: Recording) -> Said:
    """Why a disposed recording's bytes cannot be read: when, in which batch and by which rule it went."""
    tombstone = session.exec(select(Disposal).where(Disposal.recording_id == recording.id)).first()
    when = tombstone.disposed_at.isoformat() if tombstone and tombstone.disposed_at else "?"
    return say("recording {recording} ({name}) was disposed of on {when} (batch {batch}, rule: {rule}); only its "
               "tombstone remains", recording=recording.id, name=recording.original_name, when=when,
               batch=tombstone.batch_id if tombstone else "?", rule=tombstone.rule if tombstone else "?")


def read_evidence(session: Session, *, user: User, recording: Recording, step: str, what: str, via: str,
                  reason: str | None, policy: str, viewing_session: str | None, opener: Callable[[], BinaryIO],
                  record: bool = True, details: dict[str, Any] | None = None) -> BinaryIO:
    """Open a recording's content for *user*: check role, scope and reason (check_access), open it with
    *opener* (a failed or refused read is never logged as an access), then record the access once
    (record_access). The caller reads and closes what is returned."""
    check_access(session, user, [recording], step=step, reason=reason, policy=policy)
    if recording.state == RecordingState.DISPOSED.value:
        raise CaseStateError(disposed_message(session, recording))
    handle = opener()
    try:
        if record:
            record_access(session, actor=user.name, recording=recording, what=what, viewing_session=viewing_session,
                          details={"via": via, "reason": stated_reason(reason), **(details or {})})
    except BaseException:
        handle.close()
        raise
    return handle


def cases_clause(scope: Scope) -> ColumnElement[bool] | None:
    """A WHERE condition on Case for *scope*; None for the whole archive. A caller limited to some recordings
    knows of the cases that hold, or once held, one of them: a case's number, title, unit and who opened it are
    case metadata too (an internal investigation's title names the officer it is about)."""
    clause = scope_clause(scope)
    if clause is None:
        return None
    in_scope = select(Recording.id).where(clause)
    return col(Case.id).in_(select(CaseLink.case_id).where(col(CaseLink.recording_id).in_(in_scope)))


def visible_case(session: Session, number: str, scope: Scope, *, actor: str, via: str) -> Case:
    """The case numbered *number* if *scope* may know of it (cases_clause). CaseNotFound if there is none;
    AccessRefused if it lies outside, recorded as one committed `access_refused` event naming the case, the
    caller's scope and *via*."""
    case = get_case(session, number)
    clause = cases_clause(scope)
    if clause is None or session.exec(select(Case.id).where(Case.id == case.id, clause)).first() is not None:
        return case
    record_refusal(session, actor, action="open case", why="scope",
                   details={"case": case.number, "scope": str(scope.describe()), "via": via})
    raise AccessRefused(say("case {case} is outside what {person} may see ({scope}): none of its recordings lies "
                            "there", case=case.number, person=actor, scope=scope.describe()), scope=scope.describe())


def case_in_scope(session: Session, case: Case, scope: Scope, policy: RetentionPolicy | None = None) -> dict[str, Any]:
    """A case as `case_as_json` gives it, with only the recordings, text records and past links inside *scope*:
    what lies outside is left out, counted in `outside_scope` (recordings, documents, unlinked) and nothing else —
    no id, name, purpose or date of it."""
    data = case_as_json(session, case, policy)
    sections = ("recordings", "documents", "unlinked")
    ids = [item["recording_id"] for key in sections for item in data[key]]
    hidden = set(out_of_scope(session, scope, ids))
    data["outside_scope"] = {}
    for key in sections:
        kept = [item for item in data[key] if item["recording_id"] not in hidden]
        data["outside_scope"][key] = len(data[key]) - len(kept)
        data[key] = kept
    return data


@dataclass(frozen=True)
class BatchInScope:
    """A disposal batch as one caller may see it: its items and outcome lines of recordings in their scope (an
    outcome line naming no recording is kept), and how many of its items lie outside it (a batch with any cannot
    be approved by them)."""

    batch: DisposalBatch
    items: list[dict[str, Any]]
    outcome: list[dict[str, Any]]
    hidden: int


@dataclass(frozen=True)
class DisposalInScope:
    """Retention and disposal as one caller may see them: nothing of a recording outside their scope, not even
    its id or name; `hidden` counts the distinct recordings left out."""

    plan: list[PlanItem]
    pending: list[PlanItem]
    batches: list[BatchInScope]
    hidden: int


def disposal_in_scope(session: Session, scope: Scope, *, plan: Sequence[PlanItem] = (),
                      pending: Sequence[PlanItem] = (), batches: Sequence[DisposalBatch] = ()) -> DisposalInScope:
    """The disposal plan, the pending-case holds and the disposal batches limited to *scope*: the one filter the
    web's retention page and `evidence retention plan|batches` share."""
    ids = ([i.recording_id for i in (*plan, *pending)]
           + [int(i["recording_id"]) for b in batches for i in b.items])
    hidden = set(out_of_scope(session, scope, ids))
    views = [BatchInScope(b, [i for i in b.items if int(i["recording_id"]) not in hidden],
                          [o for o in b.outcome if o.get("recording_id") not in hidden],
                          sum(1 for i in b.items if int(i["recording_id"]) in hidden)) for b in batches]
    return DisposalInScope([i for i in plan if i.recording_id not in hidden],
                           [i for i in pending if i.recording_id not in hidden], views, len(hidden))
