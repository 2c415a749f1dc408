"""The anchors a package ships: a fresh export anchor, and the newest anchor before the package's chain stretch.

The export anchor is written into WORM storage at export time (catalog.anchors.put_anchor, before the `exported`
events) and names the last event of the stretch in data/custody/chain.jsonl; data/custody/export-anchor.json says
where the store put it (key, version id, location, retain-until), so an examiner with access to the archive's
storage can fetch the same object and compare. Each anchor is shipped as stored (`<name>.json`), as the exact
bytes signed (`<name>.body.json`) and as the raw signature (`<name>.sig`), with the RFC 3161 token WORM storage
holds beside it, if any (`<name>.body.json.tsr`, over the `.body.json` bytes). Only these two anchors are
shipped: an archive's anchors are unbounded.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from catalog.anchors import WrittenAnchor, put_anchor
from catalog.errors import ExportFailed
from catalog.models import CustodyAnchor
from catalog.package.signing_keys import PackageKeys
from catalog.signing import signed_bytes
from catalog.timestamping import NO_TRUSTED_TIME, TsaSettings, describe_token, token_name, token_signer
from storage import EvidenceStore, ObjectMissing

__all__ = ["ANCHOR_DIR", "ShippedAnchor", "prior_anchor", "ship_anchor", "where_stored", "write_export_anchor"]

#: Inside data/.
ANCHOR_DIR = "custody/anchors"


def write_export_anchor(session: Session, store: EvidenceStore, keys: PackageKeys, *, by: str, package: str,
                        now: datetime, tsa: TsaSettings | None) -> WrittenAnchor:
    """Anchor the chain head now, signed with the station key, whatever anchors exist (with a TSA, its RFC 3161
    token is stored beside it in WORM storage). Commits."""
    written = put_anchor(session, store, station=keys.station, key=keys.station_key, actor=by, now=now, force=True,
                         reason=f"export {package}", tsa=tsa)
    if written is None:
        raise ExportFailed("the custody chain is empty, so there is nothing to anchor the package to")
    return written


def prior_anchor(session: Session, first_event: int) -> CustodyAnchor | None:
    """The newest anchor at or before event *first_event* (where the package's chain stretch starts)."""
    return session.exec(select(CustodyAnchor).where(col(CustodyAnchor.last_event_id) <= first_event)
                        .order_by(col(CustodyAnchor.last_event_id).desc(), col(CustodyAnchor.id).desc())).first()


@dataclass(frozen=True)
class ShippedAnchor:
    document: dict[str, Any]  # the signed anchor as stored
    file: str  # its bag path (data/custody/anchors/<name>.json)
    token: bytes | None  # its RFC 3161 token from WORM storage, shipped as <name>.body.json.tsr; None: none


def ship_anchor(store: EvidenceStore, data: Path, record_name: str) -> ShippedAnchor:
    """Copy the anchor *record_name* (and its timestamp token, if WORM storage holds one) from WORM storage into
    data/custody/anchors/: `<name>.json` as stored, `<name>.body.json` the exact bytes signed, `<name>.sig` the raw
    signature, `<name>.body.json.tsr` the token over those bytes."""
    raw = store.get_record(record_name)
    document: dict[str, Any] = json.loads(raw)
    name = record_name.rsplit("/", 1)[-1].removesuffix(".json")
    folder = data / ANCHOR_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_bytes(raw)
    (folder / f"{name}.body.json").write_bytes(signed_bytes(document))
    (folder / f"{name}.sig").write_bytes(base64.b64decode(document["signature"]["value"]))
    try:
        token: bytes | None = store.get_record(token_name(record_name))
    except ObjectMissing:
        token = None
    if token is not None:
        (folder / f"{name}.body.json.tsr").write_bytes(token)
    return ShippedAnchor(document, f"data/{ANCHOR_DIR}/{name}.json", token)


def where_stored(store: EvidenceStore, written: WrittenAnchor, shipped: list[ShippedAnchor]) -> dict[str, Any]:
    """data/custody/export-anchor.json: where WORM storage holds the export anchor (*shipped*[0]), what it says, and
    `timestamp_signers`, the TSA certificates (ESS hash) of every token shipped: signed with the package, so a token
    from any other TSA, added or swapped later, is found. Pure."""
    row, stored, export = written.row, written.stored, shipped[0]
    signers = sorted({s for s in (token_signer(a.token) for a in shipped if a.token) if s})
    return {"record_name": row.record_name, "file": export.file, "store": store.name, "key": stored.key,
            "version_id": stored.version_id, "retain_until": stored.retain_until.isoformat(),
            "location": stored.location, "sha256": stored.sha256, "last_event_id": row.last_event_id,
            "last_hash": row.last_hash, "key_fingerprint": row.key_fingerprint,
            "timestamp": export.file.removesuffix(".json") + ".body.json.tsr" if export.token else None,
            "trusted_time": describe_token(export.token) if export.token else NO_TRUSTED_TIME,
            "timestamp_signers": signers}
