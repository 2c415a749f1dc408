"""Media work on a file that kills the process doing it: given up on after a few tries, never taken forever.

The kernel's out-of-memory killer ends a process with SIGKILL and no message: the ffmpeg that decodes a huge or
hostile file, or the worker that runs it. Before this, nothing was recorded and the same file was taken again at
every pass, forever, and nothing said so. Now each start is counted in the catalogue before the work runs, and
after three starts that a kill ended (or that never ended) the work is recorded as failed for good, while the
station's other recordings are rendered as usual. An `ffmpeg` on PATH sends the kill when it is given the chosen
recording's decode (tests.helpers.clips.ffmpeg_killed_on); everything else runs the real ffmpeg on real clips,
the real local WORM store, SQLite and PostgreSQL, and real `evidence derive-pending` processes.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from catalog import MediaWorkAttempt, MediaWorkFailure, Recording
from catalog.detail import recording_detail
from catalog.integrity import DECODE_CHECK
from catalog.media_work import MAX_UNFINISHED, gave_up_reason
from ingest.media_work import render_backlog
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from ingest.samples import run_ffmpeg
from ingest.services import open_store
from tests.cli import run_cli
from tests.conftest import process_env
from tests.helpers.clips import ffmpeg_killed_on, noisy_clip
from tests.helpers.media_work import backlog, ids_by_name, media_work_of

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_available: None) -> Path:
    return noisy_clip(tmp_path_factory.mktemp("killed-media") / "video.mp4")


def _two_videos(root: Path, clip: Path) -> Path:
    """A DCIM "device" with two videos: the clip and a remux of it (the same media, other bytes)."""
    folder = root / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    shutil.copyfile(clip, folder / "MVI_0001.MP4")
    run_ffmpeg("-i", str(clip), "-map", "0", "-c", "copy", "-metadata", "comment=the other one",
               str(folder / "MVI_0002.MP4"))
    return root


def _sha(engine: Any, recording_id: int) -> str:
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        return recording.sha256


def _decodes_of(shim: Path, sha256: str) -> int:
    """How many decode checks (`-f null`) the shim's ffmpeg was asked to run on the object *sha256*."""
    runs = shim / "runs"
    lines = runs.read_text().splitlines() if runs.exists() else []
    return sum(sha256 in line and "-f null" in line for line in lines)


def _unfinished(engine: Any, recording_id: int) -> int | None:
    with Session(engine) as session:
        row = session.get(MediaWorkAttempt, (recording_id, DECODE_CHECK))
        return None if row is None else row.unfinished


def test_a_decode_the_kernel_kills_every_time_is_given_up_on_and_the_other_recording_is_done(
        tmp_path, clip, settings, engine, monkeypatch):
    # Given two archived videos whose media work is left for later, and an ffmpeg that is SIGKILLed whenever it
    # decodes the second one (the out-of-memory killer choosing it, every time)
    report = run_ingest(_two_videos(tmp_path / "cam", clip), settings, IngestOptions(), derive="later")
    ids = ids_by_name(report)
    good, poison = ids["MVI_0001.MP4"], ids["MVI_0002.MP4"]
    sha = _sha(engine, poison)
    shim = ffmpeg_killed_on(tmp_path / "bin", sha, "-f null", victim="ffmpeg")
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    store = open_store(settings)

    # When the renderer passes over the backlog: the first passes leave the killed decode pending, counted
    for n in range(1, MAX_UNFINISHED + 1):
        done = render_backlog(settings, engine, store, by="station:test")
        assert done is not None and done.deferred == 1 and done.failed == 0, (n, done)
        assert _unfinished(engine, poison) == n and backlog(engine) == [poison]
    assert _decodes_of(shim, sha) == MAX_UNFINISHED
    work = media_work_of(engine)
    assert work[good] == {"thumbnail", "proxy", "decode:ok"}  # one bad file never held up the other
    assert work[poison] == {"thumbnail", "proxy"}

    # Then the next pass does not start it again: it is recorded as failed for good, with why, and shown
    last = render_backlog(settings, engine, store, by="station:test")
    assert last is not None and (last.failed, last.deferred) == (1, 0)
    assert _decodes_of(shim, sha) == MAX_UNFINISHED
    assert media_work_of(engine)[poison] == {"thumbnail", "proxy", f"failed:{DECODE_CHECK}"}
    with Session(engine) as session:
        failure = session.exec(select(MediaWorkFailure).where(MediaWorkFailure.recording_id == poison)).one()
        assert failure.reason == gave_up_reason(MAX_UNFINISHED) and "killed" in failure.reason
        recording = session.get(Recording, poison)
        assert recording is not None
        detail = recording_detail(session, recording, settings.retention_policy)
    assert detail["media_work_failed"] == {DECODE_CHECK: gave_up_reason(MAX_UNFINISHED)}
    assert _unfinished(engine, poison) is None and backlog(engine) == []


def test_a_decode_stopped_by_sigterm_is_never_counted_towards_giving_up(tmp_path, clip, settings, engine,
                                                                          monkeypatch):
    # Given a video whose decode is stopped by SIGTERM at every try (a worker being stopped: not the file's doing)
    report = run_ingest(_two_videos(tmp_path / "cam", clip), settings, IngestOptions(), derive="later")
    poison = ids_by_name(report)["MVI_0002.MP4"]
    sha = _sha(engine, poison)
    shim = ffmpeg_killed_on(tmp_path / "bin", sha, "-f null", victim="ffmpeg", signal_name="TERM")
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    store = open_store(settings)
    # When the renderer passes more often than the kills that would give up on it
    for _ in range(MAX_UNFINISHED + 2):
        done = render_backlog(settings, engine, store, by="station:test")
        assert done is not None and done.failed == 0
    # Then the decode is still pending, nothing is counted against it, and nothing was recorded as failed
    assert _decodes_of(shim, sha) == MAX_UNFINISHED + 2
    assert backlog(engine) == [poison] and _unfinished(engine, poison) is None
    with Session(engine) as session:
        assert session.exec(select(MediaWorkFailure)).all() == []


@pytest.mark.slow
def test_a_renderer_the_kernel_kills_on_one_file_gives_up_on_it_after_three_deaths(tmp_path, clip, env, settings,
                                                                                     engine):
    # Given two archived videos, and a machine where decoding the second one gets the renderer itself killed
    # (the out-of-memory killer choosing the process that runs the decode)
    run_cli(env, "user", "list")  # binds this OS account for the `evidence` processes below
    report = run_ingest(_two_videos(tmp_path / "cam", clip), settings, IngestOptions(), derive="later")
    ids = ids_by_name(report)
    good, poison = ids["MVI_0001.MP4"], ids["MVI_0002.MP4"]
    sha = _sha(engine, poison)
    shim = ffmpeg_killed_on(tmp_path / "bin", sha, "-f null", victim="parent")
    path_env = {**env, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}

    def derive_pending() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "evidence.cli.main", "derive-pending", "--quiet"],
                              env=process_env(path_env), capture_output=True, text=True, timeout=300, check=False)

    # When `evidence derive-pending` is run again after each death (as a service manager restarts a worker)
    for n in range(1, MAX_UNFINISHED + 1):
        died = derive_pending()
        assert died.returncode == -signal.SIGKILL, (n, died.returncode, died.stderr[-2000:])
        assert _unfinished(engine, poison) == n
    assert _decodes_of(shim, sha) == MAX_UNFINISHED

    # Then the next run gives up on that decode without starting it, finishes the rest and exits normally
    last = derive_pending()
    assert last.returncode == 0, last.stderr[-2000:]
    assert _decodes_of(shim, sha) == MAX_UNFINISHED
    work = media_work_of(engine)
    assert work[good] == {"thumbnail", "proxy", "decode:ok"}
    assert work[poison] == {"thumbnail", "proxy", f"failed:{DECODE_CHECK}"}
    assert backlog(engine) == [] and _unfinished(engine, poison) is None
