"""Two runs of one device at once (found by a review): a second `evidence ingest` of a device another is still
reading, or the station again after a USB drop re-mounted it at the same path. Both appended to the same partial
copy; the garbled file was stored under a SHA-256 it does not have, and the device's file counted as ingested
for good. Now a run holds the device's lock before it reads anything, and a second run waits for the first."""
from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import pytest
from sqlmodel import Session, select

from catalog import DockSession, Recording
from device_profiles import load_profiles
from ingest import journal as staging_journal
from ingest.describe.identity import read_identity
from ingest.errors import DeviceBusy
from ingest.pipeline import IngestOptions, IngestReport, ingest_folder
from storage import LocalStore
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def _serial(device: Path) -> str:
    rule = next(p.identity for p in load_profiles().values() if p.identity is not None
                and (device / p.identity.file).exists())
    serial = read_identity(device, rule).serial
    assert serial
    return serial


def _device_files(device: Path) -> dict[str, str]:
    """SHA-256 of every regular file of the device but its identity file (its symbolic link is not followed)."""
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in device.rglob("*")
            if p.is_file() and not p.is_symlink() and p.suffix.lower() != ".txt"}


def _in_thread(target, **kwargs) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = target(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="second-run")
    thread.start()
    return thread, outcome


def test_a_second_run_waits_for_the_first_and_stores_the_devices_true_bytes(samples, settings, engine, store,
                                                                          caplog: pytest.LogCaptureFixture):
    device = samples.cn_recorder
    serial = _serial(device)
    # Given a run that is reading the device (its lock held, as a live `evidence ingest` holds it)
    first = staging_journal.hold(settings.locks_dir, serial)
    assert first is not None
    caplog.set_level(logging.WARNING, logger="ingest.pipeline.run")
    # When a second run of it starts
    thread, outcome = _in_thread(ingest_folder, root=device, settings=settings, engine=engine, store=store)
    try:
        wait_for(lambda: "is being ingested by another run; this run waits" in caplog.text, 60,
                 "the second run to say it waits")
        # Then it has read nothing and opened no dock session while the first holds the device
        assert thread.is_alive()
        assert not settings.staging_dir.exists() or not [p for p in settings.staging_dir.rglob("*") if p.is_file()]
        with Session(engine) as session:
            assert session.exec(select(DockSession)).all() == []
    finally:
        staging_journal.let_go(first)  # the first run ends
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in outcome, outcome
    report = outcome["report"]
    assert isinstance(report, IngestReport)
    # and once the first has ended, every file is stored under the SHA-256 of the device's own bytes
    with Session(engine) as session:
        stored = {r.sha256 for r in session.exec(select(Recording))}
    assert set(_device_files(device)) <= stored
    assert report.new_count == len(stored)
    for sha256 in stored:
        with store.open(sha256) as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == sha256


def test_a_run_that_is_told_to_stop_while_it_waits_reads_nothing(samples, settings, engine, store: LocalStore):
    device = samples.cn_recorder
    first = staging_journal.hold(settings.locks_dir, _serial(device))
    stop = threading.Event()
    try:
        thread, outcome = _in_thread(ingest_folder, root=device, settings=settings, engine=engine, store=store,
                                     options=IngestOptions(should_stop=stop.is_set))
        stop.set()  # the station is shutting down
        thread.join(timeout=60)
    finally:
        staging_journal.let_go(first)
    assert isinstance(outcome.get("error"), DeviceBusy), outcome
    assert f"device {_serial(device)}" in str(outcome["error"]) and "nothing of it was read" in str(outcome["error"])
    with Session(engine) as session:
        assert session.exec(select(DockSession)).all() == []
        assert session.exec(select(Recording)).all() == []


def test_a_killed_runs_open_dock_session_is_closed_by_the_next_dock_of_the_device(samples, settings, engine,
                                                                                 store):
    # Given a dock session a killed one-shot run left open (no journal: it had catalogued nothing yet)
    report = ingest_folder(samples.cn_recorder, settings=settings, engine=engine, store=store)
    with Session(engine) as session:
        dock = session.get(DockSession, report.dock_session_id)
        assert dock is not None
        dock.finished_at, dock.result, dock.result_note = None, None, None
        session.add(dock)
        session.commit()
    # When the device is docked again
    again = ingest_folder(samples.cn_recorder, settings=settings, engine=engine, store=store)
    # Then the abandoned session ends, saying why and which session docked the device again
    with Session(engine) as session:
        old = session.get(DockSession, report.dock_session_id)
        assert old is not None and old.finished_at is not None and old.result == "interrupted"
        assert f"docked again in dock session {again.dock_session_id}" in (old.result_note or "")
