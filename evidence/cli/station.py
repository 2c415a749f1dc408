"""`evidence station watch|status|tag`: the dock station run as a service, its status for a kiosk screen, and
tagging a dock session's recordings.

`watch` logs at a service's INFO level (a service command under a group: `evidence.cli.main` sets the level
for the top-level ones).
"""
from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.markup import escape
from rich.table import Table
from sqlmodel import Session

from catalog import load_or_create_key
from catalog.alarms import staged_overdue
from catalog.errors import CatalogError
from catalog.sightings import dock_session_recording_ids
from catalog.types import utcnow
from evidence.cli.common import caller, console, errors, in_scope, pinned, print_json, settings, station_operator
from evidence.cli.options import by_option, json_option
from ingest.config import Settings
from ingest.services import catalog_engine, check_policy_at_start, check_store_at_start, open_store

__all__ = ["station"]


def _service_logging() -> None:
    """Switch the log to a service's INFO level (for a service command under a group, e.g. `station watch`)."""
    from evidence.cli.main import configure_logging  # the entry point imports this module: import it when run

    ctx = click.get_current_context().find_root()
    configure_logging(ctx.params.get("verbose", 0), service=True)


def _status_table(status: dict[str, Any]) -> Table:
    table = Table(title=f"station {status.get('station', '?')} · {status.get('updated_at', '')[:19]}")
    for column in ("device", "state", "profile", "serial", "progress", "rate", "ETA", "new", "known", "cleared",
                   "errors"):
        table.add_column(column, overflow="fold")
    for d in status.get("devices", []):
        total = d["bytes_total"] or 0
        done = f"{d['bytes_done'] / 2**20:.0f}/{total / 2**20:.0f} MiB" if total else "-"
        rate = f"{d['rate_bytes_s'] / 2**20:.0f} MiB/s" if d["rate_bytes_s"] else "-"
        eta = f"{d['eta_s']:.0f} s" if d["eta_s"] is not None else "-"
        table.add_row(d["path"], d["state"], d["profile"] or "-", d["device_serial"] or "-", done, rate, eta,
                      str(d["new"]), str(d["known"]), str(d["cleared"]), str(len(d["errors"])))
    return table


@click.group()
def station() -> None:
    """The dock station: watch for docked recorders, show their status, tag their recordings."""


@station.command("watch")
@click.option("--mount-root", "mount_roots", multiple=True,
              help="Folder (or glob) where recorders are mounted; repeatable (default EVIDENCE_MOUNT_ROOTS).")
def station_watch(mount_roots: tuple[str, ...]) -> None:
    """Run the station until SIGTERM/SIGINT: ingest every docked recorder, clear verified files where allowed."""
    import dataclasses
    import signal
    import threading

    from rich.live import Live

    from ingest.station.service import StationService

    _service_logging()
    with errors():
        cfg = settings()
        if mount_roots:
            cfg = dataclasses.replace(cfg, mount_roots=mount_roots)
        operator = station_operator(cfg)
        check_store_at_start(cfg, "the station")
        check_policy_at_start(cfg, "the station", adopt_as=operator.actor)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if sys.stdout.isatty():
            with Live(_status_table({"station": cfg.station}), refresh_per_second=4) as live:
                StationService(cfg, on_change=lambda data: live.update(_status_table(data))).run(stop)
        else:
            StationService(cfg).run(stop)


def _with_catalogue_alarm(cfg: Settings, status: dict[str, Any]) -> None:
    """Put the staged alarm in *status* as the catalogue says it now, whether or not the station is running."""
    try:
        with catalog_engine(cfg) as engine, Session(engine) as session:
            alarm = staged_overdue(session, now=utcnow(), older_than_s=cfg.staged_alarm_s, station=cfg.station)
        others = [a for a in status.get("alarms", []) if a.get("kind") != "staged_overdue"]
        status["alarms"] = others + ([alarm.as_json()] if alarm.raised else [])
    except CatalogError as exc:
        status.setdefault("alarms", [])
        status["catalogue"] = f"unreachable: {exc}"


def _with_partial_copies(cfg: Settings, status: dict[str, Any]) -> None:
    """Put the partial copies in staging now, and their idle alarm, in *status*, whether or not the station runs."""
    from ingest.station.partial_copies import partial_copies

    try:
        held = partial_copies(cfg.staging_dir, now=time.time())
    except OSError as exc:
        status["partial_copies"] = f"unreadable: {exc}"
        return
    status["partial_copies"] = held.as_json()
    others = [a for a in status.get("alarms", []) if a.get("kind") != "partial_copy_idle"]
    alarm = held.alarm(cfg.staging_dir, cfg.partial_alarm_s)
    status["alarms"] = others + ([alarm] if alarm else [])


@station.command("status")
@json_option
def station_status(as_json: bool) -> None:
    """The station's last written status (for a kiosk screen)."""
    from ingest.station.service import read_status

    with errors():
        cfg = settings()
        status = read_status(cfg.status_path, heartbeat_s=cfg.status_heartbeat_s)
        _with_catalogue_alarm(cfg, status)
        _with_partial_copies(cfg, status)
    if as_json:
        print_json(status)
        return
    out = console()
    out.print(_status_table(status) if status.get("devices") is not None else "the station has not run yet")
    for alarm in status.get("alarms", []):
        out.print(f"[bold red]ALARM[/bold red] {escape(str(alarm['message']))}")  # file names are not markup
    for device in status.get("devices", []):
        for line in device.get("discarded", []):
            out.print(f"left on {device['path']} on purpose: {line}")


@station.command("tag")
@click.option("--session", "session_id", type=int, required=True, help="Dock session number.")
@click.option("--file", "files", multiple=True, help="Device path within the session (default: all).")
@by_option
@click.option("--reason", default="tagged at the station", show_default=True)
@click.option("--case", "case_number")
@click.option("--purpose")
@click.option("--important/--not-important", default=None)
@json_option
def station_tag(session_id: int, files: tuple[str, ...], by: str | None, reason: str, case_number: str | None,
                purpose: str | None, important: bool | None, as_json: bool) -> None:
    """Assign case number, purpose or important flag to the recordings of a dock session."""
    from ingest.station.tagging import tag_dock_session

    changes: dict[str, Any] = {k: v for k, v in (("case_number", case_number), ("purpose", purpose),
                                                 ("important", important)) if v is not None}
    if not changes:
        raise click.UsageError("give at least one of --case, --purpose, --important")
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine:
            with Session(engine) as session:
                pinned(session, cfg)
                identity = caller(cfg, session, "stamp", by)
                in_scope(session, identity, dock_session_recording_ids(session, session_id, device_paths=files),
                         "tag")
            results = tag_dock_session(engine, open_store(cfg), load_or_create_key(cfg.station_key_path),
                                       session_id=session_id, files=files, by=identity.actor, reason=reason,
                                       case_pattern=cfg.case_pattern, changes=changes,
                                       policy=cfg.retention_policy, roles=identity.roles)
    if as_json:
        print_json({"tagged": results})
    else:
        for r in results:
            click.echo(f"recording {r['id']} ({r['device_path']}): "
                       + (f"stamp revision {r['revision']}" if r["revision"] else "already so"))
