"""Read search filters from a URL's query (the page and the API share it). Pure.

Every problem is collected, not just the first, and each names the field, the value and what would be
right, as an English message id the page translates (`Problem.message`) with the values filled in after.
The filters live in the URL, so a search is a link a clerk can bookmark or send.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from catalog.access import Scope
from catalog.models import IntegrityStatus, MediaKind
from catalog.search import MAX_RADIUS_M, RETENTION_STATES, SORTS, Near, SearchFilters
from catalog.sensitivity import CLASSES

__all__ = [
    "FIELDS",
    "FIELD_LABELS",
    "MAX_PAGE",
    "MAX_TEXT",
    "PAGE_SIZES",
    "QUICK_RANGES",
    "TIME_PROBLEM",
    "Problem",
    "SearchInvalid",
    "parse_search",
    "parse_time",
    "query_of",
    "quick_range",
    "saved_query",
]

#: The query parameters a search reads.
FIELDS = ("case", "officer", "device", "station", "unit", "from", "to", "lat", "lon", "radius", "purpose", "kind",
          "important", "tagged", "sensitivity", "integrity", "retention", "sort", "page", "size")
#: Each field's label on the page (a message id), so a problem names the box the clerk typed in.
FIELD_LABELS = {"case": "Case number", "officer": "Officer", "device": "Device", "station": "Station", "unit": "Unit",
                "from": "From", "to": "To", "lat": "Latitude", "lon": "Longitude", "radius": "Radius (m)",
                "purpose": "Purpose", "kind": "Kind", "important": "Important", "tagged": "Tagged",
                "sensitivity": "Sensitivity class", "integrity": "Integrity",
                "retention": "Retention", "sort": "Sort", "page": "Page", "size": "Per page"}
MAX_TEXT = 200
#: What a time that cannot be read is told (a message id): the forms `parse_time` takes.
TIME_PROBLEM = ("{value!r} is not a time; type e.g. 2026-11-20, 2026/11/20 08:30, 2026年11月20日 or "
                "2026-11-20T08:00+08:00")
MAX_PAGE = 10_000
PAGE_SIZES = (24, 48, 96)


@dataclass(frozen=True)
class Problem:
    field: str
    message: str  # an English message id with {value} (and other) placeholders
    value: str
    allowed: str = ""  # the choices, for a value that must be one of them

    def text(self, translate: Callable[[str], str] | None = None) -> str:
        template = translate(self.message) if translate else self.message
        label = translate(FIELD_LABELS[self.field]) if translate else self.field
        return f"{label}: " + template.format(value=self.value, allowed=self.allowed, max_text=MAX_TEXT,
                                                   max_page=MAX_PAGE, max_radius=int(MAX_RADIUS_M))


class SearchInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.text() for p in problems))
        self.problems = problems


#: A date as an agency types it: 2026-11-20, 2026/11/20, 2026.11.20 or 2026年11月20日, a time after it or not.
_TYPED_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*(?:[T ]\s*(.*))?", re.DOTALL)
#: ISO 8601's basic form of a date (20261120), as `datetime.fromisoformat` reads it.
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})(?=$|[T ])")
#: The ranges offered a click away (message ids), each a (from, to) of whole days: `quick_range`.
QUICK_RANGES = ("Today", "Yesterday", "Last 7 days", "Last 30 days", "This month")


def query_of(text: str) -> dict[str, str]:
    """The search a form was posted from (its filters as the URL had them, read as the page reads them). Pure."""
    pairs = dict(parse_qsl(text, keep_blank_values=True))
    return {k: pairs.get(k, "") for k in FIELDS}


def saved_query(params: Mapping[str, str | None]) -> str:
    """The filters of *params* as a saved search keeps them: the search's own fields in their fixed order, trimmed,
    empty ones and the page number left out, anything else (a form token, a stray parameter) dropped; "" when no
    filter is left (an order or a page size alone is no search to keep). Pure."""
    kept = [(k, str(params[k]).strip()) for k in FIELDS if k != "page" and str(params.get(k) or "").strip()]
    return urlencode(kept) if any(k not in ("sort", "size") for k, _v in kept) else ""


def quick_range(name: str, today: date) -> tuple[str, str]:
    """The from and to dates (as typed in the boxes) of QUICK_RANGES' *name* on the agency's calendar, *today*
    being its date there: a date alone as the end takes in that whole day (`parse_time`), so "today" is from its
    00:00 to its end and "last 7 days" is today and the 6 days before. Pure."""
    first = {"Today": today, "Yesterday": today - timedelta(days=1), "Last 7 days": today - timedelta(days=6),
             "Last 30 days": today - timedelta(days=29), "This month": today.replace(day=1)}[name]
    last = today - timedelta(days=1) if name == "Yesterday" else today
    return first.isoformat(), last.isoformat()


def parse_time(value: str, zone: ZoneInfo, *, end: bool = False) -> datetime:
    """A time as an agency types it: ISO 8601 (2026-11-20T08:00, 2026-11-20 08:30, +08:00 or Z), or a date written
    2026/11/20, 2026.11.20 or 2026年11月20日 with a time after it or not; one typed without a zone is on the agency's
    clock (*zone*). As a range's *end*, a date typed without a time takes in all of that day (on the agency's
    calendar, or the zone typed): `from=2026-11-20&to=2026-11-20` is the whole day, not its first instant (it had
    silently found 1 recording of 17); a time typed is that instant. ValueError otherwise. Pure."""
    text = _COMPACT_DATE.sub(r"\1-\2-\3", value.strip(), count=1)
    typed = _TYPED_DATE.fullmatch(text)
    if typed is None:
        raise ValueError(f"{value!r} is not a time")
    year, month, day, clock = typed.groups()
    clock = (clock or "").strip()
    parsed = datetime.fromisoformat(f"{year}-{int(month):02d}-{int(day):02d}" + (f"T{clock}" if clock else "")
                                    .replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    if not end or clock:
        return parsed
    # the last instant of that calendar day (the next day's midnight on the wall clock, less a microsecond)
    return (parsed.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=parsed.tzinfo) - timedelta(microseconds=1)


def _number(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


class _Reading:
    """One query being read: its trimmed values and the problems found so far (in the order they are found)."""

    def __init__(self, params: Mapping[str, str | None]) -> None:
        self.raw = {k: (params.get(k) or "").strip() for k in FIELDS}
        self.problems: list[Problem] = []

    def bad(self, field: str, message: str, allowed: str = "") -> None:
        self.problems.append(Problem(field, message, self.raw[field][:80], allowed))


def _check_texts(form: _Reading) -> None:
    for field in ("case", "officer", "device", "station", "unit", "purpose"):
        if len(form.raw[field]) > MAX_TEXT or "\x00" in form.raw[field]:
            form.bad(field, "{value!r} is longer than {max_text} characters or holds a NUL byte")


def _read_times(form: _Reading, zone: ZoneInfo) -> dict[str, datetime | None]:
    times: dict[str, datetime | None] = {"from": None, "to": None}
    for field in times:
        if form.raw[field]:
            try:
                times[field] = parse_time(form.raw[field], zone, end=field == "to")
            except ValueError:
                form.bad(field, TIME_PROBLEM)
    if times["from"] and times["to"] and times["from"] > times["to"]:
        form.bad("to", "{value!r} is before the start of the range")
    return times


def _read_near(form: _Reading) -> Near | None:
    if not any(form.raw[f] for f in ("lat", "lon", "radius")):
        return None
    values: dict[str, float] = {}
    for field in ("lat", "lon", "radius"):
        try:
            values[field] = _number(form.raw[field])
        except ValueError:
            form.bad(field, "{value!r} is not a number (a place needs latitude, longitude and radius in metres)")
    if len(values) < 3:
        return None
    if not -90 <= values["lat"] <= 90:
        form.bad("lat", "{value} is not a latitude (-90 to 90)")
    elif not -180 <= values["lon"] <= 180:
        form.bad("lon", "{value} is not a longitude (-180 to 180)")
    elif not 0 < values["radius"] <= MAX_RADIUS_M:
        form.bad("radius", "{value} metres is not a radius from 1 to {max_radius}")
    else:
        return Near(values["lat"], values["lon"], values["radius"])
    return None


def _check_choices(form: _Reading) -> None:
    choices = {"kind": [k.value for k in MediaKind], "integrity": [i.value for i in IntegrityStatus],
               "retention": list(RETENTION_STATES), "sort": list(SORTS), "important": ["yes", "no"],
               "tagged": ["yes", "no"],
               "sensitivity": list(CLASSES)}
    for field, allowed in choices.items():
        if form.raw[field] and form.raw[field] not in allowed:
            form.bad(field, "{value!r} is not one of {allowed}", ", ".join(allowed))


def _read_paging(form: _Reading, default_size: int, sizes: tuple[int, ...]) -> tuple[int, int]:
    page, size = 1, default_size
    raw_page, raw_size = form.raw["page"], form.raw["size"]
    if raw_page:
        if not (raw_page.isascii() and raw_page.isdigit()) or not 1 <= int(raw_page[:12]) <= MAX_PAGE:
            form.bad("page", "{value!r} is not a page number from 1 to {max_page}")
        else:
            page = int(raw_page)
    if raw_size:
        if not (raw_size.isascii() and raw_size.isdigit()) or int(raw_size[:12]) not in sizes:
            sized = ", ".join(map(str, sizes)) if len(sizes) <= 10 else f"{min(sizes)}-{max(sizes)}"
            form.bad("size", "{value!r} is not one of {allowed}", sized)
        else:
            size = int(raw_size)
    return page, size


def parse_search(params: Mapping[str, str | None], *, zone: ZoneInfo, scope: Scope, default_sort: str = "-captured",
                 default_size: int = PAGE_SIZES[0], sizes: tuple[int, ...] = PAGE_SIZES) -> tuple[SearchFilters, int]:
    """(filters, page number) from the query; SearchInvalid listing every problem."""
    form = _Reading(params)
    _check_texts(form)
    times = _read_times(form, zone)
    near = _read_near(form)
    _check_choices(form)
    page, size = _read_paging(form, default_size, sizes)
    if form.problems:
        raise SearchInvalid(form.problems)
    raw = form.raw
    filters = SearchFilters(
        case_number=raw["case"] or None, officer=raw["officer"] or None, device=raw["device"] or None,
        station=raw["station"] or None, unit=raw["unit"] or None, start=times["from"], end=times["to"], near=near,
        purpose=raw["purpose"] or None, kind=raw["kind"] or None,
        important={"yes": True, "no": False}.get(raw["important"]), sensitivity=raw["sensitivity"] or None,
        tagged={"yes": True, "no": False}.get(raw["tagged"]),
        integrity=raw["integrity"] or None,
        retention=raw["retention"] or None, sort=raw["sort"] or default_sort, offset=(page - 1) * size, limit=size,
        scope=scope)
    return filters, page
