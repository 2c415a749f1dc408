"""Regions followed by the tracker (`--track`), on a real photograph: scikit-image's `astronaut()` (NASA, public
domain). A body camera turns past a person: the face is given where it is at the start, and wherever the detector
finds it later in the original, the tracked region covers it, the copy hides it, and the rest of the picture is the
original within encoding error. A region the tracker has nothing to follow in is held, grown, and the loss named;
read through a URL (an S3 store's presigned one) it is followed as from the file."""
from __future__ import annotations

import ctypes
import hashlib
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from catalog.types import utcnow
from ingest.redaction import RedactionSpec, render_redaction
from ingest.redaction.faces import _detect
from ingest.redaction.spec import Box, Track
from ingest.redaction.tracking import LOST_GROWTH, TRACK_PAD, Followed, follow_region, follow_tracks, tracker_name
from tests.ingest.test_redaction_faces import _photographs

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

W, H = 480, 360


def _astronaut_pan(tmp_path: Path, speed: int) -> Path:
    """3 s at 25 fps panning across the astronaut at *speed* px a second (of a 720 px picture)."""
    still = tmp_path / "astronaut.png"
    cv2.imwrite(str(still), cv2.cvtColor(_photographs().astronaut(), cv2.COLOR_RGB2BGR))
    clip = tmp_path / f"pan{speed}.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-loop", "1", "-framerate", "25", "-i", str(still),
                    "-f", "lavfi", "-i", "sine=frequency=800:duration=3", "-vf",
                    f"scale=720:720,crop={W}:{H}:x='t*{speed}':y=20,format=yuv420p", "-t", "3", "-c:v", "libx264",
                    "-crf", "18", "-c:a", "aac", "-shortest", str(clip)], check=True)
    return clip


def _rgb(path: Path, at_s: float) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{at_s}", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(H, W, 3)


def _face(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    found = _detect(rgb, 0.3, 1.0)
    return tuple(round(v) for v in found[0][:4]) if found else None  # type: ignore[return-value]


def _covered(regions: tuple[Box, ...], at_s: float, face: tuple[int, int, int, int]) -> bool:
    """Whether one region shown at *at_s* holds the whole of *face* (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = face
    return any(b.start_s <= at_s <= (b.end_s if b.end_s is not None else at_s) and b.x <= x1 and b.y <= y1
               and x2 <= b.x + b.w and y2 <= b.y + b.h for b in regions)


@pytest.mark.parametrize("speed", [60, 150], ids=["turning", "turning-fast"])
def test_a_face_given_once_is_followed_and_hidden_wherever_it_goes(tmp_path: Path, speed: int) -> None:
    # Given a clip turning past a person, and where the face is at the start (as a reviewer draws it)
    clip = _astronaut_pan(tmp_path, speed)
    start = _face(_rgb(clip, 0.0))
    assert start is not None
    x1, y1, x2, y2 = start
    # When the region is tracked from 0 s to 2.9 s and the copy rendered
    spec = follow_tracks(clip, RedactionSpec(tracks=(Track(0.0, 2.9, x1, y1, x2 - x1, y2 - y1),)), width=W,
                         height=H, timeout_s=120)
    # Then the specification holds what was asked, the tracker, and every keyframe it found, as a moving region
    record = spec.extra["tracking"]
    assert spec.tracks == () and len(spec.moving) == 1 and record["tracker"] == tracker_name()
    assert record["followed"][0]["asked"] == {"start_s": 0.0, "end_s": 2.9, "x": x1, "y": y1, "w": x2 - x1,
                                              "h": y2 - y1}
    assert record["followed"][0]["lost_at_s"] is None and record["followed"][0]["keyframes"] >= 29
    keyframes = spec.moving[0].keyframes
    assert (keyframes[0].t_s, keyframes[-1].t_s) == (0.0, 2.9)
    out = render_redaction(clip, tmp_path / "redacted.mp4", spec, width=W, height=H, duration_s=3.0, has_audio=True)
    regions = spec.regions()
    for at in (0.35, 1.15, 1.95, 2.75):  # between the tracker's pictures too
        original, redacted = _rgb(clip, at), _rgb(out, at)
        face = _face(original)
        assert face is not None, at
        # wherever the detector finds the face in the original, a tracked region holds it, and in the copy the
        # same detector finds no face
        assert _covered(regions, at, face), (at, face, [k for k in keyframes if abs(k.t_s - at) < 0.1])
        assert _face(redacted) is None, at
        # the region is not the whole picture: far from the face the copy is the original
        far = np.ones((H, W), dtype=bool)
        for b in regions:
            if b.start_s <= at <= (b.end_s or at):
                far[max(0, b.y - 4):b.y + b.h + 4, max(0, b.x - 4):b.x + b.w + 4] = False
        assert far.mean() > 0.6
        difference = np.abs(original.astype(np.int16) - redacted.astype(np.int16))[far]
        assert difference.mean() < 2.0, (at, difference.mean())


def test_a_region_with_nothing_to_follow_it_in_is_held_grown_and_the_loss_named(tmp_path: Path) -> None:
    # Given a 3 s clip (its length not known to the catalogue) and a region to follow from 2.95 s to 6 s (a time
    # typed past the pictures' end)
    clip = _astronaut_pan(tmp_path, 60)
    followed = follow_region(clip, Track(2.95, 6.0, 200, 100, 80, 80), width=W, height=H, timeout_s=60)
    # Then it is said lost where it starts, and the region asked, grown, is hidden to the end of the span
    assert followed.lost_at_s == 2.95 and followed.pictures <= 1
    first, last = followed.moving.keyframes[0], followed.moving.keyframes[-1]
    grow = TRACK_PAD + LOST_GROWTH
    # (with the recording's length known, to its end: a copy's keyframes never go past the pictures)
    assert follow_region(clip, Track(2.95, 6.0, 200, 100, 80, 80), width=W, height=H, timeout_s=60,
                         duration_s=3.0).moving.keyframes[-1].t_s == 3.0
    assert (first.t_s, last.t_s) == (2.95, 6.0) and (first.x, first.y, first.w, first.h) == (last.x, last.y, last.w,
                                                                                             last.h)
    assert (first.x, first.y) == (200 - round(80 * grow), 100 - round(80 * grow))
    assert (first.w, first.h) == (80 + 2 * round(80 * grow), 80 + 2 * round(80 * grow))


def test_a_region_in_a_recording_read_by_url_is_followed_as_from_the_file(tmp_path: Path, s3_store) -> None:
    # Given the clip in the S3 WORM store, read by a presigned URL (not sought: the frames before the start are
    # decoded and dropped)
    clip = _astronaut_pan(tmp_path, 60)
    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    s3_store.put_file(clip, sha256=sha, size_bytes=clip.stat().st_size, retain_until=utcnow() + timedelta(days=1))
    track = Track(1.05, 2.5, 190, 75, 130, 150)  # off the tracker's grid of tenths
    from_file = follow_region(clip, track, width=W, height=H, timeout_s=60)
    with s3_store.read_in_place(sha, valid_s=120) as url:
        assert str(url).startswith("http")
        from_url = follow_region(url, track, width=W, height=H, timeout_s=60)
    # Then the keyframes are at the same times, and at the same places to a few pixels (a tenth of a second falls
    # between two of the clip's frames: which of them is sampled may differ)
    assert [k.t_s for k in from_url.moving.keyframes] == [k.t_s for k in from_file.moving.keyframes]
    assert from_file.moving.keyframes[0].t_s == 1.05 and from_file.moving.keyframes[-1].t_s == 2.5
    assert max(abs(a.x - b.x) + abs(a.y - b.y) for a, b in zip(from_url.moving.keyframes,
                                                                from_file.moving.keyframes, strict=True)) <= 4
    # and the region moved with the picture (60 px a second to the left: 87 px in 1.45 s)
    assert 67 <= from_file.moving.keyframes[0].x - from_file.moving.keyframes[-1].x <= 107


def _square_clip(path: Path, *, video_late_s: float = 0.0, extra: tuple[str, ...] = ()) -> Path:
    """4 s of a textured 40 px square (ffmpeg's test pattern) moving right at 80 px a second (x = 10 + 80 t of the
    pictures' own time) on black, 320×240 at 25 fps, with sound from 0; its pictures start *video_late_s* after
    the sound (an edit list: the MP4 says so, no picture is made up for the gap)."""
    video = path.with_suffix(".video.mkv")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "color=black:s=320x240:r=25:d=4",
                    "-f", "lavfi", "-i", "testsrc=s=40x40:r=25:d=4", "-filter_complex",
                    "[0][1]overlay=x='10+80*t':y=100,format=yuv420p[v]", "-map", "[v]", "-c:v", "libx264", "-crf",
                    "18", str(video)], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *(["-itsoffset", f"{video_late_s}"] if video_late_s
                                                                  else []),
                    "-i", str(video), "-f", "lavfi", "-i", "sine=d=4.5", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                    "-c:a", "aac", *extra, str(path)], check=True)
    return path


@pytest.mark.parametrize("kind", ["video-late-by-url", "transport-stream-file"])
def test_each_keyframe_is_where_the_thing_is_at_its_time(tmp_path: Path, s3_store, kind: str) -> None:
    # Given a square moving at a known speed in a clip whose pictures start half a second after its sound (read by
    # the S3 store's presigned URL), or in an MPEG-TS with a keyframe every 2 s (read from the file): a review found
    # keyframes labelled by counting pictures from the start asked, 0.5 s and 1 s off the pictures they came from
    if kind == "video-late-by-url":
        clip, late, start = _square_clip(tmp_path / "late.mp4", video_late_s=0.5), 0.5, 0.0
    else:
        clip, late, start = _square_clip(tmp_path / "gop.ts", extra=("-g", "50", "-f", "mpegts")), 0.0, 1.0
    track = Track(start, 3.4, round(10 + 80 * max(start - late, 0)), 100, 40, 40)
    if kind == "video-late-by-url":
        sha = hashlib.sha256(clip.read_bytes()).hexdigest()
        s3_store.put_file(clip, sha256=sha, size_bytes=clip.stat().st_size, retain_until=utcnow() + timedelta(days=1))
        with s3_store.read_in_place(sha, valid_s=120) as url:
            followed = follow_region(url, track, width=320, height=240, timeout_s=60)
    else:
        followed = follow_region(clip, track, width=320, height=240, timeout_s=60)
    # Then every keyframe the tracker found holds the square where it is at that keyframe's time
    found = [k for k in followed.moving.keyframes[1:] if late + 0.1 < k.t_s < 3.4]
    assert len(found) >= 25 and followed.lost_at_s is None
    for k in found:
        x = 10 + 80 * (k.t_s - late)
        assert k.x - 2 <= x and x + 40 <= k.x + k.w + 2 and k.y <= 100 and k.y + k.h >= 140, (k, x)


@pytest.mark.parametrize("region", [(100, 100, 4, 4), (100, 100, 1, 40), (100, 20, 1, 200), (0, 0, 320, 240),
                                    (0, 0, 160, 240)], ids=["4x4", "1x40", "1x200", "whole-picture", "full-height"])
def test_a_region_too_small_or_too_large_for_the_tracker_is_followed_not_hung(tmp_path: Path, region) -> None:
    # A review found MIL spinning for ever on a patch of 5 px or less (one clerk's request had blocked the
    # renderer and every job behind it), running out of memory on a 1-pixel-wide one, and refusing one as large as
    # the picture with an OpenCV assertion. Run where a hang is caught: a thread, given a minute.
    clip = _square_clip(tmp_path / "clip.mp4")
    x, y, w, h = region
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(follow_region(
        clip, Track(0.5, 2.0, x, y, w, h), width=320, height=240, timeout_s=60)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the tracker hung"
    [followed] = result
    assert isinstance(followed, Followed) and followed.moving.keyframes[-1].t_s == 2.0
    # the region asked is hidden from where it starts, whatever patch the tracker looked at
    first = followed.moving.keyframes[0]
    assert first.x <= x and first.y <= y and x + w <= first.x + first.w and y + h <= first.y + first.h


def test_tracks_are_never_drawn_unfollowed(tmp_path: Path) -> None:
    clip = _square_clip(tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="1 region\\(s\\) to track are not followed yet"):
        render_redaction(clip, tmp_path / "never.mp4", RedactionSpec(tracks=(Track(0.5, 2.0, 10, 100, 40, 40),)),
                         width=320, height=240, duration_s=4.0, has_audio=True)
    assert not (tmp_path / "never.mp4").exists()


def test_the_same_region_followed_again_in_the_same_process_gives_the_same_keyframes(tmp_path: Path) -> None:
    # CI's run on 1790961 failed the keyframe test above on one order of the suite: OpenCV's MIL draws from the C
    # library's rand(), which cv2.setRNGSeed does not seed, so each call in a process followed the square as the
    # calls before it had left rand() (up to 20 px apart; some lagged a step behind it). The documentation promised
    # the same keyframes for the same recording and region: a worker making a copy again gave another copy.
    clip = _square_clip(tmp_path / "clip.mp4", video_late_s=0.5)
    track = Track(0.0, 3.0, 10, 100, 40, 40)
    libc = ctypes.CDLL(None)

    def follow() -> tuple[object, ...]:
        return follow_region(clip, track, width=320, height=240, timeout_s=60).moving.keyframes

    first = follow()
    # Given whatever else in the process drew from rand() since (another library, another tracker)
    for draws in (1, 7, 1000):
        for _ in range(draws):
            libc.rand()
        assert follow() == first, draws
    # and trackers run on two threads at once (a worker's actor threads)
    results: list[tuple[object, ...]] = []
    threads = [threading.Thread(target=lambda: results.append(follow())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [first, first]


def test_a_region_waiting_behind_another_gives_up_within_its_own_time(tmp_path: Path) -> None:
    # One region is followed at a time in a process; a review found a job queued behind a long one waiting past its
    # own limit (a 3 s budget took 20.5 s), shown as "tracking" all along. Given another region being followed
    from ingest.derive import FfmpegRefused
    from ingest.redaction import tracking

    clip = _square_clip(tmp_path / "clip.mp4")
    assert tracking._ONE_AT_A_TIME.acquire(timeout=60)
    try:
        # When a region is asked with 1.5 s to do it in, then it is refused in about that time, saying why
        started = time.monotonic()
        with pytest.raises(FfmpegRefused, match=r"another region was being followed in this process for longer "
                                                r"than 1\.5 s"):
            follow_region(clip, Track(0.0, 1.0, 10, 100, 40, 40), width=320, height=240, timeout_s=1.5)
        assert time.monotonic() - started < 10
    finally:
        tracking._ONE_AT_A_TIME.release()
    # and once the other is done, it is followed
    assert follow_region(clip, Track(0.0, 1.0, 10, 100, 40, 40), width=320, height=240, timeout_s=60).lost_at_s is None
