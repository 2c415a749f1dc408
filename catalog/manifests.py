"""Signed manifests: what the catalog knows about a recording, sealed into WORM storage.

One manifest per stamp revision (`r1` at ingest, `r2`… after each re-stamp),
signed with the station's Ed25519 key and stored under Object Lock beside
the recording, so the stamp and custody of a recording can be checked
without trusting the database. `build_manifest` is pure.
"""
from __future__ import annotations

import functools
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import NoResultFound
from sqlmodel import Session, col, select

from catalog.custody import CustodyKind, NewEvent, append_event, append_events
from catalog.db import begin_write
from catalog.key_trust import load_key_trust, publish_key
from catalog.models import CustodyEvent, Recording, Sighting, StampRevision, Station, StationKey
from catalog.recordings import ensure_station
from catalog.signing import SignatureInvalid, TrustedKeys, fingerprint, public_key_b64, sign_document, verify_document
from catalog.types import utcnow
from storage import EvidenceStore, ObjectExists, ObjectMissing, StorageError, StoredObject

__all__ = ["MANIFEST_FORMAT", "MANIFEST_MISSING", "build_manifest", "ensure_station_key", "publish_own_key",
           "read_manifest", "read_manifests", "signed_retain_until", "software_version", "stored_manifest",
           "trusted_fingerprints",
           "write_manifest", "write_manifests"]

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "evidence-manifest/1"
#: What `read_manifests` says of a revision whose manifest the store does not hold.
MANIFEST_MISSING = "the signed manifest is missing from the store"


@functools.cache
def software_version() -> str:
    try:
        return metadata.version("evidence-ingest")
    except metadata.PackageNotFoundError:
        return "unknown"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build_manifest(recording: Recording, revision: StampRevision, sightings: list[Sighting],
                   events: list[CustodyEvent], *, signed_at: datetime, version: str) -> dict[str, Any]:
    """The manifest body for one stamp revision (no I/O)."""
    return {
        "format": MANIFEST_FORMAT,
        "sha256": recording.sha256,
        "size_bytes": recording.size_bytes,
        "original_name": recording.original_name,
        "media": {"kind": recording.media_kind, "container": recording.container,
                  "video_codec": recording.video_codec, "audio_codec": recording.audio_codec,
                  "duration_s": recording.duration_s, "width": recording.width, "height": recording.height},
        "device_serial": recording.device_serial,
        "officer": {"number": recording.officer_number, "name": recording.officer_name},
        "station": recording.station_code,
        "capture": {"start": _iso(recording.captured_start), "end": _iso(recording.captured_end),
                    "raw_device_time": recording.raw_device_time, "time_source": recording.time_source,
                    "zone_assumed": recording.zone_assumed, "clock_offset_s": recording.clock_offset_s},
        "stamp": {"revision": revision.revision, "case_number": revision.case_number,
                  "captured_start": _iso(revision.captured_start),
                  "place": ({"lat": revision.lat, "lon": revision.lon, "source": revision.place_source}
                            if revision.lat is not None else None),
                  "collector": revision.collector, "purpose": revision.purpose, "important": revision.important,
                  "changed_by": revision.changed_by, "changed_at": _iso(revision.changed_at),
                  "reason": revision.reason, "changes": revision.changes},
        "integrity": {"status": recording.integrity_status, "detail": recording.integrity_detail},
        "retain_until": _iso(recording.retain_until),
        "sightings": [{"device_serial": s.device_serial, "device_path": s.device_path, "seen_at": _iso(s.seen_at)}
                      for s in sightings],
        "custody": [{"id": e.id, "kind": e.kind, "at": _iso(e.at), "actor": e.actor, "hash": e.hash}
                    for e in events],
        **({"redaction": recording.technical["redaction"]} if "redaction" in (recording.technical or {}) else {}),
        "software": {"name": "evidence-ingest", "version": version},
        "signed_at": signed_at.isoformat(),
    }


def ensure_station_key(session: Session, station_code: str, key: Ed25519PrivateKey, *, actor: str,
                       station_name: str = "", store: EvidenceStore | None = None) -> StationKey:
    """Register the station's public key once (a custody event records it); the station row too if missing.

    With *store*, also make sure WORM storage holds the key's self-signed record (see `catalog.key_trust`): a key is
    trusted only with both. Without it (a station working while the archive is away) the record is written the
    first time the key signs a manifest or an anchor."""
    if session.get(Station, station_code) is None:
        ensure_station(session, station_code, name=station_name)
    public = public_key_b64(key)
    found = session.exec(select(StationKey).where(StationKey.fingerprint == fingerprint(public))).first()
    if found is None:
        found = StationKey(station_code=station_code, fingerprint=fingerprint(public), public_key=public,
                           created_at=utcnow())
        session.add(found)
        append_event(session, CustodyKind.KEY_REGISTERED, actor=actor,
                     details={"station": station_code, "fingerprint": found.fingerprint, "public_key": public})
    if store is not None:
        publish_key(store, key, station=found.station_code, now=utcnow())
    return found


def publish_own_key(session: Session, store: EvidenceStore, key: Ed25519PrivateKey, *, fallback_station: str) -> None:
    """Before signing anything into *store*: its key record must be there (written once; cached per process)."""
    row = session.exec(select(StationKey.station_code).where(
        StationKey.fingerprint == fingerprint(public_key_b64(key)))).first()
    publish_key(store, key, station=row or fallback_station, now=utcnow())


def trusted_fingerprints(session: Session, store: EvidenceStore | None = None) -> TrustedKeys:
    """Keys with a `key_registered` event in the custody chain and (given *store*) a key record in WORM storage;
    the result also says, for each known but untrusted key, why (see `catalog.key_trust`). A `station_key` row
    alone is not trust: anyone with database rights can insert one."""
    return load_key_trust(session, store).trusted


def write_manifest(session: Session, store: EvidenceStore, recording: Recording, key: Ed25519PrivateKey, *,
                   actor: str) -> StoredObject:
    """Sign the recording's current stamp revision and store it under WORM retention (`write_manifests` of one).

    Raises StorageError (ObjectExists, BackendUnavailable…) when the store does not take it."""
    outcome = write_manifests(session, store, [recording], key, actor=actor)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def write_manifests(session: Session, store: EvidenceStore, recordings: Sequence[Recording], key: Ed25519PrivateKey,
                    *, actor: str) -> list[StoredObject | StorageError]:
    """Sign each recording's current stamp revision and store the manifests under WORM retention, together: the
    catalogue read in three queries, the store asked once (`put_manifests` where it has it), one `manifested`
    custody event per manifest stored, appended together.

    Returns each recording's outcome in order: its stored manifest, or the StorageError that kept it out of the store
    (no event then). Any other error (a manifest that cannot be signed) is raised."""
    if not recordings:
        return []
    session.flush()
    documents = _signed_documents(session, store, recordings, key)
    outcomes = _put_manifests(store, [(recording.sha256, document["manifest"]["stamp"]["revision"],
                                       json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode(),
                                       recording.retain_until)
                                      for recording, document in zip(recordings, documents, strict=True)])
    adopted: set[int] = set()
    recorded: set[int] = set()  # adopted by another worker meanwhile: nothing to record
    for i, (recording, outcome) in enumerate(zip(recordings, outcomes, strict=True)):
        if isinstance(outcome, ObjectExists) and (adoption := _adopt(session, store, recording, key)) is not None:
            documents[i], outcomes[i], fresh = adoption
            (adopted if fresh else recorded).add(i)
    # Every manifest the store took is recorded, also when another one failed in a way that is raised below.
    append_events(session, [NewEvent(CustodyKind.MANIFESTED, actor, recording_id=recording.id, details={
        "revision": recording.stamp_revision, "key": outcome.key,
        "key_fingerprint": document["signature"]["key_fingerprint"], **(ADOPTED if i in adopted else {})})
        for i, (recording, document, outcome) in enumerate(zip(recordings, documents, outcomes, strict=True))
        if isinstance(outcome, StoredObject) and i not in recorded])
    found: list[StoredObject | StorageError] = []
    for outcome in outcomes:
        if not isinstance(outcome, StoredObject | StorageError):
            raise outcome
        found.append(outcome)
    return found


#: What a `manifested` event adds when the manifest was stored by a run that stopped before recording it.
ADOPTED = {"adopted": "stored by an earlier run that stopped before recording it; signed by this station's key and "
                      "identical to the manifest the catalogue gives for the same moment, checked before it was "
                      "recorded"}
#: The largest stored manifest read for adoption (a planted giant is refused unread).
_MAX_ADOPTED_BYTES = 16 * 1024 * 1024


def _adopt(session: Session, store: EvidenceStore, recording: Recording,
           key: Ed25519PrivateKey) -> tuple[dict[str, Any], StoredObject, bool] | None:
    """The manifest of *recording*'s current stamp revision that the store already holds, when it is the one a run of
    this station killed between storing it and committing its `manifested` event left: a write-once store refuses a
    second, differently timed signature of the same revision for ever.

    Adopted only if *key* (this station's) signed it, its bytes are exactly as `write_manifests` writes them, and its
    body is exactly the manifest the catalogue gives now for the moment it was signed (`_as_signed_then`). Returns
    (document, what the store holds, whether its `manifested` event is still to be recorded: False when another
    worker adopted or wrote it meanwhile), or None: the refusal stands and `evidence verify` names the manifest."""
    assert recording.id is not None and recording.retain_until is not None
    number = recording.stamp_revision
    document = _stored_document(store, recording.sha256, number, trusted={fingerprint(public_key_b64(key))})
    if document is None:
        return None
    body = document["manifest"]
    if not isinstance(body, dict) or body != _as_signed_then(session, recording, body):
        return None
    try:  # the same bytes again: the store says what it holds
        stored = store.put_manifest(recording.sha256, number, _manifest_bytes(document),
                                    retain_until=recording.retain_until)
    except StorageError:
        return None
    begin_write(session)  # the custody head: a worker adopting or writing the same manifest has committed first
    if _manifested_revision(session, recording.id, number):
        return document, stored, False
    logger.warning("Recording %r: manifest r%d was stored by a run that stopped before recording it; checked and "
                   "recorded now.", recording.id, number)
    return document, stored, True


def _manifest_bytes(document: dict[str, Any]) -> bytes:
    """A signed manifest as the store holds it (the one serialisation write_manifests uses)."""
    return json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()


def _stored_document(store: EvidenceStore, sha256: str, number: int, *, trusted: set[str]) -> dict[str, Any] | None:
    """The stored manifest's document if `stored_manifest` accepts it (signed by a key of *trusted*), else None."""
    try:
        data = store.get_manifest(sha256, number)
        return stored_manifest(data, trusted=trusted) if len(data) <= _MAX_ADOPTED_BYTES else None
    except (StorageError, ValueError, SignatureInvalid):
        return None


def _as_signed_then(session: Session, recording: Recording, body: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest body the catalogue gives for *recording*'s current revision at the moment *body* says it was
    signed (its custody events up to the last one *body* lists, its sightings seen by then), with *body*'s signing
    time and software version; its retain-until *body*'s when the catalogue's is not earlier (retention only grows
    after signing). None when *body* does not say those."""
    try:
        signed_at = datetime.fromisoformat(body["signed_at"])
        version = str(body["software"]["version"])
        last_listed = max((int(e["id"]) for e in body["custody"]), default=0)
    except (KeyError, TypeError, ValueError):
        return None
    assert recording.id is not None
    revision = session.exec(select(StampRevision).where(StampRevision.recording_id == recording.id,
                                                        StampRevision.revision == recording.stamp_revision)).first()
    if revision is None:
        return None
    events = [e for e in _of_recordings(session, CustodyEvent, [recording.id]) if (e.id or 0) <= last_listed]
    sightings = [s for s in _of_recordings(session, Sighting, [recording.id])
                 if s.seen_at is not None and s.seen_at <= signed_at]
    rebuilt = json.loads(json.dumps(build_manifest(recording, revision, sightings, events, signed_at=signed_at,
                                                   version=version)))
    signed_until = signed_retain_until(body)
    if signed_until is not None and recording.retain_until is not None and recording.retain_until >= signed_until:
        rebuilt["retain_until"] = body.get("retain_until")
    return dict(rebuilt)


def _manifested_revision(session: Session, recording_id: int, number: int) -> bool:
    """Whether a `manifested` event of revision *number* of the recording is in the catalogue."""
    return any((event.details or {}).get("revision") == number for event in session.exec(
        select(CustodyEvent).where(CustodyEvent.recording_id == recording_id,
                                   CustodyEvent.kind == CustodyKind.MANIFESTED.value)))


def _signed_documents(session: Session, store: EvidenceStore, recordings: Sequence[Recording],
                      key: Ed25519PrivateKey) -> list[dict[str, Any]]:
    """Each recording's manifest for its current stamp revision, signed (its key record published first)."""
    ids = [recording.id for recording in recordings]
    assert all(ids) and all(recording.retain_until is not None for recording in recordings)
    revisions = {(r.recording_id, r.revision): r for r in _of_recordings(session, StampRevision, ids)}
    sightings = _by_recording(_listed_of_recordings(session, Sighting, ids))
    events = _by_recording(_listed_of_recordings(session, CustodyEvent, ids))
    for station in dict.fromkeys(recording.station_code for recording in recordings):
        publish_own_key(session, store, key, fallback_station=station)
    documents = []
    for recording in recordings:
        assert recording.id is not None
        revision = revisions.get((recording.id, recording.stamp_revision))
        if revision is None:
            raise NoResultFound(f"recording {recording.id} has no stamp revision {recording.stamp_revision}")
        body = build_manifest(recording, revision, sightings.get(recording.id, []), events.get(recording.id, []),
                              signed_at=utcnow(), version=software_version())
        documents.append(sign_document(body, key))
    return documents


_Row = TypeVar("_Row", StampRevision, Sighting, CustodyEvent)


def _of_recordings(session: Session, table: type[_Row], ids: list[int | None]) -> list[_Row]:
    """The rows of *table* that belong to the recordings *ids*, in id order."""
    return list(session.exec(select(table).where(col(table.recording_id).in_(ids)).order_by(col(table.id))))


#: What a manifest lists of a recording's sightings and custody events (`build_manifest` reads these, no more).
_LISTED: dict[type[Any], tuple[str, ...]] = {
    Sighting: ("recording_id", "device_serial", "device_path", "seen_at"),
    CustodyEvent: ("recording_id", "id", "kind", "at", "actor", "hash")}


def _listed_of_recordings(session: Session, table: type[Sighting | CustodyEvent], ids: list[int | None]) -> list[Any]:
    """`_of_recordings` for the columns a manifest lists (`_LISTED`): plain rows, read without building an ORM
    object for each (a tenth of the ingest thread's time for a dock of photos went to reading these back)."""
    columns = [getattr(table, name) for name in _LISTED[table]]
    return list(session.execute(select(*columns).where(col(table.recording_id).in_(ids)).order_by(col(table.id))))


def _by_recording(rows: Sequence[Any]) -> dict[int | None, list[Any]]:
    grouped: defaultdict[int | None, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row.recording_id].append(row)
    return grouped


def _put_manifests(store: EvidenceStore, manifests: list[tuple[str, int, bytes, datetime | None]]
                   ) -> list[StoredObject | Exception]:
    """Each manifest's outcome from the store: together where the store can (`put_manifests`), else one by one."""
    put_all = getattr(store, "put_manifests", None)
    if put_all is not None and len(manifests) > 1:
        outcomes: list[StoredObject | Exception] = put_all(manifests)
        return outcomes
    found: list[StoredObject | Exception] = []
    for sha256, revision, data, retain_until in manifests:
        assert retain_until is not None
        try:
            found.append(store.put_manifest(sha256, revision, data, retain_until=retain_until))
        except Exception as exc:  # noqa: BLE001 - this manifest's outcome (write_manifests raises what is not storage)
            found.append(exc)
    return found


def read_manifest(store: EvidenceStore, sha256: str, revision: int, *,
                  trusted: set[str] | None = None) -> dict[str, Any]:
    """Fetch a manifest and return its body if the signature verifies (with *trusted*, by a trusted key) and the
    stored bytes are the archive's own (`stored_manifest`; SignatureInvalid otherwise)."""
    return dict(stored_manifest(store.get_manifest(sha256, revision), trusted=trusted)["manifest"])


def stored_manifest(data: bytes, *, trusted: set[str] | None) -> dict[str, Any]:
    """The document of a stored manifest whose signature verifies (with *trusted*, by a trusted key) and whose bytes
    are exactly what the archive writes: `manifest` and `signature` and nothing else, in the one serialisation
    write_manifests uses (unchanged since manifests began). Anything added outside the signed body, or the bytes
    rewritten, would pass the signature and travel into evidence packages unsigned. SignatureInvalid names what is
    wrong (the signature first); ValueError for bytes that are not JSON."""
    try:
        document = json.loads(data)
    except RecursionError as exc:
        raise SignatureInvalid("the stored manifest is not a manifest: JSON nested too deeply") from exc
    if not isinstance(document, dict):
        raise SignatureInvalid(f"the stored manifest is a JSON {type(document).__name__}, not a signed document")
    verify_document(document, trusted_fingerprints=trusted)
    if set(document) != {"manifest", "signature"}:
        raise SignatureInvalid(f"the stored manifest holds {sorted(document)}, not only a signed body and its "
                               "signature: content was added outside what is signed")
    if _manifest_bytes(document) != data:
        raise SignatureInvalid("the stored manifest's bytes are not the ones the archive wrote (rewritten outside "
                               "the archive; the signed body may be intact)")
    return document


def read_manifests(store: EvidenceStore, recording: Recording, *, trusted: set[str]) -> dict[int, Any]:
    """Every stamp revision's manifest: revision -> the verified body, or the text of why it cannot be trusted
    (MANIFEST_MISSING, or "signature: …", or "the manifest cannot be read: …")."""
    out: dict[int, Any] = {}
    for number in range(1, recording.stamp_revision + 1):
        try:
            out[number] = read_manifest(store, recording.sha256, number, trusted=trusted)
        except SignatureInvalid as exc:
            out[number] = f"signature: {exc}"
        except ObjectMissing:
            out[number] = MANIFEST_MISSING
        except (StorageError, ValueError, KeyError) as exc:
            out[number] = f"the manifest cannot be read: {exc}"
    return out


def signed_retain_until(body: dict[str, Any]) -> datetime | None:
    """The retain-until a verified manifest body states (None when it states none usable)."""
    try:
        parsed = datetime.fromisoformat(str(body.get("retain_until")))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None
