"""Render a redaction: each region pixelated over its time range, each muted range silenced and each bleeped one
replaced by a tone; H.264 (yuv420p, CRF 18, so the rest of the picture stays within encoding error of the original)
and AAC in MP4. The original is only read (a file, or a URL ffmpeg reads in place: ingest.derive.ffmpeg_source).
Photos are redacted by ingest.redaction.photo.

With regions to hide, three processes work at once: one ffmpeg decodes the original to raw 4:2:0 pictures and PCM
sound (muted and bleeped there) in Matroska on a pipe; this process pixelates the pictures in place, only inside the
regions shown at each frame's time (ingest.redaction.matroska, ingest.redaction.cells); a second ffmpeg encodes the
stream. Matroska carries every frame's time, so a variable frame rate is kept. An earlier ffmpeg filter graph
pixelated and merged the whole frame every frame and made the rendering 2.2 times as slow as a plain transcode
(docs/benchmarks.md); the work is now in proportion to the regions' area. Without regions one ffmpeg does it all."""
from __future__ import annotations

import contextlib
import fcntl
import json
import queue
import subprocess
import tempfile
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import IO

import numpy as np

from ingest.derive import (
    FfmpegRefused,
    FfmpegSource,
    dies_with_parent,
    ffmpeg_source,
    killed_from_outside,
    run_ffmpeg,
    stopped_from_outside,
)
from ingest.errors import RenderInterrupted
from ingest.redaction.cells import Rect, cell_edges, cells_across, pixelate_in_place
from ingest.redaction.faces import Detection, FaceSampler
from ingest.redaction.matroska import MatroskaUnexpected, VideoTrack, pass_frames
from ingest.redaction.spec import BLEEP_HZ, Box, RedactionInvalid, RedactionSpec, spec_problems

__all__ = ["REDACT_TIMEOUT_S", "FramePixelator", "audio_filter", "ffmpeg_version", "picture_size", "render_redaction",
           "small_rgb"]

#: The size asked for the pipes between the ffmpegs and this process (Linux's default limit for a user).
_PIPE_BYTES = 1 << 20
#: Samples that may wait for the face detector while the stream moves on (each holds back 1/SAMPLE_FPS s of frames).
_SAMPLES_AHEAD = 2
#: How far the sound may go on past a due sample with no picture before the sample repeats the last picture's faces.
_PICTURELESS_S = 1.0
#: The longest one rendering may take (a long 1080p recording at about real time on 2 cores).
REDACT_TIMEOUT_S = 4 * 3600.0


def picture_size(source: Path | str, *, timeout_s: float = 120.0) -> tuple[int, int] | None:
    """The width and height of *source*'s first video stream as ffmpeg decodes it and a player shows it: a stream
    stored on its side with a rotation (a phone held upright) has its sides swapped. None: no picture. What the
    catalogue holds is the stored size; regions and faces are in the shown picture's pixels."""
    with ffmpeg_source(source) as reading:
        args = ["ffprobe", "-v", "error", *reading.args, "-select_streams", "V:0", "-show_entries",
                "stream=width,height:stream_side_data=rotation:stream_tags=rotate", "-of", "json"]
        try:
            done = subprocess.run(dies_with_parent(args), capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FfmpegRefused(f"ffprobe could not read {reading.shown_as}: {exc}") from exc
        if done.returncode != 0:
            raise FfmpegRefused(f"ffprobe could not read {reading.shown_as}: {reading.shown(done.stderr)[-300:]}")
    streams = json.loads(done.stdout or "{}").get("streams") or []
    if not streams or not streams[0].get("width") or not streams[0].get("height"):
        return None
    stream = streams[0]
    turns = [side.get("rotation") for side in stream.get("side_data_list") or [] if "rotation" in side]
    turns.append((stream.get("tags") or {}).get("rotate"))
    rotation = next((int(float(t)) for t in turns if t not in (None, "")), 0)
    width, height = int(stream["width"]), int(stream["height"])
    return (height, width) if abs(rotation) % 180 == 90 else (width, height)


@cache
def ffmpeg_version() -> dict[str, str]:
    """What renders a redaction, as the copy's record names it: ffmpeg's version line and the encoders' settings."""
    try:
        line = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=30,
                              check=False).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        line = "ffmpeg (version unknown)"
    return {"program": line.strip(), "video": "libx264 veryfast crf 18 yuv420p", "audio": "aac 128k",
            "pixelate": "each cell's mean on the frame's grid of block-pixel cells, inside the regions (numpy; "
                        "decoded to raw 4:2:0 in Matroska and encoded again by ffmpeg)"}


def _between(start_s: float, end_s: float | None) -> str:
    if end_s is None:
        return f"gte(t\\,{start_s:.3f})"
    return f"between(t\\,{start_s:.3f}\\,{end_s:.3f})"


def audio_filter(spec: RedactionSpec) -> str | None:
    """The -af chain silencing each muted range and replacing each bleeped one with a BLEEP_HZ tone in every channel
    (None: neither). Pure."""
    chain = [f"volume=enable='{_between(m.start_s, m.end_s)}':volume=0" for m in spec.mutes]
    if spec.bleeps:
        inside = "+".join(_between(b.start_s, b.end_s) for b in spec.bleeps)
        chain.append(f"aeval=exprs='if({inside}\\,0.25*sin(2*PI*{BLEEP_HZ}*t)\\,val(ch))':c=same")
    return ",".join(chain) or None




class FramePixelator:
    """Pixelates each raw 4:2:0 frame of a video inside the regions shown at its time: the regions in order of
    start, those begun and not ended kept at hand (frames come in time order; a time going back starts over)."""

    def __init__(self, boxes: tuple[Box, ...], block: int) -> None:
        self._boxes = sorted(boxes, key=lambda b: b.start_s)
        self._starts = [round(b.start_s, 3) for b in self._boxes]
        self._block = block
        self._next = 0
        self._open: list[Box] = []
        self._last = float("-inf")
        self._grids: dict[tuple[int, int], tuple[list[int], list[int], list[int], list[int]]] = {}

    def shown_at(self, t: float) -> list[Box]:
        """The regions shown at *t* (seconds): begun at or before it, ended at or after it (their times to the
        millisecond, as the specification records them and ffmpeg's `between` read them)."""
        if t < self._last:
            self._next, self._open = 0, []
        self._last = t
        reach = bisect_right(self._starts, t + 1e-9)
        self._open.extend(self._boxes[self._next:reach])
        self._next = max(self._next, reach)
        self._open = [b for b in self._open if b.end_s is None or round(b.end_s, 3) >= t - 1e-9]
        return self._open

    def pixelate(self, track: VideoTrack, picture: memoryview, shown: list[Box]) -> None:
        """Pixelate the raw 4:2:0 *picture* of *track* inside the regions *shown*."""
        if not shown:
            return
        width, height = track.width, track.height
        half_w, half_h = (width + 1) // 2, (height + 1) // 2
        if len(picture) != width * height + 2 * half_w * half_h:
            raise MatroskaUnexpected(f"a frame of {len(picture)} bytes where {width}×{height} 4:2:0 has "
                                     f"{width * height + 2 * half_w * half_h}")
        grid = self._grids.get((width, height))
        if grid is None:
            across, down = cells_across(width, self._block), cells_across(height, self._block)
            grid = self._grids[(width, height)] = (cell_edges(width, across), cell_edges(height, down),
                                                   cell_edges(half_w, across), cell_edges(half_h, down))
        xs, ys, half_xs, half_ys = grid
        pixels = np.frombuffer(picture, dtype=np.uint8)
        luma: list[Rect] = [(b.x, b.y, b.x + b.w, b.y + b.h) for b in shown]
        chroma: list[Rect] = [(x1 // 2, y1 // 2, (x2 + 1) // 2, (y2 + 1) // 2) for x1, y1, x2, y2 in luma]
        pixelate_in_place(pixels[:width * height].reshape(height, width), luma, xs, ys)
        size = half_w * half_h
        for start in (width * height, width * height + size):
            pixelate_in_place(pixels[start:start + size].reshape(half_h, half_w), chroma, half_xs, half_ys)


def small_rgb(track: VideoTrack, picture: memoryview, width: int, height: int) -> np.ndarray:
    """The raw 4:2:0 *picture* of *track* scaled (area averaging) to *width* × *height* (even) and turned to RGB,
    as the face detector looks at it."""
    import cv2

    w, h = track.width, track.height
    half_w, half_h = (w + 1) // 2, (h + 1) // 2
    pixels = np.frombuffer(picture, dtype=np.uint8)
    planes = [pixels[:w * h].reshape(h, w), pixels[w * h:w * h + half_w * half_h].reshape(half_h, half_w),
              pixels[w * h + half_w * half_h:w * h + 2 * half_w * half_h].reshape(half_h, half_w)]
    sizes = [(width, height), (width // 2, height // 2), (width // 2, height // 2)]
    small = np.concatenate([cv2.resize(plane, size, interpolation=cv2.INTER_AREA).ravel()
                            for plane, size in zip(planes, sizes, strict=True)])
    return cv2.cvtColor(small.reshape(height * 3 // 2, width), cv2.COLOR_YUV2RGB_I420)


class _PastDeadline(Exception):
    """The rendering's deadline passed while frames still came (never a TimeoutError a callback raises)."""


class _Faces:
    """The face search beside the rendering: the detector runs in a thread of its own (OpenCV releases the GIL), so
    the stream keeps moving while a sample is looked at; at most _SAMPLES_AHEAD samples wait for it, so the frames
    held back for it stay within about WINDOW_S + 1/SAMPLE_FPS + _SAMPLES_AHEAD/SAMPLE_FPS seconds. Where the sound
    goes on _PICTURELESS_S past a due sample and no picture comes (the video ended early, or stopped a while), the
    samples due meanwhile repeat the last picture's faces, as ffmpeg's fps filter repeats a frame: the frames held
    are let go instead of waiting, with everything after them, for the next picture or the end."""

    def __init__(self, sampler: FaceSampler, shown_as: str) -> None:
        self.sampler, self.shown_as = sampler, shown_as
        self.lock = threading.Lock()
        self._next = 0.0  # the next sample's time, as the sampler counts
        self._step = 1.0 / sampler.search.sample_fps
        self._queue: queue.Queue[tuple[float, np.ndarray | None] | None] = queue.Queue(maxsize=_SAMPLES_AHEAD)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="redaction-faces", daemon=True)
        self._thread.start()

    def offer(self, track: VideoTrack, t: float, picture: memoryview) -> None:
        """The frame at *t* sent to the detector when a sample is due (as FaceSampler.wants says)."""
        self._raise_failure()
        if t + 1e-6 < self._next:
            return
        sampler = self.sampler
        if (track.width, track.height) != (sampler.width, sampler.height):
            raise MatroskaUnexpected(f"pictures of {track.width}×{track.height} where the recording shows "
                                     f"{sampler.width}×{sampler.height}")
        self._advance(t)
        self._queue.put((t, small_rgb(track, picture, sampler.out_width, sampler.out_height)))

    def clock(self, t: float) -> None:
        """The stream (its sound) has reached *t*: samples due more than _PICTURELESS_S before it, with no picture
        since, repeat the last picture's faces."""
        self._raise_failure()
        if t - _PICTURELESS_S + 1e-6 >= self._next:
            self._advance(t - _PICTURELESS_S)
            self._queue.put((t - _PICTURELESS_S, None))

    def _advance(self, t: float) -> None:
        while t + 1e-6 >= self._next:
            self._next += self._step

    def _raise_failure(self) -> None:
        if self._failed is not None:
            raise RenderInterrupted(self.shown_as, f"the face detector failed: {self._failed!r}") from self._failed

    def _run(self) -> None:
        last: list[Detection] = []
        try:
            while (item := self._queue.get()) is not None:
                t, rgb = item
                if rgb is not None:
                    last = self.sampler.detect(rgb)
                with self.lock:
                    self.sampler.record(t, last)
        except BaseException as exc:  # noqa: BLE001 - raised in the rendering's thread at its next frame or the end
            self._failed = exc
            while self._queue.get() is not None:  # never leave the rendering blocked on a full queue
                pass

    def finish(self) -> None:
        """Every sample looked at: the sampler finished (what the detector raised is raised here)."""
        self._queue.put(None)
        self._thread.join()
        self._raise_failure()
        with self.lock:
            self.sampler.finish()

    def stop(self) -> None:
        """The rendering failed or was stopped: the thread ends without looking at what is left (waited for, so
        that no detection runs on after the rendering)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=5.0)
        self._thread.join(timeout=30.0)


class _Held:
    """The stream on its way to the encoder, held back from each frame on until the faces over that frame are all
    known (FaceSampler.settled_until): about WINDOW_S + 1/SAMPLE_FPS seconds of frames. Without a face search
    nothing is held."""

    def __init__(self, sink: IO[bytes], pixelator: FramePixelator, faces: _Faces | None) -> None:
        self._sink, self._pixelator, self._faces = sink, pixelator, faces
        self._queue: deque[bytes | bytearray | tuple[float, VideoTrack, memoryview]] = deque()

    def frame(self, track: VideoTrack, t: float, picture: memoryview) -> None:
        self._queue.append((t, track, picture))  # before its bytes: pixelated, then written

    def write(self, data: bytes | bytearray) -> int:
        self._queue.append(data)
        self.flush(final=False)
        return len(data)

    def flush(self, *, final: bool) -> None:
        until = float("inf")
        if self._faces is not None and not final:
            with self._faces.lock:
                until = self._faces.sampler.settled_until()
        while self._queue:
            head = self._queue[0]
            if isinstance(head, tuple):
                t, track, picture = head
                if t >= until:
                    return
                shown = self._pixelator.shown_at(t)
                if self._faces is not None:
                    with self._faces.lock:
                        shown = shown + self._faces.sampler.shown_at(t)
                self._pixelator.pixelate(track, picture, shown)
            else:
                self._sink.write(head)
            self._queue.popleft()


def _encoder_args(dest: Path, *, has_audio: bool, threads: int, even: bool) -> list[str]:
    # V: the video itself, never a cover picture a file carries as a video stream (it may come first)
    return ["-map", "0:V:0", *(["-map", "0:a:0?"] if has_audio else []),
            # yuv420p needs even sides: an odd side is padded right or bottom, so that no region moves
            "-vf", "format=yuv420p" if even else "pad=ceil(iw/2)*2:ceil(ih/2)*2,format=yuv420p",
            # every frame at its own time: the encoder's clock is its input's, not 1/frame rate (that would move or
            # drop a phone's frames that come at uneven times)
            "-enc_time_base:v", "-1", "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "veryfast",
            "-crf", "18", *(["-c:a", "aac", "-b:a", "128k"] if has_audio else []), *_mp4_args(dest, threads)]


def _even(width: int | None, height: int | None) -> bool:
    return width is not None and height is not None and width % 2 == 0 and height % 2 == 0


def _mp4_args(dest: Path, threads: int) -> list[str]:
    return ["-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart", "-threads", str(threads),
            "-f", "mp4", str(dest)]


def _last_line(errors: IO[bytes], reading: FfmpegSource, what: str, code: int) -> str:
    errors.seek(0)
    lines = errors.read().decode("utf-8", errors="replace").strip().splitlines()
    return reading.shown(lines[-1] if lines else f"{what} exited with {code}")


def _start(decode: list[str], encode: list[str], decode_errors: IO[bytes], encode_errors: IO[bytes],
           reading: FfmpegSource) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """The decoder and the encoder started, their error output to files (never a pipe nobody reads)."""
    try:
        decoder = subprocess.Popen(dies_with_parent(decode), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=decode_errors)
    except OSError as exc:
        raise RenderInterrupted(reading.shown_as, f"cannot run ffmpeg: {exc}") from exc
    try:
        encoder = subprocess.Popen(dies_with_parent(encode), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=encode_errors)
    except OSError as exc:
        decoder.kill()
        decoder.wait()
        raise RenderInterrupted(reading.shown_as, f"cannot run ffmpeg: {exc}") from exc
    for pipe in (decoder.stdout, encoder.stdin):
        with contextlib.suppress(OSError):  # fewer, larger reads and writes: a frame is megabytes
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[union-attr]
    return decoder, encoder


def _pump(decoder: subprocess.Popen[bytes], encoder: subprocess.Popen[bytes], sink: IO[bytes] | _Held,
          frame: Callable[[VideoTrack, float, memoryview], None], clock: Callable[[float], None] | None,
          end: Callable[[], None], deadline: float, timeout_s: float) -> tuple[set[str], MatroskaUnexpected | None]:
    """The decoder's stream through *frame* and *sink* to the encoder (*end* called after the last byte), both
    waited for: which of them this process stopped (the other one's exit code says why), and what was wrong with
    the stream. Past *deadline* both are killed, wherever the stream stands (an ffmpeg stopped or stuck in a read
    blocks the stream, not only a slow one), and ValueError is raised; what *frame* raises (a job taken over) stops
    both and is raised."""
    assert decoder.stdout is not None and encoder.stdin is not None
    stopped_by_us: set[str] = set()
    stream_error: MatroskaUnexpected | None = None
    expired = threading.Event()

    def kill_both() -> None:
        expired.set()
        for process in (decoder, encoder):
            with contextlib.suppress(OSError):
                process.kill()

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), kill_both)
    timer.daemon = True
    timer.start()
    try:
        try:
            pass_frames(decoder.stdout, sink, frame, clock)  # type: ignore[arg-type]  # _Held writes as a file does
            end()
            encoder.stdin.close()
        except BrokenPipeError:
            decoder.kill()  # the encoder stopped reading: its own exit code says why
            stopped_by_us.add("decoder")
        except MatroskaUnexpected as exc:  # the decoder's exit code says why, or the stream was not as asked
            stream_error = exc
            try:  # a decoder that ended cut the stream (its exit code says why); one still running is stopped
                decoder.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                decoder.kill()
                stopped_by_us.add("decoder")
            encoder.kill()
            stopped_by_us.add("encoder")
        except _PastDeadline:
            kill_both()
        decoder.wait()
        encoder.wait()
        if expired.is_set():
            raise ValueError(f"ffmpeg did not finish within {timeout_s:g} s")
    except BaseException:
        for process in (decoder, encoder):
            process.kill()
            process.wait()
        raise
    finally:
        timer.cancel()
        decoder.stdout.close()
        with contextlib.suppress(OSError):
            encoder.stdin.close()
    return stopped_by_us, stream_error


def _verdict(reading: FfmpegSource, decoder: subprocess.Popen[bytes], encoder: subprocess.Popen[bytes],
             stopped_by_us: set[str], stream_error: MatroskaUnexpected | None, decode_errors: IO[bytes],
             encode_errors: IO[bytes]) -> None:
    """Raise what the two exit codes say went wrong (nothing when both finished well)."""
    for who, code in (("decoder", decoder.returncode), ("encoder", encoder.returncode)):
        if who not in stopped_by_us and stopped_from_outside(code):
            raise RenderInterrupted(reading.shown_as, f"ffmpeg was stopped from outside (exit {code})",
                                    killed=killed_from_outside(code))
    if "decoder" not in stopped_by_us and decoder.returncode != 0:
        raise FfmpegRefused(_last_line(decode_errors, reading, "ffmpeg", decoder.returncode))
    if stream_error is not None:
        raise FfmpegRefused(f"{reading.shown_as}: ffmpeg's decoded stream could not be read: {stream_error}")
    if encoder.returncode != 0:
        raise FfmpegRefused(_last_line(encode_errors, reading, "ffmpeg", encoder.returncode))
    if "decoder" in stopped_by_us:
        raise FfmpegRefused(f"{reading.shown_as}: the encoder stopped reading before the end")


def _render_regions(reading: FfmpegSource, dest: Path, spec: RedactionSpec, *, has_audio: bool,
                    size: tuple[int, int] | None, duration_s: float | None, timeout_s: float, threads: int,
                    progress: Callable[[float], None] | None, faces: FaceSampler | None) -> Path:
    """The three processes of the module's docstring; errors as run_ffmpeg's."""
    audio = audio_filter(spec)
    decode = ["ffmpeg", "-nostdin", "-v", "error", "-threads", str(threads), *reading.args, "-map", "0:V:0",
              *(["-map", "0:a:0?", *(["-af", audio] if audio else []), "-c:a", "pcm_f32le"] if has_audio else []),
              # every frame at its own time here too: ffmpeg would otherwise put frames on a grid of its guessed
              # rate and drop those that meet on it (a review found a region missing frames of a phone's clip)
              "-fps_mode", "passthrough", "-enc_time_base:v", "-1",
              "-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-map_metadata", "-1", "-map_chapters", "-1",
              "-write_crc32", "0", "-f", "matroska", "pipe:1"]
    encode = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", str(threads), "-f", "matroska", "-i", "pipe:0",
              *_encoder_args(dest, has_audio=has_audio, threads=threads, even=_even(*size) if size else False)]
    pixelator = FramePixelator(spec.regions(), spec.block)
    deadline = time.monotonic() + timeout_s
    held: _Held  # the encoder's end of the stream, set once it runs
    searching: _Faces | None
    told = [-1.0, 0.0]  # the time last told, the last frame's

    def frame(track: VideoTrack, t: float, picture: memoryview) -> None:
        if time.monotonic() > deadline:
            raise _PastDeadline
        if size is not None and (track.width, track.height) != size:  # regions were checked against *size*
            raise MatroskaUnexpected(f"pictures of {track.width}×{track.height} where the recording shows "
                                     f"{size[0]}×{size[1]}")
        if searching is not None:
            searching.offer(track, t, picture)
        held.frame(track, t, picture)
        told[1] = max(t, 0.0)
        if progress is not None and duration_s and t - told[0] >= 0.5:
            told[0] = t
            progress(min(told[1] / duration_s, 1.0))

    with tempfile.TemporaryFile() as decode_errors, tempfile.TemporaryFile() as encode_errors:
        decoder, encoder = _start(decode, encode, decode_errors, encode_errors, reading)
        assert encoder.stdin is not None
        searching = _Faces(faces, reading.shown_as) if faces is not None else None
        held = _Held(encoder.stdin, pixelator, searching)

        def end() -> None:
            if searching is not None:
                searching.finish()
            held.flush(final=True)

        try:
            stopped_by_us, stream_error = _pump(decoder, encoder, held, frame, searching.clock if searching else None,
                                                end, deadline, timeout_s)
        finally:
            if searching is not None:
                searching.stop()
        _verdict(reading, decoder, encoder, stopped_by_us, stream_error, decode_errors, encode_errors)
    if progress is not None and duration_s and told[0] >= 0:
        progress(min(told[1] / duration_s, 1.0))  # the last frame's time
    return dest


def render_redaction(source: Path | str, dest: Path, spec: RedactionSpec, *, width: int | None,
                     height: int | None, duration_s: float | None, has_audio: bool,
                     timeout_s: float = REDACT_TIMEOUT_S, threads: int = 2,
                     progress: Callable[[float], None] | None = None, faces: FaceSampler | None = None) -> Path:
    """Write *source* (a video or a sound recording) redacted as *spec* says to *dest*, an MP4; *progress* is told
    the share done (0 to 1) as it goes. With *faces*, the faces it finds in the rendering's own decode are hidden
    too (its `regions()` and `found()` say what they were, afterwards). RedactionInvalid when *spec* cannot be
    carried out on this recording (every problem named, nothing run); otherwise as ingest.derive.run_ffmpeg
    raises."""
    if spec.tracks:  # never drawn as asked: each is a moving region once followed (ingest.redaction.tracking)
        raise ValueError(f"{len(spec.tracks)} region(s) to track are not followed yet: follow_tracks first")
    problems = spec_problems(spec, width=width, height=height, duration_s=duration_s, has_audio=has_audio,
                             photo=False)
    if faces is not None:  # regions may yet be found
        problems = [p for p in problems if not p.startswith("nothing to redact")]
    if problems:
        raise RedactionInvalid(problems)
    with ffmpeg_source(source) as reading:
        if spec.regions() or faces is not None:
            return _render_regions(reading, dest, spec, has_audio=has_audio,
                                   size=(width, height) if width is not None and height is not None else None,
                                   duration_s=duration_s, timeout_s=timeout_s, threads=threads, progress=progress,
                                   faces=faces)
        audio = audio_filter(spec)
        args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", str(threads), *reading.args,
                *(["-af", audio] if audio is not None else [])]
        if width is not None:  # the picture as it is
            args += _encoder_args(dest, has_audio=has_audio, threads=threads, even=_even(width, height))
        else:
            args += ["-map", "0:a:0?", "-c:a", "aac", "-b:a", "128k", *_mp4_args(dest, threads)]
        told = None
        if progress is not None and duration_s:
            def told(seconds: float) -> None:
                progress(min(seconds / duration_s, 1.0))
        return run_ffmpeg(args, dest, timeout_s, reading, progress=told)
