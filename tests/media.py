"""Small real media files in the containers devices write, made by ffmpeg (never downloaded).

Each generator writes one file into *folder* and returns its path; every file is at most a couple of
seconds of small frames. The values written (times, places) are the module constants below, so tests can
assert them. Broken files are real files broken the way devices break them.

Raises SampleToolMissing when ffmpeg (or the encoder a container needs) is not installed.
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import piexif
import pillow_heif
from PIL import Image

from ingest.describe.bmff import INSV_MAGIC
from ingest.errors import SampleToolMissing
from ingest.samples import exif_dms, run_ffmpeg

__all__ = [
    "CREATED_UTC", "LOCAL_WALL", "PLACE", "PLACE_ISO6709", "chunk_runs", "cut_mdat", "has_encoder", "make_3gp",
    "make_avi", "make_dv", "make_faststart_mp4", "make_h264", "make_header_only_mov", "make_heic", "make_hevc",
    "make_insv", "make_m4a", "make_mkv", "make_mov", "make_mp3", "make_mp4_past_eof", "make_mts", "make_mxf",
    "make_promise_in_4kb", "make_truncated_ts", "make_ts",
]

#: The true UTC moment written as creation_time (zone-carrying containers).
CREATED_UTC = datetime(2026, 11, 20, 6, 10, 5, tzinfo=UTC)
#: The device's wall clock written where a container keeps no zone (AVI IDIT, ID3, DV, AVCHD MDPM, EXIF): the same
#: moment in Asia/Shanghai.
LOCAL_WALL = datetime(2026, 11, 20, 14, 10, 5)
PLACE = (31.2304, 121.4737)
PLACE_ISO6709 = "+31.2304+121.4737/"

_CREATED = CREATED_UTC.strftime("%Y-%m-%dT%H:%M:%SZ")
_SMALL = "160x120"


def has_encoder(name: str) -> bool:
    """Whether this ffmpeg can encode with *name* (Debian's has libx265; minimal builds may not)."""
    if shutil.which("ffmpeg") is None:
        raise SampleToolMissing("ffmpeg")
    done = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True)
    return any(line.split()[1:2] == [name] for line in done.stdout.splitlines() if line.strip())


def _video(seconds: float = 1.0, size: str = _SMALL, rate: int = 10, source: str = "testsrc") -> list[str]:
    return ["-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}:duration={seconds}"]


def _tone(seconds: float = 1.0, rate: int = 44100) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate={rate}"]


_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


# ----------------------------------------------------------------------------- whole files


def _bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def make_mts(folder: Path) -> Path:
    """AVCHD-style .MTS: H.264 + AC-3 in 192-byte M2TS packets (4-byte arrival timestamp + TS packet), with the
    camcorder's MDPM recording date/time (LOCAL_WALL, zone byte +08:00) in an SEI of the first access unit,
    inserted by ffmpeg's h264_metadata bitstream filter."""
    path = folder / "00001.MTS"
    when = LOCAL_WALL
    records = bytes([2, 0x18, 0x10, _bcd(when.year // 100), _bcd(when.year % 100), _bcd(when.month),
                     0x19, _bcd(when.day), _bcd(when.hour), _bcd(when.minute), _bcd(when.second)])
    if 0 in records:
        raise ValueError(f"MDPM record {records.hex()} holds a zero byte, which a command-line argument cannot carry")
    sei = "sei_user_data=17ee8c60-f84d-11d9-8cd6-0800200c9a66+MDPM" + records.decode("latin-1")
    run_ffmpeg(*_video(), *_tone(rate=48000), *_X264, "-bsf:v", f"h264_metadata={sei}", "-c:a", "ac3",
            "-f", "mpegts", "-mpegts_m2ts_mode", "1", str(path))
    return path


def make_ts(folder: Path) -> Path:
    """A plain MPEG transport stream (188-byte packets): H.264 + AAC."""
    path = folder / "clip.ts"
    run_ffmpeg(*_video(), *_tone(), *_X264, "-c:a", "aac", "-f", "mpegts", str(path))
    return path


def make_mkv(folder: Path) -> Path:
    """Matroska with DateUTC (ffprobe: creation_time with a zone)."""
    path = folder / "clip.mkv"
    run_ffmpeg(*_video(), *_tone(), *_X264, "-c:a", "aac", "-metadata", f"creation_time={_CREATED}", str(path))
    return path


def make_mxf(folder: Path) -> Path:
    """OP1a MXF as broadcast cameras write it: MPEG-2 4:2:2 720x576 25 fps + PCM 48 kHz; ffmpeg writes
    creation_time as the identification set's modification date."""
    path = folder / "C0001.MXF"
    run_ffmpeg(*_video(0.4, "720x576", 25), *_tone(0.4, 48000), "-c:v", "mpeg2video", "-pix_fmt", "yuv422p",
            "-c:a", "pcm_s16le", "-metadata", f"creation_time={_CREATED}", str(path))
    return path


def make_dv(folder: Path) -> Path:
    """Raw DV (PAL 720x576, PCM 48 kHz stereo), 5 frames; ffmpeg's DV muxer writes creation_time into the
    VAUX recording date/time packs, as a camcorder's clock would (no zone)."""
    path = folder / "tape.dv"
    run_ffmpeg(*_video(0.2, "720x576", 25), *_tone(0.2, 48000), "-c:v", "dvvideo", "-pix_fmt", "yuv420p",
            "-c:a", "pcm_s16le", "-ac", "2", "-metadata", f"creation_time={LOCAL_WALL:%Y-%m-%dT%H:%M:%S}",
            "-f", "dv", str(path))
    return path


def make_heic(folder: Path, *, offset: str = "+08:00") -> Path:
    """An iPhone-like HEIC (pillow-heif/libheif, x265) with EXIF DateTimeOriginal, OffsetTimeOriginal and GPS."""
    path = folder / "IMG_0001.HEIC"
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Make: b"Apple", piexif.ImageIFD.Model: b"iPhone 15"},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: LOCAL_WALL.strftime("%Y:%m:%d %H:%M:%S").encode(),
                 piexif.ExifIFD.OffsetTimeOriginal: offset.encode()},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: exif_dms(PLACE[0]),
                piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: exif_dms(PLACE[1])},
    })
    pillow_heif.register_heif_opener()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, format="HEIF", exif=exif, quality=50)
    return path


def make_insv(folder: Path) -> Path:
    """An Insta360-like .insv: two fisheye video tracks, audio, two timecode (tmcd data) tracks,
    creation_time and location, then a vendor trailer after the last box ending in the Insta360 magic."""
    path = folder / "VID_20261120_141000_00_001.insv"
    run_ffmpeg(*_video(), *_video(source="testsrc2"), *_tone(), "-map", "0:v", "-map", "1:v", "-map", "2:a", *_X264,
            "-c:a", "aac", "-timecode", "14:10:00:00", "-write_tmcd", "1", "-metadata", f"creation_time={_CREATED}",
            "-metadata", f"location={PLACE_ISO6709}", "-f", "mp4", str(path))
    records = bytes(range(256)) * 2  # stands in for gyro / exposure / thumbnail records
    footer = b"\x00" * 32 + struct.pack("<II", len(records) + 72, 3) + INSV_MAGIC
    with path.open("ab") as fh:
        fh.write(records + footer)
    return path


def make_mp3(folder: Path) -> Path:
    """MP3 (libmp3lame) whose ID3v2.4 TDRC holds the recorder's wall clock (ffprobe: date, no zone)."""
    path = folder / "REC0001.MP3"
    run_ffmpeg(*_tone(), "-c:a", "libmp3lame", "-b:a", "64k", "-metadata", f"date={LOCAL_WALL:%Y-%m-%dT%H:%M:%S}",
            str(path))
    return path


def make_m4a(folder: Path) -> Path:
    """An audio-only MP4 (brand 'M4A ') with creation_time, as phone voice recorders write."""
    path = folder / "Voice 001.m4a"
    run_ffmpeg(*_tone(), "-c:a", "aac", "-metadata", f"creation_time={_CREATED}", str(path))
    return path


def make_3gp(folder: Path) -> Path:
    """3GPP (brand '3gp6'): H.264 QCIF + AAC mono, creation_time and location."""
    path = folder / "VID0001.3gp"
    run_ffmpeg(*_video(size="176x144"), *_tone(rate=8000), *_X264, "-c:a", "aac", "-ac", "1",
            "-metadata", f"creation_time={_CREATED}", "-metadata", f"location={PLACE_ISO6709}", str(path))
    return path


def make_mov(folder: Path) -> Path:
    """QuickTime (brand 'qt  ') with creation_time and an ISO 6709 location (ffmpeg writes ©xyz)."""
    path = folder / "IMG_0002.MOV"
    run_ffmpeg(*_video(), *_tone(), *_X264, "-c:a", "aac", "-metadata", f"creation_time={_CREATED}",
            "-metadata", f"location={PLACE_ISO6709}", str(path))
    return path


def _riff_children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    out, offset = [], start
    while offset + 8 <= end:
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        out.append((chunk_id, offset, size))
        offset += 8 + size + (size & 1)
    return out


def make_avi(folder: Path, *, idit: bool = True, icrd: str | None = "2026-11-20") -> Path:
    """MJPEG + PCM AVI with the camera's IDIT date ("Fri Nov 20 14:10:00 2026", no zone) in the header list.

    ffmpeg never writes IDIT, but it leaves JUNK padding in `hdrl`: that chunk is overwritten with IDIT plus a
    smaller JUNK of exactly the same total length, so no offset in the file moves. *icrd* is written with
    `-metadata date=` (the INFO ICRD chunk).
    """
    path = folder / "PICT0001.AVI"
    meta = ["-metadata", f"date={icrd}"] if icrd else []
    run_ffmpeg(*_video(), *_tone(), "-c:v", "mjpeg", "-q:v", "8", "-c:a", "pcm_s16le", *meta, str(path))
    if not idit:
        return path
    data = bytearray(path.read_bytes())
    _riff, hdrl, _size = _riff_children(bytes(data), 12, len(data))[0]
    if data[hdrl + 8:hdrl + 12] != b"hdrl":
        raise RuntimeError(f"ffmpeg's AVI has no hdrl list first (found {bytes(data[hdrl + 8:hdrl + 12])!r})")
    hdrl_size = struct.unpack_from("<I", data, hdrl + 4)[0]
    payload = LOCAL_WALL.strftime("%a %b %d %H:%M:%S %Y").encode() + b"\n\x00"
    junk = next(((off, size) for cid, off, size in _riff_children(bytes(data), hdrl + 12, hdrl + 8 + hdrl_size)
                 if cid == b"JUNK" and size >= len(payload) + 8), None)
    if junk is None:
        raise RuntimeError("ffmpeg's AVI header list has no JUNK chunk large enough to hold an IDIT chunk")
    offset, size = junk
    rest = size - len(payload) - 8  # what is left for the smaller JUNK's payload
    chunk = b"IDIT" + struct.pack("<I", len(payload)) + payload + b"JUNK" + struct.pack("<I", rest) + bytes(rest)
    data[offset:offset + 8 + size] = chunk
    path.write_bytes(bytes(data))
    return path


def make_h264(folder: Path) -> Path:
    """A raw Annex-B H.264 elementary stream (what some recorders and DVR exports write): no container."""
    path = folder / "stream.h264"
    run_ffmpeg(*_video(), *_X264, "-f", "h264", str(path))
    return path


def make_hevc(folder: Path) -> Path:
    """A raw Annex-B HEVC elementary stream (libx265). Raises SampleToolMissing without libx265."""
    if not has_encoder("libx265"):
        raise SampleToolMissing("ffmpeg with libx265")
    path = folder / "stream.h265"
    run_ffmpeg(*_video(), "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-x265-params", "log-level=error", "-f", "hevc", str(path))
    return path


# ----------------------------------------------------------------------------- broken files


def make_faststart_mp4(folder: Path, *, name: str = "whole.mp4", seconds: float = 2.0, size: str = "320x240",
                       rate: int = 15, audio: bool = True) -> Path:
    """An H.264 (+ AAC) MP4 with its index first (`-movflags +faststart`): ftyp, moov, free, mdat."""
    path = folder / name
    sound = [*_tone(seconds), "-c:a", "aac"] if audio else []
    run_ffmpeg(*_video(seconds, size, rate), *sound, *_X264, "-movflags", "+faststart", str(path))
    return path


def _mdat_offset(data: bytes) -> int:
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if kind == b"mdat":
            return offset
        offset += size
    raise RuntimeError("no mdat box in ffmpeg's faststart file")


def cut_mdat(path: Path, keep_bytes: int, *, size_field: str = "exact") -> Path:
    """Cut *path* to *keep_bytes* and rewrite the `mdat` size so the top-level box walk still passes:
    "exact" writes what remains, "to-end" writes 0 ("extends to the end of the file")."""
    data = path.read_bytes()[:keep_bytes]
    mdat = _mdat_offset(data)
    declared = len(data) - mdat if size_field == "exact" else 0
    path.write_bytes(data[:mdat] + struct.pack(">I", declared) + data[mdat + 4:])
    return path


def make_mp4_past_eof(folder: Path) -> Path:
    """A faststart MP4 cut to 60 % with its `mdat` size rewritten to match: only the sample tables show it."""
    path = make_faststart_mp4(folder, name="past_eof.mp4")
    return cut_mdat(path, int(path.stat().st_size * 0.6))


def make_header_only_mov(folder: Path) -> Path:
    """A QuickTime file that is only ftyp + moov (+ free): its sample tables point into an mdat that is not there."""
    path = folder / "header_only.mov"
    run_ffmpeg(*_video(), *_tone(), *_X264, "-c:a", "aac", "-movflags", "+faststart", str(path))
    data = path.read_bytes()
    path.write_bytes(data[:_mdat_offset(data)])
    return path


def make_promise_in_4kb(folder: Path) -> Path:
    """A header that promises 5 s of 320x240 video in 4 KB: the index of a 5-second clip, then an `mdat` that
    "extends to the end of the file" (size 0) and does, after a few hundred bytes."""
    path = make_faststart_mp4(folder, name="promise.mp4", seconds=5, size="320x240", rate=15, audio=False)
    return cut_mdat(path, 4096, size_field="to-end")


def make_truncated_ts(folder: Path) -> Path:
    """A transport stream cut in the middle of a packet (10 whole packets and 100 bytes of the 11th)."""
    path = make_ts(folder).rename(folder / "cut.ts")
    path.write_bytes(path.read_bytes()[:188 * 10 + 100])
    return path


# ----------------------------------------------------------------------------- reading back, independently


def chunk_runs(path: Path) -> dict[int, list[tuple[int, int]]]:
    """Per track (1-based, ffmpeg numbers tracks in stream order): the (offset, bytes) of each chunk, derived
    from ffprobe's packet positions the way ffmpeg's mov muxer builds chunks (contiguous samples of one
    track, up to 1 MiB). Used to check the sample-table verdict against a second opinion."""
    done = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pos,size", "-of", "json",
                           str(path)], capture_output=True, text=True, check=True)
    runs: dict[int, list[tuple[int, int]]] = {}
    for packet in json.loads(done.stdout)["packets"]:
        track, pos, size = packet["stream_index"] + 1, int(packet["pos"]), int(packet["size"])
        chunks = runs.setdefault(track, [])
        if chunks and chunks[-1][0] + chunks[-1][1] == pos and chunks[-1][1] + size < 1 << 20:
            chunks[-1] = (chunks[-1][0], chunks[-1][1] + size)
        else:
            chunks.append((pos, size))
    return runs
