"""`evidence case …`: the archive clerk's case lifecycle (create, list, show, link, unlink, attach, snapshot,
close, reopen) and its actions (`evidence case action add|import|list|types`: the action checklist).

Every command that changes links or case status applies the resulting
retention and legal holds to the WORM store before it returns
(catalog.case_links), and prints what changed (exit 3 if the store refused
a change). JSON goes to stdout with --json.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
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
from catalog.checklist import case_checklist, import_actions, record_action, unit_checklist
from catalog.checklist_import import MAX_IMPORT_BYTES, ActionsInvalid, officers_text
from catalog.csvsafe import csv_chunks
from catalog.custody import CustodyKind, append_event
from catalog.policy_adoption import adopted_policy
from catalog.said import say
from catalog.types import utcnow
from catalog.users import get_user
from evidence.cli.common import (
    caller,
    catalogue,
    console,
    errors,
    in_force,
    parse_date,
    parse_time,
    person,
    pinned,
    print_json,
    print_result,
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


@case.group("action")
def case_action() -> None:
    """A case's enforcement actions (音像记录事项清单): were they recorded from start to end? Entered by a clerk or
    imported from a case-handling system's JSON or CSV export (docs/checklist.md)."""


def _local(value: str | None, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(value).astimezone(zone).isoformat(sep=" ", timespec="seconds") if value else "-"


@case_action.command("types")
@json_option
def case_action_types(as_json: bool) -> None:
    """The action checklist in force (EVIDENCE_ACTION_CHECKLIST) and the tolerance (EVIDENCE_ACTION_TOLERANCE_S)."""
    with errors():
        cfg = settings()
    data = {**cfg.action_checklist.as_json(), "tolerance_s": cfg.action_tolerance_s}
    if as_json:
        print_json(data)
        return
    click.echo(f"action checklist: {data['source']}; tolerance {cfg.action_tolerance_s:g} s")
    for t in data["action_types"]:
        click.echo(f"{t['code']:14s} {'full recording' if t['full_recording'] else '-':15s} {t['name']} / "
                   f"{t['name_en']}")


@case_action.command("add")
@click.argument("number")
@click.option("--type", "action_type", required=True, help="Action type: its code or name (`evidence case action "
              "types`).")
@click.option("--start", required=True, help="When it began, ISO 8601 with its offset (2026-11-20T09:00+08:00).")
@click.option("--end", required=True, help="When it ended, the same way.")
@click.option("--place", default="", help="Where (地点).")
@click.option("--officer", "officers", multiple=True, help="An officer number (警号) taking part; repeat for more.")
@click.option("--note", default="")
@click.option("--external-id", help="The case-handling system's id of the action (a later import matches it).")
@by_option
@json_option
def case_action_add(number: str, action_type: str, start: str, end: str, place: str, officers: tuple[str, ...],
                    note: str, external_id: str | None, by: str | None, as_json: bool) -> None:
    """Record an action of case NUMBER with its times (a `case_action_recorded` custody event)."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "manage_cases", by)
        found = get_case(session, number)
        action = record_action(session, person(session, identity), found, action_type=action_type,
                               start=parse_time(start, "--start") or utcnow(), end=parse_time(end, "--end") or utcnow(),
                               place=place, officers=officers, note=note, external_id=external_id,
                               checklist=cfg.action_checklist, now=utcnow())
        session.commit()
        report = case_checklist(session, found, identity.scope, checklist=cfg.action_checklist,
                                tolerance_s=cfg.action_tolerance_s)
        data = next(r.as_json() for r in report.actions if r.action.id == action.id)
    print_result({"case": number, "action": data}, as_json,
                 f"case {number}: action {data['id']} ({data['type_name']}) recorded: {data['verdict']}")


@case_action.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--case", "number", help="The case every row is of (rows may then leave the case column out).")
@click.option("--zone", help="The zone of times written without an offset, e.g. Asia/Shanghai (without it they are "
              "refused).")
@click.option("--encoding", default="utf-8", show_default=True, help="The file's encoding (e.g. gb18030).")
@click.option("--corrections", is_flag=True, help="Change actions recorded already (by external id) whose facts "
              "the file gives otherwise; without it such rows are refused.")
@by_option
@json_option
def case_action_import(file: Path, number: str | None, zone: str | None, encoding: str, corrections: bool,
                       by: str | None, as_json: bool) -> None:
    """Import actions from a case-handling system's JSON (*.json) or CSV export: all or nothing, every bad row
    named; importing the same file again adds nothing."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "manage_cases", by)
        user = person(session, identity)
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ValueError, KeyError):
                raise click.BadParameter(f"{zone!r} is not a time zone", param_hint="--zone") from None
        size = file.stat().st_size
        if size > MAX_IMPORT_BYTES:  # never read a file this large into memory
            raise ActionsInvalid([say("the file is {size} bytes; at most {max}", size=size, max=MAX_IMPORT_BYTES)],
                                 source=file.name)
        with file.open("rb") as fh:
            data = fh.read(MAX_IMPORT_BYTES + 1)
        result = import_actions(session, user, data, file_name=file.name, checklist=cfg.action_checklist,
                                now=utcnow(), case_number=number, zone=zone, encoding=encoding,
                                corrections=corrections)
        session.commit()
        shown = result.as_json()
    print_result(shown, as_json, f"{file.name}: {len(shown['added'])} action(s) added, {len(shown['unchanged'])} "
                 f"recorded already, {len(shown['corrected'])} corrected, {len(shown['identified'])} given their "
                 "external id")


_CSV_HEADER = ("案件编号", "外部编号", "事项类型", "开始时间", "结束时间", "地点", "执法人员", "备注", "结论",
               "已记录秒数", "时长秒数", "录像")


@case_action.command("list")
@click.argument("number", required=False)
@click.option("--unit", help="Only cases of this handling unit (承办单位).")
@click.option("--review", is_flag=True, help="Only cases for legal review (法制审核): a required action not covered.")
@click.option("--from", "first", help="Only actions that began on or after this day (YYYY-MM-DD, the agency's).")
@click.option("--to", "last", help="... and on or before this day.")
@click.option("--csv", "as_csv", is_flag=True, help="A case's actions as CSV (UTF-8 with BOM, for a spreadsheet).")
@by_option
@json_option
def case_action_list(number: str | None, unit: str | None, review: bool, first: str | None, last: str | None,
                     as_csv: bool, by: str | None, as_json: bool) -> None:
    """A case's actions with their verdicts (covered, partly_covered, not_recorded), or without NUMBER the cases
    with actions, counted by verdict, and whether each goes to legal review."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "cases", by)
        zone = ZoneInfo(cfg.station_tz)
        if number is None:
            since, until = _days(parse_date(first, "--from"), parse_date(last, "--to"), zone)
            rows = [s.as_json() for s in unit_checklist(
                session, identity.scope, checklist=cfg.action_checklist, tolerance_s=cfg.action_tolerance_s,
                unit=unit, since=since, until=until, review_only=review)]
            data: dict[str, Any] = {"cases": rows}
        else:
            found = visible_case(session, number, identity.scope, actor=identity.actor, via="cli case action list")
            data = case_checklist(session, found, identity.scope, checklist=cfg.action_checklist,
                                  tolerance_s=cfg.action_tolerance_s).as_json()
            append_event(session, CustodyKind.VIEWED, actor=identity.actor, details={
                "via": "cli case action list", "case": number, "os_user": identity.account.login})
            session.commit()
    if as_csv and number is not None:
        lines = [[number, a["external_id"], a["type_name"], _local(a["start"], zone), _local(a["end"], zone),
                 a["place"], officers_text(a["officers"]), a["note"], a["verdict"], a["covered_s"], a["duration_s"],
                 " ".join(map(str, a["recordings"]))] for a in data["actions"]]
        for chunk in csv_chunks(_CSV_HEADER, lines):
            click.echo(chunk, nl=False)
        return
    if as_json:
        print_json(data)
        return
    if number is None:
        _print_cases(data["cases"])
        return
    flag = "needs legal review (法制审核)" if data["needs_legal_review"] else "every required action covered"
    click.echo(f"{data['case']}  {data['title']}: {flag}")
    for a in data["actions"]:
        click.echo(f"  {a['id']:>5} {_local(a['start'], zone)} → {_local(a['end'], zone)[11:]}  {a['type_name']}"
                   f"{' *' if a['full_recording'] else ''}  [{a['verdict']}] {a['covered_s']:g}/{a['duration_s']:g} s"
                   f"  recordings {', '.join(map(str, a['recordings'])) or '-'}"
                   + (f" (+{a['recordings_outside_scope']} outside your scope)" if a["recordings_outside_scope"]
                      else ""))
        for gap in a["uncovered"]:
            click.echo(f"        not recorded {_local(gap['from'], zone)[11:]} → {_local(gap['to'], zone)[11:]}")
        if a.get("uncovered_withheld"):
            click.echo(f"        gaps not shown: {a['uncovered_withheld']}")
        if a.get("no_end"):
            click.echo(f"        no end time, not counted: {', '.join(map(str, a['no_end']))}")
        if a["implausible"]:
            click.echo(f"        time not to be trusted, not counted: {', '.join(map(str, a['implausible']))}")
        if a["candidates"]:
            click.echo(f"        its officers' recordings not in the case: {', '.join(map(str, a['candidates']))}")
    click.echo("  * needs full recording (全过程记录)")


def _days(first: date | None, last: date | None, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    since = datetime.combine(first, time(), zone) if first else None
    until = datetime.combine(last + timedelta(days=1), time(), zone) if last else None
    return since, until


def _print_cases(rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"{len(rows)} case(s) with actions")
    for column in ("case", "unit", "status", "covered", "partly", "not recorded", "legal review"):
        table.add_column(column, overflow="fold")
    for r in rows:
        counts = r["required_counts"]
        table.add_row(r["case"], r["unit"] or "-", r["status"], str(counts["covered"]), str(counts["partly_covered"]),
                      str(counts["not_recorded"]), "法制审核" if r["needs_legal_review"] else "-")
    console().print(table)
