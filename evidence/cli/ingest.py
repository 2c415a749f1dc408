"""`evidence ingest`, `archive-pending`, `derive-pending`, `worker`, `samples`, `demo` and `profiles`: taking
recordings in.

`ingest` exits 0 when every file was preserved (even damaged ones), 1 when
some file could not be; the report lists what was new, already known,
skipped, left on the device on purpose, and every error.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import load_or_create_key
from catalog.media_work import forget_failures
from catalog.types import utcnow
from device_profiles import load_profiles
from evidence.cli.common import console, errors, print_json, settings, station_operator
from evidence.cli.recordings import recordings_table
from ingest.anchoring import anchor_chain
from ingest.archiving import archive_staged
from ingest.config import Settings
from ingest.errors import ConfigInvalid
from ingest.media_work import LOG_NAME, render_backlog
from ingest.pipeline import IngestOptions, IngestReport
from ingest.queue.connection import open_queue
from ingest.queue.workers import run_ingest, run_workers
from ingest.services import catalog_engine, check_policy_at_start, check_store_at_start, open_store

__all__ = ["archive_pending", "demo", "derive_pending", "ingest", "print_report", "profiles", "samples", "worker"]

#: Kinds of work `evidence worker --only` may name.
WORK_KINDS = frozenset({"archive", "derive", "verify"})


def print_report(report: IngestReport, title: str) -> None:
    """An ingest report for a person: the recordings as a table, then what was skipped, left, or failed."""
    out = console()
    out.print(recordings_table(report.recordings, title))
    for item in report.skipped:
        out.print(f"[dim]skipped[/dim] {item['file']}: {item['reason']}", markup=True)
    for item in report.discarded:
        out.print(f"[yellow]left on the device on purpose[/yellow] {item['file']}: {item['reason']}")
    for item in report.errors:
        kept = "kept" if item["preserved"] else "NOT preserved"
        out.print(f"[red]error[/red] {item['file']} ({item['stage']}, {kept}): {item['reason']}")
    out.print(f"{report.new_count} new, {report.known_count} already known, {len(report.skipped)} skipped, "
              f"{len(report.discarded)} discarded, {len(report.errors)} error(s); {report.implausible_count} with an "
              f"implausible device clock, {report.held_count} under legal hold; dock session {report.dock_session_id}")
    if report.renderer_pid is not None:
        out.print(f"thumbnails, proxies and decode checks: in the background (process {report.renderer_pid}, log "
                  f"{LOG_NAME} in EVIDENCE_HOME; `evidence derive-pending` does them too)")


def _run_ingest(path: Path, cfg: Settings, options: IngestOptions, *, quiet: bool, derive: str) -> IngestReport:
    if quiet or not sys.stderr.isatty():
        return run_ingest(path, cfg, options, derive=derive)
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(f"ingesting {path.name}", total=None)

        def progress(event: str, value: int) -> None:
            if event == "bytes":
                bar.update(task, total=value)
            elif event == "advance":
                bar.advance(task, value)

        return run_ingest(path, cfg, options, derive=derive, progress=progress)


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--profile", help="Device profile name (default: recognise the device).")
@click.option("--station", help="Station code (default EVIDENCE_STATION).")
@click.option("--officer", help="Collector's officer number (default: from the device).")
@click.option("--case", "case_number", help="Case number to stamp on every recording.")
@click.option("--purpose", help="What the recordings prove (证明对象).")
@click.option("--clock-offset", type=float, help="Seconds to add to the device clock (known drift).")
@click.option("--no-derive", is_flag=True, help="Leave thumbnails, browser proxies and decode checks to the next "
              "renderer (`station watch`, `evidence derive-pending`): EVIDENCE_DERIVE=later for this run.")
@click.option("--no-clock-set", is_flag=True, help="Write nothing to the device, not even the station's time "
              "(校时) its profile asks for: EVIDENCE_CLOCK_SET=false for this run (a copied card, a folder).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def ingest(path: Path, profile: str | None, station: str | None, officer: str | None,
           case_number: str | None, purpose: str | None, clock_offset: float | None, no_derive: bool,
           no_clock_set: bool, as_json: bool) -> None:
    """Ingest every recording from a mounted device or a folder."""
    with errors():
        cfg = settings(station)
        if no_clock_set:
            cfg = dataclasses.replace(cfg, clock_set=False)
        operator = station_operator(cfg)
        check_policy_at_start(cfg, "`evidence ingest`", adopt_as=operator.actor)
        options = IngestOptions(profile=profile, officer=officer, case_number=case_number, purpose=purpose,
                                clock_offset_s=clock_offset, actor=operator.actor)
        report = _run_ingest(path, cfg, options, quiet=as_json, derive="later" if no_derive else cfg.derive)
    if as_json:
        print_json(report.as_json())
    else:
        print_report(report, f"{path} ({report.profile}, device {report.device_serial})")
    sys.exit(0 if report.all_preserved else 1)


@click.command()
@click.option("--json", "as_json", is_flag=True)
def profiles(as_json: bool) -> None:
    """List the device profiles."""
    with errors():
        cfg = settings()
        found = load_profiles((cfg.profiles_dir,) if cfg.profiles_dir else ())
    rows = [{"name": p.name, "description": p.description, "time_sources": list(p.time_sources),
             "clock_zone": p.clock.zone, "clock_measured_by": list(p.clock_measures),
             "clock_set_file": p.clock.set_rule.file if p.clock.set_rule else None,
             "clear_after_archive": p.clear_after_archive, "source": p.source}
            for p in found.values()]
    if as_json:
        print_json({"profiles": rows})
    else:
        for p in found.values():
            measured = ", ".join(p.clock_measures) or "cannot be measured at a dock"
            setting = f"set through {p.clock.set_rule.file}" if p.clock.set_rule else "cannot be set"
            click.echo(f"{p.name:28s} {p.description}\n{'':28s} clock: {measured}; {setting} (校时)")


@click.command()
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

    with errors():
        cfg = settings()
        if not cfg.broker_url:
            raise ConfigInvalid("EVIDENCE_BROKER_URL", "", "Set a redis:// or amqp:// broker to run workers; "
                                "the embedded default archives inline during ingest.")
        kinds = frozenset(k.strip() for k in only.split(",") if k.strip())
        if not kinds or not kinds <= WORK_KINDS:
            raise click.BadParameter(f"{only!r}: choose from archive, derive, verify", param_hint="--only")
        operator = station_operator(cfg)
        check_store_at_start(cfg, "the worker")
        check_policy_at_start(cfg, "the worker", adopt_as=operator.actor)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if not run_workers(cfg, stop, archive_threads=archive_threads, derive_threads=derive_threads, only=kinds,
                           schedule=schedule):
            # Messages still running past EVIDENCE_WORKER_STOP_S (each logged): leave now, as a killed worker
            # would, rather than wait at exit for threads stuck on a store or catalogue that does not answer.
            logging.shutdown()
            os._exit(0)


def _queue_staged(cfg: Settings, engine: Engine) -> dict[str, Any]:
    """Queue this station's staged recordings again through the outbox (a broker away loses nothing)."""
    from catalog import outbox
    from ingest.queue.relay import relay_once

    with open_queue(cfg) as queue:
        with Session(engine) as session:
            ids, elsewhere = outbox.queue_staged(session, station=cfg.station, now=utcnow(), reason="archive-pending")
            session.commit()
        relayed = relay_once(engine, queue.actors.send, station=cfg.station)
    result: dict[str, Any] = {"enqueued": len(ids) if relayed.ok else 0}
    if not relayed.ok:
        result["waiting_for_broker"] = relayed.waiting
    if elsewhere:
        result["staged_at_other_stations"] = elsewhere
    return result


@click.command("archive-pending")
@click.option("--json", "as_json", is_flag=True)
def archive_pending(as_json: bool) -> None:
    """Archive (or, with a broker, queue again) every recording still `staged` at this station (EVIDENCE_STATION):
    other stations' staged copies are on their disks, and theirs to archive."""
    with errors():
        cfg = settings()
        operator = station_operator(cfg)
        check_store_at_start(cfg, "archive-pending")
        check_policy_at_start(cfg, "archive-pending", adopt_as=operator.actor)
        with catalog_engine(cfg) as engine:
            if cfg.broker_url:
                result = _queue_staged(cfg, engine)
            else:
                done = archive_staged(engine, open_store(cfg), cfg.staging_dir,
                                      key=load_or_create_key(cfg.station_key_path),
                                      actor=operator.actor, policy=cfg.retention_policy, station=cfg.station)
                result = {"archived": done}
    if as_json:
        print_json(result)
    else:
        click.echo(", ".join(f"{v} {k}" for k, v in result.items()))


@click.command("derive-pending")
@click.option("--quiet", is_flag=True, help="Print nothing (the renderer `evidence ingest` starts in the background).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--retry", type=click.Choice(["killed", "failed"]), default=None,
              help="First put back in the backlog the work given up on after its ffmpeg was killed three times "
                   "(killed: after the machine got more memory, say), or everything that failed for good (failed).")
def derive_pending(quiet: bool, as_json: bool, retry: str | None) -> None:
    """Make the thumbnails, browser proxies and decode checks archived recordings still lack (the media backlog),
    oldest first; what failed because of the media is recorded and not tried again. One renderer per EVIDENCE_HOME
    works at a time: with another at work this leaves the backlog to it."""
    retried: int | None = None
    with errors():
        cfg = settings()
        operator = station_operator(cfg)
        store = open_store(cfg)
        with catalog_engine(cfg) as engine:
            if retry is not None:
                with Session(engine) as session:
                    retried = forget_failures(session, killed_only=retry == "killed")
                    session.commit()
                if not quiet and not as_json:
                    click.echo(f"{retried} kind(s) of media work put back in the backlog.")
            done = render_backlog(cfg, engine, store, by=operator.actor)
            if done is not None and (done.done or done.failed):
                anchor_chain(cfg, engine, store, actor=operator.actor, reason="media work")
    result: dict[str, Any] = ({"renderer": "another renderer is at work"} if done is None else
                              {"recordings": done.recordings, "done": done.done, "failed": done.failed,
                               "deferred": done.deferred, "stopped": done.stopped})
    if retried is not None:
        result["retried"] = retried
    if as_json:
        print_json(result)
    elif not quiet:
        click.echo(result["renderer"] if done is None else done.summary())


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
def samples(dest: Path) -> None:
    """Write sample recorders (one per built-in profile) into DEST."""
    from ingest.samples import generate_samples

    with errors():
        made = generate_samples(dest)
    for name, path in made.all().items():
        click.echo(f"{name}: {path}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
def demo(as_json: bool) -> None:
    """Generate sample recorders under $EVIDENCE_HOME/samples and ingest each (twice: the second
    dock shows that nothing is ingested twice)."""
    from ingest.samples import generate_samples

    with errors():
        cfg = settings()
        operator = station_operator(cfg)
        check_policy_at_start(cfg, "`evidence demo`", adopt_as=operator.actor)
        root = cfg.home / "samples"
        made = generate_samples(root) if not root.exists() else None
        devices = made.all() if made else {p.name: p for p in sorted(root.iterdir()) if p.is_dir()}
        reports = []
        for name, path in devices.items():
            options = IngestOptions(purpose="日常巡查 routine patrol", actor=operator.actor)
            report = _run_ingest(path, cfg, options, quiet=as_json, derive=cfg.derive)
            reports.append((name, path, report))
            if not as_json:
                print_report(report, f"{name}: {path}")
        again = _run_ingest(devices[next(iter(devices))], cfg, IngestOptions(actor=operator.actor), quiet=True,
                            derive=cfg.derive)
    if as_json:
        print_json({"devices": [{"name": n, "path": str(p), **r.as_json()} for n, p, r in reports],
                    "redock": again.as_json()})
        return
    click.echo(f"re-dock of {next(iter(devices))}: {len(again.skipped)} entries skipped, "
               f"{again.new_count} new")
    click.echo(f"catalog: {cfg.database_url}\nWORM store: {cfg.store_url}")
