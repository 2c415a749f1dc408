"""What a redaction hides, as plain values: regions of the picture over a time range and ranges of the sound.
Parsing and checking against the recording are pure; the specification goes whole into the derivative's signed
manifest (`as_json`), so anyone can see what was hidden, where and when.

`--box START-END:X,Y,W,H` (times in seconds or [HH:]MM:SS[.fff], the region in pixels of the original frame; a bare
`X,Y,W,H` hides the region for the whole recording, or on a photo), `--moving T:X,Y,W,H;T:X,Y,W,H;...` (a region that
moves: its keyframes, interpolated in between), `--track START-END:X,Y,W,H` (a region followed from where it is at
START until END by a tracker, ingest.redaction.tracking: its keyframes found before the rendering and kept as a
moving region's), `--mute START-END` and `--bleep START-END` (the sound replaced by a tone).
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BLEEP_HZ", "KEYFRAME_STEP_S", "MAX_REGIONS", "MAX_TIME_S", "MIN_BLOCK", "TRACK_STEP_S", "Box", "Keyframe",
           "Moving", "Mute", "RedactionInvalid", "RedactionSpec", "Track", "parse_box", "parse_moving", "parse_mute",
           "parse_time", "parse_track", "spec_problems"]

#: The smallest pixelation block (pixels of the original frame): a region is shrunk so that each block becomes one
#: pixel and drawn back; what was inside a block cannot be recovered from it.
MIN_BLOCK = 8
#: The latest time a range may name (115 days: longer than any recording a device writes).
MAX_TIME_S = 10_000_000.0
#: A moving region is drawn as one box per this many seconds, each covering where the region is at both ends of
#: its interval (so the whole interval: each edge moves linearly between keyframes).
KEYFRAME_STEP_S = 0.2
#: The most regions one redaction draws (still boxes, faces and each moving region's steps): an hour with three faces
#: is about 10,800; a request past this is refused before it is queued, not left to exhaust a renderer's memory.
MAX_REGIONS = 100_000
#: A tracked region's keyframes are at least this far apart: the tracker looks at a real frame every 75 ms or more
#: (every third frame at 30 a second, every second at 25).
TRACK_STEP_S = 0.075
#: The tone that replaces bleeped sound (the broadcast censor's 1 kHz), at a quarter of full scale.
BLEEP_HZ = 1000

_TIME = re.compile(r"^(?:(?:(\d+):)?(\d{1,2}):)?(\d+(?:\.\d+)?)$")


class RedactionInvalid(ValueError):
    """A redaction specification that cannot be carried out as written (each problem named)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_time(text: str) -> float:
    """Seconds from `12.5`, `01:02.5` or `1:02:03` (ValueError naming the text)."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time (seconds, MM:SS or HH:MM:SS)")
    hours, minutes, seconds = match.groups()
    if (hours is not None or minutes is not None) and float(seconds) >= 60:
        raise ValueError(f"{text!r} is not a time: {seconds} seconds in a minute")
    value = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)
    if not math.isfinite(value) or value > MAX_TIME_S:  # 400 nines read as infinity, which no record can hold
        raise ValueError(f"{text[:40]!r} is not a time in a recording (at most {MAX_TIME_S:g} s)")
    return value


def _span(text: str, what: str) -> tuple[float, float]:
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"{what} {text!r} needs START-END")
    return parse_time(start), parse_time(end)


@dataclass(frozen=True)
class Box:
    """A region hidden from *start_s* to *end_s* (None: to the end; pixels of the original frame, top-left origin)."""

    start_s: float
    end_s: float | None
    x: int
    y: int
    w: int
    h: int

    def as_json(self) -> dict[str, Any]:
        return {"start_s": self.start_s, "end_s": self.end_s, "x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class Mute:
    """Sound silenced from *start_s* to *end_s*."""

    start_s: float
    end_s: float

    def as_json(self) -> dict[str, Any]:
        return {"start_s": self.start_s, "end_s": self.end_s}


@dataclass(frozen=True)
class Keyframe:
    """Where a moving region is at *t_s* (pixels of the original frame)."""

    t_s: float
    x: int
    y: int
    w: int
    h: int

    def as_json(self) -> dict[str, Any]:
        return {"t_s": self.t_s, "x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class Moving:
    """A region that moves (a plate on a passing car, a bystander walking): hidden from its first keyframe to its
    last, each edge moving in a straight line from one keyframe to the next."""

    keyframes: tuple[Keyframe, ...]

    def as_json(self) -> dict[str, Any]:
        return {"keyframes": [k.as_json() for k in self.keyframes]}

    def box_count(self, step_s: float = KEYFRAME_STEP_S) -> int:
        """How many boxes `boxes` draws, without drawing them. Pure."""
        return sum(max(1, math.ceil((b.t_s - a.t_s) / step_s - 1e-9))
                   for a, b in itertools.pairwise(self.keyframes) if b.t_s > a.t_s)

    def boxes(self, step_s: float = KEYFRAME_STEP_S) -> tuple[Box, ...]:
        """Boxes that together cover the region wherever it is between its first and last keyframe: one per
        *step_s*, the bounding box of the region at both ends of the step (an edge that moves linearly is, within
        the step, between where it is at its ends). Pure."""
        frames = self.keyframes
        out: list[Box] = []
        for a, b in itertools.pairwise(frames):
            span = b.t_s - a.t_s
            if span <= 0:
                continue
            steps = max(1, math.ceil(span / step_s - 1e-9))
            for n in range(steps):
                t0, t1 = a.t_s + span * n / steps, a.t_s + span * (n + 1) / steps
                ends = [_at(a, b, t) for t in (t0, t1)]
                x1 = min(e[0] for e in ends)
                y1 = min(e[1] for e in ends)
                x2 = max(e[0] + e[2] for e in ends)
                y2 = max(e[1] + e[3] for e in ends)
                out.append(Box(round(t0, 3), round(t1, 3), math.floor(x1), math.floor(y1),
                               math.ceil(x2) - math.floor(x1), math.ceil(y2) - math.floor(y1)))
        return tuple(out)


@dataclass(frozen=True)
class Track:
    """A region to be followed from where it is at *start_s* (pixels of the original frame) until *end_s*: the
    tracker finds its keyframes before the rendering (ingest.redaction.tracking)."""

    start_s: float
    end_s: float
    x: int
    y: int
    w: int
    h: int

    def as_json(self) -> dict[str, Any]:
        return {"start_s": self.start_s, "end_s": self.end_s, "x": self.x, "y": self.y, "w": self.w, "h": self.h}

    def box_count(self, duration_s: float | None = None) -> int:
        """How many boxes its keyframes will draw, at most (one per TRACK_STEP_S), to the recording's end (its
        length *duration_s* if known) when the span goes past it. Pure."""
        end = min(self.end_s, duration_s) if duration_s and self.start_s < duration_s else self.end_s
        return max(1, math.ceil((end - self.start_s) / TRACK_STEP_S)) + 1


def _at(a: Keyframe, b: Keyframe, t: float) -> tuple[float, float, float, float]:
    """The region between keyframes *a* and *b* at *t* (x, y, w, h)."""
    f = (t - a.t_s) / (b.t_s - a.t_s)
    return (a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f, a.w + (b.w - a.w) * f, a.h + (b.h - a.h) * f)


def _region(text: str, what: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise ValueError(f"{what}: the region must be four whole numbers X,Y,W,H")
    x, y, w, h = (int(p) for p in parts)
    return x, y, w, h


def parse_moving(text: str) -> Moving:
    """`T:X,Y,W,H;T:X,Y,W,H[;...]`: a moving region's keyframes (ValueError naming what is wrong)."""
    frames = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        at, sep, region = part.rpartition(":")
        if not sep or not at:
            raise ValueError(f"moving region {text!r}: keyframe {part!r} needs T:X,Y,W,H")
        frames.append(Keyframe(parse_time(at), *_region(region, f"moving region {text!r}, keyframe {part!r}")))
    if len(frames) < 2:
        raise ValueError(f"moving region {text!r} needs at least two keyframes T:X,Y,W,H;T:X,Y,W,H")
    return Moving(tuple(frames))


def parse_box(text: str) -> Box:
    """`START-END:X,Y,W,H`, or `X,Y,W,H` for the whole recording (ValueError naming what is wrong)."""
    span, sep, region = text.partition(":") if text.count(":") == 1 else text.rpartition(":")
    start: float
    end: float | None
    if not sep:
        if text.count(",") != 3:
            raise ValueError(f"box {text!r} needs START-END:X,Y,W,H (or X,Y,W,H for the whole recording)")
        region, (start, end) = text, (0.0, None)
    else:
        start, end = _span(span, "box")
    return Box(start, end, *_region(region, f"box {text!r}"))


def parse_track(text: str) -> Track:
    """`START-END:X,Y,W,H`: a region to follow, where it is at START (ValueError naming what is wrong)."""
    span, sep, region = text.rpartition(":")
    if not sep or "-" not in span:
        raise ValueError(f"tracked region {text!r} needs START-END:X,Y,W,H (where the region is at START)")
    start, end = _span(span, "tracked region")
    return Track(start, end, *_region(region, f"tracked region {text!r}"))


def parse_mute(text: str) -> Mute:
    """`START-END` (ValueError naming what is wrong)."""
    start, end = _span(text, "mute range")
    return Mute(start, end)


@dataclass(frozen=True)
class RedactionSpec:
    boxes: tuple[Box, ...] = ()
    mutes: tuple[Mute, ...] = ()
    method: str = "pixelate"
    block: int = 16  # pixelation block, pixels of the original frame
    extra: dict[str, Any] = field(default_factory=dict)  # detector, model and thresholds, when faces are found
    moving: tuple[Moving, ...] = ()
    bleeps: tuple[Mute, ...] = ()  # sound replaced by a BLEEP_HZ tone
    tracks: tuple[Track, ...] = ()  # regions to follow: followed before the rendering, then drawn as moving ones

    def regions(self) -> tuple[Box, ...]:
        """Every box drawn: the still ones, then each moving region's (Moving.boxes). Regions still to be tracked
        are not drawn: they are followed first (ingest.redaction.tracking.follow_tracks makes them moving ones)."""
        return self.boxes + tuple(box for m in self.moving for box in m.boxes())

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "block": self.block, "boxes": [b.as_json() for b in self.boxes],
                "moving": [m.as_json() for m in self.moving], "mutes": [m.as_json() for m in self.mutes],
                "bleeps": [b.as_json() for b in self.bleeps], "bleep_hz": BLEEP_HZ,
                "tracks": [t.as_json() for t in self.tracks],
                "keyframe_step_s": KEYFRAME_STEP_S, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RedactionSpec:
        """The specification `as_json` wrote (a queued job's request); RedactionInvalid when it is not one (a row
        edited behind the application's back: wrong types, numbers that are not finite)."""
        try:
            spec = cls._from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RedactionInvalid([f"the specification cannot be read: {type(exc).__name__}: {exc}"]) from None
        times = [v for b in spec.boxes for v in (b.start_s, b.end_s) if v is not None]
        times += [k.t_s for m in spec.moving for k in m.keyframes]
        times += [v for t in spec.tracks for v in (t.start_s, t.end_s)]
        times += [v for m in spec.mutes + spec.bleeps for v in (m.start_s, m.end_s)]
        if not all(math.isfinite(t) for t in times):
            raise RedactionInvalid(["the specification holds a time that is not a finite number"])
        return spec

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> RedactionSpec:
        def span(d: dict[str, Any]) -> Mute:
            return Mute(float(d["start_s"]), float(d["end_s"]))

        def whole(value: Any) -> int:  # a pixel: a JSON whole number (never true, never 9.9 read as 9)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"a whole number of pixels was expected, not {value!r}")
            return value

        if not isinstance(data, dict):
            raise TypeError(f"an object was expected, not {type(data).__name__}")
        return cls(
            boxes=tuple(Box(float(b["start_s"]), None if b["end_s"] is None else float(b["end_s"]), whole(b["x"]),
                            whole(b["y"]), whole(b["w"]), whole(b["h"])) for b in data.get("boxes", [])),
            moving=tuple(Moving(tuple(Keyframe(float(k["t_s"]), whole(k["x"]), whole(k["y"]), whole(k["w"]),
                                               whole(k["h"])) for k in m["keyframes"]))
                         for m in data.get("moving", [])),
            mutes=tuple(span(m) for m in data.get("mutes", [])), bleeps=tuple(span(b) for b in data.get("bleeps", [])),
            tracks=tuple(Track(float(t["start_s"]), float(t["end_s"]), whole(t["x"]), whole(t["y"]), whole(t["w"]),
                               whole(t["h"])) for t in data.get("tracks", [])),
            method=str(data.get("method", "pixelate")), block=int(data.get("block", 16)))

    def as_lines(self) -> dict[str, list[str]]:
        """The regions and ranges as `evidence redact` and the web form take them, one per line (boxes, moving,
        mutes, bleeps): parsed again they give this specification's regions and ranges. Pure."""
        def t(value: float) -> str:  # never an exponent (1e+07), which parse_time does not read
            return f"{value:.3f}".rstrip("0").rstrip(".")

        return {"boxes": [f"{b.x},{b.y},{b.w},{b.h}" if b.start_s == 0 and b.end_s is None else
                          f"{t(b.start_s)}-{t(b.end_s if b.end_s is not None else MAX_TIME_S)}:{b.x},{b.y},{b.w},{b.h}"
                          for b in self.boxes],
                "moving": [";".join(f"{t(k.t_s)}:{k.x},{k.y},{k.w},{k.h}" for k in m.keyframes) for m in self.moving],
                "tracks": [f"{t(k.start_s)}-{t(k.end_s)}:{k.x},{k.y},{k.w},{k.h}" for k in self.tracks],
                "mutes": [f"{t(m.start_s)}-{t(m.end_s)}" for m in self.mutes],
                "bleeps": [f"{t(b.start_s)}-{t(b.end_s)}" for b in self.bleeps]}

    @property
    def hides_nothing(self) -> bool:
        return not (self.boxes or self.moving or self.tracks or self.mutes or self.bleeps)


def _span_problems(what: str, start_s: float, end_s: float | None, duration_s: float | None) -> list[str]:
    problems = []
    if end_s is not None and end_s <= start_s:
        problems.append(f"{what}: it ends before it starts")
    if duration_s is not None and start_s >= duration_s:
        problems.append(f"{what}: it starts after the recording ends ({duration_s:g} s)")
    return problems


def _box_problems(n: int, box: Box, width: int | None, height: int | None, duration_s: float | None) -> list[str]:
    until = "the end" if box.end_s is None else f"{box.end_s:g} s"
    what = f"region {n} ({box.x},{box.y},{box.w},{box.h} from {box.start_s:g} s to {until})"
    problems = _span_problems(what, box.start_s, box.end_s, duration_s)
    if box.w <= 0 or box.h <= 0:
        problems.append(f"{what}: it has no area")
    if box.x < 0 or box.y < 0 or (width is not None and height is not None
                                   and (box.x + box.w > width or box.y + box.h > height)):
        problems.append(f"{what}: it lies outside the {width}×{height} picture")
    return problems


def spec_problems(spec: RedactionSpec, *, width: int | None, height: int | None, duration_s: float | None,
                  has_audio: bool, photo: bool = False) -> list[str]:
    """Everything in *spec* that cannot be carried out on a recording of this size, length and sound, or on a
    *photo* (no time, no sound) (empty: it can). Pure."""
    problems = _photo_problems(spec) if photo else []
    if spec.hides_nothing:
        problems.append("nothing to redact: give at least one region or one muted range")
    if spec.method != "pixelate":
        problems.append(f"method {spec.method!r}: only pixelate is built")
    if spec.block < MIN_BLOCK:
        problems.append(f"a pixelation block of {spec.block} px is too fine to hide a face; at least {MIN_BLOCK}")
    if (spec.boxes or spec.moving or spec.tracks) and (width is None or height is None):
        problems.append("the recording has no picture to hide a region of")
    for n, box in enumerate(spec.boxes, 1):
        problems += _box_problems(n, box, width, height, duration_s)
    for n, moving in enumerate(spec.moving, 1):
        problems += _moving_problems(n, moving, width, height, duration_s)
    for n, track in enumerate(spec.tracks, 1):
        problems += [p.replace("region", "tracked region", 1)
                     for p in _box_problems(n, Box(track.start_s, track.end_s, track.x, track.y, track.w, track.h),
                                            width, height, duration_s)]
    count = (len(spec.boxes) + sum(m.box_count() for m in spec.moving)
             + sum(t.box_count(duration_s) for t in spec.tracks))
    if count > MAX_REGIONS:
        problems.append(f"{count} regions to draw (moving regions drawn every {KEYFRAME_STEP_S:g} s, tracked ones "
                        f"every {TRACK_STEP_S:g} s): at most "
                        f"{MAX_REGIONS} in one redaction; redact the recording in parts")
    for word, ranges in (("muted", spec.mutes), ("bleeped", spec.bleeps)):
        for n, mute in enumerate(ranges, 1):
            what = f"{word} range {n} ({mute.start_s:g} s to {mute.end_s:g} s)"
            if not has_audio:
                problems.append(f"{what}: the recording has no sound")
            problems += _span_problems(what, mute.start_s, mute.end_s, duration_s)
    return problems


def _photo_problems(spec: RedactionSpec) -> list[str]:
    """What a photo (no time) cannot take: a region with a time range, a moving region."""
    return ([f"region {n}: a photo has no time range; give X,Y,W,H" for n, box in enumerate(spec.boxes, 1)
             if box.start_s != 0 or box.end_s is not None]
            + [f"moving region {n}: a photo does not move; give X,Y,W,H" for n in range(1, len(spec.moving) + 1)]
            + [f"tracked region {n}: a photo does not move; give X,Y,W,H" for n in range(1, len(spec.tracks) + 1)])


def _moving_problems(n: int, moving: Moving, width: int | None, height: int | None,
                     duration_s: float | None) -> list[str]:
    frames = moving.keyframes
    what = f"moving region {n} ({frames[0].t_s:g} s to {frames[-1].t_s:g} s)" if frames else f"moving region {n}"
    problems = []
    if len(frames) < 2:
        problems.append(f"{what}: it needs at least two keyframes")
    if any(b.t_s <= a.t_s for a, b in itertools.pairwise(frames)):
        problems.append(f"{what}: its keyframes must go forward in time")
    if frames and duration_s is not None and frames[0].t_s >= duration_s:
        problems.append(f"{what}: it starts after the recording ends ({duration_s:g} s)")
    elif frames and duration_s is not None and frames[-1].t_s > duration_s + KEYFRAME_STEP_S:
        problems.append(f"{what}: its last keyframe is after the recording ends ({duration_s:g} s)")
    for k in frames:
        if k.w <= 0 or k.h <= 0:
            problems.append(f"{what}: the keyframe at {k.t_s:g} s has no area")
        if k.x < 0 or k.y < 0 or (width is not None and height is not None
                                   and (k.x + k.w > width or k.y + k.h > height)):
            problems.append(f"{what}: the keyframe at {k.t_s:g} s ({k.x},{k.y},{k.w},{k.h}) lies outside the "
                            f"{width}×{height} picture")
    return problems
