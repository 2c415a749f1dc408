"""Read the facts about a staged file: ffprobe, EXIF, image header, sidecar.

The only module that runs ffprobe or opens media parsers. It reads the
staging copy, never the device. Photos (JPEG, PNG, HEIF/HEIC, TIFF, WebP,
GIF, BMP: decided by content, see `ingest.describe.structure.sniff_format`) are not
sent to ffprobe: EXIF and the image header are read in-process, which is what
makes large photo batches fast.
"""
from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import exifread
import ffmpeg

from ingest.describe.facts import ExifFacts, Facts, SidecarFacts, exif_facts, sidecar_facts
from ingest.describe.image_header import HEADER_ERRORS, read_image_header
from ingest.describe.structure import PHOTO_FORMATS, check_structure

__all__ = ["MAX_SIDECAR_BYTES", "gather_facts", "parse_sidecar", "run_ffprobe"]

logger = logging.getLogger(__name__)

#: Sidecars hold a GPS track; anything larger is not one of ours.
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
_NO_PROBE = PHOTO_FORMATS | {"empty"}


def run_ffprobe(path: Path, *, timeout_s: float) -> dict[str, Any]:
    """ffmpeg.probe with a time limit (a hostile file must not hang a station).

    Raises ffmpeg.Error (stderr attached) like ffmpeg.probe does.
    """
    args = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ffmpeg.Error("ffprobe", b"", f"timed out after {timeout_s:g} s".encode()) from exc
    if done.returncode != 0:
        raise ffmpeg.Error("ffprobe", done.stdout, done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.decode("utf-8", errors="replace"))
    return result


def _first_error_line(stderr: bytes | None, path: Path) -> str:
    text = (stderr or b"").decode("utf-8", errors="replace").strip().replace(f"{path}: ", "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "ffprobe failed without a message"


def _tag_value(tag: Any) -> Any:
    values = getattr(tag, "values", None)
    if isinstance(values, list) and values and all(hasattr(v, "numerator") for v in values):
        out = []
        for v in values:
            out.append(float(v.numerator) / float(v.denominator) if v.denominator else 0.0)
        return out
    return str(getattr(tag, "printable", tag))


def _read_exif(path: Path, embedded: bytes | None, *, fmt: str) -> ExifFacts | None:
    """EXIF through exifread: from the file itself, else from the EXIF block Pillow found in the header.

    HEIF goes straight to the block: exifread's own HEIF reader fails when the writer (libheif) places the EXIF
    item at a base offset plus an extent, which iPhones do not but other writers do.
    """
    tags: dict[str, Any] = {}
    if fmt != "heif":
        with path.open("rb") as fh:
            tags = exifread.process_file(fh, details=False)
    if not tags and embedded:
        tiff = embedded[6:] if embedded.startswith(b"Exif\x00\x00") else embedded
        tags = exifread.process_file(io.BytesIO(tiff), details=False)
    if not tags:
        return None
    return exif_facts({name: _tag_value(tag) for name, tag in tags.items()})


def parse_sidecar(raw: bytes) -> SidecarFacts:
    """Raises ValueError with the reason when the sidecar is not usable."""
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not UTF-8 JSON ({exc})") from exc
    return sidecar_facts(data)


def gather_facts(staged: Path, *, name: str, mtime_ns: int, sidecar: bytes | None,
                 probe_timeout_s: float) -> Facts:
    """Read everything `ingest.describe.metadata.describe` needs about one staged file."""
    structure = check_structure(staged)
    size = staged.stat().st_size
    probe = probe_error = image_error = sidecar_error = None
    image_size = exif = side = None
    if structure.format in PHOTO_FORMATS:
        embedded: bytes | None = None
        try:
            header = read_image_header(staged)
            image_size, embedded = header.size, header.exif
        except HEADER_ERRORS as exc:
            image_error = str(exc)[:300]
        try:
            exif = _read_exif(staged, embedded, fmt=structure.format)
        except Exception as exc:  # noqa: BLE001 - exifread raises many types on hostile input
            logger.warning("EXIF unreadable in %r: %s", name, exc)
    if structure.format not in _NO_PROBE:
        try:
            probe = run_ffprobe(staged, timeout_s=probe_timeout_s)
        except ffmpeg.Error as exc:
            probe_error = _first_error_line(exc.stderr, staged)
        except (OSError, json.JSONDecodeError) as exc:
            probe_error = str(exc)[:300]
    if sidecar is not None:
        try:
            side = parse_sidecar(sidecar)
        except ValueError as exc:
            sidecar_error = str(exc)
    return Facts(name=name, size_bytes=size, mtime_ns=mtime_ns, structure=structure, probe=probe,
                 probe_error=probe_error, image_size=image_size, image_error=image_error, exif=exif,
                 sidecar=side, sidecar_error=sidecar_error)
