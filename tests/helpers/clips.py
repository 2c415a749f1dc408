"""Small real clips made by ffmpeg for derive and decode tests: one that renders, one that cannot."""
from __future__ import annotations

import random
import struct
from pathlib import Path

from ingest.samples import run_ffmpeg


def noisy_clip(path: Path) -> Path:
    """1 s of 640x480 noise, lossless H.264 + AAC: several MB, many times its 480p proxy."""
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25:duration=1,noise=alls=80:allf=t",
               "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
               "-qp", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path))
    return path


def damaged_clip(path: Path, good: Path) -> Path:
    """*good* with every byte of its coded data random: it probes as a video, and no frame decodes."""
    data = bytearray(good.read_bytes())
    mdat = data.index(b"mdat") - 4
    end = mdat + struct.unpack(">I", data[mdat:mdat + 4])[0]
    data[mdat + 8:end] = random.Random(17).randbytes(end - mdat - 8)
    path.write_bytes(bytes(data))
    return path
