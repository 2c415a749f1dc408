"""What a redaction hides, as plain values: regions of the picture over a time range and ranges of the sound.
Parsing and checking against the recording are pure; the specification goes whole into the derivative's signed
manifest (`as_json`), so anyone can see what was hidden, where and when.

`--box START-END:X,Y,W,H` (times in seconds or [HH:]MM:SS[.fff], the region in pixels of the original frame; a bare
`X,Y,W,H` hides the region for the whole recording, or on a photo) and `--mute START-END`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_TIME_S", "MIN_BLOCK", "Box", "Mute", "RedactionInvalid", "RedactionSpec", "parse_box", "parse_mute",
           "parse_time", "spec_problems"]

#: The smallest pixelation block (pixels of the original frame): a region is shrunk so that each block becomes one
#: pixel and drawn back; what was inside a block cannot be recovered from it.
MIN_BLOCK = 8
#: The latest time a range may name (115 days: longer than any recording a device writes).
MAX_TIME_S = 10_000_000.0

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
    parts = region.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"box {text!r}: the region must be four whole numbers X,Y,W,H")
    x, y, w, h = (int(p) for p in parts)
    return Box(start, end, x, y, w, h)


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

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "block": self.block, "boxes": [b.as_json() for b in self.boxes],
                "mutes": [m.as_json() for m in self.mutes], **self.extra}


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
    if width is not None and height is not None and (box.x + box.w > width or box.y + box.h > height):
        problems.append(f"{what}: it lies outside the {width}×{height} picture")
    return problems


def spec_problems(spec: RedactionSpec, *, width: int | None, height: int | None, duration_s: float | None,
                  has_audio: bool, photo: bool = False) -> list[str]:
    """Everything in *spec* that cannot be carried out on a recording of this size, length and sound, or on a
    *photo* (no time, no sound) (empty: it can). Pure."""
    problems = []
    if photo:
        problems += [f"region {n}: a photo has no time range; give X,Y,W,H" for n, box in enumerate(spec.boxes, 1)
                     if box.start_s != 0 or box.end_s is not None]
    if not spec.boxes and not spec.mutes:
        problems.append("nothing to redact: give at least one region or one muted range")
    if spec.method != "pixelate":
        problems.append(f"method {spec.method!r}: only pixelate is built")
    if spec.block < MIN_BLOCK:
        problems.append(f"a pixelation block of {spec.block} px is too fine to hide a face; at least {MIN_BLOCK}")
    if spec.boxes and (width is None or height is None):
        problems.append("the recording has no picture to hide a region of")
    for n, box in enumerate(spec.boxes, 1):
        problems += _box_problems(n, box, width, height, duration_s)
    for n, mute in enumerate(spec.mutes, 1):
        what = f"muted range {n} ({mute.start_s:g} s to {mute.end_s:g} s)"
        if not has_audio:
            problems.append(f"{what}: the recording has no sound")
        problems += _span_problems(what, mute.start_s, mute.end_s, duration_s)
    return problems
