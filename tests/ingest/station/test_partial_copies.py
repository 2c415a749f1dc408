"""Partial copies nobody resumes are seen: a recorder pulled mid-copy leaves a real `.part` in staging, the station's
gauges count it, and once it has lain idle past EVIDENCE_PARTIAL_ALARM_S the `partial_copy_idle` alarm is raised on
/metrics, in the status JSON and by `evidence station status`, with or without a running station; docking the
recorder again finishes the copy and clears it. Things in staging that only look like partial copies (links,
folders, files in the journal folder, staged copies) are not counted."""
from __future__ import annotations

import errno
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from catalog.types import utcnow
from ingest.pipeline import ingest_folder
from ingest.station.health import StationMetrics
from ingest.station.partial_copies import PartialCopies, partial_copies
from tests.cli import run_cli
from tests.ingest.station.test_station_health import _alarm, _get, _parse

DAY = 86400.0


def _aged(path: Path, seconds: float, *, now: float) -> Path:
    os.utime(path, (now - seconds, now - seconds), follow_symlinks=False)
    return path


def test_only_regular_part_files_directly_in_staging_count_and_the_least_recently_written_is_named(tmp_path):
    now = time.time()
    staging = tmp_path / "staging"
    (staging / "journal").mkdir(parents=True)
    (staging / "a.part").write_bytes(b"x" * 10)
    (staging / "b.part").write_bytes(b"y" * 1000)
    _aged(staging / "a.part", 3 * DAY, now=now)
    _aged(staging / "b.part", 60, now=now)
    # Look-alikes that are no copy of anything: never counted
    (staging / "dir.part").mkdir()
    target = staging / ("c" * 64)
    target.write_bytes(b"z" * 5000)  # a staged copy, not a partial one
    (staging / "link.part").symlink_to(target)
    _aged(staging / "link.part", 30 * DAY, now=now)  # the link itself is the oldest entry: still not counted
    (staging / "journal" / "old.part").write_bytes(b"j")
    _aged(staging / "journal" / "old.part", 30 * DAY, now=now)
    (staging / "notes.part.txt").write_bytes(b"n")

    held = partial_copies(staging, now=now)
    assert (held.count, held.size_bytes, held.oldest) == (2, 1010, "a.part")
    assert 3 * DAY - 5 < held.oldest_idle_s < 3 * DAY + 5
    assert held.idle_over(DAY) and not held.idle_over(4 * DAY)
    alarm = held.alarm(staging, DAY)
    assert alarm is not None and alarm["kind"] == "partial_copy_idle" and alarm["count"] == 2
    assert "a.part" in alarm["message"] and str(staging) in alarm["message"]
    assert "dock that recorder" in alarm["message"]
    assert held.alarm(staging, 4 * DAY) is None


def test_no_staging_or_a_clock_set_back_never_reads_as_idle(tmp_path):
    assert partial_copies(tmp_path / "never-made", now=time.time()) == PartialCopies()
    assert not PartialCopies().idle_over(0)
    now = time.time()
    (tmp_path / "k.part").write_bytes(b"x")
    _aged(tmp_path / "k.part", -3600, now=now)  # written "in the future": the host clock was set back since
    held = partial_copies(tmp_path, now=now)
    assert (held.count, held.oldest_idle_s) == (1, 0.0)


def _pull_mid_copy(device: Path, parked: Path, after_bytes: int):
    seen = {"bytes": 0}

    def progress(event: str, value: int) -> None:
        if event == "advance":
            seen["bytes"] += value
            if seen["bytes"] >= after_bytes and device.exists():
                device.rename(parked)  # the mount goes away
                raise OSError(errno.ENODEV, "No such device")
    return progress


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_recorder_pulled_mid_copy_raises_the_alarm_once_idle_and_docking_it_again_clears_it(
        tmp_path, settings, engine, store):
    device = tmp_path / "cam"
    folder = device / "DCIM" / "100BIG"
    folder.mkdir(parents=True)
    (folder / "MVI_0001.MP4").write_bytes(os.urandom(12 << 20))
    parked = tmp_path / "unplugged"
    report = ingest_folder(device, settings=settings, engine=engine, store=store,
                           progress=_pull_mid_copy(device, parked, 4 << 20))
    assert report.recordings == [] and report.errors[-1]["stage"] == "device"
    (part,) = settings.staging_dir.glob("*.part")
    # The dock's error names the partial copy, so the alarm's file can be traced back to the recorder and file
    assert any(f"kept for resume in staging as {part.name}" in e["reason"] and "MVI_0001.MP4" in e["file"]
               for e in report.errors), report.errors

    metrics = StationMetrics(settings.station, broker_configured=False)
    metrics.refresh(engine, staged_alarm_s=3600, staging=settings.staging_dir, partial_alarm_s=DAY)
    shown = _parse(metrics.render().decode())
    assert _get(shown, "evidence_partial_copies", station=settings.station) == 1
    assert _get(shown, "evidence_partial_copy_bytes", station=settings.station) == part.stat().st_size >= 4 << 20
    assert _get(shown, "evidence_partial_copy_oldest_idle_seconds", station=settings.station) < 60
    assert _alarm(metrics, "partial_copy_idle") == 0  # just cut short: the recorder may come back any minute
    summary = metrics.partial_copies()
    assert summary is not None and summary["count"] == 1

    # A day and a bit later (the station's clock): raised on /metrics and in the alarms the status JSON carries
    later = utcnow() + timedelta(seconds=DAY + 600)
    metrics.refresh(engine, staged_alarm_s=3600, staging=settings.staging_dir, partial_alarm_s=DAY, now=later)
    assert _alarm(metrics, "partial_copy_idle") == 1
    (raised,) = [a for a in metrics.alarms() if a["kind"] == "partial_copy_idle"]
    assert raised["oldest"] == part.name and raised["since"] and raised["size_bytes"] == part.stat().st_size

    # `evidence station status` decides it from staging itself, no station running (the file really aged)
    _aged(part, DAY + 600, now=time.time())
    env = {"EVIDENCE_HOME": str(settings.home), "EVIDENCE_DATABASE_URL": settings.database_url}
    status = json.loads(run_cli(env, "station", "status", "--json").output)
    assert status["partial_copies"]["count"] == 1
    assert [a["kind"] for a in status["alarms"]] == ["partial_copy_idle"]
    assert f"ALARM 1 partial copy ({part.stat().st_size} bytes)" in run_cli(env, "station", "status").output
    quiet = json.loads(run_cli({**env, "EVIDENCE_PARTIAL_ALARM_S": str(2 * DAY)}, "station", "status",
                               "--json").output)
    assert quiet["alarms"] == [] and quiet["partial_copies"]["count"] == 1

    # Docked again: the copy resumes and finishes, the .part is gone, and the alarm and gauges fall back to 0
    parked.rename(device)
    again = ingest_folder(device, settings=settings, engine=engine, store=store)
    assert len(again.recordings) == 1 and not list(settings.staging_dir.glob("*.part"))
    metrics.refresh(engine, staged_alarm_s=3600, staging=settings.staging_dir, partial_alarm_s=DAY, now=later)
    cleared = _parse(metrics.render().decode())
    for name in ("evidence_partial_copies", "evidence_partial_copy_bytes", "evidence_partial_copy_oldest_idle_seconds"):
        assert _get(cleared, name, station=settings.station) == 0, name
    assert _alarm(metrics, "partial_copy_idle") == 0
    assert json.loads(run_cli(env, "station", "status", "--json").output)["alarms"] == []


def test_a_name_that_is_not_utf8_or_looks_like_markup_is_shown_as_it_is_and_never_breaks_the_status(
        settings, engine):
    staging = settings.staging_dir
    staging.mkdir(parents=True, exist_ok=True)
    now = time.time()
    odd = os.path.join(os.fsencode(staging), b"\xff\xfe-cam.part")
    with open(odd, "wb") as fh:
        fh.write(b"x" * 7)
    os.utime(odd, (now - 3 * DAY, now - 3 * DAY))
    (staging / "[bold]x.part").write_bytes(b"y")
    _aged(staging / "[bold]x.part", 2 * DAY, now=now)
    held = partial_copies(staging, now=now)
    assert held.count == 2 and held.oldest == "\\xff\\xfe-cam.part"
    json.dumps(held.alarm(staging, DAY), ensure_ascii=False).encode("utf-8")  # what the status file write does

    metrics = StationMetrics(settings.station, broker_configured=False)
    metrics.partial(staging, idle_alarm_s=DAY)
    (raised,) = metrics.alarms()
    assert raised["oldest"] == "\\xff\\xfe-cam.part"
    env = {"EVIDENCE_HOME": str(settings.home), "EVIDENCE_DATABASE_URL": settings.database_url}
    status = json.loads(run_cli(env, "station", "status", "--json").output)
    assert status["partial_copies"]["count"] == 2
    os.unlink(odd)
    assert "[bold]x.part has not been written" in run_cli(env, "station", "status").output  # not taken as markup


def test_a_document_attachment_cut_short_leaves_no_partial_copy(tmp_path):
    from ingest.errors import CopyFailed
    from ingest.transfer import copy_and_hash

    source = tmp_path / "report.pdf"
    source.write_bytes(os.urandom(12 << 20))
    staging = tmp_path / "staging"
    staging.mkdir()
    seen = {"bytes": 0}

    def fails_half_way(value: int) -> None:  # the copy's progress: bytes written so far, in steps
        seen["bytes"] += value
        if seen["bytes"] >= 4 << 20:
            raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(CopyFailed) as failed:
        copy_and_hash(source, staging, part_name="attach-0123", resume=False, progress=fails_half_way)
    assert failed.value.bytes_copied >= 4 << 20  # what was written is said, and then removed: nothing resumes it
    assert list(staging.glob("*.part")) == []
    # A resumable copy keeps its partial copy, as before
    seen["bytes"] = 0
    with pytest.raises(CopyFailed):
        copy_and_hash(source, staging, part_name="dev-key", progress=fails_half_way)
    assert [p.name for p in staging.glob("*.part")] == ["dev-key.part"]
    held = partial_copies(staging, now=time.time() + 2 * DAY)
    assert "dock that recorder again" in held.message(staging, DAY)
    attachment = PartialCopies(count=1, size_bytes=1, oldest_idle_s=2 * DAY, oldest="attach-9.part")
    assert "attach the document again" in attachment.message(staging, DAY)
