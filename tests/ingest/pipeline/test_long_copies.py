"""Long copies run on the copy thread while the ingest thread catalogues the files before them.

What must hold: no catalogue transaction (the custody-head lock every writer takes) is open while a long copy
is waited for, whatever the transaction before it held (a failed copy's event, finished uploads' manifests); and a
run that fails in a way nobody foresaw never closes its dock session `complete` (a complete dock forgets the
staging journal of copies not catalogued yet).
"""
from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from catalog import DockSession
from catalog.db import begin_write
from ingest.errors import CopyFailed
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.transfer import copy_and_hash

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def _device(tmp_path: Path, *, small: bool = False) -> Path:
    """A DCF card with three WAV recordings of ~5.3 MB each (longer than LONG_COPY_BYTES), other tones, and a small one
    first if asked."""
    folder = tmp_path / "device" / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    names = (["A000_SMALL.WAV"] if small else []) + [f"A00{n}_LONG.WAV" for n in (1, 2, 3)]
    for n, name in enumerate(names):
        seconds = "1" if "SMALL" in name else "30"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        f"sine=frequency={440 + 110 * n}:duration={seconds}",
                        "-ac", "2", "-ar", "44100", "-metadata", "creation_time=2026-11-20T06:10:05Z",
                        str(folder / name)], check=True)
    assert all((folder / n).stat().st_size > pipeline.LONG_COPY_BYTES for n in names if "LONG" in n)
    return tmp_path / "device"


def _head_is_free(url: str) -> bool:
    """Whether another connection can take the catalogue's write lock now (within a second)."""
    sqlite = url.startswith("sqlite")
    other = create_engine(url, connect_args={"timeout": 1} if sqlite else {})
    try:
        with Session(other) as session:
            if not sqlite:
                session.execute(text("SET lock_timeout = '1s'"))
            begin_write(session)
            session.rollback()
        return True
    except OperationalError:
        return False
    finally:
        other.dispose()


def _watch_long_copies(monkeypatch: pytest.MonkeyPatch, settings, *, fail: str | None = None) -> list[bool]:
    """Replace the copy: a long copy, once the ingest thread has committed what came before it, records whether
    the write lock is free; the copy of a file named *fail* fails as an unreadable file's does."""
    committed = threading.Event()
    real_commit = pipeline.DockRun._commit_staged

    def commit_staged(self, pending):
        real_commit(self, pending)
        committed.set()

    free: list[bool] = []

    def copy(source, staging, **kw):
        if fail is not None and source.name == fail:
            raise CopyFailed(source, staging / "x.part", reason="Input/output error", errno=5)
        if source.stat().st_size > pipeline.LONG_COPY_BYTES:
            assert committed.wait(30), "the ingest thread never committed while the long copy ran"
            committed.clear()
            # The dock's own registration (the dock-begin thread: its `docked` event) holds the lock for its short
            # transaction, whatever the copies do; on a loaded machine it may still run at the first long copy
            # (CI, 2026-12-04). What is checked is the ingest thread's transaction, so that one is waited for.
            for thread in threading.enumerate():
                if thread.name == "dock-begin":
                    thread.join(30)
            free.append(_head_is_free(settings.database_url))
        return copy_and_hash(source, staging, **kw)

    monkeypatch.setattr(pipeline.DockRun, "_commit_staged", commit_staged)
    monkeypatch.setattr(pipeline, "copy_and_hash", copy)
    return free


def test_every_long_copy_is_waited_for_with_the_write_lock_free(settings, engine, store, tmp_path, monkeypatch):
    # Given a card of three long recordings, archived inline as they are catalogued (uploads and manifests beside)
    device = _device(tmp_path)
    free = _watch_long_copies(monkeypatch, settings)
    # When it is ingested
    report = ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    # Then each long copy ran while another writer could take the catalogue's write lock, and all three are in
    assert free == [True, True, True]
    assert sorted(r["original_name"] for r in report.recordings) == ["A001_LONG.WAV", "A002_LONG.WAV",
                                                                     "A003_LONG.WAV"]
    assert report.all_preserved


def test_a_failed_copy_before_a_long_one_does_not_hold_the_lock_across_it(settings, engine, store, tmp_path,
                                                                           monkeypatch):
    # Given a small file whose copy fails (its INGEST_FAILED event opens a transaction) just before a long copy
    device = _device(tmp_path, small=True)
    free = _watch_long_copies(monkeypatch, settings, fail="A000_SMALL.WAV")
    # When the card is ingested
    report = ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    # Then the failure's event was committed before the long copy was waited for: the lock was free throughout
    assert free == [True, True, True]
    assert [e["file"] for e in report.errors] == ["DCIM/100EVCAM/A000_SMALL.WAV"]
    with Session(engine) as session:
        assert session.exec(select(DockSession)).one().result == "partial"


def test_a_run_that_fails_unforeseen_never_closes_its_dock_complete(settings, engine, store, tmp_path,
                                                                    monkeypatch):
    # Given a run that fails in a way nobody foresaw while the second long file is being staged
    device = _device(tmp_path)
    real_stage = pipeline.DockRun._stage
    calls: list[str] = []

    def stage(self, file, *args, **kwargs):
        calls.append(file.relative)
        if len(calls) == 2:
            raise RuntimeError("an unforeseen fault")
        return real_stage(self, file, *args, **kwargs)

    monkeypatch.setattr(pipeline.DockRun, "_stage", stage)
    # When the card is ingested, the fault reaches the caller
    with pytest.raises(RuntimeError, match="unforeseen"):
        ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    # Then the dock session says the device was not read to its end, with the reason, never `complete`
    with Session(engine) as session:
        dock = session.exec(select(DockSession)).one()
        assert dock.result == "partial"
        assert "unforeseen fault" in (dock.result_note or "")
