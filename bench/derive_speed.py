"""Derived-media speed for 1080p: proxy and thumbnail, as multiples of realtime, in one run.

Baseline in the same run: a plain full decode of the same clip (`ffmpeg -i clip -f null -`, 2 threads),
which bounds any rendition. Target: proxy >= 6x realtime on 2 cores.

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
    print(f"  thumbnail (OpenCV)      {thumb:6.2f} s")
    print(f"ratio proxy time / decode time = {proxy / decode:.2f}")


if __name__ == "__main__":
    main()
