"""Which station signing keys may be trusted: a catalogue row alone is never enough.

A key is trusted only when BOTH
  * the custody chain holds a `key_registered` event naming its fingerprint and public key, and
  * WORM storage holds its key record `keys/<fingerprint>.json`, signed by the key itself (proof that whoever
    published it held the private key), written when the key was registered (or, for a key registered before
    key records existed, the next time its station signs anything).
A row inserted into `station_key` with direct SQL has neither; a `key_registered` event appended by someone
with database rights still has no record in WORM storage. Everything signed with an untrusted key (manifests,
anchors, disposal records) is refused, and `evidence verify` names the key, its station and why.
Once the archive has an agency root (`evidence keys init-root`, catalog.cert_trust), a station key must also
have a valid certificate from it, and what it signed after its revocation or retirement is named.
`build_key_record` and `judge_keys` are pure; `load_key_trust` reads the catalogue and the store.
"""
from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dateutil.relativedelta import relativedelta
from sqlmodel import Session, col, select

from catalog.cert_trust import Certification, load_certification, load_key_uses, use_problems
from catalog.certificates import EXPORT_SUBJECT, ROLE_EXPORT, ROLE_STATION
from catalog.custody import CustodyKind
from catalog.models import CustodyEvent, StationKey
from catalog.signing import SignatureInvalid, TrustedKeys, fingerprint, public_key_b64, sign_document, verify_document
from storage import EvidenceStore, ObjectExists, ObjectMissing, StorageError

__all__ = ["KEY_PREFIX", "KEY_RECORD_FORMAT", "KeyEvent", "KeyRecord", "KeyRow", "KeyTrust", "build_key_record",
           "judge_keys", "key_record_name", "load_key_trust", "publish_key", "read_key_records"]

logger = logging.getLogger(__name__)

KEY_RECORD_FORMAT = "evidence-station-key/1"
KEY_PREFIX = "keys/"
#: Key records are kept for good (every manifest ever signed depends on them); WORM storage needs a date.
KEY_RETENTION = relativedelta(years=100)


def key_record_name(key_fingerprint: str) -> str:
    return f"{KEY_PREFIX}{key_fingerprint}.json"


@dataclass(frozen=True)
class KeyRow:
    """A `station_key` row as the catalogue holds it."""
    fingerprint: str
    station: str
    public_key: str


@dataclass(frozen=True)
class KeyEvent:
    """A `key_registered` custody event."""
    event_id: int
    station: str
    fingerprint: str
    public_key: str


@dataclass(frozen=True)
class KeyRecord:
    """A key record in WORM storage whose self-signature verifies."""
    name: str
    station: str
    fingerprint: str
    public_key: str
    published_at: str


@dataclass
class KeyTrust:
    trusted: TrustedKeys
    problems: list[tuple[str, str]] = field(default_factory=list)  # (subject, what is wrong and why)
    certification: Certification | None = None  # the agency root's judgement, when it was asked for


def build_key_record(station: str, public_b64: str, *, published_at: datetime) -> dict[str, Any]:
    """The body of a station key record (no I/O)."""
    return {"format": KEY_RECORD_FORMAT, "station": station, "fingerprint": fingerprint(public_b64),
            "public_key": public_b64, "algorithm": "Ed25519", "published_at": published_at.isoformat()}


def _parse_record(name: str, data: bytes) -> KeyRecord:
    """A verified key record, or ValueError/SignatureInvalid/KeyError saying why it is not one."""
    document = json.loads(data)
    body = verify_document(document)
    if body.get("format") != KEY_RECORD_FORMAT:
        raise ValueError(f"format {body.get('format')!r} is not {KEY_RECORD_FORMAT!r}")
    public = str(body["public_key"])
    if fingerprint(public) != body["fingerprint"]:
        raise ValueError("its public key does not hash to its fingerprint")
    if document["signature"]["public_key"] != public:
        raise ValueError(f"it is signed by key {document['signature']['key_fingerprint'][:16]}…, not by the key it "
                         "publishes")
    return KeyRecord(name=name, station=str(body["station"]), fingerprint=str(body["fingerprint"]), public_key=public,
                     published_at=str(body.get("published_at")))


#: Per store object: fingerprints this process has seen published (so signing does not re-read the store).
_PUBLISHED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_PUBLISHED_LOCK = threading.Lock()


def _published(store: EvidenceStore) -> set[str]:
    with _PUBLISHED_LOCK:
        try:
            return _PUBLISHED.setdefault(store, set())
        except TypeError:  # a store that cannot be weakly referenced: no cache
            return set()


def publish_key(store: EvidenceStore, key: Ed25519PrivateKey, *, station: str, now: datetime) -> str:
    """Make sure WORM storage holds this key's self-signed record; return its name. Idempotent: an existing valid
    record is kept (records are never rewritten); a name taken by something else gets a dated sibling."""
    public = public_key_b64(key)
    fp = fingerprint(public)
    seen = _published(store)
    name = key_record_name(fp)
    if fp in seen:
        return name
    try:
        _parse_record(name, store.get_record(name))
    except ObjectMissing:
        pass
    except (SignatureInvalid, ValueError, KeyError, TypeError) as exc:
        logger.error("Key record %s in the store is not valid (%s); publishing a dated one beside it.", name, exc)
        name = f"{KEY_PREFIX}{fp}-{now.strftime('%Y%m%dT%H%M%S%f')}.json"
    else:
        seen.add(fp)
        return name
    document = sign_document(build_key_record(station, public, published_at=now), key)
    data = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
    try:
        store.put_record(name, data, retain_until=now + KEY_RETENTION)
    except ObjectExists:  # another process published it at the same moment: check what is there
        _parse_record(name, store.get_record(name))
    seen.add(fp)
    logger.info("Published station key %s of %r to WORM storage as %s.", fp[:16], station, name)
    return name


def read_key_records(store: EvidenceStore) -> tuple[list[KeyRecord], list[tuple[str, str]]]:
    """Every key record in the store that verifies, and (name, problem) for each that does not."""
    records: list[KeyRecord] = []
    problems: list[tuple[str, str]] = []
    for name in store.list_records(KEY_PREFIX):
        try:
            records.append(_parse_record(name, store.get_record(name)))
        except (SignatureInvalid, ValueError, KeyError, TypeError, StorageError) as exc:
            problems.append((name, f"the key record cannot be trusted: {exc}"))
    return records, problems


def _subject(fp: str, station: str) -> str:
    return f"station key {fp} (station {station!r})"


def _disagreements(fp: str, row: KeyRow | None, registered: list[KeyEvent],
                   published: list[KeyRecord] | None) -> list[str]:
    """Where the catalogue row, the chain's key_registered events and the WORM key records disagree about key *fp*
    (each a sentence). Pure."""
    found = []
    if row is not None and fingerprint(row.public_key) != fp:
        found.append(f"the row's public key {row.public_key} hashes to {fingerprint(row.public_key)[:16]}…, not to "
                     "its fingerprint (the row was edited)")
    if row is not None and registered and row.station not in {e.station for e in registered}:
        found.append(f"the row says station {row.station!r}, the chain registered the key for station "
                     f"{registered[0].station!r} (event {registered[0].event_id}): the row was edited")
    if row is None and registered:
        found.append(f"the custody chain registered this key (event {registered[0].event_id}) but the catalogue has "
                     "no station_key row for it (the row was deleted)")
    for record in published or []:
        if registered and record.station not in {e.station for e in registered}:
            found.append(f"the key record {record.name} says station {record.station!r}, the chain registered the "
                         f"key for station {registered[0].station!r}")
    return found


def _untrusted_because(fp: str, station: str, row: KeyRow | None, registered: list[KeyEvent],
                       published: list[KeyRecord] | None) -> str | None:
    """Why key *fp* is not trusted (no key_registered event, or no WORM key record when the store was read), or
    None when it is. Pure."""
    missing = []
    if not registered:
        missing.append("no key_registered event in the custody chain names it")
    if published is not None and not published:
        missing.append(f"WORM storage holds no key record for it ({key_record_name(fp)})")
    if not missing:
        return None
    where = f"a station_key row of station {station!r} names it" if row is not None else \
        f"the custody chain registered it (event {registered[0].event_id})" if registered else "it is known"
    return f"{where}, but {' and '.join(missing)}"


def _grouped(items: Iterable[Any]) -> dict[str, list[Any]]:
    by: dict[str, list[Any]] = {}
    for item in items:
        by.setdefault(item.fingerprint, []).append(item)
    return by


def _uncertified_because(fp: str, station: str, certification: Certification | None) -> str | None:
    """Why key *fp* of *station* lacks the agency root's certificate it needs (None: it has one, or no root)."""
    # The export key is registered as the pseudo-station EXPORT_SUBJECT ("export"), and certified as the export key
    role = ROLE_EXPORT if station == EXPORT_SUBJECT else ROLE_STATION
    why = None if certification is None else certification.why_not(fp, role=role, subject=station)
    return None if why is None else f"it has no valid certificate from the agency root: {why}"


def judge_keys(rows: Iterable[KeyRow], events: Iterable[KeyEvent], records: Iterable[KeyRecord] | None,
               record_problems: Iterable[tuple[str, str]] = (), *,
               certification: Certification | None = None) -> KeyTrust:
    """Decide which keys are trusted and name every key the catalogue, the chain and the store disagree about.

    *records* None: the store was not consulted (trust rests on the chain alone). *certification*: the agency
    root's judgement (catalog.cert_trust); when it has a root, a key also needs its valid certificate. Pure.
    """
    rows_by = {fp: same[0] for fp, same in _grouped(rows).items()}
    events_by = _grouped(events)
    records_by = None if records is None else _grouped(records)
    trusted = TrustedKeys()
    problems: list[tuple[str, str]] = [(name, detail) for name, detail in record_problems]
    rule = ("A key is trusted only with a key_registered event in the chain and its record in WORM storage"
            + (" and, as the archive has an agency root, its certificate" if certification and certification.active
               else ""))
    for fp in sorted(set(rows_by) | set(events_by)):
        row = rows_by.get(fp)
        registered = [e for e in events_by.get(fp, []) if fingerprint(e.public_key) == fp]
        published = None if records_by is None else records_by.get(fp, [])
        station = row.station if row is not None else registered[0].station if registered else "?"
        subject = _subject(fp, station)
        why = _untrusted_because(fp, station, row, registered, published) or \
            _uncertified_because(fp, station, certification)
        if why is not None:
            trusted.untrusted[fp] = why
            problems.append((subject, f"not trusted: {why}. {rule}; manifests, anchors and records signed "
                                      "with it are refused"
                                      + (" (the row was inserted behind the application's back?)"
                                         if row is not None and not registered else "")))
        else:
            trusted.add(fp)
        problems += [(subject, text) for text in _disagreements(fp, row, registered, published)]
    return KeyTrust(trusted=trusted, problems=problems)


def _key_events(session: Session) -> list[KeyEvent]:
    out = []
    for event in session.exec(select(CustodyEvent).where(CustodyEvent.kind == CustodyKind.KEY_REGISTERED.value)
                              .order_by(col(CustodyEvent.id))):
        details: Mapping[str, Any] = event.details if isinstance(event.details, dict) else {}
        if event.id is not None and isinstance(details.get("fingerprint"), str) \
                and isinstance(details.get("public_key"), str):
            out.append(KeyEvent(event_id=event.id, station=str(details.get("station")),
                                fingerprint=details["fingerprint"], public_key=details["public_key"]))
    return out


def load_key_trust(session: Session, store: EvidenceStore | None, *, certificates: bool = True) -> KeyTrust:
    """Judge every key the catalogue or the chain knows (with *store* None: on the chain alone); with
    *certificates* (the default) also the agency root's certificates and what keys signed outside them."""
    rows = [KeyRow(fingerprint=r.fingerprint, station=r.station_code, public_key=r.public_key)
            for r in session.exec(select(StationKey).order_by(col(StationKey.id)))]
    certification = load_certification(session, store) if certificates else None
    if store is None:
        trust = judge_keys(rows, _key_events(session), None, certification=certification)
    else:
        records, record_problems = read_key_records(store)
        trust = judge_keys(rows, _key_events(session), records, record_problems, certification=certification)
    if certification is not None:
        trust.certification = certification
        trust.problems += certification.problems + use_problems(certification,
                                                                load_key_uses(session, certification))
    return trust
