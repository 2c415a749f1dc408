"""The administrator's registers: officers (with their enforcement certificates), stations and devices.

Each change is validated here (a plain function lists every problem) and recorded as a `registry_changed`
custody event with the old and new values, so an auditor can see who moved a camera to another officer
or changed a certificate's validity, and when.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from catalog.custody import CustodyKind, append_event
from catalog.errors import CatalogError
from catalog.models import Officer, Station
from catalog.said import Said, listed, say

__all__ = ["CERTIFICATE_STATES", "EXPIRY_WARNING", "OfficerForm", "RegistryInvalid", "certificate_state",
           "officer_json", "save_officer", "save_station", "validate_officer"]

CERTIFICATE_STATES = ("unknown", "not yet valid", "expired", "expiring", "valid")
#: A certificate this close to its end date is flagged on the officer list.
EXPIRY_WARNING = timedelta(days=30)


class RegistryInvalid(CatalogError):
    def __init__(self, problems: list[Said]) -> None:
        self.problems = problems
        super().__init__(listed(problems, sep="; "))


def certificate_state(valid_from: date | None, valid_until: date | None, today: date) -> str:
    """unknown | not yet valid | expired | expiring (within EXPIRY_WARNING) | valid. Pure."""
    if valid_until is None and valid_from is None:
        return "unknown"
    if valid_from is not None and today < valid_from:
        return "not yet valid"
    if valid_until is not None and today > valid_until:
        return "expired"
    if valid_until is not None and valid_until - today <= EXPIRY_WARNING:
        return "expiring"
    return "valid"


@dataclass(frozen=True)
class OfficerForm:
    number: str
    name: str = ""
    unit_number: str = ""
    unit_name: str = ""
    post: str = ""
    certificate_number: str = ""
    category: str = ""
    area: str = ""
    valid_from: date | None = None
    valid_until: date | None = None


_LIMITS = {"number": 32, "name": 100, "unit_number": 64, "unit_name": 200, "post": 100, "certificate_number": 64,
           "category": 64, "area": 200}
#: Each field of an officer's record as a refusal names it.
_FIELDS = {"number": say("the officer number"), "name": say("the officer's name"),
           "unit_number": say("the unit number"), "unit_name": say("the unit name"), "post": say("the post"),
           "certificate_number": say("the certificate number"), "category": say("the enforcement category"),
           "area": say("the enforcement area")}


def validate_officer(form: OfficerForm) -> list[Said]:
    """Every problem with an officer's record (empty: valid). Pure."""
    problems = []
    if not form.number.strip():
        problems.append(say("the officer number (警号) is required"))
    for field, limit in _LIMITS.items():
        value = getattr(form, field)
        if len(value) > limit:
            problems.append(say("{field} is {n} characters; at most {max}", field=_FIELDS[field], n=len(value),
                                max=limit))
    if form.valid_from and form.valid_until and form.valid_until < form.valid_from:
        problems.append(say("the certificate ends ({end}) before it starts ({start})", end=form.valid_until,
                            start=form.valid_from))
    return problems


def _day(value: datetime | None) -> str | None:
    return value.date().isoformat() if value else None


def _as_time(value: date | None) -> datetime | None:
    return datetime(value.year, value.month, value.day, tzinfo=UTC) if value else None


def officer_json(officer: Officer) -> dict[str, Any]:
    return {f: getattr(officer, f) for f in _LIMITS} | {"valid_from": _day(officer.valid_from),
                                                        "valid_until": _day(officer.valid_until)}


def save_officer(session: Session, form: OfficerForm, *, by: str) -> Officer:
    """Add the officer or replace their record (matched by number)."""
    problems = validate_officer(form)
    if problems:
        raise RegistryInvalid(problems)
    officer = session.exec(select(Officer).where(Officer.number == form.number.strip())).first()
    old = officer_json(officer) if officer else None
    officer = officer or Officer(number=form.number.strip())
    for field in _LIMITS:
        if field != "number":
            setattr(officer, field, getattr(form, field).strip())
    officer.valid_from, officer.valid_until = _as_time(form.valid_from), _as_time(form.valid_until)
    session.add(officer)
    append_event(session, CustodyKind.REGISTRY_CHANGED, actor=by, details={
        "register": "officer", "key": officer.number, "old": old, "new": officer_json(officer)})
    return officer


def save_station(session: Session, code: str, *, name: str, lat: float | None, lon: float | None,
                 by: str, unit_number: str | None = None) -> Station:
    """Rename a station, set its default place (used for files without GPS) or the unit whose station it is
    (*unit_number*; None: as it is; a recorder of another unit docking there is an alert); the code never
    changes."""
    station = session.get(Station, code)
    problems = [] if station else [say("no station {code}; a station registers itself when it first ingests",
                                       code=repr(code))]
    if not name.strip() or len(name) > 200:
        problems.append(say("the station name must be 1-200 characters, not {n}", n=len(name)))
    if (lat is None) != (lon is None):
        problems.append(say("a default place needs both latitude and longitude (or neither)"))
    elif lat is not None and lon is not None and not (
            math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        problems.append(say("({lat}, {lon}) is not a place on Earth", lat=lat, lon=lon))
    if unit_number is not None and len(unit_number.strip()) > 64:
        problems.append(say("unit number is at most 64 characters and unit name at most 200"))
    if problems:
        raise RegistryInvalid(problems)
    assert station is not None
    old = {"name": station.name, "lat": station.default_lat, "lon": station.default_lon, "unit": station.unit_number}
    station.name, station.default_lat, station.default_lon = name.strip(), lat, lon
    if unit_number is not None:
        station.unit_number = unit_number.strip()
    session.add(station)
    append_event(session, CustodyKind.REGISTRY_CHANGED, actor=by, details={
        "register": "station", "key": code, "old": old,
        "new": {"name": station.name, "lat": lat, "lon": lon, "unit": station.unit_number}})
    return station
