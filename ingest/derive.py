"""Derived media: a JPEG thumbnail (OpenCV) and a browser-playable H.264/AAC MP4 proxy (ffmpeg).

Derived files are never evidence: they are made from a copy of the stored
original, kept outside the evidence area, and each records the SHA-256 it
derives from. A failure here never touches the recording.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import DerivedMedia, Recording, RecordingNotFound
from catalog.detail import derived_media
from catalog.types import utcnow
from ingest.errors import DeriveFailed
from storage import EvidenceStore
from storage.hashing import hash_file

__all__ = ["PROXY_HEIGHT", "PROXY_NAMES", "THUMBNAIL_WIDTH", "derive_recording", "make_audio_proxy", "make_proxy",
           "make_thumbnail"]

logger = logging.getLogger(__name__)

#: Thumbnail width in pixels (height keeps the aspect ratio).
THUMBNAIL_WIDTH = 320
#: Proxy height in pixels: 480p plays anywhere and is quick to make.
PROXY_HEIGHT = 480
#: The browser proxy's file name and type by media kind.
PROXY_NAMES = {"video": ("proxy.mp4", "video/mp4"), "audio": ("proxy.m4a", "audio/mp4")}


def make_thumbnail(source: Path, dest: Path, *, is_photo: bool, width: int = THUMBNAIL_WIDTH) -> Path:
    """A JPEG of the photo, or of the video frame one second in (or its middle, if shorter)."""
    if is_photo:
        frame = cv2.imread(str(source), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError("OpenCV cannot decode the image")
    else:
        capture = cv2.VideoCapture(str(source))
        try:
            if not capture.isOpened():
                raise ValueError("OpenCV cannot open the video")
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            frames = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
            target = min(fps * 1.0, frames / 2) if frames else 0.0
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(target))
            ok, frame = capture.read()
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = capture.read()
            if not ok:
                raise ValueError("no decodable frame")
        finally:
            capture.release()
    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    if not cv2.imwrite(str(dest), small, [cv2.IMWRITE_JPEG_QUALITY, 85]):
        raise ValueError(f"cannot write {dest}")
    return dest


def make_audio_proxy(source: Path, dest: Path, *, timeout_s: float = 3600) -> Path:
    """AAC in MP4 with the index first: every browser plays it (AMR, a recorder's usual format, none does)."""
    return _ffmpeg(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-map", "0:a:0", "-vn",
                    "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", str(dest)], dest, timeout_s)


def make_proxy(source: Path, dest: Path, *, height: int = PROXY_HEIGHT, threads: int = 2,
               timeout_s: float = 3600) -> Path:
    """H.264 (yuv420p) + AAC in MP4 with the index first, scaled to *height* (never up)."""
    # Speed over polish (a proxy is for viewing, the original is the evidence): skipping the decoder's
    # loop filter, bilinear scaling and the superfast preset give >= 6x realtime for 1080p on 2 cores.
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", str(threads), "-skip_loop_filter", "all",
            "-i", str(source), "-map", "0:v:0", "-map", "0:a:0?", "-vf", f"scale=-2:'min({height},ih)':flags=bilinear",
            "-c:v", "libx264", "-preset", "superfast", "-crf", "26", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-ac", "2", "-movflags", "+faststart",
            "-threads", str(threads), str(dest)]
    return _ffmpeg(args, dest, timeout_s)


def _ffmpeg(args: list[str], dest: Path, timeout_s: float) -> Path:
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"ffmpeg did not finish within {timeout_s:g} s") from exc
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise ValueError(lines[-1] if lines else f"ffmpeg exited with {done.returncode}")
    return dest


def _record(session: Session, recording: Recording, kind: str, key: str, path: Path, content_type: str) -> None:
    assert recording.id is not None
    row = derived_media(session, recording.id, kind) or DerivedMedia(
        recording_id=recording.id, kind=kind, derived_from_sha256=recording.sha256, key=key, sha256="", size_bytes=0,
        content_type=content_type)
    hashed = hash_file(path)
    row.key, row.sha256, row.size_bytes, row.created_at = key, hashed.sha256, hashed.size_bytes, utcnow()
    session.add(row)


def derive_recording(engine: Engine, store: EvidenceStore, work_dir: Path, recording_id: int, *,
                     threads: int = 2) -> list[str]:
    """Make and store the thumbnail (video, photo) and proxy (video, audio) of a recording; return the kinds made.

    Raises:
      DeriveFailed: the original could not be rendered (damaged or unreadable media).
    """
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise RecordingNotFound(str(recording_id))
        if recording.media_kind not in ("video", "photo", "audio"):
            return []
        work_dir.mkdir(parents=True, exist_ok=True)
        made: list[str] = []
        with tempfile.TemporaryDirectory(dir=work_dir, prefix=f"derive-{recording_id}-") as tmp:
            original = Path(tmp) / "original"
            with store.open(recording.sha256) as src, original.open("wb") as dst:
                shutil.copyfileobj(src, dst, 4 * 1024 * 1024)
            if recording.media_kind in ("video", "photo"):
                try:
                    thumb = make_thumbnail(original, Path(tmp) / "thumbnail.jpg",
                                           is_photo=recording.media_kind == "photo")
                except ValueError as exc:
                    raise DeriveFailed(recording_id, "thumbnail", str(exc)) from exc
                key = store.put_derived(recording.sha256, "thumbnail.jpg", thumb, content_type="image/jpeg")
                _record(session, recording, "thumbnail", key, thumb, "image/jpeg")
                made.append("thumbnail")
            if recording.media_kind in ("video", "audio"):
                name, content_type = PROXY_NAMES[recording.media_kind]
                try:
                    proxy = (make_proxy(original, Path(tmp) / name, threads=threads)
                             if recording.media_kind == "video" else make_audio_proxy(original, Path(tmp) / name))
                except ValueError as exc:
                    session.commit()
                    raise DeriveFailed(recording_id, "proxy", str(exc)) from exc
                key = store.put_derived(recording.sha256, name, proxy, content_type=content_type)
                _record(session, recording, "proxy", key, proxy, content_type)
                made.append("proxy")
        session.commit()
        return made
