"""Issue 13 (low): hostile or extreme media headers. A container claiming 4,294,967,295 s must not set the capture
end (and so retention); a valid 400-megapixel JPEG is a photo, not an unreadable file. Both go through the real
station pipeline (ffprobe, Pillow, exifread, the catalogue and the local WORM store)."""
from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import piexif
import pytest
from PIL import Image
from sqlmodel import Session

from catalog import Recording
from ingest.describe.metadata import MAX_DURATION_S, plausible_duration
from ingest.pipeline import ingest_folder
from ingest.samples import make_clip

WIDTH = HEIGHT = 20_000  # 400 megapixels: past Pillow's decompression-bomb limit (178,956,970)


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def huge_jpeg(path: Path, width: int, height: int, taken: str) -> Path:
    """A valid baseline greyscale JPEG of any size in a few MB and milliseconds: one-symbol Huffman tables (DC
    difference 0 = bit `0`, end-of-block = bit `0`) make every 8x8 block two bits, so the picture is flat grey."""
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"PanoCam", piexif.ImageIFD.Model: b"P400"},
                        "Exif": {piexif.ExifIFD.DateTimeOriginal: taken.encode()}})
    table = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1, for symbol 0
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    path.write_bytes(b"\xff\xd8" + _segment(0xE1, exif) + _segment(0xDB, b"\x00" + b"\x01" * 64)
                     + _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
                     + _segment(0xC4, b"\x00" + table + b"\x10" + table)
                     + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + bytes((blocks * 2 + 7) // 8) + b"\xff\xd9")
    return path


def absurd_mp4(path: Path) -> Path:
    """A real 1-second MP4 whose movie header (mvhd) says timescale 1, duration 0xFFFFFFFF."""
    make_clip(path, seconds=1.0, creation_time="2026-11-20T06:10:00Z")
    data = bytearray(path.read_bytes())
    at = data.index(b"mvhd")
    assert data[at + 4] == 0, "expected a version-0 mvhd"
    struct.pack_into(">II", data, at + 4 + 4 + 8, 1, 0xFFFFFFFF)  # after version/flags, creation, modification
    path.write_bytes(bytes(data))
    return path


def test_the_jpeg_maker_makes_a_picture_a_viewer_shows(tmp_path):
    small = huge_jpeg(tmp_path / "small.jpg", 64, 48, "2026:11:20 14:10:05")
    with Image.open(small) as img:
        img.load()
        assert img.size == (64, 48) and img.getpixel((10, 10)) == 128


def test_absurd_duration_and_a_400_megapixel_photo_through_the_station(tmp_path, settings, engine, store,
                                                                       ffmpeg_available):
    folder = tmp_path / "device" / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    photo = huge_jpeg(folder / "PANO_0001.JPG", WIDTH, HEIGHT, "2026:11:20 14:10:05")
    assert photo.stat().st_size < 2 * 1024 * 1024
    absurd_mp4(folder / "MVI_0002.MP4")
    report = ingest_folder(tmp_path / "device", settings=settings, engine=engine, store=store)
    rows = {r["original_name"]: r for r in report.recordings}

    pano = rows["PANO_0001.JPG"]
    assert (pano["media_kind"], pano["integrity"]["status"]) == ("photo", "ok"), pano
    assert (pano["technical"]["width"], pano["technical"]["height"]) == (WIDTH, HEIGHT)
    assert pano["captured_start"] == "2026-11-20T06:10:05Z" and pano["time_source"] == "exif"

    clip = rows["MVI_0002.MP4"]
    assert clip["time_implausible"] is True, clip
    claim = "the container claims a duration of 4294967295 s (49710 days), more than 7 days"
    detail, problem = clip["integrity"]["detail"], clip["time_problem"]
    assert detail is not None and problem is not None
    assert claim in detail and claim in problem
    assert 0.9 < clip["technical"]["duration_s"] < 1.2  # the streams' own length
    with Session(engine) as session:
        row = session.get(Recording, clip["id"])
        assert row is not None and row.technical["duration_claimed_s"] == 4294967295.0
    captured_start, captured_end = clip["captured_start"], clip["captured_end"]
    assert captured_start is not None and captured_end is not None
    start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (captured_start, captured_end))
    assert start == datetime(2026, 11, 20, 6, 10, tzinfo=UTC) and end - start < timedelta(seconds=2)
    retain_until = clip["retain_until"]
    assert retain_until is not None
    until = datetime.fromisoformat(retain_until.replace("Z", "+00:00"))
    assert until < datetime.now(UTC) + timedelta(days=400)  # retention counts from a real end, not 2162
    assert store.head(clip["sha256"]).retain_until == until


@pytest.mark.parametrize(("claimed", "streams", "used", "why"), [
    (3600.0, [3600.0], 3600.0, None),
    (MAX_DURATION_S, [], MAX_DURATION_S, None),
    (4294967295.0, [1.0, 1.02], 1.02, "its streams' 1.02 s is used"),
    (4294967295.0, [None, 4294967295.0], None, "no duration is used and the capture end is taken as its start"),
    (float("nan"), [5.0], 5.0, "its streams' 5 s is used"),
    (float("inf"), [], None, "no duration is used"),
    (None, [1.0], None, None),
])
def test_plausible_duration(claimed, streams, used, why):
    got, problem = plausible_duration(claimed, streams)
    assert got == used
    assert (problem is None) if why is None else (why in (problem or ""))
