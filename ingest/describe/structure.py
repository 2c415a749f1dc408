"""Quick structural checks: what the file is by its content, and does its own framing agree with its length?

Reads only headers and indexes (a few KiB, or a movie's `moov`, however large the file is). The verdict
combines with ffprobe's in `ingest.describe.metadata`: a file whose structure is broken is `damaged`; one nothing can
parse is `unreadable`. The name of a file never decides its format: its first bytes do (`sniff_format`).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from ingest.describe.bmff import check_image_boxes, check_movie_boxes, major_brand

__all__ = [
    "AUDIO_BRANDS", "AUDIO_FORMATS", "HEAD_BYTES", "HEIF_BRANDS", "MOVIE_FORMATS", "PHOTO_FORMATS", "RAW_STREAMS",
    "Structure", "avchd_recording_time", "check_structure", "dv_recording_time", "sniff_format",
]

#: Bytes read from the start of a file to name its format.
HEAD_BYTES = 4096
#: ISO-BMFF major brands of still images (HEIF/HEIC/AVIF) rather than movies.
HEIF_BRANDS = frozenset({"heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", "avif", "avis"})
#: Still-image formats (photos): described from their header and EXIF, never sent to ffprobe.
PHOTO_FORMATS = frozenset({"jpeg", "png", "heif", "tiff", "webp", "gif", "bmp"})
#: Containers that only ever hold sound (Ogg nearly always does: Vorbis/Opus; its streams say when not).
AUDIO_FORMATS = frozenset({"wav", "amr", "mp3", "aac", "flac", "ogg"})
#: Containers made for moving pictures: video even when ffprobe cannot read them (damaged then, not "other").
MOVIE_FORMATS = frozenset({"mp4", "avi", "matroska", "mpegts", "m2ts", "mxf", "dv", "h264", "hevc", "mpegps", "asf",
                           "flv"})
#: ISO-BMFF major brands of audio-only files (iTunes M4A/M4B/M4P).
AUDIO_BRANDS = frozenset({"M4A ", "M4B ", "M4P "})
#: Elementary streams without a container (no duration or date is normal for them), with their codec's name.
RAW_STREAMS = {"h264": "H.264", "hevc": "HEVC"}
#: Transport-stream packets whose sync byte is checked at the start of the file.
TS_PACKETS_CHECKED = 64
_TS_SYNC = 0x47
_BMFF_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_RIFF_FORMS = {b"WAVE": "wav", b"AVI ": "avi", b"WEBP": "webp"}  # RIFF form type -> format
_MXF_PARTITION = bytes.fromhex("060e2b34020501010d01020101020000")[:14]
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_BMP_HEADERS = (12, 40, 52, 56, 64, 108, 124)
_DIF_SEQUENCE_BYTES = 12000  # 150 DIF blocks of 80 bytes; a DV frame is 10 (525/60) or 12 (625/50) of them
#: AVCHD camcorders (Sony, Panasonic, Canon, JVC) put a "modified DV pack" block in an H.264 SEI message of the
#: first access unit: this UUID, "MDPM", a count, then 5-byte records (tag 0x18: zone, year, year, month;
#: tag 0x19: day, hour, minute, second; all BCD). ffprobe does not show it.
_MDPM_MARKER = bytes.fromhex("17ee8c60f84d11d98cd60800200c9a66") + b"MDPM"
_H264_TYPES = {1, 5, 6, 7, 9}  # slice, IDR slice, SEI, SPS, access unit delimiter
_HEVC_TYPES = {32, 33, 34, 35, 39}  # VPS, SPS, PPS, access unit delimiter, prefix SEI


@dataclass(frozen=True)
class Structure:
    format: str  # see sniff_format; "empty" for 0 bytes
    problem: str | None  # None: nothing wrong found
    brand: str | None = None  # ISO-BMFF major brand as written ("isom", "qt  ", "M4A ", "3gp6", "heic")
    note: str | None = None  # worth knowing, not damage (a check skipped, a trailer stepped over)
    first_bytes: bytes = b""  # the first 16 bytes: what an unrecognised file starts with
    embedded_time: str | None = None  # wall-clock "YYYY-MM-DD HH:MM:SS" that ffprobe hides (DV VAUX, AVCHD MDPM)


def _is_mpeg_audio(head: bytes) -> bool:
    """An MPEG-1/2/2.5 layer III frame header: sync, a real version, bitrate and sample rate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def _is_adts(head: bytes) -> bool:
    """An ADTS AAC frame header (FFF1/FFF9 without CRC, FFF0/FFF8 with): sync, layer 0, a real sample rate."""
    return len(head) >= 7 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 0x0F < 13


def _packets_in_sync(head: bytes, packet: int, sync_at: int) -> bool:
    """The first packet and most of the first eight (at least three) start with a sync byte whose header has an
    adaptation-field control other than the reserved 00 (which rules out a text of capital Gs). Not all of
    them: a stream that loses sync early is still a stream, and `_check_transport` names the damage."""
    positions = range(sync_at, min(len(head) - 3, sync_at + 8 * packet), packet)
    synced = [head[p] == _TS_SYNC and head[p + 3] & 0x30 != 0 for p in positions]
    return bool(synced) and synced[0] and sum(synced) >= 3 and 2 * sum(synced) > len(synced)


def _annexb(head: bytes) -> str | None:
    """h264 / hevc for a raw Annex-B stream: a start code, a NAL header valid for one codec only, another start code."""
    zeros = len(head[:16]) - len(head[:16].lstrip(b"\x00"))
    if not 2 <= zeros <= 8 or len(head) < zeros + 3 or head[zeros] != 1:
        return None
    b0, b1 = head[zeros + 1], head[zeros + 2]
    if b0 & 0x80 or head.find(b"\x00\x00\x01", zeros + 1) < 0:
        return None
    # HEVC: 6-bit type, layer 0 (the 6 bits straddling both bytes), temporal id + 1 never 0
    if (b0 >> 1) & 0x3F in _HEVC_TYPES and b0 & 1 == 0 and b1 >> 3 == 0 and b1 & 7:
        return "hevc"
    # H.264: 5-bit type; SEI and delimiters carry nal_ref_idc 0, SPS and IDR slices never do
    kind, ref = b0 & 0x1F, (b0 >> 5) & 3
    if kind in _H264_TYPES and not (kind in (6, 9) and ref) and not (kind in (5, 7) and not ref):
        return "h264"
    return None


def _is_dv(head: bytes) -> bool:
    """A DIF sequence: the header block (as ffmpeg's dv probe matches it) then a subcode block 80 bytes on."""
    if len(head) < 84:
        return False
    state = int.from_bytes(head[:4], "big")
    return state & 0xFFFFFF7F == 0x1F07003F and head[80] & 0xE0 == 0x20 and head[81] & 0x07 == 0x07


#: A rule names a format from a file's first bytes, or returns None when the bytes are not that format.
_Sniffer = Callable[[bytes], str | None]


def _starts(fmt: str, *signatures: bytes) -> _Sniffer:
    """A format known by a fixed signature at the start of the file."""
    return lambda head: fmt if head.startswith(signatures) else None


def _when(fmt: str, test: Callable[[bytes], bool]) -> _Sniffer:
    """A format known by a check of its header."""
    return lambda head: fmt if test(head) else None


def _sniff_bmff(head: bytes) -> str | None:
    """ISO-BMFF: a known first box; a still-image major brand makes it HEIF."""
    if len(head) >= 8 and head[4:8] in _BMFF_FIRST_BOXES:
        return "heif" if (major_brand(head) or "") in HEIF_BRANDS else "mp4"
    return None


def _sniff_riff(head: bytes) -> str | None:
    return _RIFF_FORMS.get(head[8:12]) if head.startswith(b"RIFF") else None


def _is_bmp(head: bytes) -> bool:
    return head[:2] == b"BM" and len(head) >= 18 and head[6:10] == b"\0\0\0\0" and head[14] in _BMP_HEADERS


def _sniff_id3(head: bytes) -> str | None:
    """An ID3 tag precedes MP3, but also FLAC and ADTS AAC: look past the tag when it ends inside the head."""
    if head[:3] != b"ID3" or len(head) < 10:
        return None
    tag_end = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
    after = head[tag_end:]
    if after[:4] == b"fLaC":
        return "flac"
    return "aac" if _is_adts(after) else "mp3"


#: How each format is recognised, tried in this order (the first that answers wins): signatures before header
#: checks, and the loosest checks (MPEG audio frame sync, transport packets, raw Annex-B streams) last.
_SNIFFERS: tuple[_Sniffer, ...] = (
    _sniff_bmff,
    _sniff_riff,
    _starts("wav", b"RF64", b"BW64"),
    _starts("jpeg", b"\xff\xd8\xff"),
    _starts("png", b"\x89PNG\r\n\x1a\n"),
    _starts("gif", b"GIF87a", b"GIF89a"),
    _when("bmp", _is_bmp),
    _starts("tiff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    _starts("amr", b"#!AMR\n", b"#!AMR-WB\n"),
    _starts("matroska", b"\x1a\x45\xdf\xa3"),
    _starts("flac", b"fLaC"),
    _starts("ogg", b"OggS"),
    _starts("asf", _ASF_GUID),
    _starts("flv", b"FLV\x01"),
    _sniff_id3,
    _when("mp3", _is_mpeg_audio),
    _when("aac", _is_adts),
    _when("mxf", lambda head: _MXF_PARTITION in head[:HEAD_BYTES]),  # SMPTE 377 header partition, maybe after a run-in
    # 4-byte arrival timestamp before each 188-byte packet (AVCHD .MTS, Blu-ray)
    _when("m2ts", lambda head: _packets_in_sync(head, 192, 4)),
    _when("mpegts", lambda head: _packets_in_sync(head, 188, 0)),
    _starts("mpegps", b"\x00\x00\x01\xba"),
    _when("dv", _is_dv),
    _annexb,
)


def sniff_format(head: bytes) -> str:
    """Name the container from its first bytes (pure): mp4 (every ISO-BMFF movie: MP4/MOV/3GP/M4A/INSV), heif,
    wav, avi, webp, jpeg, png, gif, bmp, tiff, amr, matroska, mp3, aac (ADTS), flac, ogg, asf, flv, mpegts, m2ts,
    mpegps, mxf, dv, h264, hevc; "empty" for no bytes; "unknown" otherwise."""
    if not head:
        return "empty"
    return next((fmt for sniff in _SNIFFERS if (fmt := sniff(head)) is not None), "unknown")


# ----------------------------------------------------------------------------- per-format checks


def _check_riff(fh: BinaryIO, size: int, kind: str) -> str | None:
    fh.seek(0)
    head = fh.read(12)
    if head[:4] in (b"RF64", b"BW64"):
        return None  # 64-bit sizes live in a ds64 chunk; ffprobe judges these
    declared = struct.unpack("<I", head[4:8])[0] + 8
    if declared > size:
        return f"RIFF header declares {declared} bytes but the file has {size} (truncated)"
    if kind != "wav":
        return None
    offset = 12
    while offset + 8 <= min(declared, size):
        fh.seek(offset)
        chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
        if offset + 8 + chunk_size > size:
            return (f"chunk {chunk_id.decode('latin-1')!r} at offset {offset} declares {chunk_size} bytes "
                    f"but only {size - offset - 8} remain (truncated)")
        offset += 8 + chunk_size + (chunk_size & 1)
    return None


def _check_jpeg(fh: BinaryIO, size: int) -> str | None:
    fh.seek(max(0, size - 64))
    tail = fh.read(64).rstrip(b"\x00")
    if not tail.endswith(b"\xff\xd9"):
        return "JPEG end-of-image marker missing (truncated)"
    return None


def _check_transport(fh: BinaryIO, start: bytes, size: int, packet: int, sync_at: int) -> str | None:
    """Whole packets only, and the sync byte where it belongs in the first packets (*start*) and the last."""
    name = "M2TS" if packet == 192 else "MPEG-TS"
    for index in range(min(TS_PACKETS_CHECKED, len(start) // packet)):
        at = index * packet + sync_at
        if start[at] != _TS_SYNC:
            return (f"{name} sync lost at byte {at} (packet {index + 1}): found 0x{start[at]:02x} where every "
                    f"{packet}-byte packet has 0x47")
    whole = size // packet * packet
    if whole != size:
        return (f"{name} truncated (last packet cut at byte {size}: it starts at byte {whole} and holds "
                f"{size - whole} of its {packet} bytes)")
    if whole > len(start):
        fh.seek(whole - packet + sync_at)
        found = fh.read(1)
        if found != bytes([_TS_SYNC]):
            return (f"{name} sync lost at byte {whole - packet + sync_at} (the last packet): found "
                    f"0x{found.hex() or '--'} where every {packet}-byte packet has 0x47")
    return None


def _payloads(start: bytes, packet: int, sync_at: int) -> dict[int, bytes]:
    """The transport packets' payloads in *start*, joined per PID (adaptation fields skipped)."""
    joined: dict[int, bytearray] = {}
    for at in range(sync_at, len(start) - 187, packet):
        if start[at] != _TS_SYNC:
            break
        pid, control = (start[at + 1] & 0x1F) << 8 | start[at + 2], (start[at + 3] >> 4) & 3
        if not control & 1:
            continue  # adaptation field only
        first = at + 4 + (1 + start[at + 4] if control & 2 else 0)
        joined.setdefault(pid, bytearray()).extend(start[first:at + 188])
    return {pid: bytes(data) for pid, data in joined.items()}


def avchd_recording_time(start: bytes, packet: int = 192, sync_at: int = 4) -> str | None:
    """The recording date and time an AVCHD camcorder writes in the MDPM block of its first H.264 access unit,
    as "YYYY-MM-DD HH:MM:SS" on the camera's wall clock (its zone byte is not trusted: cameras differ on DST);
    None when absent or not a valid date. *start* is the first packets of an M2TS (or, packet=188, TS). Pure."""
    for data in _payloads(start, packet, sync_at).values():
        at = data.find(_MDPM_MARKER)
        if at < 0:
            continue
        at += len(_MDPM_MARKER)
        block = data[at:at + 1 + 5 * 255].replace(b"\x00\x00\x03", b"\x00\x00")  # undo emulation prevention
        if not block:
            continue
        records = {block[i]: block[i + 1:i + 5] for i in range(1, min(len(block) - 4, 1 + 5 * block[0]), 5)}
        date, time = records.get(0x18), records.get(0x19)
        if date is None or time is None:
            continue
        try:
            when = datetime(_bcd(date[1]) * 100 + _bcd(date[2]), _bcd(date[3]), _bcd(time[0]), _bcd(time[1]),
                            _bcd(time[2]), _bcd(time[3]))
        except ValueError:
            continue
        return when.strftime("%Y-%m-%d %H:%M:%S")
    return None


def _check_dv(size: int) -> str | None:
    if size % _DIF_SEQUENCE_BYTES:
        cut = size // _DIF_SEQUENCE_BYTES * _DIF_SEQUENCE_BYTES
        return (f"DV truncated: {size} bytes is not a whole number of {_DIF_SEQUENCE_BYTES}-byte DIF sequences "
                f"(the last one starts at byte {cut} and holds {size - cut} bytes)")
    return None


def _bcd(value: int) -> int:
    high, low = value >> 4, value & 0x0F
    if high > 9 or low > 9:
        raise ValueError(f"0x{value:02x} is not a BCD number")
    return high * 10 + low


def dv_recording_time(head: bytes) -> str | None:
    """The recording date and time a DV camcorder writes in its VAUX packs (0x62 date, 0x63 time), as
    "YYYY-MM-DD HH:MM:SS" on the camera's wall clock; None when absent or not a valid date. Pure."""
    packs: dict[int, bytes] = {}
    for block in range(0, min(len(head), _DIF_SEQUENCE_BYTES) - 79, 80):
        if head[block] & 0xE0 != 0x40:  # VAUX blocks: section type 2
            continue
        for pack in range(block + 3, block + 78, 5):
            packs.setdefault(head[pack], head[pack + 1:pack + 5])
    date, time = packs.get(0x62), packs.get(0x63)
    if date is None or time is None:
        return None
    try:
        year = _bcd(date[3])
        when = datetime(year + (2000 if year < 70 else 1900), _bcd(date[2] & 0x1F), _bcd(date[1] & 0x3F),
                        _bcd(time[3] & 0x3F), _bcd(time[2] & 0x7F), _bcd(time[1] & 0x7F))
    except ValueError:
        return None  # 0xff fill (no date recorded) or garbage
    return when.strftime("%Y-%m-%d %H:%M:%S")


def check_structure(path: Path) -> Structure:
    """Sniff the format and check its framing against the file size."""
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
        size = fh.seek(0, 2)
        fmt = sniff_format(head)
        first = head[:16]
        if fmt == "empty":
            return Structure(fmt, "empty file (0 bytes)")
        if fmt == "mp4":
            check = check_movie_boxes(fh, size)
            return Structure(fmt, check.problem, brand=major_brand(head), note=check.note, first_bytes=first)
        if fmt == "heif":
            check = check_image_boxes(fh, size)
            return Structure(fmt, check.problem, brand=major_brand(head), note=check.note, first_bytes=first)
        problem: str | None = None
        embedded: str | None = None
        if fmt in ("wav", "avi", "webp"):
            problem = _check_riff(fh, size, fmt)
        elif fmt == "jpeg":
            problem = _check_jpeg(fh, size)
        elif fmt in ("mpegts", "m2ts"):
            packet, sync_at = (192, 4) if fmt == "m2ts" else (188, 0)
            fh.seek(0)
            start = fh.read(packet * TS_PACKETS_CHECKED)
            problem = _check_transport(fh, start, size, packet, sync_at)
            embedded = avchd_recording_time(start, packet, sync_at)
        elif fmt == "dv":
            problem = _check_dv(size)
            fh.seek(0)
            embedded = dv_recording_time(fh.read(_DIF_SEQUENCE_BYTES))
        return Structure(fmt, problem, first_bytes=first, embedded_time=embedded)
