import ctypes
import hashlib
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storage.hashing import CHUNK_BYTES, Hashed, TwoDigests, chunk_buffer, hash_file, hash_stream, hashed_chunks
from tests.conftest import wait_for

SMALL = 1024  # a small chunk keeps multi-chunk cases fast


class _ReadOnly:
    """A stream with `read` and no `readinto` (as some HTTP bodies are)."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)


class _FailsAfter:
    """A stream that raises after handing out *good* bytes, like a disk or a connection giving up."""

    def __init__(self, good: int) -> None:
        self._left = good

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise OSError(5, "Input/output error")
        count = min(size, self._left)
        self._left -= count
        return b"x" * count


class _FullDisk(io.BytesIO):
    def write(self, data) -> int:
        raise OSError(28, "No space left on device")


def _read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hash-read-ahead"]


def test_chunk_size_is_the_one_the_copy_ring_uses():
    from ingest.transfer import CHUNK_BYTES as transfer_chunk

    assert CHUNK_BYTES == transfer_chunk == 4 * 1024 * 1024


@pytest.mark.parametrize("read_ahead", [False, True])
@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, 2 * SMALL + 3, 9 * SMALL + 123])
def test_stream_hash_and_size_are_those_of_every_byte(size, read_ahead):
    data = os.urandom(size)
    hashed = hash_stream(io.BytesIO(data), read_ahead=read_ahead, chunk_bytes=SMALL)
    assert hashed == Hashed(hashlib.sha256(data).hexdigest(), size)
    assert (hashed.sha256, hashed.size_bytes) == hashed  # unpacks as (sha256, size_bytes)


@pytest.mark.parametrize("read_ahead", [False, True])
def test_stream_without_readinto_is_read_with_read(read_ahead):
    data = os.urandom(5 * SMALL + 7)
    hashed = hash_stream(_ReadOnly(data), read_ahead=read_ahead, chunk_bytes=SMALL)
    assert hashed == (hashlib.sha256(data).hexdigest(), len(data))


@pytest.mark.parametrize("read_ahead", [False, True])
def test_hashing_copy_writes_exactly_the_bytes_it_hashes(tmp_path, read_ahead):
    data = os.urandom(7 * SMALL + 5)
    with (tmp_path / "copy").open("xb") as out:
        hashed = hash_stream(io.BytesIO(data), copy_to=out, read_ahead=read_ahead, chunk_bytes=SMALL)
    assert (tmp_path / "copy").read_bytes() == data
    assert hashed == (hashlib.sha256(data).hexdigest(), len(data))


def test_hash_continues_a_digest_and_counts_only_the_new_bytes():
    # Given a digest that already holds the first part (an interrupted copy's bytes)
    first, rest = os.urandom(3 * SMALL), os.urandom(2 * SMALL + 1)
    digest = hashlib.sha256(first)
    # When the rest is hashed into it
    hashed = hash_stream(io.BytesIO(rest), into=digest, chunk_bytes=SMALL)
    # Then the hash covers all bytes and the count only the rest
    assert hashed == (hashlib.sha256(first + rest).hexdigest(), len(rest))
    assert digest.hexdigest() == hashed.sha256


@pytest.mark.parametrize("read_ahead", [False, True])
def test_read_error_propagates_unchanged(read_ahead):
    with pytest.raises(OSError, match="Input/output error") as info:
        hash_stream(_FailsAfter(3 * SMALL), read_ahead=read_ahead, chunk_bytes=SMALL)
    assert (info.value.errno, info.value.strerror) == (5, "Input/output error")
    wait_for(lambda: not _read_ahead_threads(), 5, "the read-ahead thread to end")


def test_write_error_propagates_and_stops_the_read_ahead_thread():
    with pytest.raises(OSError, match="No space left on device"):
        hash_stream(io.BytesIO(os.urandom(50 * SMALL)), copy_to=_FullDisk(), read_ahead=True, chunk_bytes=SMALL)
    wait_for(lambda: not _read_ahead_threads(), 5, "the read-ahead thread to end")


def test_hash_file_hashes_the_file_at_the_path(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(data := os.urandom(CHUNK_BYTES + 3))
    assert hash_file(path) == (hashlib.sha256(data).hexdigest(), len(data))


def test_hash_file_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "gone.mp4")


def test_hashed_chunks_yields_new_chunks_and_hashes_them_all():
    data = os.urandom(4 * SMALL + 9)
    digest = hashlib.sha256()
    chunks = list(hashed_chunks(io.BytesIO(data), into=digest, chunk_bytes=SMALL))
    assert [len(c) for c in chunks] == [SMALL] * 4 + [9]
    assert b"".join(chunks) == data  # each chunk is its own bytes object, kept intact after the next read
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_hashed_chunks_of_an_empty_stream_yields_nothing():
    digest = hashlib.sha256()
    assert list(hashed_chunks(io.BytesIO(b""), into=digest)) == []
    assert digest.hexdigest() == hashlib.sha256(b"").hexdigest()


def test_hash_file_follows_a_symbolic_link(tmp_path: Path):
    (tmp_path / "real.bin").write_bytes(b"evidence")
    (tmp_path / "link.bin").symlink_to(tmp_path / "real.bin")
    assert hash_file(tmp_path / "link.bin").sha256 == hashlib.sha256(b"evidence").hexdigest()


@pytest.mark.parametrize("read_ahead", [False, True])
def test_two_digests_in_one_read_equal_hashlibs_and_the_copy_is_exact(tmp_path, read_ahead):
    """The export's one pass: SHA-256 and SHA-512 of a stream while it is copied, each equal to hashlib's over
    the whole bytes (chunk boundaries and the reused read buffer included)."""
    data = os.urandom(3 * SMALL + 17)
    copy = tmp_path / "copy"
    with ThreadPoolExecutor(max_workers=1) as pool, copy.open("wb") as out:
        digests = TwoDigests(pool)
        found = hash_stream(io.BytesIO(data), copy_to=out, into=digests, read_ahead=read_ahead, chunk_bytes=SMALL)
    assert found == Hashed(hashlib.sha256(data).hexdigest(), len(data))
    assert digests.sha512.hexdigest() == hashlib.sha512(data).hexdigest()
    assert copy.read_bytes() == data



def _mapping_at(address: int) -> str | None:
    """The line of /proc/self/maps whose range holds *address*, or None when nothing is mapped there."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        if start <= address < end:
            return line
    return None


def test_a_chunk_buffer_is_a_private_mapping_of_its_own_given_back_when_dropped(tmp_path: Path) -> None:
    # Four docks' rings must not stay behind in the malloc heap once their copies end (bench/station_parallel.py
    # saw the station's peak memory grow from one round of docks to the next while they did). A block as big as an S3
    # part freed first, as in a station: glibc then serves blocks of a ring's size from its heap, not mappings.
    part = bytes(16 * 1024 * 1024)
    del part
    buffer = chunk_buffer()
    view = ctypes.c_char.from_buffer(buffer)
    first, last = ctypes.addressof(view), ctypes.addressof(view) + CHUNK_BYTES - 1
    del view  # the buffer can only be unmapped once nothing points into it
    mapping = _mapping_at(first)
    assert mapping is not None and mapping == _mapping_at(last), mapping
    fields = mapping.split()
    assert fields[1] == "rw-p" and len(fields) == 5, mapping  # writable, private, anonymous (not the heap's)
    source = tmp_path / "src"
    source.write_bytes(b"evidence" * 1000)
    fd = os.open(source, os.O_RDONLY)
    try:
        assert os.readv(fd, [buffer]) == 8000  # what the copy ring does with it
    finally:
        os.close(fd)
    assert hashlib.sha256(memoryview(buffer)[:8000]).digest() == hashlib.sha256(b"evidence" * 1000).digest()
    del buffer
    assert _mapping_at(first) is None and _mapping_at(last) is None  # given back at once, nothing left behind
