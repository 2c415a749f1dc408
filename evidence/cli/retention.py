"""`evidence retention …`: what retention a recording has and why, applying the rules to the store, and lawful
disposal (plan, sweep, approve, batches).

A command that changes retention prints each change (`report_changes`, also used by `evidence case …`) and
exits 3 when the store refused one; a disposal batch left partial exits 1.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.table import Table
from sqlmodel import Session

from catalog import (
    DisposalBatch,
    RetentionChange,
    Signer,
    apply_retention,
    approve_batch,
    cases_of,
    decide_for,
    get_recording,
    load_or_create_key,
    plan_disposal,
    start_sweep,
)
from catalog.access import BatchInScope, check_access, disposal_in_scope
from catalog.listing import count_tombstones, disposal_batches
from catalog.models import Recording
from catalog.policy_adoption import adopt_policy, adopted_policy, policy_differences
from catalog.retention import RetentionDecision
from catalog.types import utcnow
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
    settings,
)
from evidence.cli.options import by_option, json_option, view_reason_option
from ingest.config import Settings
from ingest.services import catalog_engine, open_store
from storage import EvidenceStore

__all__ = ["report_changes", "retention"]


def report_changes(data: dict[str, Any], changes: list[RetentionChange], as_json: bool, headline: str) -> None:
    """Print *data* with the retention *changes* (JSON, or *headline* and a line per change); exit 3 if the store
    refused any of them."""
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
def retention() -> None:
    """Retention: show, apply to the store, plan and carry out lawful disposal."""


def _retention_json(session: Session, recording: Recording, decision: RetentionDecision) -> dict[str, Any]:
    assert recording.id is not None
    return {
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


@retention.command("show")
@click.argument("ref")
@by_option
@view_reason_option
@json_option
def retention_show(ref: str, by: str | None, reason: str | None, as_json: bool) -> None:
    """The retention a recording has, the one the rules give it, and why (only of a recording you may view)."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "retention", by)
        recording = get_recording(session, ref)
        assert recording.id is not None
        # its retention is metadata of the recording: the caller must be one who may view it (role and scope;
        # a refusal is an `access_refused` event), as for `evidence show`
        check_access(session, person(session, identity), [recording], step="view", reason=reason,
                     policy=cfg.access_reason)
        decision = decide_for(session, [recording], in_force(session, cfg))[recording.id]
        data = _retention_json(session, recording, decision)
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


@retention.command("policy")
@json_option
def retention_policy(as_json: bool) -> None:
    """The retention policy the catalogue adopted (terms, fingerprint, who and when) and whether this
    environment's terms (EVIDENCE_ROUTINE_RETENTION_MONTHS, _STATION_TZ, _CASE_TYPES, _DISPOSAL_APPROVAL) are
    the same. Exit 2 when they differ."""
    with catalogue() as (cfg, session):
        adopted = adopted_policy(session)
        here = cfg.policy_terms
        differences = policy_differences(adopted.terms, here) if adopted is not None else []
        data = {"adopted": adopted.as_json() if adopted is not None else None,
                "here": {"fingerprint": here.fingerprint, "terms": here.as_json()}, "differences": differences}
    if as_json:
        print_json(data)
    elif adopted is None:
        click.echo(f"no retention policy adopted yet; the station adopts its terms at its first start, or an "
                   f"administrator with `evidence retention adopt` (this environment's: {here.fingerprint})")
    else:
        terms = adopted.terms
        click.echo(f"adopted {adopted.at.isoformat(timespec='seconds')} by {adopted.by} (event {adopted.event_id}; "
                   f"{adopted.reason}): fingerprint {terms.fingerprint}")
        click.echo(f"  routine {terms.routine_months} months, zone {terms.zone}, disposal approval "
                   f"{terms.disposal_approval}")
        for kind in terms.case_types:
            click.echo(f"  case type {kind.code}: {kind.describe()} ({kind.name} / {kind.name_en})")
        click.echo("this environment: the same terms" if not differences else
                   "this environment differs: " + "; ".join(differences))
    if differences:
        sys.exit(2)


@retention.command("adopt")
@click.option("--reason", required=True, help="Why the policy changes (the regulation, the decision; recorded).")
@by_option
@json_option
def retention_adopt(reason: str, by: str | None, as_json: bool) -> None:
    """Adopt this environment's retention policy as the one in force (administrators; a custody event stating
    the terms whole and what they replace). Every station, worker and web app must then run with these terms."""
    with catalogue() as (cfg, session):
        actor = caller(cfg, session, "admin", by).actor
        before = adopted_policy(session)
        adopted = adopt_policy(session, cfg.policy_terms, by=actor, reason=reason)
        session.commit()
        changes = policy_differences(before.terms, adopted.terms) if before is not None else []
        data = {**adopted.as_json(), "changed": before is None or before.event_id != adopted.event_id,
                "changes": changes}
    if as_json:
        print_json(data)
        return
    if not data["changed"]:
        click.echo(f"already in force: fingerprint {adopted.terms.fingerprint} (event {adopted.event_id})")
        return
    click.echo(f"adopted: fingerprint {adopted.terms.fingerprint} (event {adopted.event_id})"
               + (": " + "; ".join(changes) if changes else ""))
    click.echo("restart stations, workers and the web app with these terms; `evidence retention apply` brings "
               "every recording in line now")


@retention.command("apply")
@by_option
@click.option("--check-store", is_flag=True,
              help="Also read every stored object's retention and hold back (one HEAD each) and repair drift.")
@json_option
def retention_apply(by: str | None, check_store: bool, as_json: bool) -> None:
    """Bring every recording's retention and legal hold in line with the rules (idempotent; run it daily)."""
    with catalogue(policy=True) as (cfg, session):
        actor = caller(cfg, session, "apply_retention", by).actor
        changes = apply_retention(session, open_store(cfg), cfg.retention_policy, actor=actor,
                                  check_store=check_store)
    report_changes({"changed": len(changes)}, changes, as_json, f"{len(changes)} recording(s) changed")


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
@json_option
@by_option
def retention_plan(as_of: str | None, within_days: int, as_json: bool, by: str | None) -> None:
    """What is disposable (due), becomes so soon (upcoming), or would be but is held — and by which rule."""
    with errors():
        cfg = settings()
        when = _as_of(as_of, cfg)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "retention", by)
            # as the web's retention page: nothing of a recording outside the caller's scope, only a count
            seen = disposal_in_scope(session, identity.scope, plan=plan_disposal(
                session, in_force(session, cfg), as_of=when, within_days=within_days))
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
            "tombstones": count_tombstones(session, batch, [int(i["recording_id"]) for i in view.items])}


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


#: One disposal step: (session, store, settings, the station's signer, the caller) -> the batch it made or changed.
_Step = Callable[[Session, EvidenceStore, Settings, Signer, str], DisposalBatch | None]


def _disposal_step(action: str, by: str | None, as_json: bool, step: _Step) -> None:
    """Run *step* as the caller (whose roles must allow *action*) with the store and the station's signing key,
    print the batch it returns (or that nothing was due), and exit 1 if the batch was left partial."""
    with errors():
        cfg = settings()
        store = open_store(cfg)
        signer = Signer(cfg.station, load_or_create_key(cfg.station_key_path), tsa=cfg)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            pinned(session, cfg)
            batch = step(session, store, cfg, signer, caller(cfg, session, action, by).actor)
            data = _batch_json(session, batch) if batch else {"batch": None, "status": "nothing due"}
    if as_json:
        print_json(data)
    elif batch is None:
        click.echo("nothing is due for disposal")
    else:
        _print_batch(data)
    if batch is not None and batch.status == "partial":
        sys.exit(1)


@retention.command("sweep")
@by_option
@json_option
def retention_sweep(by: str | None, as_json: bool) -> None:
    """Dispose of what is due. With EVIDENCE_DISPOSAL_APPROVAL=required (the default) this proposes a batch
    that another named person approves with `evidence retention approve`."""
    _disposal_step("propose_disposal", by, as_json, lambda session, store, cfg, signer, actor: start_sweep(
        session, store, cfg.retention_policy, now=utcnow(), by=actor, approval_required=cfg.approval_required,
        signer=signer))


@retention.command("approve")
@click.argument("batch_id", type=int)
@by_option
@json_option
def retention_approve(batch_id: int, by: str | None, as_json: bool) -> None:
    """Approve a proposed disposal batch and carry it out."""
    _disposal_step("approve_disposal", by, as_json, lambda session, store, cfg, signer, actor: approve_batch(
        session, store, cfg.retention_policy, batch_id, by=actor, now=utcnow(), signer=signer))


@retention.command("batches")
@by_option
@json_option
def retention_batches(by: str | None, as_json: bool) -> None:
    """Every disposal batch, newest first, with its outcome."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "retention", by)
        seen = disposal_in_scope(session, identity.scope, batches=disposal_batches(session))  # as the web shows
        rows = [_batch_json(session, view.batch, view) for view in seen.batches]
    if as_json:
        print_json({"batches": rows})
        return
    for row in rows:
        _print_batch(row)
