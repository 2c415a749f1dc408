"""An evidence package (format evidence-package/2, /tmp/notes contract) made here without a catalogue: signed with
the project's own functions (catalog.signing, catalog.certificates, catalog.event_hashes), bagged with bagit, so
verify.py's tests do not wait for the package builder, and know exactly what each file holds.

The chain: events 1-2 are other recordings' (version 1; an anchor names event 2, where the segment starts, as a
hash-only row), then events 3-13: item 1 copied (version 1, full), another recording's version-1 event (hash only),
the switch to version 2, and from there the items' and the case's events (full) between other recordings' (digest-
only rows), up to the export anchor at event 13. Item 1 has manifests r1 and r2, item 2 (a document) r1.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bagit
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from catalog.certificates import ROLE_EXPORT, ROLE_STATION, build_root_certificate, issue_certificate, key_fingerprint
from catalog.certificates import to_pem as cert_pem
from catalog.court_report import write_reports
from catalog.event_hashes import GENESIS_HASH, event_body, link_hash
from catalog.package.payload import SIGNED_FACTS, _signed_value
from catalog.signing import sign_document, signed_bytes
from catalog.timestamping import token_signer

VERIFIER = Path(__file__).resolve().parents[2] / "catalog" / "package_verifier.py"
T0 = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
CASE = "京朝城管罚字〔2026〕第00123号"
STATION = "station-1"
EXPORTED_AT = T0 + timedelta(hours=1)


@dataclass
class Keys:
    """The agency root and the two keys it certifies."""
    root: Ed25519PrivateKey
    station: Ed25519PrivateKey
    export: Ed25519PrivateKey
    root_cert: x509.Certificate
    certs: dict[str, x509.Certificate]  # role -> certificate

    @property
    def root_fingerprint(self) -> str:
        return key_fingerprint(self.root.public_key())

    def fingerprint(self, role: str) -> str:
        key = self.station if role == ROLE_STATION else self.export
        return key_fingerprint(key.public_key())


def make_keys(name: str = "某市城市管理综合执法局", *, not_before: datetime = T0 - timedelta(days=10),
              days: int = 365) -> Keys:
    root, station, export = (Ed25519PrivateKey.generate() for _ in range(3))
    root_cert = build_root_certificate(root, name=name, now=not_before)
    certs = {role: issue_certificate(root, root_cert, key.public_key(), role=role,
                                     subject=STATION if role == ROLE_STATION else "export", not_before=not_before,
                                     not_after=not_before + timedelta(days=days))
             for role, key in ((ROLE_STATION, station), (ROLE_EXPORT, export))}
    return Keys(root, station, export, root_cert, certs)


@dataclass
class Event:
    id: int
    kind: str
    recording_id: int | None
    details: dict[str, Any]
    version: int
    prev_hash: str
    hash: str
    body: bytes
    item: bool  # an event of the package's items or case: shipped in full

    @property
    def at(self) -> str:
        return (T0 + timedelta(minutes=self.id, microseconds=self.id)).isoformat(timespec="microseconds")

    def line(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "at": self.at, "actor": "station:station-1",
                "recording_id": self.recording_id, "dock_session_id": None, "details": self.details,
                "chain_version": self.version, "body": self.body.decode(), "prev_hash": self.prev_hash,
                "hash": self.hash}

    def row(self) -> dict[str, Any]:
        if self.item:
            return {"id": self.id, "full": True, "chain_version": self.version, "prev_hash": self.prev_hash,
                    "hash": self.hash}
        if self.version == 1:
            return {"id": self.id, "chain_version": 1, "prev_hash": self.prev_hash, "hash": self.hash,
                    "body_withheld": True}
        return {"id": self.id, "chain_version": 2, "prev_hash": self.prev_hash,
                "body_sha256": hashlib.sha256(self.body).hexdigest(), "hash": self.hash}


#: (kind, recording id, details, chain version, an item's or the case's event)
CHAIN: list[tuple[str, int | None, dict[str, Any], int, bool]] = [
    ("copied", 900, {"sha256": "00" * 32}, 1, False),
    ("copied", 901, {"sha256": "01" * 32}, 1, False),
    ("copied", 1, {"size_bytes": 0, "duration_s": 12.0}, 1, True),
    ("viewed", 902, {"via": "web"}, 1, False),
    ("chain_upgraded", None, {"from": 1, "to": 2}, 2, False),
    ("stamped", 1, {"case_number": CASE, "place": {"lat": 39.9, "lon": 116.4}, "offset": 5.0}, 2, True),
    ("viewed", 903, {"via": "web", "zoom": 1.5}, 2, False),
    ("document_attached", 2, {"case": CASE, "title": "询问笔录"}, 2, True),
    ("case_opened", None, {"case": CASE, "title": "张某无照经营案"}, 2, True),
    ("stamped", 2, {"case_number": CASE}, 2, True),
    ("viewed", 904, {"via": "cli"}, 2, False),
    ("stamped", 1, {"case_number": CASE, "purpose": "证明无照经营", "reason": "补正"}, 2, True),
    ("key_registered", None, {"station": "station-2"}, 2, False),
]
OLD_ANCHOR_AT = 2
SEGMENT_START = OLD_ANCHOR_AT  # chain.jsonl starts at the newest anchor's event before the first item event


def make_chain() -> list[Event]:
    events, prev = [], GENESIS_HASH
    for number, (kind, recording_id, details, version, item) in enumerate(CHAIN, 1):
        at = T0 + timedelta(minutes=number, microseconds=number)
        body = event_body(version, kind=kind, recording_id=recording_id, dock_session_id=None,
                          actor="station:station-1", at=at, details=details)
        digest = link_hash(version, prev, body)
        events.append(Event(number, kind, recording_id, details, version, prev, digest, body, item))
        prev = digest
    return events


@dataclass
class Package:
    path: Path
    keys: Keys
    events: list[Event]
    originals: dict[int, str] = field(default_factory=dict)  # recording id -> payload path (data/…)


def write_signed_triple(folder: Path, stem: str, body: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """<stem>.json as WORM storage holds it, .body.json (the exact bytes signed), .sig; returns the stored bytes."""
    document = sign_document(body, key)
    stored = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
    (folder / f"{stem}.json").write_bytes(stored)
    (folder / f"{stem}.body.json").write_bytes(signed_bytes(document))
    (folder / f"{stem}.sig").write_bytes(base64.b64decode(document["signature"]["value"]))
    return stored


def manifest_body(recording_id: int, sha: str, size: int, revision: int, events: list[Event], *,
                  purpose: str) -> dict[str, Any]:
    listed = [e for e in events if e.recording_id == recording_id and (revision > 1 or e.id < 12)]
    custody = [{"id": e.id, "kind": e.kind, "at": e.at, "actor": "station:station-1", "hash": e.hash}
               for e in listed]
    start, last = (T0 - timedelta(days=1)).isoformat(), listed[-1].id
    return {
        "format": "evidence-manifest/1", "sha256": sha, "size_bytes": size,
        "original_name": f"CLIP{recording_id:04d}.MP4", "media": {"kind": "video", "duration_s": 12.0},
        "device_serial": "A123456", "officer": {"number": "010203", "name": "张三"}, "station": STATION,
        "capture": {"start": start, "end": (T0 - timedelta(days=1) + timedelta(seconds=12)).isoformat(),
                    "raw_device_time": "2026:11:19 16:30:00", "time_source": "device", "zone_assumed": True,
                    "clock_offset_s": 0.25},
        "stamp": {"revision": revision, "case_number": CASE, "captured_start": start,
                  "place": {"lat": 39.9, "lon": 116.4, "source": "gps"}, "collector": "010203",
                  "purpose": purpose, "important": False, "changed_by": "clerk:李四",
                  "changed_at": (T0 + timedelta(minutes=last)).isoformat(), "reason": "补正",
                  "changes": {}},
        "integrity": {"status": "ok", "detail": None}, "retain_until": "2036-11-20T00:00:00+00:00",
        "sightings": [], "custody": custody, "software": {"name": "evidence-ingest", "version": "test"},
        "signed_at": (T0 + timedelta(minutes=last, seconds=30)).isoformat(),
    }


def _write_original(path: Path, size: int, seed: int) -> tuple[str, int]:
    """*size* bytes of a pattern (and one byte for *seed*), written in 4 MiB pieces; their SHA-256 and size."""
    piece = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    digest, left = hashlib.sha256(), size
    with path.open("wb") as fh:
        while left > 0:
            chunk = piece[:min(left, len(piece))]
            fh.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
        fh.write(bytes([seed]))
        digest.update(bytes([seed]))
    return digest.hexdigest(), size + 1


def _items_and_manifests(work: Path, keys: Keys, events: list[Event], payload_bytes: int,
                         package: Package) -> list[dict[str, Any]]:
    """The originals, their signed manifests and their items.json entries."""
    items = []
    for recording_id, folder, revisions in ((1, "recordings", 2), (2, "documents", 1)):
        rel = f"{folder}/{recording_id:06d}_CLIP{recording_id:04d}.MP4"
        sha, size = _write_original(work / rel, payload_bytes, recording_id)
        package.originals[recording_id] = f"data/{rel}"
        manifests, body = [], {}
        for revision in range(1, revisions + 1):
            body = manifest_body(recording_id, sha, size, revision, events,
                                 purpose="证明无照经营" if revision > 1 else "现场执法")
            write_signed_triple(work / "manifests", f"{sha}.r{revision}", body, keys.station)
            manifests.append({"revision": revision, "signed": f"data/manifests/{sha}.r{revision}.json",
                              "key_fingerprint": keys.fingerprint(ROLE_STATION)})
        items.append({"recording_id": recording_id, "sha256": sha, "size_bytes": size,
                      "original_name": body["original_name"], "media_kind": "video", "purpose_in_case": "证明",
                      "state": "archived", "manifests": manifests, "file": f"data/{rel}",
                      "recording": {**{key: _signed_value(body, path) for key, path in SIGNED_FACTS},
                                    "integrity": body["integrity"], "retain_until": body["retain_until"],
                                    "legal_hold": False}})
    return items


def _anchors(work: Path, keys: Keys, events: list[Event]) -> str:
    """The anchor before the segment and the export anchor after it; returns the export anchor's record name."""
    folder = work / "custody" / "anchors"
    previous: dict[str, Any] | None = None
    name = ""
    for event, written in ((events[OLD_ANCHOR_AT - 1], T0 + timedelta(minutes=2, seconds=30)),
                           (events[-1], EXPORTED_AT - timedelta(seconds=1))):
        name = f"custody/anchor-{event.id:012d}-{STATION}-{written.strftime('%Y%m%dT%H%M%S%f')}.json"
        body = {"format": "evidence-custody-anchor/1", "last_event_id": event.id, "last_hash": event.hash,
                "written_at": written.isoformat(), "station": STATION, "previous": previous, "reason": "export",
                "software": {"name": "evidence-ingest", "version": "test"}}
        stored = write_signed_triple(folder, Path(name).stem, body, keys.station)
        previous = {"name": name, "sha256": hashlib.sha256(stored).hexdigest()}
    (work / "custody" / "export-anchor.json").write_text(json.dumps(
        {"record_name": name, "store": "local", "key": f"records/{name}", "version_id": None,
         "retain_until": "2126-11-20T00:00:00+00:00", "location": "/srv/evidence/store",
         "last_event_id": events[-1].id, "last_hash": events[-1].hash}, indent=1))
    return name


def write_payload(work: Path, keys: Keys, events: list[Event], payload_bytes: int, package: Package) -> str:
    for folder in ("recordings", "documents", "manifests", "keys", "custody/anchors"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    items = _items_and_manifests(work, keys, events, payload_bytes, package)
    (work / "keys" / f"{keys.fingerprint(ROLE_STATION)}.pem").write_bytes(_public_pem(keys.station.public_key()))
    with (work / "custody" / "events.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e.line(), ensure_ascii=False, sort_keys=True) + "\n" for e in events if e.item)
    with (work / "custody" / "chain.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e.row(), sort_keys=True) + "\n" for e in events if e.id >= SEGMENT_START)
    anchor = _anchors(work, keys, events)
    summary = {"format": "evidence-package/2", "exported_at": EXPORTED_AT.isoformat(), "exported_by": "clerk:李四",
               "reason": "移送法院", "root_key_fingerprint": keys.root_fingerprint,
               "export_key_fingerprint": keys.fingerprint(ROLE_EXPORT), "chain_anchor": anchor,
               "case": {"number": CASE}, "items": items}
    (work / "items.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    written = write_reports(work, root_fingerprint=keys.root_fingerprint)  # report.html and report.pdf
    assert not written.notes, written.notes
    return anchor


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_trust(bag: Path, keys: Keys) -> None:
    """The root tag files: verify.py and trust/ (root and key certificates)."""
    shutil.copyfile(VERIFIER, bag / "verify.py")
    (bag / "VERIFY.txt").write_text("python3 verify.py --trust ROOT_FINGERPRINT .\n", encoding="utf-8")
    (bag / "trust" / "certs").mkdir(parents=True, exist_ok=True)
    (bag / "trust" / "root.pem").write_text(cert_pem(keys.root_cert))
    for role, cert in keys.certs.items():
        (bag / "trust" / "certs" / f"{keys.fingerprint(role)}.pem").write_text(cert_pem(cert))


def seal(bag: Path, export_key: Ed25519PrivateKey | None, *, manifests: bool = False) -> None:
    """Save the bag (tag manifests; with *manifests* the payload manifests too) and sign tagmanifest-sha256.txt."""
    (bag / "tagmanifest-sha256.txt.sig").unlink(missing_ok=True)
    bagit.Bag(str(bag)).save(manifests=manifests)
    if export_key is not None:
        (bag / "tagmanifest-sha256.txt.sig").write_bytes(export_key.sign((bag / "tagmanifest-sha256.txt")
                                                                         .read_bytes()))


def build_package(dest: Path, *, keys: Keys | None = None, payload_bytes: int = 4096,
                  stamp: Callable[[bytes], bytes] | None = None, tsa_ca: bytes | None = None) -> Package:
    """A complete, valid package at *dest* (a new folder). With *stamp* (bytes -> an RFC 3161 TimeStampResp over
    them), timestamped: the export anchor's signed body as data/custody/export-anchor.tsr (its TSA named in
    export-anchor.json's timestamp_signers), the tag manifest as tagmanifest-sha256.txt.tsr; *tsa_ca* is shipped as
    trust/tsa-ca.pem."""
    keys = keys or make_keys()
    events = make_chain()
    package = Package(dest, keys, events)
    dest.mkdir(parents=True)
    anchor = write_payload(dest, keys, events, payload_bytes, package)
    if stamp is not None:
        body = dest / "custody" / "anchors" / f"{Path(anchor).stem}.body.json"
        token = stamp(body.read_bytes())
        (dest / "custody" / "export-anchor.tsr").write_bytes(token)
        where = dest / "custody" / "export-anchor.json"
        where.write_text(json.dumps({**json.loads(where.read_text()), "timestamp_signers": [token_signer(token)]},
                                    indent=1))
    bagit.make_bag(str(dest), bag_info={
        "Source-Organization": "某市城管局", "External-Identifier": CASE, "Package-Format": "evidence-package/2",
        "Root-Key-Fingerprint": keys.root_fingerprint, "Export-Key-Fingerprint": keys.fingerprint(ROLE_EXPORT),
        "Chain-Anchor": anchor}, checksums=["sha256", "sha512"])
    write_trust(dest, keys)
    if tsa_ca is not None:
        (dest / "trust" / "tsa-ca.pem").write_bytes(tsa_ca)
    seal(dest, keys.export)
    if stamp is not None:
        (dest / "tagmanifest-sha256.txt.tsr").write_bytes(stamp((dest / "tagmanifest-sha256.txt").read_bytes()))
    return package
