"""The redaction's renderer attacked where it is new (ingest.redaction.render, matroska, cells): a decoder and an
encoder with this process between them, passing raw pictures in Matroska.

What could go wrong there and is tried here: a phone's variable frame rate flattened (frames moved in time, so a
region lands on the wrong frame); a picture of odd size (4:2:0 chroma rounding, cells at the edge); the original's
place and time tags carried into a copy that is to be published; a damaged original; either ffmpeg killed from
outside half-way; a job taken over half-way (no ffmpeg left running); and the stream reader fed a cut or foreign
stream."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ingest.derive import FfmpegRefused
from ingest.errors import RenderInterrupted
from ingest.redaction import Box, Mute, RedactionSpec, render_redaction
from ingest.redaction.matroska import MatroskaUnexpected, pass_frames
from ingest.redaction.render import FramePixelator

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def _frame_times(path: Path) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    return [float(line.strip(",")) for line in out.split() if line.strip(",")]


def _gray_frames(path: Path, width: int, height: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode",
                          "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True,
                         check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width).astype(np.int16)


def _busy_clip(path: Path, *, size: str = "320x240", seconds: float = 2.0, audio: bool = True,
               extra: tuple[str, ...] = ()) -> Path:
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
            f"life=s={size}:rate=25:ratio=0.5:mold=0:seed=3,format=yuv420p,trim=duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=700:duration={seconds}", "-c:a", "aac", "-shortest"]
    subprocess.run([*args, "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", *extra, str(path)], check=True)
    return path


def test_a_phone_s_variable_frame_rate_is_kept_and_a_region_lands_on_its_frames(tmp_path: Path) -> None:
    # Given a phone's clip whose frames come at uneven times (30 fps slowing to 10 fps, as a phone in low light
    # writes), with a location and a creation time
    steady = _busy_clip(tmp_path / "steady.mp4")
    clip = tmp_path / "VID_20261120_140600.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(steady), "-vf",
                    "setpts='if(lt(N,25),N/30,25/30+(N-25)/10)/TB'", "-fps_mode", "vfr", "-enc_time_base:v", "1:90000",
                    "-c:a", "copy", "-c:v", "libx264",
                    "-crf", "18", "-metadata", "location=+31.2304+121.4737/", "-metadata",
                    "creation_time=2026-11-20T14:06:00Z", str(clip)], check=True)
    times = _frame_times(clip)
    assert len(times) == 50 and abs((times[30] - times[29]) - 0.1) < 0.002  # uneven, as the phone wrote it
    # When a region is hidden from the 30th frame to the 35th by time
    box = Box(round(times[29] - 0.01, 3), round(times[34] + 0.01, 3), 64, 48, 96, 96)
    out = render_redaction(clip, tmp_path / "redacted.mp4", RedactionSpec(boxes=(box,)), width=320, height=240,
                           duration_s=times[-1] + 0.1, has_audio=True)
    # Then the copy has every frame at its original time, to the millisecond
    copied = _frame_times(out)
    assert len(copied) == len(times)
    assert max(abs(a - b) for a, b in zip(times, copied, strict=True)) < 0.0015
    # and the region is hidden on exactly those frames: flat cells inside, the original around it
    original, redacted = _gray_frames(clip, 320, 240), _gray_frames(out, 320, 240)
    inside = (slice(48 + 16, 48 + 80), slice(64 + 16, 64 + 80))  # whole cells, away from the edges
    for n in range(50):
        hidden = all(redacted[n][inside][r + 2:r + 14, c + 2:c + 14].std() < 3.0
                     for r in range(0, 64, 16) for c in range(0, 64, 16))
        assert hidden == (29 <= n <= 34), n
        outside = np.ones((240, 320), dtype=bool)
        outside[48:144, 64:160] = False
        assert np.abs(original[n] - redacted[n])[outside].mean() < 3.0, n
    # and a copy that only mutes sound (one ffmpeg, no region) keeps the frames' times too
    muted = render_redaction(clip, tmp_path / "muted.mp4", RedactionSpec(mutes=(Mute(0.0, 0.5),)), width=320,
                             height=240, duration_s=times[-1] + 0.1, has_audio=True)
    assert [round(t, 2) for t in _frame_times(muted)] == [round(t, 2) for t in times]
    # and neither the place nor the time of the original went into the copy
    tags = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags:stream_tags", "-of",
                                      "json", str(out)], capture_output=True, text=True, check=True).stdout)
    text = json.dumps(tags)
    assert "31.2304" not in text and "2026-11-20" not in text, text


def test_a_picture_of_odd_size_is_hidden_to_its_edges(tmp_path: Path) -> None:
    # Given a 321×241 clip (a cropped export; 4:2:0 chroma rounds up) and a region at the bottom right corner
    clip = _busy_clip(tmp_path / "odd.mkv", size="321x241", audio=False, extra=("-pix_fmt", "yuv444p"))
    box = Box(0.0, None, 241, 161, 80, 80)
    out = render_redaction(clip, tmp_path / "redacted.mp4", RedactionSpec(boxes=(box,)), width=321, height=241,
                           duration_s=2.0, has_audio=False)
    # Then the copy is padded to 322×242 (H.264 4:2:0) with nothing moved, and the corner is flat cells
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                       "stream=width,height", "-of", "json", str(out)], capture_output=True,
                                      text=True, check=True).stdout)["streams"][0]
    assert (probe["width"], probe["height"]) == (322, 242)
    redacted = _gray_frames(out, 322, 242)[10, :241, :321]
    original = _gray_frames(clip, 321, 241)[10]
    corner = redacted[161:241, 241:321]
    detail = original[161:241, 241:321]
    assert np.mean([corner[r:r + 8, c:c + 8].std() for r in range(0, 72, 16) for c in range(0, 72, 16)]) < 6.0
    assert np.mean([detail[r:r + 8, c:c + 8].std() for r in range(0, 72, 16) for c in range(0, 72, 16)]) > 30.0
    assert np.abs(original - redacted)[:150, :230].mean() < 3.0


def test_a_damaged_original_is_refused_by_name(tmp_path: Path) -> None:
    clip = _busy_clip(tmp_path / "clip.mp4")
    damaged = tmp_path / "DAMAGED_0007.MP4"
    data = bytearray(clip.read_bytes())
    damaged.write_bytes(bytes(data[:len(data) // 3]) + bytes(range(256)) * 64)  # cut, garbage after
    with pytest.raises((FfmpegRefused, RenderInterrupted)) as raised:
        render_redaction(damaged, tmp_path / "redacted.mp4", RedactionSpec(boxes=(Box(0.0, None, 0, 0, 64, 64),)),
                         width=320, height=240, duration_s=2.0, has_audio=True)
    assert isinstance(raised.value, FfmpegRefused) and "DAMAGED_0007.MP4" in str(raised.value)


def _children(name_part: str) -> list[int]:
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if name_part in cmdline:
                pids.append(int(pid))
    return pids


@pytest.mark.parametrize("which", ["pipe:1", "pipe:0"])  # the decoder, the encoder
def test_either_ffmpeg_killed_from_outside_is_an_interruption_not_the_media_s_fault(tmp_path: Path,
                                                                                    which: str) -> None:
    clip = _busy_clip(tmp_path / "clip.mp4", seconds=6.0)
    killed: list[int] = []

    def progress(share: float) -> None:
        if share > 0.1 and not killed:
            killed.extend(_children(which))
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(RenderInterrupted) as raised:
        render_redaction(clip, tmp_path / "redacted.mp4", RedactionSpec(boxes=(Box(0.0, None, 0, 0, 64, 64),)),
                         width=320, height=240, duration_s=6.0, has_audio=True, progress=progress)
    assert len(killed) == 1 and raised.value.killed
    assert _children("ffmpeg") == []  # the other one is gone too


def test_a_job_taken_over_stops_both_ffmpegs_and_a_timeout_is_named(tmp_path: Path) -> None:
    clip = _busy_clip(tmp_path / "clip.mp4", seconds=6.0)

    class TakenOver(Exception):
        pass

    def progress(share: float) -> None:
        if share > 0.1:
            raise TakenOver

    spec = RedactionSpec(boxes=(Box(0.0, None, 0, 0, 64, 64),), mutes=(Mute(1.0, 2.0),))
    with pytest.raises(TakenOver):
        render_redaction(clip, tmp_path / "a.mp4", spec, width=320, height=240, duration_s=6.0, has_audio=True,
                         progress=progress)
    assert _children("ffmpeg") == []
    with pytest.raises(ValueError, match=r"did not finish within 0\.01 s"):
        render_redaction(clip, tmp_path / "b.mp4", spec, width=320, height=240, duration_s=6.0, has_audio=True,
                         timeout_s=0.01)
    assert _children("ffmpeg") == []


def _matroska(clip: Path) -> bytes:
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-c:v", "rawvideo", "-pix_fmt",
                           "yuv420p", "-c:a", "pcm_f32le", "-write_crc32", "0", "-f", "matroska", "-"],
                          capture_output=True, check=True).stdout


def test_the_stream_passes_through_unchanged_with_each_frame_s_time_and_a_cut_one_is_named(tmp_path: Path) -> None:
    clip = _busy_clip(tmp_path / "clip.mp4", seconds=1.0)
    stream = _matroska(clip)
    seen: list[float] = []
    sink = io.BytesIO()
    count = pass_frames(io.BytesIO(stream), sink, lambda track, t, picture: seen.append(t))
    assert sink.getvalue() == stream and count == 25
    assert [round(t, 3) for t in seen] == [round(t, 3) for t in _frame_times(clip)]
    with pytest.raises(MatroskaUnexpected, match="ends"):
        pass_frames(io.BytesIO(stream[:len(stream) // 2]), io.BytesIO(), lambda *a: None)
    with pytest.raises(MatroskaUnexpected, match="invalid EBML number"):
        pass_frames(io.BytesIO(b"\x00" * 64), io.BytesIO(), lambda *a: None)


def test_regions_shown_are_found_by_time_even_when_time_goes_back() -> None:
    boxes = (Box(0.0, 1.0, 0, 0, 16, 16), Box(0.5, None, 16, 0, 16, 16), Box(2.0, 2.0, 32, 0, 16, 16))
    shown = FramePixelator(boxes, 16)

    def at(t: float) -> set[int]:
        return {b.x for b in shown.shown_at(t)}

    assert at(0.0) == {0} and at(0.5) == {0, 16} and at(1.0) == {0, 16} and at(1.001) == {16}
    assert at(2.0) == {16, 32} and at(2.0004) == {16}
    assert at(0.2) == {0}  # a time before the last (a broken stream's): looked up again, not from what was open
