"""Photos decoded for their thumbnails in a process of their own, held to a memory limit.

What a photo's header says bounds the decode only so far (ingest.photo_frame.MAX_DECODED_PIXELS): a progressive
or multi-scan JPEG keeps every coefficient of the full picture while it is decoded at 1/8, an ICO is decoded to
read its header, a HEIC's coded picture may be larger than it says, and a decoder may crash on hostile bytes. In
the worker's or station's own process any of these ends the station (the kernel's out-of-memory killer, a
segfault) at every pass after it. So the decode runs in a child process (`python -P -m ingest.photo_child`), one
per thread that renders, reused from photo to photo and started again after a failure: its address space is
limited (RLIMIT_AS) to what its imports take plus PHOTO_MEMORY_BYTES, so a decode that needs more fails there with
a memory error and is recorded as the photo's failure; a decoder crash (SIGSEGV, SIGABRT...) is the photo's
failure too; a photo still being decoded after PHOTO_TIMEOUT_S is killed and recorded as such. A child killed by
SIGKILL from outside is counted like a killed ffmpeg (catalog.media_work.MAX_KILLS), one stopped by SIGTERM leaves
the work for the next pass. The child dies with the thread that started it (setpriv --pdeathsig) and leaves when
its parent goes.

The protocol on the child's stdin and stdout: a request is a JSON header (4-byte big-endian length first) and the
photo's bytes (8-byte length first); the reply is a JSON header ({"ok": true} or {"ok": false, "error": why}) and
the thumbnail's JPEG bytes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Any

from ingest.errors import RenderInterrupted
from ingest.photo_frame import THUMBNAIL_WIDTH

__all__ = ["PHOTO_MEMORY_BYTES", "PHOTO_TIMEOUT_S", "PhotoProcess", "PhotoTooLarge", "ended_because",
           "render_photo_thumbnail", "thread_photo_process"]

logger = logging.getLogger(__name__)

#: Memory a photo's decode may take in the child, beyond what its imports take (RLIMIT_AS): a 48-megapixel phone
#: HEIC decoded whole takes about 0.9 GB (ingest.photo_frame.DECODE_BYTES_PER_PIXEL).
PHOTO_MEMORY_BYTES = 2 * 1024 * 1024 * 1024
#: Longest decode of one photo before the child is killed (a decoder that spins).
PHOTO_TIMEOUT_S = 120.0
#: Signals by which a decoder crashes on its input: the photo's fault, recorded.
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL})
#: Signals by which a child is stopped from outside: nothing is known about the photo.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


class PhotoTooLarge(ValueError):
    """Decoding the photo needed more memory than PHOTO_MEMORY_BYTES (the decoder's words in the message)."""


def ended_because(returncode: int, cause: str = "") -> Exception:
    """What a photo decoder that ended with *returncode* while it decoded says about the photo (pure): a crash
    (SIGSEGV, SIGABRT...) is the photo's doing (ValueError); SIGKILL from outside (the out-of-memory killer,
    typically) is counted towards giving up (RenderInterrupted.killed); a stop, or any other end, says nothing."""
    if returncode < 0 and -returncode in CRASH_SIGNALS:
        return ValueError(f"the photo decoder crashed on it ({signal.Signals(-returncode).name})")
    if returncode == -signal.SIGKILL:
        return RenderInterrupted("a photo", "its decoder was killed (SIGKILL)", killed=True)
    if returncode < 0 and -returncode in STOP_SIGNALS:
        return RenderInterrupted("a photo", f"its decoder was stopped ({signal.Signals(-returncode).name})")
    return RenderInterrupted("a photo", f"the photo decoder ended unexpectedly (exit {returncode}{cause})")


class PhotoProcess:
    """One child decoding photos, started when first asked and again after it ends; one thread uses it at a time."""

    def __init__(self, *, memory_bytes: int | None = None, timeout_s: float | None = None) -> None:
        self.memory_bytes = memory_bytes or PHOTO_MEMORY_BYTES
        self.timeout_s = timeout_s or PHOTO_TIMEOUT_S
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def thumbnail(self, data: bytes | bytearray, *, width: int = THUMBNAIL_WIDTH) -> bytes:
        """The JPEG thumbnail of the photo *data*.

        Raises:
          ValueError: the photo cannot be decoded within the limits (why: its size, a crash, the time;
            PhotoTooLarge: the memory).
          RenderInterrupted: the child could not be started, or was stopped or killed from outside.
        """
        reply, body = self._ask({"op": "thumbnail", "width": width}, data)
        if not reply.get("ok"):
            raise self._refused(reply)
        return body

    def decode(self, data: bytes | bytearray) -> str | None:
        """Decode the whole photo *data* (Pillow; pillow-heif for HEIF): None when it decodes, else the decoder's
        error (the photo is damaged).

        Raises:
          PhotoTooLarge: it needs more memory than the child may take: no verdict.
          ValueError: the decoder crashed on it, or ran out of time: no verdict either.
          RenderInterrupted: as `thumbnail`.
        """
        reply, _body = self._ask({"op": "decode"}, data)
        if reply.get("ok"):
            return None
        refused = self._refused(reply)
        if isinstance(refused, PhotoTooLarge):
            raise refused
        return str(refused)

    def _refused(self, reply: dict[str, Any]) -> ValueError:
        self.close()  # a fresh process for the next photo: nothing a failed decode left behind stays
        why = str(reply.get("error") or "the photo could not be decoded")
        return PhotoTooLarge(why) if reply.get("memory") else ValueError(why)

    def _ask(self, request: dict[str, Any], data: bytes | bytearray) -> tuple[dict[str, Any], bytes]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        header = json.dumps(request).encode()
        try:
            proc.stdin.write(struct.pack(">I", len(header)) + header + struct.pack(">Q", len(data)))
            proc.stdin.write(data)
            proc.stdin.flush()
            deadline = time.monotonic() + self.timeout_s
            size = struct.unpack(">I", _read_exactly(proc.stdout, 4, deadline))[0]
            reply: dict[str, Any] = json.loads(_read_exactly(proc.stdout, size, deadline))
            length = struct.unpack(">Q", _read_exactly(proc.stdout, 8, deadline))[0]
            return reply, _read_exactly(proc.stdout, length, deadline)
        except TimeoutError as exc:
            self.close()
            raise ValueError(f"decoding the photo did not finish within {self.timeout_s:g} s") from exc
        except (OSError, EOFError, ValueError) as exc:
            raise self._ended(exc) from exc
        except BaseException:  # interrupted half-way (a time limit raised in this thread): its reply must never
            self.close()  # be read as the next photo's
            raise

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def close(self) -> None:
        """End the child (if any)."""
        self._proc = None
        if self._finalizer is not None:
            self._finalizer()  # once: kills and reaps it
            self._finalizer = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self.close()
        from ingest.derive import dies_with_parent  # ingest.derive imports this module
        args = [sys.executable, "-P", "-m", "ingest.photo_child", str(self.memory_bytes)]
        try:
            self._proc = subprocess.Popen(dies_with_parent(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as exc:
            raise RenderInterrupted("a photo", f"cannot start the photo decoder: {exc}") from exc
        # a thread's PhotoProcess goes with the thread: its child is ended and reaped then, not left to the kernel;
        # not at interpreter exit, where a daemon thread may still be decoding with it (its kill would be counted
        # as one from outside): the child leaves by itself when this process goes
        self._finalizer = weakref.finalize(self, _end, self._proc)
        self._finalizer.atexit = False
        return self._proc

    def _ended(self, cause: BaseException) -> Exception:
        """Why the child ended while it decoded (it is reaped): `ended_because`."""
        proc = self._proc
        assert proc is not None
        _close_streams(proc)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.close()
            return RenderInterrupted("a photo", f"the photo decoder stopped answering ({cause})")
        self.close()
        return ended_because(code, f": {cause}")


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Close the child's pipes, kill it if it still runs, and reap it."""
    _close_streams(proc)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _close_streams(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # a flush into a pipe whose reader is gone
                stream.close()


_threads = threading.local()


def render_photo_thumbnail(data: bytes | bytearray, dest: Path, *, width: int = THUMBNAIL_WIDTH) -> Path:
    """The JPEG thumbnail of the photo *data* at *dest*, decoded by this thread's PhotoProcess (PhotoProcess.
    thumbnail's errors); OSError when *dest* cannot be written."""
    dest.write_bytes(thread_photo_process().thumbnail(data, width=width))
    return dest


def thread_photo_process() -> PhotoProcess:
    """This thread's photo decoder (started when first asked; it ends with the thread)."""
    process: PhotoProcess | None = getattr(_threads, "process", None)
    if process is None:
        process = _threads.process = PhotoProcess()
    return process


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytes:
    """*size* bytes from *stream*; TimeoutError past *deadline*, EOFError when it ends first. (poll, not select: a
    worker may hold more than 1,024 descriptors.)"""
    chunks, left, fd = [], size, stream.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise TimeoutError
        chunk = os.read(fd, min(left, 4 * 1024 * 1024))
        if not chunk:
            raise EOFError("the photo decoder closed its output")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------------------- the child


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


def _leave_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)
    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _memory_error(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, MemoryError) or "Insufficient memory" in text or "Failed to allocate" in text or (
        "out of memory" in text.lower())


def serve(stdin: IO[bytes], stdout: IO[bytes], memory_bytes: int) -> int:
    """The child's loop: decode each photo asked for; leave after a failure (a fresh process for the next one) or
    when the input ends."""
    from ingest.photo_frame import TooLargeToDecode, decode_whole, encode_thumbnail, load_cv2, photo_frame

    def read(size: int) -> bytes | None:
        data = stdin.read(size)
        return data if len(data) == size else None

    from PIL import Image

    load_cv2().setNumThreads(1)  # everything imported (OpenCV, NumPy, Pillow) before the limit is set
    Image.MAX_IMAGE_PIXELS = None  # the memory limit bounds every decode here instead of Pillow's bomb guard
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + memory_bytes, resource.getrlimit(
        resource.RLIMIT_AS)[1]))
    while (size := read(4)) is not None:
        request: dict[str, Any] = json.loads(read(struct.unpack(">I", size)[0]) or b"{}")
        length = read(8)
        data = read(struct.unpack(">Q", length)[0]) if length is not None else None
        if data is None:
            return 0
        try:
            if request.get("op") == "decode":
                decode_whole(data, memory_bytes=memory_bytes)
                body = b""
            else:
                body = encode_thumbnail(photo_frame(data), width=int(request.get("width", THUMBNAIL_WIDTH)))
            reply: dict[str, Any] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - whatever a decoder raises on hostile input is the photo's failure
            body = b""
            if isinstance(exc, TooLargeToDecode):
                reply = {"ok": False, "memory": True, "error": str(exc)}
            elif _memory_error(exc):
                reply = {"ok": False, "memory": True, "error": (
                    f"decoding it needs more than the {memory_bytes // 2**20} MB a photo's decode may take "
                    f"({type(exc).__name__}: {str(exc)[:200]})")}
            else:
                plain = isinstance(exc, ValueError) and request.get("op") != "decode"  # ours, already worded
                why = str(exc) if plain else f"{type(exc).__name__}: {exc}"
                reply = {"ok": False, "error": why[:500]}
        del data
        header = json.dumps(reply).encode()
        stdout.write(struct.pack(">I", len(header)) + header + struct.pack(">Q", len(body)) + body)
        stdout.flush()
        if not reply["ok"]:
            return 0
    return 0


def main(argv: list[str]) -> int:
    memory_bytes = int(argv[1]) if len(argv) > 1 else PHOTO_MEMORY_BYTES
    stdin = sys.stdin.buffer
    # The replies go on a descriptor of their own; descriptor 1 becomes stderr, so that nothing else written to
    # stdout (a print, OpenCV's or a codec's log lines from C) ever lands in them
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _leave_with_parent(os.getppid())
    return serve(stdin, stdout, memory_bytes)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
