"""`evidence integrity …`: decode checks run now, and every integrity revision of a recording.

`check` exits 4 when a decode check finds damage (the verdict is recorded as
a new revision; the ingest verdict is kept), 1 when a decode could not
finish (nothing is recorded), 2 for an unknown recording, 3 when the
catalogue or the store is unavailable.
"""
from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import CustodyKind, append_event, get_recording
from catalog.integrity import integrity_history
from catalog.models import IntegrityCheck
from evidence.cli.common import caller, catalogue, errors, print_json, settings
from evidence.cli.options import by_option, json_option, view_reason_option
from evidence.cli.recordings import look_at
from ingest.config import Settings
from ingest.decode_check import DECODE_CHECK, DecodeIncomplete, check_recording, skip_reason, unchecked_ids
from ingest.services import catalog_engine, open_store
from storage import EvidenceStore

__all__ = ["integrity"]


@click.group()
def integrity() -> None:
    """Integrity verdicts as revisions: the ingest check, then decode checks."""


def _revision_json(row: IntegrityCheck) -> dict[str, Any]:
    return {"revision": row.revision, "check": row.check, "status": row.status, "detail": row.detail,
            "by": row.checked_by, "at": row.checked_at.isoformat().replace("+00:00", "Z") if row.checked_at else None,
            "details": row.details}


def _check_one(engine: Engine, store: EvidenceStore, cfg: Settings, recording_id: int, *, by: str,
               again: bool) -> dict[str, Any]:
    with Session(engine) as session:
        recording = get_recording(session, recording_id)
        decoded = [r for r in integrity_history(session, recording_id) if r.check == DECODE_CHECK]
        row: dict[str, Any] = {"id": recording_id, "original_name": recording.original_name, "verdict": None,
                               "skipped": skip_reason(recording, decode_revisions=len(decoded), again=again)}
    if row["skipped"] is None:
        try:
            row["verdict"] = check_recording(engine, store, cfg.home / "work", recording_id, by=by, again=again)
        except DecodeIncomplete as exc:
            row["incomplete"] = str(exc)
        else:
            if row["verdict"] is None:
                row["skipped"] = "its format cannot be decoded here"
    with Session(engine) as session:
        recording = get_recording(session, recording_id)
        history = integrity_history(session, recording_id)
        row["integrity_status"] = recording.integrity_status
        row["revision"] = _revision_json(history[-1]) if row["verdict"] and history else None
    return row


def _line(row: dict[str, Any]) -> str:
    head = f"recording {row['id']} ({row['original_name']}):"
    if row.get("incomplete"):
        return f"{head} NOT FINISHED {row['incomplete']}"
    if row["verdict"] is None:
        return f"{head} skipped, {row['skipped']} (status {row['integrity_status']})"
    revision = row["revision"]
    mark = "DAMAGED" if row["verdict"] != "ok" else "ok"
    return (f"{head} {mark} {revision['detail']} (revision {revision['revision']}; "
            f"status now {row['integrity_status']})")


@integrity.command("check")
@click.argument("refs", nargs=-1)
@click.option("--unchecked", is_flag=True,
              help="Every archived video, audio and photo recording that has no decode verdict yet.")
@click.option("--again", is_flag=True, help="Decode recordings already decode-checked too (a new revision).")
@by_option
@json_option
def check(refs: tuple[str, ...], unchecked: bool, again: bool, by: str | None, as_json: bool) -> None:
    """Decode recordings now (ids or SHA-256 prefixes, or --unchecked) and record each verdict as a revision.
    Exit 4 if any is found damaged, 1 if any decode could not finish."""
    if bool(refs) == unchecked:
        raise click.UsageError("give recording ids or --unchecked")
    with errors():
        cfg = settings()
        store = open_store(cfg)
        with catalog_engine(cfg) as engine:
            with Session(engine) as session:
                actor = caller(cfg, session, "verify", by).actor
                ids = [r.id for r in (get_recording(session, ref) for ref in refs) if r.id is not None] if refs \
                    else unchecked_ids(session)
            rows = [_check_one(engine, store, cfg, recording_id, by=actor, again=again) for recording_id in ids]
    if as_json:
        print_json({"recordings": rows})
    else:
        for row in rows:
            click.echo(_line(row))
        checked = [r for r in rows if r["verdict"]]
        damaged = [r for r in checked if r["verdict"] != "ok"]
        click.echo(f"{len(checked)} decoded, {len(damaged)} damaged, {len(rows) - len(checked)} not checked")
    if any(r["verdict"] not in (None, "ok") for r in rows):
        sys.exit(4)
    if any(r.get("incomplete") for r in rows):
        sys.exit(1)


@integrity.command("history")
@click.argument("ref")
@by_option
@view_reason_option
@json_option
def history(ref: str, by: str | None, reason: str | None, as_json: bool) -> None:
    """Every integrity revision of a recording, oldest first, and its current status (the worst so far). A look at
    the recording as `evidence show` is: role, scope and the stated reason checked, refusals and the view
    recorded."""
    with catalogue() as (cfg, session):
        identity, recording, why = look_at(cfg, session, ref, by, reason)
        assert recording.id is not None
        append_event(session, CustodyKind.VIEWED, actor=identity.actor, recording_id=recording.id,
                     details={"via": "cli integrity history", "reason": why, "os_user": identity.account.login})
        session.commit()
        data: dict[str, Any] = {
            "id": recording.id, "original_name": recording.original_name,
            "integrity_status": recording.integrity_status, "integrity_detail": recording.integrity_detail,
            "revisions": [_revision_json(r) for r in integrity_history(session, recording.id)]}
    if as_json:
        print_json(data)
        return
    click.echo(f"recording {data['id']} ({data['original_name']}): {data['integrity_status']}")
    for r in data["revisions"]:
        at = f"{r['at'][:19]}Z" if r["at"] else "?"
        click.echo(f"  r{r['revision']} {at} {r['check']:8s} {r['status']:10s} by {r['by']}: {r['detail'] or '-'}")
    if not data["revisions"]:
        click.echo("  no revisions recorded yet: the status above is the ingest verdict")
