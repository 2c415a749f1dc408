"""`evidence case …` and `evidence retention …`: the archive clerk's case lifecycle, retention and disposal.

Every command that changes links or case status applies the resulting
retention and legal holds to the WORM store before it returns, and prints
what changed. JSON goes to stdout with --json.
"""
from __future__ import annotations

import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.table import Table
from sqlmodel import Session, col, select

from catalog import (
    DisposalBatch,
    RetentionChange,
    Signer,
    apply_retention,
    approve_batch,
    case_as_json,
    cases_of,
    close_case,
    create_case,
    decide_for,
    get_case,
    get_recording,
    link_recording,
    list_cases,
    load_or_create_key,
    plan_disposal,
    reopen_case,
    start_sweep,
    unlink_recording,
)
from catalog.access import BatchInScope, case_in_scope, check_access, disposal_in_scope
from catalog.cases import member_ids
from catalog.custody import CustodyKind, append_event
from catalog.models import Disposal
from catalog.types import utcnow
from evidence.cli.common import caller, console, errors, parse_date, parse_time, person, print_json, settings
from ingest.config import Settings
from ingest.services import catalog_engine, open_store
from storage import EvidenceStore

__all__ = ["case", "retention"]


def _today(cfg: Settings) -> date:
    return datetime.now(ZoneInfo(cfg.station_tz)).date()


def _apply(session: Session, store: EvidenceStore, cfg: Settings, ids: list[int], by: str) -> list[RetentionChange]:
    return apply_retention(session, store, cfg.retention_policy, actor=by, recording_ids=ids)


def _report(data: dict[str, Any], changes: list[RetentionChange], as_json: bool, headline: str) -> None:
    failed = [c for c in changes if c.error]
    if as_json:
        print_json({**data, "retention": [c.as_json() for c in changes]})
    else:
        click.echo(headline)
        _print_changes(changes)
    if failed:
        sys.exit(3)


def _print_changes(changes: list[RetentionChange]) -> None:
    for c in changes:
        hold = "legal hold ON" if c.new_hold else "no legal hold"
        until = c.new_until.isoformat()[:19]
        line = f"  recording {c.recording_id}: retain until {until} ({c.rule}); {hold}"
        if c.hold_reasons:
            line += f" ({'; '.join(c.hold_reasons)})"
        if c.notes:
            line += f"  ({'; '.join(c.notes)})"
        if c.error:
            line += f"  ERROR: {c.error}"
        click.echo(line)


@click.group()
def case() -> None:
    """Cases (案件): create, link recordings, attach documents, close, reopen."""


@case.command("types")
@click.option("--json", "as_json", is_flag=True)
def case_types(as_json: bool) -> None:
    """The case types and how long their files are kept (EVIDENCE_CASE_TYPES)."""
    with errors():
        cfg = settings()
    rows = [{"code": t.code, "name": t.name, "name_en": t.name_en, "years": t.years, "permanent": t.permanent}
            for t in cfg.case_types.values()]
    if as_json:
        print_json({"routine_months": cfg.routine_retention_months, "case_types": rows})
        return
    click.echo(f"routine footage: {cfg.routine_retention_months} months after capture")
    for r in rows:
        click.echo(f"{r['code']:18s} {'permanent' if r['permanent'] else str(r['years']) + ' years':10s} "
                   f"{r['name']} / {r['name_en']}")


@case.command("create")
@click.argument("number")
@click.option("--title", required=True)
@click.option("--type", "case_type", required=True, help="Case type code (see `evidence case types`).")
@click.option("--unit", default="", help="Handling unit (承办单位).")
@click.option("--opened", help="Opened date YYYY-MM-DD (default today).")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def case_create(number: str, title: str, case_type: str, unit: str, opened: str | None, by: str | None,
                as_json: bool) -> None:
    """Open a case. Recordings already stamped with NUMBER are linked to it and held."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            by = caller(cfg, session, "manage_cases", by).actor
            today = _today(cfg)
            made = create_case(session, number=number, title=title, case_type=case_type, unit=unit,
                               opened_on=parse_date(opened, "--opened") or today, by=by,
                               case_pattern=cfg.case_pattern, policy=cfg.retention_policy, today=today)
            session.commit()
            linked = [r["recording_id"] for r in case_as_json(session, made)["recordings"]]
            changes = _apply(session, open_store(cfg), cfg, linked, by) if linked else []
            data = {"case": case_as_json(session, get_case(session, number), cfg.retention_policy)}
    _report(data, changes, as_json, f"case {number} opened ({case_type}); {len(linked)} stamped recording(s) linked")


@case.command("list")
@click.option("--status", type=click.Choice(["open", "closed"]))
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def case_list(status: str | None, by: str | None, as_json: bool) -> None:
    """List cases, newest first."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "cases", by)
            # as the web shows them: only what lies in the caller's scope, the rest a count (catalog.access)
            rows = [case_in_scope(session, c, identity.scope, cfg.retention_policy)
                    for c in list_cases(session, status=status)]
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
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def case_show(number: str, by: str | None, as_json: bool) -> None:
    """Show a case with its recordings, documents and retention."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "cases", by)
            found = get_case(session, number)
            data = case_in_scope(session, found, identity.scope, cfg.retention_policy)  # as the web's case page
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
    for heading in ("recordings", "documents"):
        click.echo(f"{heading}:")
        for item in data[heading]:
            hold = " HOLD" if item["legal_hold"] else ""
            click.echo(f"  {item['recording_id']:>6} {item['original_name']}  [{item['state']}; until "
                       f"{(item['retain_until'] or '-')[:10]}{hold}]  {item['purpose']}")
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
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def case_link(number: str, refs: tuple[str, ...], purpose: str, by: str | None, as_json: bool) -> None:
    """Link recordings (ids or SHA-256 prefixes) to a case; they are held while it is open."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            by = caller(cfg, session, "manage_cases", by).actor
            found = get_case(session, number)
            recordings = [get_recording(session, ref) for ref in refs]
            for recording in recordings:
                link_recording(session, found, recording, purpose=purpose, by=by)
            session.commit()
            ids = [r.id for r in recordings if r.id is not None]
            changes = _apply(session, open_store(cfg), cfg, ids, by)
            data = {"case": number, "linked": ids}
    _report(data, changes, as_json, f"case {number}: linked recording(s) {', '.join(map(str, ids))}")


@case.command("unlink")
@click.argument("number")
@click.argument("ref")
@click.option("--reason", required=True)
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def case_unlink(number: str, ref: str, reason: str, by: str | None, as_json: bool) -> None:
    """End a recording's link to a case. Retention already given is kept; the hold lifts if no open case
    still needs it."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            by = caller(cfg, session, "manage_cases", by).actor
            found = get_case(session, number)
            recording = get_recording(session, ref)
            unlink_recording(session, found, recording, by=by, reason=reason)
            session.commit()
            assert recording.id is not None
            changes = _apply(session, open_store(cfg), cfg, [recording.id], by)
            data = {"case": number, "unlinked": recording.id}
    _report(data, changes, as_json, f"case {number}: recording {data['unlinked']} unlinked")


@case.command("attach")
@click.argument("number")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--title", required=True, help="What the document is (e.g. 询问笔录, 现场检查笔录).")
@click.option("--dated", help="The document's own date YYYY-MM-DD.")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
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
    _report(data, changes, as_json, f"case {number}: {len(lines)} document(s) attached\n" + "\n".join(lines))


@case.command("close")
@click.argument("number")
@click.option("--on", "closed_on", help="Closing date YYYY-MM-DD (default today).")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def case_close(number: str, closed_on: str | None, by: str | None, as_json: bool) -> None:
    """Close a case: its records are kept for the case type's period after the closing date."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            by = caller(cfg, session, "manage_cases", by).actor
            found = get_case(session, number)
            today = _today(cfg)
            close_case(session, found, by=by, closed_on=parse_date(closed_on, "--on") or today, today=today)
            session.commit()
            assert found.id is not None
            ids = member_ids(session, found)
            changes = _apply(session, open_store(cfg), cfg, ids, by)
            data = {"case": case_as_json(session, get_case(session, number), cfg.retention_policy)}
    _report(data, changes, as_json, f"case {number} closed on {data['case']['closed_on']}")


@case.command("reopen")
@click.argument("number")
@click.option("--reason", required=True)
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def case_reopen(number: str, reason: str, by: str | None, as_json: bool) -> None:
    """Reopen a closed case: its records are held again (retention already given is kept)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            by = caller(cfg, session, "manage_cases", by).actor
            found = get_case(session, number)
            reopen_case(session, found, by=by, reason=reason)
            session.commit()
            ids = member_ids(session, found)
            changes = _apply(session, open_store(cfg), cfg, ids, by)
            data = {"case": case_as_json(session, get_case(session, number), cfg.retention_policy)}
    _report(data, changes, as_json, f"case {number} reopened")


# -- retention -----------------------------------------------------------------------------------------------


@click.group()
def retention() -> None:
    """Retention: show, apply to the store, plan and carry out lawful disposal."""


@retention.command("show")
@click.argument("ref")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--reason", help="Why you look (调阅事由); required when EVIDENCE_ACCESS_REASON=view.")
@click.option("--json", "as_json", is_flag=True)
def retention_show(ref: str, by: str | None, reason: str | None, as_json: bool) -> None:
    """The retention a recording has, the one the rules give it, and why (only of a recording you may view)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "retention", by)
            recording = get_recording(session, ref)
            assert recording.id is not None
            # its retention is metadata of the recording: the caller must be one who may view it (role and scope;
            # a refusal is an `access_refused` event), as for `evidence show`
            check_access(session, person(session, identity), [recording], step="view", reason=reason,
                         policy=cfg.access_reason)
            decision = decide_for(session, [recording], cfg.retention_policy)[recording.id]
            data: dict[str, Any] = {
                "recording_id": recording.id, "sha256": recording.sha256, "state": recording.state,
                "retain_until": recording.retain_until.isoformat() if recording.retain_until else None,
                "legal_hold": recording.legal_hold, "rule": recording.retention_rule,
                "cases": [{"number": c.number, "status": c.status, "case_type": c.case_type, "purpose": link.purpose}
                          for c, link in cases_of(session, recording.id)],
                "decision": {"retain_until": decision.retain_until.isoformat(), "legal_hold": decision.legal_hold,
                             "rule": decision.rule, "hold_reasons": list(decision.hold_reasons)},
                "in_line_with_rules": (recording.retain_until == decision.retain_until
                                       and recording.legal_hold == decision.legal_hold),
            }
    if as_json:
        print_json(data)
        return
    click.echo(f"recording {data['recording_id']} ({data['state']}): retain until {data['retain_until']}, "
               f"legal hold {'ON' if data['legal_hold'] else 'off'}; rule: {data['rule']}")
    d = data["decision"]
    click.echo(f"rules say: until {d['retain_until']}, hold {'ON' if d['legal_hold'] else 'off'} ({d['rule']}"
               + (f"; {'; '.join(d['hold_reasons'])}" if d["hold_reasons"] else "") + ")")
    if not data["in_line_with_rules"]:
        click.echo("not yet applied: run `evidence retention apply`")


@retention.command("apply")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--check-store", is_flag=True,
              help="Also read every stored object's retention and hold back (one HEAD each) and repair drift.")
@click.option("--json", "as_json", is_flag=True)
def retention_apply(by: str | None, check_store: bool, as_json: bool) -> None:
    """Bring every recording's retention and legal hold in line with the rules (idempotent; run it daily)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            actor = caller(cfg, session, "apply_retention", by).actor
            changes = apply_retention(session, open_store(cfg), cfg.retention_policy, actor=actor,
                                      check_store=check_store)
    _report({"changed": len(changes)}, changes, as_json, f"{len(changes)} recording(s) changed")


def _as_of(value: str | None, cfg: Settings) -> datetime:
    if value is None:
        return utcnow()
    if "T" in value:
        parsed = parse_time(value, "--as-of")
        assert parsed is not None
        return parsed
    day = parse_date(value, "--as-of")
    assert day is not None
    return datetime.combine(day, time(), tzinfo=ZoneInfo(cfg.station_tz))


@retention.command("plan")
@click.option("--as-of", "as_of", help="Date (YYYY-MM-DD, agency zone) or ISO time with zone; default now.")
@click.option("--within", "within_days", type=click.IntRange(0, 36_500), default=0, show_default=True,
              help="Also list what becomes disposable within this many days after --as-of.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def retention_plan(as_of: str | None, within_days: int, as_json: bool, by: str | None) -> None:
    """What is disposable (due), becomes so soon (upcoming), or would be but is held — and by which rule."""
    with errors():
        cfg = settings()
        when = _as_of(as_of, cfg)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "retention", by)
            # as the web's retention page: nothing of a recording outside the caller's scope, only a count
            seen = disposal_in_scope(session, identity.scope, plan=plan_disposal(
                session, cfg.retention_policy, as_of=when, within_days=within_days))
            items = seen.plan
    if as_json:
        print_json({"as_of": when.isoformat(), "within_days": within_days, "items": [i.as_json() for i in items],
                    "outside_scope": seen.hidden})
        return
    table = Table(title=f"disposal plan as of {when.isoformat()[:19]} (+{within_days} days)")
    for column in ("id", "name", "kind", "retain until", "status", "rule / hold"):
        table.add_column(column, overflow="fold")
    for i in items:
        table.add_row(str(i.recording_id), i.original_name, i.media_kind, i.retain_until.isoformat()[:19], i.status,
                      "; ".join(i.hold_reasons) if i.hold_reasons else i.rule)
    console().print(table)
    if seen.hidden:
        click.echo(f"{seen.hidden} recording(s) outside your scope ({identity.scope.describe()}) not shown")


def _batch_json(session: Session, batch: DisposalBatch, seen: BatchInScope | None = None) -> dict[str, Any]:
    """A batch as JSON; with *seen* (catalog.access.disposal_in_scope) only the items and outcome lines in the
    caller's scope, and `outside_scope` counting the items left out."""
    view = seen or BatchInScope(batch, list(batch.items), list(batch.outcome), 0)
    return {"batch": batch.id, "status": batch.status, "proposed_by": batch.created_by,
            "proposed_at": batch.created_at.isoformat() if batch.created_at else None,
            "approved_by": batch.approved_by, "items": view.items, "outcome": view.outcome,
            "outside_scope": view.hidden, "record_key": batch.record_key,
            "tombstones": len(list(session.exec(select(Disposal.id).where(Disposal.batch_id == batch.id,
                                                                          col(Disposal.recording_id).in_(
                                                                              [int(i["recording_id"])
                                                                               for i in view.items])))))}


def _print_batch(data: dict[str, Any]) -> None:
    click.echo(f"disposal batch {data['batch']}: {data['status']} (proposed by {data['proposed_by']}"
               + (f", approved by {data['approved_by']}" if data["approved_by"] else "") + ")")
    if data["status"] == "awaiting_approval":
        for item in data["items"]:
            click.echo(f"  due: recording {item['recording_id']} {item['original_name']} ({item['rule']})")
    if data.get("outside_scope"):
        click.echo(f"  {data['outside_scope']} item(s) outside your scope not shown")
        click.echo(f"approve with: evidence retention approve {data['batch']} (run by another user: the approver)")
    for o in data["outcome"]:
        click.echo(f"  {o.get('result')}: recording {o.get('recording_id', '-')} {o.get('reason') or ''}")
    if data["record_key"]:
        click.echo(f"signed disposal record: {data['record_key']}")


def _exit_for(batch: DisposalBatch | None) -> None:
    if batch is not None and batch.status == "partial":
        sys.exit(1)


@retention.command("sweep")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def retention_sweep(by: str | None, as_json: bool) -> None:
    """Dispose of what is due. With EVIDENCE_DISPOSAL_APPROVAL=required (the default) this proposes a batch
    that another named person approves with `evidence retention approve`."""
    with errors():
        cfg = settings()
        store = open_store(cfg)
        signer = Signer(cfg.station, load_or_create_key(cfg.station_key_path))
        with catalog_engine(cfg) as engine, Session(engine) as session:
            by = caller(cfg, session, "propose_disposal", by).actor
            batch = start_sweep(session, store, cfg.retention_policy, now=utcnow(), by=by,
                                approval_required=cfg.disposal_approval == "required", signer=signer)
            data = _batch_json(session, batch) if batch else {"batch": None, "status": "nothing due"}
    if as_json:
        print_json(data)
    elif batch is None:
        click.echo("nothing is due for disposal")
    else:
        _print_batch(data)
    _exit_for(batch)


@retention.command("approve")
@click.argument("batch_id", type=int)
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def retention_approve(batch_id: int, by: str | None, as_json: bool) -> None:
    """Approve a proposed disposal batch and carry it out."""
    with errors():
        cfg = settings()
        store = open_store(cfg)
        signer = Signer(cfg.station, load_or_create_key(cfg.station_key_path))
        with catalog_engine(cfg) as engine, Session(engine) as session:
            by = caller(cfg, session, "approve_disposal", by).actor
            batch = approve_batch(session, store, cfg.retention_policy, batch_id, by=by, now=utcnow(), signer=signer)
            data = _batch_json(session, batch)
    if as_json:
        print_json(data)
    else:
        _print_batch(data)
    _exit_for(batch)


@retention.command("batches")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def retention_batches(by: str | None, as_json: bool) -> None:
    """Every disposal batch, newest first, with its outcome."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "retention", by)
            batches = list(session.exec(select(DisposalBatch).order_by(col(DisposalBatch.id).desc())))
            seen = disposal_in_scope(session, identity.scope, batches=batches)  # as the web's retention page
            rows = [_batch_json(session, view.batch, view) for view in seen.batches]
    if as_json:
        print_json({"batches": rows})
        return
    for row in rows:
        _print_batch(row)

