"""Derived-media speed for 1080p: proxy and thumbnail, as multiples of realtime, in one run; and what decoding a
photo's thumbnail in the memory-limited photo process (ingest.photo_child) costs against decoding it in-process.

Baseline in the same run: a plain full decode of the same clip (`ffmpeg -i clip -f null -`, 2 threads),
which bounds any rendition. Target: proxy >= 6x realtime on 2 cores. The photo: a 12-megapixel (4000 x 3000) JPEG,
its thumbnail made 20 times in this process (photo_frame + encode_thumbnail) and 20 times through one photo process,
whose start is timed apart (once per rendering thread, and again after a photo that fails).

    .venv/bin/python bench/derive_speed.py [--seconds 30]
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments
from ingest.derive import make_proxy, make_thumbnail
from ingest.photo_child import PhotoProcess
from ingest.photo_frame import encode_thumbnail, photo_frame
from ingest.samples import make_photo


def make_1080p(path: Path, seconds: int) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # A body-camera-like stream: 1080p30 H.264 high profile, ~8 Mbit/s, AAC audio.
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=30:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=500:duration={seconds}", "-c:v", "libx264", "-preset", "veryfast",
                    "-b:v", "8M", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)
    return path


def main() -> None:
    args = arguments(__doc__, seconds=30)
    clip = make_1080p(OUT / f"clip-1080p-{args.seconds}s.mp4", args.seconds)
    t = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-threads", "2", "-i", str(clip), "-f", "null", "-"],
                   check=True)
    decode = time.perf_counter() - t
    t = time.perf_counter()
    make_proxy(clip, OUT / "proxy.mp4", threads=2)
    proxy = time.perf_counter() - t
    t = time.perf_counter()
    make_thumbnail(clip, OUT / "thumb.jpg", is_photo=False)
    thumb = time.perf_counter() - t
    print(f"1080p30 clip, {args.seconds} s, 2 threads")
    print(f"  full decode (baseline)  {decode:6.2f} s  = {args.seconds / decode:5.1f}x realtime")
    print(f"  480p H.264/AAC proxy    {proxy:6.2f} s  = {args.seconds / proxy:5.1f}x realtime  (target >= 6)")
    print(f"  thumbnail (ffmpeg)      {thumb:6.2f} s")
    print(f"ratio proxy time / decode time = {proxy / decode:.2f}")
    photo_thumbnails()


def photo_thumbnails(rounds: int = 20) -> None:
    data = make_photo(OUT / "photo-12mp.jpg", size="4000x3000").read_bytes()
    encode_thumbnail(photo_frame(data))  # OpenCV loaded and warm here too, as in the photo process
    t = time.perf_counter()
    for _ in range(rounds):
        encode_thumbnail(photo_frame(data))
    inside = (time.perf_counter() - t) / rounds
    process = PhotoProcess()
    try:
        t = time.perf_counter()
        process.thumbnail(data)
        first = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(rounds):
            process.thumbnail(data)
        child = (time.perf_counter() - t) / rounds
    finally:
        process.close()
    print(f"12-megapixel JPEG ({len(data) / 2**20:.1f} MiB) thumbnail, {rounds} rounds")
    print(f"  in this process         {inside * 1000:6.1f} ms a photo")
    print(f"  in the photo process    {child * 1000:6.1f} ms a photo  (its start and first photo: {first:.2f} s)")
    print(f"ratio photo process / in-process = {child / inside:.2f}")


if __name__ == "__main__":
    main()
