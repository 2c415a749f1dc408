"""`evidence case …`: the archive clerk's case lifecycle (create, list, show, link, unlink, attach, snapshot,
close, reopen).

Every command that changes links or case status applies the resulting
retention and legal holds to the WORM store before it returns
(catalog.case_links), and prints what changed (exit 3 if the store refused
a change). JSON goes to stdout with --json.
"""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.table import Table
from sqlmodel import Session

from catalog import (
    RetentionChange,
    case_as_json,
    close_case,
    create_case,
    get_case,
    get_recording,
    link_recording,
    list_cases,
    load_or_create_key,
    reopen_case,
    unlink_recording,
)
from catalog.access import case_in_scope, cases_clause, visible_case
from catalog.case_links import retain_after_link_change
from catalog.case_workspace import case_workspace
from catalog.cases import member_ids
from catalog.custody import CustodyKind, append_event
from catalog.policy_adoption import adopted_policy
from catalog.users import get_user
from evidence.cli.common import (
    caller,
    catalogue,
    console,
    errors,
    in_force,
    parse_date,
    pinned,
    print_json,
    settings,
)
from evidence.cli.options import by_option, json_option
from evidence.cli.retention import report_changes
from ingest.config import Settings
from ingest.services import catalog_engine, open_store
from storage import EvidenceStore

__all__ = ["case"]


def _today(cfg: Settings) -> date:
    return datetime.now(ZoneInfo(cfg.station_tz)).date()


def _apply(session: Session, store: EvidenceStore, cfg: Settings, ids: list[int], by: str) -> list[RetentionChange]:
    return retain_after_link_change(session, store, cfg.retention_policy, ids, by=by)


@click.group()
def case() -> None:
    """Cases (案件): create, link recordings, attach documents, close, reopen."""


@case.command("types")
@json_option
def case_types(as_json: bool) -> None:
    """The case types and how long their files are kept: the adopted retention policy's (`evidence retention
    policy`), or this environment's (EVIDENCE_CASE_TYPES) while none is adopted."""
    with catalogue() as (cfg, session):
        adopted = adopted_policy(session)
        policy = in_force(session, cfg)
    rows = [{"code": t.code, "name": t.name, "name_en": t.name_en, "years": t.years, "permanent": t.permanent}
            for t in policy.case_types.values()]
    if as_json:
        print_json({"routine_months": policy.routine_months, "case_types": rows,
                    "adopted": adopted.terms.fingerprint if adopted is not None else None})
        return
    click.echo(f"routine footage: {policy.routine_months} months after capture")
    for r in rows:
        click.echo(f"{r['code']:18s} {'permanent' if r['permanent'] else str(r['years']) + ' years':10s} "
                   f"{r['name']} / {r['name_en']}")


@case.command("create")
@click.argument("number")
@click.option("--title", required=True)
@click.option("--type", "case_type", required=True, help="Case type code (see `evidence case types`).")
@click.option("--unit", default="", help="Handling unit (承办单位).")
@click.option("--opened", help="Opened date YYYY-MM-DD (default today).")
@by_option
@json_option
def case_create(number: str, title: str, case_type: str, unit: str, opened: str | None, by: str | None,
                as_json: bool) -> None:
    """Open a case. Recordings already stamped with NUMBER are linked to it and held."""
    with catalogue(policy=True) as (cfg, session):
        by = caller(cfg, session, "manage_cases", by).actor
        today = _today(cfg)
        made = create_case(session, number=number, title=title, case_type=case_type, unit=unit,
                           opened_on=parse_date(opened, "--opened") or today, by=by,
                           case_pattern=cfg.case_pattern, policy=cfg.retention_policy, today=today)
        session.commit()
        linked = [r["recording_id"] for r in case_as_json(session, made)["recordings"]]
        changes = _apply(session, open_store(cfg), cfg, linked, by) if linked else []
        data = {"case": case_as_json(session, get_case(session, number), cfg.retention_policy)}
    report_changes(data, changes, as_json,
                   f"case {number} opened ({case_type}); {len(linked)} stamped recording(s) linked")


@case.command("list")
@click.option("--status", type=click.Choice(["open", "closed"]))
@by_option
@json_option
def case_list(status: str | None, by: str | None, as_json: bool) -> None:
    """List cases, newest first."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "cases", by)
        # as the web shows them: the cases they may know of, only what lies in their scope, the rest a count
        rows = [case_in_scope(session, c, identity.scope, in_force(session, cfg))
                for c in list_cases(session, status=status, where=cases_clause(identity.scope))]
    if as_json:
        print_json({"cases": rows})
        return
    table = Table(title=f"{len(rows)} case(s)")
    for column in ("number", "title", "type", "status", "opened", "closed", "recordings", "documents"):
        table.add_column(column, overflow="fold")
    for r in rows:
        outside = r["outside_scope"]
        table.add_row(r["number"], r["title"], r["case_type"], r["status"], r["opened_on"], r["closed_on"] or "-",
                      _count(len(r["recordings"]), outside["recordings"]),
                      _count(len(r["documents"]), outside["documents"]))
    console().print(table)


def _count(shown: int, outside: int) -> str:
    return f"{shown} (+{outside} outside your scope)" if outside else str(shown)


@case.command("show")
@click.argument("number")
@by_option
@json_option
def case_show(number: str, by: str | None, as_json: bool) -> None:
    """Show a case with its recordings, documents and retention."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "cases", by)
        found = visible_case(session, number, identity.scope, actor=identity.actor, via="cli case show")
        data = case_workspace(session, found, identity.scope, in_force(session, cfg),  # as the web's case page
                              reader=None if identity.may("audit") else identity.actor)
        append_event(session, CustodyKind.VIEWED, actor=identity.actor, details={
            "via": "cli case show", "case": number, "os_user": identity.account.login})
        session.commit()
    if as_json:
        print_json(data)
        return
    click.echo(f"{data['number']}  {data['title']}")
    click.echo(f"type {data['case_type']} ({data['case_type_name']}, kept {data['case_retention']} after closing); "
               f"unit {data['unit'] or '-'}; {data['status']}; opened {data['opened_on']}"
               + (f", closed {data['closed_on']} by {data['closed_by']}" if data["closed_on"] else ""))
    click.echo(f"timeline ({len(data['recordings'])} recordings, {len(data['documents'])} documents, by capture "
               "time):")
    for item in data["timeline"]:
        hold = f" HOLD: {'; '.join(item['hold_reasons'])}" if item["legal_hold"] else ""
        click.echo(f"  {(item['captured_start'] or '(no time)')[:19]:<19} {item['recording_id']:>6} "
                   f"{item['media_kind']:<8} {item['original_name']}  [{item['state']}; until "
                   f"{(item['retain_until'] or '-')[:10]}{hold}]  {item['purpose']}")
    for release in data["releases"]:
        click.echo(f"  release {release['id']} ({release['kind']}, {release['state']}) to {release['recipient']}: "
                   f"{release['case_items']} item(s) of this case")
    for package in data["exports"]:
        click.echo(f"  exported {package['at'][:19]} by {package['by']} in {package['package']}: "
                   f"{package['case_items']} item(s) of this case")
    for item in data["unlinked"]:
        click.echo(f"  (unlinked) recording {item['recording_id']} by {item['unlinked_by']}: {item['reason']}")
    outside = data["outside_scope"]
    if any(outside.values()):
        click.echo(f"not shown, outside your scope ({identity.scope.describe()}): {outside['recordings']} "
                   f"recording(s), {outside['documents']} document(s), {outside['unlinked']} past link(s)")


@case.command("link")
@click.argument("number")
@click.argument("refs", nargs=-1, required=True)
@click.option("--purpose", required=True, help="What the recording proves in this case (证明对象).")
@by_option
@json_option
def case_link(number: str, refs: tuple[str, ...], purpose: str, by: str | None, as_json: bool) -> None:
    """Link recordings (ids or SHA-256 prefixes) to a case; they are held while it is open."""
    with catalogue(policy=True) as (cfg, session):
        identity = caller(cfg, session, "manage_cases", by)
        by = identity.actor
        linker = get_user(session, identity.user) if identity.user is not None else None  # None: the station
        found = get_case(session, number)
        recordings = [get_recording(session, ref) for ref in refs]
        for recording in recordings:
            link_recording(session, found, recording, purpose=purpose, by=by, linker=linker)
        session.commit()
        ids = [r.id for r in recordings if r.id is not None]
        changes = _apply(session, open_store(cfg), cfg, ids, by)
        data = {"case": number, "linked": ids}
    report_changes(data, changes, as_json, f"case {number}: linked recording(s) {', '.join(map(str, ids))}")


@case.command("unlink")
@click.argument("number")
@click.argument("ref")
@click.option("--reason", required=True)
@by_option
@json_option
def case_unlink(number: str, ref: str, reason: str, by: str | None, as_json: bool) -> None:
    """End a recording's link to a case. Retention already given is kept; the hold lifts if no open case
    still needs it."""
    with catalogue(policy=True) as (cfg, session):
        by = caller(cfg, session, "manage_cases", by).actor
        found = get_case(session, number)
        recording = get_recording(session, ref)
        unlink_recording(session, found, recording, by=by, reason=reason)
        session.commit()
        assert recording.id is not None
        changes = _apply(session, open_store(cfg), cfg, [recording.id], by)
        data = {"case": number, "unlinked": recording.id}
    report_changes(data, changes, as_json, f"case {number}: recording {data['unlinked']} unlinked")


@case.command("attach")
@click.argument("number")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--title", required=True, help="What the document is (e.g. 询问笔录, 现场检查笔录).")
@click.option("--dated", help="The document's own date YYYY-MM-DD.")
@by_option
@json_option
def case_attach(number: str, files: tuple[Path, ...], title: str, dated: str | None, by: str | None,
                as_json: bool) -> None:
    """Attach text records (PDF, Word, OFD, scans) to a case: hashed, stored in WORM storage, signed."""
    from ingest.documents import attach_document

    with errors():
        cfg = settings()
        day = parse_date(dated, "--dated")
        store = open_store(cfg)
        key = load_or_create_key(cfg.station_key_path)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            pinned(session, cfg)
            by = caller(cfg, session, "manage_cases", by).actor
            found = get_case(session, number)
            results = [attach_document(session, store, cfg, found, path, title=title, by=by, key=key, dated=day)
                       for path in files]
            ids = [r.recording.id for r in results if r.recording.id is not None]
            changes = _apply(session, store, cfg, ids, by)
            data: dict[str, Any] = {"case": number, "documents": [
                {"recording_id": r.recording.id, "name": r.recording.original_name, "sha256": r.recording.sha256,
                 "container": r.recording.container, "integrity": r.recording.integrity_status,
                 "integrity_detail": r.recording.integrity_detail, "new": r.new, "state": r.recording.state}
                for r in results]}
    lines = [f"  {d['recording_id']} {d['name']} ({d['container']}, {d['integrity']}"
             + (f": {d['integrity_detail']}" if d["integrity_detail"] else "") + f") sha256 {d['sha256'][:16]}…"
             for d in data["documents"]]
    report_changes(data, changes, as_json,
                   f"case {number}: {len(lines)} document(s) attached\n" + "\n".join(lines))


@case.command("snapshot")
@click.argument("number")
@click.argument("recording")
@click.option("--at", "at_s", required=True, type=float, help="Position in the video, seconds from its start.")
@click.option("--reason", default="", help="Why the frame is taken (recorded; required where the policy asks).")
@click.option("--purpose", default="", help="What the still shows (its purpose in the case).")
@by_option
@json_option
def case_snapshot(number: str, recording: str, at_s: float, reason: str, purpose: str, by: str | None,
                  as_json: bool) -> None:
    """Keep one frame of a video in the case as a still: decoded from the original (re-hashed first) as PNG,
    stored in WORM storage, signed, and recorded on the video as `snapshot_taken` (as the player's snapshot)."""
    from ingest.snapshots import take_snapshot

    with errors():
        cfg = settings()
        store = open_store(cfg)
        key = load_or_create_key(cfg.station_key_path)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            pinned(session, cfg)
            identity = caller(cfg, session, "manage_cases", by)
            source = get_recording(session, recording)
            still = take_snapshot(session, store, cfg, key, user=get_user(session, identity.actor),
                                  recording=source, case=get_case(session, number), at_s=at_s, reason=reason,
                                  purpose=purpose)
            assert still.recording.id is not None
            changes = _apply(session, store, cfg, [still.recording.id], identity.actor)
            data: dict[str, Any] = {"case": number, "recording_id": source.id, "at_s": still.at_s,
                                    "still": {"recording_id": still.recording.id, "sha256": still.recording.sha256,
                                              "name": still.recording.original_name, "new": still.new}}
    report_changes(data, changes, as_json,
                   f"case {number}: the frame of recording {data['recording_id']} at {still.at_s:.3f} s is item "
                   f"{data['still']['recording_id']} ({data['still']['name']}, sha256 {data['still']['sha256'][:16]}…)")


@case.command("close")
@click.argument("number")
@click.option("--on", "closed_on", help="Closing date YYYY-MM-DD (default today).")
@by_option
@json_option
def case_close(number: str, closed_on: str | None, by: str | None, as_json: bool) -> None:
    """Close a case: its records are kept for the case type's period after the closing date."""
    with catalogue(policy=True) as (cfg, session):
        by = caller(cfg, session, "manage_cases", by).actor
        found = get_case(session, number)
        today = _today(cfg)
        close_case(session, found, by=by, closed_on=parse_date(closed_on, "--on") or today, today=today)
        session.commit()
        assert found.id is not None
        ids = member_ids(session, found)
        changes = _apply(session, open_store(cfg), cfg, ids, by)
        data = {"case": case_as_json(session, get_case(session, number), cfg.retention_policy)}
    report_changes(data, changes, as_json, f"case {number} closed on {data['case']['closed_on']}")


@case.command("reopen")
@click.argument("number")
@click.option("--reason", required=True)
@by_option
@json_option
def case_reopen(number: str, reason: str, by: str | None, as_json: bool) -> None:
    """Reopen a closed case: its records are held again (retention already given is kept)."""
    with catalogue(policy=True) as (cfg, session):
        by = caller(cfg, session, "manage_cases", by).actor
        found = get_case(session, number)
        reopen_case(session, found, by=by, reason=reason)
        session.commit()
        ids = member_ids(session, found)
        changes = _apply(session, open_store(cfg), cfg, ids, by)
        data = {"case": case_as_json(session, get_case(session, number), cfg.retention_policy)}
    report_changes(data, changes, as_json, f"case {number} reopened")
