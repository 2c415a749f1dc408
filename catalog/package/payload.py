"""The package's evidence: the originals (re-hashed while copied), their signed manifests, the public keys that
signed anything in the package, and items.json.

Every original is copied out of WORM storage through a hash: bytes that no longer hash to the catalogue's SHA-256
are never exported (HashMismatch). Every manifest's signature is checked against the trusted keys before it is
copied, and shipped three ways: as stored (`.json`), as the exact bytes signed (`.body.json`) and as the raw
signature (`.sig`), so `openssl pkeyutl -verify` checks it without our software. The facts items.json calls
signed (case number, capture start, purpose, collector) are read from each item's newest signed manifest body,
never from the catalogue's row, so the readable summary says what the signatures say.
"""
from __future__ import annotations

import base64
import json
import re
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session, col, select

from catalog.case_models import Case, Disposal
from catalog.cases import active_links
from catalog.errors import ExportFailed
from catalog.manifests import software_version, stored_manifest
from catalog.models import Recording, RecordingState, StationKey
from catalog.recordings import get_recording
from catalog.said import say
from catalog.signing import SignatureInvalid, signed_bytes
from storage import EvidenceStore, HashMismatch, ObjectMissing
from storage.hashing import TwoDigests, hash_stream

__all__ = [
    "IN_STORE",
    "PACKAGE_FORMAT",
    "Item",
    "Payload",
    "collect_items",
    "copy_originals",
    "expected_originals",
    "package_summary",
    "safe_name",
    "write_entries",
    "write_keys",
]

PACKAGE_FORMAT = "evidence-package/2"
#: States whose original (and signed manifests) are in WORM storage; any other item is a tombstone's facts.
IN_STORE = (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)


def safe_name(name: str) -> str:
    """A file name that is safe on every file system, keeping letters (including Chinese) and digits."""
    cleaned = re.sub(r"[^\w.\-]+", "_", name, flags=re.UNICODE).strip("._") or "file"
    return cleaned[:120]


@dataclass
class Item:
    recording: Recording
    purpose: str | None  # its purpose in the case (None: exported by recording id)
    path: str = ""  # payload path inside data/


@dataclass
class Payload:
    """What `write_entries` and `copy_originals` wrote: items.json's entries, the keys that signed, the bytes of
    originals and their digests."""
    entries: list[dict[str, Any]] = field(default_factory=list)
    total_bytes: int = 0
    signers: set[str] = field(default_factory=set)
    #: "data/…" original -> {"sha256", "sha512"} measured while copying it (the bag's manifests come from these)
    measured: dict[str, dict[str, str]] = field(default_factory=dict)



def collect_items(session: Session, case: Case | None, refs: list[str]) -> list[Item]:
    if case is not None:
        assert case.id is not None
        return [Item(r, link.purpose) for link, r in active_links(session, case.id)]
    return [Item(get_recording(session, ref), None) for ref in refs]


def write_entries(session: Session, store: EvidenceStore, data: Path, items: list[Item],
                  trusted: set[str]) -> Payload:
    """Every item's signed manifests into *data* and its items.json entry, naming the file its original will be
    copied to (`copy_originals`); a tombstone's disposal facts instead."""
    for folder in ("recordings", "documents", "manifests", "keys"):
        (data / folder).mkdir(parents=True, exist_ok=True)
    payload = Payload()
    for item in items:
        entry = _item_entry(item)
        newest: dict[str, Any] | None = None
        if item.recording.state in IN_STORE:
            r = item.recording
            item.path = f"{'documents' if r.media_kind == 'document' else 'recordings'}/{r.id:06d}_" \
                        f"{safe_name(r.original_name)}"
            entry["file"] = f"data/{item.path}"
            newest = _copy_manifests(store, data, r, trusted, entry, payload.signers)
        else:
            entry["disposal"] = _disposal_facts(session, item.recording)
        entry["recording"] = _recording_facts(item.recording, newest)
        payload.entries.append(entry)
    return payload


def expected_originals(items: list[Item]) -> dict[str, str]:
    """"data/…" -> the SHA-256 each original will have once `copy_originals` has copied it (it refuses any
    other: the export stops)."""
    return {f"data/{item.path}": item.recording.sha256 for item in items if item.path}


def copy_originals(store: EvidenceStore, data: Path, items: list[Item], payload: Payload) -> None:
    """Copy every original `write_entries` named out of the store, each through SHA-256 and SHA-512 in one read
    (the bag's manifests are written from them); bytes that do not hash to the catalogue's SHA-256 stop the
    export (HashMismatch)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha512") as pool:
        for item in items:
            if item.path:
                size, digests = _copy_original(store, data / item.path, item.recording, pool)
                payload.total_bytes += size
                payload.measured[f"data/{item.path}"] = digests


def _item_entry(item: Item) -> dict[str, Any]:
    r = item.recording
    return {"recording_id": r.id, "sha256": r.sha256, "size_bytes": r.size_bytes, "original_name": r.original_name,
            "media_kind": r.media_kind, "purpose_in_case": item.purpose, "state": r.state, "manifests": []}


def _copy_original(store: EvidenceStore, dest: Path, r: Recording, pool: Executor) -> tuple[int, dict[str, str]]:
    """Copy *r*'s original out of the store to *dest* through SHA-256 and SHA-512 (one read); its size in bytes
    and the two digests."""
    digests = TwoDigests(pool)
    with store.open(r.sha256) as src, dest.open("xb") as out:
        found, size = hash_stream(src, copy_to=out, into=digests, read_ahead=True)
    if found != r.sha256:
        dest.unlink()
        raise HashMismatch(f"recording {r.id} ({r.original_name}) in the store", algorithm="sha256",
                           expected=r.sha256, found=found)
    return size, {"sha256": found, "sha512": digests.sha512.hexdigest()}


def _copy_manifests(store: EvidenceStore, data: Path, r: Recording, trusted: set[str], entry: dict[str, Any],
                    signers: set[str]) -> dict[str, Any] | None:
    """Ship each signed manifest as stored, as the exact bytes signed and as the raw signature; the newest body."""
    newest = None
    for number in range(1, r.stamp_revision + 1):
        raw, document = _signed_manifest(store, r, number, trusted)
        stem = f"manifests/{r.sha256}.r{number}"
        (data / f"{stem}.json").write_bytes(raw)
        (data / f"{stem}.body.json").write_bytes(signed_bytes(document))
        (data / f"{stem}.sig").write_bytes(base64.b64decode(document["signature"]["value"]))
        fp = document["signature"]["key_fingerprint"]
        signers.add(fp)
        entry["manifests"].append({"revision": number, "signed": f"data/{stem}.json",
                                   "body": f"data/{stem}.body.json", "key_fingerprint": fp})
        newest = document["manifest"]
    return newest


def _signed_manifest(store: EvidenceStore, r: Recording, number: int, trusted: set[str]) -> tuple[bytes, Any]:
    """Manifest r*number* of *r* as stored and as parsed, its signature checked against the trusted keys."""
    try:
        raw = store.get_manifest(r.sha256, number)
        document = stored_manifest(raw, trusted=trusted)
    except ObjectMissing as exc:
        raise ExportFailed(say("recording {id} ({name}): its signed manifest r{number} is missing from the store; "
                               "nothing was written (run `evidence verify {id}`)", id=r.id, name=r.original_name,
                               number=number)) from exc
    except SignatureInvalid as exc:
        raise ExportFailed(say("recording {id} ({name}): its signed manifest r{number} cannot be trusted: {fault}; "
                               "nothing was written (run `evidence verify {id}`)", id=r.id, name=r.original_name,
                               number=number, fault=str(exc))) from exc
    return raw, document


def _disposal_facts(session: Session, r: Recording) -> dict[str, Any] | None:
    tombstone = session.exec(select(Disposal).where(Disposal.recording_id == r.id)).first()
    return None if tombstone is None else {
        "disposed_at": tombstone.disposed_at.isoformat() if tombstone.disposed_at else None,
        "rule": tombstone.rule, "operator": tombstone.operator, "approver": tombstone.approver}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


#: (items.json "recording" key, signed manifest body path): the facts an item takes from its newest signed manifest
#: (verify.py's ITEM_FACTS checks the same pairs); the rest (integrity, retention, hold, ingest time) are the
#: catalogue's at export, vouched for by the package signature only.
SIGNED_FACTS = (("case_number", "stamp.case_number"), ("purpose", "stamp.purpose"), ("collector", "stamp.collector"),
                ("captured_start", "stamp.captured_start"), ("captured_end", "capture.end"),
                ("time_source", "capture.time_source"), ("raw_device_time", "capture.raw_device_time"),
                ("zone_assumed", "capture.zone_assumed"), ("clock_offset_s", "capture.clock_offset_s"),
                ("place", "stamp.place"), ("officer_name", "officer.name"), ("device_serial", "device_serial"),
                ("station", "station"), ("important", "stamp.important"), ("stamp_revision", "stamp.revision"))


def _signed_value(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _recording_facts(r: Recording, signed: dict[str, Any] | None) -> dict[str, Any]:
    """The item's facts: those a manifest carries as its newest signed manifest says them (SIGNED_FACTS); the row's
    for a tombstone, which ships no manifest; integrity, retention and hold as the catalogue holds them now."""
    facts = {"captured_start": _iso(r.captured_start), "captured_end": _iso(r.captured_end),
             "time_source": r.time_source, "raw_device_time": r.raw_device_time, "zone_assumed": r.zone_assumed,
             "clock_offset_s": r.clock_offset_s,
             "place": {"lat": r.lat, "lon": r.lon, "source": r.place_source} if r.lat is not None else None,
             "case_number": r.case_number, "purpose": r.purpose, "collector": r.officer_number,
             "officer_name": r.officer_name, "device_serial": r.device_serial, "station": r.station_code,
             "important": r.important, "integrity": {"status": r.integrity_status, "detail": r.integrity_detail},
             "stamp_revision": r.stamp_revision, "ingested_at": _iso(r.ingested_at),
             "retain_until": _iso(r.retain_until), "legal_hold": r.legal_hold}
    if signed is not None:
        facts.update({key: _signed_value(signed, path) for key, path in SIGNED_FACTS})
    return facts


def _case_facts(case: Case | None) -> dict[str, Any] | None:
    if case is None:
        return None
    return {"number": case.number, "title": case.title, "case_type": case.case_type, "unit": case.unit,
            "status": case.status, "opened_on": case.opened_on.isoformat(),
            "closed_on": case.closed_on.isoformat() if case.closed_on else None}


def package_summary(case: Case | None, payload: Payload, *, by: str, now: datetime, reason: str,
                    trust: dict[str, Any]) -> dict[str, Any]:
    """items.json: who exported what, when and why, the trust it rests on (*trust*), and every item. Pure."""
    return {"format": PACKAGE_FORMAT, "exported_at": now.isoformat(), "exported_by": by, "reason": reason,
            "software": {"name": "evidence-ingest", "version": software_version()}, **trust,
            "case": _case_facts(case), "items": payload.entries}


def write_keys(session: Session, data: Path, fingerprints: set[str]) -> None:
    """Each registered key among *fingerprints* as a PEM file, and all of them in station-keys.json."""
    keys = list(session.exec(select(StationKey).where(col(StationKey.fingerprint).in_(sorted(fingerprints)))
                             .order_by(col(StationKey.id))))
    for key in keys:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key))
        (data / "keys" / f"{key.fingerprint}.pem").write_bytes(public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (data / "keys" / "station-keys.json").write_text(json.dumps(
        [{"station": k.station_code, "fingerprint": k.fingerprint, "public_key_base64": k.public_key,
          "registered_at": k.created_at.isoformat() if k.created_at else None} for k in keys],
        ensure_ascii=False, indent=1), encoding="utf-8")
