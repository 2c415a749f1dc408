"""Regions followed through the picture (`--track START-END:X,Y,W,H`): where the region is at START is given, and
OpenCV's MIL tracker (`cv2.TrackerMIL`, in opencv-python-headless with no model file to fetch) finds where it is in a
real frame every 75 ms or more (about ten a second) until END, each at the time the renderer gives that frame. The
places found become a moving region's keyframes (spec.Moving), padded, before the rendering; the signed
specification holds both what was asked and every keyframe found, so a reviewer sees, and may correct, what the
tracker decided.

What it can and cannot do: MIL follows a patch that keeps its size and look (a plate, a face turning a little, a
screen); it does not grow the region as the thing comes closer, and drifts onto the background when the thing is
hidden, leaves the picture or moves faster than its search window (about 25 px of its 640 px picture between two
looks) — without saying so: MIL reports a loss only when the region has no room left in the picture. Where it does,
the last place is held to END, grown by LOST_GROWTH on each side, and the loss is recorded with its time
(`lost_at_s`). A drift is not caught here: the review in the browser, where a person checks the copy, is.
"""
from __future__ import annotations

import ctypes
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ingest.derive import FfmpegRefused
from ingest.redaction.frames import timed_pictures
from ingest.redaction.spec import TRACK_STEP_S, Keyframe, Moving, RedactionInvalid, RedactionSpec, Track

__all__ = ["LOST_GROWTH", "MIN_PATCH", "PATCH_MARGIN", "TRACK_PAD", "TRACK_WIDTH", "Followed", "TrackingFailed",
           "follow_region", "follow_tracks", "tracker_name"]

#: The tracker looks at a picture at most this wide (the region scaled with it, the keyframes scaled back).
TRACK_WIDTH = 640
#: Each keyframe is the place found with this share of its width and height added on each side (the tracker's box is
#: its own idea of the patch; the thing hidden may stick out of it a little).
TRACK_PAD = 0.15
#: Where the tracker says it lost the region, the last place found, grown by this share of its size on each side,
#: is hidden until the end of the span.
LOST_GROWTH = 0.5


def tracker_name() -> str:
    """The tracker and the library that runs it, as the signed specification names it."""
    return f"OpenCV {cv2.__version__} TrackerMIL"


@dataclass(frozen=True)
class Followed:
    """What the tracker made of one tracked region: its keyframes, and where it lost the region (None: it did
    not say it lost it)."""

    track: Track
    moving: Moving
    lost_at_s: float | None
    pictures: int

    def as_json(self) -> dict[str, Any]:
        return {"asked": self.track.as_json(), "keyframes": len(self.moving.keyframes), "lost_at_s": self.lost_at_s,
                "pictures_looked_at": self.pictures}


def _padded(x: float, y: float, w: float, h: float, share: float, width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) grown by *share* of its size on each side, in whole pixels, inside the picture."""
    x1, y1 = max(0, math.floor(x - w * share)), max(0, math.floor(y - h * share))
    x2, y2 = min(width, math.ceil(x + w * (1 + share))), min(height, math.ceil(y + h * (1 + share)))
    return x1, y1, max(1, x2 - x1), max(1, y2 - y1)


#: The random generators MIL draws from are seeded with this before each region is followed.
TRACK_SEED = 20261205
#: The process's C library: OpenCV's MIL draws its samples from its `rand()`, not from OpenCV's own generator
#: (found by experiment, OpenCV 4.x: with cv2.setRNGSeed alone, the same region followed again in the same process
#: gave other keyframes, the square of the tests up to 20 px apart, each call as the calls before it left `rand()`).
_LIBC = ctypes.CDLL(None)
#: One region followed at a time in a process: `rand()` is the whole process's, and another thread's tracker drawing
#: from it would make the keyframes depend on how the two interleave.
_ONE_AT_A_TIME = threading.Lock()
#: The tracker's patch is at least this many pixels a side on the picture it looks at (MIL spins for ever on a
#: patch of 5 px or less, and runs out of memory on a 1-pixel-wide one): a smaller region is followed by a patch this
#: size around it.
MIN_PATCH = 16
#: ...and leaves at least this many pixels of the picture around it (MIL needs room to look for it; a patch as wide
#: as the picture makes it fail).
PATCH_MARGIN = 8


class TrackingFailed(RedactionInvalid):
    """The tracker could not follow a region (the region, and OpenCV's reason): the request cannot be carried out
    as written."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem])


def _patch(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """*box* (x, y, w, h on the tracker's picture) as a patch MIL can follow: at least MIN_PATCH a side, at most the
    picture less PATCH_MARGIN on each side, its centre kept where it can be, inside the picture."""
    x, y, w, h = box
    pw = min(max(w, MIN_PATCH), width - 2 * PATCH_MARGIN)
    ph = min(max(h, MIN_PATCH), height - 2 * PATCH_MARGIN)
    px = min(max(x + w / 2 - pw / 2, PATCH_MARGIN), width - PATCH_MARGIN - pw)
    py = min(max(y + h / 2 - ph / 2, PATCH_MARGIN), height - PATCH_MARGIN - ph)
    return round(px), round(py), max(1, round(pw)), max(1, round(ph))


def follow_region(source: Path | str, track: Track, *, width: int, height: int, timeout_s: float,
                  duration_s: float | None = None, progress: Callable[[float], None] | None = None) -> Followed:
    """Follow *track* through *source* (a file or URL; its picture *width*×*height*, its length *duration_s* if
    known) from its start to its end, or to the recording's end where the span asked goes past it. Each keyframe is
    at the time of the picture the tracker saw (`frames.timed_pictures`), the region asked where it starts.

    Raises:
      FfmpegRefused: the source cannot be decoded, or the whole took longer than *timeout_s* (waiting for another
        region of this process to be followed included).
      RenderInterrupted: ffmpeg was stopped from outside.
      TrackingFailed: OpenCV refused the region (each picture too small for the tracker to look around it).
    """
    scale = min(1.0, TRACK_WIDTH / width)
    small_w, small_h = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    if small_w <= MIN_PATCH + 2 * PATCH_MARGIN or small_h <= MIN_PATCH + 2 * PATCH_MARGIN:
        raise TrackingFailed(f"a picture of {width}×{height} is too small to follow a region in")
    sx, sy = small_w / width, small_h / height
    start = _patch((track.x * sx, track.y * sy, track.w * sx, track.h * sy), small_w, small_h)
    end_s = min(track.end_s, duration_s) if duration_s and track.start_s < duration_s else track.end_s
    span = end_s - track.start_s
    keyframes = [Keyframe(track.start_s, *_padded(track.x, track.y, track.w, track.h, TRACK_PAD, width, height))]
    # the region asked, against the patch followed: a keyframe is the patch's place with the region's size
    off = (track.x * sx - start[0], track.y * sy - start[1])
    tracker: Any = None
    lost_at: float | None = None
    last = (float(track.x), float(track.y), float(track.w), float(track.h))
    seen = 0

    after: Keyframe | None = None  # where it is in the first picture past the end: the end's place lies between

    def look(at: float, bgr: np.ndarray) -> None:
        nonlocal tracker, lost_at, last, seen, after
        if lost_at is not None or after is not None:
            return
        seen += 1
        try:
            if tracker is None:
                # MIL's random samples, seeded: the same recording and region give the same keyframes whatever ran
                # before in this process (a copy made again is the same copy)
                cv2.setRNGSeed(TRACK_SEED)
                _LIBC.srand(TRACK_SEED)
                tracker = cv2.TrackerMIL.create()
                tracker.init(bgr, start)
                return
            ok, (bx, by, _bw, _bh) = tracker.update(bgr)
        except cv2.error as exc:
            raise TrackingFailed(f"the tracker could not follow the region {track.x},{track.y},{track.w},"
                                 f"{track.h} from {track.start_s:g} s: {str(exc).strip().splitlines()[-1]}") from None
        at = round(at, 3)
        if not ok:
            lost_at = at
            return
        place = ((bx + off[0]) / sx, (by + off[1]) / sy, float(track.w), float(track.h))
        if at > end_s + 1e-6:
            after = Keyframe(at, *_padded(*place, TRACK_PAD, width, height))
            return
        last = place
        if at > keyframes[-1].t_s:
            keyframes.append(Keyframe(at, *_padded(*last, TRACK_PAD, width, height)))
        if progress is not None and seen % 10 == 0 and span > 0:
            progress(min((at - track.start_s) / span, 1.0))

    # The wait for another region of this process counts against *timeout_s* (a job queued behind a long one
    # gives up in time, named, instead of waiting past its own limit)
    asked = time.monotonic()
    if not _ONE_AT_A_TIME.acquire(timeout=timeout_s):
        raise FfmpegRefused(f"following a region from {track.start_s:g} s: another region was being followed in this "
                            f"process for longer than {timeout_s:g} s")
    try:
        left = timeout_s - (time.monotonic() - asked)
        timed_pictures(source, every_s=TRACK_STEP_S, out_width=small_w, out_height=small_h, start_s=track.start_s,
                       end_s=end_s, timeout_s=max(left, 1.0), doing="following a region in", picture=look)
    finally:
        _ONE_AT_A_TIME.release()
    if seen < 2 and lost_at is None:  # nothing to follow it in (a span past the last picture): as lost
        lost_at = track.start_s
    keyframes = _to_the_end(keyframes, last, lost_at, after, end_s, width, height)
    return Followed(track, Moving(tuple(_forward(keyframes))), lost_at, seen)


def _to_the_end(keyframes: list[Keyframe], last: tuple[float, float, float, float], lost_at: float | None,
                after: Keyframe | None, end_s: float, width: int, height: int) -> list[Keyframe]:
    """*keyframes* carried to *end_s*: from a loss, the *last* place grown; else between the last keyframe and
    the place *after* the end (both covered), or the last held."""
    if lost_at is not None:  # the last place held, grown, from the loss to the end
        grown = _padded(*last, TRACK_PAD + LOST_GROWTH, width, height)
        return [k for k in keyframes if k.t_s < lost_at] + [Keyframe(lost_at, *grown), Keyframe(end_s, *grown)]
    elif keyframes[-1].t_s < end_s:  # to the end of the span: between the last place and the next, or held
        held = keyframes[-1]
        if after is not None and after.t_s > held.t_s:
            share = (end_s - held.t_s) / (after.t_s - held.t_s)
            x1 = min(held.x, round(held.x + (after.x - held.x) * share))
            y1 = min(held.y, round(held.y + (after.y - held.y) * share))
            x2 = max(held.x + held.w, round(held.x + held.w + (after.x + after.w - held.x - held.w) * share))
            y2 = max(held.y + held.h, round(held.y + held.h + (after.y + after.h - held.y - held.h) * share))
            keyframes.append(Keyframe(end_s, x1, y1, x2 - x1, y2 - y1))  # the last place and the end's, together
        else:
            keyframes.append(Keyframe(end_s, held.x, held.y, held.w, held.h))
    return keyframes


def _forward(keyframes: list[Keyframe]) -> list[Keyframe]:
    """*keyframes* with any not later than the one before dropped (a loss at the last sample's time)."""
    out: list[Keyframe] = []
    for k in keyframes:
        if not out or k.t_s > out[-1].t_s:
            out.append(k)
    return out


def follow_tracks(source: Path | str, spec: RedactionSpec, *, width: int, height: int, timeout_s: float,
                  duration_s: float | None = None, progress: Callable[[float], None] | None = None) -> RedactionSpec:
    """*spec* with each region to track followed (`follow_region`, each within *timeout_s*, to the recording's end
    at most) and drawn as a moving
    region of its keyframes; what was asked, the tracker and what it made of each (keyframes, a loss) go in its
    record (`tracking`). *spec* itself when nothing is to be tracked."""
    if not spec.tracks:
        return spec
    followed = []
    for n, track in enumerate(spec.tracks):
        def told(share: float, n: int = n) -> None:
            if progress is not None:
                progress((n + share) / len(spec.tracks))

        followed.append(follow_region(source, track, width=width, height=height, timeout_s=timeout_s,
                                      duration_s=duration_s, progress=told))
    record = {"tracker": tracker_name(), "step_s": TRACK_STEP_S, "pad": TRACK_PAD, "lost_growth": LOST_GROWTH,
              "followed": [f.as_json() for f in followed]}
    return replace(spec, tracks=(), moving=spec.moving + tuple(f.moving for f in followed),
                   extra={**spec.extra, "tracking": record})
