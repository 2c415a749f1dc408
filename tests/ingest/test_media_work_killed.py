"""Media work whose ffmpeg the kernel kills every time: given up on after a few kills, never taken forever.

The kernel's out-of-memory killer ends a process with SIGKILL and no message. Before this, an ffmpeg killed while it
decoded or rendered a huge or hostile file left nothing recorded, and the same file was taken again at every pass,
forever, and nothing said so. Now each SIGKILL seen is counted in the catalogue, and at the third the work is
recorded as failed for good, while the station's other recordings are rendered as usual. Nothing else counts: an
ffmpeg stopped by SIGTERM, or a renderer that dies itself (stopped or killed: nothing tells which), never gives up
on a file. An `ffmpeg` on PATH sends the signal when it is given the chosen recording's decode
(tests.helpers.clips.ffmpeg_killed_on); everything else is the real ffmpeg on real clips, the real local WORM store,
SQLite and PostgreSQL, and real `evidence derive-pending` processes.
"""
from __future__ import annotations

import json
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
from catalog.media_work import MAX_KILLS, gave_up_reason, record_media_failure
from ingest.media_work import render_backlog
from ingest.pipeline import IngestOptions
from ingest.queue.workers import run_ingest
from ingest.samples import run_ffmpeg
from ingest.services import open_store
from tests.cli import run_cli
from tests.conftest import process_env
from tests.helpers.clips import ffmpeg_killed_on, ffmpeg_runs, noisy_clip
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


def _archived_pair(root: Path, clip: Path, settings: Any, engine: Any) -> tuple[int, int, str]:
    """Two archived videos with their media work left for later: (good id, chosen id, the chosen one's SHA-256)."""
    ids = ids_by_name(run_ingest(_two_videos(root, clip), settings, IngestOptions(), derive="later"))
    chosen = ids["MVI_0002.MP4"]
    with Session(engine) as session:
        recording = session.get(Recording, chosen)
        assert recording is not None
        return ids["MVI_0001.MP4"], chosen, recording.sha256


def _decodes_of(shim: Path, sha256: str) -> int:
    """How many decode checks (`-f null`) the shim's ffmpeg was asked to run on the object *sha256*."""
    return ffmpeg_runs(shim, sha256, "-f null")


def _kills(engine: Any, recording_id: int) -> int:
    with Session(engine) as session:
        row = session.get(MediaWorkAttempt, (recording_id, DECODE_CHECK))
        return 0 if row is None else row.kills


def test_a_video_thumbnail_is_decoded_in_a_process_of_its_own_that_the_kernel_may_kill(tmp_path, clip, settings,
                                                                                     engine, monkeypatch):
    # Given two archived videos, and an ffmpeg that is SIGKILLed whenever it takes the second one's thumbnail frame:
    # a decoder that would take gigabytes, crash or spin, in the renderer's own process before (OpenCV)
    good, poison, sha = _archived_pair(tmp_path / "cam", clip, settings, engine)
    shim = ffmpeg_killed_on(tmp_path / "bin", sha, "-frames:v 1", victim="ffmpeg")
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    store = open_store(settings)
    # When the renderer passes over the backlog, it survives every kill, counts it, and gives up at the last
    for n in range(1, MAX_KILLS + 1):
        done = render_backlog(settings, engine, store, by="station:test")
        assert done is not None and (done.deferred, done.failed) == ((1, 0) if n < MAX_KILLS else (0, 1)), (n, done)
    assert ffmpeg_runs(shim, sha, "-frames:v 1") == MAX_KILLS
    work = media_work_of(engine)
    assert work[good] == {"thumbnail", "proxy", "decode:ok"}
    assert work[poison] == {"failed:thumbnail", "proxy", "decode:ok"}  # its other work went on once given up
    with Session(engine) as session:
        failure = session.exec(select(MediaWorkFailure).where(MediaWorkFailure.recording_id == poison)).one()
    assert (failure.kind, failure.reason) == ("thumbnail", gave_up_reason(MAX_KILLS))


def test_a_decode_the_kernel_kills_every_time_is_given_up_on_and_the_other_recording_is_done(
        tmp_path, clip, settings, engine, env, monkeypatch):
    # Given two archived videos, and an ffmpeg that is SIGKILLed whenever it decodes the second one (the
    # out-of-memory killer choosing it, every time)
    good, poison, sha = _archived_pair(tmp_path / "cam", clip, settings, engine)
    shim = ffmpeg_killed_on(tmp_path / "bin", sha, "-f null", victim="ffmpeg")
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{path}")
    store = open_store(settings)

    # When the renderer passes over the backlog: the first passes leave the killed decode pending, counted
    for n in range(1, MAX_KILLS):
        done = render_backlog(settings, engine, store, by="station:test")
        assert done is not None and done.deferred == 1 and done.failed == 0, (n, done)
        assert _kills(engine, poison) == n and backlog(engine) == [poison]
    work = media_work_of(engine)
    assert work[good] == {"thumbnail", "proxy", "decode:ok"}  # one bad file never held up the other
    assert work[poison] == {"thumbnail", "proxy"}

    # Then the pass that sees the last kill records the decode as failed for good, with why, and shows it
    last = render_backlog(settings, engine, store, by="station:test")
    assert last is not None and (last.failed, last.deferred) == (1, 0)
    assert _decodes_of(shim, sha) == MAX_KILLS and _kills(engine, poison) == MAX_KILLS
    assert media_work_of(engine)[poison] == {"thumbnail", "proxy", f"failed:{DECODE_CHECK}"}
    with Session(engine) as session:
        failure = session.exec(select(MediaWorkFailure).where(MediaWorkFailure.recording_id == poison)).one()
        assert failure.reason == gave_up_reason(MAX_KILLS) and "killed" in failure.reason
        recording = session.get(Recording, poison)
        assert recording is not None
        detail = recording_detail(session, recording, settings.retention_policy)
    assert detail["media_work_failed"] == {DECODE_CHECK: gave_up_reason(MAX_KILLS)}
    assert backlog(engine) == []
    # and no later pass starts it again
    again = render_backlog(settings, engine, store, by="station:test")
    assert again is not None and again.recordings == 0 and _decodes_of(shim, sha) == MAX_KILLS

    # And once the machine can decode it (more memory), `derive-pending --retry killed` puts back only what was
    # given up on after kills, and decodes it; a failure the media caused stays as it was
    with Session(engine) as session:
        other = session.get(Recording, good)
        assert other is not None
        record_media_failure(session, other, "thumbnail", "no decodable frame", by="station:test")
        session.commit()
    monkeypatch.setenv("PATH", path)
    result = run_cli(env, "derive-pending", "--retry", "killed", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["retried"] == 1
    work = media_work_of(engine)
    assert work[poison] == {"thumbnail", "proxy", "decode:ok"} and _kills(engine, poison) == 0
    assert "failed:thumbnail" in work[good]


def test_a_decode_stopped_by_sigterm_is_never_counted_towards_giving_up(tmp_path, clip, settings, engine,
                                                                          monkeypatch):
    # Given a video whose decode is stopped by SIGTERM at every try (a worker being stopped: not the file's doing)
    _good, poison, sha = _archived_pair(tmp_path / "cam", clip, settings, engine)
    shim = ffmpeg_killed_on(tmp_path / "bin", sha, "-f null", victim="ffmpeg", signal_name="TERM")
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    store = open_store(settings)
    # When the renderer passes more often than the kills that would give up on it
    for _ in range(MAX_KILLS + 2):
        done = render_backlog(settings, engine, store, by="station:test")
        assert done is not None and done.failed == 0
    # Then the decode is still pending, nothing is counted against it, and nothing was recorded as failed
    assert _decodes_of(shim, sha) == MAX_KILLS + 2
    assert backlog(engine) == [poison] and _kills(engine, poison) == 0
    with Session(engine) as session:
        assert session.exec(select(MediaWorkFailure)).all() == []


@pytest.mark.slow
def test_a_renderer_that_dies_on_a_file_never_gives_up_on_it_and_finishes_once_it_can(tmp_path, clip, env,
                                                                                      settings, engine):
    # Given two archived videos, and a machine where decoding the second one gets the renderer itself killed (the
    # out-of-memory killer choosing it; a `systemctl stop` at that moment looks the same from the catalogue)
    run_cli(env, "user", "list")  # binds this OS account for the `evidence` processes below
    good, poison, sha = _archived_pair(tmp_path / "cam", clip, settings, engine)
    shim = ffmpeg_killed_on(tmp_path / "bin", sha, "-f null", victim="parent")

    def derive_pending(path: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "evidence.cli.main", "derive-pending", "--quiet"],
                              env=process_env({**env, "PATH": path}), capture_output=True, text=True, timeout=300,
                              check=False)

    # When `evidence derive-pending` dies on it more often than a killed ffmpeg would be tolerated
    for n in range(MAX_KILLS + 1):
        died = derive_pending(f"{shim}{os.pathsep}{os.environ['PATH']}")
        assert died.returncode == -signal.SIGKILL, (n, died.returncode, died.stderr[-2000:])
    assert _decodes_of(shim, sha) == MAX_KILLS + 1

    # Then nothing was given up on (a process's own death says nothing about the file), and the first run that
    # lives through it finishes everything
    assert _kills(engine, poison) == 0 and backlog(engine) == [poison]
    last = derive_pending(os.environ["PATH"])
    assert last.returncode == 0, last.stderr[-2000:]
    work = media_work_of(engine)
    assert work[good] == {"thumbnail", "proxy", "decode:ok"}
    assert work[poison] == {"thumbnail", "proxy", "decode:ok"}
    assert backlog(engine) == []
