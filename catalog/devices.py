"""The recorder register (设备台账): every body camera and recorder, who it is assigned to (with history), its
status (in service, lost, in repair, retired, with history), its docks.

A device is added by an administrator before first use (`add_device`), or by its first dock (`device_docked`:
nothing is ever refused at the dock, but an unknown serial is flagged `unreviewed` until an administrator
reviews it, `review_device`). Every change is a `registry_changed` custody event with the old and new values,
as for officers and stations (catalog.registry); the problems of a change are listed by pure functions.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from catalog.access import Scope, unit_members, unit_numbers
from catalog.custody import CustodyKind, append_event
from catalog.db import begin_write
from catalog.models import Device, DeviceAssignment, DeviceStatusChange, DockSession, Officer, Sighting
from catalog.registry import RegistryInvalid
from catalog.said import Said, listed, say

__all__ = [
    "DEVICE_STATUSES",
    "DeviceRow",
    "add_device",
    "assign_device",
    "assignments_of",
    "device_docked",
    "device_problems",
    "device_register",
    "docks_of",
    "get_device",
    "review_device",
    "scope_units",
    "set_device_status",
    "statuses_of",
]

#: A recorder's statuses: in use, reported lost (a recording made while lost is an alert), away for repair,
#: out of use for good.
DEVICE_STATUSES = ("in_service", "lost", "repair", "retired")
_MAX_REASON = 500
#: Who assigns a device when the device itself says whose it is (its identity file, read at a dock).
BY_DEVICE = "device"


def scope_units(scope: Scope) -> frozenset[str] | None:
    """The units whose recorders *scope* sees (None: every recorder), as device_register takes them. Pure."""
    return None if scope.everything else scope.units


def device_problems(serial: str, *, profile: str, model: str, unit_number: str, unit_name: str) -> list[Said]:
    """Every problem with a device's record as an administrator types it (empty: valid). Pure."""
    problems = []
    if not serial.strip() or len(serial.strip()) > 64 or any(not c.isprintable() for c in serial):
        problems.append(say("the serial number must be 1-64 printable characters"))
    if not profile.strip() or len(profile) > 64:
        problems.append(say("the profile must be 1-64 characters"))
    if len(model) > 100:
        problems.append(say("the model is at most 100 characters"))
    if len(unit_number) > 64 or len(unit_name) > 200:
        problems.append(say("unit number is at most 64 characters and unit name at most 200"))
    return problems


def _reason(reason: str, what: Said) -> str:
    why = " ".join(reason.split())
    if not why:
        raise RegistryInvalid([say("{what} needs a reason; it is recorded with the change", what=what)])
    if len(why) > _MAX_REASON:
        raise RegistryInvalid([say("the reason is {n} characters long; state it in at most {max}", n=len(why),
                                   max=_MAX_REASON)])
    return why


def get_device(session: Session, serial: str) -> Device:
    """The device *serial* names: as the dock registered it, or without the spaces around it (a serial a device
    wrote with spaces is still found when an administrator types it without), or in another letter case when only
    one device is so named."""
    for wanted in dict.fromkeys((serial, serial.strip())):
        device = session.exec(select(Device).where(Device.serial == wanted)).first()
        if device is not None:
            return device
    # Typed in another letter case (dsj-9 for DSJ-9): found when it names one device only
    alike = session.exec(select(Device).where(func.lower(Device.serial) == serial.strip().lower()).limit(2)).all()
    if len(alike) == 1:
        return alike[0]
    raise RegistryInvalid([say("no device {serial}", serial=repr(serial))])


def _json(device: Device) -> dict[str, Any]:
    return {"profile": device.profile, "model": device.model, "officer_number": device.officer_number,
            "unit_number": device.unit_number, "unit_name": device.unit_name, "status": device.status}


def _assign(session: Session, device: Device, *, officer_number: str | None, unit_number: str, unit_name: str,
            by: str, reason: str, now: datetime) -> None:
    """End the device's open assignment and open this one (the row's current fields follow)."""
    for open_row in session.exec(select(DeviceAssignment).where(DeviceAssignment.device_serial == device.serial,
                                                                col(DeviceAssignment.until).is_(None))):
        open_row.until = now
        session.add(open_row)
    session.add(DeviceAssignment(device_serial=device.serial, officer_number=officer_number,
                                 unit_number=unit_number, unit_name=unit_name, since=now, by=by, reason=reason))
    device.officer_number, device.unit_number, device.unit_name = officer_number, unit_number, unit_name


def _officer_problem(session: Session, number: str | None) -> list[Said]:
    if number and session.exec(select(Officer.id).where(Officer.number == number)).first() is None:
        return [say("no officer {number}; add the officer first", number=repr(number))]
    return []


def add_device(session: Session, serial: str, *, profile: str, model: str = "", officer_number: str | None = None,
               unit_number: str = "", unit_name: str = "", by: str, now: datetime) -> Device:
    """Register a recorder before its first use (its status in service); RegistryInvalid listing every problem,
    or when the serial is registered already. Not committed."""
    begin_write(session)  # the register's changes are taken in turn with the dock's
    serial, number = serial.strip(), (officer_number or "").strip() or None
    problems = device_problems(serial, profile=profile, model=model, unit_number=unit_number, unit_name=unit_name)
    problems += _officer_problem(session, number)
    same = session.exec(select(Device.serial).where(func.lower(Device.serial) == serial.lower())).first()
    if serial and same is not None:  # a serial in another letter case is the same recorder typed otherwise
        problems.append(say("device {serial} is registered already", serial=repr(same)))
    if problems:
        raise RegistryInvalid(problems)
    device = Device(serial=serial, profile=profile.strip(), model=model.strip(), first_seen=now, last_seen=now,
                    added_by=by, docked=False)
    _assign(session, device, officer_number=number, unit_number=unit_number.strip(), unit_name=unit_name.strip(),
            by=by, reason="added", now=now)
    session.add(device)
    session.add(DeviceStatusChange(device_serial=serial, status="in_service", at=now, by=by, reason="added"))
    append_event(session, CustodyKind.REGISTRY_CHANGED, actor=by, details={
        "register": "device", "key": serial, "action": "added", "old": None, "new": _json(device)})
    return device


def assign_device(session: Session, serial: str, *, officer_number: str | None, unit_number: str, unit_name: str,
                  by: str, reason: str = "", now: datetime) -> Device:
    """Assign a device to an officer and unit from *now* (the assignment before it ends then); RegistryInvalid
    listing every problem. Not committed."""
    begin_write(session)  # read after the lock: a dock committed meanwhile is seen (a review found two open rows)
    try:
        device: Device | None = get_device(session, serial)
    except RegistryInvalid:
        device = None
    problems = [] if device else [say("no device {serial}; a device registers itself when it is first docked",
                                      serial=repr(serial))]
    number = (officer_number or "").strip() or None
    problems += _officer_problem(session, number)
    if len(unit_number) > 64 or len(unit_name) > 200:
        problems.append(say("unit number is at most 64 characters and unit name at most 200"))
    if problems:
        raise RegistryInvalid(problems)
    assert device is not None
    old = _json(device)
    if (number, unit_number.strip(), unit_name.strip()) == (device.officer_number, device.unit_number,
                                                             device.unit_name):
        return device  # nothing changes: no new assignment, no event
    _assign(session, device, officer_number=number, unit_number=unit_number.strip(), unit_name=unit_name.strip(),
            by=by, reason=" ".join(reason.split())[:_MAX_REASON], now=now)
    session.add(device)
    append_event(session, CustodyKind.REGISTRY_CHANGED, actor=by, details={
        "register": "device", "key": serial, "action": "assigned", "old": old, "new": _json(device),
        **({"reason": " ".join(reason.split())} if reason.strip() else {})})
    return device


def set_device_status(session: Session, serial: str, *, status: str, by: str, reason: str,
                      now: datetime) -> Device:
    """Mark a device in service, lost, in repair or retired from *now*, saying why. Not committed."""
    begin_write(session)
    device = get_device(session, serial)
    if status not in DEVICE_STATUSES:
        raise RegistryInvalid([say("a device's status is one of {statuses}, not {status}",
                                   statuses=listed([say(s) for s in DEVICE_STATUSES]), status=repr(status))])
    why = _reason(reason, say("a status change"))
    if status == device.status:
        raise RegistryInvalid([say("device {serial} is {status} already", serial=repr(device.serial),
                                   status=say(status))])
    old = _json(device)
    device.status = status
    session.add(device)
    session.add(DeviceStatusChange(device_serial=device.serial, status=status, at=now, by=by, reason=why))
    append_event(session, CustodyKind.REGISTRY_CHANGED, actor=by, details={
        "register": "device", "key": device.serial, "action": "status", "old": old, "new": _json(device),
        "reason": why})
    return device


def review_device(session: Session, serial: str, *, by: str) -> Device:
    """An administrator has looked at a device that registered itself by docking: its flag goes. Not committed."""
    begin_write(session)
    device = get_device(session, serial)
    if not device.unreviewed:
        raise RegistryInvalid([say("device {serial} needs no review", serial=repr(device.serial))])
    device.unreviewed = False
    session.add(device)
    append_event(session, CustodyKind.REGISTRY_CHANGED, actor=by, details={
        "register": "device", "key": device.serial, "action": "reviewed", "old": {"unreviewed": True},
        "new": {"unreviewed": False}})
    return device


def device_docked(session: Session, serial: str, *, profile: str, officer_number: str | None,
                  unit_number: str = "", unit_name: str = "", now: datetime, actor: str = "station") -> Device:
    """The device being docked now, registered if it is not (never refused: an unknown serial is flagged for an
    administrator). What the device says of its officer and unit is its assignment only while no administrator
    has assigned it: then the dock never changes it. Each change is a `registry_changed` event (source: the
    device) by *actor*. The caller holds the write lock (catalog.db.begin_write). Not committed."""
    device = session.exec(select(Device).where(Device.serial == serial)).first()
    said = (officer_number or None, unit_number or "", unit_name or "")
    if device is None:
        device = Device(serial=serial, profile=profile, first_seen=now, last_seen=now, unreviewed=True)
        if any(said):
            _assign(session, device, officer_number=said[0], unit_number=said[1], unit_name=said[2], by=BY_DEVICE,
                    reason="said by the device at its first dock", now=now)
        session.add(device)
        session.add(DeviceStatusChange(device_serial=serial, status="in_service", at=now, by=actor,
                                       reason="registered by its first dock"))
        append_event(session, CustodyKind.REGISTRY_CHANGED, actor=actor, details={
            "register": "device", "key": serial, "action": "docked_unknown", "old": None, "new": _json(device),
            "source": "device"})
        return device
    if not device.docked:  # added by hand: its first dock starts its dock history
        device.first_seen, device.docked = now, True
    device.last_seen, device.profile = now, profile
    current = (device.officer_number, device.unit_number, device.unit_name)
    by_a_person = session.exec(select(DeviceAssignment.id).where(DeviceAssignment.device_serial == serial,
                                                                 DeviceAssignment.by != BY_DEVICE)).first()
    if by_a_person is None and any(said) and said != current:
        old = _json(device)
        _assign(session, device, officer_number=said[0], unit_number=said[1], unit_name=said[2], by=BY_DEVICE,
                reason="said by the device at a dock", now=now)
        append_event(session, CustodyKind.REGISTRY_CHANGED, actor=actor, details={
            "register": "device", "key": serial, "action": "assigned", "old": old, "new": _json(device),
            "source": "device"})
    session.add(device)
    return device


def assignments_of(session: Session, serial: str) -> list[DeviceAssignment]:
    """A device's assignments, oldest first."""
    return list(session.exec(select(DeviceAssignment).where(DeviceAssignment.device_serial == serial)
                             .order_by(col(DeviceAssignment.since), col(DeviceAssignment.id))))


def statuses_of(session: Session, serial: str) -> list[DeviceStatusChange]:
    """A device's status changes, oldest first."""
    return list(session.exec(select(DeviceStatusChange).where(DeviceStatusChange.device_serial == serial)
                             .order_by(col(DeviceStatusChange.at), col(DeviceStatusChange.id))))


@dataclass(frozen=True)
class DeviceRow:
    """A device as the register shows it: the row, its docks and what the latest measured of its clock."""

    device: Device
    docks: int
    last_dock: datetime | None
    last_station: str | None
    last_offset_s: float | None  # station minus device clock, as the latest dock measured it (None: it could not)
    last_files: int | None  # files read at the latest dock

    def as_json(self) -> dict[str, Any]:
        d = self.device
        return {"serial": d.serial, "profile": d.profile, "model": d.model, "status": d.status,
                "officer_number": d.officer_number, "unit_number": d.unit_number, "unit_name": d.unit_name,
                "unreviewed": d.unreviewed, "added_by": d.added_by,
                "first_dock": d.first_seen.isoformat() if d.docked and d.first_seen else None,
                "last_dock": self.last_dock.isoformat() if self.last_dock else None,
                "last_station": self.last_station, "docks": self.docks, "last_clock_offset_s": self.last_offset_s,
                "last_files": self.last_files}


def device_register(session: Session, *, units: frozenset[str] | None = None,
                    serials: Sequence[str] | None = None, limit: int | None = None) -> list[DeviceRow]:
    """Every device by serial (the first *limit*, if given), or only those of *units* (as a supervisor's scope
    holds them: the device's unit by its number, or its officer's unit by number or unambiguous name, as
    catalog.access.scope_clause reads them), or only *serials*; each with its dock count and its latest dock
    (when, where, files read, and the clock offset that dock measured, if it could)."""
    query = select(Device).order_by(col(Device.serial))
    if units is not None:
        query = query.where(or_(col(Device.unit_number).in_(sorted(units)),
                                col(Device.unit_number).in_(unit_numbers(units)),
                                col(Device.officer_number).in_(unit_members(units))))
    if serials is not None:
        query = query.where(col(Device.serial).in_(list(serials)))
    if limit is not None:
        query = query.limit(limit)
    devices = list(session.exec(query))
    if not devices:
        return []
    by_serial = col(DockSession.device_serial).in_([d.serial for d in devices])
    counts = {serial: (n, last) for serial, n, last in session.exec(
        select(DockSession.device_serial, func.count(), func.max(DockSession.id)).where(by_serial)
        .group_by(DockSession.device_serial)).all()}
    docks = {d.id: d for d in session.exec(select(DockSession).where(
        col(DockSession.id).in_(sorted(last for _n, last in counts.values()))))}
    latest = {serial: docks[last] for serial, (_n, last) in counts.items()}
    rows = []
    for d in devices:
        dock = latest.get(d.serial)
        offset = dock.clock_offset_s if dock is not None else None
        rows.append(DeviceRow(device=d, docks=int(counts[d.serial][0]) if d.serial in counts else 0,
                              last_dock=dock.started_at if dock else None,
                              last_station=dock.station_code if dock else None,
                              last_offset_s=offset if offset is not None and math.isfinite(offset) else None,
                              last_files=dock.files_seen if dock else None))
    return rows


def docks_of(session: Session, serial: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The device's latest *limit* docks, newest first: when and where, the result, the files seen, new and failed,
    the bytes read off it (its files' sizes as the dock saw them) and the clock offset the dock measured."""
    read = (select(Sighting.dock_session_id, func.count().label("files"),
                   func.coalesce(func.sum(Sighting.size_bytes), 0).label("bytes"))
            .group_by(col(Sighting.dock_session_id)).subquery())
    rows = session.exec(select(DockSession, read.c.files, read.c.bytes)
                        .join(read, read.c.dock_session_id == DockSession.id, isouter=True)
                        .where(DockSession.device_serial == serial)
                        .order_by(col(DockSession.started_at).desc(), col(DockSession.id).desc()).limit(limit))
    return [{"dock_session": d.id, "started_at": d.started_at.isoformat() if d.started_at else None,
             "finished_at": d.finished_at.isoformat() if d.finished_at else None, "station": d.station_code,
             "result": d.result, "files_seen": d.files_seen, "files_new": d.files_new, "files_failed": d.files_failed,
             "files_sighted": files or 0, "bytes_read": int(size or 0), "clock_offset_s": d.clock_offset_s}
            for d, files, size in rows]
