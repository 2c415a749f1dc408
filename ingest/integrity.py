"""Quick structural checks: does the file's own header agree with its length?

Reads only headers (a few KiB however large the file is). The verdict
combines with ffprobe's in `ingest.metadata`: a file whose structure is
broken is `damaged`; one nothing can parse is `unreadable`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["Structure", "check_structure", "sniff_format"]

#: Top-level ISO-BMFF boxes walked before giving up (real files have < 20).
MAX_BOXES = 10_000


@dataclass(frozen=True)
class Structure:
    format: str  # mp4, wav, avi, jpeg, png, amr, empty, unknown
    problem: str | None  # None: nothing wrong found


def sniff_format(head: bytes) -> str:
    """Name the container from its first bytes."""
    if not head:
        return "empty"
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] in (b"RF64", b"BW64"):
        return "wav"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:6] == b"#!AMR\n" or head[:9] == b"#!AMR-WB\n":
        return "amr"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "mp3"
    return "unknown"


def _check_bmff(fh: BinaryIO, size: int) -> str | None:
    offset, seen = 0, []
    for _ in range(MAX_BOXES):
        if offset == size:
            break
        fh.seek(offset)
        header = fh.read(16)
        if len(header) < 8:
            return f"{size - offset} stray byte(s) after the last box at offset {offset}"
        box_size, box_type = struct.unpack(">I4s", header[:8])
        name = box_type.decode("latin-1")
        if box_size == 1:
            if len(header) < 16:
                return f"box {name!r} at offset {offset} is cut inside its header"
            box_size = struct.unpack(">Q", header[8:16])[0]
        elif box_size == 0:
            box_size = size - offset  # "to end of file"
        if box_size < 8:
            return f"box {name!r} at offset {offset} declares an impossible size {box_size}"
        if offset + box_size > size:
            return (f"box {name!r} at offset {offset} declares {box_size} bytes but only "
                    f"{size - offset} remain (file truncated)")
        seen.append(name)
        offset += box_size
    if "moov" not in seen:
        return "no 'moov' index box: the recording was not finalised (truncated or still recording)"
    return None


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


def check_structure(path: Path) -> Structure:
    """Sniff the format and check its framing against the file size."""
    with path.open("rb") as fh:
        head = fh.read(16)
        size = fh.seek(0, 2)
        fmt = sniff_format(head)
        if fmt == "empty":
            return Structure(fmt, "empty file (0 bytes)")
        if fmt == "mp4":
            return Structure(fmt, _check_bmff(fh, size))
        if fmt in ("wav", "avi"):
            return Structure(fmt, _check_riff(fh, size, fmt))
        if fmt == "jpeg":
            return Structure(fmt, _check_jpeg(fh, size))
        return Structure(fmt, None)
