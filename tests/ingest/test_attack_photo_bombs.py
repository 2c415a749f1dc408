"""Photos and videos that would make a thumbnail decode gigabytes in the worker or station's own process.

A photo's thumbnail is decoded in-process (OpenCV, Pillow): the kernel's out-of-memory killer would end the worker
or the station itself, which no kill count sees (docs/queue.md), at every pass after it: one file would stop a
station for good. The promise (docs/queue.md, "Hostile media"): no photo's thumbnail decodes more than
MAX_DECODED_PIXELS; a JPEG of any size still gets its thumbnail (decoded reduced by the JPEG decoder), another
format too large gets a recorded failure that names its size, a HEIC from a phone (which OpenCV cannot decode) gets
one too, and a video's thumbnail is ffmpeg's, in a process of its own. The files are real: a valid 900-megapixel
JPEG of 3.5 MB, a valid 1-bit PNG of 30000 x 30000 in 110 KB (a classic "PNG bomb"), a real HEIC made by libheif,
a JPEG with an EXIF orientation, and a real MJPEG video of 72-megapixel frames.
"""
from __future__ import annotations

import io
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
from PIL import Image
from sqlmodel import Session, select

from catalog import MediaWorkFailure, open_catalog
from ingest import photo_child
from ingest.config import Settings
from ingest.decode_check import decode_file
from ingest.describe.image_header import jpeg_frame_headers
from ingest.errors import DecodeIncomplete, RenderInterrupted
from ingest.photo_child import PhotoProcess, ended_because
from ingest.photo_frame import MAX_DECODED_PIXELS, THUMBNAIL_WIDTH, photo_frame, reduction
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from ingest.samples import make_photo, run_ffmpeg
from ingest.services import open_store
from tests.helpers.media_work import ids_by_name, media_work_of
from tests.ingest.test_attack_media_limits import _segment, huge_jpeg
from tests.media import make_heic

ROOT = Path(__file__).resolve().parents[2]


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of *width* x *height*, all black: zlib packs its rows about 1000 to 1."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none", then the row's bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def turned_jpeg(path: Path, width: int, height: int) -> Path:
    """A *width* x *height* JPEG, white on its left half and black on its right, whose EXIF says: turn it 90 degrees
    clockwise to show it (orientation 6, as a phone held upright writes)."""
    img = Image.new("RGB", (width, height), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, width // 2, height))
    img.save(path, format="JPEG", exif=piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6}}), quality=90)
    return path


def progressive_jpeg(path: Path, width: int, height: int) -> Path:
    """A valid progressive greyscale JPEG of any size with only its DC scan, all zero: a few MB. Decoding it keeps
    every coefficient of the full picture in memory (2 bytes a pixel), whatever scale it is decoded at."""
    table = bytes([1] + [0] * 15) + b"\x00"
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    path.write_bytes(b"\xff\xd8" + _segment(0xDB, b"\x00" + b"\x01" * 64)
                     + _segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
                     + _segment(0xC4, b"\x00" + table) + _segment(0xDA, b"\x01\x01\x00\x00\x00\x00")
                     + bytes((blocks + 7) // 8) + b"\xff\xd9")
    return path


def lying_heic(path: Path) -> Path:
    """A real 1024 x 1024 HEIC (libheif) whose every `ispe` box says 64 x 64: libheif refuses the coded picture
    with a RuntimeError (no ValueError), as it does for many damaged HEICs."""
    import pillow_heif
    pillow_heif.register_heif_opener()
    Image.new("RGB", (1024, 1024), (20, 120, 200)).save(path, format="HEIF", quality=30)
    data = bytearray(path.read_bytes())
    at = data.find(b"ispe")
    while at >= 0:
        struct.pack_into(">II", data, at + 8, 64, 64)  # after the type and the box's version and flags
        at = data.find(b"ispe", at + 4)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bombs")
    return {"control": make_photo(root / "control.jpg", size="640x480"),
            "jpeg": huge_jpeg(root / "huge.jpg", 30_000, 30_000, "2026:11:20 14:10:05"),
            "png": png_bomb(root / "bomb.png", 30_000, 30_000),
            "turned": turned_jpeg(root / "turned.jpg", 2000, 1000),
            "progressive": progressive_jpeg(root / "progressive.jpg", 20_000, 20_000),
            "lying": lying_heic(root / "lying.heic")}


# ----------------------------------------------------------------------------- pure decisions


@pytest.mark.parametrize(("width", "height", "scale"), [
    (640, 480, 1), (639, 639, 1), (640, 640, 2), (1279, 4000, 2), (1280, 960, 2), (1280, 1280, 4), (2559, 3000, 4),
    (2560, 2560, 8), (30_000, 30_000, 8), (65_535, 639, 1), (65_535, 640, 2), (1, 65_500, 1)])
def test_a_jpeg_is_reduced_as_far_as_its_thumbnail_allows_either_way_up(width, height, scale):
    assert reduction(width, height) == scale
    assert min(width, height) // scale >= THUMBNAIL_WIDTH or scale == 1


def test_every_jpeg_fits_the_decode_limit_once_reduced():
    # the worst JPEG that cannot be halved: 65,535 (the format's largest side) x 639
    assert MAX_DECODED_PIXELS >= 65_535 * 639
    assert reduction(65_535, 65_535) == 8 and MAX_DECODED_PIXELS >= -(-65_535 // 8) * -(-65_535 // 8)


# ----------------------------------------------------------------------------- in a process of its own


def _thumbnail_in_child(photo: Path, dest: Path) -> tuple[int, str, float]:
    """Render *photo*'s thumbnail the way the worker does (photo_frame, write_thumbnail) in a new Python process;
    (exit code, its output, its peak memory in MB as the kernel counted it: wait4)."""
    script = ("import sys\nfrom pathlib import Path\nfrom ingest.photo_frame import photo_frame, write_thumbnail\n"
              "try:\n    frame = photo_frame(Path(sys.argv[1]).read_bytes())\nexcept ValueError as exc:\n"
              "    print('refused:', exc)\n    sys.exit(3)\n"
              "write_thumbnail(frame, Path(sys.argv[2]))\nprint('frame', frame.shape)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    out_path = dest.with_suffix(".out")
    with out_path.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", script, str(photo), str(dest)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out_path.read_text(), usage.ru_maxrss / 1024


def test_no_photo_makes_the_renderer_decode_gigabytes(tmp_path, bombs):
    # Given a 640x480 photo as the control, a valid 900-megapixel JPEG (2.7 GB decoded at full size) and a 1-bit
    # PNG of 900 megapixels, each rendered in a process of its own as the worker renders it; the peaks compared
    # with the control's in the same run (a machine's own baseline varies, the difference does not)
    runs = {name: _thumbnail_in_child(bombs[name], tmp_path / f"{name}.jpg") for name in ("control", "jpeg", "png")}
    assert runs["control"][0] == 0, runs["control"]
    # The JPEG gets its thumbnail, decoded at 1/8 by the JPEG decoder
    code, out, peak = runs["jpeg"]
    assert code == 0 and "frame (3750, 3750, 3)" in out, out
    with Image.open(tmp_path / "jpeg.jpg") as thumb:
        assert thumb.size == (THUMBNAIL_WIDTH, THUMBNAIL_WIDTH)
    # The PNG is refused before a pixel is decoded, naming its size
    code, out, png_peak = runs["png"]
    assert code == 3 and "the PNG is 30000 x 30000 pixels" in out and "900 megapixels" in out, out
    assert not (tmp_path / "png.jpg").exists()
    control = runs["control"][2]
    assert peak < control + 150 and png_peak < control + 150, (
        f"peaks: control {control:.0f} MB, 900 MP JPEG {peak:.0f} MB, 900 MP PNG {png_peak:.0f} MB")


def test_a_reduced_jpeg_is_still_turned_as_its_exif_says(bombs):
    frame = photo_frame(bombs["turned"].read_bytes())
    # 2000 x 1000 decoded at 1/2, then turned upright: 500 wide, 1000 tall, its white half on top
    assert frame.shape == (1000, 500, 3)
    assert frame[100, 250].min() > 200 and frame[900, 250].max() < 50


def test_a_heic_from_a_phone_is_decoded_by_pillow_heif(tmp_path):
    frame = photo_frame(make_heic(tmp_path).read_bytes())
    assert frame.shape == (48, 64, 3)
    blue, green, red = (int(v) for v in frame[24, 32])
    assert red > 150 and green < 90 and blue < 90, (blue, green, red)  # (200, 30, 30) as BGR, within x265's loss


def test_an_image_nothing_can_read_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="cannot decode the image"):
        photo_frame(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)


def _sof(width: int, height: int) -> bytes:
    return _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + bytes([1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]))


def test_a_jpeg_has_one_frame_header_before_its_scan():
    soi, sos = b"\xff\xd8", b"\xff\xda\x00\x08" + bytes(6)
    app = _segment(0xE1, b"Exif\x00\x00" + bytes(20))
    xmp = _segment(0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + bytes(65_000))  # extended XMP, 64 KB a segment

    def frames(data: bytes) -> int | None:
        return jpeg_frame_headers(io.BytesIO(data))

    assert frames(soi + app + _sof(640, 480) + sos) == 1
    assert frames(soi + xmp * 40 + _sof(20_000, 20_000) + sos) == 1  # 2.6 MB of metadata before it
    assert frames(soi + _sof(30_000, 30_000) + app + _sof(640, 480) + sos) == 2
    assert frames(soi + app + b"\xff\xff" + _sof(640, 480) + sos) == 1  # a fill byte
    assert frames(soi + app + _sof(640, 480)) is None  # cut before its scan
    assert frames(b"\x89PNG\r\n\x1a\n") is None and frames(soi + b"junk" + sos) is None


def test_a_forged_size_on_a_damaged_jpeg_does_not_hide_its_damage(tmp_path, ffmpeg_available):
    # Given a 640x480 photo with half its coded data overwritten (damaged for real), and the same file with a
    # 19-byte frame header claiming 30000 x 30000 put before its own: ffmpeg then says "Picture size 30000x30000 is
    # invalid", which for a real 900-megapixel photo means "too large to judge"
    good = make_photo(tmp_path / "good.jpg", size="640x480").read_bytes()
    start = good.index(b"\xff\xda") + 200
    damaged = good[:start] + bytes([0x5A]) * ((len(good) - start) // 2) + good[start + (len(good) - start) // 2:]
    (tmp_path / "damaged.jpg").write_bytes(damaged)
    (tmp_path / "forged.jpg").write_bytes(damaged[:2] + _sof(30_000, 30_000) + damaged[2:])
    # Then both are judged damaged: the forged size is not taken for the photo's
    for name in ("damaged.jpg", "forged.jpg"):
        result = decode_file(tmp_path / name, is_photo=True, timeout_s=60)
        assert result is not None and result.status == "damaged", (name, result)


# ----------------------------------------------------------------------------- the photo process


@pytest.mark.parametrize(("code", "kind", "why"), [
    (-signal.SIGSEGV, ValueError, "crashed on it (SIGSEGV)"), (-signal.SIGABRT, ValueError, "crashed on it (SIGABRT)"),
    (-signal.SIGKILL, RenderInterrupted, "killed (SIGKILL)"), (-signal.SIGTERM, RenderInterrupted, "stopped (SIGTERM)"),
    (1, RenderInterrupted, "ended unexpectedly (exit 1")])
def test_how_a_photo_decoder_ended_says_whose_fault_it_was(code, kind, why):
    ended = ended_because(code)
    assert type(ended) is kind and why in str(ended)
    assert getattr(ended, "killed", False) is (code == -signal.SIGKILL)  # counted towards giving up, alone


def test_what_the_header_cannot_tell_is_decoded_in_the_photo_process_under_its_limits(bombs):
    # A progressive 20000 x 20000 JPEG of 0.8 MB: decoded at 1/8 it is 2500 x 2500, but its decoder keeps 800 MB of
    # coefficients; a HEIC whose header lies about its size makes libheif raise a RuntimeError
    started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    process = PhotoProcess()
    try:
        assert len(process.thumbnail(bombs["progressive"].read_bytes())) > 0  # made, in the photo process
        with pytest.raises(ValueError, match=r"RuntimeError: .*exceeds the maximum image size"):
            process.thumbnail(bombs["lying"].read_bytes())  # the photo's failure, recorded: not a deferral
        # With less memory allowed than it needs, the decode fails there (libjpeg's allocation fails: OpenCV and
        # Pillow report a decode error, not a MemoryError), recorded as the photo's failure; the next photo is
        # decoded by a fresh process
        small = PhotoProcess(memory_bytes=256 * 1024 * 1024)
        with pytest.raises(ValueError, match="neither OpenCV nor Pillow can decode the JPEG"):
            small.thumbnail(bombs["progressive"].read_bytes())
        assert small.pid is None and len(small.thumbnail(bombs["control"].read_bytes())) > 0
        small.close()
        # A decoder still busy at its deadline is killed: the photo's failure, and the next one is decoded
        slow = PhotoProcess(timeout_s=0.05)
        with pytest.raises(ValueError, match=r"did not finish within 0\.05 s"):
            slow.thumbnail(bombs["progressive"].read_bytes())
        assert slow.pid is None
        slow.close()
    finally:
        process.close()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - started
    assert grown < 100, f"this process's peak grew by {grown:.0f} MB: a decode ran here"


def test_what_else_writes_to_the_photo_process_stdout_never_reaches_its_replies(bombs, monkeypatch):
    # OpenCV's logger writes from C++ to descriptor 1; the child inherits the environment that turns it on
    monkeypatch.setenv("OPENCV_LOG_LEVEL", "DEBUG")
    process = PhotoProcess(timeout_s=30)
    try:
        for _ in range(2):
            thumbnail = process.thumbnail(bombs["control"].read_bytes())
            assert thumbnail.startswith(b"\xff\xd8")
    finally:
        process.close()


def test_a_request_interrupted_half_way_never_hands_its_reply_to_the_next_photo(tmp_path, monkeypatch):
    # dramatiq's time limit raises an exception in the working thread wherever it is: here, while the reply is read
    red = make_photo(tmp_path / "red.jpg", size="640x480")
    Image.new("RGB", (640, 480), (0, 0, 255)).save(tmp_path / "blue.jpg")
    process = PhotoProcess()
    reads = photo_child._read_exactly

    def interrupted(*args: object) -> bytes:
        monkeypatch.setattr(photo_child, "_read_exactly", reads)
        raise KeyboardInterrupt

    try:
        process.thumbnail(red.read_bytes())  # the process is up
        monkeypatch.setattr(photo_child, "_read_exactly", interrupted)
        with pytest.raises(KeyboardInterrupt):
            process.thumbnail(red.read_bytes())
        frame = cv2.imdecode(np.frombuffer(process.thumbnail((tmp_path / "blue.jpg").read_bytes()), np.uint8),
                             cv2.IMREAD_COLOR)
        assert frame is not None
        assert tuple(int(v) for v in frame[100, 100]) > (200, 0, 0) and frame[100, 100][2] < 60  # blue, not red's
    finally:
        process.close()


def test_a_worker_holding_more_than_1024_descriptors_still_gets_its_photos_decoded(bombs):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.fail(f"this machine allows {hard} open files: the test needs 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    process = PhotoProcess()
    try:
        assert process.thumbnail(bombs["control"].read_bytes()).startswith(b"\xff\xd8")
    finally:
        process.close()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_megabytes_of_metadata_before_the_frame_header_do_not_make_a_large_jpeg_damaged(tmp_path, ffmpeg_available):
    # Photoshop's extended XMP: 64 KB APP1 segments, 2.6 MB of them before the frame header of a valid 20000 x 20000
    # JPEG, which ffmpeg does not decode ("Picture size 20000x20000 is invalid"): no verdict, not "damaged"
    plain = huge_jpeg(tmp_path / "plain.jpg", 20_000, 20_000, "2026:11:20 14:10:05").read_bytes()
    xmp = _segment(0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + bytes(65_000))
    (tmp_path / "xmp.jpg").write_bytes(plain[:2] + xmp * 40 + plain[2:])
    for name in ("plain.jpg", "xmp.jpg"):
        with pytest.raises(DecodeIncomplete, match="does not decode a picture of 20000 x 20000 pixels"):
            decode_file(tmp_path / name, is_photo=True, timeout_s=120)


# ----------------------------------------------------------------------------- through the station


def test_the_station_renders_what_it_can_and_records_why_not_for_the_rest(tmp_path, bombs, ffmpeg_available):
    # Given a dock with the PNG bomb, the 900 MP JPEG, a HEIC, an everyday photo and a real video of 72-megapixel
    # MJPEG frames (12000 x 6000), ingested by the station on the embedded default, which renders before it returns
    folder = tmp_path / "cam" / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    shutil.copyfile(bombs["png"], folder / "SCAN_0001.PNG")
    shutil.copyfile(bombs["jpeg"], folder / "PANO_0002.JPG")
    shutil.copyfile(make_heic(tmp_path), folder / "IMG_0003.HEIC")
    shutil.copyfile(bombs["control"], folder / "IMG_0004.JPG")
    shutil.copyfile(bombs["lying"], folder / "IMG_0006.HEIC")
    shutil.copyfile(bombs["progressive"], folder / "PANO_0007.JPG")
    run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=12000x6000:rate=1:duration=2", "-c:v", "mjpeg", "-q:v", "31",
               "-pix_fmt", "yuvj420p", str(folder / "MVI_0005.AVI"))
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home")})
    report = run_ingest(tmp_path / "cam", settings, IngestOptions(), derive="wait")

    # Then every file is archived, and the pass went through all of them
    assert report.errors == [] and {r["state"] for r in report.recordings} == {"archived"}, report.recordings
    ids = ids_by_name(report)
    engine = open_catalog(settings.database_url)
    try:
        work = media_work_of(engine)
        with Session(engine) as session:
            failures = {(f.recording_id, f.kind): f.reason for f in session.exec(select(MediaWorkFailure))}
    finally:
        engine.dispose()
    for name in ("PANO_0002.JPG", "IMG_0003.HEIC", "IMG_0004.JPG", "MVI_0005.AVI", "PANO_0007.JPG"):
        assert "thumbnail" in work.get(ids[name], set()), (name, work, failures)
    # The PNG is refused with its size, recorded once as a failure of its thumbnail; the video's 72-megapixel
    # frame was decoded by ffmpeg in a process of its own (tests/ingest/test_attack_media_work.py kills those)
    assert "30000 x 30000 pixels" in failures[(ids["SCAN_0001.PNG"], "thumbnail")]
    # A HEIC libheif refuses is recorded once as failed (thumbnail and decode check), never deferred at every pass
    assert "exceeds the maximum image size" in failures[(ids["IMG_0006.HEIC"], "thumbnail")]
    assert work[ids["IMG_0006.HEIC"]] == {"failed:thumbnail", "decode:damaged"}, work
    assert "thumbnail" not in work.get(ids["SCAN_0001.PNG"], set())
    # Neither 900-megapixel picture is called damaged because ffmpeg's decode check refuses its size: no verdict,
    # a recorded failure that says so
    for name in ("PANO_0002.JPG", "SCAN_0001.PNG"):
        assert "decode:damaged" not in work[ids[name]], (name, work, failures)
        assert "does not decode a picture of 30000 x 30000 pixels" in failures[(ids[name], "decode")], failures
    # and the video still gets its browser proxy (ffmpeg, in a process of its own)
    assert "proxy" in work.get(ids["MVI_0005.AVI"], set()), (work, failures)
    store = open_store(settings)
    with store.open_derived(report.recordings[[r["original_name"] for r in report.recordings].index(
            "IMG_0003.HEIC")]["sha256"], "thumbnail.jpg") as fh, Image.open(fh) as thumb:
        assert thumb.size == (THUMBNAIL_WIDTH, THUMBNAIL_WIDTH * 48 // 64)
