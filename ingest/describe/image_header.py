"""An image's header read by Pillow without decoding a pixel: its size, format and EXIF block.

Used where an image is described (ingest.describe.probe) and before one is decoded for its thumbnail
(ingest.derive: the size decides how far the picture is reduced while it is decoded, or that it is not decoded at
all). Importing this module registers pillow-heif, so HEIF/HEIC/AVIF headers are read too.
"""
from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pillow_heif
from PIL import Image, UnidentifiedImageError

__all__ = ["HEADER_ERRORS", "ImageHeader", "jpeg_frame_headers", "read_image_header"]

pillow_heif.register_heif_opener()  # Pillow opens HEIF/HEIC/AVIF from here on

#: What Pillow raises on a header it cannot read.
HEADER_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str  # Pillow's name of it: "JPEG", "MPO" (a camera's multi-picture JPEG), "PNG", "HEIF", ...
    exif: bytes | None  # the raw EXIF block, when the header carries one

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def read_image_header(source: Path | BinaryIO) -> ImageHeader:
    """The header of the image file or open binary file *source*; no pixel is decoded.

    A very large photo (a 400-megapixel panorama or scan) is still a photo: Pillow's decompression-bomb guard
    protects decoding, and nothing is decoded here, so past its limit the header is read by the format's own
    plugin without that check (the guard stays in force for every decode by Pillow).

    Raises one of HEADER_ERRORS when the header is unreadable.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                return _header(img)
    except Image.DecompressionBombError:
        if isinstance(source, Path):
            with source.open("rb") as fh:
                return _read_large(fh, str(source))
        source.seek(0)
        return _read_large(source, "")


def _header(img: Image.Image) -> ImageHeader:
    exif = img.info.get("exif")
    return ImageHeader(img.size[0], img.size[1], img.format or "", exif if isinstance(exif, bytes) else None)


def _read_large(fh: BinaryIO, name: str) -> ImageHeader:
    """What `Image.open` does (each registered format's `accept` test, then its opener on the header) without
    the decompression-bomb check, which only matters when pixels are decoded."""
    Image.init()
    start = fh.tell()
    prefix = fh.read(16)
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        if accept is not None and not accept(prefix):
            continue
        fh.seek(start)
        try:
            img = factory(fh, name)
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
        try:
            return _header(img)
        finally:
            img.close()
    raise UnidentifiedImageError(f"cannot identify image file {name!r}" if name else "cannot identify image file")


#: JPEG markers that start a frame header (SOF0-SOF15 but DHT, JPG and DAC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_frame_headers(fh: BinaryIO) -> int | None:
    """How many frame headers (SOF segments) the marker segments of the JPEG *fh* (a binary file at its start) hold
    before its first scan. A JPEG has one; None when it is not a well-formed run of marker segments from SOI, or
    ends before its first scan. Each segment is stepped over by its length, however many megabytes of metadata
    (extended XMP, ICC profiles) come first."""
    if fh.read(2) != b"\xff\xd8":
        return None
    count = 0
    while len(marker := fh.read(2)) == 2:
        if marker[0] != 0xFF:
            return None
        if marker[1] == 0xFF:  # a fill byte, then the marker
            fh.seek(-1, 1)
            continue
        if marker[1] == 0xDA:  # start of scan: the header is over
            return count
        if 0xD0 <= marker[1] <= 0xD7 or marker[1] == 0x01:  # markers without a length
            continue
        length = fh.read(2)
        if len(length) != 2 or int.from_bytes(length, "big") < 2:
            return None
        count += marker[1] in _SOF_MARKERS
        fh.seek(int.from_bytes(length, "big") - 2, 1)
    return None
