"""Reporting periods on the agency's calendar: a day, an ISO week (Monday first), a month, a quarter, a year, or
days chosen by hand; each a run of whole calendar days in the agency's zone, and the UTC instants that bound it.

Pure: the statistics page, its report (catalog.enforcement_report) and the API all turn what was asked into the
same Period here.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from catalog.said import listed, say

__all__ = ["MAX_CUSTOM_DAYS", "PERIOD_KINDS", "Period", "period_of"]

PERIOD_KINDS = ("day", "week", "month", "quarter", "year", "custom")
#: A period chosen by hand spans at most this many days (ten years).
MAX_CUSTOM_DAYS = 3660


@dataclass(frozen=True)
class Period:
    kind: str  # one of PERIOD_KINDS
    first: date  # the first calendar day, in the agency's zone
    last: date  # the last one (inclusive)

    def bounds(self, zone: str) -> tuple[datetime, datetime]:
        """[start, end) in UTC: from the first day's midnight to the midnight after the last, on *zone*'s clock
        (a day of a summer-time change is 23 or 25 hours long, as the agency's calendar has it)."""
        tz = ZoneInfo(zone)
        start = datetime.combine(self.first, time(), tzinfo=tz)
        end = datetime.combine(self.last + timedelta(days=1), time(), tzinfo=tz)
        return start.astimezone(UTC), end.astimezone(UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def label(self, lang: str) -> str:
        """The period as a report's title names it, in Chinese (`zh`) or English."""
        zh = lang.startswith("zh")
        f, la = self.first, self.last
        if self.kind == "day":
            return f"{f.year}年{f.month}月{f.day}日" if zh else f.isoformat()
        if self.kind == "week":
            year, week, _ = f.isocalendar()
            return (f"{year}年第{week}周（{f.isoformat()} 至 {la.isoformat()}）" if zh else
                    f"week {week} of {year} ({f.isoformat()} to {la.isoformat()})")
        if self.kind == "month":
            return f"{f.year}年{f.month}月" if zh else f"{calendar.month_name[f.month]} {f.year}"
        if self.kind == "quarter":
            quarter = (f.month - 1) // 3 + 1
            return f"{f.year}年第{quarter}季度" if zh else f"{f.year} Q{quarter}"
        if self.kind == "year":
            return f"{f.year}年度" if zh else str(f.year)
        return f"{f.isoformat()} 至 {la.isoformat()}" if zh else f"{f.isoformat()} to {la.isoformat()}"

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "first": self.first.isoformat(), "last": self.last.isoformat()}


def period_of(kind: str, on: date, *, first: date | None = None, last: date | None = None) -> Period:
    """The period of *kind* holding the day *on*; for `custom`, *first* to *last*. ValueError naming what is
    wrong (an unknown kind, a custom period without its days, backwards, or longer than MAX_CUSTOM_DAYS)."""
    if kind == "day":
        return Period(kind, on, on)
    if kind == "week":
        monday = on - timedelta(days=on.weekday())
        return Period(kind, monday, monday + timedelta(days=6))
    if kind == "month":
        return Period(kind, on.replace(day=1), on.replace(day=calendar.monthrange(on.year, on.month)[1]))
    if kind == "quarter":
        start_month = (on.month - 1) // 3 * 3 + 1
        end_month = start_month + 2
        return Period(kind, date(on.year, start_month, 1),
                      date(on.year, end_month, calendar.monthrange(on.year, end_month)[1]))
    if kind == "year":
        return Period(kind, date(on.year, 1, 1), date(on.year, 12, 31))
    if kind == "custom":
        if first is None or last is None:
            raise ValueError(say("a period chosen by hand needs its first and its last day"))
        if last < first:
            raise ValueError(say("the period ends ({last}) before it begins ({first})", last=last.isoformat(),
                                 first=first.isoformat()))
        if (last - first).days + 1 > MAX_CUSTOM_DAYS:
            raise ValueError(say("a period chosen by hand spans at most {max} days, not {days}", max=MAX_CUSTOM_DAYS,
                                 days=(last - first).days + 1))
        return Period(kind, first, last)
    raise ValueError(say("a period is one of {kinds}, not {kind}", kinds=listed(PERIOD_KINDS), kind=repr(kind[:20])))
