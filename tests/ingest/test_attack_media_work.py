"""Attacks on the media backlog (catalog.media_work, ingest.media_work): what an outsider, a hostile device, a
cron job with a short PATH, a service manager stopping the station, a second worker or a disposal can do to it.

Each test states a promise of docs/queue.md ("The media backlog") and fails when it is broken:

* every archived media recording eventually gets its thumbnail/proxy/decode verdict, or a recorded failure;
* media that cannot be rendered is recorded once and not tried at every pass; one bad file never stops a pass;
* a store or catalogue away, or a decoder stopped from outside, defers: never a false failure or verdict;
* two renderers never work at once per EVIDENCE_HOME, and a dock that finds the renderer busy still gets its
  recordings rendered;
* nothing here ever touches or alters the evidence itself.

Real clips made by ffmpeg, the real local WORM store, SQLite and (where concurrency matters) PostgreSQL, real
`evidence` processes for the renderers.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from catalog import DerivedMedia, MediaWorkFailure, Recording, open_catalog
from catalog.integrity import DECODE_CHECK
from catalog.media_work import MAX_REASON_CHARS, record_media_failure
from catalog.models import IntegrityCheck
from catalog.signing import load_or_create_key
from ingest.archiving import archive_recording, archive_staged
from ingest.config import Settings
from ingest.media_work import PID_NAME, do_media_work, render_backlog, renderer_lock
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.queue.workers import run_ingest
from ingest.samples import make_photo, make_wav, run_ffmpeg
from ingest.services import open_store
from storage import LocalStore, ObjectMissing
from tests.cli import run_cli
from tests.conftest import _missing, postgres_database, process_env, wait_for
from tests.helpers.clips import damaged_clip, noisy_clip
from tests.helpers.media_work import alive as _alive
from tests.helpers.media_work import backlog as _backlog
from tests.helpers.media_work import ffmpeg_children
from tests.helpers.media_work import ids_by_name as _ids
from tests.helpers.media_work import media_work_of as _work

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

NAMES = {"video": "MVI_0001.MP4", "photo": "IMG_0002.JPG", "audio": "REC_0003.WAV", "damaged": "MVI_0004.MP4",
         "slow": "MVI_0005.MP4", "thin": "IMG_0006.JPG"}
EVIDENCE = str(Path(sys.executable).parent / "evidence")  # the console script: its sys.path[0] is its own folder


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path):
    """SQLite unless a test asks for PostgreSQL (indirect parametrisation): keeps this file's runtime short."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield from postgres_database()


POSTGRES = pytest.mark.parametrize("catalog_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                   indirect=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, ffmpeg_available: None) -> dict[str, Path]:
    import cv2
    import numpy as np

    root = tmp_path_factory.mktemp("attack-media")
    video = noisy_clip(root / "video.mp4")
    # 15 s of 960x540 noise: its proxy takes seconds and its decode more than a second (time to stop them)
    slow = root / "slow.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=960x540:rate=25:duration=15,noise=alls=30:allf=t",
               "-f", "lavfi", "-i", "sine=frequency=440:duration=15", "-c:v", "libx264", "-preset", "ultrafast",
               "-crf", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(slow))
    # A valid 1 x 4000 pixel JPEG of 1.6 KB: a hostile camera's "photo"
    thin = root / "thin.jpg"
    assert cv2.imwrite(str(thin), np.full((4000, 1, 3), 128, np.uint8))
    return {"video": video, "photo": make_photo(root / "photo.jpg", size="640x480"),
            "audio": make_wav(root / "audio.wav", seconds=1.0), "damaged": damaged_clip(root / "bad.mp4", video),
            "slow": slow, "thin": thin}


def _device(root: Path, media: dict[str, Path], *kinds: str) -> Path:
    folder = root / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    for kind in kinds:
        shutil.copyfile(media[kind], folder / NAMES[kind])  # a copy: never a link to the module's files
    return root


def _failures(engine: Any) -> dict[tuple[int, str], str]:
    with Session(engine) as session:
        return {(f.recording_id, f.kind): f.reason for f in session.exec(select(MediaWorkFailure))}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _evidence(env: dict[str, str], *args: str, cwd: Path | None = None,
              **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVIDENCE, *args], env=process_env({**env, **extra}), capture_output=True, text=True,
                          timeout=240, check=False, cwd=cwd)


def _in_thread(target: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = target(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


# ----------------------------------------------------------------------------- the renderer's environment


def test_a_renderer_whose_path_lacks_ffmpeg_records_no_damaged_verdict_and_no_failure(tmp_path, media, env,
                                                                                       settings, engine):
    if shutil.which("setpriv") is None:
        _missing("util-linux setpriv (ingest.derive.dies_with_parent)")
    # Given a good video archived with its media work left for later
    report = run_ingest(_device(tmp_path / "cam", media, "video"), settings, IngestOptions(), derive="later")
    rid = _ids(report)[NAMES["video"]]
    run_cli(env, "user", "list")
    # When `evidence derive-pending` runs from cron, whose PATH (here: only setpriv's folder) has no ffmpeg
    bindir = tmp_path / "cron-bin"
    bindir.mkdir()
    (bindir / "setpriv").symlink_to(str(shutil.which("setpriv")))
    _evidence(env, "derive-pending", "--json", PATH=str(bindir))
    # Then the good video is not judged damaged, and nothing is recorded as failed for good: a missing tool is not
    # the media's fault (the work stays pending for a renderer that has ffmpeg)
    work = _work(engine).get(rid, set())
    assert "decode:damaged" not in work, (work, _failures(engine))
    assert not any(w.startswith("failed:") for w in work), _failures(engine)


def test_do_media_work_without_any_ffmpeg_defers_instead_of_raising(tmp_path, media, settings, engine,
                                                                    monkeypatch):
    report = run_ingest(_device(tmp_path / "cam", media, "video", "audio"), settings, IngestOptions(),
                        derive="later")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # neither ffmpeg nor setpriv
    # "Raises RecordingNotFound; nothing else (a store or catalogue away defers)"
    for rid in _ids(report).values():
        outcome = do_media_work(engine, open_store(settings), settings.home / "work", rid, by="station:test")
        assert not outcome.failed, outcome
    assert not _failures(engine)


def test_the_background_renderer_does_not_import_code_from_the_ingests_working_folder(tmp_path, media, env,
                                                                                      engine):
    # Given a hostile device that carries a `click.py`, and an operator who runs `evidence ingest .` inside it
    device = _device(tmp_path / "cam", media, "photo")
    mark = tmp_path / "PWNED"
    (device / "click.py").write_text(
        "import os, sys\n"
        f"open({str(mark)!r}, 'a').write(' '.join(sys.argv) + '\\n')\n"
        "_here = os.path.dirname(os.path.abspath(__file__))\n"
        "sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != _here]\n"
        "del sys.modules['click']\n"
        "import click as _real\n"
        "sys.modules['click'] = _real\n")
    run_cli(env, "user", "list")
    done = _evidence(env, "ingest", "--json", ".", cwd=device, EVIDENCE_DERIVE="background")
    assert done.returncode == 0, done.stderr
    pid = json.loads(done.stdout)["renderer_pid"]
    assert isinstance(pid, int)
    wait_for(lambda: not _alive(pid), 120, "the background renderer to finish")
    # Then no code from the device ran (`python -m` puts the working folder first on sys.path)
    assert not mark.exists(), f"code from the ingest's working folder ran in: {mark.read_text()}"
    assert _backlog(engine) == []


def test_an_invalid_evidence_derive_is_refused_naming_the_variable(tmp_path, media, env, engine):
    device = _device(tmp_path / "cam", media, "photo")
    for args in (("ingest", str(device)), ("derive-pending",)):
        result = run_cli({**env, "EVIDENCE_DERIVE": "sometimes"}, *args)
        output = result.output + (getattr(result, "stderr", "") or "")
        assert result.exit_code == 2, output
        assert "EVIDENCE_DERIVE" in output and "sometimes" in output and "background" in output, output
    with Session(engine) as session:
        assert session.exec(select(Recording)).first() is None  # nothing was taken in


# ----------------------------------------------------------------------------- the renderer's lock


def test_a_lock_file_made_a_symlink_to_an_original_never_alters_the_original(tmp_path, media, env, settings,
                                                                             engine):
    report = run_ingest(_device(tmp_path / "cam", media, "photo"), settings, IngestOptions(), derive="later")
    with Session(engine) as session:
        recording = session.get(Recording, _ids(report)[NAMES["photo"]])
        assert recording is not None
        sha = recording.sha256
    original = LocalStore(settings.store_path).tree.object_path(sha)
    assert _sha256(original) == sha
    # Given EVIDENCE_HOME's lock file replaced by a symlink to a stored original (whoever can write the home)
    lock = settings.home / PID_NAME
    lock.unlink(missing_ok=True)
    lock.symlink_to(original)
    # When a renderer runs
    run_cli(env, "derive-pending", "--json")
    # Then the evidence is as it was stored
    assert original.stat().st_size == recording.size_bytes and _sha256(original) == sha


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_lock_file_removed_while_held_still_keeps_a_second_renderer_out(tmp_path, media, env, settings, engine,
                                                                         how):
    run_ingest(_device(tmp_path / "cam", media, "photo"), settings, IngestOptions(), derive="later")
    pending = _backlog(engine)
    lock = settings.home / PID_NAME
    with renderer_lock(settings.home) as held:
        assert held
        # an operator "clearing a stale lock", a tmp cleaner, a config tool rewriting the folder
        if how == "deleted":
            lock.unlink()
        else:
            (settings.home / "lock.new").write_text("0\n")
            os.replace(settings.home / "lock.new", lock)
        result = run_cli(env, "derive-pending", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {"renderer": "another renderer is at work"}, (
            "a second renderer worked while the first held the lock")
        assert _backlog(engine) == pending


def test_a_stale_lock_file_naming_a_dead_process_does_not_stop_rendering(tmp_path, media, env, settings, engine):
    run_ingest(_device(tmp_path / "cam", media, "photo"), settings, IngestOptions(), derive="later")
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / PID_NAME).write_text("4194304\n" + "x" * 10000)  # no such pid; junk after it
    result = run_cli(env, "derive-pending", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["done"] == 2 and _backlog(engine) == []


def test_an_ingest_that_waits_still_succeeds_when_the_lock_cannot_be_opened(tmp_path, media, env, settings,
                                                                           engine):
    # Given a lock path the renderer cannot open (here a folder; in the field: a lock left by a root-run
    # `derive-pending`, 0600 and owned by root, that the station account cannot open)
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / PID_NAME).mkdir()
    run_cli(env, "user", "list")
    done = _evidence(env, "ingest", "--json", str(_device(tmp_path / "cam", media, "photo")), EVIDENCE_DERIVE="wait")
    # Then the dock still succeeds: its recordings are archived, and rendering is never allowed to hold it up
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert {r["state"] for r in report["recordings"]} <= {"archived", "verified"}


# ----------------------------------------------------------------------------- stopped from outside


@pytest.mark.parametrize(("kind", "marker"), [("proxy", b"libx264"), (DECODE_CHECK, b"-stats_period")])
def test_an_ffmpeg_terminated_from_outside_leaves_the_work_pending_not_failed(tmp_path, media, settings, engine,
                                                                             kind, marker):
    # Given a good 15 s clip, archived
    report = run_ingest(_device(tmp_path / "cam", media, "slow"), settings, IngestOptions(), derive="later")
    rid = _ids(report)[NAMES["slow"]]
    # When its proxy encode / decode check is under way and the service manager stops everything (SIGTERM to
    # the whole cgroup, as `systemctl stop` does), or an operator kills the runaway ffmpeg
    thread, box = _in_thread(do_media_work, engine, open_store(settings), settings.home / "work", rid,
                             by="station:test", only=(kind,))
    found: list[int] = []
    def started() -> bool:
        found[:] = ffmpeg_children(os.getpid(), marker)
        return bool(found) or not thread.is_alive()

    wait_for(started, 60, f"the {kind} ffmpeg to start")
    assert found, "the ffmpeg finished before it could be stopped"
    os.kill(found[0], signal.SIGTERM)
    thread.join(60)
    assert "error" not in box, box
    # Then nothing is recorded against the media: no failure for good, no "damaged" verdict on good evidence
    outcome = box["result"]
    work = _work(engine).get(rid, set())
    assert not outcome.failed and "decode:damaged" not in work and not _failures(engine), (outcome, work)
    # and the work is left to the next pass, or (a signal that reached ffmpeg while it started up, when it exits 1
    # like a file it cannot read) done by the second run that a failure gets before it counts
    assert rid in _backlog(engine) or kind in outcome.done, (outcome, work)


# ----------------------------------------------------------------------------- hostile media


def test_a_one_pixel_wide_photo_does_not_make_the_renderer_allocate_gigabytes(tmp_path, media):
    # Given a camera's 1.6 KB "photo" of 1 x 4000 pixels (its thumbnail: 320 x 1 280 000 pixels before imwrite
    # refuses it; at 1 x 65 500 pixels, 20 GB: the OOM killer ends the renderer, and every pass after it), and a
    # 640x480 photo as the control, each with a sound after it, rendered by `evidence derive-pending` in homes of
    # their own; the peak is the renderer's with its ffmpeg children (wait4), compared with the control's in the
    # same run: a machine's own peak (OpenCV, ffmpeg builds) varies, the difference does not
    peaks: dict[str, float] = {}
    for photo in ("photo", "thin"):
        env = {"EVIDENCE_HOME": str(tmp_path / photo / "home"),
               "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp_path / photo / 'catalog.db'}"}
        settings = Settings.from_env(env)
        report = run_ingest(_device(tmp_path / photo / "cam", media, photo, "audio"), settings, IngestOptions(),
                            derive="later")
        run_cli(env, "user", "list")
        err = tmp_path / photo / "derive-pending.err"
        with err.open("wb") as errors:
            proc = subprocess.Popen([EVIDENCE, "derive-pending", "--json"], env=process_env(env),
                                    stdout=subprocess.DEVNULL, stderr=errors)
            _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, err.read_text()[-3000:]
        peaks[photo] = usage.ru_maxrss / 1024
        engine = open_catalog(settings.database_url)
        try:
            # The pass went on to the next recording
            assert _work(engine)[_ids(report)[NAMES["audio"]]] == {"proxy", "decode:ok"}
        finally:
            engine.dispose()
    assert peaks["thin"] < peaks["photo"] + 150, (
        f"the renderer peaked at {peaks['thin']:.0f} MB for a 1.6 KB photo, {peaks['photo']:.0f} MB for a 640x480 one")


def test_a_decode_past_its_deadline_is_recorded_once_and_the_pass_goes_on(tmp_path, media, settings, engine,
                                                                          monkeypatch):
    import ingest.decode_check as decode_check

    report = run_ingest(_device(tmp_path / "cam", media, "video", "audio"), settings, IngestOptions(),
                        derive="later")
    # A decoder that hangs on the file: the deadline is what ends it (made tiny here instead of minutes)
    monkeypatch.setattr(decode_check, "MIN_TIMEOUT_S", 0.001)
    monkeypatch.setattr(decode_check, "TIMEOUT_PER_MEDIA_S", 0.0)
    done = render_backlog(settings, engine, open_store(settings), by="station:test")
    assert done is not None and done.recordings == 2 and done.stopped is None, done
    ids = _ids(report)
    work = _work(engine)
    assert work[ids[NAMES["video"]]] == {"thumbnail", "proxy", f"failed:{DECODE_CHECK}"}
    assert work[ids[NAMES["audio"]]] == {"proxy", f"failed:{DECODE_CHECK}"}
    failures = _failures(engine)
    assert all("0.001" in r or "deadline" in r or "within" in r or "timed out" in r.lower()
               for r in failures.values()), failures
    monkeypatch.undo()
    again = render_backlog(settings, engine, open_store(settings), by="station:test")
    assert again is not None and (again.recordings, again.done, again.failed) == (0, 0, 0)


@pytest.mark.parametrize("catalog_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_hostile_very_long_failure_reason_is_kept_cut_and_replaced_not_duplicated(tmp_path, media, settings,
                                                                                   engine, env):
    report = run_ingest(_device(tmp_path / "cam", media, "damaged"), settings, IngestOptions(), derive="later")
    rid = _ids(report)[NAMES["damaged"]]
    hostile = ("\u202e<script>alert(1)</script>'; DROP TABLE recording; --\n\r\t证据💥" * 200)
    with Session(engine) as session:
        recording = session.get(Recording, rid)
        assert recording is not None
        record_media_failure(session, recording, "proxy", hostile, by="x" * 500)
        session.commit()
        record_media_failure(session, recording, "proxy", hostile[::-1], by="station:test")
        session.commit()
    failures = _failures(engine)
    assert list(failures) == [(rid, "proxy")]
    assert failures[(rid, "proxy")] == hostile[::-1][:MAX_REASON_CHARS]
    shown = run_cli(env, "show", str(rid), "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["media_work_failed"]["proxy"] == hostile[::-1][:MAX_REASON_CHARS]


# ----------------------------------------------------------------------------- the backlog's contents


def test_the_store_losing_an_original_defers_it_records_no_failure_and_the_pass_goes_on(tmp_path, media, env,
                                                                                        settings, engine):
    report = run_ingest(_device(tmp_path / "cam", media, "video", "photo", "audio"), settings, IngestOptions(),
                        derive="later")
    ids = _ids(report)
    with Session(engine) as session:
        video = session.get(Recording, ids[NAMES["video"]])
        photo = session.get(Recording, ids[NAMES["photo"]])
        assert video is not None and photo is not None
        # the photo disposed of behind the application's back (its row says so; its object is gone)
        photo.state = "disposed"
        session.add(photo)
        session.commit()
        video_sha, photo_sha = video.sha256, photo.sha256
    tree = LocalStore(settings.store_path).tree
    for sha in (video_sha, photo_sha):
        try:
            tree.object_path(sha).unlink()  # removed behind the application's back
        except PermissionError:
            _missing("a local store whose originals its owner can remove (FS_IMMUTABLE_FL is set here)")
    result = run_cli(env, "derive-pending", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["deferred"] == 1 and summary["recordings"] == 2, summary
    work = _work(engine)
    assert work[ids[NAMES["audio"]]] == {"proxy", "decode:ok"}  # the pass went on
    assert ids[NAMES["video"]] not in work and ids[NAMES["photo"]] not in work  # no false failure
    assert _backlog(engine) == [ids[NAMES["video"]]]


def test_staged_and_non_media_recordings_are_never_in_the_backlog(tmp_path, media, settings, engine):
    # Given a dock left staged (store-and-forward) and an archived dock with a document and a non-media file
    device = _device(tmp_path / "b", media)
    (device / "DCIM" / "100EVCAM" / "NOTE.PDF").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (device / "DCIM" / "100EVCAM" / "LOG.TXT").write_text("hello")
    archived = run_ingest(device, settings, IngestOptions(), derive="later")
    staged = ingest_folder(_device(tmp_path / "a", media, "video"), settings=settings, engine=engine,
                           store=open_store(settings), options=replace(IngestOptions(), defer_archive=True))
    staged_id = _ids(staged)[NAMES["video"]]
    with Session(engine) as session:
        assert session.get(Recording, staged_id).state == "staged"  # type: ignore[union-attr]
        kinds = {r.media_kind for r in session.exec(select(Recording))}
    assert _backlog(engine) == [], kinds
    outcome = do_media_work(engine, open_store(settings), settings.home / "work", staged_id, by="station:test")
    assert (outcome.done, outcome.failed, outcome.deferred) == ([], {}, None)
    for rid in _ids(archived).values():
        outcome = do_media_work(engine, open_store(settings), settings.home / "work", rid, by="station:test")
        assert (outcome.done, outcome.failed) == ([], {})
    assert _work(engine) == {}


# ----------------------------------------------------------------------------- concurrency


def test_a_recording_archived_below_the_busy_renderers_position_is_still_rendered(tmp_path, media, settings,
                                                                                 engine):
    store = open_store(settings)
    key = load_or_create_key(settings.station_key_path)
    # Given dock A staged first (lower ids; its upload slower) and dock B staged after it and archived at once
    first = ingest_folder(_device(tmp_path / "a", media, "audio"), settings=settings, engine=engine, store=store,
                          options=replace(IngestOptions(), defer_archive=True))
    second = ingest_folder(_device(tmp_path / "b", media, "video", "photo"), settings=settings, engine=engine,
                           store=store, options=replace(IngestOptions(), defer_archive=True))
    for rid in sorted(_ids(second).values()):
        archive_recording(engine, store, settings.staging_dir, rid, key=key, actor="station", station=settings.station,
                          policy=settings.retention_policy)
    late = _ids(first)[NAMES["audio"]]
    assert late < min(_ids(second).values()) and _backlog(engine) == sorted(_ids(second).values())
    calls: dict[str, Any] = {"n": 0, "dock_a": "not run"}

    def meanwhile() -> bool:
        calls["n"] += 1
        if calls["n"] == 2:  # B's renderer is at work: dock A's upload finishes and A asks for its rendering
            archive_staged(engine, store, settings.staging_dir, key=key, policy=settings.retention_policy,
                           station=settings.station)
            calls["dock_a"] = render_backlog(settings, engine, store, by="station:dock-a")
        return False

    # When B's renderer works through the backlog
    render_backlog(settings, engine, store, by="station:dock-b", should_stop=meanwhile)
    # Then A found it busy and left its recording to it, and it was rendered all the same
    assert calls["dock_a"] is None
    assert _backlog(engine) == [], f"recording {late}, archived while the renderer was busy, was left unrendered"


def test_a_recording_disposed_of_while_it_is_rendered_keeps_no_derived_copy_and_no_false_failure(
        tmp_path, media, settings, engine):
    from catalog import CustodyKind, Signer, append_event, ensure_station_key, record_stamp, start_sweep, write_manifest
    from catalog.replay import ROW_KEY, row_values
    from catalog.types import utcnow
    from tests.helpers.retention import KEY, POLICY, wait_past

    store = LocalStore(settings.store_path)
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(media["slow"], clip)
    sha = _sha256(clip)
    old = datetime(2025, 1, 1, tzinfo=UTC)
    # Given a clip whose retention has run out (stored and catalogued as ingest does, with its signed manifest)
    with Session(engine) as session:
        ensure_station_key(session, "station-1", KEY, actor="station:test", store=store)
        stored = store.put_file(clip, sha256=sha, size_bytes=clip.stat().st_size,
                                retain_until=utcnow() + timedelta(seconds=2))
        recording = Recording(sha256=sha, size_bytes=clip.stat().st_size, media_kind="video",
                              original_name="clip.mp4", station_code="station-1",
                              captured_start=old - timedelta(minutes=1), captured_end=old, time_source="container",
                              integrity_status="ok", state="verified", ingested_at=old, archived_at=old,
                              retain_until=stored.retain_until, store_name=store.name, store_key=stored.key,
                              case_number=None, purpose="巡查", duration_s=15.0)
        session.add(recording)
        session.flush()
        append_event(session, CustodyKind.COPIED, actor="station:test", recording_id=recording.id,
                     details={"sha256": sha, "size_bytes": recording.size_bytes, ROW_KEY: row_values(recording)})
        record_stamp(session, recording, by="station:test", reason="ingest")
        write_manifest(session, store, recording, KEY, actor="station:test")
        session.commit()
        rid, until = recording.id, stored.retain_until
    wait_past(until)
    assert _backlog(engine) == [rid]
    # When its proxy is being made and the retention sweep disposes of it
    thread, box = _in_thread(do_media_work, engine, store, settings.home / "work", rid, by="station:test")
    original = str(store.tree.object_path(sha))

    def reading() -> bool:  # the proxy's ffmpeg has the original open
        for pid in ffmpeg_children(os.getpid(), b"libx264"):
            try:
                if any(os.readlink(fd) == original for fd in Path(f"/proc/{pid}/fd").iterdir()):
                    return True
            except OSError:
                continue
        return not thread.is_alive()

    wait_for(reading, 60, "the proxy encode to read the original")
    assert thread.is_alive(), box
    with Session(engine) as session:
        batch = start_sweep(session, store, POLICY, now=utcnow(), by="clerk:李四", approval_required=False,
                            signer=Signer("station-1", KEY))
        assert batch is not None and [o["result"] for o in batch.outcome] == ["disposed"], batch
    thread.join(120)
    assert "error" not in box, box
    # Then no browser copy of the disposed recording survives (disposal removes them), and no false reason is
    # recorded against it
    with Session(engine) as session:
        assert session.get(Recording, rid).state == "disposed"  # type: ignore[union-attr]
        derived = list(session.exec(select(DerivedMedia).where(DerivedMedia.recording_id == rid)))
    left = []
    for name in ("thumbnail.jpg", "proxy.mp4"):
        try:
            store.open_derived(sha, name).close()
            left.append(name)
        except ObjectMissing:
            pass
    assert (not derived, not left, _failures(engine)) == (True, True, {}), (
        f"derived rows {[d.kind for d in derived]} and files {left} of a disposed recording; failures recorded "
        f"against it: {_failures(engine)}")


@POSTGRES
def test_two_derive_pending_started_at_the_same_moment_make_each_kind_once(tmp_path, media, env, settings, engine):
    report = run_ingest(_device(tmp_path / "cam", media, "video", "photo", "audio", "damaged"), settings,
                        IngestOptions(), derive="later")
    run_cli(env, "user", "list")
    procs = [subprocess.Popen([EVIDENCE, "derive-pending", "--json"], env=process_env(env), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert _backlog(engine) == []
    ids = _ids(report)
    work = _work(engine)
    assert work[ids[NAMES["damaged"]]] == {"failed:thumbnail", "failed:proxy", "decode:damaged"}
    with Session(engine) as session:
        made = [(d.recording_id, d.kind) for d in session.exec(select(DerivedMedia))]
        checks = [c.recording_id for c in session.exec(select(IntegrityCheck).where(
            IntegrityCheck.check == DECODE_CHECK))]
    assert len(made) == len(set(made)) == 4 and sorted(checks) == sorted(ids.values())


@POSTGRES
@pytest.mark.parametrize(("clip", "table"), [("damaged", "media_work_failure"), ("video", "derived_media")])
def test_two_derive_workers_on_the_same_recording_never_crash_on_the_unique_constraint(tmp_path, media, settings,
                                                                                      engine, clip, table):
    # Given a recording whose derive message was delivered twice, to two worker threads (dramatiq delivers at
    # least once; the derive actors take no renderer lock), both finishing at the same moment
    report = run_ingest(_device(tmp_path / "cam", media, clip), settings, IngestOptions(), derive="later")
    rid = _ids(report)[NAMES[clip]]
    store = open_store(settings)
    with engine.connect() as holder:
        # both workers look, find no row, and reach their INSERT while this transaction holds the table
        holder.execute(text(f"LOCK TABLE {table} IN SHARE MODE"))
        runs = [_in_thread(do_media_work, engine, store, settings.home / "work", rid, by=f"worker-{n}",
                           only=("thumbnail",)) for n in range(2)]

        def both_waiting() -> bool:
            with engine.connect() as watcher:  # a transaction of its own: pg_stat_activity is a snapshot per one
                waiting = watcher.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                               "'Lock' AND datname = current_database()")).scalar()
            return bool(waiting and waiting >= 2) or not all(t.is_alive() for t, _ in runs)

        wait_for(both_waiting, 60, "both workers to reach their insert")
        holder.rollback()
    for thread, _box in runs:
        thread.join(60)
    errors = [box["error"] for _t, box in runs if "error" in box]
    assert not errors, f"do_media_work raised: {errors!r}"
    with Session(engine) as session:
        rows = list(session.exec(select(DerivedMedia if table == "derived_media" else MediaWorkFailure)))
    assert len(rows) == 1
