"""The background decode check: decode every audio and video frame of an original and record the verdict.

The ingest check reads headers only, so a clip whose container and sample
tables are intact but whose coded data is garbage passes it. Decoding finds
that. `decode_verdict` is pure: it reads ffmpeg's stderr (`-v error` plus
progress lines) and returns the first error line and the media time it
occurred at. `run_decode_check` runs ffmpeg with a deadline and kills it when
a hostile file would hang it. `check_recording` decodes the original where
it is stored (EvidenceStore.read_in_place: the local store's sealed file, or
an S3 object through a presigned URL ffmpeg reads with ranged GETs; nothing
is copied), runs the check once per recording and records it as an integrity
revision (`catalog.integrity`), never overwriting the ingest verdict.

Read over the network, a failed read and damaged data look alike: a stalled
or dropped connection ends in the same decoder errors ("Invalid NAL unit
size", "moov atom not found") as a truncated file, often with no network
error at `-v error`. So a damaged verdict found through a URL is confirmed
from a temporary local copy of the original before it is recorded (and a
store that does not answer then leaves no verdict at all). A clean decode
needs no confirmation: every failed read ends in an error line. A damaged
verdict from a local file is confirmed by decoding it a second time: an
ffmpeg stopped by a signal while it starts up exits 1 with errors of its own
(`run_decode_check`).

Where the first error happened: ffmpeg prints its progress line
(`frame=… time=HH:MM:SS.xx …`, the end time of the last packet it wrote) to
stderr even at `-v error`, in order with the error lines. With a 10 µs
`-stats_period` it prints one per packet handled, so the last progress time
before the first error places the error: the h264 parser and frame threads
run 2-3 frames ahead of the muxer, so on 1080p H.264 at 30 fps it read
0.05-0.10 s before the first damaged frame, and on a 320x240 clip one audio
packet (0.02 s) after it; the same on every run. (`-debug_ts` gives per-packet
times too, but at `-v info`: 12x the output, in a format ffmpeg changes.)
"""
from __future__ import annotations

import importlib
import logging
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import IntegrityStatus, MediaKind, Recording, RecordingNotFound
from catalog.integrity import DECODE_CHECK, decode_revisions, record_integrity, undecoded_ids
from catalog.models import IN_ARCHIVE
from catalog.recordings import lock_recording
from ingest.derive import (
    IO_TIMEOUT_S,
    dies_with_parent,
    ffmpeg_source,
    is_url,
    killed_from_outside,
    read_photo,
    shown_source,
    stopped_from_outside,
)
from ingest.describe.image_header import HEADER_ERRORS, jpeg_frame_headers, read_image_header
from ingest.errors import DecodeIncomplete, DecodeTimedOut, RenderInterrupted
from ingest.photo_child import thread_photo_process
from ingest.photo_frame import JPEG_FORMATS
from storage import EvidenceStore

__all__ = ["DECODE_CHECK", "DecodeIncomplete", "DecodeLog", "DecodeResult", "DecodeTimedOut", "check_recording",
           "decode_stored", "decode_timeout_s", "decode_verdict", "is_heif", "run_decode_check", "skip_reason",
           "unchecked_ids"]

logger = logging.getLogger(__name__)

#: ffmpeg's words for a picture past its size limit (libavutil's av_image_check_size: about 268 megapixels): the
#: picture is not judged, it is not damaged.
TOO_LARGE_FOR_FFMPEG = re.compile(r"Picture size (?P<width>\d+)x(?P<height>\d+) is invalid")

#: Media kinds that are decoded; documents and `other` are not media.
CHECKED_KINDS = ("video", "audio", "photo")
#: Seconds between ffmpeg progress lines (as ffmpeg parses it: no exponent). This short, ffmpeg prints one
#: per packet it handles: ~6 KiB of stderr per second of 1080p media, read line by line and not kept.
STATS_PERIOD = "0.00001"
#: Shortest deadline for one decode, and seconds allowed per second of media (decoding runs ~14x realtime).
MIN_TIMEOUT_S = 120.0
TIMEOUT_PER_MEDIA_S = 3.0
#: ISO-BMFF major brands of HEIF/HEIC images, which this ffmpeg cannot decode.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
#: Longest first-error line kept (a hostile file controls what the decoder prints).
MAX_LINE_CHARS = 500

_PROGRESS = re.compile(r"^(?:frame=|size=|Lsize=)")
_TIME = re.compile(r"\btime=\s*(-?)(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_REPEATED = re.compile(r"^Last message repeated (\d+) times?")
_CONTEXT = re.compile(r"^\[([^\]@]+?) @ 0x[0-9a-fA-F]+\]\s*")


@dataclass(frozen=True)
class DecodeResult:
    status: str  # ok | damaged
    first_error: str | None  # the first error line, "[h264 @ 0x55…]" shortened to "[h264]"
    error_time_s: float | None  # media time of the first error, within ~0.1 s (None: no error, or a still)
    error_lines: int  # error lines in all (repeats counted)
    decoded_s: float | None  # media time the decode reached (last progress line)
    exit_code: int
    elapsed_s: float = 0.0
    decoder: str = "ffmpeg"

    def describe(self) -> str:
        """The verdict as one sentence (the integrity revision's detail)."""
        if self.status == IntegrityStatus.OK.value:
            return (f"decoded {self.decoded_s:.2f} s of media without errors" if self.decoded_s
                    else "decoded without errors")
        if self.first_error is not None:
            where = f" at about {self.error_time_s:.2f} s" if self.error_time_s is not None else ""
            more = f" ({self.error_lines} error lines in all)" if self.error_lines > 1 else ""
            return f"decoder error{where}: {self.first_error}{more}"
        reached = f" after {self.decoded_s:.2f} s of media" if self.decoded_s is not None else ""
        if self.exit_code < 0:
            return f"ffmpeg crashed ({_signal_name(-self.exit_code)}){reached} without an error message"
        return f"ffmpeg exited with code {self.exit_code}{reached} without an error message"

    def as_details(self) -> dict[str, Any]:
        return {"first_error": self.first_error, "error_time_s": self.error_time_s, "error_lines": self.error_lines,
                "decoded_s": self.decoded_s, "exit_code": self.exit_code, "elapsed_s": round(self.elapsed_s, 3),
                "decoder": self.decoder}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class DecodeLog:
    """ffmpeg's stderr read line by line, keeping only what the verdict needs (memory stays bounded)."""

    def __init__(self, *, input_names: tuple[str, ...] = ()) -> None:
        # What ffmpeg may print for its input (the path or URL, the script holding a URL), named "input" in the
        # verdict: a store or temporary path means nothing later, and a URL's query is a credential.
        self.input_names = tuple(name for name in input_names if name)
        self.first_error: str | None = None
        self.error_time_s: float | None = None
        self.error_lines = 0
        self.decoded_s: float | None = None

    def feed(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        if _PROGRESS.match(line):
            found = _TIME.search(line)
            if found:
                seconds = int(found[2]) * 3600 + int(found[3]) * 60 + float(found[4])
                self.decoded_s = 0.0 if found[1] else seconds  # audio priming can put the start below zero
            return
        repeated = _REPEATED.match(line)
        if repeated:
            self.error_lines += int(repeated[1])
            return
        self.error_lines += 1
        if self.first_error is None:
            for name in self.input_names:
                line = line.replace(name, "input")
            self.first_error = _CONTEXT.sub(lambda m: f"[{m[1].strip()}] ", line)[:MAX_LINE_CHARS]
            self.error_time_s = self.decoded_s or 0.0  # before any progress line: at the start

    def result(self, exit_code: int) -> DecodeResult:
        damaged = self.error_lines > 0 or exit_code != 0
        return DecodeResult(status=IntegrityStatus.DAMAGED.value if damaged else IntegrityStatus.OK.value,
                            first_error=self.first_error, error_time_s=self.error_time_s,
                            error_lines=self.error_lines, decoded_s=self.decoded_s, exit_code=exit_code)


def decode_verdict(stderr_text: str, *, exit_code: int, input_path: str | None = None) -> DecodeResult:
    """The verdict from ffmpeg's whole stderr (`-v error -stats`) and its exit code (*input_path*: the path
    ffmpeg was given, shown as "input")."""
    log = DecodeLog(input_names=(input_path,) if input_path else ())
    for line in re.split(r"[\r\n]", stderr_text):
        log.feed(line)
    return log.result(exit_code)


#: The longest any decode check may run (a 1080p decode runs ~14x realtime here: six hours covers 80 h of media).
MAX_TIMEOUT_S = 6 * 3600.0


def decode_timeout_s(duration_s: float | None) -> float:
    """A generous deadline: three times the media's duration, never under two minutes, and never over
    MAX_TIMEOUT_S whatever duration a (possibly hostile) header claims."""
    return min(MAX_TIMEOUT_S, max(MIN_TIMEOUT_S, TIMEOUT_PER_MEDIA_S * (duration_s or 0.0)))


def is_heif(head: bytes) -> bool:
    """True for a HEIF/HEIC image (an ISO-BMFF `ftyp` with an image brand)."""
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def _read_stderr(stream: IO[bytes], log: DecodeLog) -> None:
    pending = b""
    while chunk := stream.read(65536):
        *lines, pending = re.split(rb"[\r\n]", pending + chunk)
        for line in lines:
            log.feed(line.decode("utf-8", errors="replace"))
        if len(pending) > 65536:  # no line break in sight: a hostile stream; judge what there is
            log.feed(pending.decode("utf-8", errors="replace"))
            pending = b""
    log.feed(pending.decode("utf-8", errors="replace"))


def run_decode_check(path: Path | str, *, timeout_s: float, threads: int = 2, confirm: bool = True) -> DecodeResult:
    """Decode every audio and video stream of *path*, a file or URL (`ffmpeg -f null`), and judge it. A URL is
    named in errors without its query string (a presigned URL's credential).

    A damaged verdict is confirmed by a second decode, and the second one's verdict stands: ffmpeg stopped by a
    signal while it opens its input or sets up its filters exits 1 with errors of its own ("Immediate exit
    requested", "Cannot determine format of input stream 0:0 after EOF"), which no exit code tells apart from
    damaged media (measured on ffmpeg 5.1 under load, CI 2026-12-02). Damaged media is rare; a second decode of
    it costs less than a false "damaged" on evidence. Without *confirm*, the first verdict is returned (a caller
    that confirms otherwise: `decode_stored` decodes a local copy after damage found through a URL).

    Raises:
      DecodeTimedOut: ffmpeg ran past *timeout_s* (it is killed), on either decode.
      DecodeIncomplete: ffmpeg could not be started, or was stopped by a signal from outside.
    """
    first = _decode_once(path, timeout_s=timeout_s, threads=threads)
    if first.status != IntegrityStatus.DAMAGED.value or not confirm:
        return first
    logger.info("Decode of %s found it damaged (%s); decoding again to confirm.", shown_source(path),
                first.first_error or f"exit {first.exit_code}")
    return _decode_once(path, timeout_s=timeout_s, threads=threads)


def _decode_once(path: Path | str, *, timeout_s: float, threads: int) -> DecodeResult:
    """One decode of *path* and its verdict (`run_decode_check`, which raises what this raises)."""
    shown = shown_source(path)
    started = time.monotonic()
    with ffmpeg_source(path) as reading:  # a URL is never on ffmpeg's command line (ingest.derive.ffmpeg_source)
        # Subtitle and data tracks (timecode, telemetry) are not coded media and have no null encoder: mapped out.
        args = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-stats", "-stats_period", STATS_PERIOD,
                "-threads", str(threads), *reading.args, "-map", "0:v?", "-map", "0:a?", "-f", "null", "-"]
        log = DecodeLog(input_names=reading.names)
        exit_code = _decode(args, log, timeout_s=timeout_s, shown=shown)
    if exit_code is None:
        raise DecodeTimedOut(shown, timeout_s, decoded_s=log.decoded_s)
    if stopped_from_outside(exit_code):
        how = "exited on a signal" if exit_code > 0 else f"was stopped by {_signal_name(-exit_code)}"
        raise DecodeIncomplete(shown, f"ffmpeg {how}", decoded_s=log.decoded_s, transient=True,
                               killed=killed_from_outside(exit_code))
    return replace(log.result(exit_code), elapsed_s=time.monotonic() - started, decoder=_ffmpeg_version())


def _decode(args: list[str], log: DecodeLog, *, timeout_s: float, shown: str) -> int | None:
    """Run the decoding ffmpeg (*args*) feeding its stderr to *log*; its exit code, or None when it ran past
    *timeout_s* (it is killed). Raises DecodeIncomplete when it cannot be started."""
    try:
        # Its own session: a Ctrl-C or SIGTERM meant for the worker must not end a decode as if the file failed.
        # But it dies with the worker (setpriv's parent-death signal): a killed worker leaves no ffmpeg running on.
        proc = subprocess.Popen(dies_with_parent(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        raise DecodeIncomplete(shown, f"cannot run ffmpeg: {exc}", transient=True) from exc
    assert proc.stderr is not None
    reader = threading.Thread(target=_read_stderr, args=(proc.stderr, log), name="decode-stderr", daemon=True)
    reader.start()
    exit_code: int | None = None
    try:
        exit_code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join()
        proc.stderr.close()
    return exit_code


@cache
def _ffmpeg_version() -> str:
    try:
        out = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "ffmpeg"
    first = out.stdout.decode("utf-8", errors="replace").split("\n", 1)[0].split()
    return f"ffmpeg {first[2]}" if len(first) > 2 and first[:2] == ["ffmpeg", "version"] else "ffmpeg"


def _decode_heif(path: Path | bytes | bytearray) -> DecodeResult | None:
    """HEIF (a file, or its bytes) decoded whole by Pillow with pillow-heif, in the photo process (ingest.photo_child:
    held to its memory limit, a crash there is not this process's); None (no verdict) when pillow-heif is missing.

    Raises:
      DecodeIncomplete: no verdict: the image needs more memory than a photo's decode may take, or the decoder
        crashed on it or ran out of time (not transient: recorded); the photo process was stopped or killed from
        outside (transient).
    """
    try:
        heif: Any = importlib.import_module("pillow_heif")
    except ImportError:
        return None
    shown = str(path) if isinstance(path, Path) else "the HEIF image"
    data = path.read_bytes() if isinstance(path, Path) else path
    started = time.monotonic()
    try:
        error = thread_photo_process().decode(data)
    except RenderInterrupted as exc:
        raise DecodeIncomplete(shown, exc.reason, transient=True, killed=exc.killed) from exc
    except ValueError as exc:  # PhotoTooLarge, a crash, the time
        raise DecodeIncomplete(shown, f"{exc}; so there is no decode verdict, and the original is kept as it is") \
            from exc
    status = IntegrityStatus.OK.value if error is None else IntegrityStatus.DAMAGED.value
    return DecodeResult(status=status, first_error=None if error is None else error[:MAX_LINE_CHARS],
                        error_time_s=None, error_lines=int(error is not None), decoded_s=None, exit_code=0,
                        elapsed_s=time.monotonic() - started, decoder=f"pillow-heif {heif.__version__}")


def decode_file(path: Path, *, is_photo: bool, timeout_s: float, threads: int = 2) -> DecodeResult | None:
    """Decode one original; None when this machine cannot decode its format (HEIF without pillow-heif)."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if is_heif(head):
        return _decode_heif(path)
    return _decode_media(path, is_photo=is_photo, timeout_s=timeout_s, threads=threads)


def _decode_media(source: Path | str, *, is_photo: bool, timeout_s: float, threads: int,
                  confirm: bool = True) -> DecodeResult:
    """run_decode_check of one original.

    Raises:
      DecodeIncomplete: besides run_decode_check's, a photo larger than ffmpeg decodes (not transient: its
        failure is recorded with the size, never a false `damaged` verdict on a valid 900-megapixel scan).
    """
    result = run_decode_check(source, timeout_s=timeout_s, threads=threads, confirm=confirm)
    if is_photo:  # a still has no timeline: "0.04 s" would only be ffmpeg's frame duration
        result = replace(result, error_time_s=None, decoded_s=None)
        too_large = TOO_LARGE_FOR_FFMPEG.search(result.first_error or "")
        if result.status != IntegrityStatus.OK.value and too_large and _only_too_large(
                source, int(too_large["width"]), int(too_large["height"])):
            raise DecodeIncomplete(shown_source(source), (
                f"ffmpeg does not decode a picture of {too_large['width']} x {too_large['height']} pixels (past its "
                "size limit), so there is no decode verdict; the original is kept as it is"))
    return result


def _only_too_large(source: Path | str, width: int, height: int) -> bool:
    """Whether ffmpeg's "Picture size *width* x *height* is invalid" on the photo *source* is the whole story: a
    local file (a URL is confirmed from a local copy) whose header says that size and, a JPEG, holds one frame
    header. Otherwise a damaged or forged header may have said it (a second SOF claiming 30000 x 30000 before the
    real one), and ffmpeg's verdict stands."""
    if is_url(source):
        return False
    path = Path(source)
    try:
        header = read_image_header(path)
    except HEADER_ERRORS:
        return False
    if header.size != (width, height):
        return False
    if header.format in JPEG_FORMATS:
        with path.open("rb") as fh:
            return jpeg_frame_headers(fh) == 1
    return True


def skip_reason(recording: Recording, *, decode_revisions: int, again: bool = False) -> str | None:
    """Why a recording gets no decode check now (None: check it)."""
    if recording.media_kind not in CHECKED_KINDS:
        return f"{recording.media_kind} recordings are not decoded"
    if recording.state not in IN_ARCHIVE:
        return f"its original is not in the archive (state {recording.state})"
    if decode_revisions and not again:
        return "already decode-checked"
    return None


def unchecked_ids(session: Session) -> list[int]:
    """Archived video, audio and photo recordings without a decode verdict, oldest first."""
    return undecoded_ids(session, media_kinds=CHECKED_KINDS)


@contextmanager
def _local_copy(store: EvidenceStore, sha256: str, work_dir: Path, recording_id: int) -> Iterator[Path]:
    """A temporary copy of the original under *work_dir*, removed after the block (only to confirm damage found
    over the network)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=f"decode-{recording_id}-") as tmp:
        original = Path(tmp) / "original"
        with store.open(sha256) as src, original.open("wb") as dst:
            shutil.copyfileobj(src, dst, 4 * 1024 * 1024)
        yield original


def _decode_stored_heif(store: EvidenceStore, sha256: str) -> DecodeResult | None:
    try:
        data = read_photo(store, sha256)
    except ValueError as exc:
        raise DecodeIncomplete(f"the HEIF image {sha256}", str(exc)) from exc
    return _decode_heif(data)


def decode_stored(store: EvidenceStore, sha256: str, work_dir: Path, recording_id: int, *, is_photo: bool,
                  timeout_s: float, threads: int = 2) -> DecodeResult | None:
    """Decode the stored original where it is (store.read_in_place; a HEIF image's bytes through store.open into
    memory); None when this machine cannot decode its format. Damage found through a URL is confirmed from a
    temporary local copy under *work_dir* before it is returned (module docstring).

    Raises:
      DecodeIncomplete: the decode did not finish (DecodeTimedOut: ran past *timeout_s*).
      StorageError: the store could not give the original (for the confirmation: its copy could not be made).
    """
    with store.open(sha256) as fh:
        head = fh.read(16)
    if is_heif(head):
        return _decode_stored_heif(store, sha256)
    with store.read_in_place(sha256, valid_s=timeout_s + IO_TIMEOUT_S) as source:
        # Damage found through a URL is confirmed from a local copy below (which also covers a decode stopped by a
        # signal), not by decoding through the URL again.
        result = _decode_media(source, is_photo=is_photo, timeout_s=timeout_s, threads=threads,
                               confirm=not is_url(source))
        if result.status == IntegrityStatus.OK.value or not is_url(source):
            return result
    logger.info("Decoding recording %r through %s found it %s (%s); confirming from a local copy.", recording_id,
                shown_source(source), result.status, result.describe())
    with _local_copy(store, sha256, work_dir, recording_id) as path:
        return _decode_media(path, is_photo=is_photo, timeout_s=timeout_s, threads=threads)


def check_recording(engine: Engine, store: EvidenceStore, work_dir: Path, recording_id: int, *,
                    timeout_s: float | None = None, by: str = "decode-check", again: bool = False,
                    threads: int = 2) -> str | None:
    """Decode a recording's original and record the verdict as an integrity revision; return that verdict.

    None: no check (not media, not archived yet, already checked unless *again*, or a format this machine
    cannot decode). *timeout_s* defaults to `decode_timeout_s` of the recording's duration.

    Raises:
      RecordingNotFound: no such recording.
      DecodeIncomplete: the decode did not finish (DecodeTimedOut: ran past the deadline); nothing recorded.
    """
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise RecordingNotFound(str(recording_id))
        reason = skip_reason(recording, decode_revisions=decode_revisions(session, recording_id), again=again)
        if reason is not None:
            logger.info("No decode check for recording %r: %s.", recording_id, reason)
            return None
        sha256, kind, duration_s = recording.sha256, recording.media_kind, recording.duration_s
    # No database connection is held while decoding (it can take minutes).
    limit = timeout_s if timeout_s is not None else decode_timeout_s(duration_s)
    result = decode_stored(store, sha256, work_dir, recording_id, is_photo=kind == MediaKind.PHOTO, timeout_s=limit,
                           threads=threads)
    if result is None:
        logger.info("No decode check for recording %r: its format cannot be decoded here.", recording_id)
        return None
    with Session(engine) as session:
        # The custody head, then the row (lock_recording takes them in that order, as archive_recording and every
        # custody writer do): holding the row while record_integrity's custody event waits for the head could
        # deadlock with a dock sighting these bytes on PostgreSQL. Under both, a verdict recorded meanwhile is seen.
        locked = lock_recording(session, recording_id)
        if not again and decode_revisions(session, recording_id):
            return None  # another worker recorded its verdict meanwhile
        record_integrity(session, locked, check=DECODE_CHECK, status=result.status, detail=result.describe(),
                         by=by, details=result.as_details())
        session.commit()
    logger.info("Decode check of recording %r: %s (%.1f s).", recording_id, result.describe(), result.elapsed_s)
    return result.status
