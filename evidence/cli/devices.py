"""`evidence device …`: the recorder register (设备台账) and its alerts (catalog.devices, catalog.device_alerts).

Reading the register and its alerts needs the `devices` permission (a supervisor sees their units' recorders);
changing it (add, assign, status, review) is an administrator's, each change a `registry_changed` custody event.
JSON goes to stdout with --json."""
from __future__ import annotations

import click

from catalog.device_alerts import AlertRules, device_alerts
from catalog.devices import (
    DEVICE_STATUSES,
    add_device,
    assign_device,
    assignments_of,
    device_register,
    docks_of,
    get_device,
    review_device,
    scope_units,
    set_device_status,
    statuses_of,
)
from catalog.registry import RegistryInvalid
from catalog.said import say
from catalog.types import utcnow
from evidence.cli.common import caller, catalogue, print_result
from evidence.cli.options import by_option, json_option

__all__ = ["device"]




@click.group("device")
def device() -> None:
    """The recorder register: devices, their assignments, status and alerts."""


@device.command("list")
@by_option
@json_option
def device_list(by: str | None, as_json: bool) -> None:
    """Every recorder (a supervisor: their units'), with its latest dock and clock offset."""
    with catalogue() as (_cfg, session):
        identity = caller(_cfg, session, "devices", by)
        rows = device_register(session, units=scope_units(identity.scope))
    lines = [f"{r.device.serial}  {r.device.status}  officer {r.device.officer_number or '-'}  "
             f"unit {r.device.unit_number or '-'}  docks {r.docks}  last {r.last_dock or 'never'}"
             + ("  UNREVIEWED" if r.device.unreviewed else "") for r in rows]
    print_result({"devices": [r.as_json() for r in rows]}, as_json, "\n".join(lines) or "no recorder registered")


@device.command("show")
@click.argument("serial")
@by_option
@json_option
def device_show(serial: str, by: str | None, as_json: bool) -> None:
    """One recorder: its register row, its assignments and status changes."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "devices", by)
        found = get_device(session, serial)
        rows = device_register(session, units=scope_units(identity.scope), serials=[found.serial])
        if not rows:  # outside the caller's units: said exactly as a device that is not there
            raise RegistryInvalid([say("no device {serial}", serial=repr(serial))])
        data = {**rows[0].as_json(),
                "assignments": [{"officer_number": a.officer_number, "unit_number": a.unit_number,
                                 "unit_name": a.unit_name, "since": a.since.isoformat() if a.since else None,
                                 "until": a.until.isoformat() if a.until else None, "by": a.by, "reason": a.reason}
                                for a in assignments_of(session, found.serial)],
                "statuses": [{"status": c.status, "at": c.at.isoformat() if c.at else None, "by": c.by,
                              "reason": c.reason} for c in statuses_of(session, found.serial)],
                "docks_latest": docks_of(session, found.serial)}
    print_result(data, as_json, "\n".join(f"{k}: {v}" for k, v in data.items()))


@device.command("add")
@click.argument("serial")
@click.option("--profile", required=True, help="The device profile that reads it (`evidence profiles`).")
@click.option("--model", default="", help="Its make and model, as written on it.")
@click.option("--officer", default=None, help="The officer number (警号) it is assigned to.")
@click.option("--unit", "unit_number", default="", help="The unit number it belongs to.")
@click.option("--unit-name", default="")
@by_option
@json_option
def device_add(serial: str, profile: str, model: str, officer: str | None, unit_number: str, unit_name: str,
               by: str | None, as_json: bool) -> None:
    """Register a recorder before its first use."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "manage_devices", by)
        added = add_device(session, serial, profile=profile, model=model, officer_number=officer,
                           unit_number=unit_number, unit_name=unit_name, by=identity.actor, now=utcnow())
        session.commit()
        print_result({"serial": added.serial, "added": True}, as_json, f"recorder {added.serial} registered")


@device.command("assign")
@click.argument("serial")
@click.option("--officer", default=None, help="The officer number (警号); leave out for a unit's pool device.")
@click.option("--unit", "unit_number", default="", help="The unit number.")
@click.option("--unit-name", default="")
@click.option("--reason", default="", help="Why (recorded with the assignment).")
@by_option
@json_option
def device_assign(serial: str, officer: str | None, unit_number: str, unit_name: str, reason: str, by: str | None,
                  as_json: bool) -> None:
    """Assign a recorder to an officer and unit from now (the assignment before it ends)."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "manage_devices", by)
        changed = assign_device(session, serial, officer_number=officer, unit_number=unit_number,
                                unit_name=unit_name, by=identity.actor, reason=reason, now=utcnow())
        session.commit()
        print_result({"serial": changed.serial, "officer_number": changed.officer_number,
               "unit_number": changed.unit_number}, as_json,
              f"recorder {changed.serial} assigned to officer {changed.officer_number or '-'}, unit "
              f"{changed.unit_number or '-'}")


@device.command("status")
@click.argument("serial")
@click.argument("status", type=click.Choice(DEVICE_STATUSES))
@click.option("--reason", required=True, help="Why (recorded with the change).")
@by_option
@json_option
def device_status(serial: str, status: str, reason: str, by: str | None, as_json: bool) -> None:
    """Mark a recorder in service, lost, in repair or retired."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "manage_devices", by)
        changed = set_device_status(session, serial, status=status, by=identity.actor, reason=reason, now=utcnow())
        session.commit()
        print_result({"serial": changed.serial, "status": changed.status}, as_json,
              f"recorder {changed.serial} is {changed.status}")


@device.command("review")
@click.argument("serial")
@by_option
@json_option
def device_review(serial: str, by: str | None, as_json: bool) -> None:
    """Clear the flag of a recorder that registered itself by docking (an unknown serial)."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "manage_devices", by)
        reviewed = review_device(session, serial, by=identity.actor)
        session.commit()
        print_result({"serial": reviewed.serial, "reviewed": True}, as_json, f"recorder {reviewed.serial} reviewed")


@device.command("alerts")
@by_option
@json_option
def device_alerts_command(by: str | None, as_json: bool) -> None:
    """Recorders that need someone to act: silent, clock drift, another unit's station, recorded while lost,
    unreviewed (a supervisor: their units')."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "devices", by)
        alerts = device_alerts(session, AlertRules(silent_days=cfg.device_silent_days, drift_s=cfg.clock_drift_s),
                               utcnow(), units=scope_units(identity.scope))
    print_result({"alerts": [a.as_json() for a in alerts]}, as_json,
          "\n".join(f"{a.kind}: {a.message}" for a in alerts) or "no alerts")
