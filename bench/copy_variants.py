"""Design choices of ingest.transfer's copy pipeline, each against the real copy_and_hash, cold and warm page cache.

Issue 17 asks what was measured for each choice of `copy_and_hash` (reader -> hasher || writer threads over a
ring of RING_SLOTS buffers of CHUNK_BYTES, posix_fadvise(DONTNEED) on the copy every WRITEBACK_BYTES, fsync at
the end, os.readv into reused bytearrays). Variants, by group:

  writeback  no pacing; DONTNEED every 8 / 128 MiB; sync_file_range(SYNC_FILE_RANGE_WRITE) every 32 MiB
             (ctypes on libc); sync_file_range WRITE, then wait for the previous window and drop it (DONTNEED);
             DONTNEED on the new window, then on everything before it (drops what is written back, no wait)
  ring       RING_SLOTS 2, 4, 8, 12
  buffer     CHUNK_BYTES 256 KiB, 512 KiB, 1, 2, 8, 16 MiB
  combined   small buffers with the write-back pacings that drop written pages
  reads      this file's copy of the ring (readv into reused bytearrays: the reference), and os.read returning
             new bytes per chunk
  kernel     the copy in the kernel (copy_file_range or sendfile), SHA-256 from a second read of the chunk
             just copied: of the source's pages or of the copy's (both in the page cache by then), overlapped
             with the copy; and copy_file_range of the whole file, then a hash of the copy (serial)
  mmap       the source mapped (mmap): SHA-256 straight from its page-cache pages, no copy into a buffer;
             the copy by os.write from the mapping, or by copy_file_range
  direct     O_DIRECT reads, writes, or both (buffers from mmap, so page aligned; a file's tail, not a
             whole block, goes through the page cache)

Ring, buffer and pacing-off variants patch transfer's module globals around the real copy_and_hash (restored
afterwards); the others run here, on the same open/fsync/link/fsync-folder steps as copy_and_hash (no resume).
Every variant is first checked on a file of an odd size (its digest and the copy's bytes against hashlib),
and every timed copy's digest against hashlib on the source. Every copy is fsynced (durable).

Rounds interleave: each round runs every variant once cold and once warm, the order rotating; the
destination is a fresh folder on the same disk each time. Prints, per mode, a table: median MiB/s, runs,
ratio of the default's median time to the variant's (> 1: faster than the default), the bytes the
process read from the block device per byte copied (/proc/self/io read_bytes; 1.00 = one read pass), the
process's CPU seconds per GiB copied, and how busy the machine's CPUs were meanwhile (anyone's use).

    .venv/bin/python bench/copy_variants.py [--total-mib 1024] [--files 4] [--rounds 3] [--groups all]
        [--only TEXT,TEXT...]  (just the variants whose names contain one of these; the default always runs)
"""
from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import mmap
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, fresh_dir, median
from bench.copy_hash import MODES, Usage, load_text, make_sources, measured, rotated, set_cache, source_digests
from ingest import transfer
from storage import fsync_dir

MiB = 2**20
#: O_DIRECT alignment used here: the page size (the disk's logical block, 512, divides it).
ALIGN = mmap.PAGESIZE
_NEVER = 1 << 62
_STOP = -1
SFR_WAIT_BEFORE, SFR_WRITE, SFR_WAIT_AFTER = 1, 2, 4

Copy = Callable[[Path, Path, str], str]  # (source, staging folder, name) -> SHA-256 (hex) of the durable copy
Body = Callable[[int, int, int, Any], int]  # (source fd, copy fd, source size, digest) -> bytes written


@functools.cache
def _libc_sync_file_range() -> Any:
    call = ctypes.CDLL(None, use_errno=True).sync_file_range
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


def sync_file_range(fd: int, offset: int, length: int, flags: int) -> None:
    """sync_file_range(2) through libc (Python has no binding; ctypes releases the GIL). Raises OSError."""
    if _libc_sync_file_range()(fd, offset, length, flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sync_file_range(fd {fd}, {offset}, {length}, {flags}): {os.strerror(err)}")


class Pacer:
    """Starts write-back of a copy's dirty pages every *every* bytes written, as *how* says: "none";
    "dontneed" (posix_fadvise DONTNEED on the new window, as transfer does: on dirty pages it starts their
    write-back and drops none of them); "dontneed-lag" (that, then DONTNEED on everything before the new
    window: drops the pages whose write-back has finished meanwhile, without waiting); "sfr" (sync_file_range
    WRITE on the new window); "sfr-wait" (WRITE on the new window, then wait for the previous window's
    write-back and drop its pages with DONTNEED, so at most two windows are ever dirty or under write-back)."""

    def __init__(self, fd: int, how: str, every: int) -> None:
        if how not in ("none", "dontneed", "dontneed-lag", "sfr", "sfr-wait"):
            raise ValueError(f"write-back pacing {how!r} unknown")
        self.fd, self.how, self.every = fd, how, every
        self.written = self.flushed = 0
        self.previous: tuple[int, int] | None = None

    def wrote(self, count: int) -> None:
        self.written += count
        if self.how != "none" and self.written - self.flushed >= self.every:
            self._pace(self.flushed, self.written - self.flushed)
            self.flushed = self.written

    def _pace(self, start: int, length: int) -> None:
        if self.how.startswith("dontneed"):
            os.posix_fadvise(self.fd, start, length, os.POSIX_FADV_DONTNEED)
            if self.how == "dontneed-lag" and start:
                os.posix_fadvise(self.fd, 0, start, os.POSIX_FADV_DONTNEED)
            return
        sync_file_range(self.fd, start, length, SFR_WRITE)
        if self.how == "sfr-wait":
            if self.previous is not None:
                sync_file_range(self.fd, *self.previous, SFR_WAIT_BEFORE | SFR_WRITE | SFR_WAIT_AFTER)
                os.posix_fadvise(self.fd, *self.previous, os.POSIX_FADV_DONTNEED)
            self.previous = (start, length)


@dataclass(frozen=True)
class Design:
    """One way to build the ring: transfer's defaults unless changed."""

    slots: int = 6
    chunk: int = 4 * MiB
    pacing: str = "dontneed"
    every: int = 32 * MiB
    reads: str = "readv"  # "readv": into the ring's reused buffers; "read": os.read, new bytes per chunk
    direct: frozenset[str] = field(default_factory=frozenset)  # O_DIRECT on "read" and/or "write"


def _set_direct(fd: int, on: bool) -> None:
    """Set or clear O_DIRECT on an open descriptor (Linux allows it with F_SETFL). Raises OSError (EINVAL where
    the file system refuses O_DIRECT)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)


class Ring:
    """transfer._Pipeline as this benchmark varies it: reader -> (hasher || writer) over *design.slots* slots."""

    def __init__(self, design: Design, src_fd: int, dst_fd: int, digest: Any) -> None:
        self.design, self.src_fd, self.dst_fd, self.digest = design, src_fd, dst_fd, digest
        # mmap memory is page aligned, as O_DIRECT needs; bytearray memory is not
        self.buffers: list[Any] = [mmap.mmap(-1, design.chunk) if design.direct else bytearray(design.chunk)
                                   for _ in range(design.slots)]
        self.views: list[bytes | memoryview] = [b""] * design.slots
        self.free: queue.Queue[int] = queue.Queue()
        for slot in range(design.slots):
            self.free.put(slot)
        self.to_hash: queue.Queue[int] = queue.Queue()
        self.to_write: queue.Queue[int] = queue.Queue()
        self.pending = [0] * design.slots
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.failed = threading.Event()
        self.pacer = Pacer(dst_fd, design.pacing, design.every)
        self.written = 0
        for end, fd in (("read", src_fd), ("write", dst_fd)):
            if end in design.direct:
                _set_direct(fd, True)

    def _release(self, slot: int) -> None:
        with self.lock:
            self.pending[slot] -= 1
            if self.pending[slot] == 0:
                self.views[slot] = b""
                self.free.put(slot)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.failed.set()

    def _read(self, slot: int) -> int:
        if self.design.reads == "read":
            data = os.read(self.src_fd, self.design.chunk)
            self.views[slot] = data
            return len(data)
        count = os.readv(self.src_fd, [self.buffers[slot]])
        self.views[slot] = memoryview(self.buffers[slot])[:count]
        if count % ALIGN and "read" in self.design.direct:
            _set_direct(self.src_fd, False)  # the tail: the next read, at an unaligned offset, is buffered
        return count

    def _hasher(self) -> None:
        while (slot := self.to_hash.get()) != _STOP:
            if not self.failed.is_set():
                self.digest.update(self.views[slot])
            self._release(slot)

    def _write(self, view: memoryview) -> None:
        if len(view) % ALIGN and "write" in self.design.direct:
            _set_direct(self.dst_fd, False)  # O_DIRECT writes whole blocks: the file's tail goes buffered
        while view:
            view = view[os.write(self.dst_fd, view):]

    def _writer(self) -> None:
        while (slot := self.to_write.get()) != _STOP:
            try:
                if not self.failed.is_set():
                    count = len(self.views[slot])
                    self._write(memoryview(self.views[slot]))
                    self.written += count
                    self.pacer.wrote(count)
            except OSError as exc:
                self._fail(exc)
            finally:
                self._release(slot)

    def run(self) -> int:
        """Copy and hash to the source's end; the bytes written. Raises the first OSError of any thread."""
        threads = [threading.Thread(target=fn, daemon=True) for fn in (self._hasher, self._writer)]
        for thread in threads:
            thread.start()
        try:
            while not self.failed.is_set():
                slot = self.free.get()
                count = self._read(slot)
                if count == 0:
                    break
                self.pending[slot] = 2
                self.to_hash.put(slot)
                self.to_write.put(slot)
        except OSError as exc:
            self._fail(exc)
        finally:
            self.to_hash.put(_STOP)
            self.to_write.put(_STOP)
            for thread in threads:
                thread.join()
        if self.error is not None:
            raise self.error
        return self.written


@dataclass(frozen=True)
class KernelCopy:
    """The copy done by the kernel in chunks; SHA-256 from a second read of each chunk once it is copied."""

    call: str  # "copy_file_range" or "sendfile"
    hash_from: str  # "source" (its pages, cached by the copy) or "copy" (the copy's pages)
    overlap: bool = True  # hash while the next chunks copy (False: copy the whole file first)
    chunk: int = 4 * MiB
    ahead: int = 6  # chunks the copy may run ahead of the hash
    every: int = 32 * MiB  # DONTNEED pacing of the copy, as transfer's


def _copy_chunk(call: str, src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    if call == "copy_file_range":
        return os.copy_file_range(src_fd, dst_fd, count, offset, offset)
    return os.sendfile(dst_fd, src_fd, offset, count)  # writes at the copy's position: sequential


def _copier(kc: KernelCopy, src_fd: int, dst_fd: int, size: int,
            copied: queue.Queue[tuple[int, int] | BaseException | None]) -> None:
    try:
        offset = 0
        while offset < size:
            count = _copy_chunk(kc.call, src_fd, dst_fd, offset, min(kc.chunk, size - offset))
            if count == 0:
                raise OSError(f"{kc.call} copied nothing at byte {offset} of {size}")
            copied.put((offset, count))
            offset += count
        copied.put(None)
    except BaseException as exc:  # noqa: BLE001 - handed to the hashing thread, which raises it
        copied.put(exc)


def kernel_body(kc: KernelCopy, src_fd: int, dst_fd: int, size: int, digest: Any) -> int:
    """Copy *size* bytes as *kc* says and hash them; the bytes copied. Raises OSError."""
    copied: queue.Queue[tuple[int, int] | BaseException | None] = queue.Queue(kc.ahead if kc.overlap else 0)
    thread = threading.Thread(target=_copier, args=(kc, src_fd, dst_fd, size, copied), daemon=True)
    if kc.overlap:
        thread.start()
    else:
        thread.run()  # here, to the end, before any hashing
    hash_fd = src_fd if kc.hash_from == "source" else dst_fd
    pacer = Pacer(dst_fd, "dontneed", kc.every)
    whole = memoryview(bytearray(kc.chunk))
    while (item := copied.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        offset, count = item
        if (got := os.preadv(hash_fd, [whole[:count]], offset)) != count:
            raise OSError(f"read {got} of {count} bytes at {offset} back for hashing")
        digest.update(whole[:count])
        pacer.wrote(count)
    if kc.overlap:
        thread.join()
    return size


@dataclass(frozen=True)
class Mapped:
    """The source mapped: SHA-256 from the mapping (its page-cache pages, no copy) on this thread while a second
    thread copies the same chunk, by os.write from the mapping ("write") or by copy_file_range."""

    copy: str
    chunk: int = 4 * MiB
    ahead: int = 6  # chunks hashed ahead of the copy
    every: int = 32 * MiB  # DONTNEED pacing of the copy, as transfer's


def _mapped_copier(m: Mapped, view: memoryview, src_fd: int, dst_fd: int,
                   chunks: queue.Queue[tuple[int, int] | None], errors: list[BaseException]) -> None:
    pacer = Pacer(dst_fd, "dontneed", m.every)
    while (item := chunks.get()) is not None:
        if errors:
            continue  # drain, so the hashing thread never blocks on a full queue
        offset, count = item
        try:
            done = 0
            while done < count:
                if m.copy == "write":
                    done += os.write(dst_fd, view[offset + done:offset + count])
                else:
                    done += os.copy_file_range(src_fd, dst_fd, count - done, offset + done, offset + done)
            pacer.wrote(count)
        except OSError as exc:
            errors.append(exc)


def mapped_body(m: Mapped, src_fd: int, dst_fd: int, size: int, digest: Any) -> int:
    """Copy *size* bytes as *m* says, hashing them from the source's mapping; the bytes copied. Raises OSError.
    (A device unplugged under a mapping raises SIGBUS, not OSError: this is a measurement, not a candidate
    as it stands.) The mapping is left to the garbage collector: a view still held would make close() fail."""
    mapping = mmap.mmap(src_fd, size, access=mmap.ACCESS_READ)
    mapping.madvise(mmap.MADV_SEQUENTIAL)
    view = memoryview(mapping)
    del mapping
    chunks: queue.Queue[tuple[int, int] | None] = queue.Queue(m.ahead)
    errors: list[BaseException] = []
    thread = threading.Thread(target=_mapped_copier, args=(m, view, src_fd, dst_fd, chunks, errors), daemon=True)
    thread.start()
    try:
        for offset in range(0, size, m.chunk):
            chunks.put((offset, min(m.chunk, size - offset)))
            digest.update(view[offset:offset + m.chunk])
            if errors:
                break
    finally:
        chunks.put(None)
        thread.join()
    if errors:
        raise errors[0]
    return size


def durable_copy(source: Path, staging: Path, name: str, body: Body, *, read_back: bool = False) -> str:
    """copy_and_hash's steps around *body* (without resuming): the source opened as transfer opens a device
    file, read sequentially; `<name>.part` written by *body* (opened read-write when *read_back*), fsynced,
    linked to `<sha256>`, the folder fsynced. Returns the SHA-256. Raises OSError."""
    part = staging / f"{name}.part"
    digest = hashlib.sha256()
    src_fd = transfer.open_device_file(source)
    try:
        dst_fd = os.open(part, (os.O_RDWR if read_back else os.O_WRONLY) | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fadvise(src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            body(src_fd, dst_fd, os.fstat(src_fd).st_size, digest)
            os.fsync(dst_fd)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    sha256 = digest.hexdigest()
    with suppress(FileExistsError):  # the same bytes already staged
        os.link(part, staging / sha256)
    part.unlink()
    fsync_dir(staging)
    return sha256


def ring(design: Design) -> Copy:
    return lambda source, staging, name: durable_copy(
        source, staging, name, lambda s, d, _size, digest: Ring(design, s, d, digest).run())


def kernel(kc: KernelCopy) -> Copy:
    return lambda source, staging, name: durable_copy(
        source, staging, name, lambda s, d, size, digest: kernel_body(kc, s, d, size, digest),
        read_back=kc.hash_from == "copy")


def mapped(m: Mapped) -> Copy:
    return lambda source, staging, name: durable_copy(
        source, staging, name, lambda s, d, size, digest: mapped_body(m, s, d, size, digest))


@contextmanager
def patched(**values: int) -> Iterator[None]:
    """ingest.transfer's module globals set to *values* for the block, restored afterwards. Raises
    AttributeError when transfer has no such global (renamed: this benchmark needs updating)."""
    old = {name: getattr(transfer, name) for name in values}
    try:
        for name, value in values.items():
            setattr(transfer, name, value)
        yield
    finally:
        for name, value in old.items():
            setattr(transfer, name, value)


def real(**values: int) -> Copy:
    """The real copy_and_hash, transfer's globals patched to *values* while it runs."""
    def copy(source: Path, staging: Path, name: str) -> str:
        with patched(**values):
            return transfer.copy_and_hash(source, staging, part_name=name).sha256
    return copy


@dataclass(frozen=True)
class Variant:
    group: str
    name: str
    copy: Copy


DEFAULT = "default: copy_and_hash"


def variants() -> list[Variant]:
    """Every variant, the default first."""
    d = Design()
    direct = {"read": frozenset({"read"}), "write": frozenset({"write"}), "read+write": frozenset({"read", "write"})}
    return [
        Variant("", DEFAULT, real()),
        Variant("writeback", "no write-back pacing", real(WRITEBACK_BYTES=_NEVER)),
        Variant("writeback", "DONTNEED every 8 MiB", real(WRITEBACK_BYTES=8 * MiB)),
        Variant("writeback", "DONTNEED every 128 MiB", real(WRITEBACK_BYTES=128 * MiB)),
        Variant("writeback", "sync_file_range(WRITE) every 32 MiB", ring(replace(d, pacing="sfr"))),
        Variant("writeback", "sfr WRITE + wait previous + DONTNEED", ring(replace(d, pacing="sfr-wait"))),
        Variant("writeback", "DONTNEED new window + all before it", ring(replace(d, pacing="dontneed-lag"))),
        *[Variant("ring", f"ring of {n}", real(RING_SLOTS=n)) for n in (2, 4, 8, 12)],
        Variant("buffer", "256 KiB buffers", real(CHUNK_BYTES=MiB // 4)),
        Variant("buffer", "512 KiB buffers", real(CHUNK_BYTES=MiB // 2)),
        *[Variant("buffer", f"{n} MiB buffers", real(CHUNK_BYTES=n * MiB)) for n in (1, 2, 8, 16)],
        Variant("reads", "bench ring: readv, reused (reference)", ring(d)),
        Variant("reads", "bench ring: os.read, new bytes", ring(replace(d, reads="read"))),
        Variant("kernel", "copy_file_range + hash source pages", kernel(KernelCopy("copy_file_range", "source"))),
        Variant("kernel", "copy_file_range + hash copy's pages", kernel(KernelCopy("copy_file_range", "copy"))),
        Variant("kernel", "sendfile + hash source pages", kernel(KernelCopy("sendfile", "source"))),
        Variant("kernel", "copy_file_range, then hash the copy",
                kernel(KernelCopy("copy_file_range", "copy", overlap=False))),
        Variant("mmap", "mmap source: hash it, write() from it", mapped(Mapped("write"))),
        Variant("mmap", "mmap source: hash it; copy_file_range", mapped(Mapped("copy_file_range"))),
        Variant("combined", "512 KiB buffers, ring of 12", real(CHUNK_BYTES=MiB // 2, RING_SLOTS=12)),
        Variant("combined", "512 KiB + sfr WRITE + wait previous", ring(replace(d, chunk=MiB // 2, pacing="sfr-wait"))),
        Variant("combined", "512 KiB + DONTNEED new + all before",
                ring(replace(d, chunk=MiB // 2, pacing="dontneed-lag"))),
        Variant("combined", "1 MiB + DONTNEED new + all before", ring(replace(d, chunk=MiB, pacing="dontneed-lag"))),
        *[Variant("direct", f"O_DIRECT {ends}", ring(replace(d, direct=flags, pacing="none" if "write" in ends
                                                             else "dontneed"))) for ends, flags in direct.items()],
    ]


def device_read_bytes() -> int:
    """Bytes this process has had read from block devices (/proc/self/io read_bytes, all its threads)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no read_bytes line")


def self_check(chosen: Sequence[Variant], folder: Path) -> None:
    """Each variant copies a file of an odd size (tail shorter than a block, more than 16 MiB): its digest and
    the copy's bytes must be hashlib's of the source. Raises SystemExit naming the variant otherwise."""
    source = folder / "odd.bin"
    if not source.exists():
        folder.mkdir(parents=True, exist_ok=True)
        source.write_bytes(os.urandom(40 * MiB + 12345))
    want = source_digests([source])[source]
    for variant in chosen:
        dest = fresh_dir(folder / "dst")
        got = variant.copy(source, dest, "odd")
        staged = list(dest.iterdir())
        copied = source_digests(staged) if len(staged) == 1 else {}
        if got != want or staged != [dest / want] or copied[dest / want] != want:
            raise SystemExit(f"{variant.name}: digest {got}, staged {staged} hashing to {copied}, "
                             f"hashlib on the source {want}")
    fresh_dir(folder / "dst")


def run_once(variant: Variant, sources: Sequence[Path], dest: Path, digests: dict[Path, str]) -> tuple[Usage, int]:
    """Copy *sources* into *dest* with *variant*: the run's time and CPU, and the bytes read from the device
    meanwhile. Raises SystemExit when a digest is not hashlib's."""
    got: list[str] = []
    before = device_read_bytes()
    usage = measured(lambda: got.extend(variant.copy(s, dest, s.stem) for s in sources))
    read = device_read_bytes() - before
    for source, sha256 in zip(sources, got, strict=True):
        if sha256 != digests[source]:
            raise SystemExit(f"{variant.name}: {source} hashed to {sha256}, hashlib {digests[source]}")
    return usage, read


Results = dict[tuple[str, str], list[tuple[Usage, int]]]  # (mode, variant) -> (run, device bytes read) per run


def run_rounds(rounds: int, chosen: Sequence[Variant], sources: Sequence[Path], dest: Path) -> Results:
    digests = source_digests(sources)
    results: Results = {(mode, v.name): [] for mode in MODES for v in chosen}
    for turn in range(rounds):
        for mode in rotated(MODES, turn):
            for variant in rotated(chosen, turn):
                fresh_dir(dest)
                set_cache(sources, mode)
                results[mode, variant.name].append(run_once(variant, sources, dest, digests))
    fresh_dir(dest)
    return results


def report(results: Results, chosen: Sequence[Variant], total_mib: int) -> None:
    """A markdown table per mode: median MiB/s, runs, ratio to the default, device bytes read per byte copied,
    CPU seconds per GiB (this process), machine CPU busy share (anyone's)."""
    for mode in MODES:
        base = median([u.seconds for u, _ in results[mode, DEFAULT]])
        print(f"\n{mode} reads\n\n| variant | median MiB/s | runs MiB/s | ratio to default | device reads | "
              "CPU s/GiB | machine busy |")
        print("|---|---:|---|---:|---:|---:|---:|")
        for variant in chosen:
            runs = results[mode, variant.name]
            seconds = median([u.seconds for u, _ in runs])
            passes = median([r for _, r in runs]) / (total_mib * MiB)
            cpu = median([u.cpu for u, _ in runs]) * 1024 / total_mib
            print(f"| {variant.group + ': ' if variant.group else ''}{variant.name} | {total_mib / seconds:.0f} | "
                  f"{', '.join(f'{total_mib / u.seconds:.0f}' for u, _ in runs)} | {base / seconds:.2f} | "
                  f"{passes:.2f} | {cpu:.2f} | {median([u.busy for u, _ in runs]):.0%} |")


def main() -> None:
    args = arguments(__doc__, total_mib=1024, files=4, rounds=3, groups="all", only="")
    groups = None if args.groups == "all" else set(args.groups.split(","))
    only = [text for text in args.only.split(",") if text]
    chosen = [v for v in variants() if not v.group or ((groups is None or v.group in groups)
                                                        and (not only or any(t in v.name for t in only)))]
    each = args.total_mib // args.files
    sources = make_sources(OUT / "copy-variants-src", args.files, each)
    self_check(chosen, OUT / "copy-variants-check")
    before = load_text()
    results = run_rounds(args.rounds, chosen, sources, OUT / "copy-variants-dst")
    print(f"copy + hash variants, {args.files} files x {each} MiB = {each * args.files} MiB, {args.rounds} "
          f"interleaved rounds, same disk; {before} before, {load_text()} after")
    report(results, chosen, each * args.files)


if __name__ == "__main__":
    main()
