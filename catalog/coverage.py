"""Recording coverage (全过程记录): what an officer's recorders recorded on each day of the agency's calendar, where
the gaps are, where two recordings overlap, and which recordings carry a time that cannot be trusted.

`day_coverage` is the pure decision on one day's recordings; `officer_coverage` gathers them from the catalogue
for an officer over a run of days. A day is the agency's (EVIDENCE_STATION_TZ): 00:00 +08:00 to the next 00:00,
so a recording from 23:50 to 00:10 is ten minutes on each day. A recording with no end is counted as an instant,
one whose time is implausible (a wrong device clock) is listed apart and not counted.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from catalog.models import Recording

__all__ = ["DayCoverage", "Span", "day_bounds", "day_coverage", "officer_coverage"]


@dataclass(frozen=True)
class Span:
    """A recording's time: [start, end), its id and the recorder that made it."""

    start: datetime
    end: datetime
    recording_id: int
    device: str | None = None
    implausible: bool = False


@dataclass(frozen=True)
class DayCoverage:
    day: date
    recorded: tuple[tuple[datetime, datetime], ...]  # merged periods with at least one recording, in order
    gaps: tuple[tuple[datetime, datetime], ...]  # between the first recording's start and the last one's end
    overlaps: tuple[tuple[datetime, datetime, int, int], ...]  # (from, to, one recording, the other)
    implausible: tuple[int, ...]  # recordings of the day whose time is not to be trusted, not counted

    @property
    def recorded_s(self) -> float:
        return sum((end - start).total_seconds() for start, end in self.recorded)


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The instants *day* begins and ends on the agency's clock (the next day's 00:00). Pure."""
    tz = ZoneInfo(zone)
    return datetime.combine(day, time(), tz), datetime.combine(day + timedelta(days=1), time(), tz)


def day_coverage(spans: Iterable[Span], day: date, zone: str) -> DayCoverage:
    """*spans* on *day* (each clipped to it): the periods recorded, the gaps between them and the overlaps. Pure."""
    spans = list(spans)
    begin, end = day_bounds(day, zone)
    clipped = sorted(((max(s.start, begin), min(s.end, end), s) for s in spans
                      if not s.implausible and s.start < end and (s.end > begin or s.start == s.end >= begin)),
                     key=lambda c: (c[0], c[1], c[2].recording_id))
    recorded: list[tuple[datetime, datetime]] = []
    overlaps: list[tuple[datetime, datetime, int, int]] = []
    open_spans: list[tuple[datetime, datetime, Span]] = []
    for start, stop, span in clipped:
        open_spans = [o for o in open_spans if o[1] > start]
        overlaps += [(start, min(stop, o[1]), o[2].recording_id, span.recording_id) for o in open_spans
                     if min(stop, o[1]) > start]
        open_spans.append((start, stop, span))
        if recorded and start <= recorded[-1][1]:
            recorded[-1] = (recorded[-1][0], max(recorded[-1][1], stop))
        else:
            recorded.append((start, stop))
    gaps = tuple((a[1], b[0]) for a, b in itertools.pairwise(recorded) if b[0] > a[1])
    implausible = tuple(sorted(s.recording_id for s in spans if s.implausible and s.start < end and s.end >= begin))
    return DayCoverage(day, tuple(recorded), gaps, tuple(overlaps), implausible)


def officer_coverage(session: Session, officer_number: str, first: date, last: date,
                     zone: str) -> list[DayCoverage]:
    """Each day from *first* to *last* of *officer_number*'s recordings (video and audio: what records an action),
    on the agency's calendar."""
    begin, _ = day_bounds(first, zone)
    _, end = day_bounds(last, zone)
    rows = session.exec(select(Recording).where(
        Recording.officer_number == officer_number, col(Recording.media_kind).in_(("video", "audio")),
        col(Recording.captured_start).is_not(None), col(Recording.captured_start) < end,
        col(Recording.belongs_to_id).is_(None), col(Recording.redacted_from_id).is_(None),
        (col(Recording.captured_end) >= begin) | col(Recording.captured_end).is_(None)))
    spans = [_span(r) for r in rows]
    days: Sequence[date] = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [day_coverage(spans, day, zone) for day in days]


def _span(recording: Recording) -> Span:
    assert recording.captured_start is not None and recording.id is not None
    end = recording.captured_end or recording.captured_start
    return Span(recording.captured_start, max(end, recording.captured_start), recording.id,
                recording.device_serial, recording.time_implausible)
