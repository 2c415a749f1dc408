"""Copy a recording off a device and hash it in the same read pass.

Reading, hashing and writing overlap in three threads sharing a small ring
of buffers, so throughput is the slowest of the three, not their sum, and
memory stays at RING_SLOTS × CHUNK_BYTES whatever the file size. hashlib
and file I/O release the GIL on large buffers. The ring is this module's own
(it is the hot path); the chunk size and every other stream hash come from
storage.hashing.

The copy goes to `<staging>/<key>.part`, is fsynced, then linked to
`<staging>/<sha256>` (a link never replaces an existing name). An
interrupted copy leaves its .part behind; the next attempt re-hashes those
bytes from staging and continues from the device where it stopped.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import CopyFailed
from storage import fsync_dir
from storage.hashing import CHUNK_BYTES, hash_stream

__all__ = ["CHUNK_BYTES", "RING_SLOTS", "CopyResult", "copy_and_hash", "hash_device_file", "open_device_file"]

logger = logging.getLogger(__name__)

#: Buffers in flight between reader, hasher and writer (memory = slots × chunk).
RING_SLOTS = 6
#: Start write-back of the copy every this many bytes, so the final fsync has little left to do
#: and evidence copies do not crowd the page cache.
WRITEBACK_BYTES = 32 * 1024 * 1024

_STOP = -1


@dataclass(frozen=True)
class CopyResult:
    source: Path
    destination: Path
    size_bytes: int
    sha256: str
    resumed_from: int  # bytes taken from an earlier interrupted copy


def open_device_file(source: Path | bytes) -> int:
    """A read-only descriptor for a file on a device: symbolic links are never followed, and its access time is
    left alone where the kernel allows (O_NOATIME needs ownership). Raises OSError."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(source, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(source, flags)


def hash_device_file(source: Path) -> str:
    """SHA-256 of a file on a device, read as `open_device_file` opens it (clearing checks the bytes it deletes).
    Raises OSError."""
    with os.fdopen(open_device_file(source), "rb") as fh:
        return hash_stream(fh).sha256


def _hash_existing(path: Path, digest: hashlib._Hash) -> int:
    with path.open("rb") as fh:
        return hash_stream(fh, into=digest).size_bytes


class _Pipeline:
    """Reader → (hasher ‖ writer) over a ring of reusable buffers."""

    def __init__(self, src_fd: int, dst_fd: int, digest: hashlib._Hash,
                 progress: Callable[[int], None] | None) -> None:
        self.src_fd, self.dst_fd, self.digest, self.progress = src_fd, dst_fd, digest, progress
        self.buffers = [bytearray(CHUNK_BYTES) for _ in range(RING_SLOTS)]
        self.free: queue.Queue[int] = queue.Queue()
        for i in range(RING_SLOTS):
            self.free.put(i)
        self.to_hash: queue.Queue[tuple[int, int]] = queue.Queue()
        self.to_write: queue.Queue[tuple[int, int]] = queue.Queue()
        self.pending = [0] * RING_SLOTS
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.written = 0
        self.flushed = 0
        self.failed = threading.Event()

    def _release(self, slot: int) -> None:
        with self.lock:
            self.pending[slot] -= 1
            if self.pending[slot] == 0:
                self.free.put(slot)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.failed.set()

    def _hasher(self) -> None:
        while True:
            slot, n = self.to_hash.get()
            if slot == _STOP:
                return
            if not self.failed.is_set():
                self.digest.update(memoryview(self.buffers[slot])[:n])
            self._release(slot)

    def _writer(self) -> None:
        while True:
            slot, n = self.to_write.get()
            if slot == _STOP:
                return
            try:
                if not self.failed.is_set():
                    view = memoryview(self.buffers[slot])[:n]
                    while view:
                        done = os.write(self.dst_fd, view)
                        view = view[done:]
                    self.written += n
                    if self.written - self.flushed >= WRITEBACK_BYTES and hasattr(os, "posix_fadvise"):
                        # DONTNEED starts asynchronous write-back of these dirty pages (Linux).
                        os.posix_fadvise(self.dst_fd, self.flushed, self.written - self.flushed,
                                         os.POSIX_FADV_DONTNEED)
                        self.flushed = self.written
                    if self.progress is not None:
                        self.progress(n)
            except OSError as exc:
                self._fail(exc)
            finally:
                self._release(slot)

    def run(self) -> int:
        hasher = threading.Thread(target=self._hasher, name="copy-hash", daemon=True)
        writer = threading.Thread(target=self._writer, name="copy-write", daemon=True)
        hasher.start()
        writer.start()
        try:
            while not self.failed.is_set():
                slot = self.free.get()
                n = os.readv(self.src_fd, [self.buffers[slot]])
                if n == 0:
                    self.free.put(slot)
                    break
                self.pending[slot] = 2
                self.to_hash.put((slot, n))
                self.to_write.put((slot, n))
        except OSError as exc:
            self._fail(exc)
        finally:
            self.to_hash.put((_STOP, 0))
            self.to_write.put((_STOP, 0))
            hasher.join()
            writer.join()
        if self.error is not None:
            raise self.error
        return self.written


def copy_and_hash(source: Path, staging: Path, *, part_name: str, resume: bool = True,
                  progress: Callable[[int], None] | None = None) -> CopyResult:
    """Copy *source* into *staging* as `<sha256>` in one read pass; return its size and hash.

    Raises:
      CopyFailed: the source could not be read to the end or staging could not be written.
        The .part file stays so a later call can resume.
    """
    part = staging / f"{part_name}.part"
    digest = hashlib.sha256()
    offset = 0
    try:
        src_fd = open_device_file(source)
    except OSError as exc:
        raise CopyFailed(source, part, reason=exc.strerror or str(exc), errno=exc.errno) from exc
    try:
        source_size = os.fstat(src_fd).st_size
        if resume and part.exists() and part.stat().st_size <= source_size:
            offset = _hash_existing(part, digest)
            dst_fd = os.open(part, os.O_WRONLY | os.O_APPEND)
            os.lseek(src_fd, offset, os.SEEK_SET)
            logger.info("Resuming %r at byte %d.", str(source), offset)
        else:
            part.unlink(missing_ok=True)
            dst_fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            if source_size - offset <= CHUNK_BYTES:
                written = _copy_small(src_fd, dst_fd, digest, progress)
            else:
                written = _Pipeline(src_fd, dst_fd, digest, progress).run()
            os.fsync(dst_fd)
        except OSError as exc:
            raise CopyFailed(source, part, reason=exc.strerror or str(exc),
                             bytes_copied=_size_or_zero(part), errno=exc.errno) from exc
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)

    sha256 = digest.hexdigest()
    final = staging / sha256
    try:
        os.link(part, final)
    except FileExistsError:
        logger.info("Staging already holds %s; dropping the duplicate copy of %r.", sha256, str(source))
    except OSError as exc:
        raise CopyFailed(source, final, reason=exc.strerror or str(exc), bytes_copied=offset + written) from exc
    part.unlink()
    fsync_dir(staging)
    return CopyResult(source=source, destination=final, size_bytes=offset + written, sha256=sha256,
                      resumed_from=offset)


def _copy_small(src_fd: int, dst_fd: int, digest: hashlib._Hash,
                progress: Callable[[int], None] | None) -> int:
    # Small files (photos): threads would cost more than they overlap.
    written = 0
    while chunk := os.read(src_fd, CHUNK_BYTES):
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view):]
        written += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return written


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
