"""How a custody event is hashed into the chain: both formulas, and the digest-only row an outsider can check.

Version 1 (every event before migration 0017):
    hash = SHA-256( prev_hash + "\\n" + legacy_json(body) )
Version 2 (every event from then on):
    hash = SHA-256( prev_hash + SHA-256(jcs(body)) )      (both hex, 128 ASCII characters)
where body = {"kind", "recording_id", "dock_session_id", "actor", "at", "details"} and "at" is the UTC time with
microseconds (catalog.canonical has legacy_json and jcs). Version 2 lets a link be checked from the body's
digest alone, so an evidence package can show the events of other recordings as digest-only rows (no content)
and still prove the chain is unbroken; and its body is RFC 8785, which any language reproduces. The two
inputs never collide: a version-1 input always has a newline at byte 64, a version-2 input never does.
The hash also fixes the version: the same row under the other formula has another hash. Versions never go
down along the chain (a version-1 event after a version-2 one was rewritten: `version_problem`). All pure.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from catalog.canonical import jcs, legacy_json
from catalog.models import CustodyEvent

__all__ = ["CHAIN_VERSION", "CHAIN_VERSIONS", "GENESIS_HASH", "check_digest_rows", "digest_row", "event_body",
           "event_hash", "link_hash", "stored_event_body", "stored_event_hash", "version_problem"]

#: prev_hash of the first event.
GENESIS_HASH = "0" * 64
#: The version new events are written with, and every version a chain may hold.
CHAIN_VERSION = 2
CHAIN_VERSIONS = (1, 2)

_HEX64 = re.compile(r"[0-9a-f]{64}")


def event_body(chain_version: int, *, kind: str, recording_id: int | None, dock_session_id: int | None, actor: str,
               at: datetime, details: dict[str, Any]) -> bytes:
    """The canonical JSON bytes an event's hash covers: legacy for version 1, RFC 8785 from version 2 on."""
    body = {"kind": kind, "recording_id": recording_id, "dock_session_id": dock_session_id, "actor": actor,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "details": details}
    return legacy_json(body) if chain_version == 1 else jcs(body)


def link_hash(chain_version: int, prev_hash: str, body: bytes) -> str:
    """The hash of the link after *prev_hash* whose canonical body is *body*, by the version's formula."""
    if chain_version == 1:
        return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()
    return _v2_hash(prev_hash, hashlib.sha256(body).hexdigest())


def _v2_hash(prev_hash: str, body_sha256: str) -> str:
    """Version 2: SHA-256 over the previous hash and the body's SHA-256, both as hex (ASCII)."""
    return hashlib.sha256((prev_hash + body_sha256).encode("ascii")).hexdigest()


def event_hash(prev_hash: str, *, chain_version: int, kind: str, recording_id: int | None,
               dock_session_id: int | None, actor: str, at: datetime, details: dict[str, Any]) -> str:
    """The hash of an event with these values following *prev_hash*, by *chain_version*'s formula."""
    body = event_body(chain_version, kind=kind, recording_id=recording_id, dock_session_id=dock_session_id,
                      actor=actor, at=at, details=details)
    return link_hash(chain_version, prev_hash, body)


def stored_event_body(event: CustodyEvent) -> bytes:
    """The exact bytes *event*'s hash covers (a package ships them beside a full event), from the row as stored."""
    assert event.at is not None
    return event_body(event.chain_version, kind=event.kind, recording_id=event.recording_id,
                      dock_session_id=event.dock_session_id, actor=event.actor, at=event.at, details=event.details)


def stored_event_hash(event: CustodyEvent) -> str:
    """What *event*'s hash must be, recomputed from the row as stored (its prev_hash, content and chain version).

    A version no formula knows gives a text that never equals a hash (the chain walk names the version)."""
    if event.chain_version not in CHAIN_VERSIONS:
        return f"unknown chain version {event.chain_version}"
    return link_hash(event.chain_version, event.prev_hash, stored_event_body(event))


def version_problem(previous: int, current: int) -> str | None:
    """Why a link of version *current* cannot follow the highest version before it (*previous*); None if it can."""
    if current not in CHAIN_VERSIONS:
        return f"chain version {current} is unknown (known: {', '.join(map(str, CHAIN_VERSIONS))})"
    if current < previous:
        return (f"chain version {current} after version {previous}: versions never go down along the chain "
                "(an event rewritten with the older formula, a downgrade forgery, or written by a process older "
                "than the catalogue's schema)")
    return None


def digest_row(event: CustodyEvent) -> dict[str, Any]:
    """The event as a digest-only row: enough to check its link without its content (version 2 only)."""
    if event.chain_version != 2:
        raise ValueError(f"event {event.id} is chain version {event.chain_version}: its hash covers the whole "
                         "body, so only the full event proves its link")
    return {"id": event.id, "chain_version": 2, "prev_hash": event.prev_hash,
            "body_sha256": hashlib.sha256(stored_event_body(event)).hexdigest(), "hash": event.hash}


def _row_problems(row: Mapping[str, Any], prev_hash: str | None) -> list[str]:
    problems: list[str] = []
    if prev_hash is not None and row.get("prev_hash") != prev_hash:
        problems.append(f"prev_hash {str(row.get('prev_hash'))[:16]}… does not follow the row before it "
                        f"({prev_hash[:16]}…): a row between them was left out, added or moved")
    if row.get("chain_version") != 2:
        problems.append(f"chain version {row.get('chain_version')!r}: only a version-2 link can be checked from a "
                        "digest")
    elif not (isinstance(row.get("body_sha256"), str) and _HEX64.fullmatch(row["body_sha256"])
              and isinstance(row.get("prev_hash"), str)):
        problems.append(f"body_sha256 {row.get('body_sha256')!r} is not a SHA-256 in lower-case hex")
    elif _v2_hash(row["prev_hash"], row["body_sha256"]) != row.get("hash"):
        problems.append(f"hash {str(row.get('hash'))[:16]}… is not SHA-256(prev_hash + body_sha256) = "
                        f"{_v2_hash(row['prev_hash'], row['body_sha256'])[:16]}… (the row or its body digest was "
                        "changed)")
    return problems


def check_digest_rows(rows: Iterable[Mapping[str, Any]], *, prev_hash: str | None = GENESIS_HASH) -> list[str]:
    """Every problem in a run of digest-only rows (`digest_row`), in chain order; empty: the run links up.

    *prev_hash*: the hash the first row must follow (None: take the first row's prev_hash as given, for a run
    that starts mid-chain at a point proven otherwise, e.g. by a signed anchor)."""
    problems: list[str] = []
    last_id: Any = None
    for row in rows:
        row_id = row.get("id")
        if isinstance(last_id, int) and not (isinstance(row_id, int) and row_id > last_id):
            problems.append(f"row {row_id!r}: ids must increase along the chain (it follows {last_id})")
        problems.extend(f"row {row_id!r}: {detail}" for detail in _row_problems(row, prev_hash))
        prev_hash, last_id = str(row.get("hash")), row_id
    return problems
