"""The checks the court report states the result of, run on the package's own files as it is written.

For each item: every signed manifest's signature verifies over its exact body bytes with the public key the
package carries (whose SHA-256 is the fingerprint named), the original's SHA-256 is the one signed, items.json
says what the newest signed body says, and every custody event the body lists is in events.jsonl with that hash.
For every event: its body parses to its readable fields and its hash recomputes (catalog.event_hashes). This is
the exporting software checking its own output; the independent check is verify.py / VERIFY.txt, and the report
says so. Findings are sentences naming the file and the field.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from catalog.event_hashes import CHAIN_VERSIONS, link_hash
from catalog.package_files import PackageFiles, SignedManifest, payload_path
from storage.hashing import hash_file

__all__ = ["event_findings", "item_findings"]

_FIELDS = ("kind", "recording_id", "dock_session_id", "actor", "at", "details")


def _signature_findings(package: PackageFiles, manifest: SignedManifest) -> list[str]:
    where = manifest.body_file
    if manifest.signature is None:
        return [f"{where}: its signature file (.sig) is missing"]
    key_file = package.data_dir / "keys" / f"{manifest.key_fingerprint}.pem"
    if not key_file.is_file():
        return [f"{where}: the signing key data/keys/{manifest.key_fingerprint}.pem is not in the package"]
    key = serialization.load_pem_public_key(key_file.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        return [f"data/keys/{manifest.key_fingerprint}.pem is not an Ed25519 public key"]
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if hashlib.sha256(raw).hexdigest() != manifest.key_fingerprint:
        return [f"data/keys/{manifest.key_fingerprint}.pem holds a key whose fingerprint is "
                f"{hashlib.sha256(raw).hexdigest()}, not the one in its name"]
    try:
        key.verify(manifest.signature, manifest.body_bytes)
    except InvalidSignature:
        return [f"{where}: the signature does not verify with key {manifest.key_fingerprint} (the body or the "
                "signature was changed)"]
    return []


def _readable_findings(item: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """Where items.json says something other than the newest signed body."""
    stamp = body.get("stamp") or {}
    facts = item.get("recording") or {}
    pairs = (("sha256", item.get("sha256"), body.get("sha256")),
             ("recording.case_number", facts.get("case_number", stamp.get("case_number")), stamp.get("case_number")),
             ("recording.purpose", facts.get("purpose", stamp.get("purpose")), stamp.get("purpose")),
             ("recording.collector", facts.get("collector", stamp.get("collector")), stamp.get("collector")))
    return [f"items.json item {item.get('recording_id')}: {name} is {readable!r} but the signed manifest says "
            f"{signed!r}" for name, readable, signed in pairs if readable != signed]


def _listed_findings(package: PackageFiles, item: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """Every custody event the signed body lists must be in events.jsonl with the hash the body names."""
    present = {e.get("id"): e.get("hash") for e in package.events}
    found = []
    for entry in body.get("custody") or []:
        if entry.get("id") not in present:
            found.append(f"custody event {entry.get('id')} ({entry.get('kind')}), listed in the signed manifest of "
                         f"item {item.get('recording_id')}, is not in data/custody/events.jsonl")
        elif present[entry.get("id")] != entry.get("hash"):
            found.append(f"custody event {entry.get('id')}: its hash in events.jsonl differs from the one the "
                         f"signed manifest of item {item.get('recording_id')} names")
    return found


def item_findings(package: PackageFiles, item: dict[str, Any], hashed: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with one item of the package (empty: it checks out). *hashed*: each payload file's SHA-256
    as the export measured it while writing the file (one read pass per byte); without it the original is read
    again to hash it (a report made from a package on disk)."""
    manifests = package.signed_manifests(item)
    if not manifests:
        return [] if item.get("disposal") is not None or not item.get("file") else [
            f"item {item.get('recording_id')}: an original without a signed manifest"]
    found = [text for m in manifests for text in _signature_findings(package, m)]
    body = manifests[-1].body
    if item.get("file"):
        path = payload_path(package.data_dir, str(item["file"]))
        if hashed is not None:
            actual = hashed.get(str(item["file"]))
        else:
            actual = hash_file(path).sha256 if path.is_file() else None
        if actual != body.get("sha256"):
            found.append(f"{item['file']}: SHA-256 {actual or 'missing file'} is not the signed "
                         f"{body.get('sha256')}")
    found += _readable_findings(item, body)
    found += _listed_findings(package, item, body)
    return found


def event_findings(event: dict[str, Any]) -> list[str]:
    """Problems with one line of events.jsonl: its body against its fields, its hash against its formula."""
    who = f"custody event {event.get('id')}"
    if "body" not in event:  # package format 1 before chain version 2: nothing to recompute from
        return []
    body = str(event["body"]).encode("utf-8")
    found = []
    if json.loads(body) != {name: event.get(name) for name in _FIELDS}:
        found.append(f"{who}: its readable fields differ from the hashed body")
    version = event.get("chain_version")
    if version not in CHAIN_VERSIONS:
        found.append(f"{who}: chain version {version!r} is unknown")
    elif link_hash(int(version), str(event.get("prev_hash")), body) != event.get("hash"):
        found.append(f"{who}: its hash does not recompute from prev_hash and body (chain version {version})")
    return found
