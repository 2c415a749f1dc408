"""A photo redacted by Pillow and numpy instead of ffmpeg: a phone's HEIF/HEIC (pillow-heif) decodes, and the EXIF
orientation is applied first, so regions and faces are in the pixels of the photo as a viewer shows it and the copy
is stored upright (ffmpeg 5.1 neither decodes HEIC nor turns a JPEG by its EXIF orientation).

The pixelation is the video's (ingest.redaction.cells): the picture is divided into (width // block) × (height //
block) cells on its own grid, and inside each region every pixel takes the mean colour of its cell, taken from the
original; what was inside a cell is averaged away. The copy is a JPEG (quality 95) without the original's EXIF.
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ingest.photo_frame import MAX_DECODED_PIXELS
from ingest.redaction.cells import cell_edges, cells_across, pixelate_in_place
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


def pixelate(rgb: np.ndarray, boxes: Iterable[Box], block: int) -> np.ndarray:
    """*rgb* with each box pixelated on the picture's grid of *block*-pixel cells (ingest.redaction.cells). Pure."""
    out = rgb.copy()
    height, width = rgb.shape[:2]
    xs, ys = cell_edges(width, cells_across(width, block)), cell_edges(height, cells_across(height, block))
    pixelate_in_place(out, [(b.x, b.y, b.x + b.w, b.y + b.h) for b in boxes], xs, ys)
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
