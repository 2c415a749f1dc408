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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.said import Said, listed, say

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

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(listed(self.problems, sep="; "))

    def __str__(self) -> str:  # the Said whole, so a page says it in its language
        return self.args[0] if len(self.args) == 1 and isinstance(self.args[0], Said) else super().__str__()


def parse_time(text: str) -> float:
    """Seconds from `12.5`, `01:02.5` or `1:02:03` (ValueError naming the text)."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(say("{text} is not a time (seconds, MM:SS or HH:MM:SS)", text=repr(text)))
    hours, minutes, seconds = match.groups()
    if (hours is not None or minutes is not None) and float(seconds) >= 60:
        raise ValueError(say("{text} is not a time: {seconds} seconds in a minute", text=repr(text), seconds=seconds))
    value = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)
    if not math.isfinite(value) or value > MAX_TIME_S:  # 400 nines read as infinity, which no record can hold
        raise ValueError(say("{text} is not a time in a recording (at most {max} s)", text=repr(text[:40]),
                             max=f"{MAX_TIME_S:g}"))
    return value


def _span(text: str, what: Said) -> tuple[float, float]:
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(say("{what} {text} needs START-END", what=what, text=repr(text)))
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


def _region(text: str, what: Said) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise ValueError(say("{what}: the region must be four whole numbers X,Y,W,H", what=what))
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
            raise ValueError(say("moving region {text}: keyframe {part} needs T:X,Y,W,H", text=repr(text),
                                 part=repr(part)))
        frames.append(Keyframe(parse_time(at), *_region(region, say("moving region {text}, keyframe {part}",
                                                                    text=repr(text), part=repr(part)))))
    if len(frames) < 2:
        raise ValueError(say("moving region {text} needs at least two keyframes T:X,Y,W,H;T:X,Y,W,H", text=repr(text)))
    return Moving(tuple(frames))


def parse_box(text: str) -> Box:
    """`START-END:X,Y,W,H`, or `X,Y,W,H` for the whole recording (ValueError naming what is wrong)."""
    span, sep, region = text.partition(":") if text.count(":") == 1 else text.rpartition(":")
    start: float
    end: float | None
    if not sep:
        if text.count(",") != 3:
            raise ValueError(say("box {text} needs START-END:X,Y,W,H (or X,Y,W,H for the whole recording)",
                                 text=repr(text)))
        region, (start, end) = text, (0.0, None)
    else:
        start, end = _span(span, say("box"))
    return Box(start, end, *_region(region, say("box {text}", text=repr(text))))


def parse_track(text: str) -> Track:
    """`START-END:X,Y,W,H`: a region to follow, where it is at START (ValueError naming what is wrong)."""
    span, sep, region = text.rpartition(":")
    if not sep or "-" not in span:
        raise ValueError(say("tracked region {text} needs START-END:X,Y,W,H (where the region is at START)",
                             text=repr(text)))
    start, end = _span(span, say("tracked region"))
    return Track(start, end, *_region(region, say("tracked region {text}", text=repr(text))))


def parse_mute(text: str) -> Mute:
    """`START-END` (ValueError naming what is wrong)."""
    start, end = _span(text, say("mute range"))
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
            raise RedactionInvalid([say("the specification cannot be read: {kind}: {fault}", kind=type(exc).__name__,
                                        fault=str(exc))]) from None
        times = [v for b in spec.boxes for v in (b.start_s, b.end_s) if v is not None]
        times += [k.t_s for m in spec.moving for k in m.keyframes]
        times += [v for t in spec.tracks for v in (t.start_s, t.end_s)]
        times += [v for m in spec.mutes + spec.bleeps for v in (m.start_s, m.end_s)]
        if not all(math.isfinite(t) for t in times):
            raise RedactionInvalid([say("the specification holds a time that is not a finite number")])
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


def _span_problems(what: Said, start_s: float, end_s: float | None, duration_s: float | None) -> list[Said]:
    problems = []
    if end_s is not None and end_s <= start_s:
        problems.append(say("{what}: it ends before it starts", what=what))
    if duration_s is not None and start_s >= duration_s:
        problems.append(say("{what}: it starts after the recording ends ({end} s)", what=what, end=f"{duration_s:g}"))
    return problems


def _box_problems(n: int, box: Box, width: int | None, height: int | None, duration_s: float | None, *,
                  tracked: bool = False) -> list[Said]:
    where = {"n": n, "x": box.x, "y": box.y, "w": box.w, "h": box.h, "start": f"{box.start_s:g}"}
    if tracked:  # a tracked region has an end
        what = say("tracked region {n} ({x},{y},{w},{h} from {start} s to {end} s)", end=f"{box.end_s:g}", **where)
    elif box.end_s is None:
        what = say("region {n} ({x},{y},{w},{h} from {start} s to the end)", **where)
    else:
        what = say("region {n} ({x},{y},{w},{h} from {start} s to {end} s)", end=f"{box.end_s:g}", **where)
    problems = _span_problems(what, box.start_s, box.end_s, duration_s)
    if box.w <= 0 or box.h <= 0:
        problems.append(say("{what}: it has no area", what=what))
    if box.x < 0 or box.y < 0 or (width is not None and height is not None
                                   and (box.x + box.w > width or box.y + box.h > height)):
        problems.append(say("{what}: it lies outside the {width}×{height} picture", what=what, width=width,
                            height=height))
    return problems


def spec_problems(spec: RedactionSpec, *, width: int | None, height: int | None, duration_s: float | None,
                  has_audio: bool, photo: bool = False) -> list[Said]:
    """Everything in *spec* that cannot be carried out on a recording of this size, length and sound, or on a
    *photo* (no time, no sound) (empty: it can). Pure."""
    problems = _photo_problems(spec) if photo else []
    if spec.hides_nothing:
        problems.append(say("nothing to redact: give at least one region or one muted range"))
    if spec.method != "pixelate":
        problems.append(say("method {method}: only pixelate is built", method=repr(spec.method)))
    if spec.block < MIN_BLOCK:
        problems.append(say("a pixelation block of {block} px is too fine to hide a face; at least {min}",
                            block=spec.block, min=MIN_BLOCK))
    if (spec.boxes or spec.moving or spec.tracks) and (width is None or height is None):
        problems.append(say("the recording has no picture to hide a region of"))
    for n, box in enumerate(spec.boxes, 1):
        problems += _box_problems(n, box, width, height, duration_s)
    for n, moving in enumerate(spec.moving, 1):
        problems += _moving_problems(n, moving, width, height, duration_s)
    for n, track in enumerate(spec.tracks, 1):
        problems += _box_problems(n, Box(track.start_s, track.end_s, track.x, track.y, track.w, track.h), width,
                                  height, duration_s, tracked=True)
    count = (len(spec.boxes) + sum(m.box_count() for m in spec.moving)
             + sum(t.box_count(duration_s) for t in spec.tracks))
    if count > MAX_REGIONS:
        problems.append(say("{count} regions to draw (moving regions drawn every {step} s, tracked ones every "
                            "{track_step} s): at most {max} in one redaction; redact the recording in parts",
                            count=count, step=f"{KEYFRAME_STEP_S:g}", track_step=f"{TRACK_STEP_S:g}", max=MAX_REGIONS))
    for word, ranges in (("muted", spec.mutes), ("bleeped", spec.bleeps)):
        for n, mute in enumerate(ranges, 1):
            span = {"n": n, "start": f"{mute.start_s:g}", "end": f"{mute.end_s:g}"}
            what = say("muted range {n} ({start} s to {end} s)", **span) if word == "muted" else \
                say("bleeped range {n} ({start} s to {end} s)", **span)
            if not has_audio:
                problems.append(say("{what}: the recording has no sound", what=what))
            problems += _span_problems(what, mute.start_s, mute.end_s, duration_s)
    return problems


def _photo_problems(spec: RedactionSpec) -> list[Said]:
    """What a photo (no time) cannot take: a region with a time range, a moving region."""
    return ([say("region {n}: a photo has no time range; give X,Y,W,H", n=n) for n, box in enumerate(spec.boxes, 1)
             if box.start_s != 0 or box.end_s is not None]
            + [say("moving region {n}: a photo does not move; give X,Y,W,H", n=n)
               for n in range(1, len(spec.moving) + 1)]
            + [say("tracked region {n}: a photo does not move; give X,Y,W,H", n=n)
               for n in range(1, len(spec.tracks) + 1)])


def _moving_problems(n: int, moving: Moving, width: int | None, height: int | None,
                     duration_s: float | None) -> list[Said]:
    frames = moving.keyframes
    what = say("moving region {n} ({start} s to {end} s)", n=n, start=f"{frames[0].t_s:g}",
               end=f"{frames[-1].t_s:g}") if frames else say("moving region {n}", n=n)
    problems = []
    if len(frames) < 2:
        problems.append(say("{what}: it needs at least two keyframes", what=what))
    if any(b.t_s <= a.t_s for a, b in itertools.pairwise(frames)):
        problems.append(say("{what}: its keyframes must go forward in time", what=what))
    if frames and duration_s is not None and frames[0].t_s >= duration_s:
        problems.append(say("{what}: it starts after the recording ends ({end} s)", what=what, end=f"{duration_s:g}"))
    elif frames and duration_s is not None and frames[-1].t_s > duration_s + KEYFRAME_STEP_S:
        problems.append(say("{what}: its last keyframe is after the recording ends ({end} s)", what=what,
                            end=f"{duration_s:g}"))
    for k in frames:
        if k.w <= 0 or k.h <= 0:
            problems.append(say("{what}: the keyframe at {t} s has no area", what=what, t=f"{k.t_s:g}"))
        if k.x < 0 or k.y < 0 or (width is not None and height is not None
                                   and (k.x + k.w > width or k.y + k.h > height)):
            problems.append(say("{what}: the keyframe at {t} s ({x},{y},{w},{h}) lies outside the {width}×{height} "
                                "picture", what=what, t=f"{k.t_s:g}", x=k.x, y=k.y, w=k.w, h=k.h, width=width,
                                height=height))
    return problems
