"""Evidence stamps: validation (pure) and revisions (never overwrites).

The five stamp fields are case number (案件编号), capture time (采集时间),
place (采集地点), collector (采集人) and purpose (证明对象), plus the
important flag. An edit writes a new StampRevision with who, when, why and
old → new values, and updates the Recording's current stamp.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, NewEvent, append_event, append_events
from catalog.errors import StampInvalid
from catalog.models import Recording, StampRevision
from catalog.said import Said, listed, say
from catalog.types import utcnow

__all__ = ["DEFAULT_CASE_PATTERN", "Stamp", "current_stamp", "record_stamp", "record_stamps", "restamp",
           "stamp_history", "validate_stamp"]

#: Case numbers such as 京朝城管罚字〔2026〕第00123号 or AB-2026-00042.
DEFAULT_CASE_PATTERN = r"[0-9A-Za-z\u4e00-\u9fff〔〕\[\]()（）_/\-]{4,64}"

MAX_PURPOSE = 500  # characters of a purpose (a stamp's, a case link's)


@dataclass(frozen=True)
class Stamp:
    case_number: str | None
    captured_start: datetime | None
    lat: float | None
    lon: float | None
    place_source: str | None
    collector: str | None
    purpose: str | None
    important: bool


def validate_stamp(stamp: Stamp, *, case_pattern: str) -> list[Said]:
    """Every rule the stamp breaks (empty: valid)."""
    problems: list[Said] = []
    if stamp.case_number is not None and not re.fullmatch(case_pattern, stamp.case_number):
        problems.append(say("case number {number} does not match the pattern {pattern}", number=repr(stamp.case_number),
                            pattern=repr(case_pattern)))
    if stamp.captured_start is not None and stamp.captured_start.tzinfo is None:
        problems.append(say("capture time {time} has no time zone", time=stamp.captured_start.isoformat()))
    if (stamp.lat is None) != (stamp.lon is None):
        problems.append(say("place needs both latitude and longitude, got lat={lat} lon={lon}", lat=stamp.lat,
                            lon=stamp.lon))
    if stamp.lat is not None and not -90 <= stamp.lat <= 90:
        problems.append(say("latitude {lat} is outside -90..90", lat=stamp.lat))
    if stamp.lon is not None and not -180 <= stamp.lon <= 180:
        problems.append(say("longitude {lon} is outside -180..180", lon=stamp.lon))
    if stamp.purpose is not None:
        if not stamp.purpose.strip():
            problems.append(say("purpose is blank"))
        elif len(stamp.purpose) > MAX_PURPOSE:
            problems.append(say("purpose is {n} characters; at most {max}", n=len(stamp.purpose), max=MAX_PURPOSE))
    if stamp.collector is not None and not stamp.collector.strip():
        problems.append(say("collector is blank"))
    return problems


def current_stamp(recording: Recording) -> Stamp:
    return Stamp(case_number=recording.case_number, captured_start=recording.captured_start,
                 lat=recording.lat, lon=recording.lon, place_source=recording.place_source,
                 collector=recording.officer_number, purpose=recording.purpose, important=recording.important)


def _apply(recording: Recording, stamp: Stamp) -> None:
    if stamp.captured_start != recording.captured_start and stamp.captured_start and recording.captured_start:
        length = (recording.captured_end or recording.captured_start) - recording.captured_start
        recording.captured_end = stamp.captured_start + length
    recording.case_number = stamp.case_number
    recording.captured_start = stamp.captured_start
    recording.lat, recording.lon, recording.place_source = stamp.lat, stamp.lon, stamp.place_source
    recording.officer_number = stamp.collector
    recording.purpose = stamp.purpose
    recording.important = stamp.important


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def record_stamp(session: Session, recording: Recording, *, by: str, reason: str,
                 at: datetime | None = None) -> StampRevision:
    """Write the recording's current stamp as its first revision (`record_stamps` of one)."""
    return record_stamps(session, [recording], by=by, reason=reason, at=at)[0]


def record_stamps(session: Session, recordings: Sequence[Recording], *, by: str, reason: str,
                  at: datetime | None = None) -> list[StampRevision]:
    """Write each recording's current stamp as its first revision, with its `stamped` custody event (the events
    appended together, in the order given)."""
    revisions: list[StampRevision] = []
    events: list[NewEvent] = []
    for recording in recordings:
        assert recording.id is not None
        stamp = current_stamp(recording)
        revisions.append(StampRevision(recording_id=recording.id, revision=1, changed_by=by,
                                       changed_at=at or utcnow(), reason=reason, changes={}, **vars(stamp)))
        events.append(NewEvent(CustodyKind.STAMPED, by, recording_id=recording.id,
                               details={f.name: _json(getattr(stamp, f.name)) for f in fields(stamp)}))
    session.add_all(revisions)
    append_events(session, events)
    return revisions


def restamp(session: Session, recording: Recording, *, by: str, reason: str, case_pattern: str,
            **changes: Any) -> StampRevision:
    """Change stamp fields as a new revision; StampInvalid if the result breaks a rule."""
    if not reason.strip():
        raise StampInvalid([say("a stamp change needs a reason")])
    if not by.strip():
        raise StampInvalid([say("a stamp change needs the name of who makes it")])
    unknown = set(changes) - {f.name for f in fields(Stamp)}
    if unknown:
        raise StampInvalid([say("unknown stamp field(s): {fields}", fields=listed(sorted(unknown)))])
    old = current_stamp(recording)
    new = replace(old, **changes)
    problems = validate_stamp(new, case_pattern=case_pattern)
    if problems:
        raise StampInvalid(problems)
    diff = {name: {"old": _json(getattr(old, name)), "new": _json(getattr(new, name))}
            for name in changes if getattr(old, name) != getattr(new, name)}
    if not diff:
        raise StampInvalid([say("the change leaves the stamp as it is")])
    assert recording.id is not None
    number = recording.stamp_revision + 1
    revision = StampRevision(recording_id=recording.id, revision=number, changed_by=by,
                             changed_at=utcnow(), reason=reason, changes=diff, **vars(new))
    _apply(recording, new)
    recording.stamp_revision = number
    session.add(revision)
    session.add(recording)
    moved = {"row": {"captured_start": _json(recording.captured_start),
                     "captured_end": _json(recording.captured_end)}} if "captured_start" in diff else {}
    append_event(session, CustodyKind.RESTAMPED, actor=by, recording_id=recording.id,
                 details={"revision": number, "reason": reason, "changes": diff, **moved})
    return revision


def stamp_history(session: Session, recording_id: int) -> list[StampRevision]:
    query = (select(StampRevision).where(StampRevision.recording_id == recording_id)
             .order_by(col(StampRevision.revision)))
    return list(session.exec(query))
