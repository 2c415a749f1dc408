"""SHA-256 over a stream: the one place the project reads bytes to hash them.

Every evidence hash outside the copy off a device (ingest.transfer's
threaded ring, which shares CHUNK_BYTES from here) is one of these:
`hash_stream` (a stream, optionally copied on to a file, optionally read
ahead in a thread while the caller hashes), `hash_file` (a path), or
`hashed_chunks` (the chunks themselves, for a caller that hands each one on,
as the S3 multipart upload does with its parts).
"""
from __future__ import annotations

import hashlib
import mmap
import queue
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import IO, NamedTuple, Protocol

__all__ = ["CHUNK_BYTES", "Hashed", "TwoDigests", "chunk_buffer", "hash_file", "hash_stream", "hashed_chunks"]

#: Bytes per read whenever the project hashes a stream (ingest.transfer's ring uses it too).
#: 4 MiB: at SHA-256 speed (about 1 GB/s on one core) a chunk is some 4 ms of hashing, so the
#: per-chunk cost of the Python loop and the read syscall (microseconds) is under 0.1 %; hashlib
#: releases the GIL for it (it does above 2 KiB), so a reader thread overlaps it fully; and
#: buffers stay small: transfer's ring of 6 is 24 MiB, a read-ahead of 3 is 12 MiB. Larger chunks
#: measured no faster (the copy benchmark, bench/copy_hash.py, was tuned at this size).
CHUNK_BYTES = 4 * 1024 * 1024
#: Buffers a read-ahead hash keeps in flight: one being hashed, one being read, one spare.
READ_AHEAD_SLOTS = 3


def chunk_buffer(size: int = CHUNK_BYTES) -> mmap.mmap:
    """A writable buffer of *size* bytes in pages of its own (an anonymous mapping), for the chunks of a read pass.

    Not from the malloc heap: a bytearray of 4 MiB is, once glibc's mmap threshold has grown past it (it grows to
    the largest block freed, e.g. an S3 part), and the rings of several docks copying at once, each on its own
    threads and so its own malloc arena, then left heap fragments that later docks did not reuse (station peak RSS
    210 MB in the first round of bench/station_parallel.py, 238 MB in the second). A mapping is returned to the
    system the moment the last reference to it goes. Private (never shared with a child process, not shmem)."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


class Hashed(NamedTuple):
    """What a stream hashed to."""

    sha256: str  # lower-case hex
    size_bytes: int


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Digest(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


class TwoDigests:
    """SHA-256 and SHA-512 of one stream in one read: `storage.hashing.hash_stream(into=...)` feeds it; SHA-512
    runs on *pool*'s thread while SHA-256 runs on the caller's (hashlib releases the GIL), so the two together
    cost about what the slower one does. `hexdigest()` is the SHA-256, as hash_stream expects."""

    def __init__(self, pool: Executor) -> None:
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()
        self._pool = pool

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        other = self._pool.submit(self.sha512.update, data)
        self.sha256.update(data)
        other.result()  # before the caller reuses the buffer

    def hexdigest(self) -> str:
        return self.sha256.hexdigest()


def hash_stream(fileobj: _Readable, *, copy_to: IO[bytes] | None = None, into: _Digest | None = None,
                read_ahead: bool = False, chunk_bytes: int = CHUNK_BYTES) -> Hashed:
    """Read *fileobj* to its end and return the SHA-256 and count of the bytes read.

    Parameters:
      copy_to: also write every chunk to this file, in order (a hashing copy); the caller flushes and fsyncs.
      into: continue this digest instead of a new one (resuming: bytes already hashed stay counted in it,
        not in `size_bytes`).
      read_ahead: read the next chunk in a second thread while this one hashes (both release the GIL, so the
        slower of the two sets the pace); worth it for a stream whose reads wait (S3, a cold disk).

    Chunks are read into reused buffers (`readinto` where the stream has it): no allocation per chunk.
    Errors of the stream or of *copy_to* propagate unchanged (also from the read-ahead thread).
    """
    digest: _Digest = into if into is not None else hashlib.sha256()
    chunks = _read_ahead(fileobj, chunk_bytes) if read_ahead else _read_into(fileobj, chunk_bytes)
    size = 0
    try:
        for view in chunks:
            digest.update(view)
            if copy_to is not None:
                copy_to.write(view)
            size += len(view)
    finally:
        chunks.close()  # now, not at garbage collection: stops a read-ahead thread when a write fails
    return Hashed(digest.hexdigest(), size)


def hash_file(path: Path) -> Hashed:
    """SHA-256 and size of the file at *path* (opened as `open` does: a symbolic link is followed). Raises OSError."""
    with path.open("rb") as fh:
        return hash_stream(fh)


def hashed_chunks(fileobj: _Readable, *, into: _Digest, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The chunks of *fileobj* as new bytes objects, each hashed into *into* before it is yielded.

    For a caller that keeps or hands on each chunk (S3 parts go to upload threads): nothing here holds a chunk
    once the caller asks for the next, so memory is what the caller keeps."""
    while True:
        chunk = fileobj.read(chunk_bytes)
        if not chunk:
            return
        into.update(chunk)
        yield chunk
        del chunk  # before the next read, so two chunks are never held here at once


def _read_into(fileobj: _Readable, chunk_bytes: int) -> Generator[memoryview, None, None]:
    """Views of one reused buffer, refilled per chunk; a view is valid until the next is asked for."""
    buffer = chunk_buffer(chunk_bytes)
    whole = memoryview(buffer)
    readinto = getattr(fileobj, "readinto", None)
    while True:
        if readinto is not None:
            count = readinto(whole)
        else:
            chunk = fileobj.read(chunk_bytes)
            count = len(chunk)
            whole[:count] = chunk
        if not count:
            return
        yield whole[:count]


def _read_ahead(fileobj: _Readable, chunk_bytes: int) -> Generator[memoryview, None, None]:
    """As `_read_into`, with the reading in a thread that fills READ_AHEAD_SLOTS buffers ahead of the consumer."""
    buffers = [chunk_buffer(chunk_bytes) for _ in range(READ_AHEAD_SLOTS)]
    free: queue.Queue[int] = queue.Queue()
    for index in range(len(buffers)):
        free.put(index)
    filled: queue.Queue[tuple[int, int] | BaseException | None] = queue.Queue()
    stop = threading.Event()
    readinto = getattr(fileobj, "readinto", None)

    def read() -> None:
        try:
            while not stop.is_set():
                index = free.get()
                if stop.is_set():
                    break
                if readinto is not None:
                    count = readinto(memoryview(buffers[index]))
                else:
                    chunk = fileobj.read(chunk_bytes)
                    count = len(chunk)
                    buffers[index][:count] = chunk
                if not count:
                    break
                filled.put((index, count))
            filled.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            filled.put(exc)

    reader = threading.Thread(target=read, name="hash-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := filled.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            index, count = item
            yield memoryview(buffers[index])[:count]
            free.put(index)
    finally:
        stop.set()
        free.put(0)  # wake a reader waiting for a buffer so it can see the stop
        reader.join(timeout=5)
