"""A case's actions as a clerk enters them or a case-handling system exports them (JSON or CSV): read and checked,
every problem named by its row. Pure: bytes in, typed rows or ActionsInvalid out; which case a number names and
what is recorded already is catalog.checklist's business.

CSV: UTF-8 (a BOM is fine; another encoding is named by the caller), one header row with Chinese or English
column names (`COLUMNS`), rows counted as a spreadsheet shows them (the header is row 1). JSON: a list of objects,
or an object whose `actions` is one, with the same names as keys; items counted from 1. Times are ISO 8601 with
their offset (`2026-11-20T09:00:00+08:00`); a time without one is refused unless the caller names the zone it is
in, and then refused if that zone's clocks went back or forward over it (ambiguous, or nonexistent). Times are
kept as instants (UTC). Nothing is left out quietly: a file with one bad row is refused whole, and so is a value
under a column with no name, a JSON key given twice and an officer number written as a JSON number.
"""
from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from catalog.checklist_rules import Checklist
from catalog.errors import CaseInvalid, CatalogError
from catalog.said import Said, listed, say

__all__ = [
    "ACTION_TIME_FLOOR", "COLUMNS", "MAX_ACTION_HOURS", "MAX_IMPORT_BYTES", "MAX_IMPORT_ROWS", "MAX_OFFSET",
    "ActionFields", "ActionsInvalid", "action_problems", "in_utc", "officers_text", "read_actions",
]

#: The largest import read (4 MiB: some 20,000 rows of a case-handling system's export).
MAX_IMPORT_BYTES = 4 * 1024 * 1024
MAX_IMPORT_ROWS = 5000
#: The longest action: a longer one is a mistyped date (a day's hearing is split into its sittings).
MAX_ACTION_HOURS = 24
#: How far past the caller's clock an action may end (the clerk's and the server's clocks differ a little).
FUTURE_SLACK = timedelta(minutes=5)
#: No action begins or ends before this (UTC): an earlier time is a mistyped year. The station's EVIDENCE_TIME_FLOOR
#: (default 2005-01-01, for recordings' capture times) is an ingest setting the catalogue does not read; an action
#: of a case entered from old files may predate the archive's recorders, so the floor here is earlier.
ACTION_TIME_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
#: The largest UTC offset a time may carry (the world's zones run from -12:00 to +14:00).
MAX_OFFSET = timedelta(hours=14)
MAX_PLACE = 300
MAX_NOTE = 1000
MAX_EXTERNAL_ID = 100
MAX_OFFICERS = 20
MAX_OFFICER = 32
#: Each field, its names in a file (the first is what the documentation shows), Chinese first.
COLUMNS: dict[str, tuple[str, ...]] = {
    "case": ("案件编号", "case", "case_number"),
    "type": ("事项类型", "事项", "type", "action_type"),
    "start": ("开始时间", "start", "started_at"),
    "end": ("结束时间", "end", "ended_at"),
    "place": ("地点", "place"),
    "officers": ("执法人员", "officers", "officer_numbers"),
    "note": ("备注", "note"),
    "external_id": ("外部编号", "事项编号", "external_id", "id"),
}
_FIELD_OF = {name.casefold(): key for key, names in COLUMNS.items() for name in names}
#: What separates officer numbers in one cell: comma, Chinese comma and enumeration comma, semicolon, spaces.
_OFFICER_SEPARATORS = (",", "，", "、", ";", "；")


class ActionsInvalid(CaseInvalid):
    """An action, or an import, refused: every problem (`details`), each a said message; an import's name each
    row. Nothing is recorded."""

    def __init__(self, details: Sequence[Said], *, source: str = "") -> None:
        self.details = list(details)
        self.source = source
        # CaseInvalid's own words say "invalid case": these are the action's or the file's
        CatalogError.__init__(self, say("import {file} refused, nothing recorded: {problems}", file=source,
                                        problems=self.details) if source else
                              say("invalid action: {problems}", problems=self.details))


@dataclass(frozen=True)
class ActionFields:
    """One action as entered or read: *row* is where in the file (0: a clerk's entry)."""

    case_number: str
    action_type: str  # the checklist's code
    start: datetime
    end: datetime
    place: str = ""
    officers: tuple[str, ...] = ()
    note: str = ""
    external_id: str | None = None
    row: int = 0
    zone_assumed: str | None = None

    def same_as(self, other: ActionFields) -> bool:
        """Whether *other* records the same facts (where it was read from aside)."""
        return (self.case_number, self.action_type, self.start, self.end, self.place, self.officers, self.note,
                self.external_id) == (other.case_number, other.action_type, other.start, other.end, other.place,
                                      other.officers, other.note, other.external_id)


def _controls(text: str, *, lines: bool = False) -> bool:
    """Whether *text* holds a control character (a NUL PostgreSQL refuses, an escape); a note may hold line
    breaks and tabs."""
    allowed = "\n\t\r" if lines else ""
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


def _offset(value: timedelta) -> str:
    minutes = int(abs(value).total_seconds()) // 60
    return f"{'-' if value < timedelta(0) else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


def _zone_problem(what: Said, value: datetime) -> Said | None:
    """Why *value*, a local time of a zone with daylight saving time (not a fixed offset), is no one instant: the
    clocks went back over it (it happened twice) or forward past it (it never happened). None: it is one."""
    if value.tzinfo is None or isinstance(value.tzinfo, timezone):
        return None
    if value.replace(fold=0).utcoffset() == value.replace(fold=1).utcoffset():
        return None
    zone = str(value.tzinfo)
    wall = value.replace(tzinfo=None)
    if value.astimezone(UTC).astimezone(value.tzinfo).replace(tzinfo=None) != wall:
        return say("{what} {time} does not exist in {zone}: the clocks went forward past it; write it with its "
                   "offset", what=what, time=wall.isoformat(), zone=zone)
    return say("{what} {time} happened twice in {zone}: the clocks went back over it; write it with its offset",
               what=what, time=wall.isoformat(), zone=zone)


def _instant_problem(what: Said, value: datetime) -> Said | None:
    """Why the zoned time *value* is no instant an action can be at: an offset beyond MAX_OFFSET, a time that
    cannot be converted to UTC (year 1 with a positive offset), before ACTION_TIME_FLOOR, or a local time the
    zone's clocks skipped or repeated."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_OFFSET:
        return say("{what} {time} has the offset {offset}; offsets run from -14:00 to +14:00", what=what,
                   time=value.isoformat(), offset=_offset(offset))
    try:
        instant = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return say("{what} {time} cannot be converted to UTC", what=what, time=value.isoformat())
    if instant < ACTION_TIME_FLOOR:
        return say("{what} {time} is before {floor}: a mistyped year?", what=what, time=value.isoformat(),
                   floor=ACTION_TIME_FLOOR.date().isoformat())
    return _zone_problem(what, value)


def in_utc(value: datetime) -> datetime:
    """*value* as the instant it names, in UTC (what is kept and compared: a local time's difference across a
    change of daylight saving time is not the time that passed). For a time `action_problems` accepted."""
    return value.astimezone(UTC)


def _time_problems(fields: ActionFields, now: datetime) -> list[Said]:
    times = ((say("start"), fields.start), (say("end"), fields.end))
    problems = [say("{what} {time} has no time zone; write it with its offset, e.g. 2026-11-20T09:00:00+08:00",
                    what=what, time=value.isoformat()) for what, value in times if value.tzinfo is None]
    if problems:
        return problems
    problems = [p for what, value in times if (p := _instant_problem(what, value)) is not None]
    if problems:
        return problems
    start, end = in_utc(fields.start), in_utc(fields.end)
    if end <= start:
        problems.append(say("the end {end} is not after the start {start}", end=fields.end.isoformat(),
                            start=fields.start.isoformat()))
    elif end - start > timedelta(hours=MAX_ACTION_HOURS):
        problems.append(say("the action lasts more than {hours} hours ({start} to {end}); record each sitting as an "
                            "action of its own", hours=MAX_ACTION_HOURS, start=fields.start.isoformat(),
                            end=fields.end.isoformat()))
    if end > now + FUTURE_SLACK:
        problems.append(say("the end {end} is in the future", end=fields.end.isoformat()))
    return problems


def _text_problems(fields: ActionFields) -> list[Said]:
    problems = [say("{what} is {n} characters; at most {max}", what=what, n=len(text), max=limit)
                for what, text, limit in ((say("place"), fields.place, MAX_PLACE), (say("note"), fields.note, MAX_NOTE))
                if len(text) > limit]
    if _controls(fields.place) or _controls(fields.note, lines=True) or _controls(fields.case_number) \
            or any(_controls(o) for o in fields.officers) or _controls(fields.external_id or ""):
        problems.append(say("a text holds control characters"))
    if fields.external_id is not None and not 1 <= len(fields.external_id) <= MAX_EXTERNAL_ID:
        problems.append(say("the external id must be 1-{max} characters", max=MAX_EXTERNAL_ID))
    if len(fields.officers) > MAX_OFFICERS:
        problems.append(say("{n} officers; at most {max}", n=len(fields.officers), max=MAX_OFFICERS))
    problems += [say("officer number {number} must be 1-{max} characters", number=repr(o), max=MAX_OFFICER)
                 for o in fields.officers if not 1 <= len(o) <= MAX_OFFICER]
    return problems


def action_problems(fields: ActionFields, *, checklist: Checklist, now: datetime) -> list[Said]:
    """Every rule *fields* break (empty: none): a case, a known action type, times with their zone that name one
    instant (an offset within ±14:00, convertible to UTC, not before ACTION_TIME_FLOOR, not skipped or repeated by
    a change of daylight saving time), an end after the start and not in the future, no longer than
    MAX_ACTION_HOURS (in real time), texts within their limits. Pure."""
    problems: list[Said] = []
    if not fields.case_number.strip():
        problems.append(say("the case number is missing"))
    if not fields.action_type:
        problems.append(say("the action type is missing"))
    elif fields.action_type not in checklist.types:
        problems.append(say("unknown action type {kind}; known: {known}", kind=repr(fields.action_type),
                            known=listed(f"{t.code} ({t.name})" for t in checklist.types.values())))
    return problems + _time_problems(fields, now) + _text_problems(fields)


def _time(value: Any, what: Said, zone: str | None, problems: list[Said]) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        problems.append(say("{what} is missing", what=what))
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        problems.append(say("{what} {value} is not an ISO 8601 time such as 2026-11-20T09:00:00+08:00", what=what,
                            value=repr(value.strip()[:40])))
        return None
    if parsed.tzinfo is None and zone is not None:
        return parsed.replace(tzinfo=ZoneInfo(zone))  # checked by action_problems: skipped or repeated is refused
    return parsed


def _text(value: Any, what: Said, problems: list[Said]) -> str:
    if value is None:
        return ""
    if isinstance(value, int | str) and not isinstance(value, bool):
        return str(value).strip()
    problems.append(say("{what} must be a text", what=what))
    return ""


def _number_problem(value: Any, problems: list[Said]) -> bool:
    """Whether *value*, an officer number, is a JSON number (said in *problems*): 010203 exported as 10203 lost its
    leading zero, and would name another officer."""
    if isinstance(value, int) and not isinstance(value, bool):
        problems.append(say("officer number {number} is a JSON number, which loses leading zeros; write it as a "
                            "text, in quotes", number=value))
        return True
    return False


def _officers(value: Any, problems: list[Said]) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(_text(v, say("an officer number"), problems) for v in value
                     if v not in (None, "") and not _number_problem(v, problems))
    if _number_problem(value, problems):
        return ()
    text = _text(value, say("officers"), problems)
    for sep in _OFFICER_SEPARATORS:
        text = text.replace(sep, " ")
    return tuple(text.split())


def _row(number: int, values: Mapping[str, Any], *, checklist: Checklist, case_number: str | None,
         zone: str | None, now: datetime) -> tuple[ActionFields | None, list[Said]]:
    problems: list[Said] = []
    case = _text(values.get("case"), say("case number"), problems) or (case_number or "")
    if case_number is not None and case != case_number:
        problems.append(say("the row is of case {case}, not of case {wanted}", case=case, wanted=case_number))
    kind_text = _text(values.get("type"), say("action type"), problems)
    kind = checklist.resolve(kind_text) if kind_text else None
    start = _time(values.get("start"), say("start"), zone, problems)
    end = _time(values.get("end"), say("end"), zone, problems)
    external = _text(values.get("external_id"), say("external id"), problems) or None
    officers = _officers(values.get("officers"), problems)
    place, note = _text(values.get("place"), say("place"), problems), _text(values.get("note"), say("note"), problems)
    if start is None or end is None:
        return None, problems
    assumed = zone if zone is not None and (_naive(values.get("start")) or _naive(values.get("end"))) else None
    fields = ActionFields(case, kind.code if kind else kind_text, start, end, place, officers, note, external, number,
                          assumed)
    problems += action_problems(fields, checklist=checklist, now=now)
    if problems:
        return None, problems
    return replace(fields, start=in_utc(start), end=in_utc(end)), problems


def _naive(value: Any) -> bool:
    """Whether *value* is a time written without its offset (read in the zone the caller named)."""
    try:
        return datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")).tzinfo is None
    except ValueError:
        return False


def _csv_rows(text: str, problems: list[Said]) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        header = next(reader, None)
        if header is None:
            return rows
        keys: list[str | None] = []
        for name in header:
            key = _FIELD_OF.get(name.strip().lstrip("\ufeff").casefold())
            if key is None and name.strip():
                problems.append(say("unknown column {column}; the columns are {known}", column=repr(name.strip()),
                                    known=listed(names[0] for names in COLUMNS.values())))
            elif key is not None and key in keys:
                problems.append(say("column {column} is given twice", column=repr(name.strip())))
            keys.append(key)
        if problems:
            return rows
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # a blank line a spreadsheet leaves at the end
            if len(cells) > len(keys):
                problems.append(say("row {row}: {problem}", row=number, problem=say(
                    "{n} cells but {columns} columns", n=len(cells), columns=len(keys))))
                continue
            unnamed = [(i, c) for i, (k, c) in enumerate(zip(keys, cells, strict=False)) if k is None and c.strip()]
            if unnamed:  # never dropped quietly: what the export put there may be what the row is about
                problems += [say("row {row}: {problem}", row=number, problem=say(
                    "column {column} has no name in the header but holds {value}", column=i + 1,
                    value=repr(c.strip()[:40]))) for i, c in unnamed]
                continue
            rows.append((number, {k: c for k, c in zip(keys, cells, strict=False) if k is not None}))
            if len(rows) > MAX_IMPORT_ROWS:
                break
    except csv.Error as exc:
        problems.append(say("not readable as CSV at line {line}: {reason}", line=reader.line_num, reason=str(exc)))
    return rows


class _Object(dict[str, Any]):
    """A JSON object as read, with the keys it gave more than once (json.loads keeps the last quietly)."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    made = _Object(pairs)
    seen: set[str] = set()
    made.repeated = []
    for key, _value in pairs:
        if key in seen:
            made.repeated.append(key)
        seen.add(key)
    return made


def _json_rows(text: str, problems: list[Said]) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(text, object_pairs_hook=_object)
    except (ValueError, RecursionError) as exc:
        problems.append(say("not readable as JSON: {reason}", reason=str(exc)[:200]))
        return []
    if isinstance(data, _Object) and data.repeated:
        problems.append(say("the JSON gives {keys} twice", keys=listed(repr(k) for k in data.repeated)))
        return []
    if isinstance(data, dict) and set(data) == {"actions"}:
        data = data["actions"]
    if not isinstance(data, list):
        problems.append(say("JSON must be a list of actions, or an object whose actions is one"))
        return []
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, item in enumerate(data[:MAX_IMPORT_ROWS + 1], start=1):
        if not isinstance(item, dict):
            problems.append(say("row {row}: {problem}", row=number, problem=say("not an object")))
            continue
        values: dict[str, Any] = {}
        if isinstance(item, _Object):
            problems += [say("row {row}: {problem}", row=number, problem=say("{key} is given twice", key=repr(name)))
                         for name in item.repeated]
        for name, value in item.items():
            key = _FIELD_OF.get(str(name).strip().casefold())
            if key is None:
                problems.append(say("row {row}: {problem}", row=number, problem=say(
                    "unknown key {key}; the keys are {known}", key=repr(name),
                    known=listed(names[0] for names in COLUMNS.values()))))
            elif key in values:
                problems.append(say("row {row}: {problem}", row=number, problem=say("{key} is given twice",
                                                                                  key=repr(name))))
            else:
                values[key] = value
        rows.append((number, values))
    return rows


def read_actions(data: bytes, *, file_name: str, checklist: Checklist, now: datetime, case_number: str | None = None,
                 zone: str | None = None, encoding: str = "utf-8") -> list[ActionFields]:
    """The actions in *data*, a JSON file if *file_name* ends in .json, else CSV, in *encoding* (a UTF-8 BOM is
    skipped). *case_number*: the case every row is of (a row may leave its case out, or must name this one);
    *zone*: the zone of times written without an offset (otherwise refused). ActionsInvalid naming the file and
    every problem, each bad row by its number: a file too large, unreadable, with unknown columns, no rows, a row
    breaking a rule (`action_problems`) or repeating another's external id. Pure."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ActionsInvalid([say("the file is {size} bytes; at most {max}", size=len(data), max=MAX_IMPORT_BYTES)],
                             source=file_name)
    try:
        text = data.decode("utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ActionsInvalid([say("it is not {encoding} text ({reason}); save it as UTF-8 or name its encoding",
                                  encoding=encoding, reason=str(exc)[:200])], source=file_name) from None
    problems: list[Said] = []
    rows = _json_rows(text, problems) if file_name.lower().endswith(".json") else _csv_rows(text, problems)
    if len(rows) > MAX_IMPORT_ROWS:
        problems.append(say("more than {max} actions in one file; split it", max=MAX_IMPORT_ROWS))
    if not rows and not problems:
        problems.append(say("it holds no action"))
    if problems:
        raise ActionsInvalid(problems, source=file_name)
    found: list[ActionFields] = []
    by_id: dict[tuple[str, str], int] = {}
    by_times: dict[tuple[str, str, datetime, datetime], list[ActionFields]] = {}
    for number, values in rows:
        fields, row_problems = _row(number, values, checklist=checklist, case_number=case_number, zone=zone, now=now)
        problems += [say("row {row}: {problem}", row=number, problem=p) for p in row_problems]
        if fields is None:
            continue
        problem = _repeated(fields, by_id, by_times)
        if problem is not None:
            problems.append(say("row {row}: {problem}", row=number, problem=problem))
            continue
        if fields.external_id is not None:
            by_id[(fields.case_number, fields.external_id)] = number
        by_times.setdefault((fields.case_number, fields.action_type, fields.start, fields.end), []).append(fields)
        found.append(fields)
    if problems:
        raise ActionsInvalid(problems, source=file_name)
    return found


def _repeated(fields: ActionFields, by_id: Mapping[tuple[str, str], int],
              by_times: Mapping[tuple[str, str, datetime, datetime], list[ActionFields]]) -> Said | None:
    """Why *fields* repeat an earlier row of the file: its external id, or its type and times where one of the two
    has no external id (two rows with other ids at the same times are two actions: two parties questioned)."""
    if fields.external_id is not None and (fields.case_number, fields.external_id) in by_id:
        return say("external id {id} is row {other}'s too", id=repr(fields.external_id),
                   other=by_id[(fields.case_number, fields.external_id)])
    for other in by_times.get((fields.case_number, fields.action_type, fields.start, fields.end), []):
        if fields.external_id is None or other.external_id is None:
            return say("the same action as row {other}", other=other.row)
    return None


def officers_text(officers: Iterable[str]) -> str:
    """Officer numbers as one cell shows them."""
    return "、".join(officers)
