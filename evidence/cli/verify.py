"""`evidence verify`, `evidence custody …` and `evidence export`: proof for auditors and courts.

`verify` exits 4 when it finds any problem, and prints each with the values
that show it. `export` writes a BagIt package and needs a user whose role
may export.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from sqlmodel import Session

from catalog import CustodyKind, append_event, get_recording, load_or_create_key
from catalog.anchors import write_anchor
from catalog.cases import case_number_exists
from catalog.fixity import record_results
from catalog.package import PackageSigning, export_package
from catalog.types import utcnow
from catalog.verification import VerifyReport, select_recordings, verify_archive
from evidence.cli.common import caller, errors, print_json, settings
from evidence.cli.options import by_option, json_option
from ingest.anchoring import anchor_chain
from ingest.services import catalog_engine, open_store

__all__ = ["custody", "export", "verify"]


@click.command()
@click.argument("refs", nargs=-1)
@click.option("--all", "everything", is_flag=True,
              help="Every recording row (whatever its state), every case, and recordings the chain names but the "
                   "catalogue lost.")
@click.option("--sample", type=click.IntRange(1), help="A random sample of N recordings.")
@click.option("--no-chain", is_flag=True, help="Skip the custody chain and anchor check.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Objects read at once.")
@by_option
@json_option
def verify(refs: tuple[str, ...], everything: bool, sample: int | None, no_chain: bool, workers: int,
           by: str | None, as_json: bool) -> None:
    """Re-read and re-hash stored objects; check them against the catalogue and the signed manifests; replay the
    custody chain into what each row, case and store lock must say (retain-until, legal hold, state, integrity,
    capture times, case links and types) and compare; walk the custody chain and compare it with the signed anchors
    in WORM storage. Exit 4 on any problem."""
    if sum(bool(x) for x in (refs, everything, sample)) != 1:
        raise click.UsageError("give recording ids, --all, or --sample N")
    with errors():
        cfg = settings()
        store = open_store(cfg)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            actor = caller(cfg, session, "verify", by).actor  # refused before any object is read
            ids = ([r.id for r in (get_recording(session, ref) for ref in refs) if r.id is not None] if refs
                   else select_recordings(session, sample=sample))
            report = verify_archive(session, store, ids, chain=not no_chain, workers=workers, everything=everything,
                                    policy=cfg.retention_policy, tsa_ca=cfg.tsa_ca)
            record_results(session, report, actor=actor, now=utcnow(), how="evidence verify: re-hashed from the "
                                                                          "store, manifests and signatures checked")
            append_event(session, CustodyKind.VERIFICATION_RUN, actor=actor, details={
                "recordings": report.recordings, "bytes_read": report.bytes_read, "events": report.events,
                "anchors": report.anchors, "problems": len(report.problems),
                "scope": "ids" if refs else ("all" if everything else f"sample {sample}")})
            session.commit()
            anchor_chain(cfg, engine, store, reason="evidence verify", actor=actor, create_key=False)
    if as_json:
        print_json(report.as_json())
    else:
        _print_verification(report)
    if not report.ok:
        sys.exit(4)


def _print_verification(report: VerifyReport) -> None:
    click.echo(f"checked {report.recordings} recording(s), {report.bytes_read / 2**20:.1f} MiB re-hashed, "
               f"{report.manifests} manifest(s), {report.events} custody event(s), {report.anchors} anchor(s)")
    for line in report.skipped:
        click.echo(f"  skipped {line}")
    for problem in report.problems:
        click.echo(f"PROBLEM {problem}")
    click.echo("all checks passed" if report.ok else f"{len(report.problems)} problem(s) found")


@click.group()
def custody() -> None:
    """The custody chain's anchors in WORM storage."""


@custody.command("anchor")
@click.option("--force", is_flag=True, help="Write one even if the head is already anchored.")
@json_option
def custody_anchor(force: bool, as_json: bool) -> None:
    """Write the chain head, signed, to the WORM store now (`evidence worker --schedule` does it periodically)."""
    with errors():
        cfg = settings()
        store = open_store(cfg)
        key = load_or_create_key(cfg.station_key_path)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            actor = caller(cfg, session, "operate_station").actor
            row = write_anchor(session, store, station=cfg.station, key=key, actor=actor,
                               now=utcnow(), force=force, tsa=cfg)
            data: dict[str, Any] | None = None if row is None else {
                "record": row.record_name, "last_event_id": row.last_event_id, "last_hash": row.last_hash}
    if as_json:
        print_json({"anchor": data})
    elif data is None:
        click.echo("the chain head is already anchored (or the chain is empty)")
    else:
        click.echo(f"anchored event {data['last_event_id']} ({data['last_hash'][:16]}…) in {data['record']}")


@click.command()
@click.argument("subject", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="A new folder, or FILE.zip.")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account; it needs "
              "the clerk, supervisor, auditor or admin role).")
@click.option("--recordings", "as_recordings", is_flag=True,
              help="SUBJECT is recording ids even if one looks like a case number.")
@click.option("--reason", default="", help="Why the evidence is handed over (调阅事由; required, recorded per item).")
@click.option("--language", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="The court report's language (report.html, report.pdf).")
@json_option
def export(subject: tuple[str, ...], out: Path, by: str | None, as_recordings: bool, reason: str, language: str,
           as_json: bool) -> None:
    """Write a BagIt evidence package: `export CASE` (its recordings and documents) or `export ID ...`. Needs the
    rights and scope to download every item, and a stated reason (exit 2 otherwise, naming the refused ids). The
    package is signed with the export key (EVIDENCE_EXPORT_KEY; certified by the agency root, if there is one)."""
    with errors():
        cfg = settings()
        store = open_store(cfg)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            actor = caller(cfg, session, "export", by).actor
            is_case = not as_recordings and len(subject) == 1 and case_number_exists(session, subject[0])
            if not is_case:
                for ref in subject:  # each must be a recording (RecordingNotFound names the one that is not)
                    get_recording(session, ref)
            signing = PackageSigning(station=cfg.station, station_key=load_or_create_key(cfg.station_key_path),
                                     export_key_path=cfg.export_key_path, settings=cfg)
            result = export_package(session, store, out=out, by=actor, now=utcnow(), reason=reason, signing=signing,
                                    case_number=subject[0] if is_case else None,
                                    refs=None if is_case else list(subject), organisation=cfg.station_name,
                                    language=language)
    if as_json:
        print_json(result.as_json())
    else:
        click.echo(f"{result.path}: {result.items} item(s), {result.payload_bytes / 2**20:.1f} MiB of originals; "
                   f"tag manifest SHA-256 {result.tagmanifest_sha256}")
        root = result.root_key_fingerprint or "none (no agency root certifies the keys)"
        click.echo(f"signed with export key {result.export_key_fingerprint}; agency root {root}; {result.trusted_time}")
        for note in result.notes:
            click.echo(f"note: {note}")
