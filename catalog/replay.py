"""Replay the custody chain into what the catalogue must say: retention state that can be verified.

Every change to a recording's retain-until, legal hold, state, integrity status or capture times is a custody
event that carries the new values: a `row` object in its details (`row_values`) or, for the kinds that always
carried them, their own keys (`retention_changed` → `new`, `legal_hold` → `on`, `integrity_checked` → `now`).
Case links, and a case's type, status and closing date, are custody events too.

`fold_recording` and `fold_cases` turn those events into a `RecordingReplay` and `CaseReplay`s (pure);
catalog.replay_compare holds the catalogue rows against them. The loaders at the end read one recording's
events (through the index on `custody_event.recording_id`), the case events (through the index on `kind`), and
the case link rows to compare them with.

A field the chain never stated (a row from before this module, or one made by a test fixture) is not compared;
the event that made the row is always required. The replay also keeps every (device serial, path) that a
`copied` or `sighted` event names: the warrant of a sighting row found after the last signed manifest.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.case_models import Case, CaseLink, CaseStatus
from catalog.custody import CustodyKind, stored_event_hash
from catalog.models import CustodyEvent, Recording, RecordingState
from catalog.sensitivity import DEFAULT as DEFAULT_CLASS

__all__ = [
    "BASE_FIELDS", "CASE_KINDS", "COUNTS_FROM", "FOLD_KINDS", "LIFECYCLE_KINDS", "ORIGIN_KINDS", "ROW_KEY",
    "TRACKED_FIELDS", "CaseReplay", "LinkReplay", "RecordingReplay", "copy_counts_from", "fold_cases", "fold_recording",
    "load_case_replays", "load_link_rows", "load_replays", "row_values", "stated_time",
]

#: The key of the values a custody event sets on the catalogue row.
ROW_KEY = "row"
#: The key, in a `redacted` event and in the copy's `technical["redaction"]`, of what the copy's routine retention
#: counts from: its original's (catalog.retention_job.base_time), so a copy is never kept longer than its original
#: by the routine rule.
COUNTS_FROM = "counts_from"
#: What verify and disposal compare: the row must say what the chain last set.
TRACKED_FIELDS = ("state", "retain_until", "legal_hold", "integrity_status", "captured_start", "captured_end",
                  "sensitivity")
#: What routine retention counts from (recorded when the row is made, compared too; `archived_at` only feeds
#: the rules, since a failed upload clears it until the archive step sets it again with its own event).
BASE_FIELDS = ("media_kind", "ingested_at", "archived_at", "time_implausible")
_TIMES = frozenset({"retain_until", "captured_start", "captured_end", "ingested_at", "archived_at"})

#: The kinds that make a recording row: ingest (`copied`), a text record attached to a case, and a redacted copy of a
#: recording. A row no such event made was inserted behind the application's back.
ORIGIN_KINDS = (CustodyKind.COPIED.value, CustodyKind.DOCUMENT_ATTACHED.value, CustodyKind.REDACTED.value)
#: The kinds the recording fold reads (`sighted`: where known bytes were found again, a sighting row's warrant).
FOLD_KINDS = tuple(k.value for k in (
    CustodyKind.COPIED, CustodyKind.DOCUMENT_ATTACHED, CustodyKind.REDACTED, CustodyKind.ARCHIVED, CustodyKind.VERIFIED,
    CustodyKind.STAMPED, CustodyKind.RESTAMPED, CustodyKind.RETENTION_CHANGED, CustodyKind.LEGAL_HOLD,
    CustodyKind.INTEGRITY_CHECKED, CustodyKind.DISPOSED, CustodyKind.CASE_LINKED, CustodyKind.CASE_UNLINKED,
    CustodyKind.SIGHTED, CustodyKind.CLASSIFIED))
#: Kinds only written for a recording that has a catalogue row (a chain naming one whose row is gone).
LIFECYCLE_KINDS = tuple(k.value for k in (
    CustodyKind.COPIED, CustodyKind.DOCUMENT_ATTACHED, CustodyKind.REDACTED, CustodyKind.ARCHIVED, CustodyKind.STAMPED,
    CustodyKind.RESTAMPED, CustodyKind.MANIFESTED, CustodyKind.RETENTION_CHANGED, CustodyKind.LEGAL_HOLD,
    CustodyKind.DISPOSED, CustodyKind.CASE_LINKED))
#: The kinds the case fold reads (recording_id is NULL on them).
CASE_KINDS = tuple(k.value for k in (CustodyKind.CASE_OPENED, CustodyKind.CASE_CLOSED, CustodyKind.CASE_REOPENED,
                                     CustodyKind.CLASSIFIED))

#: `verified` events that changed the state (before they carried `row`): the archive step's server checksum and
#: the re-hash before clearing a device. A fixity check's `verified` leaves the state as it is.
_STATE_VERIFIED_HOW = frozenset({"server-side SHA-256 checksum on write, read back and compared",
                                 "re-hashed the stored bytes before clearing the device"})


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def row_values(recording: Recording, *names: str) -> dict[str, Any]:
    """The catalogue row's *names* (default: every tracked and base field) as an event carries them."""
    return {name: _json(getattr(recording, name)) for name in (names or (*TRACKED_FIELDS, *BASE_FIELDS))}


def _parse(name: str, value: Any) -> Any:
    if isinstance(value, enum.Enum):  # what the chain says is plain JSON, whoever replays it
        return value.value
    if name in _TIMES and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return value


@dataclass
class LinkReplay:
    case: str
    purpose: str
    active: bool
    event_id: int


@dataclass
class RecordingReplay:
    """What the chain says of one recording."""

    recording_id: int
    values: dict[str, Any] = field(default_factory=dict)  # field -> value; absent: the chain never said
    set_by: dict[str, tuple[int, str]] = field(default_factory=dict)  # field -> (event id, kind) that set it
    links: list[LinkReplay] = field(default_factory=list)
    case_number: str | None = None
    important: bool = False
    stamped: bool = False  # a stamped event gave case number and important flag
    sha256: str | None = None
    disposed_batch: int | None = None
    events: int = 0
    kinds: set[str] = field(default_factory=set)
    origin: tuple[int, str, str | None] | None = None  # (event id, kind, sha256) of the event that made the row
    redacted_from: int | None = None  # the original a `redacted` origin event names (None: not a redacted copy)
    # What a redacted copy's routine retention counts from, as its `redacted` event stated it (its original's; None:
    # not stated, the copy's own facts count, as for copies made before 2026-12-05)
    counts_from: datetime | None = None
    places: dict[tuple[str, str], int] = field(default_factory=dict)  # (device serial, path) -> copied/sighted event
    # The highest stamp revision a `restamped` or `manifested` event names, and that event's id (0, None: none)
    revision: int = 0
    revision_event: int | None = None
    disposed_details: dict[str, Any] | None = None  # the `disposed` event's details (None: no such event)
    # Integrity verdicts the chain records: revision -> (event id, details) of the last `integrity_checked` event
    # naming it, and the verdict the event that made the row recorded (the ingest check's, revision 1)
    integrity: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    first_integrity: str | None = None

    def linked_now(self) -> list[LinkReplay]:
        return [link for link in self.links if link.active]

    def ever_linked(self) -> set[str]:
        return {link.case for link in self.links}


@dataclass
class CaseReplay:
    number: str
    case_type: str | None
    status: str
    opened_on: date | None
    closed_on: date | None
    event_id: int
    # What the opening and the last close said of who and what (None: the event did not say): title and unit
    # never change in the application, so a row that differs was edited (a review's forged title reached the court
    # package).
    title: str | None = None
    unit: str | None = None
    created_by: str | None = None
    closed_by: str | None = None
    sensitivity: str = DEFAULT_CLASS  # never classified: the default (see _finish)


def _set(replay: RecordingReplay, event: CustodyEvent, name: str, value: Any) -> None:
    assert event.id is not None
    parsed = _parse(name, value)
    current = replay.values.get(name)
    if name == "retain_until" and isinstance(parsed, datetime) and isinstance(current, datetime) \
            and parsed < current:
        # Retention only grows (catalog.retention_job never writes a shorter date): an appended event that cuts it
        # was not written by the application, and the row made to agree with it is named by row_findings (a
        # review cut a 30-year case file to 6 months with two appended events and verify passed).
        return
    replay.values[name] = parsed
    replay.set_by[name] = (event.id, event.kind)


def _shift_end(replay: RecordingReplay, event: CustodyEvent, new_start: datetime | None) -> None:
    """A re-stamp that moved the capture start moves the end with it (catalog.stamps._apply), for events
    that did not carry the new end."""
    start, end = replay.values.get("captured_start"), replay.values.get("captured_end")
    if new_start is not None and isinstance(start, datetime) and new_start != start and "captured_end" in replay.values:
        _set(replay, event, "captured_end", (new_start + ((end or start) - start)).isoformat())


def _note_origin(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any]) -> None:
    """What any event tells about where the recording came from: its bytes' hash, its first event, device places."""
    kind = event.kind
    replay.events += 1
    replay.kinds.add(kind)
    number = details.get("revision")
    if kind in (CustodyKind.RESTAMPED, CustodyKind.MANIFESTED) and type(number) is int and number > replay.revision:
        replay.revision, replay.revision_event = number, event.id
    if isinstance(details.get("sha256"), str) and kind in (*ORIGIN_KINDS, CustodyKind.DISPOSED):
        replay.sha256 = details["sha256"]
    if kind in ORIGIN_KINDS and replay.origin is None:
        assert event.id is not None
        sha = details.get("sha256")
        replay.origin = (event.id, kind, sha if isinstance(sha, str) else None)
        original = details.get("original_id")
        replay.redacted_from = original if kind == CustodyKind.REDACTED and type(original) is int else None
        if kind == CustodyKind.REDACTED:
            replay.counts_from = stated_time(details.get(COUNTS_FROM))
    if kind in (CustodyKind.COPIED, CustodyKind.SIGHTED) and isinstance(details.get("device_serial"), str) \
            and isinstance(details.get("device_path"), str):
        assert event.id is not None
        replay.places.setdefault((details["device_serial"], details["device_path"]), event.id)


def _restamped(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any], row: Any) -> None:
    changes = details.get("changes") or {}
    if "case_number" in changes:
        replay.case_number = (changes["case_number"] or {}).get("new")
    if "important" in changes:
        replay.important = bool((changes["important"] or {}).get("new"))
    if "captured_start" in changes and not isinstance(row, dict):
        new = _parse("captured_start", (changes["captured_start"] or {}).get("new"))
        _shift_end(replay, event, new)
        _set(replay, event, "captured_start", _json(new))


def _stamped(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any], row: Any) -> None:
    replay.stamped = True
    replay.case_number, replay.important = details.get("case_number"), bool(details.get("important"))
    if "captured_start" in details and "captured_start" not in replay.values:
        _set(replay, event, "captured_start", details["captured_start"])


def _retention_changed(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any], row: Any) -> None:
    if "new" in details:
        _set(replay, event, "retain_until", details["new"])


def _legal_hold(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any], row: Any) -> None:
    if "on" in details:
        _set(replay, event, "legal_hold", bool(details["on"]))


def _integrity_checked(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any], row: Any) -> None:
    if "now" in details:
        _set(replay, event, "integrity_status", details["now"])
    if type(details.get("revision")) is int and event.id is not None:
        replay.integrity[details["revision"]] = (event.id, details)


def _disposed(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any], row: Any) -> None:
    _set(replay, event, "state", RecordingState.DISPOSED)
    replay.disposed_batch = details.get("batch") if isinstance(details.get("batch"), int) else None
    replay.disposed_details = details


def _case_linked(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any], row: Any) -> None:
    if isinstance(details.get("case"), str):
        assert event.id is not None
        replay.links.append(LinkReplay(details["case"], str(details.get("purpose", "")), True, event.id))


def _case_unlinked(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any], row: Any) -> None:
    if isinstance(details.get("case"), str):
        for link in replay.links:
            if link.case == details["case"] and link.active:
                link.active = False
                break


#: What each kind of event says about the row, whether or not it carries the row's values (`row`).
_STATE_EVENTS: dict[str, Callable[[RecordingReplay, CustodyEvent, dict[str, Any], Any], None]] = {
    CustodyKind.RESTAMPED: _restamped, CustodyKind.STAMPED: _stamped,
    CustodyKind.RETENTION_CHANGED: _retention_changed, CustodyKind.LEGAL_HOLD: _legal_hold,
    CustodyKind.INTEGRITY_CHECKED: _integrity_checked, CustodyKind.DISPOSED: _disposed,
    CustodyKind.CASE_LINKED: _case_linked, CustodyKind.CASE_UNLINKED: _case_unlinked,
}

#: Events written before they carried `row`: what they said for certain (field -> key in the event's details).
_LEGACY_COPIED_KEYS = (("retain_until", "retain_until"), ("legal_hold", "legal_hold"),
                       ("integrity_status", "integrity"), ("time_implausible", "time_implausible"))


def _apply_legacy(replay: RecordingReplay, event: CustodyEvent, details: dict[str, Any]) -> None:
    kind = event.kind
    if kind == CustodyKind.COPIED:
        _set(replay, event, "state", RecordingState.STAGED)
        for name, key in _LEGACY_COPIED_KEYS:
            if key in details:
                _set(replay, event, name, details[key])
    elif kind == CustodyKind.DOCUMENT_ATTACHED:
        _set(replay, event, "state", RecordingState.STAGED)
        if "integrity" in details:
            _set(replay, event, "integrity_status", details["integrity"])
    elif kind == CustodyKind.ARCHIVED:
        _set(replay, event, "state", RecordingState.ARCHIVED)
        if "legal_hold" in details:
            _set(replay, event, "legal_hold", bool(details["legal_hold"]))
    elif kind == CustodyKind.VERIFIED and details.get("how") in _STATE_VERIFIED_HOW:
        _set(replay, event, "state", RecordingState.VERIFIED)


def _apply(replay: RecordingReplay, event: CustodyEvent) -> None:
    details = event.details or {}
    _note_origin(replay, event, details)
    row = details.get(ROW_KEY)
    handler = _STATE_EVENTS.get(event.kind)
    if handler is not None:
        handler(replay, event, details, row)
    elif not isinstance(row, dict):
        _apply_legacy(replay, event, details)
    if isinstance(row, dict):
        for name, value in row.items():
            if name in TRACKED_FIELDS or name in BASE_FIELDS:
                _set(replay, event, name, value)
    if event.kind in ORIGIN_KINDS and replay.first_integrity is None:
        verdict = replay.values.get("integrity_status")
        replay.first_integrity = verdict if isinstance(verdict, str) else None


def fold_recording(recording_id: int, events: Iterable[CustodyEvent]) -> RecordingReplay:
    """Replay one recording's events (in id order) into what its catalogue row must say. Pure."""
    replay = RecordingReplay(recording_id)
    for event in events:
        _apply(replay, event)
    return _finish(replay)


def _finish(replay: RecordingReplay) -> RecordingReplay:
    """What the chain says without an event: a recording never classified is of the default class (every row from
    before classes got it by the migration), so a row edited to another class without an event is found."""
    if "sensitivity" not in replay.values:
        replay.values["sensitivity"] = DEFAULT_CLASS
        origin = replay.origin or (0, "no event")
        replay.set_by["sensitivity"] = (origin[0], f"{origin[1]}, never classified since")
    return replay


def copy_counts_from(technical: dict[str, Any] | None) -> datetime | None:
    """What a redacted copy's routine retention counts from, as its row states it (`technical["redaction"]`; None:
    not a copy, or one made before copies counted from their original's). Pure."""
    redaction = (technical or {}).get("redaction")
    return stated_time(redaction.get(COUNTS_FROM)) if isinstance(redaction, dict) else None


def stated_time(value: Any) -> datetime | None:
    """An ISO time the chain or a row states (UTC when it names no zone), or None when it states none or not one.
    Pure."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def fold_cases(events: Iterable[CustodyEvent]) -> dict[str, CaseReplay]:
    """Replay case events (opened, closed, reopened; in id order) into each case's type, status and dates. Pure."""
    cases: dict[str, CaseReplay] = {}
    for event in events:
        details = event.details or {}
        number = details.get("case")
        if not isinstance(number, str) or (event.kind == CustodyKind.CLASSIFIED and event.recording_id is not None):
            continue  # a recording's class raised with its case's names the case but is the recording's
        assert event.id is not None
        if event.kind == CustodyKind.CASE_OPENED:
            cases[number] = CaseReplay(number, details.get("case_type"), CaseStatus.OPEN.value,
                                       _day(details.get("opened_on")), None, event.id,
                                       title=_text(details.get("title")), unit=_text(details.get("unit")),
                                       created_by=event.actor)
            continue
        case = cases.get(number)
        if case is None:  # closed or reopened without being opened in this chain: say so when compared
            case = cases[number] = CaseReplay(number, None, CaseStatus.OPEN.value, None, None, 0)
        if event.kind == CustodyKind.CASE_CLOSED:
            case.status, case.closed_on = CaseStatus.CLOSED.value, _day(details.get("closed_on"))
            case.closed_by = event.actor
            if details.get("case_type") and case.case_type is None:
                # Only where the chain never said: no operation changes a case's type, so a close that names
                # another type than the opening did copied an edited row (a review made a permanent case file
                # a 10-year one with one UPDATE and an ordinary close).
                case.case_type = details["case_type"]
        elif event.kind == CustodyKind.CASE_REOPENED:
            case.status, case.closed_on, case.closed_by = CaseStatus.OPEN.value, None, None
        elif event.kind == CustodyKind.CLASSIFIED and isinstance(details.get("to"), str):
            case.sensitivity = details["to"]
    return cases


# --- loaders: the queries the fold needs (verify and disposal share them) ---------------------------------------

def load_replays(session: Session, recording_ids: list[int], *,
                 check_hashes: bool = False) -> tuple[dict[int, RecordingReplay], list[str]]:
    """The replay of each recording (one query over the recording_id index for the lot); with *check_hashes*
    each event read is also re-hashed (an edited event is named in the second list)."""
    replays = {rid: RecordingReplay(rid) for rid in recording_ids}
    broken: list[str] = []
    if not recording_ids:
        return replays, broken
    query = (select(CustodyEvent).where(col(CustodyEvent.recording_id).in_(recording_ids),
                                        col(CustodyEvent.kind).in_(FOLD_KINDS))
             .order_by(col(CustodyEvent.recording_id), col(CustodyEvent.id)))
    for event in session.exec(query):
        assert event.recording_id is not None and event.at is not None
        if check_hashes:
            expected = stored_event_hash(event)
            if expected != event.hash:
                broken.append(f"custody event {event.id} ({event.kind}) of recording {event.recording_id} does not "
                              f"match its hash (stored {event.hash[:16]}…, computed {expected[:16]}…): edited")
        _apply(replays[event.recording_id], event)
    for replay in replays.values():
        _finish(replay)
    return replays, broken


def load_case_replays(session: Session) -> dict[str, CaseReplay]:
    """Every case as the chain's case events say (one query over the kind index)."""
    query = select(CustodyEvent).where(col(CustodyEvent.kind).in_(CASE_KINDS)).order_by(col(CustodyEvent.id))
    return fold_cases(session.exec(query))


def load_link_rows(session: Session, recording_ids: list[int]) -> dict[int, list[tuple[str, CaseLink]]]:
    """Every case link row (active or ended) of the recordings, with its case's number."""
    found: dict[int, list[tuple[str, CaseLink]]] = {rid: [] for rid in recording_ids}
    if recording_ids:
        rows = session.exec(select(Case.number, CaseLink).where(col(CaseLink.recording_id).in_(recording_ids),
                                                                CaseLink.case_id == Case.id)
                            .order_by(col(CaseLink.id)))
        for number, link in rows:
            found[link.recording_id].append((number, link))
    return found
