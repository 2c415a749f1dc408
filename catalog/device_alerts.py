"""Recorder alerts (设备告警) for supervisors: what in the register needs someone to act.

* `silent`: a recorder in service, assigned to an officer, that has not docked for EVIDENCE_DEVICE_SILENT_DAYS
  (one added and never docked: since it was added) — footage may be sitting on it, or it is not used;
* `clock_drift`: its clock, measured at its latest dock, off the station's by more than EVIDENCE_CLOCK_DRIFT_S;
* `foreign_station`: it docked (in the last WINDOW_DAYS) at a station of another unit;
* `recorded_while_lost`: recordings it made while it was marked lost;
* `unreviewed`: an unknown serial docked and registered itself; an administrator has not reviewed it.

`decide_alerts` is the pure decision on one device's facts; `device_alerts` gathers the facts from the catalogue
(one query per kind of fact, not per device) for a supervisor's units or the whole agency.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from catalog.devices import DeviceRow, device_register
from catalog.models import DeviceAssignment, DeviceStatusChange, DockSession, Recording, Station
from catalog.said import Said, say

__all__ = ["ALERT_KINDS", "WINDOW_DAYS", "AlertRules", "DeviceAlert", "DeviceFacts", "alert_counts",
           "decide_alerts", "device_alerts"]

ALERT_KINDS = ("silent", "clock_drift", "foreign_station", "recorded_while_lost", "unreviewed")
#: How far back a dock at another unit's station is an alert.
WINDOW_DAYS = 30


@dataclass(frozen=True)
class AlertRules:
    silent_days: int = 7  # EVIDENCE_DEVICE_SILENT_DAYS
    drift_s: float = 60.0  # EVIDENCE_CLOCK_DRIFT_S


@dataclass(frozen=True)
class DeviceFacts:
    """What one device's alerts are decided from."""

    serial: str
    status: str
    officer_number: str | None
    unit_number: str
    unreviewed: bool
    docked: bool  # False: added by hand, never docked
    since: datetime  # its latest dock, or when it was added
    last_offset_s: float | None
    foreign_docks: tuple[tuple[str, str, datetime], ...] = ()  # (station, the station's unit, when), newest first
    lost_recordings: tuple[int, ...] = ()  # ids of recordings captured while it was marked lost
    docked_by: str | None = None  # the officer of its latest dock (who docked an unknown serial)


@dataclass(frozen=True)
class DeviceAlert:
    kind: str  # ALERT_KINDS
    serial: str
    officer_number: str | None
    unit_number: str
    since: datetime  # when the condition began, as far as the catalogue knows
    message: Said  # in words (a page says it in its reader's language)
    values: dict[str, Any] = field(default_factory=dict)  # for JSON and the metrics

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "serial": self.serial, "officer_number": self.officer_number,
                "unit_number": self.unit_number, "since": self.since.isoformat(), "message": str(self.message),
                **self.values}


def decide_alerts(facts: DeviceFacts, rules: AlertRules, now: datetime) -> list[DeviceAlert]:
    """The alerts *facts* raise at *now* under *rules*, in ALERT_KINDS order. Pure."""
    alerts = []

    def alert(kind: str, since: datetime, message: Said, **values: Any) -> None:
        alerts.append(DeviceAlert(kind, facts.serial, facts.officer_number, facts.unit_number, since, message,
                                  values))

    days = (now - facts.since).days
    if facts.status == "in_service" and facts.officer_number and days >= rules.silent_days:
        alert("silent", facts.since,
              say("recorder {serial} (officer {officer}) has not docked for {days} days", serial=facts.serial,
                  officer=facts.officer_number, days=days) if facts.docked else
              say("recorder {serial} (officer {officer}) was added {days} days ago and has never docked",
                  serial=facts.serial, officer=facts.officer_number, days=days), days=days)
    if facts.last_offset_s is not None and abs(facts.last_offset_s) > rules.drift_s:
        alert("clock_drift", facts.since,
              say("recorder {serial}'s clock was {offset} s off the station's at its latest dock (more than {max} s)",
                  serial=facts.serial, offset=f"{facts.last_offset_s:+.0f}", max=f"{rules.drift_s:g}"),
              offset_s=facts.last_offset_s)
    if facts.foreign_docks:
        station, unit, when = facts.foreign_docks[0]
        alert("foreign_station", when,
              say("recorder {serial} of unit {unit} docked at station {station} of unit {other}",
                  serial=facts.serial, unit=facts.unit_number, station=station, other=unit),
              station=station, station_unit=unit, docks=len(facts.foreign_docks))
    if facts.lost_recordings:
        alert("recorded_while_lost", facts.since,
              say("recorder {serial} made {n} recording(s) while it was marked lost", serial=facts.serial,
                  n=len(facts.lost_recordings)), recording_ids=list(facts.lost_recordings))
    if facts.unreviewed:
        alert("unreviewed", facts.since,
              say("recorder {serial} was unknown when it docked (docked by {who}): an administrator reviews it",
                  serial=facts.serial, who=facts.docked_by or say("not known")), docked_by=facts.docked_by)
    return alerts


def _lost_periods(changes: list[DeviceStatusChange]) -> list[tuple[datetime, datetime | None]]:
    """When the device was marked lost: (from, until) from its status changes in time order. Pure."""
    periods: list[tuple[datetime, datetime | None]] = []
    start: datetime | None = None
    for change in changes:
        assert change.at is not None
        if change.status == "lost" and start is None:
            start = change.at
        elif change.status != "lost" and start is not None:
            periods.append((start, change.at))
            start = None
    if start is not None:
        periods.append((start, None))
    return periods


def device_alerts(session: Session, rules: AlertRules, now: datetime, *,
                  units: frozenset[str] | None = None) -> list[DeviceAlert]:
    """Every alert of the devices assigned to *units* (None: every device), by serial then kind."""
    rows = device_register(session, units=units)
    serials = [r.device.serial for r in rows]
    if not serials:
        return []
    station_units = {code: unit for code, unit in session.exec(select(Station.code, Station.unit_number))}
    window = now - timedelta(days=WINDOW_DAYS)
    recent: dict[str, list[tuple[str, datetime, str | None]]] = {}
    for dock in session.exec(select(DockSession).where(col(DockSession.device_serial).in_(serials),
                                                       col(DockSession.started_at) >= window)
                             .order_by(col(DockSession.started_at).desc())):
        assert dock.started_at is not None
        recent.setdefault(dock.device_serial, []).append((dock.station_code, dock.started_at, dock.officer_number))
    changes: dict[str, list[DeviceStatusChange]] = {}
    for change in session.exec(select(DeviceStatusChange).where(col(DeviceStatusChange.device_serial).in_(serials))
                               .order_by(col(DeviceStatusChange.id))):  # in the order made, whatever clock stamped them
        changes.setdefault(change.device_serial, []).append(change)
    assigned = {serial: since for serial, since in session.exec(
        select(DeviceAssignment.device_serial, DeviceAssignment.since).where(
            col(DeviceAssignment.device_serial).in_(serials), col(DeviceAssignment.until).is_(None)))}
    alerts = []
    for row in rows:
        serial = row.device.serial
        alerts += decide_alerts(_facts(session, row, station_units, recent.get(serial, []), changes.get(serial, []),
                                       assigned.get(serial)), rules, now)
    return alerts


def _facts(session: Session, row: DeviceRow, station_units: dict[str, str],
           recent: list[tuple[str, datetime, str | None]], changes: list[DeviceStatusChange],
           assigned_since: datetime | None) -> DeviceFacts:
    device = row.device
    assert device.last_seen is not None
    # a dock counts against the unit the device had then: only those since its current assignment began
    foreign = tuple((station, station_units[station], when) for station, when, _who in recent
                    if device.unit_number and station_units.get(station) not in ("", None, device.unit_number)
                    and (assigned_since is None or when >= assigned_since))
    # silent from the latest of its last dock, its return to service and its assignment to its officer
    back = [c.at for c in changes if c.status == "in_service" and c.at is not None]
    since = max([row.last_dock or device.last_seen, *back[-1:], *([assigned_since] if assigned_since else [])])
    lost_ids: list[int] = []
    for start, end in _lost_periods(changes):
        query = select(Recording.id).where(Recording.device_serial == device.serial,
                                           col(Recording.redacted_from_id).is_(None),
                                           col(Recording.belongs_to_id).is_(None),
                                           col(Recording.captured_start) >= start)
        if end is not None:
            query = query.where(col(Recording.captured_start) < end)
        lost_ids += [i for i in session.exec(query.order_by(col(Recording.id)).limit(1000)) if i is not None]
    return DeviceFacts(serial=device.serial, status=device.status, officer_number=device.officer_number,
                       unit_number=device.unit_number, unreviewed=device.unreviewed, docked=device.docked,
                       since=since, last_offset_s=row.last_offset_s,
                       foreign_docks=foreign, lost_recordings=tuple(lost_ids),
                       docked_by=recent[0][2] if recent else None)


def alert_counts(alerts: list[DeviceAlert]) -> dict[str, int]:
    """How many alerts of each kind (every kind, zero included): the metrics' values. Pure."""
    counts = dict.fromkeys(ALERT_KINDS, 0)
    for alert in alerts:
        counts[alert.kind] += 1
    return counts

