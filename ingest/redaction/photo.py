"""A photo redacted by Pillow and numpy instead of ffmpeg: a phone's HEIF/HEIC (pillow-heif) decodes, and the EXIF
orientation is applied first, so regions and faces are in the pixels of the photo as a viewer shows it and the copy
is stored upright (ffmpeg 5.1 neither decodes HEIC nor turns a JPEG by its EXIF orientation).

The pixelation is the video's (ingest.redaction.render): the picture is divided into (width // block) × (height //
block) cells on its own grid, and inside each region every pixel takes the mean colour of its cell, taken from the
original; what was inside a cell is averaged away. The copy is a JPEG (quality 95) without the original's EXIF.
"""
from __future__ import annotations

import io
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ingest.photo_frame import MAX_DECODED_PIXELS
from ingest.redaction.spec import Box

__all__ = ["JPEG_QUALITY", "open_photo", "photo_renderer", "pixelate", "write_jpeg"]

JPEG_QUALITY = 95


def open_photo(data: bytes, name: str) -> np.ndarray:
    """The photo in *data* as an upright RGB array (its EXIF orientation applied). ValueError naming *name* and why
    when it cannot be decoded (a format Pillow does not read, a damaged file, more than MAX_DECODED_PIXELS)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    import ingest.describe.image_header  # noqa: F401 - registers pillow-heif's opener (HEIF, HEIC, AVIF)

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_DECODED_PIXELS:
                raise ValueError(f"{name}: {image.width}×{image.height} pixels, more than the "
                                 f"{MAX_DECODED_PIXELS} a photo is decoded at")
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{name} cannot be decoded as a photo: {exc}") from exc


def _edges(size: int, block: int) -> list[int]:
    cells = max(1, size // block)
    return [round(n * size / cells) for n in range(cells + 1)]


def pixelate(rgb: np.ndarray, boxes: Iterable[Box], block: int) -> np.ndarray:
    """*rgb* with each box pixelated on the picture's grid of *block*-pixel cells (see the module). Pure."""
    out = rgb.copy()
    height, width = rgb.shape[:2]
    xs, ys = _edges(width, block), _edges(height, block)
    for box in boxes:
        x1, y1 = max(0, box.x), max(0, box.y)
        x2, y2 = min(width, box.x + box.w), min(height, box.y + box.h)
        if x2 <= x1 or y2 <= y1:
            continue
        for row in range(bisect_right(ys, y1) - 1, bisect_left(ys, y2)):
            for column in range(bisect_right(xs, x1) - 1, bisect_left(xs, x2)):
                cell = rgb[ys[row]:ys[row + 1], xs[column]:xs[column + 1]]
                mean = np.rint(cell.reshape(-1, cell.shape[-1]).mean(axis=0)).astype(rgb.dtype)
                out[max(ys[row], y1):min(ys[row + 1], y2), max(xs[column], x1):min(xs[column + 1], x2)] = mean
    return out


def write_jpeg(rgb: np.ndarray, dest: Path) -> Path:
    """*rgb* as a JPEG at *dest* (no EXIF: nothing of the original's metadata)."""
    from PIL import Image

    Image.fromarray(rgb).save(dest, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return dest


def photo_renderer() -> dict[str, str]:
    """What renders a photo's redaction, as the copy's record names it."""
    import pillow_heif
    from PIL import __version__ as pillow

    return {"program": f"Pillow {pillow}, pillow-heif {pillow_heif.__version__}",
            "orientation": "EXIF orientation applied first (the picture as shown)",
            "pixelate": "each cell's mean colour on the picture's grid of block-pixel cells (numpy)",
            "photo": f"JPEG quality {JPEG_QUALITY}, 4:4:4, no EXIF"}
