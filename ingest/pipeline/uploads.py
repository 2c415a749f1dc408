"""Uploads of staged copies to the WORM store, running beside the next copies, and recording their outcome.

The copies catalogued together are uploaded together: one `put_files` call where the store has it (the local
store then makes the whole batch durable with a few file-system syncs), else one `put_file` each. At most
ARCHIVES_IN_FLIGHT batches are in flight (each file bounded in memory by the store itself); their results are
recorded on the ingest thread, a batch at a time, in the order the recordings were catalogued, with their signed
manifests written together. Up to ARCHIVES_QUEUED more batches wait for a free upload thread before the copying
itself waits: a staged copy costs disk, not memory, so the device keeps being read while the uploads catch up. A
refused upload leaves the copy in staging (`staged`), archived on the next run.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from catalog import Recording
from catalog.manifests import write_manifests
from ingest.archiving import mark_archived
from ingest.pipeline.report import ErrorStage
from ingest.scan import DeviceFile
from ingest.transfer import CopyResult
from storage import EvidenceStore, StorageError, StoredObject

__all__ = ["ARCHIVES_IN_FLIGHT", "ARCHIVES_QUEUED", "Upload", "Uploads", "record_uploads"]

logger = logging.getLogger(__name__)

#: Batches of uploads to the store that may run beside the copying (each file bounded in memory by the store).
ARCHIVES_IN_FLIGHT = 2
#: Further batches of staged copies that may wait for an upload thread before the copying waits for them.
ARCHIVES_QUEUED = 4

#: A store's `put_files`: (path, sha256, size_bytes, retain_until) for each file -> each one's outcome.
PutFiles = Callable[..., list[StoredObject | Exception]]


@dataclass
class Upload:
    recording: Recording
    file: DeviceFile
    future: Future[StoredObject]


class Uploads:
    """The uploads of one run still in flight, in batches, oldest first (the pool's threads only put files)."""

    def __init__(self, store: EvidenceStore) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=ARCHIVES_IN_FLIGHT, thread_name_prefix="archive")
        self._in_flight: deque[list[Upload]] = deque()

    def submit(self, batch: Sequence[tuple[Recording, DeviceFile, CopyResult]]) -> None:
        """Start putting the staged copies of *batch* (each consumed once stored) in the store under their
        recordings' retention: together where the store can (`put_files`), else each on its own."""
        if not batch:
            return
        put_all: PutFiles | None = getattr(self._store, "put_files", None)
        files = [(copy.destination, copy.sha256, copy.size_bytes, _retain_until(recording))
                 for recording, _file, copy in batch]
        if put_all is not None and len(batch) > 1:
            futures: list[Future[StoredObject]] = [Future() for _ in batch]
            self._pool.submit(_put_together, put_all, files, futures)
        else:
            futures = [self._pool.submit(self._store.put_file, path, sha256=sha256, size_bytes=size_bytes,
                                         retain_until=retain_until, consume=True)
                       for path, sha256, size_bytes, retain_until in files]
        self._in_flight.append([Upload(recording, file, future)
                                for (recording, file, _copy), future in zip(batch, futures, strict=True)])

    def finished(self, *, keep: int) -> Iterator[list[Upload]]:
        """Finished batches in order; waits while more than *keep* batches are still running."""
        while self._in_flight and (len(self._in_flight) > keep or all(u.future.done() for u in self._in_flight[0])):
            yield self._in_flight.popleft()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def _retain_until(recording: Recording) -> datetime:
    assert recording.retain_until is not None
    return recording.retain_until


def _put_together(put_all: PutFiles, files: list[tuple[Path, str, int, datetime]],
                  futures: list[Future[StoredObject]]) -> None:
    """Run the store's `put_files` (on a pool thread) and hand each file's outcome to its future."""
    try:
        outcomes = put_all(files, consume=True)
    except BaseException as exc:  # noqa: BLE001 - every file of the batch gets the error
        for future in futures:
            future.set_exception(exc)
        return
    for future, outcome in zip(futures, outcomes, strict=True):
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def record_uploads(session: Session, store: EvidenceStore, uploads: Sequence[Upload], *, key: Ed25519PrivateKey,
                   actor: str, commit: Callable[[], None]) -> list[tuple[ErrorStage, str] | None]:
    """Record each upload's outcome on its recording (archived and its signed manifest written, or still staged).

    The archived state is committed (*commit*) before any manifest goes to the store: a manifest in the store then
    always describes what the catalogue holds (a crash between the two leaves an archived recording whose `manifested`
    event is missing, never a write-once manifest of rows that were rolled back). The batch's manifests are then
    signed and stored together (`write_manifests`), their events left in the open transaction.

    Returns, for each upload in order, what failed as (stage, reason), or None; the bytes are kept either way.
    """
    with session.no_autoflush:  # the rows' changes are flushed together by the commit, not once per event
        outcomes = [_stored_or_failure(upload) for upload in uploads]
        stored = [(upload.recording, outcome) for upload, outcome in zip(uploads, outcomes, strict=True)
                  if isinstance(outcome, StoredObject)]
        mark_archived(session, stored, store, actor=actor)
    archived = [recording for recording, _stored in stored]
    if archived:
        commit()
    manifests = iter(write_manifests(session, store, archived, key, actor=actor))
    return [_manifest_failure(next(manifests)) if isinstance(outcome, StoredObject) else outcome
            for outcome in outcomes]


def _stored_or_failure(upload: Upload) -> StoredObject | tuple[ErrorStage, str]:
    """What the store holds for *upload*, or why it does not hold it (its recording stays staged)."""
    try:
        return upload.future.result()
    except Exception as exc:
        upload.recording.archived_at = None  # not in the store: archiving sets it when it really happens
        if not isinstance(exc, StorageError):
            logger.exception("Archiving %r failed.", upload.file.relative)
        return ErrorStage.ARCHIVE, f"{exc}; kept in staging, will be archived on the next run"


def _manifest_failure(outcome: StoredObject | StorageError) -> tuple[ErrorStage, str] | None:
    if isinstance(outcome, StorageError):
        return ErrorStage.MANIFEST, f"signed manifest not written: {outcome}"
    return None
