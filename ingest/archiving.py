"""Put staged recordings into the WORM store: the archive step, run inline or by a worker.

Safe to run twice: a recording already archived is left alone, and the
store itself is content-addressed and write-once. The staging copy goes
only after the store holds the bytes (verified by the server for S3).

Retention is decided again at the hand-off: routine retention runs from
the later of capture end and archiving, so a recording that waited in
staging (an archive outage, a device clock reset to 2000) is locked for the
full period from the day it reaches WORM storage, never from a date that
may already have passed.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from catalog import (
    CustodyKind,
    Recording,
    RecordingNotFound,
    RecordingState,
    RetentionPolicy,
    append_event,
    write_manifest,
)
from catalog.clock import archive_now
from catalog.custody import NewEvent, append_events
from catalog.fixity import mark_verified
from catalog.policy_adoption import policy_in_force
from catalog.recordings import has_manifest, lock_recording_state, staged_ids
from catalog.replay import ROW_KEY, row_values
from catalog.retention_job import decide_for
from ingest.errors import NotStagedHere, StagedCopyMissing
from storage import EvidenceStore, HashMismatch, ObjectExists, StorageError, StoredObject

__all__ = ["MIN_LOCK", "READ_BACK_ON_WRITE", "READ_BACK_QUEUED", "archive_recording", "archive_staged", "mark_archived",
           "prove_stored", "read_back", "read_back_archived", "retention_at_hand_off"]

logger = logging.getLogger(__name__)

#: The shortest a recording is locked for when the store takes it (a store locks only into the future): what a
#: redacted copy of an original already due is kept, unless its cases hold it.
MIN_LOCK = timedelta(days=1)


def mark_archived(session: Session, archived: Sequence[tuple[Recording, StoredObject]], store: EvidenceStore, *,
                  actor: str, retry: bool = False) -> None:
    """Record the WORM copy of each (recording, what the store holds) in *archived* (`archived`, their custody
    events appended together); `verified` too when the store read it back whole in the upload itself (S3 with
    EVIDENCE_S3_READBACK=inline), otherwise the verify queue reads it back later (`prove_stored`).

    A recording put under legal hold while it was still staged (linked to an open case) gets the
    hold on the stored object here.
    """
    events: list[NewEvent] = []
    verified: list[tuple[Recording, StoredObject]] = []
    # The rows' changes are written after the events take the head (archive_now's query would write each row first,
    # and a writer holding the head waits for that row: a deadlock on PostgreSQL), and no lock is held across the
    # store's legal-hold calls.
    with session.no_autoflush:
        for recording, stored in archived:
            if recording.legal_hold and not stored.legal_hold:
                stored = replace(store.set_legal_hold(recording.sha256, True), verified=stored.verified)
            recording.state = RecordingState.ARCHIVED.value
            recording.archived_at = recording.archived_at or archive_now(session)[0]
            recording.store_name, recording.store_key = store.name, stored.key
            recording.store_version = stored.version_id
            session.add(recording)
            events.append(NewEvent(CustodyKind.ARCHIVED, actor, recording_id=recording.id, details={
                "store": store.name, "key": stored.key, "location": stored.location,
                "version_id": stored.version_id, "retain_until": stored.retain_until.isoformat(),
                "rule": recording.retention_rule, "legal_hold": recording.legal_hold, "retry": retry,
                ROW_KEY: row_values(recording, "state", "retain_until", "legal_hold", "archived_at")}))
            verified += [(recording, stored)] if stored.verified else []
        append_events(session, events)
    for recording, stored in verified:
        mark_verified(session, recording, actor=actor, how=READ_BACK_ON_WRITE, version_id=stored.version_id)


#: How a store that read the object back in the upload itself (S3 with EVIDENCE_S3_READBACK=inline) proved it.
READ_BACK_ON_WRITE = "server-side SHA-256 checksum on write, read back and compared"
#: How the verify queue proved it (the read-back after the upload, EVIDENCE_S3_READBACK=queued).
READ_BACK_QUEUED = "read back whole from the store and re-hashed after archiving"


def prove_stored(session: Session, store: EvidenceStore, recording: Recording, *, actor: str, how: str) -> None:
    """Read *recording*'s stored bytes back whole and re-hash them; equal, an `archived` recording becomes
    `verified` (a `verified` one stays so), with a VERIFIED custody event saying *how*; the caller commits. The
    read holds no catalogue lock (the caller must not either); the catalogue's write lock is taken after it.

    The one read-back for the verify queue, a device's clearing and every other caller.

    Raises:
      HashMismatch: the stored bytes differ (nothing is recorded here; the caller records the failure).
      StorageError: the store cannot be read now (ObjectMissing: it does not hold the object).
      ValueError: the recording is not in the store (staged or disposed).
    """
    in_store = (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)
    if recording.state not in in_store:
        raise ValueError(f"recording {recording.id} is {recording.state}: nothing in the store to read back")
    store.verify(recording.sha256)  # the long read, with no catalogue lock held
    assert recording.id is not None
    state = lock_recording_state(session, recording.id)
    if state not in in_store:
        raise ValueError(f"recording {recording.id} became {state} while it was read back")
    mark_verified(session, recording, actor=actor, how=how, version_id=recording.store_version)


def retention_at_hand_off(session: Session, recording: Recording, policy: RetentionPolicy) -> None:
    """Stamp the hand-off to the store (`archived_at`, now) and grow the recording's retention to what the rules
    say counted from it: the store is then asked to lock it at least that long (never a date in the past). The rules
    are the adopted terms (catalog.policy_adoption.policy_in_force), *policy* only while none are adopted."""
    assert recording.id is not None
    recording.archived_at = archive_now(session)[0]  # never earlier than the custody chain (catalog.clock)
    with session.no_autoflush:  # nothing is written before the upload: no write transaction held across it
        # A service left running after a re-adoption: the adopted terms, not its own
        decision = decide_for(session, [recording], policy_in_force(session, policy))[recording.id]
    if recording.retain_until is None or decision.retain_until > recording.retain_until:
        recording.retain_until, recording.retention_rule = decision.retain_until, decision.rule
    shortest = recording.archived_at + MIN_LOCK
    if recording.retain_until is None or recording.retain_until < shortest:
        # A redacted copy of an original near its date, left staged by a store outage: its date passed while it
        # waited, and a store locks only into the future (it had been refused at every try, kept in staging, listed
        # in no plan)
        note = f"locked {MIN_LOCK.days} day at least when archived"
        recording.retain_until = shortest
        if note not in recording.retention_rule:
            recording.retention_rule = f"{recording.retention_rule}; {note}"[-300:]
    recording.legal_hold = recording.legal_hold or decision.legal_hold
    session.add(recording)


def archive_recording(engine: Engine, store: EvidenceStore, staging: Path, recording_id: int, *,
                      key: Ed25519PrivateKey, actor: str, policy: RetentionPolicy, station: str) -> str:
    """Archive one staged recording of *station* (whose staging area *staging* is); return its state.

    Raises:
      BackendUnavailable: the store is down (transient: retry later; the staged copy stays).
      NotStagedHere: the recording was staged at another station (nothing is wrong with it: that station archives it).
      StagedCopyMissing: neither this station's staging nor the store holds the bytes (permanent).
      RecordingNotFound: no such recording.
    """
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise RecordingNotFound(str(recording_id))
        if recording.state != RecordingState.STAGED.value:
            # Already archived (a redelivered or reconciled message): only the signed manifest of its current
            # stamp revision may be missing (the archive step's or a re-stamp's, when the store failed or a run died).
            if recording.state in (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value) \
                    and recording.station_code == station \
                    and not has_manifest(session, recording_id, revision=recording.stamp_revision):
                _seal(session, store, recording, key, actor=actor)
            return recording.state
        if recording.station_code != station:
            raise NotStagedHere(recording_id, recording.station_code, station)
        path = staging / recording.sha256
        if not path.exists() and not store.exists(recording.sha256):
            raise StagedCopyMissing(recording_id, recording.sha256, path)
        retention_at_hand_off(session, recording, policy)
        assert recording.retain_until is not None
        stored = store.put_file(path, sha256=recording.sha256, size_bytes=recording.size_bytes,
                                retain_until=recording.retain_until, consume=True)
        # Still staged? Locked now: a second delivery that lost its hold and raced this one to the end finds it
        # archived and records nothing (one `archived` event, ever). The custody head first, as every writer takes
        # it, then the row (lock_recording_state takes both, in that order): a dock appending a sighting of these
        # bytes never deadlocks with this.
        state = lock_recording_state(session, recording_id)
        if state != RecordingState.STAGED.value:
            session.rollback()
            return state
        mark_archived(session, [(recording, stored)], store, actor=actor, retry=True)
        # Committed before the manifest goes to the store: the catalogue's write lock (the custody head) is never
        # held across that upload, so docks and other workers are not held up by it. A manifest that fails (or a
        # crash between the two) is written by the reconciler's next message for it (catalog.outbox.reconcile).
        session.commit()
        _seal(session, store, recording, key, actor=actor)
        return recording.state


def _seal(session: Session, store: EvidenceStore, recording: Recording, key: Ed25519PrivateKey, *, actor: str) -> None:
    """Write the archived recording's signed manifest; a failure is logged (ERROR) and left for the reconciler."""
    try:
        write_manifest(session, store, recording, key, actor=actor)
        session.commit()
    except ObjectExists as exc:
        # One a killed run stored is checked and recorded by write_manifests: this one is not vouched for (another
        # key signed it, or it signs facts the catalogue does not hold). `evidence verify` names it.
        session.rollback()
        logger.error("Recording %r: the store holds a manifest of its revision that the catalogue does not vouch "
                     "for (%s); `evidence verify` names it.", recording.id, exc)
    except Exception as exc:  # noqa: BLE001 - the archived state stands; the reconciler's next message seals it
        session.rollback()
        logger.error("Recording %r archived without its signed manifest yet: %s", recording.id, exc)


def archive_staged(engine: Engine, store: EvidenceStore, staging: Path, *, key: Ed25519PrivateKey,
                   policy: RetentionPolicy, station: str, actor: str = "station") -> int:
    """Archive every recording left `staged` at *station* (whose staging area is *staging*); return how many were
    archived. Other stations' staged recordings are theirs to archive: never touched here."""
    with Session(engine) as session:
        waiting = staged_ids(session, station)
    archived = 0
    for recording_id in waiting:
        try:
            archive_recording(engine, store, staging, recording_id, key=key, actor=actor, policy=policy,
                              station=station)
        except (StorageError, StagedCopyMissing) as exc:
            logger.warning("Recording %r is still staged: %s", recording_id, exc)
            continue
        except OperationalError:
            raise  # the catalogue is away: the caller decides
        except Exception:
            logger.exception("Recording %r is still staged: archiving it failed.", recording_id)
            continue
        archived += 1
    return archived


def read_back(engine: Engine, store: EvidenceStore, recording_id: int, *, actor: str) -> bool:
    """Read one recording back whole (`prove_stored`) and commit the outcome; True when it is now `verified`, False
    when it is not in the store (staged, or disposed meanwhile: logged). The verify queue and an ingest without a
    broker both call this.

    Raises:
      RecordingNotFound: no such recording.
      HashMismatch: the stored bytes differ (an INGEST_FAILED custody event is recorded first).
      StorageError: the store cannot be read now (transient: it stays `archived`).
    """
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise RecordingNotFound(str(recording_id))
        try:
            prove_stored(session, store, recording, actor=actor, how=READ_BACK_QUEUED)
        except ValueError as exc:
            logger.info("Not verified: %s", exc)
            return False
        except HashMismatch as exc:
            session.rollback()
            logger.error("Recording %r: %s", recording_id, exc)
            append_event(session, CustodyKind.INGEST_FAILED, actor=actor, recording_id=recording_id,
                         details={"stage": "verify", "reason": str(exc)})
            session.commit()
            raise
        session.commit()
        return True


def read_back_archived(engine: Engine, store: EvidenceStore, ids: list[int], *, actor: str) -> set[int]:
    """`read_back` each of *ids* that is `archived`; return the ids now `verified`. What cannot be read now stays
    `archived` for the verify queue, a fixity check or a device's clearing (a warning says so); a mismatch is an
    INGEST_FAILED event."""
    done: set[int] = set()
    for recording_id in ids:
        with Session(engine) as session:
            recording = session.get(Recording, recording_id)
            if recording is None or recording.state != RecordingState.ARCHIVED:
                continue
        try:
            if read_back(engine, store, recording_id, actor=actor):
                done.add(recording_id)
        except HashMismatch:
            continue  # recorded and logged by read_back (caught before StorageError, its base class)
        except StorageError as exc:
            logger.warning("Recording %r stays archived, not read back yet: %s", recording_id, exc)
    return done
