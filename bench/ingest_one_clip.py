"""`evidence ingest` of one big clip against `cp` + `sync` of it, each EVIDENCE_DERIVE mode, cold and warm, in one run.

Issue 17's target 2: ingest of one 2 GiB clip on the embedded default (local WORM store, SQLite catalogue in a
fresh EVIDENCE_HOME under bench/out), with derive on, returns in >= 0.8x the throughput of `cp` + `sync` of the
same bytes to the same disk, and derive reads the original in place. The "device" is a DCIM folder holding a hard
link to the clip. Ingest runs in-process (ingest.queue.workers.run_ingest, as `evidence ingest` does) with each
EVIDENCE_DERIVE mode: `background` (the default: it returns once archived, a renderer it starts makes the thumbnail
and proxy and decode-checks after; that renderer is waited for, untimed, before the next method, and must leave
nothing to render), `wait` (all of it before returning) and `later` (`--no-derive`). Each round runs
every method cold (the clips evicted from the page cache) and warm (read into it), the order rotating from round
to round (bench.copy_hash). Prints medians in seconds and MiB/s, every run, and the ratios.

Two clips of the same size:
* random: random bytes named .MP4. Ingest catalogues it as `other` (nothing decodes), so derive and the decode
  check have nothing to do: this isolates what derive-on costs besides rendering (the issue's condition; beware
  bench.copy_hash.make_sources' bytes: each MiB repeats one 32-byte digest, the frame size of AMR-NB 12.2 kbit/s,
  so ffprobe may take a clip for hours of AMR audio, and derive then renders it for many minutes);
* padded: a real 1080p30 H.264/AAC clip (--padded-seconds, index first) whose `mdat` box is grown with random
  bytes to the same size. It is a valid, decodable video: derive makes the thumbnail and the proxy and the decode
  check decodes it, reading the index and the few MB of media it references where they are stored; a derive
  that copied the original would read and write the whole size first.

What derive and the decode check cost on a clip that is media all through is measured apart (--real-seconds, 0 to
skip): a 1080p30 ~8 Mbit/s clip ingested with derive off, then derive_recording (thumbnail + 480p proxy) and
check_recording (full decode) timed on it, then its ingest with EVIDENCE_DERIVE=wait.

    .venv/bin/python bench/ingest_one_clip.py [--size-mib 2048] [--rounds 3] [--padded-seconds 2]
                                              [--real-seconds 60]
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, fresh_dir, median, timed
from bench.copy_hash import MODES, load_text, rotated, set_cache
from bench.derive_speed import make_1080p
from ingest.config import Settings
from ingest.pipeline import IngestOptions, IngestReport
from ingest.queue.workers import run_ingest
from storage.backends.local_tree import remove_tree

HOME = OUT / "one-clip-home"
#: EVIDENCE_DERIVE's values, each timed: `background` (the default, the target's) returns once archived.
DERIVE_MODES = ("background", "wait", "later")
COPY_DEST = OUT / "one-clip-cp"
_CHUNK = 16 * 1024 * 1024

Method = tuple[Callable[[], None], Callable[[], None]]


def random_clip(path: Path, size: int) -> Path:
    """*size* bytes from os.urandom at *path* (kept for the next run when the size matches)."""
    if path.exists() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for offset in range(0, size, _CHUNK):
            fh.write(os.urandom(min(_CHUNK, size - offset)))
    return path


def padded_clip(path: Path, size: int, seconds: int) -> Path:
    """A real 1080p clip (index first) whose last box, `mdat`, is grown with random bytes to *size* bytes in all."""
    if path.exists() and path.stat().st_size == size:
        return path
    real = make_1080p(OUT / f"clip-1080p-{seconds}s.mp4", seconds)
    faststart = path.with_suffix(".faststart.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(real), "-c", "copy", "-movflags",
                    "+faststart", str(faststart)], check=True)
    data = faststart.read_bytes()
    faststart.unlink()
    mdat = data.rindex(b"mdat") - 4
    if mdat + struct.unpack(">I", data[mdat:mdat + 4])[0] != len(data) or not len(data) < size < 2**32:
        raise SystemExit(f"cannot pad {real}: mdat is not its last box, or {size} is not between its size and 4 GiB")
    with path.open("wb") as fh:
        fh.write(data[:mdat] + struct.pack(">I", size - mdat) + data[mdat + 4:])
        random_tail = size - len(data)
        for offset in range(0, random_tail, _CHUNK):
            fh.write(os.urandom(min(_CHUNK, random_tail - offset)))
    return path


def device_for(name: str, clip: Path) -> Path:
    """A "device" (bench/out/one-clip-<name>-device) whose DCIM/100BENCH/MVI_0001.MP4 is a hard link to *clip*."""
    device = fresh_dir(OUT / f"one-clip-{name}-device")
    folder = device / "DCIM" / "100BENCH"
    folder.mkdir(parents=True)
    (folder / "MVI_0001.MP4").hardlink_to(clip)
    return device


def put_in_cache(clips: list[Path], mode: str, *, tries: int = 3) -> None:
    """bench.copy_hash.set_cache, tried again when a warm read leaves a few pages out (memory pressure from the
    other processes of a shared machine); SystemExit when it still does."""
    for attempt in range(1, tries + 1):
        try:
            set_cache(clips, mode)
            return
        except SystemExit:
            if attempt == tries:
                raise


def fresh_home(home: Path = HOME) -> Settings:
    """Embedded default settings (local store, SQLite) in an empty EVIDENCE_HOME."""
    if home.exists():
        remove_tree(home)  # the store's folders are sealed read-only
    home.mkdir(parents=True)
    subprocess.run(["sync"], check=True)
    return Settings.from_env({"EVIDENCE_HOME": str(home)})


def ingest(device: Path, settings: Settings, *, derive: str) -> IngestReport:
    """run_ingest of *device* (EVIDENCE_DERIVE=*derive*); SystemExit unless every recording is archived or
    verified. A background renderer it started is remembered in RENDERERS (waited for, untimed, by
    wait_for_renderers)."""
    report = run_ingest(device, settings, IngestOptions(), derive=derive)
    states = {r["state"] for r in report.recordings}
    if not report.recordings or not states <= {"archived", "verified"} or report.errors:
        raise SystemExit(f"ingest did not archive every file: states {states}, errors {report.errors}")
    if report.renderer_pid is not None:
        RENDERERS.append((report.renderer_pid, settings))
    return report


#: Background renderers started by timed ingests, with their settings: waited for after each timed run.
RENDERERS: list[tuple[int, Settings]] = []


def wait_for_renderers() -> None:
    """Wait (untimed) until every background renderer has exited, then check it left no media work pending: the
    next method must not share the machine with it, and a renderer that did nothing would flatter the figure."""
    from sqlmodel import Session

    from catalog import open_catalog
    from catalog.media_work import media_backlog

    while RENDERERS:
        pid, settings = RENDERERS.pop()
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            time.sleep(0.05)
        engine = open_catalog(settings.database_url, run_migrations=False)
        try:
            with Session(engine) as session:
                left = media_backlog(session)
        finally:
            engine.dispose()
        if left:
            raise SystemExit(f"the background renderer {pid} exited with recordings {left} still to render")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def methods(clips: dict[str, Path], kinds: dict[str, str]) -> dict[str, Method]:
    """Each method's (preparation, timed run): cp + sync of the random clip, and ingest of each clip's device with
    each EVIDENCE_DERIVE mode. *kinds* gets the media kind ingest gave each clip."""
    settings: dict[str, Settings] = {}

    def prepare() -> None:
        fresh_dir(COPY_DEST)
        settings["now"] = fresh_home()

    def cp_sync() -> None:
        clip = clips["random"]
        subprocess.run(["cp", str(clip), str(COPY_DEST)], check=True)
        subprocess.run(["sync", str(COPY_DEST / clip.name), str(COPY_DEST)], check=True)

    def ingest_of(name: str, derive: str) -> Callable[[], None]:
        device = device_for(name, clips[name])

        def run() -> None:
            kinds[name] = ingest(device, settings["now"], derive=derive).recordings[0]["media_kind"]

        return run

    table: dict[str, Method] = {"cp + sync": (prepare, cp_sync)}
    for name in clips:
        for mode in DERIVE_MODES:
            table[f"{name}: ingest, derive {mode}"] = (prepare, ingest_of(name, mode))
    return table


def run_rounds(rounds: int, clips: dict[str, Path], table: dict[str, Method]) -> dict[tuple[str, str], list[float]]:
    """Seconds per (cache mode, method), *rounds* each, interleaved (bench.copy_hash.run_rounds)."""
    times: dict[tuple[str, str], list[float]] = {(m, n): [] for m in MODES for n in table}
    for turn in range(rounds):
        for mode in rotated(MODES, turn):
            for name in rotated(list(table), turn):
                prepare, run = table[name]
                prepare()
                put_in_cache(list(clips.values()), mode)
                times[mode, name].append(timed(run))
                wait_for_renderers()
    fresh_dir(COPY_DEST)
    fresh_home()
    return times


def report(times: dict[tuple[str, str], list[float]], mib: float) -> None:
    """Print each mode's medians and runs, and each ingest's ratio to `cp` + `sync` (throughput, of medians)."""
    for mode in MODES:
        print(f"{mode} reads ({'clips evicted' if mode == 'cold' else 'clips in the page cache'}):")
        for (m, name), values in times.items():
            if m == mode:
                print(f"  {name:30s} median {median(values):6.2f} s {mib / median(values):6.0f} MiB/s"
                      f"   (runs: {', '.join(f'{v:.2f}' for v in values)} s)")
        base = times[mode, "cp + sync"]
        for (m, name), ours in times.items():
            if m != mode or name == "cp + sync":
                continue
            ratio = median(base) / median(ours)
            paired = ", ".join(f"{b / o:.2f}" for b, o in zip(base, ours, strict=True))
            target = (f"target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'}" if name.endswith("background")
                      else "information")
            print(f"  ratio ({name}) / (cp + sync) = {ratio:5.2f}  ({target}; per round {paired})")


def _only_recording(settings: Settings) -> int:
    from sqlmodel import Session, select

    from catalog import Recording, open_catalog

    engine = open_catalog(settings.database_url, run_migrations=False)
    try:
        with Session(engine) as session:
            (recording_id,) = [r.id for r in session.exec(select(Recording)) if r.id is not None]
            return recording_id
    finally:
        engine.dispose()


def _worker_steps(settings: Settings, recording_id: int) -> tuple[list[str], float, str | None, float]:
    """derive_recording and check_recording of one recording, each timed: (kinds made, s, verdict, s)."""
    from catalog import open_catalog
    from ingest.decode_check import check_recording
    from ingest.derive import derive_recording
    from storage import LocalStore

    engine = open_catalog(settings.database_url, run_migrations=False)
    store = LocalStore(settings.store_path)
    try:
        started = time.perf_counter()
        made = derive_recording(engine, store, settings.home / "work", recording_id)
        derive_s = time.perf_counter() - started
        started = time.perf_counter()
        verdict = check_recording(engine, store, settings.home / "work", recording_id)
        return made, derive_s, verdict, time.perf_counter() - started
    finally:
        engine.dispose()


def real_clip(seconds: int) -> None:
    """Ingest a decodable 1080p clip with derive off, time what the in-process worker does with it, then ingest it
    with derive `wait`."""
    clip = make_1080p(OUT / f"clip-1080p-{seconds}s.mp4", seconds)
    device = device_for("real", clip)
    mib = clip.stat().st_size / 2**20
    settings = fresh_home()
    put_in_cache([clip], "warm")
    off = timed(lambda: ingest(device, settings, derive="later"))
    made, derive_s, verdict, decode_s = _worker_steps(settings, _only_recording(settings))
    settings = fresh_home()
    put_in_cache([clip], "warm")
    on = timed(lambda: ingest(device, settings, derive="wait"))
    fresh_home()
    print(f"real clip: 1080p30 H.264/AAC, {seconds} s, {mib:.0f} MiB ({mib * 8 * 2**20 / 1e6 / seconds:.1f} Mbit/s), "
          "warm page cache, one run each")
    print(f"  ingest, derive later                 {off:7.2f} s")
    print(f"  derive_recording ({', '.join(made)}) {derive_s:7.2f} s  = {seconds / derive_s:5.1f}x realtime")
    print(f"  check_recording (verdict {verdict})      {decode_s:7.2f} s  = {seconds / decode_s:5.1f}x realtime")
    print(f"  ingest, derive wait                  {on:7.2f} s  (derive and decode check run before it returns)")
    scale = 2048 / mib  # this clip's size to 2 GiB
    print(f"  a 2 GiB clip of this bitrate holds {seconds * scale / 60:.0f} min of media: derive "
          f"~{derive_s * scale / 60:.1f} min, decode check ~{decode_s * scale / 60:.1f} min one after the other; "
          f"ingest with derive wait ~{on * scale / 60:.1f} min (scaled from this clip, not measured)")


def main() -> None:
    args = arguments(__doc__, size_mib=2048, rounds=3, padded_seconds=2, real_seconds=60)
    size = args.size_mib * 2**20
    clips = {"random": random_clip(OUT / "one-clip-src" / "random.mp4", size),
             "padded": padded_clip(OUT / "one-clip-src" / "padded.mp4", size, args.padded_seconds)}
    kinds: dict[str, str] = {}
    before = load_text()
    times = run_rounds(args.rounds, clips, methods(clips, kinds))
    print(f"one clip of {args.size_mib} MiB, embedded default (local store, SQLite), {args.rounds} interleaved "
          f"rounds; {before} before, {load_text()} after; 2 shared cores: indicative figures")
    print(f"catalogued as: {', '.join(f'{name} {kind}' for name, kind in kinds.items())}")
    report(times, args.size_mib)
    if args.real_seconds:
        real_clip(args.real_seconds)


if __name__ == "__main__":
    main()
