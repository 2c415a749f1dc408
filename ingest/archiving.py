"""Put staged recordings into the WORM store: the archive step, run inline or by a worker.

Safe to run twice: a recording already archived is left alone, and the
store itself is content-addressed and write-once. The staging copy goes
only after the store holds the bytes (verified by the server for S3).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from catalog import CustodyKind, Recording, RecordingNotFound, RecordingState, append_event, write_manifest
from ingest.errors import StagedCopyMissing
from storage import EvidenceStore, StorageError, StoredObject

__all__ = ["archive_recording", "archive_staged", "mark_archived"]

logger = logging.getLogger(__name__)


def mark_archived(session: Session, recording: Recording, store: EvidenceStore, stored: StoredObject, *,
                  actor: str, retry: bool = False) -> None:
    """Record the WORM copy; `verified` when the store confirmed the checksum itself (S3).

    A recording put under legal hold while it was still staged (linked to an open case) gets the
    hold on the stored object here.
    """
    if recording.legal_hold and not stored.legal_hold:
        stored = replace(store.set_legal_hold(recording.sha256, True), verified=stored.verified)
    recording.state = (RecordingState.VERIFIED if stored.verified else RecordingState.ARCHIVED).value
    recording.store_name, recording.store_key = store.name, stored.key
    recording.store_version = stored.version_id
    session.add(recording)
    append_event(session, CustodyKind.ARCHIVED, actor=actor, recording_id=recording.id, details={
        "store": store.name, "key": stored.key, "location": stored.location, "version_id": stored.version_id,
        "retain_until": stored.retain_until.isoformat(), "retry": retry})
    if stored.verified:
        append_event(session, CustodyKind.VERIFIED, actor=actor, recording_id=recording.id, details={
            "how": "server-side SHA-256 checksum on write, read back and compared", "sha256": recording.sha256,
            "version_id": stored.version_id})


def archive_recording(engine: Engine, store: EvidenceStore, staging: Path, recording_id: int, *,
                      key: Ed25519PrivateKey, actor: str) -> str:
    """Archive one staged recording; return its state.

    Raises:
      BackendUnavailable: the store is down (transient: retry later; the staged copy stays).
      StagedCopyMissing: neither staging nor the store holds the bytes (permanent).
      RecordingNotFound: no such recording.
    """
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise RecordingNotFound(str(recording_id))
        if recording.state != RecordingState.STAGED.value:
            return recording.state  # already done: a redelivered message
        path = staging / recording.sha256
        if not path.exists() and not store.exists(recording.sha256):
            raise StagedCopyMissing(recording_id, recording.sha256, path)
        assert recording.retain_until is not None
        stored = store.put_file(path, sha256=recording.sha256, size_bytes=recording.size_bytes,
                                retain_until=recording.retain_until, consume=True)
        mark_archived(session, recording, store, stored, actor=actor, retry=True)
        try:
            write_manifest(session, store, recording, key, actor=actor)
        except StorageError as exc:
            logger.warning("Recording %r archived without its manifest: %s", recording_id, exc)
        session.commit()
        return recording.state


def archive_staged(engine: Engine, store: EvidenceStore, staging: Path, *, key: Ed25519PrivateKey,
                   actor: str = "station") -> int:
    """Archive every recording left `staged` whose bytes are at hand; return how many were archived."""
    with Session(engine) as session:
        waiting = list(session.exec(select(Recording.id).where(Recording.state == RecordingState.STAGED.value)))
    archived = 0
    for recording_id in waiting:
        assert recording_id is not None
        try:
            archive_recording(engine, store, staging, recording_id, key=key, actor=actor)
        except (StorageError, StagedCopyMissing) as exc:
            logger.warning("Recording %r is still staged: %s", recording_id, exc)
            continue
        archived += 1
    return archived
