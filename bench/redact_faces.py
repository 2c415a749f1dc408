"""Redacting a 1080p30 clip with automatic faces, against a plain transcode of the same clip to the same codec.

The clip: scikit-image's astronaut photograph (a real face) panning across a 1920×1080 frame for --seconds (60),
H.264 at about 8 Mbit/s with AAC sound, as a body camera writes. The baseline, in the same run: `ffmpeg -i clip`
to H.264 (libx264 veryfast CRF 18, yuv420p) and AAC in MP4, 2 threads: what any re-encode of the clip costs. The
redaction, as `evidence redact --faces` does it for a picture up to 1080p: `render_redaction` with a `FaceSampler`,
the faces searched in the rendering's own decode (frames sampled at SAMPLE_FPS, scaled to DETECTOR_WIDTH px for
CenterFace on OpenCV DNN in a thread of its own, tracked, one region per second per track) and each frame held back
until the faces over it are known; the same encoder settings. `--two-pass` measures the path of larger pictures
instead: `find_faces` in a decode of its own, then the rendering. Target (issue 18): redaction ≥ 0.5× the
transcode's speed on this 2-core machine. The peak memory of this process (the frames held back) is printed too.

    .venv/bin/python bench/redact_faces.py [--seconds 60] [--rounds 1] [--two-pass]
"""
from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2

from bench._common import OUT, arguments
from ingest.redaction import RedactionSpec, render_redaction
from ingest.redaction.faces import DETECTOR_WIDTH, SAMPLE_FPS, THRESHOLD, FaceSampler, FaceSearch, find_faces


def make_clip(path: Path, seconds: int) -> Path:
    if path.exists():
        return path
    from skimage import data

    path.parent.mkdir(parents=True, exist_ok=True)
    photo = path.with_suffix(".png")
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    # The photograph scaled to 1600 px, panned across a 1920×1080 picture (the face moving, as a camera turns)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=0x506070:size=1920x1080:rate=30:duration={seconds}", "-loop", "1", "-framerate", "30",
                    "-i", str(photo), "-f", "lavfi", "-i", f"sine=frequency=500:duration={seconds}",
                    "-filter_complex", "[1:v]scale=1000:1000[p];[0:v][p]overlay=x='100+700*sin(t/4)':y=40:"
                    "shortest=1,format=yuv420p[v]", "-map", "[v]", "-map", "2:a", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "veryfast", "-b:v", "8M", "-c:a", "aac", str(path)], check=True)
    return path


def transcode(clip: Path, dest: Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", "2", "-i", str(clip), "-map", "0:v:0",
                    "-map", "0:a:0", "-vf", "format=yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                    "-c:a", "aac", "-b:a", "128k", "-threads", "2", "-movflags", "+faststart", str(dest)], check=True)


def main() -> None:
    two_pass = "--two-pass" in sys.argv
    if two_pass:
        sys.argv.remove("--two-pass")
    args = arguments(__doc__, seconds=60, rounds=1)
    clip = make_clip(OUT / f"redact-faces-{args.seconds}s.mp4", args.seconds)
    seconds = float(args.seconds)
    plain, redacted, searched = [], [], 0.0
    for _ in range(args.rounds):
        started = time.monotonic()
        transcode(clip, OUT / "redact-baseline.mp4")
        plain.append(time.monotonic() - started)
        started = time.monotonic()
        if two_pass:
            regions, search = find_faces(clip, width=1920, height=1080, duration_s=seconds, photo=False)
            searched = time.monotonic() - started
            render_redaction(clip, OUT / "redact-faces.mp4", RedactionSpec(boxes=tuple(regions)), width=1920,
                             height=1080, duration_s=seconds, has_audio=True)
        else:
            sampler = FaceSampler(FaceSearch(), width=1920, height=1080, duration_s=seconds)
            render_redaction(clip, OUT / "redact-faces.mp4", RedactionSpec(), width=1920, height=1080,
                             duration_s=seconds, has_audio=True, faces=sampler)
            search = sampler.found()
        redacted.append(time.monotonic() - started)
    base, ours = min(plain), min(redacted)
    how = f"face search first {searched:.1f} s" if two_pass else "faces searched in the rendering's own decode"
    print(f"clip: {args.seconds} s 1080p30 H.264 8 Mbit/s + AAC, a real face (astronaut) panning")
    print(f"detector: CenterFace on OpenCV DNN at {DETECTOR_WIDTH} px wide, {SAMPLE_FPS:g} frames/s, "
          f"threshold {THRESHOLD}; found {search.found}")
    print(f"plain transcode (libx264 veryfast crf 18 + aac, 2 threads): {base:.1f} s = "
          f"{args.seconds / base:.2f}x realtime")
    print(f"redaction with automatic faces: {ours:.1f} s ({how}) = {args.seconds / ours:.2f}x realtime")
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"redaction speed / transcode speed: {base / ours:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
