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


def ffmpeg_shim(folder: Path, before_exec: str) -> Path:
    """*folder* with an `ffmpeg` shell script that appends its arguments to `runs` in *folder*, runs the shell
    lines *before_exec*, then execs the real ffmpeg with the same arguments."""
    import shutil

    real = shutil.which("ffmpeg")
    assert real is not None
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ffmpeg"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{folder}/runs"\n{before_exec}exec "{real}" "$@"\n')
    script.chmod(0o755)
    return folder


def ffmpeg_stopped_once_at_start(folder: Path, marker: str) -> Path:
    """A folder to put first on PATH whose `ffmpeg`, the first time it is run with *marker* among its arguments,
    prints what the real ffmpeg 5.1 printed when a SIGTERM reached it while it set up its filters (measured under
    load: exit 1, these two lines) and exits 1; every other run is the real ffmpeg. Each run is counted in
    `runs` in *folder*."""
    return ffmpeg_shim(folder, (
        f'case "$*" in *"{marker}"*)\n'
        f'  if [ ! -e "{folder}/stopped" ]; then\n'
        f'    : > "{folder}/stopped"\n'
        '    echo "Cannot determine format of input stream 0:0 after EOF" >&2\n'
        '    echo "Error marking filters as finished" >&2\n'
        "    exit 1\n"
        "  fi;;\n"
        "esac\n"))


def ffmpeg_runs(folder: Path, *markers: str) -> int:
    """How many runs of the shim ffmpeg in *folder* (`ffmpeg_shim`) had every one of *markers* among their
    arguments."""
    runs = folder / "runs"
    lines = runs.read_text().splitlines() if runs.exists() else []
    return sum(all(marker in line for marker in markers) for line in lines)


def ffmpeg_killed_on(folder: Path, *markers: str, victim: str, signal_name: str = "KILL") -> Path:
    """A folder to put first on PATH whose `ffmpeg`, whenever every one of *markers* is among its arguments, is
    ended by SIG*signal_name* (SIGKILL: as the kernel's out-of-memory killer ends a process): *victim* "ffmpeg"
    signals the ffmpeg itself, "parent" the process that ran it (a worker or renderer), then the ffmpeg. Every other
    run is the real ffmpeg. Each run is counted in `runs` in *folder* (`ffmpeg_runs`)."""
    target = {"ffmpeg": "$$", "parent": "$PPID $$"}[victim]
    tests = " && ".join(f'case "$*" in *"{marker}"*) true;; *) false;; esac' for marker in markers)
    return ffmpeg_shim(folder, f"if {tests}; then kill -{signal_name} {target}; fi\n")
