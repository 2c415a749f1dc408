"""Court-ready evidence packages: a BagIt (RFC 8493) bag a third party can verify with standard tools.

The package holds the original files (each re-hashed while it is copied
out of the store: tampered bytes are never exported), the case's text
records, every signed manifest with its canonical body and raw signature
(so `openssl pkeyutl -verify` checks it), the station public keys, the
custody events of every item with the WORM anchors, an HTML report, and a
VERIFY.txt saying how to check all of it. Writing a package needs a role
that may export, the rights and scope to download every item, and a stated
reason; it is one `exported` custody event per item.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bagit
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session, col, select

from catalog.access import AccessRefused, ReasonRequired, check_access
from catalog.anchors import ANCHOR_PREFIX
from catalog.case_models import Case, Disposal
from catalog.cases import active_links, get_case
from catalog.custody import CustodyKind, append_event
from catalog.errors import ExportFailed
from catalog.event_hashes import stored_event_body
from catalog.manifests import software_version, trusted_fingerprints
from catalog.models import CustodyEvent, Recording, RecordingState, StationKey
from catalog.recordings import get_recording
from catalog.replay import load_replays
from catalog.replay_compare import origin_findings, row_findings
from catalog.signing import SignatureInvalid, signed_bytes, verify_document
from catalog.user_models import User
from catalog.users import require
from storage import EvidenceStore, HashMismatch, ObjectMissing
from storage.hashing import hash_stream

__all__ = ["ExportResult", "export_package", "provenance_problems", "safe_name"]

_IN_STORE = (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    items: int
    payload_bytes: int
    tagmanifest_sha256: str  # SHA-256 of the bag's tagmanifest-sha256.txt: one value that pins the whole bag

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "items": self.items, "payload_bytes": self.payload_bytes,
                "tagmanifest_sha256": self.tagmanifest_sha256}


def safe_name(name: str) -> str:
    """A file name that is safe on every file system, keeping letters (including Chinese) and digits."""
    cleaned = re.sub(r"[^\w.\-]+", "_", name, flags=re.UNICODE).strip("._") or "file"
    return cleaned[:120]


@dataclass
class _Item:
    recording: Recording
    purpose: str | None
    path: str = ""  # payload path inside data/


def _items(session: Session, case: Case | None, refs: list[str]) -> list[_Item]:
    if case is not None:
        assert case.id is not None
        return [_Item(r, link.purpose) for link, r in active_links(session, case.id)]
    return [_Item(get_recording(session, ref), None) for ref in refs]


def _copy_verified(store: EvidenceStore, recording: Recording, dest: Path) -> int:
    with store.open(recording.sha256) as src, dest.open("xb") as out:
        found, size = hash_stream(src, copy_to=out)
    if found != recording.sha256:
        dest.unlink()
        raise HashMismatch(f"recording {recording.id} ({recording.original_name}) in the store", algorithm="sha256",
                           expected=recording.sha256, found=found)
    return size


def _event_json(e: CustodyEvent) -> dict[str, Any]:
    """One line of events.jsonl: the event, its chain version and the exact bytes its hash covers (`body`, UTF-8
    text), so an examiner hashes those bytes instead of re-canonicalising the readable fields."""
    assert e.at is not None
    return {"id": e.id, "kind": e.kind, "at": e.at.astimezone(UTC).isoformat(timespec="microseconds"), "actor": e.actor,
            "recording_id": e.recording_id, "dock_session_id": e.dock_session_id, "details": e.details,
            "chain_version": e.chain_version, "body": stored_event_body(e).decode("utf-8"),
            "prev_hash": e.prev_hash, "hash": e.hash}


def export_package(session: Session, store: EvidenceStore, *, out: Path, by: str, now: datetime, reason: str,
                   case_number: str | None = None, refs: list[str] | None = None,
                   organisation: str = "") -> ExportResult:
    """Write the package for a case (or for recordings by id) to *out* (a new folder, or a `.zip`).

    A package hands over originals, so each item is checked as a download of it would be (catalog.access): the
    role must allow playing and downloading (an auditor's does not), every item must be in the caller's scope,
    and a *reason* must be stated. A refusal refuses the whole package (a partial package would misstate the
    case): each refused recording is an `access_refused` custody event and the message names them. A package
    written is one `exported` event per item, with the reason."""
    user = require(session, by, "export")
    if (case_number is None) == (not refs):
        raise ExportFailed("export a case number, or one or more recording ids — not both, not neither")
    case = get_case(session, case_number) if case_number else None
    items = _items(session, case, refs or [])
    if not items:
        raise ExportFailed(f"case {case_number} has no recordings or documents to export")
    _refuse_unless_exportable(session, user, [i.recording for i in items], out=out, reason=reason,
                              subject=f"case {case_number}" if case_number else "the package")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the destination and moved into place whole: a failed export leaves nothing behind.
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        payload = _write_payload(session, store, work, case, items, by=by, now=now, reason=reason.strip())
        tagmanifest = _make_bag(work, _bag_info(case_number, items, by=by, now=now, reason=reason,
                                                organisation=organisation))
        _move_into_place(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for item in items:
        append_event(session, CustodyKind.EXPORTED, actor=by, recording_id=item.recording.id, details={
            "package": out.name, "case": case_number, "sha256": item.recording.sha256, "path": item.path,
            "tagmanifest_sha256": tagmanifest, "reason": reason.strip()})
    session.commit()
    return ExportResult(out, len(items), payload, tagmanifest)


def _refuse_unless_exportable(session: Session, user: User, recordings: list[Recording], *, out: Path, reason: str,
                              subject: str) -> None:
    """Raise unless every recording may be handed over by *user* for *reason* into a new *out*, and each is in the
    WORM store (or a tombstone) with a row its custody events account for; checked in this order."""
    try:
        # what a tombstone says is a view; an original (or a text record) in the package is a download
        check_access(session, user, recordings, step="view", reason=reason, policy="download", action="export")
        check_access(session, user, [r for r in recordings if r.state != RecordingState.DISPOSED.value],
                     step="download", reason=reason, policy="download", action="export")
    except AccessRefused as exc:
        exc.args = (f"export of {subject} refused, nothing was written: {exc}",)
        raise
    if not reason.strip():
        raise ReasonRequired(f"export of {subject} refused: state the reason for handing over this evidence "
                             "(调阅事由); it is recorded with every item", recording_ids=[])
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise ExportFailed(f"{out} already exists; an evidence package is never written over another")
    waiting = [r for r in recordings if r.state == RecordingState.STAGED.value]
    if waiting:
        raise ExportFailed("not in the WORM store yet (still staged): " + ", ".join(
            f"recording {r.id} ({r.original_name})" for r in waiting))
    unproven = provenance_problems(session, recordings)
    if unproven:
        raise ExportFailed(f"export of {subject} refused, nothing was written: " + "; ".join(unproven)
                           + f" (run `evidence verify {' '.join(str(r.id) for r in recordings)}`)")


def _bag_info(case_number: str | None, items: list[_Item], *, by: str, now: datetime, reason: str,
              organisation: str) -> dict[str, str]:
    """The bag-info.txt fields: who made the package, when, why, and what it holds. Pure."""
    return {
        "Source-Organization": organisation or "evidence-ingest archive",
        "External-Identifier": case_number or ", ".join(str(i.recording.id) for i in items),
        "External-Description": (f"Evidence package for case {case_number}" if case_number else
                                 "Evidence package for selected recordings"),
        "Contact-Name": by, "Bag-Software-Agent": f"evidence-ingest {software_version()}",
        "Internal-Sender-Identifier": f"exported {now.isoformat()}",
        "Internal-Sender-Description": f"reason: {reason.strip()}",
    }


def _make_bag(work: Path, bag_info: dict[str, str]) -> str:
    """Turn *work* into a bag and validate it in full; returns the SHA-256 of its tagmanifest-sha256.txt."""
    bag = bagit.make_bag(str(work), bag_info=bag_info, checksums=["sha256", "sha512"])
    bag.validate(fast=False)  # what we hand over must verify before it leaves
    return hashlib.sha256((work / "tagmanifest-sha256.txt").read_bytes()).hexdigest()


def _move_into_place(work: Path, out: Path) -> None:
    if out.suffix.lower() == ".zip":
        _zip(work, out)
        return
    if out.exists():
        out.rmdir()  # checked empty above
    work.chmod(0o755)
    work.rename(out)


def provenance_problems(session: Session, recordings: list[Recording]) -> list[str]:
    """Why a package must not carry these recordings: a row that no custody event created (planted), a row that
    differs from what its custody events set, a row in the store with no stamp revision (so no signed manifest).
    Each names the recording. One query for the lot (catalog.replay)."""
    ids = [r.id for r in recordings if r.id is not None]
    replays = load_replays(session, ids)[0]
    found = []
    for r in recordings:
        assert r.id is not None
        who = f"recording {r.id} ({r.original_name})"
        found += [f"{who}: {text}" for text in origin_findings(r, replays[r.id]) + row_findings(r, replays[r.id])]
        if r.state in _IN_STORE and r.stamp_revision < 1:
            found.append(f"{who}: in the store, but it has no stamp revision and so no signed manifest: nothing "
                         "vouches for it")
    return found


def _zip(folder: Path, out: Path) -> None:
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "x", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{out.stem}/{path.relative_to(folder).as_posix()}")
    tmp.rename(out)


def _write_payload(session: Session, store: EvidenceStore, root: Path, case: Case | None, items: list[_Item], *,
                   by: str, now: datetime, reason: str) -> int:
    """Write the bag's payload into *root*: the items (originals re-hashed, signed manifests checked), the station
    keys that signed them, the custody events and anchors, items.json, report.html and VERIFY.txt. Returns the
    bytes of originals written."""
    trusted = trusted_fingerprints(session, store)
    for folder in ("recordings", "documents", "manifests", "keys", "custody/anchors"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    total = 0
    rows: list[dict[str, Any]] = []
    used_keys: set[str] = set()
    for item in items:
        entry = _item_entry(item)
        if item.recording.state in _IN_STORE:
            total += _write_original(store, root, item, trusted, entry, used_keys)
        else:
            entry["disposal"] = _disposal_facts(session, item.recording)
        entry["recording"] = _recording_facts(item.recording)
        rows.append(entry)
    _write_keys(session, root, used_keys)
    events = _custody_events(session, [i.recording.id for i in items if i.recording.id is not None], case)
    with (root / "custody" / "events.jsonl").open("w", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(_event_json(event), ensure_ascii=False, sort_keys=True) + "\n")
    for name in store.list_records(ANCHOR_PREFIX):
        (root / "custody" / "anchors" / name.rsplit("/", 1)[-1]).write_bytes(store.get_record(name))
    summary = {"format": "evidence-package/1", "exported_at": now.isoformat(), "exported_by": by, "reason": reason,
               "software": {"name": "evidence-ingest", "version": software_version()},
               "case": _case_facts(case), "items": rows}
    (root / "items.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    (root / "report.html").write_text(_report_html(summary, events), encoding="utf-8")
    (root / "VERIFY.txt").write_text(VERIFY_TEXT, encoding="utf-8")
    return total


def _item_entry(item: _Item) -> dict[str, Any]:
    r = item.recording
    return {"recording_id": r.id, "sha256": r.sha256, "size_bytes": r.size_bytes, "original_name": r.original_name,
            "media_kind": r.media_kind, "purpose_in_case": item.purpose, "state": r.state, "manifests": []}


def _write_original(store: EvidenceStore, root: Path, item: _Item, trusted: set[str], entry: dict[str, Any],
                    used_keys: set[str]) -> int:
    """Copy the item's original (re-hashed) and its signed manifests into the payload, noting them in *entry* and
    the keys that signed them in *used_keys*. Returns the original's size in bytes."""
    r = item.recording
    kind_dir = "documents" if r.media_kind == "document" else "recordings"
    item.path = f"{kind_dir}/{r.id:06d}_{safe_name(r.original_name)}"
    size = _copy_verified(store, r, root / item.path)
    entry["file"] = f"data/{item.path}"
    for number in range(1, r.stamp_revision + 1):
        raw, document = _signed_manifest(store, r, number, trusted)
        stem = f"manifests/{r.sha256}.r{number}"
        (root / f"{stem}.json").write_bytes(raw)
        (root / f"{stem}.body.json").write_bytes(signed_bytes(document))  # the exact bytes signed
        (root / f"{stem}.sig").write_bytes(base64.b64decode(document["signature"]["value"]))
        used_keys.add(document["signature"]["key_fingerprint"])
        entry["manifests"].append({"revision": number, "signed": f"data/{stem}.json",
                                   "key_fingerprint": document["signature"]["key_fingerprint"]})
    return size


def _signed_manifest(store: EvidenceStore, r: Recording, number: int, trusted: set[str]) -> tuple[bytes, Any]:
    """Manifest r*number* of *r* as stored and as parsed, its signature checked against the trusted keys."""
    try:
        raw = store.get_manifest(r.sha256, number)
        document = json.loads(raw)
        verify_document(document, trusted_fingerprints=trusted)
    except ObjectMissing as exc:
        raise ExportFailed(f"recording {r.id} ({r.original_name}): its signed manifest r{number} is "
                           f"missing from the store; nothing was written (run `evidence verify {r.id}`)") from exc
    except SignatureInvalid as exc:
        raise ExportFailed(f"recording {r.id} ({r.original_name}): its signed manifest r{number} cannot "
                           f"be trusted: {exc}; nothing was written (run `evidence verify {r.id}`)") from exc
    return raw, document


def _disposal_facts(session: Session, r: Recording) -> dict[str, Any] | None:
    tombstone = session.exec(select(Disposal).where(Disposal.recording_id == r.id)).first()
    return None if tombstone is None else {
        "disposed_at": tombstone.disposed_at.isoformat() if tombstone.disposed_at else None,
        "rule": tombstone.rule, "operator": tombstone.operator, "approver": tombstone.approver}


def _write_keys(session: Session, root: Path, fingerprints: set[str]) -> None:
    """Each signing station key as a PEM file, and all of them in station-keys.json."""
    keys = list(session.exec(select(StationKey).where(col(StationKey.fingerprint).in_(sorted(fingerprints)))))
    for key in keys:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key))
        (root / "keys" / f"{key.fingerprint}.pem").write_bytes(public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (root / "keys" / "station-keys.json").write_text(json.dumps(
        [{"station": k.station_code, "fingerprint": k.fingerprint, "public_key_base64": k.public_key,
          "registered_at": k.created_at.isoformat() if k.created_at else None} for k in keys],
        ensure_ascii=False, indent=1), encoding="utf-8")


def _custody_events(session: Session, ids: list[int], case: Case | None) -> list[CustodyEvent]:
    """The items' custody events and (for a case) the case's own events, in chain order."""
    events = list(session.exec(select(CustodyEvent).where(col(CustodyEvent.recording_id).in_(ids))
                               .order_by(col(CustodyEvent.id))))
    if case is not None:
        case_events = [e for e in session.exec(select(CustodyEvent).where(CustodyEvent.recording_id == None)  # noqa: E711
                                               .order_by(col(CustodyEvent.id)))
                       if e.details.get("case") == case.number]
        events = sorted(events + case_events, key=lambda e: e.id or 0)
    return events


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _recording_facts(r: Recording) -> dict[str, Any]:
    return {"captured_start": _iso(r.captured_start), "captured_end": _iso(r.captured_end),
            "time_source": r.time_source, "raw_device_time": r.raw_device_time, "zone_assumed": r.zone_assumed,
            "clock_offset_s": r.clock_offset_s,
            "place": {"lat": r.lat, "lon": r.lon, "source": r.place_source} if r.lat is not None else None,
            "case_number": r.case_number, "purpose": r.purpose, "collector": r.officer_number,
            "officer_name": r.officer_name, "device_serial": r.device_serial, "station": r.station_code,
            "important": r.important, "integrity": {"status": r.integrity_status, "detail": r.integrity_detail},
            "stamp_revision": r.stamp_revision, "ingested_at": _iso(r.ingested_at),
            "retain_until": _iso(r.retain_until), "legal_hold": r.legal_hold}


def _case_facts(case: Case | None) -> dict[str, Any] | None:
    if case is None:
        return None
    return {"number": case.number, "title": case.title, "case_type": case.case_type, "unit": case.unit,
            "status": case.status, "opened_on": case.opened_on.isoformat(),
            "closed_on": case.closed_on.isoformat() if case.closed_on else None}


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return html.escape(json.dumps(value, ensure_ascii=False))
    return html.escape(str(value))


def _report_html(summary: dict[str, Any], events: list[CustodyEvent]) -> str:
    """A plain, printable report (Chinese first, English second)."""
    case = summary["case"]
    parts = ["<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
             "<title>证据包报告 Evidence package report</title><style>body{font-family:sans-serif;margin:2em}"
             "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #999;padding:3px 6px;"
             "text-align:left;vertical-align:top;font-size:13px}code{word-break:break-all}</style></head><body>",
             "<h1>证据包报告 · Evidence package report</h1>",
             f"<p>导出时间 Exported: {_cell(summary['exported_at'])} · 导出人 By: {_cell(summary['exported_by'])} · "
             f"软件 Software: {_cell(summary['software']['version'])} · 事由 Reason: {_cell(summary['reason'])}</p>"]
    if case:
        parts.append("<h2>案件 Case</h2><table>" + "".join(
            f"<tr><th>{label}</th><td>{_cell(case[key])}</td></tr>" for key, label in (
                ("number", "案件编号 Number"), ("title", "案由 Title"), ("case_type", "类型 Type"),
                ("unit", "承办单位 Unit"), ("status", "状态 Status"), ("opened_on", "立案 Opened"),
                ("closed_on", "结案 Closed"))) + "</table>")
    by_recording: dict[int | None, list[CustodyEvent]] = {}
    for event in events:
        by_recording.setdefault(event.recording_id, []).append(event)
    for item in summary["items"]:
        facts = item["recording"]
        parts.append(f"<h2>{_cell(item['media_kind'])} {item['recording_id']}: {_cell(item['original_name'])}</h2>"
                     "<table>")
        rows = [
            ("文件 File", item.get("file")), ("SHA-256", item["sha256"]), ("大小 Size (bytes)", item["size_bytes"]),
            ("证明对象 Purpose in this case", item["purpose_in_case"]),
            ("案件编号 Case (stamp)", facts["case_number"]),
            ("采集时间 Capture start (UTC)", facts["captured_start"]),
            ("结束 Capture end (UTC)", facts["captured_end"]),
            ("时间来源 Time source", facts["time_source"]),
            ("设备原始时间 Raw device time", facts["raw_device_time"]),
            ("时区假定 Zone assumed", facts["zone_assumed"]),
            ("时钟偏差 Clock offset (s)", facts["clock_offset_s"]),
            ("采集地点 Place", facts["place"]), ("采集人 Collector", facts["collector"]),
            ("姓名 Officer", facts["officer_name"]), ("设备 Device", facts["device_serial"]),
            ("工作站 Station", facts["station"]), ("完整性 Integrity", facts["integrity"]),
            ("签名清单 Signed manifests", ", ".join(m["signed"] for m in item["manifests"])),
            ("状态 State", item["state"]), ("销毁 Disposal", item.get("disposal")),
        ]
        parts.extend(f"<tr><th>{label}</th><td><code>{_cell(value)}</code></td></tr>" for label, value in rows)
        parts.append("</table><h3>保管链 Custody</h3><table><tr><th>#</th><th>时间 Time (UTC)</th><th>事件 Event</th>"
                     "<th>操作人 Actor</th><th>Hash</th></tr>")
        parts.extend(f"<tr><td>{e.id}</td><td>{_cell(_iso(e.at))}</td><td>{_cell(e.kind)}</td>"
                     f"<td>{_cell(e.actor)}</td><td><code>{e.hash[:16]}…</code></td></tr>"
                     for e in by_recording.get(item["recording_id"], []))
        parts.append("</table>")
    parts.append("<h2>如何核验 How to verify</h2><pre>" + html.escape(VERIFY_TEXT) + "</pre></body></html>")
    return "\n".join(parts)


VERIFY_TEXT = """\
How to verify this evidence package (no trust in the sender needed)
====================================================================

1. Nothing was changed since the package was made (BagIt, RFC 8493):
     bagit.py --validate PACKAGE_FOLDER           (pip install bagit), or any BagIt validator, or
     cd PACKAGE_FOLDER && sha256sum -c manifest-sha256.txt && sha256sum -c tagmanifest-sha256.txt

2. Each original file is what the station hashed when it was copied off the recorder:
   its SHA-256 (in items.json and in its signed manifest) is the file's own SHA-256
     sha256sum data/recordings/*

3. Each manifest was signed by a registered station key and not changed since:
     openssl pkeyutl -verify -pubin -inkey data/keys/<key_fingerprint>.pem -rawin \\
         -in data/manifests/<sha256>.r<N>.body.json -sigfile data/manifests/<sha256>.r<N>.sig
   (<key_fingerprint> is in the .json manifest under signature.key_fingerprint; it is the SHA-256 of the
   raw 32-byte public key. The .body.json file holds the manifest body exactly as signed: RFC 8785 canonical
   JSON when signature.canonicalization is "RFC8785", else JSON with sorted keys, no spaces, UTF-8.)

4. The custody events are linked: for each line of data/custody/events.jsonl, "body" holds the exact bytes
   the event's hash covers (check that they parse to the line's kind, recording_id, dock_session_id, actor,
   at and details), and
     chain_version 2:  hash = SHA-256( prev_hash + hex SHA-256(body) )      (RFC 8785 body)
     chain_version 1:  hash = SHA-256( prev_hash + "\\n" + body )          (sorted keys, no spaces)
   where "at" is the UTC time with microseconds (2026-11-20T08:30:00.000000+00:00) and prev_hash is the hash
   of the event before. Versions never go down along the chain. The manifests list the custody events (id and
   hash) that existed when they were signed. data/custody/anchors/ holds the signed chain heads the archive
   wrote to WORM storage; each names an event id and its hash.
"""
