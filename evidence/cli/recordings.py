"""`evidence search`, `show`, `cat`, `tag` and `manifest`: finding recordings, looking at them (each look a
recorded view), retrieving an original, and changing its evidence stamp.

A look at evidence is a person's (catalog.access): the caller must be an archive user whose role and scope
allow it, with a stated reason where EVIDENCE_ACCESS_REASON asks for one.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click
from rich.table import Table
from sqlmodel import Session

from catalog import (
    CustodyKind,
    Near,
    SearchFilters,
    append_event,
    get_recording,
    load_or_create_key,
    read_manifest,
    recording_as_json,
    run_search,
    trusted_fingerprints,
)
from catalog.access import ReasonRequired, check_access, read_evidence, reason_needed, stated_reason
from catalog.detail import recording_detail
from catalog.models import Recording
from catalog.restamping import change_stamp
from catalog.search import MAX_RADIUS_M, RETENTION_STATES, SORTS
from catalog.sensitivity import CLASSES, DEFAULT, label
from catalog.users import Identity
from evidence.cli.common import (
    caller,
    catalogue,
    console,
    errors,
    in_force,
    in_scope,
    parse_time,
    person,
    print_json,
    settings,
)
from evidence.cli.options import by_option, json_option, view_reason_option
from ingest.config import Settings
from ingest.services import catalog_engine, open_store

__all__ = ["cat", "look_at", "manifest", "recordings_table", "search", "show", "tag"]

#: Keys of a recording's detail printed as sections of their own (or not at all), not as `key: value` lines.
_DETAIL_SECTIONS = ("sightings", "stamp_history", "custody", "technical", "integrity_history", "derived")
#: The detail's lists printed as sections, in this order: (key, one item as a line).
_DETAIL_LISTS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("integrity_history", lambda c: f"r{c['revision']} {c['check']} {c['status']} by {c['checked_by']} at "
                                    f"{c['checked_at']}: {c['detail']}"),
    ("sightings", lambda s: f"{s['device_serial']} {s['device_path']} (session {s['dock_session_id']})"),
    ("stamp_history", lambda h: f"r{h['revision']} by {h['changed_by']} at {h['changed_at']}: {h['reason']} "
                                f"{json.dumps(h['changes'], ensure_ascii=False)}"),
    ("custody", lambda e: f"#{e['id']} {e['at']} {e['kind']} by {e['actor']}"),
)


def _reason(reason: str | None, needed: bool, what: str) -> str | None:
    try:
        stated = stated_reason(reason)
    except ReasonRequired as exc:
        raise click.UsageError(str(exc)) from None
    if needed and stated is None:
        raise click.UsageError(f"state the reason for {what} (调阅事由) with --reason")
    return stated


def look_at(cfg: Settings, session: Session, ref: str, by: str | None,
          reason: str | None) -> tuple[Identity, Recording, str | None]:
    """The recording *ref*, once the caller's role, scope and stated reason allow a look at it (catalog.access; a
    refusal is recorded), with the caller and the reason: the command records the view with what it shows."""
    identity = caller(cfg, session, "view", by)
    why = _reason(reason, reason_needed(cfg.access_reason, "view"), "viewing a recording")
    recording = get_recording(session, ref)
    check_access(session, person(session, identity), [recording], step="view", reason=why, policy=cfg.access_reason)
    return identity, recording, why


def _short_time(value: str | None) -> str:
    return value.replace("T", " ").replace("Z", "")[:19] if value else "-"


def recordings_table(rows: Sequence[Mapping[str, Any]], title: str,
                     class_names: Mapping[str, tuple[str, str]] | None = None) -> Table:
    """Recordings (recording_as_json rows) as a table: what they are, when, where, whose, case, integrity."""
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
        name = r["original_name"] + (" [重要/IMP]" if r["important"] else "") + (
            f" [{label(r['sensitivity'], 'zh', class_names)}/{label(r['sensitivity'], 'en', class_names)}]"
            if r["sensitivity"] != DEFAULT else "")
        table.add_row(str(r["id"]), r["media_kind"], name, _short_time(r["captured_start"]), r["time_source"],
                      where, officer, r["case_number"] or "-", integrity, r["state"])
    return table


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


@click.command()
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
@click.option("--class", "sensitivity", type=click.Choice(CLASSES),
              help="Only recordings of this sensitivity class (`evidence class`).")
@click.option("--integrity", type=click.Choice(["ok", "damaged", "unreadable"]))
@click.option("--retention", type=click.Choice(RETENTION_STATES), help="held, kept, due, disposed or staged.")
@click.option("--sort", type=click.Choice(SORTS), default="captured", show_default=True)
@click.option("--limit", type=click.IntRange(1, 10_000), default=500, show_default=True)
@by_option
@json_option
def search(case_number: str | None, officer: str | None, device: str | None, start: str | None,
           end: str | None, near: str | None, purpose: str | None, kind: str | None, station: str | None,
           unit: str | None, important: bool | None, sensitivity: str | None, integrity: str | None,
           retention: str | None, sort: str, limit: int, by: str | None, as_json: bool) -> None:
    """Find recordings (the web search page's filters), within what the caller may see."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "search", by)
        filters = SearchFilters(case_number=case_number, officer=officer, device=device,
                                start=parse_time(start, "--from"), end=parse_time(end, "--to"),
                                near=_parse_near(near), purpose=purpose, kind=kind, station=station, unit=unit,
                                important=important, sensitivity=sensitivity, integrity=integrity,
                                retention=retention, sort=sort,
                                limit=limit, scope=identity.scope)
        rows = [recording_as_json(r) for r in run_search(session, filters)]
    if as_json:
        print_json({"recordings": rows})
    else:
        console().print(recordings_table(rows, f"{len(rows)} recording(s)", cfg.sensitivity_names))


@click.command()
@click.argument("ref")
@json_option
@by_option
@view_reason_option
def show(ref: str, as_json: bool, by: str | None, reason: str | None) -> None:
    """Show one recording with its sightings, stamp history and custody events (a recorded view)."""
    with catalogue() as (cfg, session):
        identity, recording, why = look_at(cfg, session, ref, by, reason)
        append_event(session, CustodyKind.VIEWED, actor=identity.actor, recording_id=recording.id,
                     details={"via": "cli show", "reason": why, "os_user": identity.account.login})
        session.commit()
        data = recording_detail(session, recording, in_force(session, cfg),
                                reader=None if identity.may("audit") else identity.actor,
                                reads_cases=identity.may("cases"))
    if as_json:
        print_json(data)
    else:
        _print_detail(data)


def _print_detail(data: dict[str, Any]) -> None:
    out = console()
    for key, value in data.items():
        if key in _DETAIL_SECTIONS or value is None:
            continue
        out.print(f"[bold]{key}[/bold]: {json.dumps(value, ensure_ascii=False)}")
    for why in data["retention"]["hold_reasons"]:
        out.print(f"[bold yellow]held[/bold yellow]: {why}")
    for key, line in _DETAIL_LISTS:
        out.print(f"[bold]{key.replace('_', ' ')}[/bold]:")
        for item in data[key]:
            out.print(f"  {line(item)}")


@click.command()
@click.argument("ref")
@click.option("--reason", required=True, help="Why you retrieve the original (调阅事由; recorded).")
@by_option
def cat(ref: str, reason: str, by: str | None) -> None:
    """Write a recording's original bytes to stdout (a recorded access, with the stated reason)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "play", by)
            why = _reason(reason, reason_needed(cfg.access_reason, "download"), "retrieving the original")
            recording = get_recording(session, ref)
            # rights, scope and reason as a web download, then one recorded access (catalog.access)
            source = read_evidence(session, user=person(session, identity),
                                   recording=recording, step="download", what="original", via="cli cat", reason=why,
                                   policy="download", viewing_session=None,
                                   opener=lambda: open_store(cfg).open(recording.sha256),
                                   details={"sha256": recording.sha256, "os_user": identity.account.login})
        out = sys.stdout.buffer
        with source:
            while chunk := source.read(1024 * 1024):
                out.write(chunk)
        out.flush()


def _stamp_changes(case_number: str | None, purpose: str | None, collector: str | None, place: str | None,
                   important: bool | None) -> dict[str, Any]:
    """The stamp fields `evidence tag` was given (UsageError if none, BadParameter for a bad --place)."""
    changes: dict[str, Any] = {k: v for k, v in (("case_number", case_number), ("purpose", purpose),
                                                 ("collector", collector), ("important", important))
                               if v is not None}
    if place is not None:
        try:
            lat, lon = (float(v) for v in place.split(","))
        except ValueError:
            raise click.BadParameter(f"{place!r} is not LAT,LON", param_hint="--place") from None
        changes.update(lat=lat, lon=lon, place_source="manual")
    if not changes:
        raise click.UsageError("give at least one of --case, --purpose, --officer, --place, --important")
    return changes


@click.command()
@click.argument("ref")
@by_option
@click.option("--reason", required=True, help="Why the stamp changes.")
@click.option("--case", "case_number")
@click.option("--purpose")
@click.option("--officer", "collector", help="Collector's officer number.")
@click.option("--place", help="LAT,LON (source becomes 'manual').")
@click.option("--important/--not-important", default=None)
@json_option
def tag(ref: str, by: str | None, reason: str, case_number: str | None, purpose: str | None, collector: str | None,
        place: str | None, important: bool | None, as_json: bool) -> None:
    """Change a recording's evidence stamp (kept as a new revision)."""
    changes = _stamp_changes(case_number, purpose, collector, place, important)
    with catalogue(policy=True) as (cfg, session):
        identity = caller(cfg, session, "stamp", by)
        recording = get_recording(session, ref)
        assert recording.id is not None
        in_scope(session, identity, [recording.id], "tag")
        # lifting a pending-case hold needs a clerk's role: change_stamp refuses it otherwise (exit 2)
        done = change_stamp(session, open_store(cfg), recording, by=identity.actor, reason=reason,
                            case_pattern=cfg.case_pattern, policy=cfg.retention_policy,
                            key=load_or_create_key(cfg.station_key_path), roles=identity.roles, **changes)
        revision = done.revision
        data = {**recording_as_json(recording), "revision": revision.revision, "changes": revision.changes}
    if as_json:
        print_json(data)
    else:
        click.echo(f"recording {data['id']}: stamp revision {data['revision']} "
                   f"{json.dumps(data['changes'], ensure_ascii=False)}")


@click.command()
@click.argument("ref")
@click.option("--revision", type=click.IntRange(1), help="Stamp revision (default: the current one).")
@by_option
@view_reason_option
def manifest(ref: str, revision: int | None, by: str | None, reason: str | None) -> None:
    """Print a recording's signed manifest from WORM storage, after checking its signature against the
    station keys registered in the catalog."""
    with catalogue() as (cfg, session):
        identity, recording, why = look_at(cfg, session, ref, by, reason)
        number = revision or recording.stamp_revision
        store = open_store(cfg)
        body = read_manifest(store, recording.sha256, number, trusted=trusted_fingerprints(session, store))
        append_event(session, CustodyKind.VIEWED, actor=identity.actor, recording_id=recording.id,
                     details={"via": "cli manifest", "revision": number, "reason": why,
                              "os_user": identity.account.login})
        session.commit()
    print_json({"verified_signature": True, "manifest": body})
