"""Render a redaction with ffmpeg: each region pixelated over its time range, each muted range silenced; H.264
(yuv420p, CRF 18, so the rest of the picture stays within encoding error of the original) and AAC in MP4, or a JPEG
of a photo. The original is only read (a file, or a URL ffmpeg reads in place: ingest.derive.ffmpeg_source).

The pixelation: the whole frame is shrunk to one pixel per block with area averaging and drawn back with
nearest-neighbour (what was inside a block is gone, not filtered), and taken only inside a mask on which each region
is drawn while its time range lasts; the blocks lie on the frame's grid. The pixelation is done once a frame however
many regions there are (an earlier graph cropped and scaled a branch per region: a face is a region a second); each
region is one `drawbox` on the mask, cheap but not free (docs/redaction.md has what a review measured). The graph
goes to ffmpeg as a script file (`-filter_complex_script`): a long recording's regions do not fit a command line."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from ingest.derive import FfmpegRefused, dies_with_parent, ffmpeg_source, run_ffmpeg
from ingest.redaction.spec import BLEEP_HZ, RedactionInvalid, RedactionSpec, spec_problems

__all__ = ["REDACT_TIMEOUT_S", "audio_filter", "ffmpeg_version", "picture_size", "render_redaction", "video_filter"]

#: The longest one rendering may take (a long 1080p recording at about real time on 2 cores).
REDACT_TIMEOUT_S = 4 * 3600.0


def picture_size(source: Path | str, *, timeout_s: float = 120.0) -> tuple[int, int] | None:
    """The width and height of *source*'s first video stream as ffmpeg decodes it and a player shows it: a stream
    stored on its side with a rotation (a phone held upright) has its sides swapped. None: no picture. What the
    catalogue holds is the stored size; regions and faces are in the shown picture's pixels."""
    with ffmpeg_source(source) as reading:
        args = ["ffprobe", "-v", "error", *reading.args, "-select_streams", "v:0", "-show_entries",
                "stream=width,height:stream_side_data=rotation:stream_tags=rotate", "-of", "json"]
        try:
            done = subprocess.run(dies_with_parent(args), capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FfmpegRefused(f"ffprobe could not read {reading.shown_as}: {exc}") from exc
        if done.returncode != 0:
            raise FfmpegRefused(f"ffprobe could not read {reading.shown_as}: {reading.shown(done.stderr)[-300:]}")
    streams = json.loads(done.stdout or "{}").get("streams") or []
    if not streams or not streams[0].get("width") or not streams[0].get("height"):
        return None
    stream = streams[0]
    turns = [side.get("rotation") for side in stream.get("side_data_list") or [] if "rotation" in side]
    turns.append((stream.get("tags") or {}).get("rotate"))
    rotation = next((int(float(t)) for t in turns if t not in (None, "")), 0)
    width, height = int(stream["width"]), int(stream["height"])
    return (height, width) if abs(rotation) % 180 == 90 else (width, height)


@cache
def ffmpeg_version() -> dict[str, str]:
    """What renders a redaction, as the copy's record names it: ffmpeg's version line and the encoders' settings."""
    try:
        line = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=30,
                              check=False).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        line = "ffmpeg (version unknown)"
    return {"program": line.strip(), "video": "libx264 veryfast crf 18 yuv420p; photos mjpeg q 2",
            "audio": "aac 128k", "pixelate": "scale down by block with area averaging, up with nearest neighbour"}


def _between(start_s: float, end_s: float | None) -> str:
    if end_s is None:
        return f"gte(t\\,{start_s:.3f})"
    return f"between(t\\,{start_s:.3f}\\,{end_s:.3f})"


def video_filter(spec: RedactionSpec) -> str | None:
    """The -filter_complex graph from input 0's picture to `[v]` (None: no region to hide). Pure."""
    boxes = spec.regions()
    if not boxes:
        return None
    block = spec.block
    regions = ",".join(f"drawbox=x={b.x}:y={b.y}:w={b.w}:h={b.h}:color=white:t=fill"
                       f":enable='{_between(b.start_s, b.end_s)}'" for b in boxes)
    return ";".join([
        # one pixel format before the split: its branches share one, and the mask's grey would otherwise be chosen
        # for all of them where ffmpeg turns a rotated picture upright first (a phone's: the copy came out grey)
        "[0:v:0]format=yuv420p,split=3[base][whole][m]",
        f"[whole]scale='max(1,trunc(iw/{block}))':'max(1,trunc(ih/{block}))':flags=area[cells]",
        "[cells][m]scale2ref=flags=neighbor[pixelated][frame]",  # back to the frame's size, block by block
        # the mask in all three planes (chroma at half size), 255 inside a region and 0 outside, whatever range a
        # conversion between the planes assumes: maskedmerge takes the pixelated frame there, the original elsewhere
        # (a fifth faster than an alpha overlay at 1080p, bench/redact_faces.py)
        f"[frame]format=gray,lut=c0=0,{regions},split=3[mask_y][mask_u][mask_v]",
        "[mask_u]scale=iw/2:ih/2:flags=neighbor,format=gray,lut=c0='255*gt(val,127)'[half_u]",
        "[mask_v]scale=iw/2:ih/2:flags=neighbor,format=gray,lut=c0='255*gt(val,127)'[half_v]",
        "[mask_y]lut=c0='255*gt(val,127)'[full_y]",
        "[full_y][half_u][half_v]mergeplanes=0x001020:yuv420p[mask]",
        # yuv420p needs even sides: pad right and bottom, so that no region moves
        "[base][pixelated][mask]maskedmerge,pad=ceil(iw/2)*2:ceil(ih/2)*2,format=yuv420p[v]"])


def audio_filter(spec: RedactionSpec) -> str | None:
    """The -af chain silencing each muted range and replacing each bleeped one with a BLEEP_HZ tone in every channel
    (None: neither). Pure."""
    chain = [f"volume=enable='{_between(m.start_s, m.end_s)}':volume=0" for m in spec.mutes]
    if spec.bleeps:
        inside = "+".join(_between(b.start_s, b.end_s) for b in spec.bleeps)
        chain.append(f"aeval=exprs='if({inside}\\,0.25*sin(2*PI*{BLEEP_HZ}*t)\\,val(ch))':c=same")
    return ",".join(chain) or None


@contextmanager
def _graph_file(graph: str | None, dest: Path) -> Iterator[Path | None]:
    """*graph* in a file beside *dest* for `-filter_complex_script`, removed when ffmpeg is done (None: none)."""
    if graph is None:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix=".redaction-", suffix=".filtergraph", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(graph)
        yield Path(name)
    finally:
        os.unlink(name)


def render_redaction(source: Path | str, dest: Path, spec: RedactionSpec, *, width: int | None,
                     height: int | None, duration_s: float | None, has_audio: bool, photo: bool = False,
                     timeout_s: float = REDACT_TIMEOUT_S, threads: int = 2,
                     progress: Callable[[float], None] | None = None) -> Path:
    """Write *source* redacted as *spec* says to *dest*: MP4, or a JPEG of a *photo*; *progress* is told the share
    done (0 to 1) as ffmpeg goes. RedactionInvalid when *spec* cannot be carried out on this recording (every
    problem named, nothing run); otherwise as ingest.derive.run_ffmpeg raises."""
    problems = spec_problems(spec, width=width, height=height, duration_s=duration_s, has_audio=has_audio,
                             photo=photo)
    if problems:
        raise RedactionInvalid(problems)
    video, audio = video_filter(spec), audio_filter(spec)
    if photo and video is not None:  # full-range 4:2:0, as cameras write JPEG
        video = video.replace("format=yuv420p[v]", "format=yuvj420p[v]")
    with ffmpeg_source(source) as reading, _graph_file(video, dest) as graph:
        args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", str(threads), *reading.args]
        if photo:
            assert graph is not None  # spec_problems: a photo has no sound, so a region is given
            # quality 2 of 31: the rest of the picture within encoding error
            args += ["-filter_complex_script", str(graph), "-map", "[v]", "-frames:v", "1", "-c:v", "mjpeg",
                     "-q:v", "2", "-map_metadata", "-1", "-f", "image2", "-update", "1", str(dest)]
            return run_ffmpeg(args, dest, timeout_s, reading)
        if graph is not None:
            args += ["-filter_complex_script", str(graph), "-map", "[v]"]
        elif width is not None:
            args += ["-map", "0:v:0", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2,format=yuv420p"]
        if has_audio:
            args += ["-map", "0:a:0"] + (["-af", audio] if audio is not None else [])
        if width is not None:
            args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"]
        if has_audio:
            args += ["-c:a", "aac", "-b:a", "128k"]
        args += ["-map_metadata", "-1", "-movflags", "+faststart", "-threads", str(threads), "-f", "mp4", str(dest)]
        told = None
        if progress is not None and duration_s:
            def told(seconds: float) -> None:
                progress(min(seconds / duration_s, 1.0))
        return run_ffmpeg(args, dest, timeout_s, reading, progress=told)
