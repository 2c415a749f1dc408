"""Small real clips made by ffmpeg for derive, decode and redaction tests: busy, uneven in time, with a cover
picture first, damaged."""
from __future__ import annotations

import random
import struct
import subprocess
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


def frame_times(path: Path) -> list[float]:
    """The presentation time of each frame of *path*'s first video stream, as ffprobe reads it."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    return [float(line.strip(",")) for line in out.split() if line.strip(",")]


def busy_clip(path: Path, *, size: str = "320x240", seconds: float = 2.0, audio: bool = True,
               extra: tuple[str, ...] = ()) -> Path:
    """*seconds* of Conway's life at 25 fps (every pixel busy: an encoder cannot hide a pixelation in it), with
    a 700 Hz tone unless *audio* is False."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
            f"life=s={size}:rate=25:ratio=0.5:mold=0:seed=3,format=yuv420p,trim=duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=700:duration={seconds}", "-c:a", "aac", "-shortest"]
    subprocess.run([*args, "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", *extra, str(path)], check=True)
    return path


def phone_vfr_clip(path: Path) -> Path:
    """A phone's clip of 60 frames at uneven times on a 1/90000 clock: 30 a second slowing to 10 in low light, each
    a few milliseconds off the beat (a sensor's jitter), with a location and a creation time."""
    steady = busy_clip(path.with_suffix(".steady.mp4"), seconds=3.0)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(steady), "-vf",
                    "settb=1/90000,setpts='(if(lt(N,45),N/30,1.5+(N-45)/10)+0.006*sin(N*1.7))/TB',"
                    "trim=end_frame=60", "-fps_mode", "passthrough", "-enc_time_base:v", "1:90000",
                    "-c:a", "copy", "-c:v", "libx264", "-crf", "18", "-t", "3",
                    "-metadata", "location=+31.2304+121.4737/", "-metadata",
                    "creation_time=2026-11-20T14:06:00Z", str(path)], check=True)
    return path


def cover_first(clip: Path, dest: Path) -> Path:
    """*clip* with a cover picture the MP4 keeps before its tracks (a phone app's export): ffmpeg lists the cover
    as video stream 0, marked an attached picture."""
    cover = dest.with_suffix(".png")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=160x120", "-frames:v",
                    "1", str(cover)], check=True)
    plain = dest.with_suffix(".plain.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-i", str(cover), "-map", "0", "-map",
                    "1", "-c", "copy", "-disposition:v:1", "attached_pic", str(plain)], check=True)
    data = plain.read_bytes()

    def boxes(start: int, end: int) -> list[tuple[bytes, int, int]]:
        found, at = [], start
        while at < end:
            size, kind = struct.unpack(">I4s", data[at:at + 8])
            found.append((kind, at, at + size))
            at += size
        return found

    _, begin, finish = next(b for b in boxes(0, len(data)) if b[0] == b"moov")
    inside = boxes(begin + 8, finish)
    udta = [b for b in inside if b[0] == b"udta"]
    order = inside[:1] + udta + [b for b in inside[1:] if b[0] != b"udta"]  # mvhd, udta, the tracks
    dest.write_bytes(data[:begin + 8] + b"".join(data[s:e] for _, s, e in order) + data[finish:])
    return dest


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
