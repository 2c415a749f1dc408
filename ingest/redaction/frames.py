"""Pictures of a recording sampled by ffmpeg for looking at (the face search, the tracker): RGB frames at a fixed
rate, scaled down, from a file or a URL, in a process of its own with a deadline."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ingest.derive import FfmpegRefused, dies_with_parent, ffmpeg_source, killed_from_outside, stopped_from_outside
from ingest.errors import RenderInterrupted

__all__ = ["sampled_frames"]


def sampled_frames(source: Path | str, *, fps: float | None, out_width: int, out_height: int, timeout_s: float,
                   doing: str, start_s: float = 0.0, end_s: float | None = None) -> Iterator[np.ndarray]:
    """RGB frames of *source*'s video (never a cover picture) every 1/*fps* s (None: the first only), scaled to
    *out_width*×*out_height*, from *start_s* until *end_s* (the end when None): frame n shows the picture at about
    *start_s* + n/*fps* (the nearest frame). A file is sought to *start_s*; a URL is read from its start, the
    frames before *start_s* decoded and dropped (the one-file concat script that keeps the URL off the command line
    cannot seek). *doing* names the work in errors ("looking for faces in").

    Raises:
      FfmpegRefused: the source cannot be decoded (ffmpeg's last error), or reading took longer than *timeout_s*.
      RenderInterrupted: ffmpeg was stopped from outside.
    """
    scale = f"scale={out_width}:{out_height}:flags=area"
    with ffmpeg_source(source) as reading:
        seek: list[str] = []
        cut = ""
        if reading.args[0] == "-i":  # a file: sought to the start, its timestamps from there
            seek = ([] if start_s <= 0 else ["-ss", f"{start_s:.3f}"]) + \
                ([] if end_s is None else ["-t", f"{max(end_s - start_s, 0.001):.3f}"])
        elif start_s > 0 or end_s is not None:  # a URL: the span cut from the decoded pictures, timed from its start
            # (its end a half sample later: the picture at the end is sampled, as -t lets it be for a file)
            cut = (f"trim=start={max(start_s, 0):.3f}"
                   + ("" if end_s is None else f":end={end_s + (0.5 / fps if fps else 0):.3f}")
                   + ",setpts=PTS-STARTPTS,")
        sample = f"{cut}fps={fps},{scale}" if fps else f"{cut}{scale}"
        args = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "2", *seek, *reading.args, "-map", "0:V:0",
                "-vf", sample, *([] if fps else ["-frames:v", "1"]), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
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
