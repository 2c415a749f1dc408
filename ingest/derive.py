"""Derived media: a JPEG thumbnail (ffmpeg for a video's frame; OpenCV or Pillow for a photo) and a
browser-playable H.264/AAC MP4 proxy (ffmpeg).

Derived files are never evidence: they are made from the stored original
read where it is, never copied (EvidenceStore.read_in_place: the local
store's sealed file, or an S3 object through a presigned URL that ffmpeg
reads with ranged GETs; a photo's bytes come through store.open into memory,
decoded with at most MAX_DECODED_PIXELS). Only the derived files are
written, to a temporary work folder, then stored outside the evidence area,
each recording the SHA-256 it derives from. A failure here never touches the
recording.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from catalog import DerivedMedia, Recording, RecordingNotFound
from catalog.detail import derived_media
from catalog.media_work import IN_ARCHIVE
from catalog.types import utcnow
from ingest.errors import DeriveFailed, RenderInterrupted
from ingest.photo_child import render_photo_thumbnail
from ingest.photo_frame import MAX_THUMBNAIL_HEIGHT, THUMBNAIL_WIDTH
from storage import EvidenceStore, StorageError
from storage.hashing import CHUNK_BYTES, hash_file

__all__ = ["IO_TIMEOUT_S", "MAX_PHOTO_BYTES", "PROXY_HEIGHT", "PROXY_NAMES",
           "PROXY_TIMEOUT_S", "THUMBNAIL_WIDTH", "FfmpegRefused", "FfmpegSource", "derive_recording",
           "dies_with_parent", "ffmpeg_source", "is_url", "make_audio_proxy", "make_proxy", "make_thumbnail",
           "read_photo", "run_ffmpeg", "shown_source", "thumbnail_time", "video_thumbnail"]

logger = logging.getLogger(__name__)

#: Proxy height in pixels: 480p plays anywhere and is quick to make.
PROXY_HEIGHT = 480
#: The browser proxy's file name and type by media kind.
PROXY_NAMES = {"video": ("proxy.mp4", "video/mp4"), "audio": ("proxy.m4a", "audio/mp4")}
#: Longest wait for one connect or read of an original fetched by URL (ffmpeg's -rw_timeout, OpenCV's open and read
#: timeouts): a stalled server ends the reader here, not at its whole deadline.
IO_TIMEOUT_S = 30.0
#: Deadline of one proxy encode (ffmpeg is killed past it); an original's URL stays valid as long.
PROXY_TIMEOUT_S = 3600.0
#: The largest photo rendered: its bytes are read into memory and decoded there (ingest.photo_child).
MAX_PHOTO_BYTES = 256 * 1024 * 1024
#: Deadline of one video thumbnail: ffmpeg seeks once and decodes a frame (killed past it).
THUMBNAIL_TIMEOUT_S = 300.0
#: How long a video's URL stays valid for its thumbnail (one ffmpeg run, each network read within IO_TIMEOUT_S).
THUMBNAIL_VALID_S = THUMBNAIL_TIMEOUT_S + IO_TIMEOUT_S
#: ffmpeg's exit code when it ends on a signal it caught (SIGTERM, SIGINT): it says nothing about the input.
FFMPEG_SIGNALLED = 255
def is_url(source: str | Path) -> bool:
    """Whether a reader's *source* is a URL (read over the network) rather than a file path."""
    return "://" in str(source)


def shown_source(source: str | Path) -> str:
    """*source* as a message may show it: a URL without its query string (a presigned URL's credential)."""
    text = str(source)
    return text.split("?", 1)[0] if is_url(text) else text


@dataclass(frozen=True)
class FfmpegSource:
    """How ffmpeg reads one source: its input arguments, and every name of the source it may print."""

    args: list[str]
    names: tuple[str, ...]  # the path or URL, and the script that holds a URL
    shown_as: str  # what a message says instead (shown_source)

    def shown(self, text: str) -> str:
        """*text* (ffmpeg's output) with the source named as shown_as: never a presigned URL's credential."""
        for name in self.names:
            text = text.replace(name, self.shown_as)
        return text


@contextmanager
def ffmpeg_source(source: str | Path) -> Iterator[FfmpegSource]:
    """ffmpeg's input arguments for *source*, a file (`-i path`) or a URL, for as long as ffmpeg runs.

    A URL never goes on ffmpeg's command line: any local user reads a command line (`ps`, /proc/PID/cmdline), and
    a presigned URL is a credential to the original for as long as it is valid. It goes in a one-file concat
    script readable only by this user (mkstemp: 0600), removed when ffmpeg is done, with each network read bounded
    by IO_TIMEOUT_S (`rw_timeout`); ffmpeg reads the object with ranged GETs as it would with `-i URL`."""
    text = str(source)
    if not is_url(text):
        yield FfmpegSource(["-i", text], (text,), text)
        return
    fd, script = tempfile.mkstemp(prefix="evidence-source-", suffix=".ffconcat")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            quoted = text.replace("'", "'\\''")  # ffconcat: a quote closes, an escaped one, the quote reopens
            fh.write(f"ffconcat version 1.0\nfile '{quoted}'\noption rw_timeout {int(IO_TIMEOUT_S * 1_000_000)}\n")
        yield FfmpegSource(["-f", "concat", "-safe", "0", "-protocol_whitelist", "file,http,https,tcp,tls,crypto",
                            "-i", script], (text, script), shown_source(text))
    finally:
        os.unlink(script)


def make_thumbnail(source: Path | str, dest: Path, *, is_photo: bool, width: int = THUMBNAIL_WIDTH) -> Path:
    """A JPEG of the photo file *source*, or of the video frame one second in of the video file or URL *source*
    (`video_thumbnail`).

    Raises:
      ValueError: *source* cannot be decoded, or *dest* cannot be written.
      RenderInterrupted: (a video) ffmpeg could not be run, or was stopped from outside.
    """
    if not is_photo:
        return video_thumbnail(source, dest, width=width)
    return render_photo_thumbnail(Path(source).read_bytes(), dest, width=width)


def thumbnail_time(duration_s: float | None) -> float:
    """Where a video's thumbnail is taken: one second in, or its middle if it is shorter, or its start when its
    length is not known."""
    return min(1.0, duration_s / 2) if duration_s and duration_s > 0 else 0.0


def video_thumbnail(source: Path | str, dest: Path, *, at_s: float = 1.0, width: int = THUMBNAIL_WIDTH,
                    timeout_s: float = THUMBNAIL_TIMEOUT_S) -> Path:
    """The frame *at_s* seconds into the video file or URL *source* (its first when there is none there), *width*
    pixels wide (aspect kept, a frame taller than MAX_THUMBNAIL_HEIGHT allows cropped to its top), as a JPEG at
    *dest*: decoded by ffmpeg in a process of its own, never in the worker or station, so a hostile video that
    makes the decoder take gigabytes, crash or spin ends that process alone (killed past *timeout_s*; a SIGKILL
    from outside is counted like any ffmpeg's, catalog.media_work.MAX_KILLS). One run per position.

    Raises:
      RenderInterrupted: ffmpeg could not be run, or was stopped from outside.
      ValueError: no frame decodes (FfmpegRefused: ffmpeg's last error line), or ffmpeg ran past *timeout_s*.
    """
    tallest = MAX_THUMBNAIL_HEIGHT / width  # height per pixel of width
    scale = (f"crop=w=iw:h='min(ih,trunc(iw*{tallest:g}))':x=0:y=0,"
             f"scale={width}:-2:flags=area,format=yuvj420p")
    refused: FfmpegRefused | None = None
    for position in dict.fromkeys((max(0.0, at_s), 0.0)):
        if dest.exists():
            dest.unlink()
        with ffmpeg_source(source) as reading:
            try:
                # -ss after the input: the frames before it are decoded and dropped (a second at most), because
                # a URL's concat script cannot seek and -ss before it lands seconds off, or past a short clip's end
                run_ffmpeg(["ffmpeg", "-nostdin", "-v", "error", "-y", *reading.args, "-ss", f"{position:.3f}",
                         "-map", "0:V:0", "-frames:v", "1", "-vf", scale, "-c:v", "mjpeg", "-q:v", "3",
                         "-f", "image2", "-update", "1", str(dest)], dest, timeout_s, reading)
            except FfmpegRefused as exc:
                refused = exc
                continue
        if dest.exists() and dest.stat().st_size > 0:
            return dest
    if refused is not None:
        raise FfmpegRefused(f"no decodable frame (ffmpeg: {refused})") from refused
    raise ValueError("no decodable frame")


def make_audio_proxy(source: Path | str, dest: Path, *, timeout_s: float = PROXY_TIMEOUT_S) -> Path:
    """AAC in MP4 with the index first: every browser plays it (AMR, a recorder's usual format, none does).
    *source*: a file or URL. One run of ffmpeg: raises ValueError (FfmpegRefused: ffmpeg's last error line, a URL
    shown without its query), RenderInterrupted as `run_ffmpeg` says."""
    with ffmpeg_source(source) as reading:
        return run_ffmpeg(["ffmpeg", "-nostdin", "-v", "error", "-y", *reading.args, "-map", "0:a:0", "-vn",
                        "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", str(dest)], dest, timeout_s, reading)


def make_proxy(source: Path | str, dest: Path, *, height: int = PROXY_HEIGHT, threads: int = 2,
               timeout_s: float = PROXY_TIMEOUT_S) -> Path:
    """H.264 (yuv420p) + AAC in MP4 with the index first, scaled to *height* (never up). *source*: a file or URL.
    One run of ffmpeg: raises ValueError (FfmpegRefused: ffmpeg's last error line, a URL shown without its query),
    RenderInterrupted as `run_ffmpeg` says."""
    # Speed over polish (a proxy is for viewing, the original is the evidence): skipping the decoder's
    # loop filter, bilinear scaling and the superfast preset give >= 6x realtime for 1080p on 2 cores.
    # Faithful in time: every frame at the original's time (a phone's variable rate is not put on a grid of a
    # guessed rate, which duplicated or dropped frames and moved them by up to half a frame: a clerk stepping the
    # proxy must see the frames the original has, where it has them), and the video, not a cover picture an MP4
    # may list first (0:V).
    with ffmpeg_source(source) as reading:
        args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", str(threads), "-skip_loop_filter", "all",
                *reading.args, "-map", "0:V:0", "-map", "0:a:0?",
                "-vf", f"scale=-2:'min({height},ih)':flags=bilinear", "-fps_mode", "passthrough",
                "-enc_time_base:v", "-1",
                "-c:v", "libx264", "-preset", "superfast", "-crf", "26", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-b:a", "96k", "-ac", "2", "-movflags", "+faststart",
                "-threads", str(threads), str(dest)]
        return run_ffmpeg(args, dest, timeout_s, reading)


def dies_with_parent(args: list[str]) -> list[str]:
    """*args* run so that the child is killed when the thread that started it ends (util-linux `setpriv
    --pdeathsig`, where installed): a renderer or worker killed or stopped leaves no ffmpeg running on. The program
    is looked up on PATH here, so that a missing one is an OSError (FileNotFoundError), never setpriv's exit 127
    that would read as the media's fault."""
    program = shutil.which(args[0])
    if program is None:
        raise FileNotFoundError(errno.ENOENT, f"{args[0]} is not installed or not on PATH", args[0])
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", program, *args[1:]] if setpriv else [program, *args[1:]]


def stopped_from_outside(returncode: int) -> bool:
    """Whether ffmpeg's *returncode* says it was stopped by a signal rather than by its input: killed (negative:
    SIGKILL, SIGTERM, SIGINT, SIGHUP), or exiting on a signal it caught (ffmpeg exits 255 then, and only then)."""
    return returncode == FFMPEG_SIGNALLED or -returncode in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT,
                                                             signal.SIGHUP)


def killed_from_outside(returncode: int) -> bool:
    """Whether ffmpeg's *returncode* says SIGKILL ended it: never sent by us (our timeouts kill and report no exit
    code), so from outside, the kernel's out-of-memory killer most likely (catalog.media_work.MAX_KILLS)."""
    return returncode == -signal.SIGKILL


class FfmpegRefused(ValueError):
    """ffmpeg ran to its end and refused the source (its last error line). Tried once more before it counts as the
    media's (`_rendered`): ffmpeg stopped by a signal while it starts up exits 1 with errors of its own, like a file
    it cannot read (ingest.decode_check.run_decode_check)."""


def run_ffmpeg(args: list[str], dest: Path, timeout_s: float, source: FfmpegSource, *,
               progress: Callable[[float], None] | None = None) -> Path:
    """Run ffmpeg once (*args*, writing *dest* with -y), for at most *timeout_s*; with *progress*, called with the
    seconds of output written as ffmpeg reports them (`-progress`, about twice a second).

    Raises:
      RenderInterrupted: ffmpeg could not be run, or was stopped from outside.
      FfmpegRefused: ffmpeg failed (its last error line, a URL shown without its query).
      ValueError: ffmpeg ran past *timeout_s* (not tried again: a second run would take as long).
    """
    try:
        if progress is None:
            done = subprocess.run(dies_with_parent(args), capture_output=True, timeout=timeout_s, check=False)
        else:
            done = _run_reporting(dies_with_parent([args[0], "-progress", "pipe:1", "-nostats", *args[1:]]),
                                  timeout_s, progress)
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"ffmpeg did not finish within {timeout_s:g} s") from exc
    except OSError as exc:
        raise RenderInterrupted(source.shown_as, f"cannot run ffmpeg: {exc}") from exc
    if stopped_from_outside(done.returncode):
        raise RenderInterrupted(source.shown_as, f"ffmpeg was stopped from outside (exit {done.returncode})",
                                killed=killed_from_outside(done.returncode))
    if done.returncode == 0:
        return dest
    lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
    raise FfmpegRefused(source.shown(lines[-1] if lines else f"ffmpeg exited with {done.returncode}"))


def _run_reporting(args: list[str], timeout_s: float,
                   progress: Callable[[float], None]) -> subprocess.CompletedProcess[bytes]:
    """*args* (with `-progress pipe:1`) run as subprocess.run would, its `out_time_us` lines passed to *progress* in
    seconds (what *progress* raises ends ffmpeg and is raised); killed and TimeoutExpired past *timeout_s*. Its
    error output goes to a file, never a pipe nobody reads while ffmpeg writes."""
    with tempfile.TemporaryFile() as errors, subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                              stderr=errors) as proc:
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                key, _, value = line.decode("ascii", errors="replace").strip().partition("=")
                if key == "out_time_us" and value.isascii() and value.isdigit():
                    progress(int(value) / 1_000_000)
            proc.wait()
        except BaseException:  # *progress* said stop (its job was taken over): ffmpeg stops with it
            proc.kill()
            raise
        finally:
            expired = not timer.is_alive()
            timer.cancel()
        if expired and proc.returncode == -signal.SIGKILL:
            raise subprocess.TimeoutExpired(args, timeout_s)
        errors.seek(0)
        return subprocess.CompletedProcess(args, proc.returncode, b"", errors.read())


def _record(session: Session, recording: Recording, kind: str, key: str, path: Path, content_type: str) -> None:
    assert recording.id is not None
    row = derived_media(session, recording.id, kind) or DerivedMedia(
        recording_id=recording.id, kind=kind, derived_from_sha256=recording.sha256, key=key, sha256="", size_bytes=0,
        content_type=content_type)
    hashed = hash_file(path)
    row.key, row.sha256, row.size_bytes, row.created_at = key, hashed.sha256, hashed.size_bytes, utcnow()
    session.add(row)


def _still_archived(session: Session, recording: Recording) -> None:
    """RenderInterrupted if *recording* left the archive (disposed of) while it was rendered: nothing is stored."""
    session.refresh(recording)
    if recording.state not in IN_ARCHIVE:
        raise RenderInterrupted(recording.original_name, f"the recording is {recording.state} now")


def derive_recording(engine: Engine, store: EvidenceStore, work_dir: Path, recording_id: int, *,
                     threads: int = 2, kinds: Collection[str] = ("thumbnail", "proxy")) -> list[str]:
    """Make and store the thumbnail (video, photo) and proxy (video, audio) of a recording, or only those of them
    in *kinds*; return the kinds made.

    The original is read where it is stored, never copied (module docstring): only the derived files are written,
    to a temporary folder under *work_dir*.

    Raises:
      DeriveFailed: the original could not be rendered (damaged or unreadable media).
      StorageError: the store did not answer (a reader failed on a URL and the object could not be looked up
        either, or a photo could not be read): the worker tries again.
      RenderInterrupted: ffmpeg was stopped from outside or is missing, or the recording left the archive
        meanwhile: nothing is known about the media.
    """
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise RecordingNotFound(str(recording_id))
        if recording.media_kind not in ("video", "photo", "audio"):
            return []
        work_dir.mkdir(parents=True, exist_ok=True)
        made: list[str] = []
        with tempfile.TemporaryDirectory(dir=work_dir, prefix=f"derive-{recording_id}-") as tmp:
            if recording.media_kind in ("video", "photo") and "thumbnail" in kinds:
                thumb = _thumbnail(store, recording, Path(tmp) / "thumbnail.jpg")
                _still_archived(session, recording)
                key = store.put_derived(recording.sha256, "thumbnail.jpg", thumb, content_type="image/jpeg")
                _record(session, recording, "thumbnail", key, thumb, "image/jpeg")
                made.append("thumbnail")
            if recording.media_kind in ("video", "audio") and "proxy" in kinds:
                name, content_type = PROXY_NAMES[recording.media_kind]
                dest = Path(tmp) / name
                try:
                    proxy = _rendered(store, recording, "proxy", PROXY_TIMEOUT_S + IO_TIMEOUT_S, lambda source: (
                        make_proxy(source, dest, threads=threads) if recording.media_kind == "video"
                        else make_audio_proxy(source, dest)), attempts=2)
                except DeriveFailed:
                    session.commit()  # the thumbnail made stays
                    raise
                _still_archived(session, recording)
                key = store.put_derived(recording.sha256, name, proxy, content_type=content_type)
                _record(session, recording, "proxy", key, proxy, content_type)
                made.append("proxy")
        try:
            session.commit()
        except IntegrityError:  # another worker recorded the same derived file meanwhile: made either way
            session.rollback()
        return made


def _thumbnail(store: EvidenceStore, recording: Recording, dest: Path) -> Path:
    """The thumbnail of a video (its original read in place by ffmpeg) or a photo (its bytes decoded in memory, at
    most MAX_DECODED_PIXELS) at *dest*."""
    assert recording.id is not None
    if recording.media_kind != "photo":
        at_s = thumbnail_time(recording.duration_s)
        return _rendered(store, recording, "thumbnail", THUMBNAIL_VALID_S,
                         lambda source: video_thumbnail(source, dest, at_s=at_s), attempts=2)
    try:
        return render_photo_thumbnail(read_photo(store, recording.sha256), dest)
    except ValueError as exc:
        raise DeriveFailed(recording.id, "thumbnail", str(exc)) from exc


def _rendered(store: EvidenceStore, recording: Recording, kind: str, valid_s: float,
              render: Callable[[str], Path], *, attempts: int = 1) -> Path:
    """*render* of the original read in place (store.read_in_place, valid for *valid_s*), run up to *attempts*
    times while ffmpeg refuses it (FfmpegRefused): each run gets the original afresh, so a presigned URL is valid
    for *valid_s* from the start of each run, never expired under a second one.

    Raises:
      DeriveFailed: *render* failed (its reason), and the store answers: the media is at fault.
      StorageError: *render* failed on a URL and the store does not answer either (a network failure looks like
        damaged media to a reader).
    """
    assert recording.id is not None
    for attempt in range(1, attempts + 1):
        with store.read_in_place(recording.sha256, valid_s=valid_s) as source:
            try:
                return render(source)
            except FfmpegRefused as exc:
                if attempt < attempts:
                    logger.info("ffmpeg failed on %s (%s); trying once more before it counts.", shown_source(source),
                                exc)
                    continue
                failure: ValueError = exc
            except ValueError as exc:
                failure = exc
        store.head(recording.sha256)  # gone (disposed, removed behind our back) or away: not the media's fault
        raise DeriveFailed(recording.id, kind, str(failure)) from failure
    raise AssertionError("unreachable: the last attempt returns or raises")


def read_photo(store: EvidenceStore, sha256: str) -> bytearray:
    """A photo's stored bytes, read through store.open into memory (readers that take a URL cannot decode it there),
    in one buffer of the stored size: never a second copy of them.

    Raises:
      ValueError: it is larger than MAX_PHOTO_BYTES.
      ObjectMissing, StorageError: the store cannot give it.
    """
    size = store.head(sha256).size_bytes
    if size > MAX_PHOTO_BYTES:
        raise ValueError(f"the photo is larger than {MAX_PHOTO_BYTES} bytes, the most rendered in memory")
    data = bytearray(size)
    view, filled = memoryview(data), 0
    with store.open(sha256) as fh:
        while filled < size and (chunk := fh.read(min(CHUNK_BYTES, size - filled))):
            view[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
    view.release()
    if filled != size:
        raise StorageError(f"{sha256}: the store gave {filled} of the photo's {size} bytes")
    return data
