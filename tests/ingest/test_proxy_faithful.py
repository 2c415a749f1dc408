"""The playback proxy and the thumbnail show the original's pictures: every frame at its time (a phone's variable
frame rate), and the video rather than a cover picture an MP4 lists first."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ingest.derive import make_proxy, video_thumbnail
from tests.helpers.clips import busy_clip, cover_first, frame_times, phone_vfr_clip

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def test_a_phone_s_uneven_frames_are_each_in_the_proxy_at_their_time(tmp_path: Path) -> None:
    # Given a phone's 60 frames at uneven times (30 a second slowing to 10, a few ms of jitter each)
    clip = phone_vfr_clip(tmp_path / "VID_20261120_140600.mp4")
    times = frame_times(clip)
    assert len(times) == 60
    # When its playback proxy is made
    proxy = make_proxy(clip, tmp_path / "proxy.mp4")
    # Then the proxy has those 60 frames, none added or dropped (it had 89: a constant rate was guessed), each at
    # its original time to the millisecond
    shown = frame_times(proxy)
    assert len(shown) == 60
    assert max(abs(a - b) for a, b in zip(times, shown, strict=True)) < 0.0015


def test_a_cover_picture_listed_first_is_neither_proxy_nor_thumbnail(tmp_path: Path) -> None:
    # Given a clip of 320×240 whose MP4 lists a red 160×120 cover picture before the video (a phone app's export)
    clip = cover_first(busy_clip(tmp_path / "clip.mp4"), tmp_path / "COVERED.MP4")
    # When its proxy and thumbnail are made
    proxy = make_proxy(clip, tmp_path / "proxy.mp4")
    thumbnail = video_thumbnail(clip, tmp_path / "thumb.jpg", width=160)
    # Then both are of the video: its 50 frames, its size, no red
    assert len(frame_times(proxy)) == 50
    picture = np.asarray(Image.open(thumbnail).convert("RGB")).astype(int)
    assert picture.shape[:2] == (120, 160)
    red = (picture[..., 0] > 180) & (picture[..., 1] < 80) & (picture[..., 2] < 80)
    assert red.mean() < 0.01
