"""The action checklist (《音像记录事项清单》) and whether recordings cover an action: pure, no I/O but reading the
agency's checklist file, no clock.

The checklist names the enforcement actions a case records (查封扣押, 现场检查, 询问, 听证, 强制执行 …) and which of
them must be recorded from start to end (全过程记录). `decide_action_coverage` decides one action from its start,
end and the recordings' time spans:

* covered: one continuous recorded period (recordings of any recorder, joined where they meet or overlap, or
  leave at most SEGMENT_GAP_S between them, as a recorder splitting a long recording into files does) from no
  later than start + tolerance to no earlier than end − tolerance;
* partly_covered: something recorded inside the action, but not that;
* not_recorded: nothing recorded inside it.

A recording whose time is implausible (a wrong device clock) never covers: it is listed apart, for a person to
look at. Which recordings are an action's is the catalogue's business (catalog.checklist).
"""
from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from catalog.coverage import Span
from catalog.errors import PolicyInvalid
from catalog.said import Said, listed, say

__all__ = [
    "DEFAULT_ACTION_TYPES", "DEFAULT_CHECKLIST", "MAX_TOLERANCE_S", "SEGMENT_GAP_S", "ActionType", "ActionVerdict",
    "Checklist", "ChecklistInvalid", "Coverage", "decide_action_coverage", "load_checklist", "needs_legal_review",
    "parse_checklist",
]

#: Recordings that leave at most this many seconds between them count as one: a recorder splits a long
#: recording into files whose times are written to the second, so one ends at 09:14:59.97 and the next begins at
#: 09:15:00 (a gap the recorder never had).
SEGMENT_GAP_S = 2.0
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
    """How recordings cover one action: the verdict, the seconds covered of its length, the periods inside it that
    nothing recorded, the recordings that recorded part of it and the implausible ones that were not counted."""

    verdict: Coverage
    covered_s: float
    duration_s: float
    uncovered: tuple[tuple[datetime, datetime], ...]
    recording_ids: tuple[int, ...]
    implausible_ids: tuple[int, ...] = ()


def _joined(spans: Iterable[Span], start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The recorded periods inside [start, end), joined where recordings overlap, meet or leave at most
    SEGMENT_GAP_S between them."""
    gap = timedelta(seconds=SEGMENT_GAP_S)
    periods: list[tuple[datetime, datetime]] = []
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        begin, stop = max(s.start, start), min(s.end, end)
        if stop <= begin:
            continue
        if periods and begin - periods[-1][1] <= gap:
            periods[-1] = (periods[-1][0], max(periods[-1][1], stop))
        else:
            periods.append((begin, stop))
    return periods


def decide_action_coverage(start: datetime, end: datetime, spans: Iterable[Span],
                           tolerance_s: float) -> ActionVerdict:
    """How *spans* (recordings' times, of any recorder) cover the action from *start* to *end*, allowing a
    recording to begin up to *tolerance_s* late and end up to *tolerance_s* early. ValueError for a time without
    a zone, an end not after the start or a negative tolerance. Pure."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("an action's start and end need a time zone")
    if end <= start:
        raise ValueError(f"an action must end after it starts ({start.isoformat()} to {end.isoformat()})")
    if tolerance_s < 0:
        raise ValueError(f"tolerance {tolerance_s} s is negative")
    spans = list(spans)
    usable = [s for s in spans if not s.implausible]
    periods = _joined(usable, start, end)
    uncovered: list[tuple[datetime, datetime]] = []
    at = start
    for begin, stop in periods:
        if begin > at:
            uncovered.append((at, begin))
        at = stop
    if at < end:
        uncovered.append((at, end))
    duration = (end - start).total_seconds()
    covered = duration - sum((b - a).total_seconds() for a, b in uncovered)
    slack = timedelta(seconds=tolerance_s)
    if not periods:
        verdict = Coverage.NOT_RECORDED
    elif len(periods) == 1 and periods[0][0] <= start + slack and periods[0][1] >= end - slack:
        verdict = Coverage.COVERED
    else:
        verdict = Coverage.PARTLY_COVERED
    recorded = sorted({s.recording_id for s in usable if min(s.end, end) > max(s.start, start)})
    implausible = sorted({s.recording_id for s in spans if s.implausible})
    return ActionVerdict(verdict, round(covered, 3), round(duration, 3), tuple(uncovered), tuple(recorded),
                         tuple(implausible))


def needs_legal_review(verdicts: Iterable[tuple[ActionType, Coverage]]) -> bool:
    """Whether a case goes to legal review (法制审核): an action of a type needing full recording that is not
    covered. Pure."""
    return any(kind.full_recording and verdict != Coverage.COVERED for kind, verdict in verdicts)
