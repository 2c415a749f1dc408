"""The coverage timeline in the browser (`/coverage`, `/coverage.csv`, `/api/coverage`): per officer and day of the
agency's calendar, what their recorders recorded (a bar drawn on the server as SVG, a lane per recorder), the
gaps, the overlaps and the files whose time cannot be trusted, each leading to the recordings (catalog.coverage).

Who sees whom is the caller's scope, as on /devices: clerks, auditors, administrators and agency-wide supervisors
any officer or unit; a supervisor with units their units' officers (asking for another unit or officer is refused
and recorded as an `access_refused` event); an officer only themself. Showing coverage reads no evidence bytes: no
stated reason is asked; the CSV download is recorded (`viewed`, as the statistics report is)."""
from __future__ import annotations

import gc
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from markupsafe import Markup, escape
from sqlmodel import Session, col, select

from catalog.access import Scope, record_refusal, unit_members, unit_numbers
from catalog.coverage import (
    MAX_DAYS,
    DayCoverage,
    OfficerCoverage,
    UnitCoverage,
    day_bounds,
    officers_coverage,
    unit_coverage,
)
from catalog.csvsafe import csv_chunks
from catalog.custody import CustodyKind, append_event
from catalog.models import Officer
from catalog.said import Said, say
from evidence.web.deps import DB, Caller, WebConfig, api_caller, language, render, signed_in
from evidence.web.i18n import gettext_for

__all__ = ["CSV_HEADER", "Asked", "coverage_json", "coverage_rows", "day_bar", "router"]

router = APIRouter()
CoverageCaller = Annotated[Caller, api_caller("coverage")]
#: The longest officer number or unit a query may name (Officer.number, Officer.unit_name).
_MAX_TEXT = 200
#: The export's columns (docs/coverage.md).
CSV_HEADER = ("officer", "officer_name", "unit", "day", "kind", "start", "end", "seconds", "device", "recordings",
              "docked")


@dataclass(frozen=True)
class Asked:
    """What a coverage query asks for: one officer, or a unit (officer wins when both are given), and the days."""

    officer: str
    unit: str
    first: date
    last: date

    def query(self) -> str:
        return urlencode([(k, v) for k, v in (("officer", self.officer), ("unit", self.unit),
                                              ("from", self.first.isoformat()), ("to", self.last.isoformat())) if v])


def _day(value: str, what: Said, default: date) -> date:
    if not value.strip():
        return default
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise HTTPException(400, say("{what}: {value} is not a date (YYYY-MM-DD)", what=what,
                                     value=repr(value[:40]))) from None


def _asked(request: Request, who: Caller, officer: str, unit: str, first: str, last: str) -> Asked:
    """The query read, each problem a 400 said in the reader's language; nothing asked: the caller's own unit (the
    first of a supervisor's units) or their own number, over the last 7 days of the agency's calendar."""
    config: WebConfig = request.app.state.config
    officer, unit = officer.strip(), unit.strip()
    for field, value in ((say("Officer"), officer), (say("Unit"), unit)):  # the field named in the reader's words
        if len(value) > _MAX_TEXT or "\x00" in value:
            raise HTTPException(400, say("{field}: at most {max} characters", field=field, max=_MAX_TEXT))
    try:
        to = _day(last, say("To"), config.today())
        since = _day(first, say("From"), to - timedelta(days=6))
        day_bounds(since, config.zone), day_bounds(to, config.zone)
    except OverflowError:  # a day at the calendar's edge (0001-01-01, 9999-12-31) has no instants to bound it
        raise HTTPException(400, say("no period can be counted around {day}: it runs past the calendar's first or "
                                     "last day", day=repr(first or last))) from None
    if to < since:
        raise HTTPException(400, say("{value!r} is before the start of the range", value=to.isoformat()))
    if (to - since).days + 1 > MAX_DAYS:
        raise HTTPException(400, say("at most {max} days at once: {first} to {last} is {days} days", max=MAX_DAYS,
                                     first=since.isoformat(), last=to.isoformat(), days=(to - since).days + 1))
    scope = who.scope
    if not officer and not unit and not scope.everything:
        if scope.units:
            unit = sorted(scope.units)[0]
        elif scope.officers:
            officer = sorted(scope.officers)[0]
    return Asked(officer, "" if officer else unit, since, to)


def _refuse(session: Session, who: Caller, what: Said, details: dict[str, str]) -> HTTPException:
    """A coverage asked outside the caller's scope: recorded (`access_refused`) and refused with a 403."""
    scope = who.scope
    record_refusal(session, who.user.name, action="coverage", why="scope",
                   details={**details, "scope": str(scope.describe()), "via": "web"})
    return HTTPException(403, say("{what} is outside what {person} may see ({scope})", what=what,
                                  person=who.user.name, scope=scope.describe()))


def _may_see_officer(session: Session, scope: Scope, number: str) -> bool:
    if scope.everything or number in scope.officers:
        return True
    return bool(scope.units) and session.exec(
        unit_members(scope.units).where(col(Officer.number) == number)).first() is not None


def _gather(request: Request, session: Session, who: Caller, asked: Asked) -> UnitCoverage | None:
    """The coverage *asked* for, within the caller's scope (None: nothing asked). 403 (recorded) for an officer or
    a unit wholly outside it; 404 for a unit no officer belongs to."""
    config: WebConfig = request.app.state.config
    if asked.officer:
        if not _may_see_officer(session, who.scope, asked.officer):
            raise _refuse(session, who, say("officer {number}", number=asked.officer), {"officer": asked.officer})
        officer = session.exec(select(Officer).where(Officer.number == asked.officer)).first()
        found = officers_coverage(session, [officer or Officer(number=asked.officer)], asked.first, asked.last,
                                  config.zone)
        return UnitCoverage("", tuple(found))
    if not asked.unit:
        return None
    found_unit = unit_coverage(session, asked.unit, asked.first, asked.last, config.zone, scope=who.scope)
    if not found_unit.known:
        raise HTTPException(404, say("no officer belongs to unit {unit} (a name two units carry names neither: give "
                                     "its number)", unit=asked.unit))
    if not found_unit.officers:
        raise _refuse(session, who, say("unit {unit}", unit=asked.unit), {"unit": asked.unit})
    return found_unit


#: Each minute of a day on the clock, "00:00" to "23:59".
_MINUTES = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
#: A day's width on its bar: ten units a minute (whole numbers are written faster than fractions).
_BAR_UNITS = 14400


class _DayClock:
    """One day of the agency's calendar as its wall clock reads it: a time (seconds since 1970) as `08:40:00`, the
    day's end `24:00:00`, and as its place on the day's bar (_BAR_UNITS to a day whatever its length)."""

    def __init__(self, day: date, zone: str) -> None:
        begin, end = day_bounds(day, zone)
        self.day = day.isoformat()
        self.begin, self.length_s = begin.timestamp(), (end - begin).total_seconds()
        self.zone = ZoneInfo(zone)
        self.per_second = _BAR_UNITS / self.length_s
        self.even = begin.utcoffset() == end.utcoffset()  # no clock change that day: arithmetic is the clock

    def clock(self, epoch: float) -> str:
        second = epoch - self.begin
        if second >= self.length_s:
            return "24:00:00"
        if not self.even:
            return datetime.fromtimestamp(epoch, self.zone).strftime("%H:%M:%S")
        s = int(second)
        return f"{_MINUTES[s // 60]}:{s % 60:02d}"


def _hours(seconds: float) -> str:
    """A duration as h:mm:ss (`7:05:00`)."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def day_bar(day: DayCoverage, zone: str) -> Markup:
    """The day as an SVG bar from 00:00 to 24:00 on the agency's clock (_bar). Pure."""
    return Markup(_bar(day, _DayClock(day.day, zone)))


def _bar(day: DayCoverage, clock: _DayClock) -> str:
    """A lane per recorder with its recorded periods, the gaps shaded across every lane, the overlaps marked
    beneath. No style attribute: its colours and its 6-hour ticks are the archive's sheet's (static/app.css).
    Hidden from screen readers: the row says the same in words (time recorded, each recorder's, each gap and
    overlap)."""
    lanes = {device: n * 10 + 5 for n, device in enumerate(sorted({p[0] or "" for p in day.devices_epoch}) or [""])}
    height = len(lanes) * 10 + 6
    begin, scale = clock.begin, clock.per_second
    parts = [f'<svg class="coverage-bar" aria-hidden="true" viewBox="0 0 {_BAR_UNITS} {height}" '
             f'preserveAspectRatio="none" width="100%" height="{height * 2}">']
    # each kind one path of strokes, M x y H x2 (its width the stroke's), each at least half a minute long so it shows
    for kind, width, strokes in (
            ("cov-gap", height, [(a, b, height // 2) for a, b in day.gaps_epoch]),
            ("cov-rec", 8, [(a, b, lanes[device or ""]) for device, a, b, _ids in day.devices_epoch]),
            ("cov-overlap", 4, [(a, b, height - 3) for a, b, _one, _other in day.overlaps_epoch])):
        if strokes:
            d = []
            for a, b, y in strokes:
                x, x2 = int((a - begin) * scale), int((b - begin) * scale)
                d.append(f"M{x} {y}H{x2 if x2 > x + 5 else x + 5}")
            parts.append(f'<path class="{kind}" stroke-width="{width}" d="{"".join(d)}"></path>')
    parts.append("</svg>")
    return "".join(parts)


def _day_row(officer: tuple[str, str], day: DayCoverage, clock: _DayClock, words: dict[str, str]) -> str:
    """One day's row of the page: the day, the time recorded, the bar, each recorder's time, the gaps, the
    overlaps (each recording linked) and the day's recordings in search; *officer*: the officer's number as HTML
    and as a URL's value. Built here rather than in the template, every value escaped: a unit's month is 1,500 of
    them (bench/coverage_speed.py)."""
    on, hms = clock.day, clock.clock
    spent: dict[str, float] = {}
    for device, a, b, _ids in day.devices_epoch:
        spent[device or "-"] = spent.get(device or "-", 0.0) + (b - a)
    devices = "<br>".join(f"{escape(serial)} {_hours(total)}" for serial, total in sorted(spent.items()))
    gaps = "<br>".join(f"{hms(a)}–{hms(b)} ({_hours(b - a)})" for a, b in day.gaps_epoch)
    overlaps = "<br>".join(f'{hms(a)}–{hms(b)} <a href="/recordings/{one}">#{one}</a> '
                           f'<a href="/recordings/{other}">#{other}</a>' for a, b, one, other in day.overlaps_epoch)
    odd = (f' <a class="badge warn" href="#implausible-{officer[0]}">{words["implausible"]}: '
           f'{len(day.implausible)}</a>' if day.implausible else "")
    empty = "" if day.recorded_epoch else ' class="coverage-empty"'
    return (f'<tr data-day="{on}"{empty}><td>{on}</td><td>{_hours(day.recorded_s)}</td>'
            f'<td class="coverage-cell">{_bar(day, clock)}</td><td>{devices}</td>'
            f'<td class="coverage-gaps">{gaps}</td><td class="coverage-overlaps">{overlaps}</td>'
            f'<td><a href="/?officer={officer[1]}&amp;from={on}&amp;to={on}&amp;sort=captured">'
            f'{words["recordings"]}</a>{odd}</td></tr>\n')


def _local(when: datetime | None, zone: str) -> str:
    return when.astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec="seconds") if when is not None else ""


def _officer_view(officer: OfficerCoverage, zone: str, _: Callable[[str], str],
                  clocks: dict[date, _DayClock] | None = None) -> dict[str, Any]:
    """An officer's part of the page (*_* translates; *clocks*: the days' clocks, shared by a unit's officers)."""
    clocks = clocks if clocks is not None else {}
    words = {"recordings": str(escape(_("Its recordings"))), "implausible": str(escape(_("clock implausible")))}
    number = (str(escape(officer.number)), str(escape(quote(officer.number, safe=""))))
    rows = []
    for d in officer.days:
        clock = clocks.get(d.day) or clocks.setdefault(d.day, _DayClock(d.day, zone))
        rows.append(_day_row(number, d, clock, words))
    return {"number": officer.number, "name": officer.name, "unit": officer.unit_number,
            "recorded": _hours(officer.recorded_s), "rows": Markup("".join(rows)),
            "implausible": [{"id": f.recording_id, "name": f.name, "device": f.device or "-",
                             "start": _local(f.start, zone), "end": _local(f.end, zone),
                             "docked": _local(f.ingested_at, zone)} for f in officer.implausible]}


@contextmanager
def _without_cycle_collector() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a page is built, the page leaving as bytes. A unit's month
    allocates ~100,000 short-lived lists, dicts and generators, none in a reference cycle (each goes when its count
    drops to zero): the collector examined them ~130 times a page and promoted thousands, setting off a full
    collection of the web app's heap (~200 ms) every sixth page or so, the page's p95 (bench/coverage_speed.py).
    Built inside a function that has returned, nothing of them is left to examine when it runs again. Process-wide
    while it lasts: another request's cycles wait for the next collection."""
    with _COLLECTOR_HELD:  # the first page in holds it off, the last one out lets it run again (a review found
        if _HOLDERS[0] == 0:  # two pages racing between isenabled() and disable() leaving it off for good)
            _HOLDERS[1] = gc.isenabled()
            gc.disable()
        _HOLDERS[0] += 1
    try:
        yield
    finally:
        with _COLLECTOR_HELD:
            _HOLDERS[0] -= 1
            if _HOLDERS[0] == 0 and _HOLDERS[1]:
                gc.enable()


#: Pages building now that hold off the cyclic collector, and whether it ran before the first of them.
_COLLECTOR_HELD = threading.Lock()
_HOLDERS: list[Any] = [0, True]


def _units(session: Session, scope: Scope) -> list[tuple[str, str]]:
    """(number, name) of the units the caller may choose from: every unit, or a supervisor's own."""
    query = select(Officer.unit_number, Officer.unit_name).distinct().where(col(Officer.unit_number) != "")
    if not scope.everything:
        query = query.where(col(Officer.unit_number).in_(unit_numbers(scope.units)))
    return sorted((str(number), str(name)) for number, name in session.exec(query))


@router.get("/coverage", response_class=HTMLResponse, include_in_schema=False)
def coverage_page(request: Request, session: DB, officer: str = "", unit: str = "",
                  first: Annotated[str, Query(alias="from")] = "",
                  last: Annotated[str, Query(alias="to")] = "") -> Response:
    """Each officer's days: recorded periods per recorder, gaps, overlaps and implausible times."""
    who = signed_in(request, session, "coverage")
    asked = _asked(request, who, officer, unit, first, last)
    with _without_cycle_collector():
        return _page(request, session, who, asked)


def _page(request: Request, session: Session, who: Caller, asked: Asked) -> Response:
    """The page, rendered from text built beforehand: nothing of the coverage itself reaches the template engine,
    whose render leaves reference cycles that would keep it alive until the collector's next run."""
    config: WebConfig = request.app.state.config
    lang = language(request)
    shown, outside, officers = _views(request, session, who, asked, gettext_for(lang))
    scope = who.scope
    return render(request, "coverage.html", lang, user=who.user, csrf=who.web_session.csrf_token, who_scope=scope,
                  may_choose=scope.everything or bool(scope.units), units=_units(session, scope), zone=config.zone,
                  form={"officer": asked.officer, "unit": asked.unit, "from": asked.first.isoformat(),
                        "to": asked.last.isoformat()},
                  asked=asked, query=asked.query(), shown=shown, outside=outside, officers=officers)


def _views(request: Request, session: Session, who: Caller, asked: Asked,
           translate: Callable[[str], str]) -> tuple[bool, int, list[dict[str, Any]]]:
    """(whether anything was asked, how many of the unit's officers lie outside the caller's scope, each officer's
    part of the page)."""
    found = _gather(request, session, who, asked)
    if found is None:
        return False, 0, []
    clocks: dict[date, _DayClock] = {}
    return True, found.outside_scope, [_officer_view(o, request.app.state.config.zone, translate, clocks)
                                       for o in found.officers]


def coverage_rows(found: UnitCoverage, zone: str) -> Iterator[list[Any]]:
    """The export's rows (CSV_HEADER): per officer and day each recorder's recorded periods, the gaps, the
    overlaps; then the officer's files with an implausible time (day: the one their time claims, docked: when
    they were docked). Times on the agency's clock with its offset. Pure."""
    for o in found.officers:
        for d in o.days:
            on = d.day.isoformat()
            for device, start, end, ids in d.by_device:
                yield [o.number, o.name, o.unit_number, on, "recorded", _local(start, zone), _local(end, zone),
                       round((end - start).total_seconds()), device or "", " ".join(map(str, ids)), ""]
            for a, b in d.gaps:
                yield [o.number, o.name, o.unit_number, on, "gap", _local(a, zone), _local(b, zone),
                       round((b - a).total_seconds()), "", "", ""]
            for a, b, one, other in d.overlaps:
                yield [o.number, o.name, o.unit_number, on, "overlap", _local(a, zone), _local(b, zone),
                       round((b - a).total_seconds()), "", f"{one} {other}", ""]
        for f in o.implausible:
            yield [o.number, o.name, o.unit_number, f.start.astimezone(ZoneInfo(zone)).date().isoformat(),
                   "implausible", _local(f.start, zone), _local(f.end, zone),
                   round((f.end - f.start).total_seconds()), f.device or "", str(f.recording_id),
                   _local(f.ingested_at, zone)]


def _disposition(asked: Asked) -> str:
    """`coverage-unit-U1-2026-11-01-2026-11-30.csv` (UTF-8, RFC 6266 `filename*`, with an ASCII one beside it)."""
    who = ["officer", asked.officer] if asked.officer else ["unit", asked.unit] if asked.unit else []
    name = re.sub(r"[^\w.+@-]+", "_", "-".join(["coverage", *who, asked.first.isoformat(), asked.last.isoformat()]))
    name = name.strip("._")[:150] + ".csv"
    plain = re.sub(r"[^A-Za-z0-9._+@-]+", "_", name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/coverage.csv", include_in_schema=False)
def coverage_csv(request: Request, session: DB, officer: str = "", unit: str = "",
                 first: Annotated[str, Query(alias="from")] = "",
                 last: Annotated[str, Query(alias="to")] = "") -> Response:
    """The page's coverage as CSV (UTF-8 with a BOM, every cell formula-safe), named after the query; recorded."""
    who = signed_in(request, session, "coverage")
    config: WebConfig = request.app.state.config
    asked = _asked(request, who, officer, unit, first, last)
    found = _gather(request, session, who, asked) or UnitCoverage("", ())
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, details={
        "via": "web coverage.csv", "report": "coverage", "officer": asked.officer or None,
        "unit": asked.unit or None, "from": asked.first.isoformat(), "to": asked.last.isoformat(),
        "scope": who.scope.describe()})
    session.commit()
    return StreamingResponse(csv_chunks(CSV_HEADER, coverage_rows(found, config.zone)),
                             media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": _disposition(asked), "Cache-Control": "private, no-store"})


def coverage_json(found: UnitCoverage | None, asked: Asked, zone: str) -> dict[str, Any]:
    """The coverage as the API gives it: times ISO 8601 on the agency's clock. Pure."""
    def period(a: datetime, b: datetime) -> dict[str, Any]:
        return {"start": a.astimezone(ZoneInfo(zone)).isoformat(), "end": b.astimezone(ZoneInfo(zone)).isoformat(),
                "seconds": round((b - a).total_seconds(), 3)}

    officers = [{"number": o.number, "name": o.name, "unit": o.unit_number, "recorded_s": round(o.recorded_s, 3),
                 "days": [{"day": d.day.isoformat(), "recorded_s": round(d.recorded_s, 3),
                           "recorded": [period(a, b) for a, b in d.recorded],
                           "by_device": [{"device": device, **period(start, end), "recordings": list(ids)}
                                         for device, start, end, ids in d.by_device],
                           "gaps": [period(a, b) for a, b in d.gaps],
                           "overlaps": [{**period(a, b), "recordings": [one, other]}
                                        for a, b, one, other in d.overlaps],
                           "implausible": list(d.implausible)} for d in o.days],
                 "implausible": [{"recording": f.recording_id, "name": f.name, "device": f.device,
                                  **period(f.start, f.end),
                                  "docked": f.ingested_at.astimezone(ZoneInfo(zone)).isoformat()
                                  if f.ingested_at else None} for f in o.implausible]}
                for o in (found.officers if found else ())]
    return {"officer": asked.officer or None, "unit": asked.unit or None, "from": asked.first.isoformat(),
            "to": asked.last.isoformat(), "zone": zone, "officers": officers,
            "outside_scope": found.outside_scope if found else 0}


@router.get("/api/coverage", tags=["coverage"], response_model=dict[str, Any])
def api_coverage(request: Request, session: DB, who: CoverageCaller, officer: str = "", unit: str = "",
                 first: Annotated[str, Query(alias="from")] = "",
                 last: Annotated[str, Query(alias="to")] = "") -> Response:
    """Per officer and day of the agency's calendar (`from` … `to`, at most 31 days; the last 7 by default): the
    recorded periods (merged, and per recorder with their recordings), gaps, overlaps and the files with an
    implausible time, for one `officer` or a `unit` (by number, or a name only one unit carries) in the caller's
    scope."""
    config: WebConfig = request.app.state.config
    asked = _asked(request, who, officer, unit, first, last)
    with _without_cycle_collector():  # answered as bytes inside: nothing it was built from outlives it
        return JSONResponse(coverage_json(_gather(request, session, who, asked), asked, config.zone))
