"""Uploads of staged copies to the WORM store, running beside the next copies, and recording their outcome.

At most ARCHIVES_IN_FLIGHT uploads run at once (each bounded in memory by the store itself); their results are
recorded on the ingest thread, in the order the recordings were catalogued. A refused upload leaves the copy in
staging (`staged`), archived on the next run.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from catalog import Recording, write_manifest
from ingest.archiving import mark_archived
from ingest.pipeline.report import ErrorStage
from ingest.scan import DeviceFile
from ingest.transfer import CopyResult
from storage import EvidenceStore, StorageError, StoredObject

__all__ = ["ARCHIVES_IN_FLIGHT", "Upload", "Uploads", "record_upload"]

logger = logging.getLogger(__name__)

#: Uploads to the store that may run beside the copying (each bounded in memory by the store itself).
ARCHIVES_IN_FLIGHT = 2


@dataclass
class Upload:
    recording: Recording
    file: DeviceFile
    future: Future[StoredObject]


class Uploads:
    """The uploads of one run still in flight, oldest first (the pool's threads only run `store.put_file`)."""

    def __init__(self, store: EvidenceStore) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=ARCHIVES_IN_FLIGHT, thread_name_prefix="archive")
        self._in_flight: deque[Upload] = deque()

    def submit(self, recording: Recording, file: DeviceFile, copy: CopyResult) -> None:
        """Start putting *copy* (consumed once stored) in the store under *recording*'s retention."""
        assert recording.retain_until is not None
        future = self._pool.submit(self._store.put_file, copy.destination, sha256=copy.sha256,
                                   size_bytes=copy.size_bytes, retain_until=recording.retain_until, consume=True)
        self._in_flight.append(Upload(recording, file, future))

    def finished(self, *, keep: int) -> Iterator[Upload]:
        """Finished uploads in order; waits while more than *keep* are still running."""
        while self._in_flight and (len(self._in_flight) > keep or self._in_flight[0].future.done()):
            yield self._in_flight.popleft()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def record_upload(session: Session, store: EvidenceStore, upload: Upload, *, key: Ed25519PrivateKey,
                  actor: str) -> tuple[ErrorStage, str] | None:
    """Record *upload*'s outcome on its recording (archived and its signed manifest written, or still staged).

    Returns what failed as (stage, reason), or None; the bytes are kept either way.
    """
    recording, file = upload.recording, upload.file
    try:
        stored = upload.future.result()
    except Exception as exc:
        recording.archived_at = None  # not in the store: archiving sets it when it really happens
        if not isinstance(exc, StorageError):
            logger.exception("Archiving %r failed.", file.relative)
        return ErrorStage.ARCHIVE, f"{exc}; kept in staging, will be archived on the next run"
    mark_archived(session, recording, store, stored, actor=actor)
    try:
        write_manifest(session, store, recording, key, actor=actor)
    except StorageError as exc:
        return ErrorStage.MANIFEST, f"signed manifest not written: {exc}"
    return None

