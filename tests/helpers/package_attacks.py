"""What someone who holds an evidence package (format 2) can do to it: edit files and re-seal the bag with bagit,
rewrite custody history with every hash recomputed, or re-sign everything under a root of their own. Each works on
any package in the contract's layout, the synthetic ones (tests.helpers.synthetic_package) and real exports alike.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bagit
from cryptography.hazmat.primitives import serialization

from catalog.canonical import jcs, legacy_json
from catalog.certificates import ROLE_EXPORT, ROLE_STATION
from catalog.court_report import write_reports
from catalog.event_hashes import link_hash
from catalog.signing import public_key_b64
from tests.helpers.synthetic_package import Keys, make_keys, write_trust

__all__ = ["SIG", "TSR", "drop_line", "edit_json", "forge_with_own_keys", "reseal", "retime_event"]

SIG, TSR = "tagmanifest-sha256.txt.sig", "tagmanifest-sha256.txt.tsr"
EVENTS, CHAIN = "data/custody/events.jsonl", "data/custody/chain.jsonl"


def reseal(bag: Path, info: dict[str, str] | None = None) -> None:
    """Re-save every manifest of the bag after a change (bagit), as an attacker without the export key can: the old
    signature and timestamp files are put back unchanged (they are not in any manifest)."""
    kept = {name: (bag / name).read_bytes() for name in (SIG, TSR) if (bag / name).is_file()}
    for name in kept:
        (bag / name).unlink()
    saved = bagit.Bag(str(bag))
    saved.info.update(info or {})
    saved.save(manifests=True)
    for name, data in kept.items():
        (bag / name).write_bytes(data)


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def drop_line(bag: Path, rel: str, event_id: int) -> None:
    """Delete event *event_id*'s line from events.jsonl or chain.jsonl."""
    rows = _read_lines(bag / rel)
    assert any(r["id"] == event_id for r in rows), f"event {event_id} is not in {rel}"
    _write_lines(bag / rel, [r for r in rows if r["id"] != event_id])


def retime_event(bag: Path, event_id: int, at: datetime) -> None:
    """Move event *event_id* to time *at*: its body and hash, and every hash after it in events.jsonl, chain.jsonl
    and export-anchor.json recomputed with the project's own formulas (what an insider with the tools can do)."""
    events = {e["id"]: e for e in _read_lines(bag / EVENTS)}
    rows = _read_lines(bag / CHAIN)
    event = events[event_id]
    body = json.loads(event["body"])
    body["at"] = event["at"] = at.astimezone(UTC).isoformat(timespec="microseconds")
    event["body"] = (jcs(body) if event["chain_version"] == 2 else legacy_json(body)).decode()
    prev = None
    for row in rows:
        if row["id"] < event_id:
            continue
        prev = row["prev_hash"] if prev is None else prev
        row["prev_hash"] = prev
        if row.get("full"):
            full = events[row["id"]]
            full["prev_hash"], full["hash"] = prev, link_hash(full["chain_version"], prev, full["body"].encode())
            row["hash"] = full["hash"]
        elif row["chain_version"] == 2:
            row["hash"] = hashlib.sha256((prev + row["body_sha256"]).encode()).hexdigest()
        else:
            raise ValueError(f"event {row['id']} is a version-1 row without its body: its hash cannot be recomputed")
        prev = row["hash"]
    _write_lines(bag / EVENTS, list(events.values()))
    _write_lines(bag / CHAIN, rows)
    edit_json(bag / "data/custody/export-anchor.json", lambda d: d.update(last_hash=prev))


def _resign_triple(json_path: Path, body_bytes: bytes, keys: Keys) -> bytes:
    """Sign *body_bytes* with the attacker's station key into the .json/.body.json/.sig; returns the .json bytes."""
    stem = json_path.with_suffix("")
    signature = keys.station.sign(body_bytes)
    document = json.loads(json_path.read_text(encoding="utf-8"))
    document["manifest"] = json.loads(body_bytes)
    document["signature"].update(public_key=public_key_b64(keys.station), key_fingerprint=keys.fingerprint(
        ROLE_STATION), value=base64.b64encode(signature).decode())
    stored = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
    json_path.write_bytes(stored)
    stem.with_name(stem.name + ".body.json").write_bytes(body_bytes)
    stem.with_name(stem.name + ".sig").write_bytes(signature)
    return stored


def _signed_jsons(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(".body.json"))


def forge_with_own_keys(bag: Path, *, edit_manifest: Callable[[dict[str, Any]], None] | None = None) -> Keys:
    """Re-sign the whole package under a root of the attacker's own (new root, new station and export keys with
    certificates from it), optionally after editing every manifest body; the bag re-sealed and signed. Only a
    verifier told which root to trust (--trust) can tell."""
    keys = make_keys("某市城市管理综合执法局", not_before=datetime.now(UTC) - timedelta(days=400), days=3650)
    info = bagit.Bag(str(bag)).info
    renames = {str(info.get("Root-Key-Fingerprint")): keys.root_fingerprint,
               str(info.get("Export-Key-Fingerprint")): keys.fingerprint(ROLE_EXPORT)}
    for path in [*_signed_jsons(bag / "data" / "manifests"), *_signed_jsons(bag / "data" / "custody" / "anchors")]:
        renames[json.loads(path.read_bytes())["signature"]["key_fingerprint"]] = keys.fingerprint(ROLE_STATION)
    for path in _signed_jsons(bag / "data" / "manifests"):
        body = json.loads(path.with_name(path.name[:-5] + ".body.json").read_bytes())
        if edit_manifest is not None:
            edit_manifest(body)
        _resign_triple(path, jcs(body), keys)
    renamed: dict[str, str] = {}
    for path in _signed_jsons(bag / "data" / "custody" / "anchors"):
        body = json.loads(path.with_name(path.name[:-5] + ".body.json").read_bytes())
        previous = body.get("previous") or {}
        if str(previous.get("name", "")).rsplit("/", 1)[-1] in renamed:
            previous["sha256"] = renamed[previous["name"].rsplit("/", 1)[-1]]
        renamed[path.name] = hashlib.sha256(_resign_triple(path, jcs(body), keys)).hexdigest()
    shutil.rmtree(bag / "trust", ignore_errors=True)
    for pem in (bag / "data" / "keys").glob("*.pem"):
        pem.unlink()
    (bag / "data" / "keys" / f"{keys.fingerprint(ROLE_STATION)}.pem").write_bytes(
        keys.station.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    for stamp in [bag / TSR, *(bag / "data" / "custody").glob("*.tsr")]:
        stamp.unlink(missing_ok=True)
    write_trust(bag, keys)
    _rename_keys(bag, renames)
    write_reports(bag / "data", root_fingerprint=keys.root_fingerprint)  # the forger renders the report anew
    (bag / SIG).unlink(missing_ok=True)
    reseal(bag, {"Root-Key-Fingerprint": keys.root_fingerprint,
                 "Export-Key-Fingerprint": keys.fingerprint(ROLE_EXPORT)})
    (bag / SIG).write_bytes(keys.export.sign((bag / "tagmanifest-sha256.txt").read_bytes()))
    return keys



def _rename_keys(bag: Path, renames: dict[str, str]) -> None:
    """Every readable file that names the old keys names the attacker's instead (items.json, the report, …)."""
    readable = [bag / "data" / name for name in ("items.json", "premis.xml", "keys/station-keys.json")]
    for path in [*readable, bag / "VERIFY.txt"]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for old, new in renames.items():
                text = text.replace(old, new)
            path.write_text(text, encoding="utf-8")
