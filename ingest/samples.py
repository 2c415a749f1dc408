"""Generate realistic sample recorders with ffmpeg and real EXIF writing.

Used by the README's first command and by the tests: one docked device per
built-in profile, with clips carrying creation_time and location tags,
photos with EXIF GPS, Broadcast-WAV and AMR audio, GPS sidecars, and the
broken things real devices hold (a truncated clip, a clip whose header lies
about its length, a zero-byte file, garbage with a media name, a hostile
file name, a symbolic link pointing off the device).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import piexif

from ingest.errors import SampleToolMissing

__all__ = ["HOSTILE_NAME", "SampleSet", "exif_dms", "generate_samples", "make_amr", "make_clip", "make_photo",
           "make_wav", "run_ffmpeg"]

#: A file name with a newline, shell syntax, a parent reference and a byte that is not UTF-8.
HOSTILE_NAME = b"..\n;rm -rf ~;$(reboot) \xff\xfe.mp4"

CN_SERIAL, CN_OFFICER = "A123456", "010203"
SIDE_SERIAL, SIDE_OFFICER = "GPS7788", "020304"
#: The sidecar recorder's own clock runs this many seconds fast.
SIDE_CLOCK_DRIFT_S = 95
BEIJING = (39.9042, 116.4074)
SHANGHAI = (31.2304, 121.4737)


@dataclass(frozen=True)
class SampleSet:
    cn_recorder: Path
    dcim_camera: Path
    sidecar_recorder: Path

    def all(self) -> dict[str, Path]:
        return {"cn-enforcement-recorder": self.cn_recorder, "generic-dcim-camera": self.dcim_camera,
                "gps-sidecar-recorder": self.sidecar_recorder}


def run_ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly with *args* (overwriting its output); SampleToolMissing without ffmpeg."""
    if shutil.which("ffmpeg") is None:
        raise SampleToolMissing("ffmpeg")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_clip(path: Path, *, seconds: float = 2.0, size: str = "320x240", creation_time: str | None = None,
              location: str | None = None, faststart: bool = False, rate: int = 15) -> Path:
    """An H.264/AAC MP4 with optional creation_time and ISO 6709 location tags."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: list[str] = []
    if creation_time:
        meta += ["-metadata", f"creation_time={creation_time}"]
    if location:
        meta += ["-metadata", f"location={location}"]
    flags = ["-movflags", "+faststart"] if faststart else []
    run_ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
            *meta, *flags, str(path))
    return path


def make_wav(path: Path, *, seconds: float = 1.0, bext_local_time: datetime | None = None,
             originator: str = "") -> Path:
    """PCM WAV; with bext_local_time a Broadcast-WAV carrying origination date/time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: list[str] = []
    if bext_local_time is not None:
        meta = ["-write_bext", "1", "-metadata", f"originator={originator}",
                "-metadata", f"origination_date={bext_local_time:%Y-%m-%d}",
                "-metadata", f"origination_time={bext_local_time:%H:%M:%S}"]
    run_ffmpeg("-f", "lavfi", "-i", f"sine=frequency=660:duration={seconds}", "-ac", "1", "-ar", "16000",
            "-c:a", "pcm_s16le", *meta, str(path))
    return path


def make_amr(path: Path, *, seconds: float = 1.0, seed: int = 7) -> Path:
    """AMR-NB (12.2 kbit/s frames). Debian's ffmpeg decodes AMR but cannot encode it, so frames are
    written directly: the '#!AMR' magic, then 50 frames a second of header 0x3C + 31 payload bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    frames = b"".join(b"\x3c" + bytes(rng.getrandbits(8) for _ in range(31)) for _ in range(int(seconds * 50)))
    path.write_bytes(b"#!AMR\n" + frames)
    return path


def _rational(value: float) -> tuple[int, int]:
    return round(value * 1_000_000), 1_000_000


def exif_dms(value: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return (degrees, 1), (minutes, 1), (round(seconds * 10000), 10000)


def make_photo(path: Path, *, taken_local: datetime | None = None, offset: str | None = None,
               gps: tuple[float, float] | None = None, gps_utc: datetime | None = None,
               serial: str | None = None, size: str = "640x480") -> Path:
    """A JPEG from ffmpeg with EXIF written by piexif (DateTimeOriginal, OffsetTimeOriginal, GPS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}", "-frames:v", "1", "-q:v", "5", str(path))
    zeroth = {piexif.ImageIFD.Make: b"EvidenceCam", piexif.ImageIFD.Model: b"EC-1"}
    exif: dict[int, object] = {}
    gps_ifd: dict[int, object] = {}
    if taken_local is not None:
        exif[piexif.ExifIFD.DateTimeOriginal] = taken_local.strftime("%Y:%m:%d %H:%M:%S").encode()
    if offset is not None:
        exif[piexif.ExifIFD.OffsetTimeOriginal] = offset.encode()
    if serial is not None:
        exif[piexif.ExifIFD.BodySerialNumber] = serial.encode()
    if gps is not None:
        lat, lon = gps
        gps_ifd = {
            piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S", piexif.GPSIFD.GPSLatitude: exif_dms(lat),
            piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W", piexif.GPSIFD.GPSLongitude: exif_dms(lon),
        }
        if gps_utc is not None:
            gps_ifd[piexif.GPSIFD.GPSDateStamp] = gps_utc.strftime("%Y:%m:%d").encode()
            gps_ifd[piexif.GPSIFD.GPSTimeStamp] = (_rational(gps_utc.hour), _rational(gps_utc.minute),
                                                   _rational(gps_utc.second))
    piexif.insert(piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps_ifd}), str(path))
    return path


def _truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _set_mtime(path: Path, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def _cn_recorder(root: Path) -> Path:
    dev = root / "cn-recorder"
    ident = ("[DeviceInfo]\r\n产品序号=A123456\r\n警员编号=010203\r\n警员姓名=张三\r\n"
             "单位编号=110105001\r\n单位名称=北京市朝阳区城市管理综合执法局\r\n")
    dev.mkdir(parents=True)
    (dev / "ZFYINFO.TXT").write_bytes(ident.encode("gbk"))
    day = dev / "RECORD" / "20261120"
    prefix = f"ZFY_{CN_SERIAL}_{CN_OFFICER}_20261120"
    # The recorder stamps container times with its local (Beijing) clock but labels them UTC.
    make_clip(day / f"{prefix}_083000.mp4", creation_time="2026-11-20T08:30:00Z",
              location="+39.9042+116.4074/")
    make_clip(day / f"{prefix}_083500_IMP.mp4", creation_time="2026-11-20T08:35:00Z")
    whole = make_clip(day / f"{prefix}_090000.mp4", seconds=3, creation_time="2026-11-20T09:00:00Z")
    _truncate(whole, 0.6)  # moov at the end: cut off, index missing
    lying = make_clip(day / f"{prefix}_090500.mp4", seconds=3, creation_time="2026-11-20T09:05:00Z",
                      faststart=True)
    _truncate(lying, 0.7)  # index first, but mdat declares more bytes than remain
    (day / f"{prefix}_091000.mp4").write_bytes(b"")  # zero-byte file
    (day / f"{prefix}_091500.mp4").write_bytes(random.Random(3).randbytes(4096))  # garbage
    make_clip(Path(os.fsdecode(os.fsencode(day) + b"/" + HOSTILE_NAME)), seconds=1.0,
              creation_time="2026-11-20T09:30:00Z")
    make_photo(dev / "PHOTO" / "20261120" / f"{prefix}_084000.jpg",
               taken_local=datetime(2026, 11, 20, 8, 40, 0), gps=BEIJING,
               gps_utc=datetime(2026, 11, 20, 0, 40, 0, tzinfo=UTC))
    make_wav(dev / "AUDIO" / "20261120" / f"{prefix}_084500.wav", seconds=1.5,
             bext_local_time=datetime(2026, 11, 20, 8, 45, 0), originator=f"ZFY {CN_SERIAL}")
    make_amr(dev / "AUDIO" / "20261120" / f"{prefix}_085000.amr", seconds=1.0)
    os.symlink("/etc/passwd", dev / "RECORD" / "20261120" / f"{prefix}_092000.mp4")
    (dev / "RECORD" / "20261120" / "notes.txt").write_text("not a recording\n", encoding="utf-8")
    return dev


def _dcim_camera(root: Path) -> Path:
    dev = root / "dcim-camera"
    folder = dev / "DCIM" / "100EVCAM"
    make_photo(folder / "IMG_0001.JPG", taken_local=datetime(2026, 11, 20, 14, 5, 0), offset="+08:00",
               gps=SHANGHAI, gps_utc=datetime(2026, 11, 20, 6, 5, 0, tzinfo=UTC), serial="CAM998877")
    make_photo(folder / "IMG_0002.JPG", taken_local=datetime(2026, 11, 20, 14, 6, 0), serial="CAM998877")
    make_clip(folder / "MVI_0003.MP4", creation_time="2026-11-20T06:10:00Z", location="+31.2304+121.4737/")
    _truncate(make_photo(folder / "IMG_0004.JPG", taken_local=datetime(2026, 11, 20, 14, 12, 0)), 0.5)
    _set_mtime(folder / "IMG_0004.JPG", datetime(2026, 11, 20, 6, 12, 30, tzinfo=UTC))
    (folder / "IMG_0001.THM").write_bytes(b"thumbnail")
    return dev


def _sidecar_recorder(root: Path) -> Path:
    dev = root / "sidecar-recorder"
    clips = dev / "CLIPS"
    clips.mkdir(parents=True)
    (dev / "RECORDER.JSON").write_text(json.dumps(
        {"serial": SIDE_SERIAL, "officer_number": SIDE_OFFICER, "officer_name": "李四", "model": "GR-9"},
        ensure_ascii=False), encoding="utf-8")
    start = datetime(2026, 11, 20, 2, 0, 0, tzinfo=UTC)
    drift = timedelta(seconds=SIDE_CLOCK_DRIFT_S)
    for index, (maker, seconds) in enumerate([("mp4", 2.0), ("wav", 1.0)], start=1):
        clip_start = start + timedelta(minutes=10 * index)
        device_local = (clip_start + drift).astimezone(UTC).replace(tzinfo=None) + timedelta(hours=8)
        name = f"CLIP{index:04d}"
        if maker == "mp4":
            make_clip(clips / f"{name}.mp4", seconds=seconds, creation_time=f"{device_local:%Y-%m-%dT%H:%M:%S}Z")
        else:
            make_wav(clips / f"{name}.wav", seconds=seconds)
        track = [{"utc": (clip_start + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"),
                  "lat": SHANGHAI[0] + s * 1e-4, "lon": SHANGHAI[1] + s * 1e-4} for s in range(int(seconds) + 1)]
        (clips / f"{name}.json").write_text(json.dumps({
            "serial": SIDE_SERIAL, "officer_number": SIDE_OFFICER,
            "device_time": f"{device_local:%Y-%m-%d %H:%M:%S}",
            "start_utc": clip_start.isoformat().replace("+00:00", "Z"),
            "end_utc": (clip_start + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
            "track": track}), encoding="utf-8")
    make_clip(clips / "CLIP0003.mp4", creation_time="2026-11-20T10:31:35Z")  # local clock, labelled UTC
    (clips / "CLIP0003.json").write_text('{"start_utc": "yesterday", ', encoding="utf-8")  # broken sidecar
    return dev


def generate_samples(dest: Path) -> SampleSet:
    """Write one sample device per built-in profile under *dest* (which must not exist yet)."""
    dest.mkdir(parents=True, exist_ok=False)
    return SampleSet(cn_recorder=_cn_recorder(dest), dcim_camera=_dcim_camera(dest),
                     sidecar_recorder=_sidecar_recorder(dest))
