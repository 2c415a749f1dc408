"""Every container real devices write, recognised by content and described: real files made by ffmpeg
(tests/media.py) run through the real gather_facts + describe; then the broken ones; then sniffing on bytes."""
import functools
import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device_profiles import load_profiles
from ingest.describe.bmff import MAX_TABLE_ENTRIES, check_sample_tables
from ingest.describe.metadata import TimeBounds, describe
from ingest.describe.probe import gather_facts
from ingest.describe.structure import avchd_recording_time, check_structure, dv_recording_time, sniff_format
from ingest.errors import SampleToolMissing
from ingest.samples import make_photo
from tests import media
from tests.conftest import _missing
from tests.media import CREATED_UTC, LOCAL_WALL, PLACE

DCIM = load_profiles()["generic-dcim-camera"]
ZONE = "Asia/Shanghai"  # LOCAL_WALL in this zone is CREATED_UTC
DOCKED = datetime(2026, 11, 21, tzinfo=UTC)
MTIME_NS = int(DOCKED.timestamp() * 1e9)
BOUNDS = TimeBounds(floor=datetime(2000, 1, 1, tzinfo=UTC), now=DOCKED)
MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"

GENERATORS = {
    "mts": media.make_mts, "ts": media.make_ts, "mkv": media.make_mkv, "mxf": media.make_mxf, "dv": media.make_dv,
    "heic": media.make_heic, "insv": media.make_insv, "mp3": media.make_mp3, "m4a": media.make_m4a,
    "3gp": media.make_3gp, "mov": media.make_mov, "avi": media.make_avi, "h264": media.make_h264,
    "hevc": media.make_hevc, "header_only_mov": media.make_header_only_mov, "past_eof": media.make_mp4_past_eof,
    "promise": media.make_promise_in_4kb, "cut_ts": media.make_truncated_ts,
    "avi_icrd": lambda folder: media.make_avi(folder, idit=False, icrd="2026-11-20 14:10:05"),
}
WHOLE = ["mts", "ts", "mkv", "mxf", "dv", "heic", "insv", "mp3", "m4a", "3gp", "mov", "avi", "avi_icrd", "h264",
         "hevc"]


@pytest.fixture(scope="session")
def made(tmp_path_factory, ffmpeg_available) -> dict[str, Path | str]:
    """Every test file, made once per session (each in its own folder); a container this ffmpeg cannot make
    maps to the reason instead."""
    root = tmp_path_factory.mktemp("formats")

    def make_one(name: str) -> Path | str:
        folder = root / name
        folder.mkdir()
        try:
            return GENERATORS[name](folder)
        except SampleToolMissing as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:  # ffmpeg runs are independent: make them side by side
        return dict(zip(GENERATORS, pool.map(make_one, GENERATORS), strict=True))


@pytest.fixture
def path_of(made):
    def get(name: str) -> Path:
        found: Path | str = made[name]
        if isinstance(found, str):
            _missing(found)  # skips on a developer machine, fails under CI=true
        return found
    return get


@functools.cache
def _gather(path: Path):
    # describe is pure: one read of each (never changed) file serves every role and zone a test asks about
    return gather_facts(path, name=path.name, mtime_ns=MTIME_NS, sidecar=None, probe_timeout_s=30)


def _read(path: Path, role: str = "recording", zone: str = ZONE):
    facts = _gather(path)
    return facts, describe(facts, profile=DCIM, station_zone=zone, bounds=BOUNDS, role=role)


def _capture(meta) -> tuple[str, str | None, datetime, str | None]:
    return meta.capture.source, meta.capture.raw_device_time, meta.capture.start, meta.capture.zone_assumed


def _assert_whole_and_dated(meta, raw: str, zone: str | None, source: str = "container") -> None:
    """*meta* describes a whole file (integrity ok) made at CREATED_UTC, read from *raw* at *source* (as the wall
    clock of *zone* when the file keeps no zone)."""
    assert _capture(meta) == (source, raw, CREATED_UTC, zone)
    assert meta.integrity_status == "ok"


# ----------------------------------------------------------------------------- whole files, one by one


def test_m2ts_from_an_avchd_camcorder_is_video_with_its_container_date(path_of):
    facts, meta = _read(path_of("mts"))
    assert (facts.structure.format, meta.media_kind, meta.container) == ("m2ts", "video", "mpegts")
    assert (meta.video_codec, meta.audio_codec, meta.width, meta.height) == ("h264", "ac3", 160, 120)
    assert meta.duration_s == pytest.approx(1.0, abs=0.05)
    # ffprobe shows no date for a transport stream: it comes from the MDPM block of the first access unit
    assert _capture(meta) == ("container", "2026-11-20 14:10:05", CREATED_UTC, ZONE)
    assert (meta.integrity_status, meta.integrity_detail) == ("ok", "")


def test_plain_mpeg_ts_is_video_with_its_duration_and_no_date_of_its_own(path_of):
    facts, meta = _read(path_of("ts"))
    assert (facts.structure.format, meta.media_kind, meta.container, meta.video_codec) == (
        "mpegts", "video", "mpegts", "h264")
    assert meta.duration_s == pytest.approx(1.0, abs=0.05)
    assert meta.capture.source == "file_mtime"
    assert meta.integrity_status == "ok"


def test_matroska_date_utc_is_the_capture_time_with_its_zone(path_of):
    facts, meta = _read(path_of("mkv"))
    assert facts.probe["format"]["tags"]["creation_time"] == "2026-11-20T06:10:05.000000Z"
    assert (facts.structure.format, meta.media_kind, meta.container) == ("matroska", "video", "matroska,webm")
    assert meta.duration_s == pytest.approx(1.0, abs=0.05)
    _assert_whole_and_dated(meta, "2026-11-20T06:10:05.000000Z", None)


def test_mxf_from_a_broadcast_camera_is_dated_by_its_identification_set(path_of):
    facts, meta = _read(path_of("mxf"))
    assert "creation_time" not in facts.probe["format"]["tags"]  # ffprobe calls it modification_date
    assert (facts.structure.format, meta.media_kind, meta.container, meta.video_codec, meta.audio_codec) == (
        "mxf", "video", "mxf", "mpeg2video", "pcm_s16le")
    assert (meta.width, meta.height, meta.duration_s) == (720, 576, pytest.approx(0.4, abs=0.01))
    _assert_whole_and_dated(meta, "2026-11-20T06:10:05.000000Z", None)


def test_dv_from_a_tape_camcorder_is_dated_by_its_vaux_recording_time_on_the_local_clock(path_of):
    facts, meta = _read(path_of("dv"))
    assert (facts.structure.format, facts.structure.embedded_time) == ("dv", "2026-11-20 14:10:05")
    assert (meta.media_kind, meta.container, meta.video_codec, meta.width, meta.height) == (
        "video", "dv", "dvvideo", 720, 576)
    assert meta.duration_s == pytest.approx(0.2, abs=0.01)
    _assert_whole_and_dated(meta, "2026-11-20 14:10:05", ZONE)


def test_heic_photo_gives_exif_time_offset_and_gps_without_ffprobe(path_of):
    facts, meta = _read(path_of("heic"))
    assert (facts.structure.format, facts.structure.brand, facts.probe, facts.probe_error) == ("heif", "heic", None,
                                                                                               None)
    assert (meta.media_kind, meta.container, meta.width, meta.height, meta.duration_s) == ("photo", "heif", 64, 48,
                                                                                           None)
    assert _capture(meta) == ("exif", "2026:11:20 14:10:05 +08:00", CREATED_UTC, None)
    assert (meta.place.lat, meta.place.lon, meta.place.source) == (pytest.approx(PLACE[0]),
                                                                   pytest.approx(PLACE[1]), "exif")
    assert meta.technical["exif"]["model"] == "iPhone 15"
    assert meta.integrity_status == "ok"


def test_insv_with_two_fisheye_tracks_timecode_and_a_vendor_trailer_is_whole_video(path_of):
    facts, meta = _read(path_of("insv"))
    assert (facts.structure.format, facts.structure.brand, facts.structure.problem) == ("mp4", "isom", None)
    assert facts.structure.note == "Insta360 trailer of 584 bytes after the boxes"
    assert meta.technical["streams"] == {"audio": 1, "data": 2, "video": 2}
    assert (meta.media_kind, meta.container, meta.video_codec, meta.audio_codec) == (
        "video", MP4_FAMILY, "h264", "aac")
    assert meta.duration_s == pytest.approx(1.0)
    assert (meta.place.lat, meta.place.lon, meta.place.source) == (*PLACE, "container")
    _assert_whole_and_dated(meta, "2026-11-20T06:10:05.000000Z", None)


def test_mp3_id3_date_is_the_recorders_wall_clock(path_of):
    facts, meta = _read(path_of("mp3"))
    assert facts.probe["format"]["tags"]["date"] == "2026-11-20T14:10:05"
    assert (facts.structure.format, meta.media_kind, meta.container, meta.audio_codec, meta.video_codec) == (
        "mp3", "audio", "mp3", "mp3", None)
    assert meta.duration_s == pytest.approx(1.0, abs=0.06)
    _assert_whole_and_dated(meta, "2026-11-20T14:10:05", ZONE)


def test_m4a_holding_only_audio_is_audio_with_its_creation_time(path_of):
    facts, meta = _read(path_of("m4a"))
    assert (facts.structure.format, facts.structure.brand) == ("mp4", "M4A ")
    assert (meta.media_kind, meta.container, meta.audio_codec, meta.video_codec) == ("audio", MP4_FAMILY, "aac", None)
    assert meta.duration_s == pytest.approx(1.0)
    _assert_whole_and_dated(meta, "2026-11-20T06:10:05.000000Z", None)


@pytest.mark.parametrize(("name", "brand", "size"), [("3gp", "3gp6", (176, 144)), ("mov", "qt  ", (160, 120))])
def test_3gp_and_mov_written_by_ffmpeg_carry_creation_time_and_location(path_of, name, brand, size):
    facts, meta = _read(path_of(name))
    assert facts.probe["format"]["tags"]["location"] == media.PLACE_ISO6709
    assert (facts.structure.format, facts.structure.brand, meta.media_kind) == ("mp4", brand, "video")
    assert (meta.width, meta.height) == size
    assert (meta.place.lat, meta.place.lon, meta.place.source) == (*PLACE, "container")
    _assert_whole_and_dated(meta, "2026-11-20T06:10:05.000000Z", None)


def test_avi_idit_becomes_a_zoneless_creation_time_read_as_the_cameras_wall_clock(path_of):
    facts, meta = _read(path_of("avi"))
    # ffmpeg's avidec turns IDIT "Fri Nov 20 14:10:05 2026" into creation_time without a zone; ICRD is "date"
    assert facts.probe["format"]["tags"]["creation_time"] == "2026-11-20 14:10:05"
    assert facts.probe["format"]["tags"]["date"] == "2026-11-20"
    assert (facts.structure.format, meta.media_kind, meta.container, meta.video_codec) == (
        "avi", "video", "avi", "mjpeg")
    _assert_whole_and_dated(meta, "2026-11-20 14:10:05", ZONE)


def test_avi_without_idit_is_dated_by_a_full_icrd(path_of):
    facts, meta = _read(path_of("avi_icrd"))
    assert "creation_time" not in facts.probe["format"]["tags"]
    assert _capture(meta) == ("container", "2026-11-20 14:10:05", CREATED_UTC, ZONE)


@pytest.mark.parametrize(("name", "codec", "label"), [("h264", "h264", "H.264"), ("hevc", "hevc", "HEVC")])
def test_a_raw_elementary_stream_is_video_without_duration_and_that_is_not_damage(path_of, name, codec, label):
    facts, meta = _read(path_of(name))
    assert (facts.structure.format, meta.media_kind, meta.container, meta.video_codec) == (codec, "video", codec,
                                                                                          codec)
    assert (meta.width, meta.height, meta.duration_s) == (160, 120, None)
    assert meta.capture.source == "file_mtime"
    assert (meta.integrity_status, meta.integrity_detail) == (
        "ok", f"raw {label} stream without a container: no duration or date in it")


@pytest.mark.parametrize("name", WHOLE)
def test_an_unlisted_file_is_described_by_its_content_exactly_as_a_recording(path_of, name):
    _facts, as_recording = _read(path_of(name))
    _facts, unlisted = _read(path_of(name), role="unlisted")
    assert unlisted.media_kind == as_recording.media_kind != "other"
    assert (unlisted.integrity_status, unlisted.capture.start) == ("ok", as_recording.capture.start)


def test_a_file_renamed_to_another_extension_is_still_recognised_by_its_content(path_of, tmp_path):
    renamed = tmp_path / "CLIP0001.JPG"
    shutil.copyfile(path_of("mts"), renamed)
    facts, meta = _read(renamed)
    assert (facts.structure.format, meta.media_kind, meta.integrity_status) == ("m2ts", "video", "ok")


# ----------------------------------------------------------------------------- broken files


def test_header_only_mov_is_damaged_naming_the_first_chunk_past_the_end(path_of):
    path = path_of("header_only_mov")
    facts, meta = _read(path)
    size = path.stat().st_size
    assert facts.probe_error is None  # ffprobe only warns ("partial file") and exits 0
    assert meta.integrity_status == "damaged"
    assert meta.integrity_detail.startswith("track 1 chunk 1 at offset ")
    assert meta.integrity_detail.endswith(f"ends past the end of the {size}-byte file")


def test_mp4_cut_short_with_a_patched_mdat_size_is_caught_by_its_sample_tables_with_exact_values(tmp_path,
                                                                                                ffmpeg_available):
    # Given a faststart MP4 and, from ffprobe's packet positions, where each track's chunks lie
    whole = media.make_faststart_mp4(tmp_path)
    chunks = media.chunk_runs(whole)
    # When it is cut to 60 % and its mdat size rewritten to match, so the top-level boxes are consistent
    keep = int(whole.stat().st_size * 0.6)
    cut = media.cut_mdat(whole, keep)
    # Then the first chunk (track order, then chunk order) ending past the end is named with its values
    track, chunk, (offset, size) = next((t, i, c) for t in sorted(chunks) for i, c in enumerate(chunks[t], 1)
                                        if c[0] + c[1] > keep)
    expected = (f"track {track} chunk {chunk} at offset {offset} + {size} bytes ends past the end of the "
                f"{keep}-byte file")
    assert check_structure(cut).problem == expected
    _facts, meta = _read(cut)
    assert (meta.media_kind, meta.integrity_status, meta.integrity_detail) == ("video", "damaged", expected)


def test_the_session_mp4_cut_past_its_end_is_damaged(path_of):
    _facts, meta = _read(path_of("past_eof"))
    assert meta.integrity_status == "damaged"
    assert " bytes ends past the end of the " in meta.integrity_detail


def test_a_header_promising_5_s_of_320x240_video_in_4_kb_is_damaged(path_of):
    path = path_of("promise")
    _facts, meta = _read(path)
    assert path.stat().st_size == 4096
    assert (meta.media_kind, meta.width, meta.height, meta.duration_s) == ("video", 320, 240, 5.0)
    assert meta.integrity_status == "damaged"
    assert meta.integrity_detail.startswith("track 1 chunk 1 at offset ")
    assert meta.integrity_detail.endswith("ends past the end of the 4096-byte file")


def test_a_transport_stream_cut_mid_packet_is_damaged_naming_where(path_of):
    _facts, meta = _read(path_of("cut_ts"))
    assert meta.media_kind == "video"
    assert (meta.integrity_status, meta.integrity_detail) == (
        "damaged", "MPEG-TS truncated (last packet cut at byte 1980: it starts at byte 1880 and holds 100 of its "
                   "188 bytes)")


def test_a_transport_stream_that_loses_sync_in_its_first_packets_is_damaged(path_of, tmp_path):
    broken = tmp_path / "desync.ts"
    data = bytearray(path_of("ts").read_bytes())
    data[188 * 2] = 0x00
    broken.write_bytes(bytes(data))
    assert check_structure(broken).problem == (
        "MPEG-TS sync lost at byte 376 (packet 3): found 0x00 where every 188-byte packet has 0x47")


def test_a_dv_file_that_is_not_whole_dif_sequences_is_damaged(path_of, tmp_path):
    cut = tmp_path / "cut.dv"
    cut.write_bytes(path_of("dv").read_bytes()[:150_000])
    assert check_structure(cut).problem == (
        "DV truncated: 150000 bytes is not a whole number of 12000-byte DIF sequences (the last one starts at byte "
        "144000 and holds 6000 bytes)")


def test_a_truncated_heic_is_a_damaged_photo(path_of, tmp_path):
    cut = tmp_path / "cut.heic"
    data = path_of("heic").read_bytes()
    cut.write_bytes(data[: len(data) - 100])
    _facts, meta = _read(cut)
    assert (meta.media_kind, meta.integrity_status) == ("photo", "damaged")
    assert meta.integrity_detail.startswith("box 'mdat' at offset ")


# ----------------------------------------------------------------------------- what the profile calls the file


def test_text_named_like_a_recording_is_unreadable_naming_its_first_bytes(tmp_path, ffmpeg_available):
    fake = tmp_path / "CLIP0001.MP4"
    fake.write_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n")
    _facts, meta = _read(fake)
    assert (meta.media_kind, meta.integrity_status) == ("other", "unreadable")
    assert meta.integrity_detail == (
        "named like a recording but its content is not a recognised audiovisual format (first bytes "
        "47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a = b'GET / HTTP/1.1\\r\\n'); "
        "ffprobe: Invalid data found when processing input")


@pytest.mark.parametrize("role", ["unlisted", "housekeeping"])
def test_a_file_that_is_not_media_and_not_a_recording_is_kept_as_found(tmp_path, ffmpeg_available, role):
    notes = tmp_path / "MISC" / "VERSION.TXT"
    notes.parent.mkdir()
    notes.write_text("firmware 1.2.3\n")
    _facts, meta = _read(notes, role=role)
    assert (meta.media_kind, meta.integrity_status, meta.integrity_detail) == (
        "other", "ok", "not audiovisual media; kept as found")


def test_a_truncated_thumbnail_kept_as_housekeeping_is_a_damaged_jpeg(tmp_path, ffmpeg_available):
    thm = tmp_path / "GOPR0001.THM"
    thm.write_bytes(make_photo(tmp_path / "thumb.jpg", size="160x120").read_bytes()[:2000])
    _facts, meta = _read(thm, role="housekeeping")
    assert (meta.media_kind, meta.integrity_status, meta.integrity_detail) == (
        "other", "damaged", "JPEG end-of-image marker missing (truncated)")


# ----------------------------------------------------------------------------- sniffing, on bytes


def _ts_packets(count: int, packet: int = 188) -> bytes:
    one = b"\x47\x40\x00\x10" + b"\xff" * 184
    return b"".join((b"\x00\x00\x00\x00" if packet == 192 else b"") + one for _ in range(count))


@pytest.mark.parametrize(("head", "expected"), [
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "mp4"),
    (b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00M4A isomiso2", "mp4"),
    (b"\x00\x00\x00\x18ftyp3gp4\x00\x00\x00\x00isom3gp4", "mp4"),
    (b"\x00\x00\x00\x18ftyp3gp5\x00\x00\x00\x00isom3gp5", "mp4"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heif"),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heif"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "heif"),
    (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "mp4"),
    (_ts_packets(4), "mpegts"),
    (_ts_packets(4, 192), "m2ts"),
    (bytes.fromhex("060e2b34020501010d01020101020400") + b"\x83\x00\x00\x88", "mxf"),
    (b"\x00\x00\x00\x01\x67\x42\xc0\x0a\xda\x0a\x00\x00\x00\x01\x68\xce", "h264"),
    (b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x64", "h264"),
    (b"\x00\x00\x01\x06\x05\xff\x00\x00\x01\x65\x88", "h264"),
    (b"\x00\x00\x00\x01\x40\x01\x0c\x01\xff\xff\x00\x00\x00\x01\x42\x01", "hevc"),
    (b"\x00\x00\x00\x01\x46\x01\x10\x00\x00\x00\x01\x40\x01", "hevc"),
    (b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01", "mpegps"),
    (b"\xff\xf1\x50\x80\x02\x1f\xfc\x21", "aac"),
    (b"\xff\xf9\x50\x80\x02\x1f\xfc\x21", "aac"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xf1\x50\x80\x02\x1f\xfc", "aac"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00fLaC\x00\x00\x00\x22", "flac"),
    (b"ID3\x04\x00\x00\x00\x00\x02\x00", "mp3"),
    (b"\xff\xfb\x90\x64\x00\x00\x00\x00", "mp3"),
    (b"fLaC\x00\x00\x00\x22", "flac"),
    (b"OggS\x00\x02\x00\x00", "ogg"),
    (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + b"\x00" * 8, "asf"),
    (b"FLV\x01\x05\x00\x00\x00\x09", "flv"),
    (b"GIF89a\x10\x00\x10\x00", "gif"),
    (b"BM\x46\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00", "bmp"),
    (b"II*\x00\x08\x00\x00\x00", "tiff"),
    (b"MM\x00*\x00\x00\x00\x08", "tiff"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
    (b"\x1a\x45\xdf\xa3\x01\x00", "matroska"),
    (b"#!AMR-WB\n", "amr"),
    (b"", "empty"),
])
def test_sniffing_names_the_container_from_its_first_bytes(head, expected):
    assert sniff_format(head) == expected


def test_sniffing_dv_needs_a_dif_header_and_a_subcode_block_after_it():
    header = b"\x1f\x07\x00\xbf" + b"\xff" * 76
    assert sniff_format(header + b"\x3f\x07\x00" + b"\xff" * 77) == "dv"
    assert sniff_format(header + b"\xff" * 80) == "unknown"


@pytest.mark.parametrize("head", [
    b"G",  # one sync byte
    b"GET / HTTP/1.1\r\nHost: example\r\n" * 20,  # text starting with "G"
    b"G" * 600,  # sync bytes everywhere, but no packet header is ever valid
    b"\x47" + b"\x00" * 187 + b"\x47" + b"\x00" * 100,  # two packets are not a stream
    b"BM is a text file",  # BMP magic without a header
    b"\x00\x00\x01\xb3\x14\x00\xf0\x13",  # MPEG-1/2 video elementary stream: ffprobe's business
    b"\x00\x00\x00\x01\x67\x42",  # one H.264 NAL header and nothing after it
    b"\x00\x00\x00\x01\x0c\xff\x00\x00\x01",  # filler data (H.264) / a TSA slice (HEVC): no stream starts so
    b"\xff\xfb\xf0\x00",  # MPEG audio sync with the "bad" bitrate index 15
    b"hello world, not media",
])
def test_near_misses_stay_unknown(head):
    assert sniff_format(head) == "unknown"


def test_the_avchd_and_dv_clocks_are_read_from_bytes_alone(path_of):
    assert avchd_recording_time(path_of("mts").read_bytes()[:192 * 64]) == "2026-11-20 14:10:05"
    assert avchd_recording_time(path_of("ts").read_bytes()[:188 * 64], 188, 0) is None
    assert dv_recording_time(path_of("dv").read_bytes()[:12000]) == "2026-11-20 14:10:05"
    assert dv_recording_time(b"\xff" * 12000) is None
    assert LOCAL_WALL.strftime("%Y-%m-%d %H:%M:%S") == "2026-11-20 14:10:05"


# ----------------------------------------------------------------------------- a hostile index stays bounded


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _moov(stbl: bytes, extra: bytes = b"") -> bytes:
    tkhd = _box(b"tkhd", b"\x00\x00\x00\x03" + b"\x00" * 8 + struct.pack(">I", 7) + b"\x00" * 68)  # track_ID 7
    minf = _box(b"minf", _box(b"stbl", stbl))
    return extra + _box(b"trak", tkhd + _box(b"mdia", minf))


def _full(entries: bytes, count: int, prefix: bytes = b"") -> bytes:
    return b"\x00\x00\x00\x00" + prefix + struct.pack(">I", count) + entries


def test_a_sample_table_check_on_a_hand_made_index_finds_the_chunk_past_the_end():
    stbl = (_box(b"stco", _full(struct.pack(">II", 100, 900), 2))
            + _box(b"stsc", _full(struct.pack(">III", 1, 2, 1), 1))
            + _box(b"stsz", _full(struct.pack(">IIII", 50, 50, 60, 60), 4, prefix=b"\x00\x00\x00\x00")))
    assert check_sample_tables(_moov(stbl), 1000).problem == (
        "track 7 chunk 2 at offset 900 + 120 bytes ends past the end of the 1000-byte file")
    assert check_sample_tables(_moov(stbl), 1020).problem is None


def test_a_table_that_claims_more_entries_than_its_box_holds_is_a_corrupt_index_not_a_hang():
    stbl = (_box(b"stco", _full(b"", 0xFFFFFFFF)) + _box(b"stsc", _full(b"", 0))
            + _box(b"stsz", _full(b"", 0, prefix=b"\x00\x00\x00\x00")))
    assert check_sample_tables(_moov(stbl), 1000).problem == (
        "index ('moov') is corrupt: track 7 'stco' declares 4294967295 entries but its box holds only 0")


def test_a_table_larger_than_the_budget_is_skipped_with_a_note_never_a_problem():
    count = MAX_TABLE_ENTRIES + 1
    stbl = (_box(b"stco", _full(b"\x00\x00\x00\x10" * count, count)) + _box(b"stsc", _full(b"", 0))
            + _box(b"stsz", _full(b"", 0, prefix=b"\x00\x00\x00\x00")))
    check = check_sample_tables(_moov(stbl), 1000)
    assert check.problem is None
    assert check.note == (f"track 7 'stco' lists {count} entries (more than the {MAX_TABLE_ENTRIES} checked): "
                          "its chunks were not checked")


def test_a_fragmented_movie_is_not_checked_and_not_called_damaged(tmp_path, ffmpeg_available):
    path = tmp_path / "frag.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
                    "-movflags", "frag_keyframe+empty_moov", str(path)], check=True)
    structure = check_structure(path)
    assert structure.problem is None
    assert structure.note is not None and "sample tables not checked" in structure.note
