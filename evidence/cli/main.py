"""The `evidence` command line (a public contract: JSON goes to stdout).

Exit codes: 0 done (every file preserved, even if some are damaged);
1 some file could not be preserved; 2 bad input or configuration;
3 the catalog or the store is unavailable; 4 evidence failed an integrity
or signature check.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table
from sqlmodel import Session, select

from catalog import (
    CustodyKind,
    Near,
    PermissionDenied,
    SearchFilters,
    append_event,
    get_recording,
    load_or_create_key,
    read_manifest,
    recording_as_json,
    run_search,
    trusted_fingerprints,
)
from catalog.access import can_see, check_access, read_evidence, reason_needed
from catalog.alarms import staged_overdue
from catalog.detail import recording_detail
from catalog.errors import CatalogError
from catalog.models import Sighting
from catalog.restamping import change_stamp
from catalog.search import MAX_RADIUS_M, RETENTION_STATES, SORTS
from catalog.types import utcnow
from catalog.users import Identity
from device_profiles import load_profiles
from evidence.cli.cases import case, retention
from evidence.cli.common import caller as _caller
from evidence.cli.common import console as _console
from evidence.cli.common import errors as _errors
from evidence.cli.common import parse_time as _parse_time
from evidence.cli.common import person as _person
from evidence.cli.common import print_json as _print_json
from evidence.cli.common import settings as _settings
from evidence.cli.integrity import integrity
from evidence.cli.verify import custody, export, serve, user, verify
from ingest.archiving import archive_staged
from ingest.config import Settings
from ingest.errors import ConfigInvalid
from ingest.pipeline import IngestOptions, IngestReport
from ingest.queue.actors import WorkerContext, declare_actors
from ingest.queue.broker import make_broker_for
from ingest.queue.workers import run_ingest, run_workers
from ingest.services import catalog_engine, check_store_at_start, open_store

__all__ = ["main"]

_catalog = catalog_engine
_store = open_store


def _station_operator(settings: Settings) -> Identity:
    """The caller, if they may operate this station (the station's own account, or a bound station/admin user)."""
    with _catalog(settings) as engine, Session(engine) as session:
        return _caller(settings, session, "operate_station")


def _in_scope(session: Session, identity: Identity, recording_ids: list[int], action: str) -> None:
    """PermissionDenied naming the first recording outside what the caller may *action*."""
    for recording_id in recording_ids:
        if not can_see(session, identity.scope, recording_id):
            raise PermissionDenied(f"recording {recording_id} is outside what {identity.actor} ({identity.account}) "
                                   f"may {action}: {identity.scope.describe()}")


def _reason(reason: str | None, needed: bool, what: str) -> str | None:
    if needed and not (reason or "").strip():
        raise click.UsageError(f"state the reason for {what} (调阅事由) with --reason")
    return reason.strip() if reason else None


def _short_time(value: str | None) -> str:
    return value.replace("T", " ").replace("Z", "")[:19] if value else "-"


def _recordings_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("id", "kind", "name", "captured (UTC)", "time src", "place", "officer", "case",
                   "integrity", "state"):
        table.add_column(column, overflow="fold")
    for r in rows:
        place = r.get("place")
        where = f"{place['lat']:.4f},{place['lon']:.4f} ({place['source']})" if place else "-"
        integrity = r["integrity"]["status"] + (f": {r['integrity']['detail'][:60]}"
                                                if r["integrity"]["detail"] else "")
        officer = (r.get("officer") or {}).get("number") or "-"
        name = r["original_name"] + (" [重要/IMP]" if r["important"] else "")
        table.add_row(str(r["id"]), r["media_kind"], name, _short_time(r["captured_start"]), r["time_source"],
                      where, officer, r["case_number"] or "-", integrity, r["state"])
    return table


def _print_report(report: IngestReport, title: str) -> None:
    console = _console()
    console.print(_recordings_table(report.recordings, title))
    for item in report.skipped:
        console.print(f"[dim]skipped[/dim] {item['file']}: {item['reason']}", markup=True)
    for item in report.discarded:
        console.print(f"[yellow]left on the device on purpose[/yellow] {item['file']}: {item['reason']}")
    for item in report.errors:
        kept = "kept" if item["preserved"] else "NOT preserved"
        console.print(f"[red]error[/red] {item['file']} ({item['stage']}, {kept}): {item['reason']}")
    new = sum(1 for r in report.recordings if r.get("ingest") == "new")
    known = len(report.recordings) - new
    flagged = sum(1 for r in report.recordings if r.get("time_implausible"))
    held = sum(1 for r in report.recordings if r.get("legal_hold"))
    console.print(f"{new} new, {known} already known, {len(report.skipped)} skipped, {len(report.discarded)} "
                  f"discarded, {len(report.errors)} error(s); {flagged} with an implausible device clock, {held} under "
                  f"legal hold; dock session {report.dock_session_id}")


def _run_ingest(path: Path, settings: Settings, options: IngestOptions, *, quiet: bool,
                derive: bool = True) -> IngestReport:
    if quiet or not sys.stderr.isatty():
        return run_ingest(path, settings, options, derive=derive)
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(f"ingesting {path.name}", total=None)

        def progress(event: str, value: int) -> None:
            if event == "bytes":
                bar.update(task, total=value)
            elif event == "advance":
                bar.advance(task, value)

        return run_ingest(path, settings, options, derive=derive, progress=progress)


#: Libraries that log every connection or request at INFO/DEBUG: WARNING unless -vv asks for their detail.
NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "pika", "alembic", "watchdog", "asyncio")
#: Commands that run as services: their INFO lines (one per archived recording, workers starting) are the log.
SERVICE_COMMANDS = frozenset({"serve", "worker"})


class _IsoFormatter(logging.Formatter):
    """`2026-11-30T14:03:07.412+08:00 INFO ingest.queue.actors: …`: local time with its offset, to the millisecond."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's
        from datetime import datetime

        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def configure_logging(verbose: int, *, service: bool) -> None:
    """One timestamped stderr handler on the root logger: WARNING for commands, INFO for services (each -v one
    level more). Noisy libraries stay at WARNING until -vv. Calling it again replaces the handler it installed
    (never a second copy of every line); a root logger someone else configured (a test harness) is left alone.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "evidence_cli", False)]
    if len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.evidence_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(_IsoFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    level = max(logging.DEBUG, (logging.INFO if service else logging.WARNING) - 10 * verbose)
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else max(level, logging.WARNING))


def _service_logging() -> None:
    """Switch the log to a service's INFO level (for a service command under a group, e.g. `station watch`)."""
    ctx = click.get_current_context().find_root()
    configure_logging(ctx.params.get("verbose", 0), service=True)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv: also the libraries').")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Audiovisual evidence ingest: dock, hash, stamp, catalogue, keep unaltered."""
    configure_logging(verbose, service=ctx.invoked_subcommand in SERVICE_COMMANDS)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--profile", help="Device profile name (default: recognise the device).")
@click.option("--station", help="Station code (default EVIDENCE_STATION).")
@click.option("--officer", help="Collector's officer number (default: from the device).")
@click.option("--case", "case_number", help="Case number to stamp on every recording.")
@click.option("--purpose", help="What the recordings prove (证明对象).")
@click.option("--clock-offset", type=float, help="Seconds to add to the device clock (known drift).")
@click.option("--no-derive", is_flag=True, help="Skip thumbnails and browser proxies.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def ingest(path: Path, profile: str | None, station: str | None, officer: str | None,
           case_number: str | None, purpose: str | None, clock_offset: float | None, no_derive: bool,
           as_json: bool) -> None:
    """Ingest every recording from a mounted device or a folder."""
    with _errors():
        settings = _settings(station)
        operator = _station_operator(settings)
        options = IngestOptions(profile=profile, officer=officer, case_number=case_number, purpose=purpose,
                                clock_offset_s=clock_offset, actor=operator.actor)
        report = _run_ingest(path, settings, options, quiet=as_json, derive=not no_derive)
    if as_json:
        _print_json(report.as_json())
    else:
        _print_report(report, f"{path} ({report.profile}, device {report.device_serial})")
    sys.exit(0 if report.all_preserved else 1)


def _parse_near(value: str | None) -> Near | None:
    if value is None:
        return None
    try:
        lat, lon, metres = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not LAT,LON,METRES", param_hint="--near") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 < metres <= MAX_RADIUS_M):
        raise click.BadParameter(f"{value!r} is out of range", param_hint="--near")
    return Near(lat, lon, metres)


@main.command()
@click.option("--case", "case_number")
@click.option("--officer", help="Officer number or name.")
@click.option("--device", help="Device serial.")
@click.option("--from", "start", help="ISO time with zone: recordings ending at or after it.")
@click.option("--to", "end", help="ISO time with zone: recordings starting at or before it.")
@click.option("--near", help="LAT,LON,METRES")
@click.option("--purpose", help="Text contained in the purpose.")
@click.option("--kind", type=click.Choice(["video", "audio", "photo", "document", "other"]))
@click.option("--station", help="Station code.")
@click.option("--unit", help="The officer's unit (number or name).")
@click.option("--important/--not-important", default=None, help="Only recordings marked (or not) important.")
@click.option("--integrity", type=click.Choice(["ok", "damaged", "unreadable"]))
@click.option("--retention", type=click.Choice(RETENTION_STATES), help="held, kept, due, disposed or staged.")
@click.option("--sort", type=click.Choice(SORTS), default="captured", show_default=True)
@click.option("--limit", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def search(case_number: str | None, officer: str | None, device: str | None, start: str | None,
           end: str | None, near: str | None, purpose: str | None, kind: str | None, station: str | None,
           unit: str | None, important: bool | None, integrity: str | None, retention: str | None, sort: str,
           limit: int, by: str | None, as_json: bool) -> None:
    """Find recordings (the web search page's filters), within what the caller may see."""
    with _errors():
        settings = _settings()
    with _errors(), _catalog(settings) as engine, Session(engine) as session:
        identity = _caller(settings, session, "search", by)
        filters = SearchFilters(case_number=case_number, officer=officer, device=device,
                                start=_parse_time(start, "--from"), end=_parse_time(end, "--to"),
                                near=_parse_near(near), purpose=purpose, kind=kind, station=station, unit=unit,
                                important=important, integrity=integrity, retention=retention, sort=sort,
                                limit=limit, scope=identity.scope)
        rows = [recording_as_json(r) for r in run_search(session, filters)]
    if as_json:
        _print_json({"recordings": rows})
    else:
        _console().print(_recordings_table(rows, f"{len(rows)} recording(s)"))


@main.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--reason", help="Why you look (调阅事由); required when EVIDENCE_ACCESS_REASON=view.")
def show(ref: str, as_json: bool, by: str | None, reason: str | None) -> None:
    """Show one recording with its sightings, stamp history and custody events (a recorded view)."""
    with _errors():
        settings = _settings()
    with _errors(), _catalog(settings) as engine, Session(engine) as session:
        identity = _caller(settings, session, "view", by)
        why = _reason(reason, reason_needed(settings.access_reason, "view"), "viewing a recording")
        recording = get_recording(session, ref)
        check_access(session, _person(session, identity), [recording], step="view", reason=why,
                     policy=settings.access_reason)
        append_event(session, CustodyKind.VIEWED, actor=identity.actor, recording_id=recording.id,
                     details={"via": "cli show", "reason": why, "os_user": identity.account.login})
        session.commit()
        data = recording_detail(session, recording, settings.retention_policy)
    if as_json:
        _print_json(data)
        return
    console = _console()
    for key, value in data.items():
        if key in ("sightings", "stamp_history", "custody", "technical", "integrity_history", "derived") \
                or value is None:
            continue
        console.print(f"[bold]{key}[/bold]: {json.dumps(value, ensure_ascii=False)}")
    for why in data["retention"]["hold_reasons"]:
        console.print(f"[bold yellow]held[/bold yellow]: {why}")
    console.print("[bold]integrity history[/bold]:")
    for c in data["integrity_history"]:
        console.print(f"  r{c['revision']} {c['check']} {c['status']} by {c['checked_by']} at {c['checked_at']}: "
                      f"{c['detail']}")
    console.print("[bold]sightings[/bold]:")
    for s in data["sightings"]:
        console.print(f"  {s['device_serial']} {s['device_path']} (session {s['dock_session_id']})")
    console.print("[bold]stamp history[/bold]:")
    for h in data["stamp_history"]:
        console.print(f"  r{h['revision']} by {h['changed_by']} at {h['changed_at']}: {h['reason']} "
                      f"{json.dumps(h['changes'], ensure_ascii=False)}")
    console.print("[bold]custody[/bold]:")
    for e in data["custody"]:
        console.print(f"  #{e['id']} {e['at']} {e['kind']} by {e['actor']}")


@main.command()
@click.argument("ref")
@click.option("--reason", required=True, help="Why you retrieve the original (调阅事由; recorded).")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def cat(ref: str, reason: str, by: str | None) -> None:
    """Write a recording's original bytes to stdout (a recorded access, with the stated reason)."""
    with _errors():
        settings = _settings()
        with _catalog(settings) as engine, Session(engine) as session:
            identity = _caller(settings, session, "play", by)
            why = _reason(reason, reason_needed(settings.access_reason, "download"), "retrieving the original")
            recording = get_recording(session, ref)
            # rights, scope and reason as a web download, then one recorded access (catalog.access)
            source = read_evidence(session, user=_person(session, identity),
                                   recording=recording, step="download", what="original", via="cli cat", reason=why,
                                   policy="download", viewing_session=None,
                                   opener=lambda: _store(settings).open(recording.sha256),
                                   details={"sha256": recording.sha256, "os_user": identity.account.login})
        out = sys.stdout.buffer
        with source:
            while chunk := source.read(1024 * 1024):
                out.write(chunk)
        out.flush()


@main.command()
@click.argument("ref")
@click.option("--by", "by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--reason", required=True, help="Why the stamp changes.")
@click.option("--case", "case_number")
@click.option("--purpose")
@click.option("--officer", "collector", help="Collector's officer number.")
@click.option("--place", help="LAT,LON (source becomes 'manual').")
@click.option("--important/--not-important", default=None)
@click.option("--json", "as_json", is_flag=True)
def tag(ref: str, by: str | None, reason: str, case_number: str | None, purpose: str | None, collector: str | None,
        place: str | None, important: bool | None, as_json: bool) -> None:
    """Change a recording's evidence stamp (kept as a new revision)."""
    changes: dict[str, Any] = {}
    if case_number is not None:
        changes["case_number"] = case_number
    if purpose is not None:
        changes["purpose"] = purpose
    if collector is not None:
        changes["collector"] = collector
    if important is not None:
        changes["important"] = important
    if place is not None:
        try:
            lat, lon = (float(v) for v in place.split(","))
        except ValueError:
            raise click.BadParameter(f"{place!r} is not LAT,LON", param_hint="--place") from None
        changes.update(lat=lat, lon=lon, place_source="manual")
    if not changes:
        raise click.UsageError("give at least one of --case, --purpose, --officer, --place, --important")
    with _errors():
        settings = _settings()
        with _catalog(settings) as engine, Session(engine) as session:
            identity = _caller(settings, session, "stamp", by)
            recording = get_recording(session, ref)
            assert recording.id is not None
            _in_scope(session, identity, [recording.id], "tag")
            # lifting a pending-case hold needs a clerk's role: change_stamp refuses it otherwise (exit 2)
            done = change_stamp(session, _store(settings), recording, by=identity.actor, reason=reason,
                                case_pattern=settings.case_pattern, policy=settings.retention_policy,
                                key=load_or_create_key(settings.station_key_path), roles=identity.roles, **changes)
            revision = done.revision
            data = {**recording_as_json(recording), "revision": revision.revision, "changes": revision.changes}
    if as_json:
        _print_json(data)
    else:
        click.echo(f"recording {data['id']}: stamp revision {data['revision']} "
                   f"{json.dumps(data['changes'], ensure_ascii=False)}")


@main.command()
@click.argument("ref")
@click.option("--revision", type=click.IntRange(1), help="Stamp revision (default: the current one).")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--reason", help="Why you look (调阅事由); required when EVIDENCE_ACCESS_REASON=view.")
def manifest(ref: str, revision: int | None, by: str | None, reason: str | None) -> None:
    """Print a recording's signed manifest from WORM storage, after checking its signature against the
    station keys registered in the catalog."""
    with _errors():
        settings = _settings()
        with _catalog(settings) as engine, Session(engine) as session:
            identity = _caller(settings, session, "view", by)
            why = _reason(reason, reason_needed(settings.access_reason, "view"), "viewing a recording")
            recording = get_recording(session, ref)
            check_access(session, _person(session, identity), [recording], step="view", reason=why,
                         policy=settings.access_reason)
            number = revision or recording.stamp_revision
            store = _store(settings)
            body = read_manifest(store, recording.sha256, number, trusted=trusted_fingerprints(session, store))
            append_event(session, CustodyKind.VIEWED, actor=identity.actor, recording_id=recording.id,
                         details={"via": "cli manifest", "revision": number, "reason": why,
                                  "os_user": identity.account.login})
            session.commit()
    _print_json({"verified_signature": True, "manifest": body})


@main.command()
@click.option("--json", "as_json", is_flag=True)
def profiles(as_json: bool) -> None:
    """List the device profiles."""
    with _errors():
        settings = _settings()
        found = load_profiles((settings.profiles_dir,) if settings.profiles_dir else ())
    rows = [{"name": p.name, "description": p.description, "time_sources": list(p.time_sources),
             "clock_zone": p.clock.zone, "clear_after_archive": p.clear_after_archive, "source": p.source}
            for p in found.values()]
    if as_json:
        _print_json({"profiles": rows})
    else:
        for r in rows:
            click.echo(f"{r['name']:28s} {r['description']}")


@main.command()
@click.option("--archive-threads", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--derive-threads", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--only", default="archive,derive,verify", show_default=True,
              help="Kinds of work to take (central workers without a staging area: derive,verify). 'derive' "
                   "covers thumbnails, browser proxies and the background decode check.")
@click.option("--schedule", is_flag=True, help="Also anchor the custody chain and queue fixity checks "
              "periodically (EVIDENCE_ANCHOR_INTERVAL_S, EVIDENCE_FIXITY_INTERVAL_S); run it in one worker.")
def worker(archive_threads: int, derive_threads: int, only: str, schedule: bool) -> None:
    """Run queue workers until stopped: this station's archive queue, verify, and derived media in its
    own threads."""
    import signal
    import threading

    with _errors():
        settings = _settings()
        if not settings.broker_url:
            raise ConfigInvalid("EVIDENCE_BROKER_URL", "", "Set a redis:// or amqp:// broker to run workers; "
                                "the embedded default archives inline during ingest.")
        kinds = frozenset(k.strip() for k in only.split(",") if k.strip())
        if not kinds or not kinds <= {"archive", "derive", "verify"}:
            raise click.BadParameter(f"{only!r}: choose from archive, derive, verify", param_hint="--only")
        _station_operator(settings)
        check_store_at_start(settings, "the worker")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        run_workers(settings, stop, archive_threads=archive_threads, derive_threads=derive_threads, only=kinds,
                    schedule=schedule)


@main.command("archive-pending")
@click.option("--json", "as_json", is_flag=True)
def archive_pending(as_json: bool) -> None:
    """Archive (or, with a broker, queue again) every recording still `staged` at this station (EVIDENCE_STATION):
    other stations' staged copies are on their disks, and theirs to archive."""
    from catalog import outbox
    from ingest.queue.relay import relay_once

    with _errors():
        settings = _settings()
        operator = _station_operator(settings)
        check_store_at_start(settings, "archive-pending")
        with _catalog(settings) as engine:
            if settings.broker_url:
                broker = make_broker_for(settings)
                actors = declare_actors(broker, lambda: WorkerContext.from_settings(settings),
                                        station=settings.station, namespace=settings.queue_namespace)
                with Session(engine) as session:  # through the outbox: a broker away loses nothing
                    ids, elsewhere = outbox.queue_staged(session, station=settings.station, now=utcnow(),
                                                         reason="archive-pending")
                    session.commit()
                try:
                    relayed = relay_once(engine, actors.send, station=settings.station)
                finally:
                    broker.close()
                    actors.close()
                result = {"enqueued": len(ids) if relayed.ok else 0}
                if not relayed.ok:
                    result["waiting_for_broker"] = relayed.waiting
                if elsewhere:
                    result["staged_at_other_stations"] = elsewhere
            else:
                done = archive_staged(engine, _store(settings), settings.staging_dir,
                                      key=load_or_create_key(settings.station_key_path),
                                      actor=operator.actor, policy=settings.retention_policy,
                                      station=settings.station)
                result = {"archived": done}
    if as_json:
        _print_json(result)
    else:
        click.echo(", ".join(f"{v} {k}" for k, v in result.items()))


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


@main.group()
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
    with _errors():
        settings = _settings()
        if mount_roots:
            settings = dataclasses.replace(settings, mount_roots=mount_roots)
        _station_operator(settings)
        check_store_at_start(settings, "the station")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if sys.stdout.isatty():
            with Live(_status_table({"station": settings.station}), refresh_per_second=4) as live:
                StationService(settings, on_change=lambda data: live.update(_status_table(data))).run(stop)
        else:
            StationService(settings).run(stop)


@station.command("status")
@click.option("--json", "as_json", is_flag=True)
def station_status(as_json: bool) -> None:
    """The station's last written status (for a kiosk screen)."""
    from ingest.station.service import read_status

    with _errors():
        settings = _settings()
        status = read_status(settings.status_path, heartbeat_s=settings.status_heartbeat_s)
        try:  # the staged alarm as the catalogue says it now, whether or not the station is running
            with _catalog(settings) as engine, Session(engine) as session:
                alarm = staged_overdue(session, now=utcnow(), older_than_s=settings.staged_alarm_s,
                                       station=settings.station)
            others = [a for a in status.get("alarms", []) if a.get("kind") != "staged_overdue"]
            status["alarms"] = others + ([alarm.as_json()] if alarm.raised else [])
        except CatalogError as exc:
            status.setdefault("alarms", [])
            status["catalogue"] = f"unreachable: {exc}"
    if as_json:
        _print_json(status)
        return
    console = _console()
    console.print(_status_table(status) if status.get("devices") is not None else "the station has not run yet")
    for alarm in status.get("alarms", []):
        console.print(f"[bold red]ALARM[/bold red] {alarm['message']}")
    for device in status.get("devices", []):
        for line in device.get("discarded", []):
            console.print(f"left on {device['path']} on purpose: {line}")


@station.command("tag")
@click.option("--session", "session_id", type=int, required=True, help="Dock session number.")
@click.option("--file", "files", multiple=True, help="Device path within the session (default: all).")
@click.option("--by", "by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--reason", default="tagged at the station", show_default=True)
@click.option("--case", "case_number")
@click.option("--purpose")
@click.option("--important/--not-important", default=None)
@click.option("--json", "as_json", is_flag=True)
def station_tag(session_id: int, files: tuple[str, ...], by: str | None, reason: str, case_number: str | None,
                purpose: str | None, important: bool | None, as_json: bool) -> None:
    """Assign case number, purpose or important flag to the recordings of a dock session."""
    from ingest.station.tagging import tag_dock_session

    changes: dict[str, Any] = {k: v for k, v in (("case_number", case_number), ("purpose", purpose),
                                                 ("important", important)) if v is not None}
    if not changes:
        raise click.UsageError("give at least one of --case, --purpose, --important")
    with _errors():
        settings = _settings()
        with _catalog(settings) as engine:
            with Session(engine) as session:
                identity = _caller(settings, session, "stamp", by)
                _in_scope(session, identity, sorted({s.recording_id for s in session.exec(
                    select(Sighting).where(Sighting.dock_session_id == session_id))
                    if not files or s.device_path in files}), "tag")
            results = tag_dock_session(engine, _store(settings), load_or_create_key(settings.station_key_path),
                                       session_id=session_id, files=files, by=identity.actor, reason=reason,
                                       case_pattern=settings.case_pattern, changes=changes,
                                       policy=settings.retention_policy, roles=identity.roles)
    if as_json:
        _print_json({"tagged": results})
    else:
        for r in results:
            click.echo(f"recording {r['id']} ({r['device_path']}): "
                       + (f"stamp revision {r['revision']}" if r["revision"] else "already so"))


@main.command()
@click.argument("dest", type=click.Path(path_type=Path))
def samples(dest: Path) -> None:
    """Write sample recorders (one per built-in profile) into DEST."""
    from ingest.samples import generate_samples

    with _errors():
        made = generate_samples(dest)
    for name, path in made.all().items():
        click.echo(f"{name}: {path}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def demo(as_json: bool) -> None:
    """Generate sample recorders under $EVIDENCE_HOME/samples and ingest each (twice: the second
    dock shows that nothing is ingested twice)."""
    from ingest.samples import generate_samples

    with _errors():
        settings = _settings()
        operator = _station_operator(settings)
        root = settings.home / "samples"
        made = generate_samples(root) if not root.exists() else None
        devices = made.all() if made else {p.name: p for p in sorted(root.iterdir()) if p.is_dir()}
        reports = []
        for name, path in devices.items():
            options = IngestOptions(purpose="日常巡查 routine patrol", actor=operator.actor)
            report = _run_ingest(path, settings, options, quiet=as_json)
            reports.append((name, path, report))
            if not as_json:
                _print_report(report, f"{name}: {path}")
        again = _run_ingest(devices[next(iter(devices))], settings,
                            IngestOptions(actor=operator.actor), quiet=True)
    if as_json:
        _print_json({"devices": [{"name": n, "path": str(p), **r.as_json()} for n, p, r in reports],
                     "redock": again.as_json()})
        return
    click.echo(f"re-dock of {next(iter(devices))}: {len(again.skipped)} entries skipped, "
               f"{sum(1 for r in again.recordings if r.get('ingest') == 'new')} new")
    click.echo(f"catalog: {settings.database_url}\nWORM store: {settings.store_url}")


main.add_command(case)
main.add_command(retention)
main.add_command(verify)
main.add_command(custody)
main.add_command(export)
main.add_command(user)
main.add_command(serve)
main.add_command(integrity)


if __name__ == "__main__":  # pragma: no cover
    main()
