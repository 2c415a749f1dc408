"""The action checklist (《音像记录事项清单》) and whether recordings cover an action: pure, no I/O but reading the
agency's checklist file, no clock.

The checklist names the enforcement actions a case records (查封扣押, 现场检查, 询问, 听证, 强制执行 …) and which of
them must be recorded from start to end (全过程记录). `decide_action_coverage` decides one action from its start,
end and the recordings' time spans:

* covered: one continuous recorded period (recordings of any recorder, joined where they meet or overlap, or
  where a recording of at least SPLIT_MIN_S is followed within SEGMENT_GAP_S by the next, as a recorder splitting
  a long recording into files does) from no later than start + tolerance to no earlier than end − tolerance, the
  tolerance never more than a quarter of the action's length (TOLERANCE_SHARE);
* partly_covered: something recorded inside the action, but not that;
* not_recorded: nothing recorded inside it.

The seconds covered are the recordings' own (a joined seam is not recorded time). A recording whose time is
implausible (a wrong device clock) never covers: it is listed apart, for a person to look at; so is one with no
end time, which covers nothing. Which recordings are an action's is the catalogue's business (catalog.checklist).
"""
from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from catalog.coverage import Span
from catalog.errors import PolicyInvalid
from catalog.said import Said, listed, say

__all__ = [
    "DEFAULT_ACTION_TYPES", "DEFAULT_CHECKLIST", "MAX_TOLERANCE_S", "NO_END_LOOKBACK", "SEGMENT_GAP_S", "SPLIT_MIN_S",
    "TOLERANCE_SHARE", "ActionType", "ActionVerdict", "Checklist", "ChecklistInvalid", "Coverage",
    "applied_tolerance", "decide_action_coverage", "load_checklist", "needs_legal_review", "parse_checklist",
]

#: Recordings that leave at most this many seconds between them count as one, when the first lasted at least
#: SPLIT_MIN_S: a recorder splits a long recording into files whose times are written to the second, so one ends at
#: 09:14:59.97 and the next begins at 09:15:00 (a gap the recorder never had).
SEGMENT_GAP_S = 2.0
#: How long a recording must have run for a gap of up to SEGMENT_GAP_S after it to be a split's seam: a recorder
#: cuts a file at a size or length limit, after minutes. Without it, 1 s recordings 2 s apart (a third of the time)
#: joined into one "recorded" hour; with it, at most 2 s in 62 may be a seam.
SPLIT_MIN_S = 60.0
#: The tolerance applied never exceeds this share of the action's length: otherwise, with 120 s, a fraction of a
#: second anywhere in a four-minute action "covered" it. With a quarter, a covering recording holds at least half
#: of the action in one piece.
TOLERANCE_SHARE = 0.25
#: A recording with no end time is listed with an action (not counted) when it began during the action or at
#: most this long before it (no body camera records for longer on one charge).
NO_END_LOOKBACK = timedelta(hours=24)
#: The largest tolerance EVIDENCE_ACTION_TOLERANCE_S may give: beyond it a ten-minute recording would "cover" a
#: forty-minute action.
MAX_TOLERANCE_S = 900.0
#: What an action type's code may be (what a case-handling system's export and the command line name it by).
_CODE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_MAX_NAME = 50
_MAX_TYPES = 200
_TYPE_KEYS = frozenset({"code", "name", "name_en", "full_recording"})


class Coverage(enum.StrEnum):
    COVERED = "covered"  # recorded from its start to its end, within the tolerance
    PARTLY_COVERED = "partly_covered"  # recorded, but with a gap, or starting late or ending early
    NOT_RECORDED = "not_recorded"  # nothing recorded inside it


@dataclass(frozen=True)
class ActionType:
    code: str
    name: str  # Chinese (the default UI language)
    name_en: str
    full_recording: bool  # must be recorded from start to end (全过程记录)


#: Built-in action types: the five the issue names as needing full recording, and two that need none. An agency's
#: own list (EVIDENCE_ACTION_CHECKLIST) replaces it.
DEFAULT_ACTION_TYPES: dict[str, ActionType] = {t.code: t for t in (
    ActionType("seizure", "查封扣押", "Sealing up and seizure", True),
    ActionType("inspection", "现场检查", "On-site inspection", True),
    ActionType("questioning", "询问", "Questioning", True),
    ActionType("hearing", "听证", "Hearing", True),
    ActionType("enforcement", "强制执行", "Compulsory enforcement", True),
    ActionType("service", "文书送达", "Service of documents", False),
    ActionType("follow-up", "回访", "Follow-up visit", False),
)}


class ChecklistInvalid(PolicyInvalid):
    """An action checklist file cannot be used: `source` (its path) and every problem (`problems`)."""

    def __init__(self, source: str, problems: Sequence[Said]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(say("action checklist {file} cannot be used: {problems}", file=source,
                             problems=self.problems))


@dataclass(frozen=True)
class Checklist:
    """The action types in force (by code) and where they come from (a file, or "built-in")."""

    types: Mapping[str, ActionType] = field(default_factory=lambda: dict(DEFAULT_ACTION_TYPES))
    source: str = "built-in"

    def resolve(self, text: str) -> ActionType | None:
        """The action type *text* names: its code, Chinese or English name (letter case and surrounding spaces
        ignored); None if none does."""
        wanted = " ".join(text.split()).casefold()
        for kind in self.types.values():
            if wanted in (kind.code, kind.name.casefold(), kind.name_en.casefold()):
                return kind
        return None

    def type_of(self, code: str) -> ActionType:
        """The action type coded *code*; one the checklist no longer lists (an agency changed its file) is shown by
        its code and counted as needing full recording, so it is never quietly left out of legal review."""
        return self.types.get(code) or ActionType(code, code, code, True)

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "action_types": [
            {"code": t.code, "name": t.name, "name_en": t.name_en, "full_recording": t.full_recording}
            for t in self.types.values()]}


#: The checklist when EVIDENCE_ACTION_CHECKLIST is not set.
DEFAULT_CHECKLIST = Checklist()


def _name(entry: dict[str, Any], key: str, n: int, problems: list[Said]) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(say("action type {n}: {key} must be a text that is not blank", n=n, key=key))
        return ""
    if len(value.strip()) > _MAX_NAME:
        problems.append(say("action type {n}: {key} is longer than {max} characters", n=n, key=key, max=_MAX_NAME))
    return " ".join(value.split())


def _entry(n: int, entry: Any, seen: dict[str, int], problems: list[Said]) -> ActionType | None:
    if not isinstance(entry, dict):
        problems.append(say("action type {n} is not a table of code, name, name_en and full_recording", n=n))
        return None
    unknown = sorted(str(k) for k in set(entry) - _TYPE_KEYS)
    if unknown:
        problems.append(say("action type {n}: unknown key(s) {keys}", n=n, keys=listed(unknown)))
    code = entry.get("code")
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        problems.append(say("action type {n}: code {code} must be 1-32 lower-case letters, digits, - or _, starting "
                            "with a letter", n=n, code=repr(code)))
        code = ""
    name, name_en = _name(entry, "name", n, problems), _name(entry, "name_en", n, problems)
    full = entry.get("full_recording")
    if not isinstance(full, bool):
        problems.append(say("action type {n}: full_recording must be true or false", n=n))
    for word in (code, name.casefold(), name_en.casefold()):
        if word and word in seen and seen[word] != n:
            problems.append(say("action type {n}: {word} already names action type {other}", n=n, word=repr(word),
                                other=seen[word]))
        elif word:
            seen[word] = n
    return ActionType(code, name, name_en, full) if code and name and name_en and isinstance(full, bool) else None


def parse_checklist(data: Any, *, source: str) -> Checklist:
    """The checklist a file's *data* (parsed YAML or JSON) describes; ChecklistInvalid listing every problem:

        action_types:
          - {code: seizure, name: 查封扣押, name_en: Sealing up and seizure, full_recording: true}
    """
    if not isinstance(data, dict) or set(data) != {"action_types"} or not isinstance(data["action_types"], list):
        raise ChecklistInvalid(source, [say("it must hold one key, action_types, a list of action types")])
    entries: list[Any] = data["action_types"]
    problems: list[Said] = []
    if not entries:
        problems.append(say("it lists no action type"))
    if len(entries) > _MAX_TYPES:
        problems.append(say("it lists {n} action types; at most {max}", n=len(entries), max=_MAX_TYPES))
    seen: dict[str, int] = {}
    kinds = [_entry(n, entry, seen, problems) for n, entry in enumerate(entries, start=1)]
    if problems:
        raise ChecklistInvalid(source, problems)
    return Checklist({k.code: k for k in kinds if k is not None}, source)


def load_checklist(path: Path) -> Checklist:
    """The checklist in the YAML or JSON file *path* (JSON if its name ends in .json); ChecklistInvalid naming the
    file and every problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChecklistInvalid(str(path), [say("it cannot be read: {reason}", reason=str(exc))]) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ChecklistInvalid(str(path), [say("it is not {format}: {reason}",
                                               format="JSON" if path.suffix.lower() == ".json" else "YAML",
                                               reason=" ".join(str(exc).split()))]) from None
    return parse_checklist(data, source=str(path))


@dataclass(frozen=True)
class ActionVerdict:
    """How recordings cover one action: the verdict, the seconds its recordings hold of its length, the periods
    inside it that nothing recorded (a split's joined seam aside), the recordings that recorded part of it, the
    implausible ones and those with no end time that were not counted, and the tolerance applied (the one asked
    for, at most TOLERANCE_SHARE of the length)."""

    verdict: Coverage
    covered_s: float
    duration_s: float
    uncovered: tuple[tuple[datetime, datetime], ...]
    recording_ids: tuple[int, ...]
    implausible_ids: tuple[int, ...] = ()
    no_end_ids: tuple[int, ...] = ()
    tolerance_s: float = 0.0


def applied_tolerance(tolerance_s: float, duration_s: float) -> float:
    """The tolerance applied to an action lasting *duration_s*: *tolerance_s*, at most TOLERANCE_SHARE of it. Pure."""
    return min(tolerance_s, duration_s * TOLERANCE_SHARE)


def _clipped(spans: Iterable[Span], start: datetime, end: datetime) -> list[tuple[datetime, datetime, float]]:
    """Each span's part inside [start, end) (UTC), with the span's own length in seconds, in order (in UTC: a
    local time's difference across a change of daylight saving time is not the time that passed)."""
    parts = []
    for s in spans:
        first, last = s.start.astimezone(UTC), s.end.astimezone(UTC)
        begin, stop = max(first, start), min(last, end)
        if stop > begin:
            parts.append((begin, stop, (last - first).total_seconds()))
    return sorted(parts)


def _joined(parts: Sequence[tuple[datetime, datetime, float]], gap_s: float,
            min_s: float) -> list[tuple[datetime, datetime]]:
    """The periods *parts* (clipped spans, in order) make, joined where they overlap or meet, or where a gap of at
    most *gap_s* follows a recording that lasted at least *min_s* (a split's seam)."""
    gap = timedelta(seconds=gap_s)
    periods: list[tuple[datetime, datetime]] = []
    tail = 0.0  # the length of the recording that ends the last period (the longest, if several)
    for begin, stop, length in parts:
        if periods and (begin <= periods[-1][1] or (begin - periods[-1][1] <= gap and tail >= min_s)):
            last_begin, last_stop = periods[-1]
            if stop > last_stop:
                periods[-1], tail = (last_begin, stop), length
            elif stop == last_stop:
                tail = max(tail, length)
        else:
            periods.append((begin, stop))
            tail = length
    return periods


def decide_action_coverage(start: datetime, end: datetime, spans: Iterable[Span], tolerance_s: float, *,
                           no_end: Iterable[Span] = ()) -> ActionVerdict:
    """How *spans* (recordings' times, of any recorder) cover the action from *start* to *end*, allowing a
    recording to begin up to *tolerance_s* late and end up to *tolerance_s* early (at most TOLERANCE_SHARE of the
    action's length). *no_end*: recordings whose end time is unknown (their `end` is not read): never counted,
    listed when they began during the action or up to NO_END_LOOKBACK before it. Times are compared as instants
    (UTC), so an action across a change of daylight saving time lasts what it lasted. ValueError for a time
    without a zone, an end not after the start or a negative tolerance. Pure."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("an action's start and end need a time zone")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise ValueError(f"an action must end after it starts ({start.isoformat()} to {end.isoformat()})")
    if tolerance_s < 0:
        raise ValueError(f"tolerance {tolerance_s} s is negative")
    spans, no_end = list(spans), list(no_end)
    usable = [s for s in spans if not s.implausible]
    parts = _clipped(usable, start, end)
    periods = _joined(parts, SEGMENT_GAP_S, SPLIT_MIN_S)
    uncovered: list[tuple[datetime, datetime]] = []
    at = start
    for begin, stop in periods:
        if begin > at:
            uncovered.append((at, begin))
        at = stop
    if at < end:
        uncovered.append((at, end))
    duration = (end - start).total_seconds()
    covered = sum((b - a).total_seconds() for a, b in _joined(parts, 0.0, 0.0))  # the recordings' own time
    slack_s = applied_tolerance(tolerance_s, duration)
    slack = timedelta(seconds=slack_s)
    if not periods:
        verdict = Coverage.NOT_RECORDED
    elif len(periods) == 1 and periods[0][0] <= start + slack and periods[0][1] >= end - slack:
        verdict = Coverage.COVERED
    else:
        verdict = Coverage.PARTLY_COVERED
    recorded = sorted({s.recording_id for s in usable if min(s.end, end) > max(s.start, start)})
    implausible = sorted({s.recording_id for s in (*spans, *no_end) if s.implausible})
    unended = sorted({s.recording_id for s in no_end
                      if not s.implausible and start - NO_END_LOOKBACK <= s.start < end})
    return ActionVerdict(verdict, round(covered, 3), round(duration, 3), tuple(uncovered), tuple(recorded),
                         tuple(implausible), tuple(unended), round(slack_s, 3))


def needs_legal_review(verdicts: Iterable[tuple[ActionType, Coverage]]) -> bool:
    """Whether a case goes to legal review (法制审核): an action of a type needing full recording that is not
    covered. Pure."""
    return any(kind.full_recording and verdict != Coverage.COVERED for kind, verdict in verdicts)
