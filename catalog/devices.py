"""The recorder register (设备台账): every body camera and recorder, who it is assigned to (with history), its
status (in service, lost, in repair, retired, with history), its docks.

A device is added by an administrator before first use (`add_device`), or by its first dock (`device_docked`:
nothing is ever refused at the dock, but an unknown serial is flagged `unreviewed` until an administrator
reviews it, `review_device`). Every change is a `registry_changed` custody event with the old and new values,
as for officers and stations (catalog.registry); the problems of a change are listed by pure functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, append_event
from catalog.models import Device, DeviceAssignment, DeviceStatusChange, DockSession, Officer
from catalog.registry import RegistryInvalid
from catalog.said import Said, listed, say

__all__ = ["DEVICE_STATUSES", "DeviceRow", "add_device", "assign_device", "assignments_of", "device_docked",
           "device_problems", "device_register", "get_device", "review_device", "set_device_status",
           "statuses_of"]

#: A recorder's statuses: in use, reported lost (a recording made while lost is an alert), away for repair,
#: out of use for good.
DEVICE_STATUSES = ("in_service", "lost", "repair", "retired")
_MAX_REASON = 500
#: Who assigns a device when the device itself says whose it is (its identity file, read at a dock).
BY_DEVICE = "device"


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
    device = session.exec(select(Device).where(Device.serial == serial.strip())).first()
    if device is None:
        raise RegistryInvalid([say("no device {serial}", serial=repr(serial))])
    return device


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
    serial, number = serial.strip(), (officer_number or "").strip() or None
    problems = device_problems(serial, profile=profile, model=model, unit_number=unit_number, unit_name=unit_name)
    problems += _officer_problem(session, number)
    if serial and session.exec(select(Device.id).where(Device.serial == serial)).first() is not None:
        problems.append(say("device {serial} is registered already", serial=repr(serial)))
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
    device = session.exec(select(Device).where(Device.serial == serial)).first()
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
                  unit_number: str = "", unit_name: str = "", now: datetime) -> Device:
    """The device being docked now, registered if it is not (never refused: an unknown serial is flagged for an
    administrator). What the device says of its officer and unit fills what the register leaves empty; an
    assignment the register holds is never overwritten by the device. Not committed."""
    device = session.exec(select(Device).where(Device.serial == serial)).first()
    if device is None:
        device = Device(serial=serial, profile=profile, first_seen=now, last_seen=now, unreviewed=True)
        if officer_number or unit_number or unit_name:
            _assign(session, device, officer_number=officer_number, unit_number=unit_number, unit_name=unit_name,
                    by=BY_DEVICE, reason="said by the device at its first dock", now=now)
        session.add(device)
        return device
    if not device.docked:  # added by hand: its first dock starts its dock history
        device.first_seen, device.docked = now, True
    device.last_seen, device.profile = now, profile
    said = (device.officer_number or officer_number, device.unit_number or unit_number,
            device.unit_name or unit_name)
    if said != (device.officer_number, device.unit_number, device.unit_name):  # only what the register left empty
        _assign(session, device, officer_number=said[0], unit_number=said[1], unit_name=said[2], by=BY_DEVICE,
                reason="said by the device at a dock", now=now)
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
    last_offset_s: float | None  # station minus device clock at the latest dock that measured it
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


def device_register(session: Session, *, units: frozenset[str] | None = None, limit: int = 5000) -> list[DeviceRow]:
    """Every device by serial (at most *limit*), or only those of *units* (unit numbers or names, as a
    supervisor's scope holds them: the device's unit, or its officer's), each with its dock count, its latest dock
    (when, where, files read) and the latest clock offset measured."""
    query = select(Device).order_by(col(Device.serial)).limit(limit)
    if units is not None:
        named = sorted(units)
        officers = select(Officer.number).where(or_(col(Officer.unit_number).in_(named),
                                                    col(Officer.unit_name).in_(named)))
        query = query.where(or_(col(Device.unit_number).in_(named), col(Device.unit_name).in_(named),
                                col(Device.officer_number).in_(officers)))
    devices = list(session.exec(query))
    serials = [d.serial for d in devices]
    if not serials:
        return []
    by_serial = col(DockSession.device_serial).in_(serials)
    counts = {serial: (n, last) for serial, n, last in session.exec(
        select(DockSession.device_serial, func.count(), func.max(DockSession.id)).where(by_serial)
        .group_by(DockSession.device_serial)).all()}
    measured_ids = session.exec(select(func.max(DockSession.id)).where(by_serial,
                                                                       col(DockSession.clock_offset_s).is_not(None))
                                .group_by(DockSession.device_serial)).all()
    wanted = {last for _n, last in counts.values()} | set(measured_ids)
    docks = {d.id: d for d in session.exec(select(DockSession).where(col(DockSession.id).in_(sorted(wanted))))}
    latest = {serial: docks[last] for serial, (_n, last) in counts.items()}
    measured = {docks[i].device_serial: docks[i].clock_offset_s for i in measured_ids}
    return [DeviceRow(device=d, docks=int(counts[d.serial][0]) if d.serial in counts else 0,
                      last_dock=latest[d.serial].started_at if d.serial in latest else None,
                      last_station=latest[d.serial].station_code if d.serial in latest else None,
                      last_offset_s=measured.get(d.serial),
                      last_files=latest[d.serial].files_seen if d.serial in latest else None) for d in devices]
