"""A case's enforcement actions and whether its recordings cover them (《音像记录事项清单》): record, import, list,
and the cases that go to legal review (法制审核).

An action's recordings are the case's: those linked to it now, and those stamped with its number that were never
linked to it (a clerk's unlink is a decision and is kept). Recordings of the action's officers made at the time but
not in the case do not count: the case file must hold its footage. They are listed as `candidates`, for a clerk to
link. Only video and audio still kept count (no photo, text record, redacted copy, device housekeeping file or
disposed recording); one whose time is implausible never covers and is listed apart. The verdicts are
catalog.checklist_rules'; reading rows from a file is catalog.checklist_import's.

A recording with no end time covers nothing; it is listed with the actions it may concern (`no_end`), for a person
to look at.

Changes need the `manage_cases` role and a case in the caller's scope, open; each is a `case_action_recorded`
custody event. Reading needs a case in the caller's scope (catalog.access.visible_case); recordings outside it
are counted, never named, and the verdict is the same whoever reads it. A reader who cannot see every recording
of an action is not shown its uncovered periods (their edges would be the hidden recordings' times).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypedDict

from sqlalchemy import and_, exists, or_
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from catalog.access import AccessRefused, Scope, cases_clause, out_of_scope, record_refusal, scope_clause, user_scope
from catalog.case_models import Case, CaseAction, CaseLink, CaseStatus
from catalog.checklist_import import ActionFields, ActionsInvalid, action_problems, in_utc, read_actions
from catalog.checklist_rules import ActionType, ActionVerdict, Checklist, Coverage, decide_action_coverage
from catalog.coverage import Span
from catalog.custody import CustodyKind, NewEvent, append_events
from catalog.db import begin_write
from catalog.errors import CaseStateError, PermissionDenied
from catalog.models import Recording, RecordingState
from catalog.periods import Period
from catalog.said import Said, listed, say
from catalog.user_models import User
from catalog.users import PERMISSIONS

__all__ = [
    "CLERK", "RECORDING_KINDS", "ActionReport", "CaseChecklist", "CaseSummary", "ChecklistFigures", "ImportResult",
    "case_checklist", "checklist_figures", "import_actions", "record_action", "unit_checklist",
]

#: The source of an action a clerk entered; an import's is "import:<file name>".
CLERK = "clerk"
#: What records an action (as catalog.coverage counts it): never a photo or a text record.
RECORDING_KINDS = ("video", "audio")
_KEPT = (RecordingState.STAGED.value, RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)
_CHUNK = 500


def _allowed(user: User) -> None:
    needs = PERMISSIONS["manage_cases"]
    if user.active and needs & set(user.roles):
        return
    wanted = listed(say(role) for role in sorted(needs))
    raise PermissionDenied(say("user {name} is not active: that needs one of {needs}", name=repr(user.name),
                               needs=wanted) if not user.active else
                           say("user {name} (roles: {roles}) may not {action}: that needs one of {needs}",
                               name=repr(user.name), roles=listed(say(role) for role in user.roles),
                               action=say("record a case's actions"), needs=wanted))


def _outside(user: User, case: Case, scope: Scope) -> Said:
    return say("case {case} is outside what {person} may see ({scope}): none of its recordings lies there",
               case=case.number, person=user.name, scope=scope.describe())


def _case_problem(case: Case) -> Said | None:
    if case.status != CaseStatus.OPEN.value:
        return say("case {case} is closed (on {day}); reopen it before recording its actions", case=case.number,
                   day=str(case.closed_on))
    return None


def _iso(value: datetime | None) -> str | None:
    """An instant as the catalogue keeps it (UTC), whatever zone it was given in."""
    return value.astimezone(UTC).isoformat() if value is not None else None


def _facts(action: CaseAction) -> dict[str, Any]:
    return {"type": action.action_type, "start": _iso(action.started_at), "end": _iso(action.ended_at),
            "place": action.place, "officers": list(action.officers), "note": action.note}


def _details(case: Case, action: CaseAction, **more: Any) -> dict[str, Any]:
    return {"case": case.number, "action": action.id, **_facts(action), "source": action.source,
            "external_id": action.external_id, "zone_assumed": action.zone_assumed, "revision": action.revision,
            **more}


def _same(action: CaseAction, fields: ActionFields) -> bool:
    """Whether *action* records the facts *fields* give (its external id aside)."""
    return (action.action_type, action.started_at, action.ended_at, action.place, tuple(action.officers),
            action.note) == (fields.action_type, fields.start, fields.end, fields.place, fields.officers, fields.note)


def _new(case: Case, fields: ActionFields, *, source: str, by: str, now: datetime) -> CaseAction:
    assert case.id is not None
    return CaseAction(case_id=case.id, action_type=fields.action_type, started_at=fields.start, ended_at=fields.end,
                      place=fields.place, officers=list(fields.officers), note=fields.note, source=source,
                      external_id=fields.external_id, zone_assumed=fields.zone_assumed, entered_by=by,
                      entered_at=now)


def record_action(session: Session, user: User, case: Case, *, action_type: str, start: datetime, end: datetime,
                  checklist: Checklist, now: datetime, place: str = "", officers: Sequence[str] = (), note: str = "",
                  external_id: str | None = None) -> CaseAction:
    """Record an action of *case* as a clerk enters it: *action_type* a code or name of *checklist*; its
    `case_action_recorded` event appended. Not committed.

    Raises:
      PermissionDenied: *user* may not manage cases (AccessRefused, recorded: the case is outside their scope).
      CaseStateError: the case is closed.
      ActionsInvalid: every rule the action breaks (checklist_import.action_problems), or an action with the same
        external id, or the same type and times, is recorded already.
    """
    _allowed(user)
    _in_scope(session, user, case)
    closed = _case_problem(case)
    if closed is not None:
        raise CaseStateError(closed)
    kind = checklist.resolve(action_type)
    fields = ActionFields(case.number, kind.code if kind else action_type.strip(), start, end, " ".join(place.split()),
                          tuple(o.strip() for o in officers if o.strip()), note.strip(),
                          (external_id or "").strip() or None)
    problems = action_problems(fields, checklist=checklist, now=now)
    if problems:
        raise ActionsInvalid(problems)
    fields = replace(fields, start=in_utc(fields.start), end=in_utc(fields.end))
    begin_write(session)  # the duplicate check and the insert in turn with an import of the same case
    found, ambiguous = _Recorded.of(session, [case]).find(case, fields)
    if found is not None or ambiguous:
        raise ActionsInvalid([say("case {case} has this action already (the same external id, or the same type "
                                  "and times)", case=case.number)])
    action = _new(case, fields, source=CLERK, by=user.name, now=now)
    session.add(action)
    session.flush()
    append_events(session, [NewEvent(CustodyKind.CASE_ACTION_RECORDED, user.name, details=_details(case, action))])
    return action


def _in_scope(session: Session, user: User, case: Case) -> None:
    scope = user_scope(user)
    clause = cases_clause(scope)
    if clause is None or session.exec(select(Case.id).where(Case.id == case.id, clause)).first() is not None:
        return
    record_refusal(session, user.name, action="record case actions", why="scope",
                   details={"case": case.number, "scope": str(scope.describe())})
    raise AccessRefused(_outside(user, case, scope), scope=scope.describe())


_Times = tuple[int, str, datetime, datetime]


def _times(case_id: int | None, action_type: str, start: datetime | None, end: datetime | None) -> _Times:
    assert case_id is not None and start is not None and end is not None
    return (case_id, action_type, start, end)  # aware datetimes: equal instants are equal keys


@dataclass(frozen=True)
class _Recorded:
    """The actions of some cases recorded already: those with an external id by it, and every one by its type and
    times (an action that has an id is still the action a clerk's entry or a row without an id stands for)."""

    by_id: dict[tuple[int, str], CaseAction]
    by_times: dict[_Times, list[CaseAction]]

    @classmethod
    def of(cls, session: Session, cases: Sequence[Case]) -> _Recorded:
        by_id: dict[tuple[int, str], CaseAction] = {}
        by_times: dict[_Times, list[CaseAction]] = {}
        ids = [c.id for c in cases if c.id is not None]
        for start in range(0, len(ids), _CHUNK):
            for action in session.exec(select(CaseAction).where(col(CaseAction.case_id).in_(
                    ids[start:start + _CHUNK])).order_by(col(CaseAction.id))):
                if action.external_id is not None:
                    by_id[(action.case_id, action.external_id)] = action
                by_times.setdefault(_times(action.case_id, action.action_type, action.started_at, action.ended_at),
                                    []).append(action)
        return cls(by_id, by_times)

    def find(self, case: Case, fields: ActionFields) -> tuple[CaseAction | None, list[CaseAction]]:
        """The action of *case* recorded already that *fields* stand for, or the several it might be (none
        chosen). With an external id: the action with that id, else one without an id with its type and times (a
        clerk entered it before the export was imported: it takes the id); another id at the same times is
        another action. Without an id: the one action with its type and times, whatever its id."""
        assert case.id is not None
        same = self.by_times.get(_times(case.id, fields.action_type, fields.start, fields.end), [])
        if fields.external_id is not None:
            found = self.by_id.get((case.id, fields.external_id))
            if found is None:
                found = next((a for a in same if a.external_id is None), None)
            return found, []
        if len(same) > 1:
            return None, same
        return (same[0] if same else None), []


@dataclass(frozen=True)
class ImportResult:
    """What an import did: actions added, found recorded already as they are, given the external id a row
    found them by (a clerk's entry of the same type and times, its facts the same), and corrected (with
    `corrections`; an id given too)."""

    source: str
    added: list[CaseAction] = field(default_factory=list)
    unchanged: list[CaseAction] = field(default_factory=list)
    corrected: list[CaseAction] = field(default_factory=list)
    identified: list[CaseAction] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "added": [a.id for a in self.added],
                "unchanged": [a.id for a in self.unchanged], "corrected": [a.id for a in self.corrected],
                "identified": [a.id for a in self.identified]}


def _cases_named(session: Session, numbers: Iterable[str]) -> dict[str, Case]:
    wanted = sorted(set(numbers))
    found: dict[str, Case] = {}
    for start in range(0, len(wanted), _CHUNK):
        found.update((c.number, c) for c in session.exec(select(Case).where(
            col(Case.number).in_(wanted[start:start + _CHUNK]))))
    return found


def _visible_ids(session: Session, scope: Scope, cases: Iterable[Case]) -> set[int]:
    ids = sorted({c.id for c in cases if c.id is not None})
    clause = cases_clause(scope)
    if clause is None:
        return set(ids)
    seen: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        seen.update(i for i in session.exec(select(Case.id).where(col(Case.id).in_(ids[start:start + _CHUNK]), clause))
                    if i is not None)
    return seen


def import_actions(session: Session, user: User, data: bytes, *, file_name: str, checklist: Checklist, now: datetime,
                   case_number: str | None = None, zone: str | None = None, encoding: str = "utf-8",
                   corrections: bool = False) -> ImportResult:
    """Record the actions of a case-handling system's export (*data*, JSON or CSV, `read_actions`), all or
    nothing. A row finds the action it stands for (`_Recorded.find`): by its external id, or by its type and times
    (an action without an id, which then takes the row's id: its revision raised, an event saying so). A found
    action is left as it is when its facts are the same, so importing a file again adds nothing; with other facts
    it is refused, or with *corrections* changed (its revision raised, old and new values in its event). Not
    committed.

    Raises:
      PermissionDenied: *user* may not manage cases.
      ActionsInvalid: the file, naming every problem by its row: unreadable, a rule broken, a case unknown,
        closed or outside *user*'s scope (that refusal recorded), an action recorded already with other facts, a
        row without an id matching several actions, two rows finding the same action.
    """
    _allowed(user)
    name = file_name.replace("\\", "/").rsplit("/", 1)[-1][:250]
    rows = read_actions(data, file_name=name, checklist=checklist, now=now, case_number=case_number, zone=zone,
                        encoding=encoding)
    begin_write(session)  # what is recorded already, read under the lock every writer takes first
    cases = _cases_named(session, (r.case_number for r in rows))
    scope = user_scope(user)
    visible = _visible_ids(session, scope, cases.values())
    recorded = _Recorded.of(session, list(cases.values()))
    problems: list[Said] = []
    refused: set[str] = set()
    source = f"import:{name}"
    fresh: list[tuple[Case, ActionFields]] = []
    found: list[tuple[Case, CaseAction, ActionFields]] = []
    claimed: dict[int, int] = {}  # an action found by a row: that row
    for row in rows:
        case = cases.get(row.case_number)
        problem: Said | None = None
        if case is None:
            problem = say("no case {number} in the catalog", number=repr(row.case_number))
        elif case.id not in visible:
            problem = _outside(user, case, scope)
            refused.add(case.number)
        else:
            problem = _case_problem(case) or _row_problem(case, row, recorded, claimed, fresh, found, corrections)
        if problem is not None:
            problems.append(say("row {row}: {problem}", row=row.row, problem=problem))
    if problems:
        if refused:
            record_refusal(session, user.name, action="import case actions", why="scope",
                           details={"cases": sorted(refused), "scope": str(scope.describe()), "file": name})
        else:
            session.rollback()
        raise ActionsInvalid(problems, source=name)
    result = ImportResult(source)
    changes: list[tuple[Case, CaseAction, dict[str, Any]]] = []
    for case, action, row in found:
        if _same(action, row) and (row.external_id is None or action.external_id is not None):
            result.unchanged.append(action)
            continue
        changes.append((case, action, _correct(action, row, by=user.name, now=now)))
        (result.corrected if not _same_facts(changes[-1][2]) else result.identified).append(action)
    added = [(case, _new(case, row, source=source, by=user.name, now=now), row) for case, row in fresh]
    session.add_all([action for _case, action, _row in added])
    session.flush()
    result.added.extend(action for _case, action, _row in added)
    events = [NewEvent(CustodyKind.CASE_ACTION_RECORDED, user.name, details=_details(case, action, row=row.row))
              for case, action, row in added]
    events += [NewEvent(CustodyKind.CASE_ACTION_RECORDED, user.name,
                        details=_details(case, action, changes=old, corrected_by=source))
               for case, action, old in changes]
    append_events(session, events)
    return result


def _row_problem(case: Case, row: ActionFields, recorded: _Recorded, claimed: dict[int, int],
                 fresh: list[tuple[Case, ActionFields]], found: list[tuple[Case, CaseAction, ActionFields]],
                 corrections: bool) -> Said | None:
    """What is wrong with importing *row* of *case* given what is recorded; None: it goes to *fresh* (to add) or
    *found* (the action it stands for, to leave, identify or correct)."""
    action, several = recorded.find(case, row)
    if several:
        return say("actions {actions} of case {case} have its type and times; give its external id to say which",
                   actions=listed(a.id for a in several), case=case.number)
    if action is None:
        fresh.append((case, row))
        return None
    assert action.id is not None
    if action.id in claimed:
        return say("it stands for action {action} of case {case}, as row {other} does", action=action.id,
                   case=case.number, other=claimed[action.id])
    claimed[action.id] = row.row
    if not _same(action, row) and not corrections:
        return say("action {action} of case {case} is recorded already with other facts ({changes}); "
                   "import it with corrections to change it", action=action.id, case=case.number,
                   changes=listed(_changed(action, row)))
    found.append((case, action, row))
    return None


def _same_facts(old: dict[str, Any]) -> bool:
    """Whether a change (its old values, `_correct`) gave the action only its external id."""
    return set(old) == {"external_id"}


def _changed(action: CaseAction, fields: ActionFields) -> list[str]:
    new = {"type": fields.action_type, "start": _iso(fields.start), "end": _iso(fields.end),
           "place": fields.place, "officers": list(fields.officers), "note": fields.note}
    old = _facts(action)
    return [f"{key}: {old[key]!r} → {new[key]!r}" for key in new if old[key] != new[key]]


def _correct(action: CaseAction, fields: ActionFields, *, by: str, now: datetime) -> dict[str, Any]:
    """Change *action* to *fields*, and give it their external id if it has none; what it was (for the custody
    event): its old facts if they changed, and its external id (None) if it took one."""
    old: dict[str, Any] = {}
    if not _same(action, fields):
        old.update(_facts(action))
        action.action_type, action.started_at, action.ended_at = fields.action_type, fields.start, fields.end
        action.place, action.officers, action.note = fields.place, list(fields.officers), fields.note
        action.zone_assumed = fields.zone_assumed
    if fields.external_id is not None and action.external_id is None:
        old["external_id"] = None
        action.external_id = fields.external_id
    action.revision += 1
    action.changed_by, action.changed_at = by, now
    return old


def _recording_filter() -> list[Any]:
    return [col(Recording.media_kind).in_(RECORDING_KINDS), col(Recording.state).in_(_KEPT),
            col(Recording.redacted_from_id).is_(None), col(Recording.belongs_to_id).is_(None),
            col(Recording.captured_start).is_not(None)]


#: What a span is made of, and what says whether the recording counts (not the whole Recording row: a unit's
#: month reads thousands).
_SPAN_COLUMNS = (col(Recording.id), col(Recording.case_number), col(Recording.media_kind), col(Recording.state),
                 col(Recording.redacted_from_id), col(Recording.belongs_to_id), col(Recording.captured_start),
                 col(Recording.captured_end), col(Recording.device_serial), col(Recording.time_implausible))


class CaseTimes(NamedTuple):
    """A case's recordings that may cover its actions, as time spans, and those with no end time (their span's
    end is their start: they cover nothing)."""

    spans: list[Span]
    no_end: list[Span]


def _counted(row: Any) -> tuple[Span, bool] | None:
    """A recording's span (and whether it has no end time) if it may cover an action (_recording_filter, decided
    here: given as conditions, they led SQLite to scan every recording by its redacted_from_id index)."""
    rid, _number, kind, state, redacted_from, belongs_to, begin, stop, device, implausible = row
    if (rid is None or begin is None or kind not in RECORDING_KINDS or state not in _KEPT or redacted_from is not None
            or belongs_to is not None):
        return None
    return Span(begin, max(stop or begin, begin), rid, device, implausible), stop is None


def case_spans(session: Session, cases: dict[int, str]) -> dict[int, CaseTimes]:
    """Each case's (*cases*: number by id) recordings that may cover its actions (see the module's docstring)."""
    found: dict[int, dict[int, tuple[Span, bool]]] = {i: {} for i in cases}
    ids = sorted(found)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        ever: set[tuple[int, int]] = set()  # a recording linked to a case, now or once (then unlinked: not its)
        linked: dict[int, list[int]] = {}  # a recording linked now: the cases
        for case_id, rid, unlinked in session.execute(select_columns(
                col(CaseLink.case_id), col(CaseLink.recording_id), col(CaseLink.unlinked_at)).where(
                col(CaseLink.case_id).in_(chunk))):
            ever.add((case_id, rid))
            if unlinked is None:
                linked.setdefault(rid, []).append(case_id)
        wanted = sorted(linked)
        for part in range(0, len(wanted), _CHUNK):
            for row in session.execute(select_columns(*_SPAN_COLUMNS).where(
                    col(Recording.id).in_(wanted[part:part + _CHUNK]))):
                counted = _counted(row)
                if counted is not None:
                    for case_id in linked[row[0]]:
                        found[case_id][row[0]] = counted
        by_number = {cases[i]: i for i in chunk}
        for row in session.execute(select_columns(*_SPAN_COLUMNS).where(
                col(Recording.case_number).in_(sorted(by_number)))):
            counted, case_id = _counted(row), by_number[row[1]]
            if counted is not None and (case_id, row[0]) not in ever:
                found[case_id][row[0]] = counted
    return {case_id: CaseTimes([s for s, open_ in spans.values() if not open_],
                               [s for s, open_ in spans.values() if open_])
            for case_id, spans in found.items()}


@dataclass(frozen=True)
class ActionReport:
    """One action with its verdict, as one caller may see it: the recordings outside their scope counted, not
    named; its uncovered periods withheld (`uncovered_withheld` saying why) when some of the recordings that
    recorded part of it are outside the scope, as the periods' edges would be those recordings' times. The
    verdict and the seconds covered are the same for every reader."""

    action: CaseAction
    kind: ActionType
    verdict: ActionVerdict
    recording_ids: tuple[int, ...]
    implausible_ids: tuple[int, ...]
    outside_scope: int
    candidates: tuple[int, ...] = ()
    no_end_ids: tuple[int, ...] = ()
    uncovered_withheld: Said | None = None

    def as_json(self) -> dict[str, Any]:
        a, v = self.action, self.verdict
        uncovered = [] if self.uncovered_withheld is not None else [
            {"from": f.isoformat(), "to": t.isoformat()} for f, t in v.uncovered]
        return {"id": a.id, "type": a.action_type, "type_name": self.kind.name, "type_name_en": self.kind.name_en,
                "full_recording": self.kind.full_recording, "start": _iso(a.started_at), "end": _iso(a.ended_at),
                "place": a.place, "officers": list(a.officers), "note": a.note, "source": a.source,
                "external_id": a.external_id, "zone_assumed": a.zone_assumed, "revision": a.revision,
                "entered_by": a.entered_by, "entered_at": _iso(a.entered_at), "verdict": v.verdict.value,
                "covered_s": v.covered_s, "duration_s": v.duration_s, "tolerance_s": v.tolerance_s,
                "uncovered": uncovered, "uncovered_withheld": self.uncovered_withheld,
                "recordings": list(self.recording_ids), "implausible": list(self.implausible_ids),
                "no_end": list(self.no_end_ids), "recordings_outside_scope": self.outside_scope,
                "candidates": list(self.candidates)}


def _counts(reports: Iterable[tuple[ActionType, Coverage]], *, required: bool) -> dict[str, int]:
    counted = {c.value: 0 for c in Coverage}
    for kind, verdict in reports:
        if kind.full_recording or not required:
            counted[verdict.value] += 1
    return counted


@dataclass(frozen=True)
class CaseChecklist:
    """A case's actions, each with its verdict, oldest first."""

    case: Case
    actions: list[ActionReport]

    @property
    def needs_legal_review(self) -> bool:
        """A required action not covered: the case goes to legal review (法制审核)."""
        return any(r.kind.full_recording and r.verdict.verdict != Coverage.COVERED for r in self.actions)

    def as_json(self) -> dict[str, Any]:
        verdicts = [(r.kind, r.verdict.verdict) for r in self.actions]
        return {"case": self.case.number, "title": self.case.title, "unit": self.case.unit,
                "status": self.case.status, "needs_legal_review": self.needs_legal_review,
                "actions": [r.as_json() for r in self.actions], "counts": _counts(verdicts, required=False),
                "required_counts": _counts(verdicts, required=True)}


def _in_period(since: datetime | None, until: datetime | None) -> list[Any]:
    """A WHERE condition on CaseAction: begun in [*since*, *until*)."""
    return [*([col(CaseAction.started_at) >= since] if since is not None else []),
            *([col(CaseAction.started_at) < until] if until is not None else [])]


def _actions_of(session: Session, case_id: int) -> list[CaseAction]:
    return list(session.exec(select(CaseAction).where(CaseAction.case_id == case_id)
                             .order_by(col(CaseAction.started_at), col(CaseAction.id))))


def _action_times(session: Session, case_ids: Sequence[int], since: datetime | None,
                  until: datetime | None) -> dict[int, list[tuple[str, datetime, datetime]]]:
    """The type, start and end of each case's actions begun in [*since*, *until*) (only what a verdict needs)."""
    found: dict[int, list[tuple[str, datetime, datetime]]] = {i: [] for i in case_ids}
    for start in range(0, len(case_ids), _CHUNK):
        query = select(CaseAction.case_id, CaseAction.action_type, CaseAction.started_at, CaseAction.ended_at).where(
            col(CaseAction.case_id).in_(case_ids[start:start + _CHUNK]), *_in_period(since, until))
        for case_id, kind, begin, stop in session.exec(query):
            assert begin is not None and stop is not None
            found[case_id].append((kind, begin, stop))
    return found


def _verdict(start: datetime | None, end: datetime | None, times: CaseTimes, tolerance_s: float) -> ActionVerdict:
    assert start is not None and end is not None
    return decide_action_coverage(start, end, times.spans, tolerance_s, no_end=times.no_end)


#: Actions whose candidates one query looks for (one OR-ed condition each).
_CANDIDATE_CHUNK = 50


def _candidates(session: Session, actions: Sequence[CaseAction], theirs: set[int],
                scope: Scope) -> dict[int, tuple[int, ...]]:
    """For each action (by id), the recordings of its officers made during it that the case does not hold (in
    *scope*): one query for every _CANDIDATE_CHUNK actions."""
    found: dict[int, tuple[int, ...]] = {}
    wanted = [a for a in actions if a.officers and a.id is not None]
    clause = scope_clause(scope)
    for start in range(0, len(wanted), _CANDIDATE_CHUNK):
        chunk = wanted[start:start + _CANDIDATE_CHUNK]
        query = select(Recording.id, Recording.officer_number, Recording.captured_start, Recording.captured_end).where(
            or_(*(and_(col(Recording.officer_number).in_(a.officers), col(Recording.captured_start) < a.ended_at,
                       col(Recording.captured_end) > a.started_at) for a in chunk)),
            *_recording_filter(), col(Recording.time_implausible).is_(False))
        if clause is not None:
            query = query.where(clause)
        rows = [(rid, officer, begin, stop) for rid, officer, begin, stop in session.exec(query)
                if rid is not None and rid not in theirs and begin is not None and stop is not None]
        for a in chunk:
            assert a.id is not None and a.started_at is not None and a.ended_at is not None
            officers = set(a.officers)
            found[a.id] = tuple(sorted({rid for rid, officer, begin, stop in rows
                                        if officer in officers and begin < a.ended_at and stop > a.started_at}))
    return found


def _withheld(verdict: ActionVerdict, hidden: set[int]) -> Said | None:
    """Why a reader is not shown an action's uncovered periods: recordings outside their scope recorded part of it
    (the periods' edges would be those recordings' times). None: every one that did is theirs to see."""
    n = sum(1 for i in verdict.recording_ids if i in hidden)
    if not n:
        return None
    return say("not shown: {n} recording(s) outside your scope recorded part of this action, and the periods not "
               "recorded would show their times", n=n)


def case_checklist(session: Session, case: Case, scope: Scope, *, checklist: Checklist,
                   tolerance_s: float) -> CaseChecklist:
    """*case*'s actions with their verdicts as a caller of *scope* sees them (the caller found the case with
    catalog.access.visible_case): the verdicts decided on all the case's recordings, those outside the scope
    counted, not named, and the uncovered periods their times would show withheld; candidates in it only."""
    assert case.id is not None
    times = case_spans(session, {case.id: case.number})[case.id]
    theirs = {s.recording_id for s in (*times.spans, *times.no_end)}
    hidden = set(out_of_scope(session, scope, theirs))
    actions = _actions_of(session, case.id)
    candidates = _candidates(session, actions, theirs, scope)
    reports = []
    for action in actions:
        verdict = _verdict(action.started_at, action.ended_at, times, tolerance_s)
        ids = (*verdict.recording_ids, *verdict.implausible_ids, *verdict.no_end_ids)
        reports.append(ActionReport(
            action, checklist.type_of(action.action_type), verdict,
            tuple(i for i in verdict.recording_ids if i not in hidden),
            tuple(i for i in verdict.implausible_ids if i not in hidden),
            sum(1 for i in set(ids) if i in hidden), candidates.get(action.id or 0, ()),
            tuple(i for i in verdict.no_end_ids if i not in hidden), _withheld(verdict, hidden)))
    return CaseChecklist(case, reports)


@dataclass(frozen=True)
class CaseSummary:
    """One case of a unit's checklist: its actions counted by verdict, and whether it goes to legal review."""

    number: str
    title: str
    unit: str
    status: str
    counts: dict[str, int]  # every action, by verdict
    required_counts: dict[str, int]  # the actions needing full recording, by verdict
    needs_legal_review: bool

    def as_json(self) -> dict[str, Any]:
        return {"case": self.number, "title": self.title, "unit": self.unit, "status": self.status,
                "counts": self.counts, "required_counts": self.required_counts,
                "needs_legal_review": self.needs_legal_review}


def unit_checklist(session: Session, scope: Scope, *, checklist: Checklist, tolerance_s: float,
                   unit: str | None = None, since: datetime | None = None, until: datetime | None = None,
                   review_only: bool = False) -> list[CaseSummary]:
    """The cases in *scope* (catalog.access.cases_clause) handled by *unit* (the case's 承办单位; None: every
    unit) that have actions starting in [*since*, *until*), each with its actions counted by verdict, newest case
    first; with *review_only*, only those going to legal review."""
    query = select_columns(col(Case.id), col(Case.number), col(Case.title), col(Case.unit), col(Case.status)).order_by(
        col(Case.opened_on).desc(), col(Case.id).desc())
    clause = cases_clause(scope)
    if clause is not None:
        query = query.where(clause)
    if unit is not None:
        query = query.where(col(Case.unit) == unit)
    query = query.where(exists().where(col(CaseAction.case_id) == col(Case.id), *_in_period(since, until)))
    cases = [(case_id, number, title, unit_of, status)
             for case_id, number, title, unit_of, status in session.execute(query) if case_id is not None]
    ids = [case_id for case_id, *_rest in cases]
    actions = _action_times(session, ids, since, until)
    spans = case_spans(session, {case_id: number for case_id, number, *_rest in cases})
    summaries = []
    for case_id, number, title, unit_of, status in cases:
        if not actions[case_id]:
            continue  # its action moved out of the period (a correction) between the two reads
        verdicts = [(checklist.type_of(kind), _verdict(begin, stop, spans[case_id], tolerance_s).verdict)
                    for kind, begin, stop in actions[case_id]]
        review = any(kind.full_recording and verdict != Coverage.COVERED for kind, verdict in verdicts)
        if review or not review_only:
            summaries.append(CaseSummary(number, title, unit_of, status, _counts(verdicts, required=False),
                                         _counts(verdicts, required=True), review))
    return summaries


class ChecklistFigures(TypedDict):
    cases: int  # cases with an action in the period
    cases_for_review: int  # of them, those with a required action not covered (法制审核)
    actions: dict[str, int]  # the period's actions by verdict
    required_actions: dict[str, int]  # those needing full recording, by verdict


def checklist_figures(session: Session, scope: Scope, *, checklist: Checklist, tolerance_s: float, zone: str,
                      period: Period | None = None, unit: str | None = None) -> ChecklistFigures:
    """The checklist's figures for the statistics of *period* (its calendar days in *zone*; None: all time): the
    actions that began in it, by verdict, and the cases flagged for legal review, in *scope*, of *unit*."""
    since, until = period.bounds(zone) if period is not None else (None, None)
    cases = unit_checklist(session, scope, checklist=checklist, tolerance_s=tolerance_s, unit=unit, since=since,
                           until=until)
    actions = {c.value: sum(s.counts[c.value] for s in cases) for c in Coverage}
    required = {c.value: sum(s.required_counts[c.value] for s in cases) for c in Coverage}
    return {"cases": len(cases), "cases_for_review": sum(1 for s in cases if s.needs_legal_review),
            "actions": actions, "required_actions": required}
