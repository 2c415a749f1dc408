"""The background decode check: clips broken in their coded data only, decoded by the real ffmpeg, verdicts
recorded as integrity revisions in the real catalogue (SQLite and PostgreSQL) beside the local WORM store."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlmodel import Session, select

from catalog import CustodyEvent, Recording, find_chain_breaks, load_chain, load_or_create_key
from catalog.integrity import integrity_history
from ingest import photo_child
from ingest.decode_check import (
    DecodeIncomplete,
    DecodeTimedOut,
    check_recording,
    decode_file,
    decode_timeout_s,
    decode_verdict,
    is_heif,
    run_decode_check,
)
from ingest.describe.structure import check_structure
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.queue.actors import queue_names
from ingest.queue.connection import open_queue
from ingest.queue.workers import run_ingest
from ingest.samples import make_clip, make_photo
from tests.cli import run_cli
from tests.helpers.clips import ffmpeg_runs, ffmpeg_stopped_once_at_start
from tests.helpers.queues import drain

CLIP_S = 2.0
DAMAGE_FROM_S = 1.0
PROGRESS = "frame={n:>5} fps=0.0 q=-0.0 size=N/A time={t} bitrate=N/A speed= 412x    \r"


# ----------------------------------------------------------------------------- the pure verdict


def test_no_output_and_exit_zero_is_ok():
    result = decode_verdict("", exit_code=0)
    assert (result.status, result.first_error, result.error_time_s, result.error_lines) == ("ok", None, None, 0)
    assert result.describe() == "decoded without errors"


def test_only_progress_lines_is_ok_and_says_how_far_it_decoded():
    text = "".join(PROGRESS.format(n=n, t=t) for n, t in [(1, "00:00:00.06"), (30, "00:00:01.00")])
    text += "frame=   61 fps=0.0 q=-0.0 Lsize=N/A time=00:01:02.02 bitrate=N/A speed= 443x    \n"
    result = decode_verdict(text, exit_code=0)
    assert (result.status, result.decoded_s, result.first_error) == ("ok", 62.02, None)
    assert result.describe() == "decoded 62.02 s of media without errors"


def test_first_error_is_named_with_the_last_progress_time_before_it():
    text = (PROGRESS.format(n=12, t="00:00:00.80") + PROGRESS.format(n=15, t="00:00:00.97")
            + "[NULL @ 0x55d1c0a8bec0] Invalid NAL unit size (-1623081637 > 971).\n"
            + "[h264 @ 0x55d1c0a91380] Error splitting the input into NAL units.\n"
            + "    Last message repeated 3 times\n"
            + PROGRESS.format(n=16, t="00:00:01.02")
            + "[aac @ 0x55d1c0a8c040] Reserved bit set.\n")
    result = decode_verdict(text, exit_code=0)
    assert result.status == "damaged"
    assert result.first_error == "[NULL] Invalid NAL unit size (-1623081637 > 971)."
    assert (result.error_time_s, result.error_lines, result.decoded_s) == (0.97, 6, 1.02)
    assert result.describe() == ("decoder error at about 0.97 s: [NULL] Invalid NAL unit size "
                                 "(-1623081637 > 971). (6 error lines in all)")


def test_error_before_any_progress_line_is_placed_at_the_start():
    text = "[mjpeg @ 0x5594] overread 7\nsize=N/A time=-00:00:00.02 bitrate=N/A speed=N/A\n"
    result = decode_verdict(text, exit_code=0)
    assert (result.status, result.first_error, result.error_time_s, result.error_lines) == (
        "damaged", "[mjpeg] overread 7", 0.0, 1)
    assert result.decoded_s == 0.0  # a negative start (audio priming) is the start


def test_non_zero_exit_without_error_lines_is_damaged_with_a_clear_message():
    result = decode_verdict(PROGRESS.format(n=3, t="00:00:00.20"), exit_code=69)
    assert (result.status, result.first_error) == ("damaged", None)
    assert result.describe() == "ffmpeg exited with code 69 after 0.20 s of media without an error message"
    crashed = decode_verdict("", exit_code=-11)
    assert crashed.describe() == "ffmpeg crashed (SIGSEGV) without an error message"


def test_the_input_path_is_not_kept_in_the_verdict():
    text = "/srv/store/objects/sha256/ab/cd/abcd: Invalid data found when processing input\n"
    result = decode_verdict(text, exit_code=1, input_path="/srv/store/objects/sha256/ab/cd/abcd")
    assert result.first_error == "input: Invalid data found when processing input"
    assert result.describe() == "decoder error at about 0.00 s: input: Invalid data found when processing input"


def test_deadline_is_generous_and_grows_with_the_duration():
    assert (decode_timeout_s(None), decode_timeout_s(2.0), decode_timeout_s(3600.0)) == (120.0, 120.0, 10800.0)


def test_heif_is_told_by_its_brand():
    assert is_heif(b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00")
    assert is_heif(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00")
    assert not is_heif(b"\x00\x00\x00 ftypisom\x00\x00\x02\x00")
    assert not is_heif(b"")


# ----------------------------------------------------------------------------- clips broken on purpose


def _corrupt_from(clip: Path, dest: Path, seconds: float) -> Path:
    """Overwrite the coded data of every packet from *seconds* on with random bytes; every box size, chunk
    offset and sample size stays as it was."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=pts_time,pos", "-of", "json",
                            str(clip)], capture_output=True, check=True)
    start = min(int(p["pos"]) for p in json.loads(probe.stdout)["packets"] if float(p["pts_time"]) >= seconds)
    data = bytearray(clip.read_bytes())
    mdat = data.index(b"mdat") - 4
    end = mdat + struct.unpack(">I", data[mdat:mdat + 4])[0]
    assert mdat + 8 < start < end
    data[start:end] = random.Random(7).randbytes(end - start)
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture(scope="session")
def clips(tmp_path_factory, ffmpeg_available) -> dict[str, Path]:
    """good: a whole clip; garbled: coded data random from 1 s on (headers intact); stray: three bytes after the
    last box (damaged at ingest, decodes cleanly)."""
    root = tmp_path_factory.mktemp("clips")
    good = make_clip(root / "good.mp4", seconds=CLIP_S)
    stray = root / "stray.mp4"
    stray.write_bytes(good.read_bytes() + b"abc")
    return {"good": good, "garbled": _corrupt_from(good, root / "garbled.mp4", DAMAGE_FROM_S), "stray": stray}


def _device(tmp_path: Path, clips: dict[str, Path], *names: str) -> Path:
    folder = tmp_path / "cam" / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    for number, name in enumerate(names, 1):
        shutil.copy(clips[name], folder / f"MVI_{number:04d}.MP4")
    return tmp_path / "cam"


def _ingest(tmp_path, clips, settings, engine, store, *names, **options):
    report = ingest_folder(_device(tmp_path, clips, *names), settings=settings, engine=engine, store=store,
                           options=IngestOptions(**options))
    return [row["id"] for row in report.recordings], report


def _revisions(engine, recording_id):
    with Session(engine) as session:
        return [(r.revision, r.check, r.status) for r in integrity_history(session, recording_id)]


def _status(engine, recording_id):
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        return recording.integrity_status, recording.integrity_detail


def test_garbled_clip_passes_the_header_check_but_not_the_decoder(clips):
    assert check_structure(clips["garbled"]).problem is None
    result = run_decode_check(clips["garbled"], timeout_s=60)
    assert result.status == "damaged" and result.first_error and result.error_lines >= 1
    assert result.error_time_s is not None
    assert 0.5 <= result.error_time_s <= DAMAGE_FROM_S + 0.1  # measured: 1.02 (end of the last good packet)
    assert result.decoder.startswith("ffmpeg ") and result.exit_code in (0, 1)
    good = run_decode_check(clips["good"], timeout_s=60)
    assert (good.status, good.first_error, good.error_lines) == ("ok", None, 0)
    assert good.decoded_s == pytest.approx(CLIP_S, abs=0.1)


def test_a_decode_stopped_while_ffmpeg_starts_up_is_decoded_again_not_judged_damaged(tmp_path, clips, monkeypatch):
    # Given an ffmpeg that a SIGTERM reaches while it sets up its filters: it exits 1 with errors of its own, as a
    # file it cannot read would (CI, 2026-12-02: a good clip was recorded "damaged" that way)
    shim = ffmpeg_stopped_once_at_start(tmp_path / "bin", "-stats_period")
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    # When a good clip is decode-checked
    result = run_decode_check(clips["good"], timeout_s=60)
    # Then the damaged verdict is confirmed by a second decode, whose verdict stands
    assert (result.status, result.error_lines, ffmpeg_runs(shim, "-stats_period")) == ("ok", 0, 2)
    # and damage that is real is confirmed: two decodes, the same verdict
    damaged = run_decode_check(clips["garbled"], timeout_s=60)
    assert damaged.status == "damaged" and damaged.first_error and ffmpeg_runs(shim, "-stats_period") == 4


def test_decode_found_damage_is_a_new_revision_and_the_ingest_verdict_is_kept(tmp_path, clips, settings, engine,
                                                                             store):
    # Given a clip whose coded data is garbage, which the ingest check passes
    (recording_id,), report = _ingest(tmp_path, clips, settings, engine, store, "garbled")
    assert report.recordings[0]["integrity"]["status"] == "ok"
    with Session(engine) as session:
        first = integrity_history(session, recording_id)
        first_rows = [(r.revision, r.check, r.status, r.detail, r.checked_by, r.checked_at) for r in first]
    assert [row[:3] for row in first_rows] == [(1, "ingest", "ok")]
    # When the decode check runs
    verdict = check_recording(engine, store, settings.home / "work", recording_id, by="worker:test")
    # Then revision 2 says damaged, with the decoder's first error and when it happened
    assert verdict == "damaged"
    with Session(engine) as session:
        history = integrity_history(session, recording_id)
        assert [(r.revision, r.check, r.status) for r in history] == [(1, "ingest", "ok"), (2, "decode", "damaged")]
        assert [(r.revision, r.check, r.status, r.detail, r.checked_by, r.checked_at)
                for r in history[:1]] == first_rows  # revision 1 as ingest wrote it, untouched
        decode = history[1]
        assert decode.checked_by == "worker:test"
        assert 0.5 <= decode.details["error_time_s"] <= DAMAGE_FROM_S + 0.1
        assert decode.details["first_error"] and decode.detail.startswith(
            f"decoder error at about {decode.details['error_time_s']:.2f} s: {decode.details['first_error']}")
        recording = session.get(Recording, recording_id)
        assert recording is not None
        assert recording.integrity_status == "damaged"
        assert recording.integrity_detail == f"decode check: {decode.detail}"
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "integrity_checked",
                                                        CustodyEvent.recording_id == recording_id)).one()
        assert (event.actor, event.details["check"], event.details["revision"], event.details["status"],
                event.details["was"], event.details["now"]) == ("worker:test", "decode", 2, "damaged", "ok",
                                                                "damaged")
        assert event.details["first_error"] == decode.details["first_error"]
        assert find_chain_breaks(load_chain(session)) == []
    # And the original bytes in the store are untouched
    assert store.verify(report.recordings[0]["sha256"]) == report.recordings[0]["sha256"]


def test_clean_decode_adds_an_ok_revision_and_checking_twice_adds_nothing(tmp_path, clips, settings, engine, store):
    (recording_id,), _ = _ingest(tmp_path, clips, settings, engine, store, "good")
    assert check_recording(engine, store, settings.home / "work", recording_id) == "ok"
    assert _revisions(engine, recording_id) == [(1, "ingest", "ok"), (2, "decode", "ok")]
    assert _status(engine, recording_id) == ("ok", "")
    # a second delivery of the same message: no third revision, no second event
    assert check_recording(engine, store, settings.home / "work", recording_id) is None
    assert _revisions(engine, recording_id) == [(1, "ingest", "ok"), (2, "decode", "ok")]
    with Session(engine) as session:
        events = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "integrity_checked")).all()
    assert len(events) == 1
    assert not (settings.home / "work").exists() or not list((settings.home / "work").iterdir())  # read in place


def test_a_file_damaged_at_ingest_stays_damaged_when_decoding_finds_nothing_new(tmp_path, clips, settings, engine,
                                                                               store):
    (recording_id,), report = _ingest(tmp_path, clips, settings, engine, store, "stray")
    ingest_status, ingest_detail = _status(engine, recording_id)
    assert ingest_status == "damaged" and report.recordings[0]["integrity"]["status"] == "damaged"
    assert check_recording(engine, store, settings.home / "work", recording_id) == "ok"
    assert _revisions(engine, recording_id) == [(1, "ingest", "damaged"), (2, "decode", "ok")]
    assert _status(engine, recording_id) == (ingest_status, ingest_detail)  # never "healed"


@pytest.mark.s3
def test_an_original_in_s3_is_fetched_to_a_temporary_file_and_removed_after(tmp_path, clips, settings, engine,
                                                                           s3_store):
    (recording_id,), report = _ingest(tmp_path, clips, settings, engine, s3_store, "garbled")
    assert report.recordings[0]["state"] in ("archived", "verified")
    work = settings.home / "work"
    assert check_recording(engine, s3_store, work, recording_id) == "damaged"
    assert _revisions(engine, recording_id) == [(1, "ingest", "ok"), (2, "decode", "damaged")]
    assert list(work.iterdir()) == []


def test_a_recording_without_its_ingest_revision_gets_it_before_the_decode_verdict(tmp_path, clips, settings,
                                                                                  engine, store):
    # Given a recording whose ingest verdict lives only on the row (catalogued by a path that wrote no revision)
    (recording_id,), _ = _ingest(tmp_path, clips, settings, engine, store, "stray")
    with Session(engine) as session:
        for row in integrity_history(session, recording_id):
            session.delete(row)
        session.commit()
    status, detail = _status(engine, recording_id)
    # When the decode check records its verdict, Then that ingest verdict is kept as revision 1
    assert check_recording(engine, store, settings.home / "work", recording_id) == "ok"
    with Session(engine) as session:
        history = integrity_history(session, recording_id)
        assert [(r.revision, r.check, r.status, r.detail, r.checked_by) for r in history] == [
            (1, "ingest", status, detail, "ingest"), (2, "decode", "ok", history[1].detail, "decode-check")]
    assert _status(engine, recording_id) == (status, detail) == ("damaged", detail)


def test_photos_decode_too_and_a_cut_jpeg_is_damaged_without_a_time(tmp_path, ffmpeg_available):
    whole = make_photo(tmp_path / "a.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    whole_result = decode_file(whole, is_photo=True, timeout_s=60)
    assert whole_result is not None and whole_result.status == "ok"
    result = decode_file(cut, is_photo=True, timeout_s=60)
    assert result is not None
    assert (result.status, result.error_time_s, result.decoded_s) == ("damaged", None, None)
    assert result.first_error is not None
    assert result.first_error.startswith("[mjpeg] ") and result.describe().startswith("decoder error: [mjpeg] ")


def test_heic_is_decoded_by_pillow_heif_when_it_is_installed(tmp_path):
    import pillow_heif  # a dependency of the project: never skipped
    from PIL import Image

    pillow_heif.register_heif_opener()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "a.heic")
    data = (tmp_path / "a.heic").read_bytes()
    (tmp_path / "cut.heic").write_bytes(data[: len(data) // 2])
    good = decode_file(tmp_path / "a.heic", is_photo=True, timeout_s=60)
    assert good is not None
    assert (good.status, good.decoder) == ("ok", f"pillow-heif {pillow_heif.__version__}")
    cut = decode_file(tmp_path / "cut.heic", is_photo=True, timeout_s=60)
    assert cut is not None and cut.first_error is not None
    assert cut.status == "damaged" and "cannot identify image file" in cut.first_error


def test_a_heic_larger_than_its_decode_may_take_gets_no_verdict_never_damaged(tmp_path, monkeypatch):
    # A HEIF is decoded whole by Pillow in the photo process, held to a memory limit: a 4096 x 4096 HEIC (4 KB)
    # under a 32 MB limit stands for a 177-megapixel one under the real 2 GB. A decoder short of memory says
    # "Decoder plugin generated an error" (libheif), which would read as damage: so the size the header says is
    # judged first. The picture is not judged, it is not "damaged", and the check is recorded as failed (not
    # transient), not tried at every pass.
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    Image.new("RGB", (4096, 4096), (200, 10, 10)).save(tmp_path / "big.heic", quality=30)
    monkeypatch.setattr(photo_child, "PHOTO_MEMORY_BYTES", 32 * 1024 * 1024)
    monkeypatch.setattr(photo_child, "_threads", threading.local())  # this thread's next photo process, limited
    with pytest.raises(DecodeIncomplete, match="the HEIF is 4096 x 4096 pixels: decoding it whole would take about "
                       "384 MB, more than the 32 MB a photo's decode may take") as failed:
        decode_file(tmp_path / "big.heic", is_photo=True, timeout_s=60)
    assert not failed.value.transient and "no decode verdict" in str(failed.value)
    # and under the real limit it decodes, in a fresh process
    monkeypatch.undo()
    result = decode_file(tmp_path / "big.heic", is_photo=True, timeout_s=60)
    assert result is not None and result.status == "ok"


def test_input_that_never_ends_is_killed_at_the_deadline(tmp_path, ffmpeg_available):
    fifo = tmp_path / "never"
    os.mkfifo(fifo)  # nobody ever writes: ffmpeg waits forever, as on a decoder stuck on hostile data
    started = time.monotonic()
    with pytest.raises(DecodeTimedOut) as caught:
        run_decode_check(fifo, timeout_s=0.5)
    assert time.monotonic() - started < 10
    assert (caught.value.path, caught.value.timeout_s, caught.value.decoded_s) == (str(fifo), 0.5, None)
    assert str(caught.value) == (f"decode check of {str(fifo)!r} incomplete: ffmpeg did not finish within 0.5 s "
                                 "and was killed")


# ----------------------------------------------------------------------------- through ingest and the queue


def test_embedded_ingest_reports_ok_and_the_decode_check_then_finds_the_damage(tmp_path, clips, settings, engine):
    # Given the embedded default (no broker): ingest archives inline, then an in-process worker derives and checks
    report = run_ingest(_device(tmp_path, clips, "garbled", "good"), settings, IngestOptions())
    rows = {r["original_name"]: r for r in report.recordings}
    assert {name: r["integrity"]["status"] for name, r in rows.items()} == {"MVI_0001.MP4": "ok",
                                                                           "MVI_0002.MP4": "ok"}
    # Then once it returns, the garbled clip is damaged by the decode check and the good one is still ok
    garbled, good = rows["MVI_0001.MP4"]["id"], rows["MVI_0002.MP4"]["id"]
    assert _revisions(engine, garbled) == [(1, "ingest", "ok"), (2, "decode", "damaged")]
    assert _revisions(engine, good) == [(1, "ingest", "ok"), (2, "decode", "ok")]
    assert _status(engine, garbled)[0] == "damaged" and _status(engine, good)[0] == "ok"


def test_archive_actor_leads_to_one_decode_check_however_often_it_runs(tmp_path, clips, settings, engine, store):
    # Given a garbled clip staged with archiving left to the queue
    (recording_id,), report = _ingest(tmp_path, clips, settings, engine, store, "garbled", defer_archive=True)
    assert report.recordings[0]["state"] == "staged"
    key = load_or_create_key(settings.station_key_path)
    # A short archive lease: the second delivery finds the first one's claim and is retried once it runs out
    # (lease + 1 s; the default 60 s lease made this test wait a minute)
    queue = open_queue(dataclasses.replace(settings, archive_lease_s=3.0), engine=engine, store=store,
                       key=key)  # no broker URL: the in-process broker
    broker, actors = queue.broker, queue.actors
    assert isinstance(broker, StubBroker)
    assert actors.decode_check.actor_name == "ingest.decode_check"
    queues = queue_names("evidence", settings.station)
    assert actors.decode_check.queue_name == queues["derive"]
    # When the archive message is delivered twice
    actors.archive.send(recording_id)
    actors.archive.send(recording_id)
    try:
        drain(broker, queues["archive"], queues["derive"], threads=2, fail_fast=True)
    finally:
        queue.close()
    # Then the decode check ran from the archive step and recorded one verdict
    assert _revisions(engine, recording_id) == [(1, "ingest", "ok"), (2, "decode", "damaged")]
    assert broker.dead_letters == []


# ----------------------------------------------------------------------------- the command line


def test_cli_checks_unchecked_recordings_and_shows_the_history(tmp_path, clips, env, settings, engine):
    device = _device(tmp_path, clips, "garbled", "good")
    assert run_cli(env, "ingest", str(device), "--no-derive", "--json").exit_code == 0
    with Session(engine) as session:
        ids = {r.original_name: r.id for r in session.exec(select(Recording))}
    garbled, good = ids["MVI_0001.MP4"], ids["MVI_0002.MP4"]
    # check --unchecked decodes both; finding damage exits 4
    result = run_cli(env, "integrity", "check", "--unchecked", "--by", "auditor")
    assert result.exit_code == 4, result.output
    assert f"recording {garbled} (MVI_0001.MP4): DAMAGED decoder error at about " in result.output
    assert f"recording {good} (MVI_0002.MP4): ok decoded " in result.output
    assert result.output.rstrip().endswith("2 decoded, 1 damaged, 0 not checked")
    # nothing is left unchecked; a named recording already checked is skipped (exit 0)
    again = run_cli(env, "integrity", "check", "--unchecked", "--json")
    assert (again.exit_code, json.loads(again.output)) == (0, {"recordings": []})
    skipped = run_cli(env, "integrity", "check", str(good), "--json")
    assert skipped.exit_code == 0
    assert json.loads(skipped.output)["recordings"][0]["skipped"] == "already decode-checked"
    # history lists every revision with who and when
    history = run_cli(env, "integrity", "history", str(garbled), "--json")
    data = json.loads(history.output)
    assert data["integrity_status"] == "damaged"
    assert [(r["revision"], r["check"], r["status"], r["by"]) for r in data["revisions"]][1:] == [
        (2, "decode", "damaged", "auditor")]
    assert (data["revisions"][0]["revision"], data["revisions"][0]["check"]) == (1, "ingest")
    text = run_cli(env, "integrity", "history", str(garbled)).output
    assert text.startswith(f"recording {garbled} (MVI_0001.MP4): damaged\n  r1 ")
    assert " decode   damaged    by auditor: decoder error at about " in text
    # bad input
    assert run_cli(env, "integrity", "check", "999999").exit_code == 2
    assert run_cli(env, "integrity", "check").exit_code == 2
    assert run_cli(env, "integrity", "history", "999999").exit_code == 2


def test_a_killed_worker_leaves_no_decoder_running(tmp_path):
    # Given a worker process decoding a long clip (a decode that takes many seconds)
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import wait_for

    clip = tmp_path / "long.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30:duration=120",
                    "-c:v", "libx264", "-preset", "ultrafast", str(clip)], check=True)
    script = ("import sys; from pathlib import Path; from ingest.decode_check import run_decode_check; "
              "run_decode_check(Path(sys.argv[1]), timeout_s=600, threads=1)")
    worker = subprocess.Popen([sys.executable, "-c", script, str(clip)], cwd=Path(__file__).resolve().parents[2],
                              start_new_session=True)

    def decoders() -> list[int]:
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = (Path("/proc") / pid / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"ffmpeg") and str(clip).encode() in cmdline:
                found.append(int(pid))
        return found

    try:
        wait_for(lambda: decoders() != [], 30, "the decoder to start")
        # When the worker is killed without warning
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        # Then its ffmpeg goes with it (its own session keeps it from a Ctrl-C, not from outliving the worker)
        wait_for(lambda: decoders() == [], 10, "the orphaned decoder to be killed")
    finally:
        for pid in decoders():
            os.kill(pid, signal.SIGKILL)
        if worker.poll() is None:
            worker.kill()
