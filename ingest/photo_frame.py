"""A photo's picture decoded for its thumbnail, and a picture written as one: the decoding that runs in the
thumbnail process (ingest.photo_child), kept free of the catalogue and the store so that process starts quickly.
"""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

from ingest.describe.image_header import HEADER_ERRORS, ImageHeader, read_image_header

__all__ = [
    "DECODE_BYTES_PER_PIXEL",
    "JPEG_FORMATS",
    "MAX_DECODED_PIXELS",
    "MAX_THUMBNAIL_HEIGHT",
    "THUMBNAIL_WIDTH",
    "TooLargeToDecode",
    "decode_whole",
    "encode_thumbnail",
    "image_frame",
    "load_cv2",
    "photo_frame",
    "reduction",
    "write_thumbnail",
]

logger = logging.getLogger(__name__)

#: Thumbnail width in pixels (height keeps the aspect ratio).
THUMBNAIL_WIDTH = 320
#: The tallest thumbnail made: a photo or frame of an extreme shape (1 × 65,500 pixels) is cropped to it rather
#: than scaled to a thumbnail of gigabytes.
MAX_THUMBNAIL_HEIGHT = 4 * THUMBNAIL_WIDTH
#: The most pixels of picture decoded for one thumbnail, judged from the header before a pixel is decoded (a
#: clear refusal naming the size; what the header cannot tell, such as a progressive JPEG's coefficient buffers,
#: is bounded by the decoding process's memory limit, ingest.photo_child). A JPEG is decoded by the JPEG decoder
#: itself at 1/2, 1/4 or 1/8 of its size while it stays THUMBNAIL_WIDTH wide, so every JPEG the decoder reads fits
#: (libjpeg-turbo reads sides up to 65,500: 65,500 x 65,500 decodes to 8,188 x 8,188; 65,500 x 639 at full
#: size); a photo of another format larger than this gets no thumbnail (a recorded failure). OpenCV is held to it
#: too (OPENCV_IO_MAX_IMAGE_PIXELS, set before OpenCV is first loaded unless the environment sets it).
MAX_DECODED_PIXELS = 8192 * 8192
#: Formats (Pillow's names) that OpenCV's JPEG decoder reads, and so can decode reduced.
JPEG_FORMATS = frozenset({"JPEG", "MPO"})


def load_cv2() -> Any:
    """OpenCV, loaded when first used (OpenCV and NumPy cost a station ~30 MB of memory otherwise), held to
    MAX_DECODED_PIXELS for every image it decodes (it reads the limit once, when it is loaded)."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_DECODED_PIXELS))
    import cv2
    return cv2


def reduction(width: int, height: int, *, wanted: int = THUMBNAIL_WIDTH) -> int:
    """The largest of 8, 4, 2 by which a JPEG of *width* x *height* can be decoded and still be *wanted* pixels
    wide whichever way its EXIF orientation turns it; 1 when it cannot be reduced."""
    return next((scale for scale in (8, 4, 2) if min(width, height) // scale >= wanted), 1)


def photo_frame(data: bytes) -> Any:
    """The picture in a photo's bytes for its thumbnail (BGR, EXIF orientation applied), decoded with at most
    MAX_DECODED_PIXELS: a JPEG reduced by its decoder (`reduction`), other formats by OpenCV at full size, and what
    OpenCV cannot decode (HEIF/HEIC/AVIF from phones) by Pillow with pillow-heif.

    Raises:
      ValueError: it cannot be decoded, or decoding it would take more than MAX_DECODED_PIXELS (the size named).
    """
    try:
        header: ImageHeader | None = read_image_header(io.BytesIO(data))
    except HEADER_ERRORS:
        header = None  # OpenCV may still read it, held to MAX_DECODED_PIXELS by its own check
    scale = 1
    if header is not None:
        scale = reduction(header.width, header.height) if header.format in JPEG_FORMATS else 1
        decoded = -(-header.width // scale) * -(-header.height // scale)
        if decoded > MAX_DECODED_PIXELS:
            raise ValueError(f"the {header.format or 'image'} is {header.width} x {header.height} pixels: a "
                             f"thumbnail of it would decode {decoded / 1e6:.0f} megapixels, more than the "
                             f"{MAX_DECODED_PIXELS / 1e6:.0f} decoded for one (the original is kept as it is)")
    frame = image_frame(data, scale=scale)
    if frame is None and header is not None:  # Pillow, at the same reduced scale (its MemoryError: the caller's)
        frame = _pillow_frame(data, scale=scale)
    if frame is None:
        raise ValueError("OpenCV cannot decode the image" if header is None else
                         f"neither OpenCV nor Pillow can decode the {header.format or 'image'}")
    return frame


def image_frame(data: bytes, *, scale: int = 1) -> Any:
    """The picture in an image file's bytes decoded by OpenCV as cv2.imread decodes the file (EXIF orientation
    applied), a JPEG at 1/*scale* of its size (1, 2, 4 or 8); None when OpenCV cannot decode its format.

    Raises:
      ValueError: OpenCV refused it (past its pixel limit) or failed on it.
    """
    cv2 = load_cv2()
    import numpy as np
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}[scale]
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags) if data else None
    except cv2.error as exc:
        raise ValueError(f"OpenCV cannot decode the image: {exc}") from exc


def _pillow_frame(data: bytes, *, scale: int = 1) -> Any:
    """The picture decoded by Pillow (pillow-heif for HEIF), EXIF orientation applied, as a BGR array; None when
    Pillow cannot decode it either (MemoryError, and what pillow-heif raises, RuntimeError, go to the caller). A
    JPEG is decoded at 1/*scale* by the JPEG decoder (Pillow's draft mode), as OpenCV did. Its size was checked
    against MAX_DECODED_PIXELS by the caller."""
    import numpy as np
    from PIL import Image, ImageOps
    try:
        with Image.open(io.BytesIO(data)) as img:
            if scale > 1:
                img.draft("RGB", (img.size[0] // scale, img.size[1] // scale))
            upright = ImageOps.exif_transpose(img) or img
            rgb = np.asarray(upright.convert("RGB"))
    except (*HEADER_ERRORS, EOFError) as exc:
        logger.info("Pillow cannot decode the image either: %s", exc)
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])


class TooLargeToDecode(MemoryError):
    """The header says that decoding the picture whole would take more memory than the decode may use."""


#: Memory a whole decode by Pillow takes per pixel, at most (measured 2026-12-02: 19 bytes for an 8192 x 8192 HEIC
#: through pillow-heif, the coded planes, libheif's conversion and Pillow's copy): with some room on top.
DECODE_BYTES_PER_PIXEL = 24


def decode_whole(data: bytes, *, memory_bytes: int) -> None:
    """Decode every pixel of the image *data* with Pillow (pillow-heif for HEIF): the decode check of a photo that
    ffmpeg does not read, run in the photo process (ingest.photo_child), where the process's memory limit
    (*memory_bytes*) bounds it instead of Pillow's decompression-bomb guard. A decoder short of memory fails in
    its own words (libheif: "Decoder plugin generated an error"), which would read as damage, so a picture whose
    header says it needs more than *memory_bytes* (DECODE_BYTES_PER_PIXEL) is not decoded at all.

    Raises:
      TooLargeToDecode: too large to decode here (no verdict).
      Whatever the decoder raises on it: the image is damaged.
    """
    from PIL import Image
    header = read_image_header(io.BytesIO(data))
    need = header.width * header.height * DECODE_BYTES_PER_PIXEL
    if need > memory_bytes:
        raise TooLargeToDecode(
            f"the {header.format or 'image'} is {header.width} x {header.height} pixels: decoding it whole would "
            f"take about {need // 2**20} MB, more than the {memory_bytes // 2**20} MB a photo's decode may take")
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def encode_thumbnail(frame: Any, *, width: int = THUMBNAIL_WIDTH) -> bytes:
    """*frame* scaled to *width* (aspect kept; a frame taller than MAX_THUMBNAIL_HEIGHT allows cropped to its top)
    as JPEG bytes. Raises ValueError when it cannot be encoded."""
    cv2 = load_cv2()
    if frame.shape[0] * width > MAX_THUMBNAIL_HEIGHT * frame.shape[1]:  # taller than the tallest thumbnail: the
        frame = frame[:max(1, frame.shape[1] * MAX_THUMBNAIL_HEIGHT // width)]  # top of it, before scaling
    height = min(MAX_THUMBNAIL_HEIGHT, max(1, round(frame.shape[0] * width / frame.shape[1])))
    small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("OpenCV cannot encode the thumbnail")
    return bytes(encoded)


def write_thumbnail(frame: Any, dest: Path, *, width: int = THUMBNAIL_WIDTH) -> Path:
    """*frame* as a thumbnail (`encode_thumbnail`) at *dest*. Raises ValueError when it cannot be encoded, OSError
    when it cannot be written (this machine's fault, not the media's: a full work folder)."""
    dest.write_bytes(encode_thumbnail(frame, width=width))
    return dest
