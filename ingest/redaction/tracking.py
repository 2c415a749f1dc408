"""Regions followed through the picture (`--track START-END:X,Y,W,H`): where the region is at START is given, and
OpenCV's MIL tracker (`cv2.TrackerMIL`, in opencv-python-headless with no model file to fetch) finds where it is ten
times a second until END. The places found become a moving region's keyframes (spec.Moving), padded, before the
rendering; the signed specification holds both what was asked and every keyframe found, so a reviewer sees, and may
correct, what the tracker decided.

What it can and cannot do: MIL follows a patch that keeps its size and look (a plate, a face turning a little, a
screen); it does not grow the region as the thing comes closer, and can drift onto the background when the thing is
hidden or leaves the picture. Where it says it lost the region, the last place held is kept to END, grown by
LOST_GROWTH on each side, and the loss is recorded with its time (`lost_at_s`) for the reviewer. A drift it does not
notice is not caught here: the review in the browser is where a person checks the copy.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ingest.redaction.frames import sampled_frames
from ingest.redaction.spec import TRACK_STEP_S, Keyframe, Moving, RedactionSpec, Track

__all__ = ["LOST_GROWTH", "TRACK_PAD", "TRACK_WIDTH", "Followed", "follow_region", "follow_tracks", "tracker_name"]

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


def follow_region(source: Path | str, track: Track, *, width: int, height: int, timeout_s: float,
                  duration_s: float | None = None, progress: Callable[[float], None] | None = None) -> Followed:
    """Follow *track* through *source* (a file or URL; its picture *width*×*height*, its length *duration_s* if
    known) from its start to its end, or to the recording's end where the span asked goes past it.

    Raises:
      FfmpegRefused: the source cannot be decoded, or reading took longer than *timeout_s*.
      RenderInterrupted: ffmpeg was stopped from outside.
    """
    scale = min(1.0, TRACK_WIDTH / width)
    small_w, small_h = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    sx, sy = small_w / width, small_h / height
    start = (track.x * sx, track.y * sy, max(1.0, track.w * sx), max(1.0, track.h * sy))
    keyframes = [Keyframe(track.start_s, *_padded(track.x, track.y, track.w, track.h, TRACK_PAD, width, height))]
    tracker: Any = None
    lost_at: float | None = None
    last = (float(track.x), float(track.y), float(track.w), float(track.h))
    pictures = 0
    end_s = min(track.end_s, duration_s) if duration_s and track.start_s < duration_s else track.end_s
    span = end_s - track.start_s
    for n, rgb in enumerate(sampled_frames(source, fps=1 / TRACK_STEP_S, out_width=small_w, out_height=small_h,
                                           timeout_s=timeout_s, doing="following a region in",
                                           start_s=track.start_s, end_s=end_s)):
        pictures += 1
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if tracker is None:
            tracker = cv2.TrackerMIL.create()
            tracker.init(bgr, tuple(round(v) for v in start))
            continue
        at = round(track.start_s + n * TRACK_STEP_S, 3)
        if at > end_s:
            break
        ok, (bx, by, bw, bh) = tracker.update(bgr)
        if not ok:
            lost_at = at
            break
        last = (bx / sx, by / sy, bw / sx, bh / sy)
        keyframes.append(Keyframe(at, *_padded(*last, TRACK_PAD, width, height)))
        if progress is not None and n % 10 == 0 and span > 0:
            progress(min((at - track.start_s) / span, 1.0))
    if pictures < 2 and lost_at is None:  # nothing to follow it in (a span past the last picture): as lost
        lost_at = track.start_s
    if lost_at is not None:  # the last place held, grown, from the loss to the end
        grown = _padded(*last, TRACK_PAD + LOST_GROWTH, width, height)
        keyframes = [k for k in keyframes if k.t_s < lost_at] + [Keyframe(lost_at, *grown), Keyframe(end_s, *grown)]
    elif keyframes[-1].t_s < end_s:  # to the end of the span: the last place found held
        held = keyframes[-1]
        keyframes.append(Keyframe(end_s, held.x, held.y, held.w, held.h))
    return Followed(track, Moving(tuple(_forward(keyframes))), lost_at, pictures)


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
