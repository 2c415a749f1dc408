"""Custody anchors: the chain head, signed and written to WORM storage, so a rewritten database is caught.

An anchor names the last event (id and hash) at the time it was written,
and the anchor written before it (name and SHA-256 of its bytes), so the
anchors form a chain of their own. Anyone holding the store can later check
that the catalogue's event with that id still has that hash; rewriting,
deleting or reordering history before an anchor cannot be hidden without
also rewriting WORM objects, which Object Lock forbids, and an anchor
deleted from the store is named by the anchor after it and by the
catalogue's `custody_anchor` row. Anchors are written by default after
every dock session, disposal batch and `evidence verify`, and every
EVIDENCE_ANCHOR_INTERVAL_S by `station watch` and `worker --schedule`; what
happened after the newest anchor is the only stretch of history that can be
cut off the end of the chain unseen. `check_anchors`, `check_anchor_links`,
`check_recorded_anchors` and `check_head` are pure.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from catalog.event_hashes import GENESIS_HASH
from catalog.key_trust import load_key_trust
from catalog.manifests import ensure_station_key, publish_own_key, software_version
from catalog.models import CustodyAnchor, CustodyHead
from catalog.signing import SignatureInvalid, sign_document, signed_bytes, verify_document
from catalog.timestamping import (
    NO_TRUSTED_TIME,
    TOKEN_SUFFIX,
    TsaSettings,
    stamp_record,
    stored_token_findings,
    trusted_time_statement,
)
from storage import EvidenceStore, ObjectMissing, StorageError, StoredObject

__all__ = ["ANCHOR_FORMAT", "ANCHOR_PREFIX", "Anchor", "WrittenAnchor", "anchor_quietly", "chain_end_problems",
           "check_anchor_links", "check_anchors", "check_head", "check_recorded_anchors", "put_anchor", "read_anchors",
           "recorded_anchor_problems", "write_anchor"]

logger = logging.getLogger(__name__)

ANCHOR_FORMAT = "evidence-custody-anchor/1"
ANCHOR_PREFIX = "custody/"
#: Anchors are kept for good; WORM storage needs a date, so: a century.
ANCHOR_RETENTION = relativedelta(years=100)


@dataclass(frozen=True)
class Anchor:
    name: str  # record name in the store
    last_event_id: int
    last_hash: str
    written_at: str
    station: str
    key_fingerprint: str
    sha256: str = ""  # of the record's bytes
    previous_name: str | None = None  # the anchor written before this one, as the writer knew it
    previous_sha256: str | None = None
    reason: str = ""
    trusted_time: str = NO_TRUSTED_TIME  # "RFC 3161 time …" from the token stored beside it (catalog.timestamping)


@dataclass(frozen=True)
class WrittenAnchor:
    """An anchor just written: its catalogue row, and where WORM storage put it (key, version id, location,
    retain-until), which an evidence package records so an examiner can fetch the same object."""
    row: CustodyAnchor
    stored: StoredObject
    token: StoredObject | None = None  # its RFC 3161 token beside it (EVIDENCE_TSA_URL; None: no trusted time)


def write_anchor(session: Session, store: EvidenceStore, *, station: str, key: Any, actor: str,
                 now: datetime, force: bool = False, reason: str = "",
                 tsa: TsaSettings | None = None) -> CustodyAnchor | None:
    """Write the current chain head to the store (signed); None if the head is already anchored. Commits."""
    written = put_anchor(session, store, station=station, key=key, actor=actor, now=now, force=force, reason=reason,
                         tsa=tsa)
    return None if written is None else written.row


def put_anchor(session: Session, store: EvidenceStore, *, station: str, key: Any, actor: str,
               now: datetime, force: bool = False, reason: str = "",
               tsa: TsaSettings | None = None) -> WrittenAnchor | None:
    """`write_anchor`, also saying where the store put the record. Commits. With a TSA (*tsa*.tsa_url), the signed
    bytes are then timestamped (RFC 3161) and the token stored beside the record; a TSA that fails is a warning."""
    publish_own_key(session, store, key, fallback_station=station)  # a key registered before key records existed
    head = session.get(CustodyHead, 1, populate_existing=True)
    if head is None or head.last_event_id is None:
        return None
    latest = session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.last_event_id).desc(),
                                                         col(CustodyAnchor.id).desc())).first()
    if latest is not None and latest.last_event_id == head.last_event_id and not force:
        return None
    ensure_station_key(session, station, key, actor=actor, store=store)
    session.flush()
    head = session.get(CustodyHead, 1, populate_existing=True)  # registering the key may have appended an event
    assert head is not None and head.last_event_id is not None
    previous = session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id).desc())).first()
    link: dict[str, Any] | None = None
    if previous is not None:
        try:
            link = {"name": previous.record_name,
                    "sha256": hashlib.sha256(store.get_record(previous.record_name)).hexdigest()}
        except ObjectMissing:
            logger.error("The previous custody anchor %s is missing from the store.", previous.record_name)
            link = {"name": previous.record_name, "sha256": None}
    body = {"format": ANCHOR_FORMAT, "last_event_id": head.last_event_id, "last_hash": head.last_hash,
            "written_at": now.isoformat(), "station": station, "previous": link, "reason": reason,
            "software": {"name": "evidence-ingest", "version": software_version()},
            "trusted_time": trusted_time_statement(tsa)}
    document = sign_document(body, key)
    name = f"{ANCHOR_PREFIX}anchor-{head.last_event_id:012d}-{station}-{now.strftime('%Y%m%dT%H%M%S%f')}.json"
    stored = store.put_record(name, json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode(),
                              retain_until=now + ANCHOR_RETENTION)
    row = CustodyAnchor(last_event_id=head.last_event_id, last_hash=head.last_hash, written_at=now,
                        written_by=actor, record_name=name,
                        key_fingerprint=document["signature"]["key_fingerprint"])
    session.add(row)
    session.commit()
    # After the commit: no database lock is held while the TSA answers.
    token = stamp_record(store, name, signed_bytes(document), tsa, retain_until=now + ANCHOR_RETENTION)
    return WrittenAnchor(row, stored, token)


def anchor_quietly(session: Session, store: EvidenceStore, *, station: str, key: Any, actor: str, now: datetime,
                   reason: str, tsa: TsaSettings | None = None) -> CustodyAnchor | None:
    """`write_anchor` after some other work is done (a dock session, a disposal, a verify run): a store or
    database that is away is logged, never raised (the next anchor covers these events too). Commits."""
    try:
        row = write_anchor(session, store, station=station, key=key, actor=actor, now=now, reason=reason, tsa=tsa)
    except (StorageError, SQLAlchemyError, OSError) as exc:
        session.rollback()
        logger.error("Could not anchor the custody chain after %s: %s (the next anchor covers it).", reason, exc)
        return None
    if row is not None:
        logger.info("Custody chain anchored at event %s after %s (%s).", row.last_event_id, reason, row.record_name)
    return row


def read_anchors(store: EvidenceStore, *, trusted: set[str] | None,
                 tsa_ca: str = "") -> tuple[list[Anchor], list[tuple[str, str]]]:
    """Every anchor in the store whose signature verifies, and (name, problem) for each that does not, and for
    each RFC 3161 token beside an anchor that does not stamp its signed bytes (catalog.timestamping; with *tsa_ca*,
    EVIDENCE_TSA_CA, or is not signed by that TSA)."""
    anchors: list[Anchor] = []
    problems: list[tuple[str, str]] = []
    names = store.list_records(ANCHOR_PREFIX)
    signed: dict[str, bytes] = {}
    for name in (n for n in names if not n.endswith(TOKEN_SUFFIX)):
        try:
            data = store.get_record(name)
            document = json.loads(data)
            body = verify_document(document, trusted_fingerprints=trusted)
            signed[name] = signed_bytes(document)
            previous = body.get("previous") or {}
            anchors.append(Anchor(name=name, last_event_id=int(body["last_event_id"]), last_hash=body["last_hash"],
                                  written_at=body["written_at"], station=body["station"],
                                  key_fingerprint=document["signature"]["key_fingerprint"],
                                  sha256=hashlib.sha256(data).hexdigest(), previous_name=previous.get("name"),
                                  previous_sha256=previous.get("sha256"), reason=str(body.get("reason") or "")))
        except (SignatureInvalid, KeyError, ValueError, TypeError, AttributeError, StorageError) as exc:
            problems.append((name, f"the anchor cannot be trusted: {exc}"))
    times, token_problems = stored_token_findings(store, signed, names, tsa_ca)
    anchors = [replace(a, trusted_time=times.get(a.name, NO_TRUSTED_TIME)) for a in anchors]
    return anchors, problems + token_problems


def check_anchors(anchors: list[Anchor], hashes: Mapping[int, str],
                  last_event_id: int | None) -> list[tuple[str, str]]:
    """(anchor name, problem) for every anchor the chain no longer agrees with.

    *hashes*: event id -> hash, for the anchored ids the catalogue still has.
    """
    problems: list[tuple[str, str]] = []
    for anchor in anchors:
        found = hashes.get(anchor.last_event_id)
        if found is None:
            cut = (f"; the chain now ends at event {last_event_id}, so at least events {last_event_id + 1}.."
                   f"{anchor.last_event_id} were cut off its end" if last_event_id is not None
                   and anchor.last_event_id > last_event_id else " (deleted)")
            problems.append((anchor.name, f"written {anchor.written_at}, it names event {anchor.last_event_id} "
                            f"with hash {anchor.last_hash[:16]}…; the catalogue has no event {anchor.last_event_id}"
                            f"{cut}"))
        elif found != anchor.last_hash:
            problems.append((anchor.name, f"written {anchor.written_at}, it says event {anchor.last_event_id} "
                            f"has hash {anchor.last_hash[:16]}…; the catalogue's event has {found[:16]}… "
                            "(history up to that event was rewritten)"))
    return problems


def check_anchor_links(anchors: Iterable[Anchor], stored: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """(anchor name, problem) for every anchor whose predecessor is gone from the store or changed.

    *stored*: record name -> SHA-256 of its bytes (None: present but unreadable) for every anchor the store lists.
    Pure."""
    problems: list[tuple[str, str]] = []
    for anchor in anchors:
        if anchor.previous_name is None:
            continue
        if anchor.previous_name not in stored:
            problems.append((anchor.previous_name, f"the anchor {anchor.name} (written {anchor.written_at}) names "
                                                   f"it as the anchor before it, but the store no longer holds it "
                                                   "(deleted from WORM storage)"))
        elif anchor.previous_sha256 is not None and stored[anchor.previous_name] not in (None, anchor.previous_sha256):
            problems.append((anchor.previous_name, f"the anchor {anchor.name} (written {anchor.written_at}) names it "
                                                   f"with SHA-256 {anchor.previous_sha256[:16]}…; the store's copy "
                                                   f"hashes to {str(stored[anchor.previous_name])[:16]}… (rewritten)"))
    return problems


def check_recorded_anchors(rows: Iterable[tuple[str, int, str]], stored: Iterable[str]) -> list[tuple[str, str]]:
    """(anchor name, problem) for each anchor the catalogue's `custody_anchor` table says was written but the store
    does not list. *rows*: (record name, last event id, written at). Pure."""
    present = set(stored)
    return [(name, f"the catalogue records this anchor (event {event_id}, written {written_at}) but the store no "
                   "longer holds it (deleted from WORM storage)")
            for name, event_id, written_at in rows if name not in present]


def check_head(head: tuple[int | None, str] | None, *, last_event_id: int | None, last_hash: str,
               genesis: str) -> list[tuple[str, str]]:
    """Problems with the chain head row (last event id, last hash) against the last event walked. Pure."""
    if head is None:
        return [] if last_event_id is None else [
            ("chain head", f"the chain head row is missing, the last event is {last_event_id} with "
                           f"{last_hash[:16]}… (the row was deleted)")]
    head_id, head_hash = head
    if head_hash != last_hash:
        return [("chain head", f"the head says {head_hash[:16]}… (event {head_id}), the last event is "
                               f"{last_event_id} with {last_hash[:16]}… (events after it were deleted, or the head "
                               "row was edited)")]
    if head_id != last_event_id and not (head_id is None and last_hash == genesis):
        return [("chain head", f"the head names event {head_id}, but the last event, whose hash it holds, is "
                               f"{last_event_id} (the head row was edited)")]
    return []


def recorded_anchor_problems(session: Session, store: EvidenceStore, anchors: list[Anchor],
                             unreadable: Iterable[str]) -> list[tuple[str, str]]:
    """Anchors missing from the store: named by the anchor after them, or by the catalogue's anchor table."""
    stored: dict[str, str | None] = {a.name: a.sha256 for a in anchors}
    stored.update({name: None for name in unreadable})
    rows = [(r.record_name, r.last_event_id, r.written_at.isoformat() if r.written_at else "?")
            for r in session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id)))]
    problems = check_anchor_links(anchors, stored)
    named = {name for name, _ in problems}
    problems.extend(p for p in check_recorded_anchors(rows, stored) if p[0] not in named)
    return problems


def chain_end_problems(session: Session, store: EvidenceStore, anchors: list[Anchor],
                       anchor_problems: Iterable[tuple[str, str]], *, last_event_id: int | None,
                       last_hash: str) -> list[tuple[str, str, str]]:
    """(kind, subject, detail) for what `evidence verify` checks at the end of the chain walk: the head row, anchors
    missing from the store, and station keys that are not trusted (`catalog.key_trust`)."""
    head = session.get(CustodyHead, 1, populate_existing=True)
    out = [("chain", subject, detail) for subject, detail in check_head(
        None if head is None else (head.last_event_id, head.last_hash), last_event_id=last_event_id,
        last_hash=last_hash, genesis=GENESIS_HASH)]
    out.extend(("anchor", name, detail) for name, detail in recorded_anchor_problems(
        session, store, anchors, [name for name, _ in anchor_problems]))
    out.extend(("key", subject, detail) for subject, detail in load_key_trust(session, store).problems)
    return out
