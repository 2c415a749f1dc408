"""Redaction, what is built of it (issue 18, part 2): the specification parsed and checked (pure), and ffmpeg's
rendering of regions and muted ranges measured on real frames and real sound: inside a region every block is one
flat colour while it is hidden, the rest of the picture and the region outside its time stay within encoding error
of the original, a muted range measures as silence, and the original's bytes are untouched."""
from __future__ import annotations

import hashlib
import itertools
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from ingest.redaction import (
    Box,
    Mute,
    RedactionInvalid,
    RedactionSpec,
    parse_box,
    parse_mute,
    render_redaction,
    spec_problems,
)
from ingest.redaction.spec import BLEEP_HZ, KEYFRAME_STEP_S, Keyframe, Track, parse_moving, parse_time, parse_track

W, H = 320, 240


def test_a_specification_is_read_as_written() -> None:
    assert parse_box("1.5-2:10,20,30,40") == Box(1.5, 2.0, 10, 20, 30, 40)
    assert parse_box("00:01.5-01:02:00:0,0,16,16") == Box(1.5, 3720.0, 0, 0, 16, 16)
    assert parse_mute("0:05-0:07.25") == Mute(5.0, 7.25)
    assert parse_time("1:00:00") == 3600.0
    for bad, why in (("1-2", "needs START-END:X,Y,W,H"), ("1-2:1,2,3", "four whole numbers"),
                     ("2:1,2,3,4", "needs START-END"), ("a-2:1,2,3,4", "'a' is not a time"),
                     ("0:75-1:00:1,1,1,1", "75 seconds in a minute"),
                     ("0-" + "9" * 400 + ":1,1,1,1", "is not a time in a recording"),  # infinity, once parsed
                     ("0-10000001:1,1,1,1", "at most 1e+07 s")):
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_box(bad)


def test_every_problem_of_a_specification_is_named() -> None:
    spec = RedactionSpec(boxes=(Box(2, 1, 0, 0, 10, 10), Box(0, 1, 300, 200, 40, 40), Box(9, 10, 0, 0, 0, 5)),
                         mutes=(Mute(1, 2),), block=4)
    assert spec_problems(spec, width=W, height=H, duration_s=5.0, has_audio=False) == [
        "a pixelation block of 4 px is too fine to hide a face; at least 8",
        "region 1 (0,0,10,10 from 2 s to 1 s): it ends before it starts",
        "region 2 (300,200,40,40 from 0 s to 1 s): it lies outside the 320×240 picture",
        "region 3 (0,0,0,5 from 9 s to 10 s): it starts after the recording ends (5 s)",
        "region 3 (0,0,0,5 from 9 s to 10 s): it has no area",
        "muted range 1 (1 s to 2 s): the recording has no sound",
    ]
    assert spec_problems(RedactionSpec(), width=W, height=H, duration_s=1.0, has_audio=True) == [
        "nothing to redact: give at least one region or one muted range"]
    assert spec_problems(RedactionSpec(boxes=(Box(0, 1, 0, 0, 8, 8),)), width=None, height=None, duration_s=1.0,
                         has_audio=True) == ["the recording has no picture to hide a region of"]


def _frame(path: Path, at_s: float) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{at_s}", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(H, W).astype(np.float64)


def _max_volume(path: Path, start_s: float, length_s: float) -> float:
    done = subprocess.run(["ffmpeg", "-nostdin", "-ss", f"{start_s}", "-t", f"{length_s}", "-i", str(path), "-vn",
                           "-af", "volumedetect", "-f", "null", "-"], capture_output=True, text=True, check=True)
    found = re.search(r"max_volume: (-?[\d.]+|-inf) dB", done.stderr)
    assert found, done.stderr[-500:]
    return float(found.group(1)) if found.group(1) != "-inf" else float("-inf")


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_region_is_hidden_only_while_asked_and_a_muted_range_is_silent(tmp_path: Path) -> None:
    # Given a 3 s clip with a busy moving picture (a game of life: detail in every block) and a steady tone, as a
    # recorder writes them (H.264 + AAC in MP4)
    clip = tmp_path / "clip.mp4"
    picture = f"life=s={W}x{H}:rate=25:ratio=0.5:mold=0:seed=7,format=yuv420p,trim=duration=3"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", picture, "-f", "lavfi", "-i",
                    "sine=frequency=1000:duration=3", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", str(clip)], check=True)
    before = hashlib.sha256(clip.read_bytes()).hexdigest()
    box = Box(1.0, 2.0, 96, 64, 96, 96)
    spec = RedactionSpec(boxes=(box,), mutes=(Mute(0.5, 1.5),), block=16)
    # When it is redacted
    out = render_redaction(clip, tmp_path / "redacted.mp4", spec, width=W, height=H, duration_s=3.0, has_audio=True)
    # Then while the region is hidden, each 16 px block inside it is one flat colour (1 px left to the encoder at
    # each block edge), where the original has detail
    original, redacted = _frame(clip, 1.5), _frame(out, 1.5)
    inside = (slice(box.y, box.y + box.h), slice(box.x, box.x + box.w))
    blocks = [redacted[inside][r + 2:r + 14, c + 2:c + 14].std() for r in range(0, 96, 16) for c in range(0, 96, 16)]
    detail = [original[inside][r + 2:r + 14, c + 2:c + 14].std() for r in range(0, 96, 16) for c in range(0, 96, 16)]
    assert max(blocks) < 3.0 and np.mean(detail) > 15.0, (max(blocks), np.mean(detail))
    # and its fine structure is gone (variance of the Laplacian, the usual sharpness measure)
    sharp = cv2.Laplacian(original[inside], cv2.CV_64F).var()
    assert cv2.Laplacian(redacted[inside], cv2.CV_64F).var() < 0.2 * sharp
    # while the rest of the picture is the original within encoding error
    outside = np.ones((H, W), dtype=bool)
    outside[inside] = False
    assert np.abs(original - redacted)[outside].mean() < 3.0
    # and before the region's time it is not hidden
    assert np.abs(_frame(clip, 0.4) - _frame(out, 0.4)).mean() < 3.0
    # The muted range measures as silence; the tone is there outside it
    assert _max_volume(out, 0.6, 0.8) < -60.0
    assert _max_volume(out, 1.8, 0.8) > -20.0 and _max_volume(clip, 0.6, 0.8) > -20.0
    # The original is only read
    assert hashlib.sha256(clip.read_bytes()).hexdigest() == before


def test_a_specification_that_cannot_be_carried_out_runs_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "never.mp4"
    with pytest.raises(RedactionInvalid, match="lies outside the 320×240 picture"):
        render_redaction(tmp_path / "missing.mp4", dest, RedactionSpec(boxes=(Box(0, 1, 300, 0, 64, 64),)),
                         width=W, height=H, duration_s=3.0, has_audio=False)
    assert not dest.exists()


@pytest.mark.usefixtures("ffmpeg_available")
def test_thousands_of_regions_render(tmp_path: Path) -> None:
    # A long recording with faces is a region a second per face: 3,000 regions must neither overflow a command
    # line nor multiply the work per frame (they are looked up by time, not each tried at every frame)
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    f"life=s={W}x{H}:rate=25:ratio=0.5:mold=0:seed=7,format=yuv420p,trim=duration=2",
                    "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(clip)], check=True)
    many = tuple(Box(round(n * 0.0006, 4), round(n * 0.0006 + 0.05, 4), (n * 16) % (W - 16), 0, 16, 16)
                 for n in range(3000))
    single = (Box(0.0, 2.0, 96, 64, 96, 96),)
    for boxes in (single, many):  # (what each costs: bench/redact_faces.py)
        out = render_redaction(clip, tmp_path / f"out-{len(boxes)}.mp4", RedactionSpec(boxes=boxes), width=W,
                               height=H, duration_s=2.0, has_audio=False)
        assert _frame(out, 1.0).shape == (H, W)
    # the top row of cells is hidden while its regions last; the region of the single run is not there
    hidden = _frame(tmp_path / "out-3000.mp4", 0.9)[0:16, 0:W - 16]
    assert max(hidden[2:14, c + 2:c + 14].std() for c in range(0, W - 32, 16)) < 3.0


def test_a_moving_region_is_covered_wherever_it_is_between_keyframes() -> None:
    # Given a plate that crosses the frame and grows as the car comes closer, keyframed at 0 s, 1.3 s and 2 s
    moving = parse_moving("0:10,100,40,20; 1.3:150,90,60,30;00:02:300,80,16,16")
    assert moving.keyframes[1] == Keyframe(1.3, 150, 90, 60, 30)
    boxes = moving.boxes()
    # Then at every instant between the first and last keyframe, the interpolated region lies inside a box drawn
    # at that instant (sampled finely, keyframe times and step edges included)
    frames = moving.keyframes
    for n in range(2001):
        t = 2.0 * n / 2000
        a, b = next((a, b) for a, b in itertools.pairwise(frames) if a.t_s <= t <= b.t_s)
        f = (t - a.t_s) / (b.t_s - a.t_s)
        x, y = a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f
        w, h = a.w + (b.w - a.w) * f, a.h + (b.h - a.h) * f
        assert any(box.start_s <= t <= box.end_s and box.x <= x and box.y <= y and x + w <= box.x + box.w
                   and y + h <= box.y + box.h for box in boxes if box.end_s is not None), t
    # and no box is much larger than the region where it is drawn: a step is at most KEYFRAME_STEP_S long, so a
    # box is at most the widest region plus the fastest move in one step (150 px in 0.7 s) wide
    assert all(box.end_s is not None and box.end_s - box.start_s <= KEYFRAME_STEP_S + 1e-9 for box in boxes)
    assert max(box.w for box in boxes) <= 60 + 150 / 0.7 * KEYFRAME_STEP_S + 1
    # Nothing is hidden before the first keyframe or after the last
    assert min(box.start_s for box in boxes) == 0.0 and max(box.end_s or 0 for box in boxes) == 2.0


def test_a_moving_region_and_a_bleep_are_checked_like_the_rest() -> None:
    for bad, why in (("1:1,1,1,1", "at least two keyframes"), ("1:1,1,1,1;2-1,1,1,1", "needs T:X,Y,W,H"),
                     ("1:1,1,1;2:1,1,1,1", "four whole numbers"), ("x:1,1,1,1;2:1,1,1,1", "'x' is not a time")):
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_moving(bad)
    spec = RedactionSpec(moving=(parse_moving("2:0,0,10,10;1:300,0,40,40;9:0,0,0,5"),), bleeps=(Mute(1, 2),))
    assert spec_problems(spec, width=W, height=H, duration_s=5.0, has_audio=False) == [
        "moving region 1 (2 s to 9 s): its keyframes must go forward in time",
        "moving region 1 (2 s to 9 s): its last keyframe is after the recording ends (5 s)",
        "moving region 1 (2 s to 9 s): the keyframe at 1 s (300,0,40,40) lies outside the 320×240 picture",
        "moving region 1 (2 s to 9 s): the keyframe at 9 s has no area",
        "bleeped range 1 (1 s to 2 s): the recording has no sound",
    ]
    assert spec_problems(RedactionSpec(moving=(parse_moving("0:0,0,8,8;1:8,8,8,8"),)), width=W, height=H,
                         duration_s=None, has_audio=False, photo=True) == [
        "moving region 1: a photo does not move; give X,Y,W,H"]
    # a bleep alone is something to redact
    assert spec_problems(RedactionSpec(bleeps=(Mute(0, 1),)), width=W, height=H, duration_s=5.0,
                         has_audio=True) == []


def _spectrum_peak(path: Path, start_s: float, length_s: float) -> tuple[float, float]:
    """(the loudest frequency in Hz, its share of the energy) of *path*'s sound from *start_s*, mixed to mono."""
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{start_s}", "-t", f"{length_s}", "-i",
                          str(path), "-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"], capture_output=True,
                         check=True).stdout
    samples = np.frombuffer(raw, dtype=np.int16).astype(np.float64)
    power = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / 16000)
    peak = int(power.argmax())
    near = (freqs > freqs[peak] - 20) & (freqs < freqs[peak] + 20)
    return float(freqs[peak]), float(power[near].sum() / power.sum())


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_moving_region_follows_its_keyframes_and_a_bleep_replaces_the_sound(tmp_path: Path) -> None:
    # Given a 3 s clip with a busy picture and a voice-band tone (440 Hz) in stereo
    clip = tmp_path / "clip.mp4"
    picture = f"life=s={W}x{H}:rate=25:ratio=0.5:mold=0:seed=3,format=yuv420p,trim=duration=3"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", picture, "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=3", "-ac", "2", "-c:v", "libx264", "-crf", "18", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", "-shortest", str(clip)], check=True)
    # When a 64 px region moving from the left edge to x=224 between 0.5 s and 2.5 s is hidden and 1-2 s bleeped
    spec = RedactionSpec(moving=(parse_moving("0.5:0,80,64,64;2.5:224,80,64,64"),), bleeps=(Mute(1.0, 2.0),))
    out = render_redaction(clip, tmp_path / "redacted.mp4", spec, width=W, height=H, duration_s=3.0, has_audio=True)
    # Then at 1.5 s the region is where the keyframes put it (x=112) and each of its 16 px cells is flat
    original, redacted = _frame(clip, 1.5), _frame(out, 1.5)
    cells = [redacted[80 + r + 2:80 + r + 14, c + 2:c + 14].std() for r in range(0, 64, 16)
             for c in range(112, 176, 16)]
    detail = [original[80 + r + 2:80 + r + 14, c + 2:c + 14].std() for r in range(0, 64, 16)
              for c in range(112, 176, 16)]
    assert max(cells) < 3.0 and np.mean(detail) > 15.0, (max(cells), np.mean(detail))
    # and where it was at the start (x 0-64) the picture is the original again
    assert np.abs(original[80:144, 0:48] - redacted[80:144, 0:48]).mean() < 3.0
    # before the first keyframe and after the last nothing is hidden
    for at in (0.2, 2.8):
        assert np.abs(_frame(clip, at) - _frame(out, at)).mean() < 3.0
    # The bleeped range is a 1 kHz tone, the voice gone; outside it the voice is there as it was
    tone, share = _spectrum_peak(out, 1.2, 0.6)
    assert abs(tone - BLEEP_HZ) < 10 and share > 0.9, (tone, share)
    voice, _ = _spectrum_peak(out, 2.2, 0.6)
    assert abs(voice - 440) < 10 and abs(_spectrum_peak(clip, 1.2, 0.6)[0] - 440) < 10
    assert subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=channels",
                           "-of", "csv=p=0", str(out)], capture_output=True, text=True,
                          check=True).stdout.strip() == "2"


def test_a_specification_written_as_lines_reads_back_the_same() -> None:
    spec = RedactionSpec(boxes=(parse_box("1.5-2.25:10,20,30,40"), parse_box("0,0,16,16"), Box(3.0, None, 1, 2, 3, 4)),
                         moving=(parse_moving("0.5:0,80,64,64;2.5:224,80,64,64;3:0,0,8,8"),),
                         mutes=(parse_mute("0.5-1.5"),), bleeps=(parse_mute("1-2.125"),), block=24,
                         tracks=(parse_track("0.25-2.5:40,50,60,70"),))
    lines = spec.as_lines()
    assert lines["tracks"] == ["0.25-2.5:40,50,60,70"]
    assert lines["boxes"][:2] == ["1.5-2.25:10,20,30,40", "0,0,16,16"]
    again = RedactionSpec(boxes=tuple(parse_box(b) for b in lines["boxes"]),
                          moving=tuple(parse_moving(m) for m in lines["moving"]),
                          mutes=tuple(parse_mute(m) for m in lines["mutes"]),
                          bleeps=tuple(parse_mute(b) for b in lines["bleeps"]), block=24,
                          tracks=tuple(parse_track(t) for t in lines["tracks"]))
    assert again.tracks == spec.tracks
    # a region to the end reads back as one to the latest time a range may name: the same frames hidden
    assert again.boxes[2] == Box(3.0, 1e7, 1, 2, 3, 4)
    assert (again.boxes[:2], again.moving, again.mutes, again.bleeps) == (spec.boxes[:2], spec.moving, spec.mutes,
                                                                          spec.bleeps)
    # and the JSON a queued job keeps reads back whole
    assert RedactionSpec.from_json(spec.as_json()) == spec


def test_a_tracked_region_is_read_and_checked_like_the_rest() -> None:
    assert parse_track("1-2.5:10,20,30,40") == Track(1.0, 2.5, 10, 20, 30, 40)
    for bad, why in (("10,20,30,40", "needs START-END:X,Y,W,H"), ("1:10,20,30,40", "needs START-END"),
                     ("1-2:10,20,30", "four whole numbers"), ("x-2:1,1,1,1", "'x' is not a time")):
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_track(bad)
    spec = RedactionSpec(tracks=(Track(2, 1, 0, 0, 10, 10), Track(0, 1, 300, 0, 40, 40), Track(9, 10, 0, 0, 8, 8)))
    assert spec_problems(spec, width=W, height=H, duration_s=5.0, has_audio=False) == [
        "tracked region 1 (0,0,10,10 from 2 s to 1 s): it ends before it starts",
        "tracked region 2 (300,0,40,40 from 0 s to 1 s): it lies outside the 320×240 picture",
        "tracked region 3 (0,0,8,8 from 9 s to 10 s): it starts after the recording ends (5 s)",
    ]
    assert spec_problems(RedactionSpec(tracks=(Track(0, 1, 0, 0, 8, 8),)), width=W, height=H, duration_s=None,
                         has_audio=False, photo=True)[0] == "tracked region 1: a photo does not move; give X,Y,W,H"
    # a tracked region alone is something to redact; an hour of one counts its keyframes against the limit
    assert spec_problems(RedactionSpec(tracks=(Track(0, 4, 0, 0, 8, 8),)), width=W, height=H, duration_s=5.0,
                         has_audio=False) == []
    long = spec_problems(RedactionSpec(tracks=(Track(0, 3600, 0, 0, 8, 8),) * 3), width=W, height=H,
                         duration_s=4000.0, has_audio=False)
    assert long == ["144003 regions to draw (moving regions drawn every 0.2 s, tracked ones every 0.075 s): at most "
                    "100000 in one redaction; redact the recording in parts"]
    # what a queued job keeps reads back whole, and a time that is no number is refused
    assert RedactionSpec.from_json(spec.as_json()) == spec
    broken = {**spec.as_json(), "tracks": [{"start_s": "nan", "end_s": 1, "x": 0, "y": 0, "w": 8, "h": 8}]}
    with pytest.raises(RedactionInvalid, match="not a finite number"):
        RedactionSpec.from_json(broken)
    # numbers edited behind the application's back: true is no width, 9.9 is no pixel (not read as 9)
    edits: list[dict[str, object]] = [{"w": True}, {"x": 9.9}, {"h": "8"}]
    for edit in edits:
        edited = {**spec.as_json(), "tracks": [{"start_s": 0, "end_s": 1, "x": 0, "y": 0, "w": 8, "h": 8, **edit}]}
        with pytest.raises(RedactionInvalid, match="a whole number of pixels was expected"):
            RedactionSpec.from_json(edited)
    # a region left of or above the picture is outside it, as one past its right or bottom edge is
    assert spec_problems(RedactionSpec(tracks=(Track(0, 1, -5, 0, 8, 8),), boxes=(Box(0, 1, 0, -1, 8, 8),)),
                         width=W, height=H, duration_s=5.0, has_audio=False) == [
        "region 1 (0,-1,8,8 from 0 s to 1 s): it lies outside the 320×240 picture",
        "tracked region 1 (-5,0,8,8 from 0 s to 1 s): it lies outside the 320×240 picture"]
    # a span asked past the end counts to the end: what is followed
    assert spec_problems(RedactionSpec(tracks=(Track(0, 99999, 0, 0, 8, 8),)), width=W, height=H, duration_s=10.0,
                         has_audio=False) == []
