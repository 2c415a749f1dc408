"""Reading the payload of an evidence package (its data/ folder) the way the report and PREMIS writers need it.

The readable files (items.json, events.jsonl) say where things are; the facts about an item come from its signed
manifest bodies (`.body.json`: the exact bytes the station signed), so what is derived from a package can never
say something its signatures do not. Paths in items.json are relative to the bag ("data/recordings/…"); the
functions here take the data/ folder itself (a package being built has no bag around it yet).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PackageFiles", "SignedManifest", "payload_path", "read_package"]


def payload_path(data_dir: Path, bag_path: str) -> Path:
    """The file *bag_path* ("data/…", as items.json writes it) names, inside *data_dir*."""
    return data_dir / bag_path.removeprefix("data/")


@dataclass(frozen=True)
class SignedManifest:
    """One stamp revision of an item as signed: the parsed body, the exact bytes, the signature and its key."""
    revision: int
    body: dict[str, Any]
    body_bytes: bytes
    signature: bytes | None  # the raw Ed25519 signature (.sig), None if the file is missing
    key_fingerprint: str
    body_file: str  # bag path of the .body.json

    @property
    def stamp(self) -> dict[str, Any]:
        stamp = self.body.get("stamp")
        return stamp if isinstance(stamp, dict) else {}


@dataclass(frozen=True)
class PackageFiles:
    data_dir: Path
    summary: dict[str, Any]  # items.json
    events: list[dict[str, Any]]  # custody/events.jsonl, in file (chain) order

    @property
    def items(self) -> list[dict[str, Any]]:
        return list(self.summary.get("items") or [])

    def signed_manifests(self, item: dict[str, Any]) -> list[SignedManifest]:
        """The item's signed manifests, oldest revision first, read from their .body.json and .sig files."""
        found = []
        for entry in sorted(item.get("manifests") or [], key=lambda m: int(m.get("revision", 0))):
            stem = str(entry["signed"]).removesuffix(".json")
            body_path = payload_path(self.data_dir, f"{stem}.body.json")
            sig_path = payload_path(self.data_dir, f"{stem}.sig")
            raw = body_path.read_bytes()
            found.append(SignedManifest(
                revision=int(entry["revision"]), body=json.loads(raw), body_bytes=raw,
                signature=sig_path.read_bytes() if sig_path.is_file() else None,
                key_fingerprint=str(entry.get("key_fingerprint", "")), body_file=f"{stem}.body.json"))
        return found

    def newest_body(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The body of the item's newest signed manifest (None for an item with none, e.g. a disposed one)."""
        manifests = self.signed_manifests(item)
        return manifests[-1].body if manifests else None

    def events_of(self, recording_id: int | None) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("recording_id") == recording_id]

    def optional_json(self, relative: str) -> Any:
        """A JSON file of the payload if it exists (e.g. custody/export-anchor.json), else None."""
        path = self.data_dir / relative
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def chain_rows(self) -> list[dict[str, Any]]:
        """custody/chain.jsonl (package format 2), or no rows for a package without it."""
        path = self.data_dir / "custody" / "chain.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in _lines(path) if line.strip()]


def _lines(path: Path) -> list[str]:
    """A JSON Lines file's lines, split at "\n" only: str.splitlines() would also split inside a value holding
    U+2028, U+2029 or U+0085 (json.dumps with ensure_ascii=False leaves them as they are)."""
    return path.read_text(encoding="utf-8").split("\n")


def read_package(data_dir: Path) -> PackageFiles:
    """items.json and custody/events.jsonl of the package payload in *data_dir*."""
    summary = json.loads((data_dir / "items.json").read_text(encoding="utf-8"))
    events_file = data_dir / "custody" / "events.jsonl"
    lines = _lines(events_file) if events_file.is_file() else []
    return PackageFiles(data_dir, summary, [json.loads(line) for line in lines if line.strip()])
