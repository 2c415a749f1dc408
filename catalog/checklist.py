"""A case's enforcement actions and whether its recordings cover them (《音像记录事项清单》): record, import, list,
and the cases that go to legal review (法制审核).

An action's recordings are the case's: those linked to it now, and those stamped with its number that were never
linked to it (a clerk's unlink is a decision and is kept). Recordings of the action's officers made at the time but
not in the case do not count: the case file must hold its footage. They are listed as `candidates`, for a clerk to
link. Only video and audio still kept count (no photo, text record, redacted copy, device housekeeping file or
disposed recording); one whose time is implausible never covers and is listed apart. The verdicts are
catalog.checklist_rules'; reading rows from a file is catalog.checklist_import's.

Changes need the `manage_cases` role and a case in the caller's scope, open; each is a `case_action_recorded`
custody event. Reading needs a case in the caller's scope (catalog.access.visible_case); recordings outside it
are counted, never named.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from sqlalchemy import exists
from sqlmodel import Session, col, select

from catalog.access import AccessRefused, Scope, cases_clause, out_of_scope, record_refusal, scope_clause, user_scope
from catalog.case_models import Case, CaseAction, CaseLink, CaseStatus
from catalog.checklist_import import ActionFields, ActionsInvalid, action_problems, read_actions
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
    begin_write(session)  # the duplicate check and the insert in turn with an import of the same case
    if _match(_existing(session, [case]), case, fields) is not None:
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


def _key(case: Case, fields: ActionFields) -> tuple[Any, ...]:
    if fields.external_id is not None:
        return (case.id, "id", fields.external_id)
    return (case.id, fields.action_type, fields.start, fields.end)


def _match(existing: dict[tuple[Any, ...], CaseAction], case: Case, fields: ActionFields) -> CaseAction | None:
    """The action of *case* recorded already that *fields* stand for: the one with its external id, else one
    without an external id with its type and times (a clerk entered it before the export was imported)."""
    found = existing.get(_key(case, fields))
    if found is None and fields.external_id is not None:
        found = existing.get((case.id, fields.action_type, fields.start, fields.end))
    return found


def _existing(session: Session, cases: Sequence[Case]) -> dict[tuple[Any, ...], CaseAction]:
    """The actions of *cases* by their external id, and those without one by type and times."""
    found: dict[tuple[Any, ...], CaseAction] = {}
    ids = [c.id for c in cases if c.id is not None]
    for start in range(0, len(ids), _CHUNK):
        for action in session.exec(select(CaseAction).where(col(CaseAction.case_id).in_(ids[start:start + _CHUNK]))):
            key = ((action.case_id, "id", action.external_id) if action.external_id is not None else
                   (action.case_id, action.action_type, action.started_at, action.ended_at))
            found[key] = action
    return found


@dataclass(frozen=True)
class ImportResult:
    """What an import did: actions added, found recorded already as they are, and corrected (with `corrections`)."""

    source: str
    added: list[CaseAction] = field(default_factory=list)
    unchanged: list[CaseAction] = field(default_factory=list)
    corrected: list[CaseAction] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "added": [a.id for a in self.added],
                "unchanged": [a.id for a in self.unchanged], "corrected": [a.id for a in self.corrected]}


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
    nothing. An action whose external id (or, without one, whose type and times) the case has already is left as
    it is when its facts are the same, so importing a file again adds nothing; with other facts it is refused, or
    with *corrections* changed (its revision raised, old and new values in its event). Not committed.

    Raises:
      PermissionDenied: *user* may not manage cases.
      ActionsInvalid: the file, naming every problem by its row: unreadable, a rule broken, a case unknown,
        closed or outside *user*'s scope (that refusal recorded), an action recorded already with other facts.
    """
    _allowed(user)
    name = file_name.replace("\\", "/").rsplit("/", 1)[-1][:250]
    rows = read_actions(data, file_name=name, checklist=checklist, now=now, case_number=case_number, zone=zone,
                        encoding=encoding)
    begin_write(session)  # what is recorded already, read under the lock every writer takes first
    cases = _cases_named(session, (r.case_number for r in rows))
    scope = user_scope(user)
    visible = _visible_ids(session, scope, cases.values())
    existing = _existing(session, list(cases.values()))
    problems: list[Said] = []
    refused: set[str] = set()
    source = f"import:{name}"
    result = ImportResult(source)
    changes: list[tuple[Case, CaseAction, dict[str, Any]]] = []
    fresh: list[tuple[Case, ActionFields]] = []
    for row in rows:
        case = cases.get(row.case_number)
        problem: Said | None = None
        if case is None:
            problem = say("no case {number} in the catalog", number=repr(row.case_number))
        elif case.id not in visible:
            problem = _outside(user, case, scope)
            refused.add(case.number)
        else:
            problem = _case_problem(case)
        if problem is None and case is not None:
            recorded = _match(existing, case, row)
            if recorded is None:
                fresh.append((case, row))
            elif _same(recorded, row):
                result.unchanged.append(recorded)
            elif corrections:
                changes.append((case, recorded, _correct(recorded, row, by=user.name, now=now)))
            else:
                problem = say("action {action} of case {case} is recorded already with other facts ({changes}); "
                              "import it with corrections to change it", action=recorded.id, case=case.number,
                              changes=listed(_changed(recorded, row)))
        if problem is not None:
            problems.append(say("row {row}: {problem}", row=row.row, problem=problem))
    if problems:
        if refused:
            record_refusal(session, user.name, action="import case actions", why="scope",
                           details={"cases": sorted(refused), "scope": str(scope.describe()), "file": name})
        else:
            session.rollback()
        raise ActionsInvalid(problems, source=name)
    added = [(case, _new(case, row, source=source, by=user.name, now=now), row) for case, row in fresh]
    session.add_all([action for _case, action, _row in added])
    session.flush()
    result.added.extend(action for _case, action, _row in added)
    result.corrected.extend(action for _case, action, _old in changes)
    events = [NewEvent(CustodyKind.CASE_ACTION_RECORDED, user.name, details=_details(case, action, row=row.row))
              for case, action, row in added]
    events += [NewEvent(CustodyKind.CASE_ACTION_RECORDED, user.name,
                        details=_details(case, action, changes=old, corrected_by=source))
               for case, action, old in changes]
    append_events(session, events)
    return result


def _changed(action: CaseAction, fields: ActionFields) -> list[str]:
    new = {"type": fields.action_type, "start": _iso(fields.start), "end": _iso(fields.end),
           "place": fields.place, "officers": list(fields.officers), "note": fields.note}
    old = _facts(action)
    return [f"{key}: {old[key]!r} → {new[key]!r}" for key in new if old[key] != new[key]]


def _correct(action: CaseAction, fields: ActionFields, *, by: str, now: datetime) -> dict[str, Any]:
    """Change *action* to *fields*; its old facts (for the custody event)."""
    old = _facts(action)
    action.action_type, action.started_at, action.ended_at = fields.action_type, fields.start, fields.end
    action.place, action.officers, action.note = fields.place, list(fields.officers), fields.note
    action.zone_assumed = fields.zone_assumed
    action.revision += 1
    action.changed_by, action.changed_at = by, now
    return old


def _recording_filter() -> list[Any]:
    return [col(Recording.media_kind).in_(RECORDING_KINDS), col(Recording.state).in_(_KEPT),
            col(Recording.redacted_from_id).is_(None), col(Recording.belongs_to_id).is_(None),
            col(Recording.captured_start).is_not(None)]


def _span(recording: Recording) -> Span:
    assert recording.captured_start is not None and recording.id is not None
    end = max(recording.captured_end or recording.captured_start, recording.captured_start)
    return Span(recording.captured_start, end, recording.id, recording.device_serial, recording.time_implausible)


def case_spans(session: Session, cases: Sequence[Case]) -> dict[int, list[Span]]:
    """Each case's recordings that may cover its actions (see the module's docstring), as time spans."""
    found: dict[int, dict[int, Span]] = {c.id: {} for c in cases if c.id is not None}
    ids = sorted(found)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        linked = session.exec(select(CaseLink.case_id, Recording).where(
            col(CaseLink.case_id).in_(chunk), col(CaseLink.unlinked_at).is_(None),
            CaseLink.recording_id == Recording.id, *_recording_filter()))
        stamped = session.exec(select(Case.id, Recording).where(
            col(Case.id).in_(chunk), Recording.case_number == Case.number, *_recording_filter(),
            ~exists().where(col(CaseLink.case_id) == col(Case.id), col(CaseLink.recording_id) == col(Recording.id))))
        for case_id, recording in [*linked, *stamped]:
            if case_id is not None and recording.id is not None:
                found[case_id][recording.id] = _span(recording)
    return {case_id: list(spans.values()) for case_id, spans in found.items()}


@dataclass(frozen=True)
class ActionReport:
    """One action with its verdict, as one caller may see it: the recordings outside their scope counted, not
    named."""

    action: CaseAction
    kind: ActionType
    verdict: ActionVerdict
    recording_ids: tuple[int, ...]
    implausible_ids: tuple[int, ...]
    outside_scope: int
    candidates: tuple[int, ...] = ()

    def as_json(self) -> dict[str, Any]:
        a, v = self.action, self.verdict
        return {"id": a.id, "type": a.action_type, "type_name": self.kind.name, "type_name_en": self.kind.name_en,
                "full_recording": self.kind.full_recording, "start": _iso(a.started_at), "end": _iso(a.ended_at),
                "place": a.place, "officers": list(a.officers), "note": a.note, "source": a.source,
                "external_id": a.external_id, "zone_assumed": a.zone_assumed, "revision": a.revision,
                "entered_by": a.entered_by, "entered_at": _iso(a.entered_at), "verdict": v.verdict.value,
                "covered_s": v.covered_s, "duration_s": v.duration_s,
                "uncovered": [{"from": f.isoformat(), "to": t.isoformat()} for f, t in v.uncovered],
                "recordings": list(self.recording_ids), "implausible": list(self.implausible_ids),
                "recordings_outside_scope": self.outside_scope, "candidates": list(self.candidates)}


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


def _actions_of(session: Session, case_ids: Sequence[int], since: datetime | None = None,
                until: datetime | None = None) -> dict[int, list[CaseAction]]:
    found: dict[int, list[CaseAction]] = {i: [] for i in case_ids}
    for start in range(0, len(case_ids), _CHUNK):
        query = select(CaseAction).where(col(CaseAction.case_id).in_(case_ids[start:start + _CHUNK]))
        if since is not None:
            query = query.where(col(CaseAction.started_at) >= since)
        if until is not None:
            query = query.where(col(CaseAction.started_at) < until)
        for action in session.exec(query.order_by(col(CaseAction.started_at), col(CaseAction.id))):
            found[action.case_id].append(action)
    return found


def _verdict(action: CaseAction, spans: list[Span], tolerance_s: float) -> ActionVerdict:
    assert action.started_at is not None and action.ended_at is not None
    return decide_action_coverage(action.started_at, action.ended_at, spans, tolerance_s)


def _candidates(session: Session, action: CaseAction, theirs: set[int], scope: Scope) -> tuple[int, ...]:
    """Recordings of the action's officers made during it that the case does not hold (in *scope*)."""
    if not action.officers:
        return ()
    query = select(Recording.id).where(col(Recording.officer_number).in_(action.officers), *_recording_filter(),
                                       col(Recording.time_implausible).is_(False),
                                       col(Recording.captured_start) < action.ended_at,
                                       col(Recording.captured_end) > action.started_at)
    clause = scope_clause(scope)
    if clause is not None:
        query = query.where(clause)
    return tuple(sorted(i for i in session.exec(query) if i is not None and i not in theirs))


def case_checklist(session: Session, case: Case, scope: Scope, *, checklist: Checklist,
                   tolerance_s: float) -> CaseChecklist:
    """*case*'s actions with their verdicts as a caller of *scope* sees them (the caller found the case with
    catalog.access.visible_case): the recordings outside the scope counted, not named; candidates in it only."""
    assert case.id is not None
    spans = case_spans(session, [case])[case.id]
    theirs = {s.recording_id for s in spans}
    hidden = set(out_of_scope(session, scope, theirs))
    reports = []
    for action in _actions_of(session, [case.id])[case.id]:
        verdict = _verdict(action, spans, tolerance_s)
        reports.append(ActionReport(
            action, checklist.type_of(action.action_type), verdict,
            tuple(i for i in verdict.recording_ids if i not in hidden),
            tuple(i for i in verdict.implausible_ids if i not in hidden),
            sum(1 for i in {*verdict.recording_ids, *verdict.implausible_ids} if i in hidden),
            _candidates(session, action, theirs, scope)))
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
    query = select(Case).order_by(col(Case.opened_on).desc(), col(Case.id).desc())
    clause = cases_clause(scope)
    if clause is not None:
        query = query.where(clause)
    if unit is not None:
        query = query.where(Case.unit == unit)
    query = query.where(exists().where(col(CaseAction.case_id) == col(Case.id)))
    cases = list(session.exec(query))
    actions = _actions_of(session, [c.id for c in cases if c.id is not None], since, until)
    spans = case_spans(session, [c for c in cases if actions.get(c.id or 0)])
    summaries = []
    for case in cases:
        assert case.id is not None
        if not actions[case.id]:
            continue
        verdicts = [(checklist.type_of(a.action_type), _verdict(a, spans[case.id], tolerance_s).verdict)
                    for a in actions[case.id]]
        review = any(kind.full_recording and verdict != Coverage.COVERED for kind, verdict in verdicts)
        if review or not review_only:
            summaries.append(CaseSummary(case.number, case.title, case.unit, case.status,
                                         _counts(verdicts, required=False), _counts(verdicts, required=True), review))
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
