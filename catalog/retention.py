"""Retention decisions: which rule keeps a record how long, and whether it is held. Pure: no I/O, no clock.

The rules (issue 5, DESIGN.md evidence rule 5):

* routine: retain-until = the later of capture end and archiving (for
  documents: the time they were attached) + the routine period (≥ 6
  months); a capture time flagged implausible (a device clock reset to
  2000, or set 20 years ahead) does not count, so a device clock can
  neither shorten retention nor lock an object until the year 9999;
* linked to an open case: legal hold;
* linked to a closed case: retain-until = the day after closed date + the
  case type's years (in the agency's zone), no hold from that case;
  a permanent case type keeps the legal hold for good;
* pending case: a recording stamped with a case number that is not
  registered here (or is registered but the recording was never linked to
  it), or marked important while linked to no case, is held until a clerk
  links it to a registered case (which then decides) or removes the case
  number / important flag with a stated reason;
* the longest applicable date wins and retention never shrinks: the
  recording's current retain-until is always a candidate, so unlinking or
  reopening never shortens anything.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from catalog.errors import PolicyInvalid
from catalog.said import say
from storage import compute_retain_until, validate_routine_months

__all__ = [
    "DEFAULT_CASE_TYPES", "PENDING_CASE", "CaseFacts", "CaseType", "RetentionDecision", "RetentionPolicy",
    "case_retain_until", "decide_retention", "disposal_due", "load_case_types", "parse_case_types",
    "pending_case_holds", "routine_base", "routine_rule",
]

#: The latest retain-until ever decided (every store can write it, rounded up to whole seconds).
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
#: How every pending-case hold reason begins (shown in plans, pages and `evidence show`).
PENDING_CASE = "pending case"


@dataclass(frozen=True)
class CaseType:
    code: str
    name: str  # Chinese (the default UI language)
    name_en: str
    years: int | None  # None: permanent

    @property
    def permanent(self) -> bool:
        return self.years is None

    def describe(self) -> str:
        return "permanent" if self.years is None else f"{self.years} years"


#: Built-in case types. Periods follow common provincial archive rules for administrative enforcement
#: files; every agency must check them against its own archive rules (EVIDENCE_CASE_TYPES overrides).
DEFAULT_CASE_TYPES: dict[str, CaseType] = {t.code: t for t in (
    CaseType("penalty-general", "行政处罚（普通程序）", "Administrative penalty – general procedure", 30),
    CaseType("penalty-summary", "行政处罚（简易程序）", "Administrative penalty – summary procedure", 10),
    CaseType("coercion", "行政强制", "Administrative coercion", 30),
    CaseType("licensing", "行政许可", "Licensing", 30),
    CaseType("inspection", "行政检查", "Inspection", 10),
    CaseType("major", "重大案件", "Major case", None),
)}


@dataclass(frozen=True)
class RetentionPolicy:
    routine_months: int
    case_types: Mapping[str, CaseType]
    zone: str  # the agency's zone: closed dates are calendar days there

    def __post_init__(self) -> None:
        validate_routine_months(self.routine_months)
        ZoneInfo(self.zone)

    def case_type(self, code: str) -> CaseType:
        try:
            return self.case_types[code]
        except KeyError:
            raise PolicyInvalid(say("unknown case type {case_type}; known: {known}", case_type=repr(code),
                                    known=", ".join(sorted(self.case_types)))) from None


@dataclass(frozen=True)
class CaseFacts:
    """What retention needs to know about one case a record is linked to."""

    number: str
    case_type: str
    status: str  # open | closed
    closed_on: date | None


@dataclass(frozen=True)
class RetentionDecision:
    retain_until: datetime
    legal_hold: bool
    rule: str  # the rule that set retain_until
    hold_reasons: tuple[str, ...]  # why the hold is on (empty: off)


def routine_rule(months: int) -> str:
    return f"routine: later of capture end and archiving + {months} months"


def routine_base(*, captured_end: datetime | None, entered_at: datetime, time_implausible: bool = False) -> datetime:
    """What routine retention counts from: the later of capture end and *entered_at* (when the archive took the
    record). A capture time flagged implausible (a wrong device clock) does not count."""
    if captured_end is None or time_implausible:
        return entered_at
    return max(captured_end, entered_at)


def pending_case_holds(*, case_number: str | None, case_registered: bool, ever_linked_to_it: bool,
                       important: bool, linked_now: bool) -> tuple[str, ...]:
    """Why a recording waits for a clerk's decision (empty: it does not).

    *case_registered*: a case with the stamped number exists here; *ever_linked_to_it*: the recording was linked
    to that case at some time (a clerk's unlink is a decision); *linked_now*: it serves some case now.
    """
    reasons = []
    if case_number and not case_registered:
        reasons.append(f"{PENDING_CASE}: case number {case_number} is not registered here; held until a clerk "
                       "links the recording to a registered case or removes the case number with a reason")
    elif case_number and not ever_linked_to_it:
        reasons.append(f"{PENDING_CASE}: case {case_number} is registered but the recording was never linked to "
                       "it; held until a clerk links it or removes the case number with a reason")
    if important and not linked_now:
        reasons.append(f"{PENDING_CASE}: marked important and linked to no case; held until a clerk links it to "
                       "a case or removes the important flag with a reason")
    return tuple(reasons)


def case_retain_until(closed_on: date, case_type: CaseType, zone: str) -> datetime | None:
    """Kept through the anniversary day of closing: the start of the next day in *zone* (in UTC).
    None: permanent."""
    if case_type.years is None:
        return None
    last_day = closed_on + relativedelta(years=case_type.years)
    return datetime.combine(last_day + timedelta(days=1), time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def decide_retention(*, base_time: datetime, current: datetime | None, cases: Iterable[CaseFacts],
                     policy: RetentionPolicy, pending: Iterable[str] = ()) -> RetentionDecision:
    """The retention a record must have now, given every case it is linked to.

    *base_time* is what routine retention counts from (`routine_base`); *current* is the retain-until the record
    already has, which is never undercut; *pending* are its pending-case holds (`pending_case_holds`).
    """
    try:
        routine = compute_retain_until(base_time, routine_months=policy.routine_months, zone=policy.zone)
    except (OverflowError, ValueError):  # a base near year 9999 (never a plausible clock): as long as can be written
        routine = LATEST
    candidates: list[tuple[datetime, str]] = [(routine, routine_rule(policy.routine_months))]
    holds: list[str] = list(pending)
    for case in sorted(cases, key=lambda c: c.number):
        kind = policy.case_type(case.case_type)
        if case.status == "open":
            holds.append(f"case {case.number} is open")
            continue
        if case.closed_on is None:
            raise PolicyInvalid(say("case {case} is {status!r} without a closed date", case=case.number,
                                    status=say(case.status)))
        until = case_retain_until(case.closed_on, kind, policy.zone)
        if until is None:
            holds.append(f"case {case.number} ({kind.code}) is kept permanently")
        else:
            candidates.append((until, f"case {case.number} closed {case.closed_on.isoformat()} + "
                                      f"{kind.describe()} ({kind.code})"))
    if current is not None:  # last: it is named only when no rule reaches it
        candidates.append((current, "kept: retention never shrinks"))
    # Strictly longer wins; on a tie the earlier rule is named.
    retain_until, rule = candidates[0]
    for when, why in candidates[1:]:
        if when > retain_until:
            retain_until, rule = when, why
    return RetentionDecision(retain_until=retain_until, legal_hold=bool(holds), rule=rule,
                             hold_reasons=tuple(holds))


def disposal_due(decision: RetentionDecision, now: datetime) -> bool:
    """True when nothing keeps the record any longer."""
    return not decision.legal_hold and now >= decision.retain_until


def _case_type(code: str, entry: Any, problems: list[str]) -> CaseType | None:
    """One `[case_types.<code>]` entry as a CaseType, adding what is wrong with it to *problems* (None when it is
    not even a table, has no usable term, or no name)."""
    where = f"case_types.{code}"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", code):
        problems.append(f"{where}: a code is 1-32 lower-case letters, digits, '-' or '_'")
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a table")
        return None
    unknown = sorted(set(entry) - {"name", "name_en", "years", "permanent"})
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: needs a name")
    years, permanent = entry.get("years"), entry.get("permanent", False)
    if permanent is True:
        if years is not None:
            problems.append(f"{where}: give either years or permanent = true, not both")
        years = None
    elif not isinstance(years, int) or isinstance(years, bool) or years < 1:
        problems.append(f"{where}: years must be a whole number ≥ 1 (or permanent = true), got {years!r}")
        return None
    return CaseType(code, name, str(entry.get("name_en", name)), years) if isinstance(name, str) else None


def parse_case_types(data: Mapping[str, Any], *, source: str) -> dict[str, CaseType]:
    """Case types from a TOML table `[case_types.<code>]` (name, name_en, years | permanent = true)."""
    table = data.get("case_types")
    problems: list[str] = []
    if not isinstance(table, dict) or not table:
        raise PolicyInvalid(f"{source}: needs a non-empty [case_types.<code>] table")
    unknown_top = sorted(set(data) - {"case_types"})
    if unknown_top:
        problems.append(f"unknown top-level key(s): {', '.join(unknown_top)}")
    found: dict[str, CaseType] = {}
    for code, entry in table.items():
        case_type = _case_type(code, entry, problems)
        if case_type is not None:
            found[code] = case_type
    if problems:
        raise PolicyInvalid(f"{source}: " + "; ".join(problems))
    return found


def load_case_types(path: Path) -> dict[str, CaseType]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyInvalid(f"{path}: cannot read the case-type table: {exc}") from exc
    return parse_case_types(data, source=str(path))
