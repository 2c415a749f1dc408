"""Writing an evidence package (format 2, docs/verification.md): the order of the steps, and the exported events.

1. Refuse before anything is written: role, rights, scope and reason (catalog.package.refusals) and the keys
   (catalog.package.signing_keys).
2. data/: originals and signed manifests (payload); the export anchor, written into WORM storage now (it
   commits); the custody events and the chain stretch up to it (chain_segment) with the two anchors
   (anchor_files); the public keys; items.json, premis.xml, the report.
3. The bag: BagIt manifests, then the root tag files (verify.py, VERIFY.txt, trust/) in the tag manifests, a
   full validation, and the export key's signature over tagmanifest-sha256.txt (seal), with a timestamp if an
   authority is configured.
4. Moved into place whole (built beside the destination: a failed export leaves nothing behind), then one
   `exported` custody event per item naming the package, its tagmanifest hash and the anchor.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from catalog.anchors import WrittenAnchor
from catalog.case_models import Case
from catalog.cases import get_case
from catalog.custody import CustodyKind, append_event
from catalog.errors import ExportFailed
from catalog.manifests import software_version, trusted_fingerprints
from catalog.package import anchor_files, chain_segment, hooks, seal
from catalog.package.payload import (
    PACKAGE_FORMAT,
    Item,
    Payload,
    collect_items,
    copy_originals,
    expected_originals,
    package_summary,
    write_entries,
    write_keys,
)
from catalog.package.refusals import refuse_unless_exportable
from catalog.package.signing_keys import PackageKeys, PackageSigning, package_keys
from catalog.package.trust_files import write_trust
from catalog.package.verify_text import verify_text
from catalog.report_values import LANGUAGES as REPORT_LANGUAGES
from catalog.said import say
from catalog.users import require
from storage import EvidenceStore

__all__ = ["ExportResult", "bag_info", "export_package"]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    items: int
    payload_bytes: int
    tagmanifest_sha256: str  # SHA-256 of the bag's tagmanifest-sha256.txt: one value that pins the whole bag
    export_key_fingerprint: str = ""
    root_key_fingerprint: str | None = None  # None: the archive has no agency root
    chain_anchor: str = ""  # the export anchor's record name in WORM storage
    trusted_time: str = ""  # the package's RFC 3161 timestamp ("RFC 3161 time …"), or why it has none
    notes: tuple[str, ...] = ()  # what the package lacks and why (no usable report font: no report.pdf)

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "items": self.items, "payload_bytes": self.payload_bytes,
                "tagmanifest_sha256": self.tagmanifest_sha256, "export_key_fingerprint": self.export_key_fingerprint,
                "root_key_fingerprint": self.root_key_fingerprint, "chain_anchor": self.chain_anchor,
                "trusted_time": self.trusted_time, "notes": list(self.notes)}


@dataclass(frozen=True)
class _Built:
    payload: Payload
    anchor: WrittenAnchor
    tagmanifest_sha256: str
    trusted_time: str
    notes: list[str]


@dataclass(frozen=True)
class _Job:
    """One export: what goes in, who asked, why, and the keys it is signed with."""
    case: Case | None
    items: list[Item]
    by: str
    now: datetime
    reason: str
    package: str  # the destination's name
    organisation: str
    keys: PackageKeys
    settings: Any  # the deployment's: timestamps (EVIDENCE_TSA_URL), the report's zone and font; None: defaults
    language: str = "zh"  # the court report's: zh (default) or en
    extra: dict[str, bytes] | None = None  # more files for data/ ("release/decision.json": …), in the manifests
    description: str = ""  # bag-info's External-Description, when not a case's or selected recordings'


def export_package(session: Session, store: EvidenceStore, *, out: Path, by: str, now: datetime, reason: str,
                   signing: PackageSigning, case_number: str | None = None, refs: list[str] | None = None,
                   organisation: str = "", language: str = "zh", extra: dict[str, bytes] | None = None,
                   description: str = "") -> ExportResult:
    """Write the package for a case (or for recordings by id) to *out* (a new folder, or a `.zip`).

    A package hands over originals, so each item is checked as a download of it would be (catalog.access): the
    role must allow playing and downloading (an auditor's does not), every item must be in the caller's scope,
    and a *reason* must be stated. A refusal refuses the whole package (a partial package would misstate the
    case): each refused recording is an `access_refused` custody event and the message names them. *signing*
    names the keys (catalog.package.signing_keys). A package written is one `exported` event per item. The court
    report is in *language* (REPORT_LANGUAGES: Chinese by default, or English). *extra* files (a release's signed
    decision and public summary: catalog.release_package) go under data/ with the rest, in the bag's manifests;
    *description* says what the package is (bag-info's External-Description)."""
    if language not in REPORT_LANGUAGES:
        raise ExportFailed(f"the report can be written in {' or '.join(REPORT_LANGUAGES)}, not {language!r}")
    user = require(session, by, "export")
    if (case_number is None) == (not refs):
        raise ExportFailed("export a case number, or one or more recording ids — not both, not neither")
    case = get_case(session, case_number) if case_number else None
    items = collect_items(session, case, refs or [])
    if not items:
        raise ExportFailed(say("case {case} has no recordings or documents to export", case=case_number))
    refuse_unless_exportable(session, user, [i.recording for i in items], out=out, reason=reason,
                             subject=say("case {case}", case=case_number) if case_number else say("the package"),
                             case=case)
    keys = package_keys(session, store, signing, by=by, now=now)
    job = _Job(case, items, by, now, reason.strip(), out.name, organisation, keys, signing.settings, language, extra,
               description)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        built = _build(session, store, work, job)
        _move_into_place(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for item in items:
        append_event(session, CustodyKind.EXPORTED, actor=by, recording_id=item.recording.id, details={
            "package": out.name, "case": case_number, "sha256": item.recording.sha256, "path": item.path,
            "tagmanifest_sha256": built.tagmanifest_sha256, "reason": job.reason,
            "anchor": built.anchor.row.record_name})
    session.commit()
    return ExportResult(out, len(items), built.payload.total_bytes, built.tagmanifest_sha256, keys.export_fingerprint,
                        keys.root_fingerprint, built.anchor.row.record_name, built.trusted_time,
                        tuple(built.notes))


def _build(session: Session, store: EvidenceStore, bag: Path, job: _Job) -> _Built:
    """Write the whole bag into the empty folder *bag*."""
    data = bag / "data"
    payload = write_entries(session, store, data, job.items, trusted_fingerprints(session, store))
    anchor = anchor_files.write_export_anchor(session, store, job.keys, by=job.by, package=job.package, now=job.now,
                                              tsa=job.settings)
    signers = _write_custody(session, store, data, job, anchor)
    signers |= payload.signers | {job.keys.export_fingerprint}
    write_keys(session, data, signers)
    verify = verify_text(root=job.keys.root_fingerprint, export=job.keys.export_fingerprint,
                         anchor=anchor.row.record_name, last_event_id=anchor.row.last_event_id,
                         last_hash=anchor.row.last_hash)
    summary = package_summary(job.case, payload, by=job.by, now=job.now, reason=job.reason, trust={
        "root_key_fingerprint": job.keys.root_fingerprint, "export_key_fingerprint": job.keys.export_fingerprint,
        "chain_anchor": anchor.row.record_name})
    (data / "items.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    for name, content in (job.extra or {}).items():
        target = data / name
        if target.exists() or ".." in Path(name).parts or Path(name).is_absolute():
            raise ExportFailed(f"an extra file {name!r} cannot go into the package")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    hooks.write_premis(data)
    reports = hooks.PendingReports(data, root_fingerprint=job.keys.root_fingerprint, settings=job.settings,
                                   language=job.language,
                                   expected=expected_originals(job.items),
                                   payload_bytes=sum(i.recording.size_bytes for i in job.items if i.path))
    try:
        copy_originals(store, data, job.items, payload)
        report_notes = reports.finish()
    finally:
        reports.cancel()
    info = bag_info(job.case.number if job.case else None, job.items, by=job.by, now=job.now, reason=job.reason,
                    organisation=job.organisation, root_fingerprint=job.keys.root_fingerprint,
                    export_fingerprint=job.keys.export_fingerprint, chain_anchor=anchor.row.record_name)
    if job.description:
        info["External-Description"] = job.description
    seal.make_bag(bag, info, payload.measured)
    write_trust(bag, job.keys.certification, store, signers)
    seal.seal(bag, {"VERIFY.txt": verify.encode("utf-8"), "verify.py": hooks.verifier_source()})
    signed, digest = seal.sign_tagmanifest(bag, job.keys.export_key)
    token, note = hooks.timestamp(signed, job.settings, what=f"package {job.package}")
    token, note = hooks.named_token(token, note, data / "custody" / "export-anchor.json")
    if token is not None:
        (bag / seal.TIMESTAMP).write_bytes(token)
    return _Built(payload, anchor, digest, note, report_notes)


def _write_custody(session: Session, store: EvidenceStore, data: Path, job: _Job, anchor: WrittenAnchor) -> set[str]:
    """data/custody/: events.jsonl, chain.jsonl, the anchors (with their timestamp tokens, if any) and
    export-anchor.json; the keys that signed the anchors."""
    custody = data / "custody"
    custody.mkdir(parents=True, exist_ok=True)
    last = anchor.row.last_event_id
    ids = [i.recording.id for i in job.items if i.recording.id is not None]
    events = chain_segment.package_events(session, ids, job.case, through=last)
    chain_segment.write_events(custody / "events.jsonl", events)
    first = min((e.id for e in events if e.id is not None), default=last)
    shipped = [anchor_files.ship_anchor(store, data, anchor.row.record_name)]
    prior = anchor_files.prior_anchor(session, first)
    if prior is not None and prior.record_name != anchor.row.record_name:
        shipped.append(anchor_files.ship_anchor(store, data, prior.record_name))
        first = prior.last_event_id  # from the older anchor's event on, so that it is checked against the chain
    chain_segment.write_chain(session, custody / "chain.jsonl", first=first, last=last,
                              full={e.id for e in events if e.id is not None})
    where = anchor_files.where_stored(store, anchor, shipped)
    (custody / "export-anchor.json").write_text(json.dumps(where, ensure_ascii=False, indent=1), encoding="utf-8")
    return {a.document["signature"]["key_fingerprint"] for a in shipped}


def bag_info(case_number: str | None, items: list[Item], *, by: str, now: datetime, reason: str, organisation: str,
             root_fingerprint: str | None, export_fingerprint: str, chain_anchor: str) -> dict[str, str]:
    """The bag-info.txt fields: who made the package, when, why, what it holds, and what it is signed with. Pure."""
    return {
        "Source-Organization": organisation or "evidence-ingest archive",
        "External-Identifier": case_number or ", ".join(str(i.recording.id) for i in items),
        "External-Description": (f"Evidence package for case {case_number}" if case_number else
                                 "Evidence package for selected recordings"),
        "Contact-Name": by, "Bag-Software-Agent": f"evidence-ingest {software_version()}",
        "Internal-Sender-Identifier": f"exported {now.isoformat()}",
        "Internal-Sender-Description": f"reason: {reason.strip()}",
        "Package-Format": PACKAGE_FORMAT,
        "Root-Key-Fingerprint": root_fingerprint or "none",
        "Export-Key-Fingerprint": export_fingerprint,
        "Chain-Anchor": chain_anchor,
    }


def _move_into_place(work: Path, out: Path) -> None:
    if out.suffix.lower() == ".zip":
        _zip(work, out)
        return
    if out.exists():
        out.rmdir()  # checked empty above
    work.chmod(0o755)
    work.rename(out)


def _zip(folder: Path, out: Path) -> None:
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "x", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{out.stem}/{path.relative_to(folder).as_posix()}")
    tmp.rename(out)
