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
bytes from staging and continues from the device where it stopped. A caller
that makes a batch of small copies durable together (one syncfs, see
ingest.staging_sync) asks for no fsync (*durable* false). A name found
already there (the same bytes staged before, or a copy a power cut emptied
before its sync) is replaced by this copy, made durable first: the name's old
file is never vouched for by a copy that did not write it.

For a store that uploads in parts (S3), the caller passes the part size: each
part's SHA-256 is computed in the same pass, from the same buffers, on a
thread of its own, and kept beside the staged copy (storage.part_checksums)
so the upload sends checksums the server verifies without hashing again.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import logging
import os
import queue
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ingest.errors import CopyFailed
from storage import fsync_dir, fsync_path
from storage.hashing import CHUNK_BYTES, chunk_buffer, hash_stream
from storage.part_checksums import PartDigests, write_parts

__all__ = ["CHUNK_BYTES", "RING_SLOTS", "CopyResult", "copy_and_hash", "device_file_matches", "file_identity",
           "hash_device_file",
           "open_device_file"]

logger = logging.getLogger(__name__)

#: Buffers in flight between reader, hasher and writer (memory = slots × chunk).
RING_SLOTS = 6
#: Write-back pacing window: each window of the copy is handed to write-back as soon as it is written, and the
#: one before it is waited for and dropped from the page cache, so at most two windows are ever dirty or
#: cached, the final fsync has little left to do and evidence copies do not crowd the page cache. Measured
#: (bench/copy_variants.py): against the earlier posix_fadvise(DONTNEED)-only pacing, which dropped nothing
#: (dirty pages are not dropped) and made write() cost 2-3 CPU s/GiB, 1.4-3.2x faster at a flat ~1 CPU s/GiB.
WRITEBACK_BYTES = 32 * 1024 * 1024

# sync_file_range(2) flags (linux/fs.h); Python has no binding: ctypes, which releases the GIL around the call.
_SFR_WAIT_BEFORE, _SFR_WRITE, _SFR_WAIT_AFTER = 1, 2, 4


def _libc_sync_file_range() -> Callable[..., int] | None:
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None  # not Linux: no pacing; the final fsync writes everything
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return cast(Callable[..., int], call)


_SYNC_FILE_RANGE = _libc_sync_file_range()


def _sync_file_range(fd: int, offset: int, length: int, flags: int) -> None:
    """sync_file_range(2); an error is an OSError naming the range (the copy then fails as CopyFailed)."""
    if _SYNC_FILE_RANGE is not None and _SYNC_FILE_RANGE(fd, offset, length, flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sync_file_range({offset}, {length}): {os.strerror(err)}")

_STOP = -1


@dataclass(frozen=True)
class CopyResult:
    source: Path
    destination: Path
    size_bytes: int
    sha256: str
    resumed_from: int  # bytes taken from an earlier interrupted copy
    part_sha256: tuple[str, ...] = ()  # per-part SHA-256 (hex) when a part size was asked for
    durable: bool = True  # fsynced, name and bytes; False: the caller syncs it (ingest.staging_sync) before it counts
    #: (st_dev, st_ino) of the file this copy left under its staged name: a caller removing a failed copy removes the
    #: name only while it still is this file (another copy of the same bytes may have taken it over since)
    inode: tuple[int, int] | None = None


def open_device_file(source: Path | bytes) -> int:
    """A read-only descriptor for a regular file on a device: symbolic links are never followed, and its access
    time is left alone where the kernel allows (O_NOATIME needs ownership). Opened without blocking and checked:
    a file swapped for a FIFO after the scan hung the run on its open for ever (found by a review); any other
    kind of file is an OSError (EINVAL) naming it. Raises OSError."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK
    try:
        fd = os.open(source, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        fd = os.open(source, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file any more (replaced since the device was scanned)",
                          os.fsdecode(source))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hash_device_file(source: Path) -> str:
    """SHA-256 of a file on a device, read as `open_device_file` opens it (clearing checks the bytes it deletes).
    Raises OSError."""
    with os.fdopen(open_device_file(source), "rb") as fh:
        return hash_stream(fh).sha256


#: A journaled copy stands for a device file only once these agree: the first and last MATCH_EDGE_BYTES and
#: MATCH_PROBES slices of MATCH_PROBE_BYTES spread between them (`device_file_matches`).
MATCH_EDGE_BYTES = 1 << 20
MATCH_PROBES = 16
MATCH_PROBE_BYTES = 64 << 10


def _sample_ranges(size: int) -> list[tuple[int, int]]:
    """(offset, length) of the first and last MATCH_EDGE_BYTES and MATCH_PROBES slices between them."""
    if size <= 2 * MATCH_EDGE_BYTES + MATCH_PROBES * MATCH_PROBE_BYTES:
        return [(0, size)]
    ranges = [(0, MATCH_EDGE_BYTES), (size - MATCH_EDGE_BYTES, MATCH_EDGE_BYTES)]
    step = (size - 2 * MATCH_EDGE_BYTES) // (MATCH_PROBES + 1)
    ranges += [(MATCH_EDGE_BYTES + step * i, MATCH_PROBE_BYTES) for i in range(1, MATCH_PROBES + 1)]
    return ranges


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    parts, done = [], 0
    while done < length and (chunk := os.pread(fd, min(length - done, CHUNK_BYTES), offset + done)):
        parts.append(chunk)
        done += len(chunk)
    return b"".join(parts)


def device_file_matches(source: Path, staged: Path, *, every_byte: bool = False) -> bool:
    """Whether the device file *source* still holds the staged copy *staged*: the same size, and the same bytes
    where they are compared. A journaled copy's key (device, path, size, time) cannot tell it from another recording
    a recorder with a reset clock wrote under that name, size and time; a look at its first and last MiB and 16
    slices between tells recordings apart for ~3 MiB of reading (the device is not read again). With *every_byte*
    every byte is compared: where the file's time is no evidence at all. Raises OSError (the device file, or
    the staged copy, cannot be read)."""
    fd = open_device_file(source)
    try:
        with staged.open("rb") as fh:
            size = os.fstat(fd).st_size
            if os.fstat(fh.fileno()).st_size != size:
                return False
            ranges = ([(offset, min(CHUNK_BYTES, size - offset)) for offset in range(0, size, CHUNK_BYTES)]
                      if every_byte else _sample_ranges(size))
            return all(_pread_all(fd, length, offset) == _pread_all(fh.fileno(), length, offset)
                       for offset, length in ranges)
    finally:
        os.close(fd)


class _Both:
    """The whole-file digest and the part digests fed together (resuming, small files: one thread)."""

    def __init__(self, digest: hashlib._Hash, parts: PartDigests | None) -> None:
        self.digest, self.parts = digest, parts

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self.digest.update(data)
        if self.parts is not None:
            self.parts.update(data)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _device_still_holds(part: Path, src_fd: int) -> bool:
    """Whether the device file still begins with the bytes of an earlier attempt's `.part`. The resume key (device,
    path, size, modification time) cannot tell the file the `.part` began from another with the same name, size
    and time (a recorder whose clock was reset writes such files): appending to the `.part` then stored two
    recordings spliced into one under a SHA-256 nobody could dispute (found by a review). Read again only on a
    resume, and only as far as the `.part` goes."""
    position = 0
    with part.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            view = memoryview(chunk)
            while view:
                theirs = os.pread(src_fd, len(view), position)
                if not theirs or theirs != view[:len(theirs)]:
                    return False
                view, position = view[len(theirs):], position + len(theirs)
    return True


def _hash_existing(path: Path, digests: _Both) -> int:
    with path.open("rb") as fh:
        return hash_stream(fh, into=digests).size_bytes


class _Pipeline:
    """Reader → (hasher ‖ part hasher ‖ writer) over a ring of reusable buffers."""

    def __init__(self, src_fd: int, dst_fd: int, digests: _Both,
                 progress: Callable[[int], None] | None, *, base: int = 0) -> None:
        self.src_fd, self.dst_fd, self.progress = src_fd, dst_fd, progress
        self.base = base  # where this run's bytes start in the destination (a resumed copy appends)
        self.previous: tuple[int, int] | None = None  # the last window handed to write-back
        self.buffers = [chunk_buffer() for _ in range(RING_SLOTS)]
        self.free: queue.Queue[int] = queue.Queue()
        for i in range(RING_SLOTS):
            self.free.put(i)
        # One thread per digest: the whole-file SHA-256 and, for a part-wise upload, the parts' (each its own core).
        self.hashers: list[tuple[hashlib._Hash | PartDigests, queue.Queue[tuple[int, int]]]] = [
            (digest, queue.Queue()) for digest in (digests.digest, digests.parts) if digest is not None]
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

    def _hasher(self, digest: hashlib._Hash | PartDigests, chunks: queue.Queue[tuple[int, int]]) -> None:
        while True:
            slot, n = chunks.get()
            if slot == _STOP:
                return
            if not self.failed.is_set():
                digest.update(memoryview(self.buffers[slot])[:n])
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
                    if self.written - self.flushed >= WRITEBACK_BYTES:
                        self._pace(self.base + self.flushed, self.written - self.flushed)
                        self.flushed = self.written
                    if self.progress is not None:
                        self.progress(n)
            except OSError as exc:
                self._fail(exc)
            finally:
                self._release(slot)

    def _pace(self, start: int, length: int) -> None:
        """Start write-back of the new window; wait for the previous window's and drop its pages."""
        _sync_file_range(self.dst_fd, start, length, _SFR_WRITE)
        if self.previous is not None:
            _sync_file_range(self.dst_fd, *self.previous, _SFR_WAIT_BEFORE | _SFR_WRITE | _SFR_WAIT_AFTER)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(self.dst_fd, *self.previous, os.POSIX_FADV_DONTNEED)
        self.previous = (start, length)

    def run(self) -> int:
        consumers = [(threading.Thread(target=self._hasher, args=hasher, name="copy-hash", daemon=True), hasher[1])
                     for hasher in self.hashers]
        consumers.append((threading.Thread(target=self._writer, name="copy-write", daemon=True), self.to_write))
        for thread, _ in consumers:
            thread.start()
        try:
            while not self.failed.is_set():
                slot = self.free.get()
                n = os.readv(self.src_fd, [self.buffers[slot]])
                if n == 0:
                    self.free.put(slot)
                    break
                self.pending[slot] = len(consumers)
                for _, chunks in consumers:
                    chunks.put((slot, n))
        except OSError as exc:
            self._fail(exc)
        finally:
            for _, chunks in consumers:
                chunks.put((_STOP, 0))
            for thread, _ in consumers:
                thread.join()
        if self.error is not None:
            raise self.error
        return self.written


def copy_and_hash(source: Path, staging: Path, *, part_name: str, resume: bool = True,
                  progress: Callable[[int], None] | None = None,
                  part_bytes: Callable[[int], int | None] | None = None, durable: bool = True) -> CopyResult:
    """Copy *source* into *staging* as `<sha256>` in one read pass; return its size and hash.

    *part_bytes* gives, for the source's size, the part size of the store's upload (None: one part): the
    parts' SHA-256 are then computed in the same pass and kept as `<sha256>.parts` (storage.part_checksums).
    *durable* false: neither the copy nor the folder is fsynced (the result says so); the caller makes it durable
    before anything counts on it.

    Raises:
      CopyFailed: the source could not be read to the end or staging could not be written.
        The .part file stays so a later call can resume (with *resume* false it is removed: nothing would).
    """
    part = staging / f"{part_name}.part"
    digest = hashlib.sha256()
    offset = 0
    parts: PartDigests | None = None
    try:
        src_fd = open_device_file(source)
    except OSError as exc:
        raise CopyFailed(source, part, reason=exc.strerror or str(exc), errno=exc.errno) from exc
    try:
        source_size = os.fstat(src_fd).st_size
        size_of_parts = part_bytes(source_size) if part_bytes is not None else None
        parts = PartDigests(size_of_parts) if size_of_parts else None
        digests = _Both(digest, parts)
        dst_fd, offset = _open_part(source, part, src_fd, digests, resume=resume, source_size=source_size)
        # A resumed copy holds an earlier run's bytes, written before the caller's sync could see their errors.
        durable = durable or offset > 0
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            if source_size - offset <= CHUNK_BYTES:
                written = _copy_small(src_fd, dst_fd, digests, progress)
            else:
                written = _Pipeline(src_fd, dst_fd, digests, progress, base=offset).run()
            if durable:
                os.fsync(dst_fd)
            # The file this copy wrote, whatever its name holds later (another dock may take the name over).
            written_file = os.fstat(dst_fd)
        except OSError as exc:
            copied = _size_or_zero(part)
            if not resume:  # nothing will ever resume it (a one-off copy: a document attached to a case)
                part.unlink(missing_ok=True)
            raise CopyFailed(source, part, reason=exc.strerror or str(exc), bytes_copied=copied,
                             errno=exc.errno) from exc
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)

    sha256 = digest.hexdigest()
    final = staging / sha256
    try:
        try:
            os.link(part, final)
        except FileExistsError:
            # The same bytes staged before (another file, another dock, or a copy a power cut left without its
            # bytes, never synced): this copy, made durable first, takes the name. The name's old file is never
            # vouched for here: its writer's write-back error may be reported to that writer, not to this copy.
            logger.info("Staging already holds %s; the copy of %r, made durable, takes its name.", sha256,
                        str(source))
            if not durable:
                fsync_path(part)
                durable = True
            os.replace(part, final)
    except OSError as exc:  # the whole copy is in the .part: it is what is kept (and named), unless never resumed
        if not resume:
            part.unlink(missing_ok=True)
        raise CopyFailed(source, part, reason=exc.strerror or str(exc), bytes_copied=offset + written,
                         errno=exc.errno) from exc
    part.unlink(missing_ok=True)
    part_sha256 = _keep_parts(source, final, parts, offset + written)
    if durable:
        fsync_dir(staging)
    return CopyResult(source=source, destination=final, size_bytes=offset + written, sha256=sha256,
                      resumed_from=offset, part_sha256=part_sha256, durable=durable,
                      inode=(written_file.st_dev, written_file.st_ino))


def file_identity(path: Path) -> tuple[int, int]:
    """(st_dev, st_ino) of the file at *path* (OSError when there is none)."""
    found = os.stat(path)
    return found.st_dev, found.st_ino


def _open_part(source: Path, part: Path, src_fd: int, digests: _Both, *, resume: bool,
               source_size: int) -> tuple[int, int]:
    """The destination descriptor and where the copy starts: after an earlier attempt's bytes (re-hashed into
    *digests*, the source read on from there) when *resume* finds a `.part` no longer than the source that the
    source still begins with, else 0."""
    if resume and part.exists() and part.stat().st_size <= source_size:
        if _device_still_holds(part, src_fd):
            return _resume_part(source, part, src_fd, digests)
        logger.warning("%r no longer begins with the %d bytes an earlier attempt copied (same name, size and "
                       "time, other bytes: a recorder whose clock was reset?); copying it again from the start.",
                       str(source), part.stat().st_size)
    part.unlink(missing_ok=True)
    return os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), 0


def _resume_part(source: Path, part: Path, src_fd: int, digests: _Both) -> tuple[int, int]:
    """Append to *part* from where it ends: its bytes re-hashed into *digests*, the source read on from there."""
    offset = _hash_existing(part, digests)
    dst_fd = os.open(part, os.O_WRONLY | os.O_APPEND)
    os.lseek(src_fd, offset, os.SEEK_SET)
    logger.info("Resuming %r at byte %d.", str(source), offset)
    return dst_fd, offset


def _keep_parts(source: Path, final: Path, parts: PartDigests | None, size_bytes: int) -> tuple[str, ...]:
    """Write the part digests beside the staged copy; a failure only costs the upload a hashing pass."""
    if parts is None:
        return ()
    digests = parts.finish()
    try:
        write_parts(final, part_bytes=parts.part_bytes, size_bytes=size_bytes, digests=digests)
    except OSError as exc:
        logger.warning("Part checksums of %r not kept (%s): the upload will hash the parts itself.",
                       str(source), exc.strerror or exc)
    return digests


def _copy_small(src_fd: int, dst_fd: int, digest: _Both,
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
