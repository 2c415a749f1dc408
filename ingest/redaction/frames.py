"""Pictures of a recording sampled by ffmpeg for looking at, scaled down, from a file or a URL, in a process of its
own with a deadline: counted from the start for the face search (`sampled_frames`), each with its own time for the
tracker (`timed_pictures`)."""
from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ingest.derive import FfmpegRefused, dies_with_parent, ffmpeg_source, killed_from_outside, stopped_from_outside
from ingest.errors import RenderInterrupted
from ingest.redaction.matroska import MatroskaUnexpected, VideoTrack, pass_frames

__all__ = ["sampled_frames", "timed_pictures"]


def sampled_frames(source: Path | str, *, fps: float | None, out_width: int, out_height: int, timeout_s: float,
                   doing: str) -> Iterator[np.ndarray]:
    """RGB frames of *source*'s video (never a cover picture) every 1/*fps* s from its start (None: the first only),
    scaled to *out_width*×*out_height*: frame n shows the picture at about n/*fps* s. *doing* names the work in
    errors ("looking for faces in").

    Raises:
      FfmpegRefused: the source cannot be decoded (ffmpeg's last error), or reading took longer than *timeout_s*.
      RenderInterrupted: ffmpeg was stopped from outside.
    """
    scale = f"scale={out_width}:{out_height}:flags=area"
    with ffmpeg_source(source) as reading:
        args = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "2", *reading.args, "-map", "0:V:0",
                "-vf", f"fps={fps},{scale}" if fps else scale, *([] if fps else ["-frames:v", "1"]),
                "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        deadline = time.monotonic() + timeout_s
        size = out_width * out_height * 3
        proc = subprocess.Popen(dies_with_parent(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            while (data := proc.stdout.read(size)) and len(data) == size:
                if time.monotonic() > deadline:
                    raise FfmpegRefused(f"{doing} {reading.shown_as} took longer than {timeout_s:g} s")
                yield np.frombuffer(data, dtype=np.uint8).reshape(out_height, out_width, 3)
            err = proc.stderr.read().decode(errors="replace").strip()
            if stopped_from_outside(proc.wait()):
                raise RenderInterrupted(reading.shown_as, f"ffmpeg was stopped from outside (exit {proc.returncode})",
                                        killed=killed_from_outside(proc.returncode))
            if proc.returncode != 0:
                raise FfmpegRefused(f"{doing} {reading.shown_as}: ffmpeg could not read it: "
                                    f"{reading.shown(err)[-500:] or f'exit {proc.returncode}'}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()


class _Discard:
    """A sink that keeps nothing (the stream is only looked at)."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return len(data)


def timed_pictures(source: Path | str, *, every_s: float, out_width: int, out_height: int, start_s: float,
                   end_s: float, timeout_s: float, doing: str, picture: Callable[[float, np.ndarray], None]) -> int:
    """Call *picture* with the time and the BGR picture (*out_width*×*out_height*) of frames of *source*'s video at
    least *every_s* apart (a real frame each, never one repeated to fill a gap: `select`, not `fps`) from *start_s*
    to *end_s* (one sample past it, so the picture at *end_s* is looked at), each at the time the renderer gives the
    same frame: the pictures come in Matroska with their own times, on the original's timeline, whatever the
    container (pictures starting after the sound, a transport stream: nothing is labelled by counting). The
    whole source is decoded from its start (a URL cannot be sought; a
    file sought by ffmpeg lands on a keyframe whose pictures before the start would repeat). Returns how many.

    Raises:
      FfmpegRefused: the source cannot be decoded, or the work took longer than *timeout_s* (ffmpeg killed).
      RenderInterrupted: ffmpeg was stopped from outside.
      What *picture* raises (ffmpeg stopped first).
    """
    span = f"trim=start={max(start_s, 0.0):.3f}:end={end_s + every_s:.3f},"
    with ffmpeg_source(source) as reading:
        args = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "2", *reading.args, "-map", "0:V:0",
                "-vf", f"{span}select='isnan(prev_selected_t)+gte(t-prev_selected_t,{every_s * 0.99:.4f})',"
                       f"scale={out_width}:{out_height}:flags=area,format=yuv420p",
                "-fps_mode", "passthrough", "-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-write_crc32", "0",
                "-map_metadata", "-1", "-f", "matroska", "pipe:1"]
        proc = subprocess.Popen(dies_with_parent(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            with contextlib.suppress(OSError):
                proc.kill()

        timer = threading.Timer(timeout_s, kill)
        timer.daemon = True
        timer.start()

        def each(track: VideoTrack, t: float, data: memoryview) -> None:
            if (track.width, track.height) != (out_width, out_height):
                raise FfmpegRefused(f"{doing} {reading.shown_as}: pictures of {track.width}×{track.height}, not "
                                    f"the {out_width}×{out_height} asked for")
            yuv = np.frombuffer(data, dtype=np.uint8, count=out_width * out_height * 3 // 2)
            picture(t, cv2.cvtColor(yuv.reshape(out_height * 3 // 2, out_width), cv2.COLOR_YUV2BGR_I420))

        try:
            try:
                count = pass_frames(proc.stdout, _Discard(), each)  # type: ignore[arg-type]  # writes as a file does
            except MatroskaUnexpected:
                count = -1  # the decoder's exit code says why, or the stream was cut
            err = proc.stderr.read().decode(errors="replace").strip()
            code = proc.wait()
            if expired.is_set():
                raise FfmpegRefused(f"{doing} {reading.shown_as} took longer than {timeout_s:g} s")
            if stopped_from_outside(code):
                raise RenderInterrupted(reading.shown_as, f"ffmpeg was stopped from outside (exit {code})",
                                        killed=killed_from_outside(code))
            if code != 0 or count < 0:
                raise FfmpegRefused(f"{doing} {reading.shown_as}: ffmpeg could not read it: "
                                    f"{reading.shown(err)[-500:] or f'exit {code}'}")
            return count
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
