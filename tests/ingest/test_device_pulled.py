"""A device pulled at the worst moment: right after a file reached staging, before it was catalogued.

The copy is complete and fsynced in staging; the describe step (ffprobe, EXIF) is still running beside the next
copy when the next read fails because the device is gone. That first file must be catalogued, archived and in
the report; and if the catalogue is away too, the journal written ahead names it so the station catalogues it
once the catalogue answers, without the device.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select

from catalog import DockSession, Recording
from ingest.journal import journaled_serials
from ingest.journal import load as load_journal
from ingest.pipeline import IngestOptions, catalogue_journal, ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.transfer import copy_and_hash

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def _pull_after_first_staged(monkeypatch: pytest.MonkeyPatch, device: Path, elsewhere: Path) -> list[str]:
    """Unplug *device* (move it away, as an unmount does) the moment the first file's copy is staged."""
    staged: list[str] = []
    real = copy_and_hash

    def copy_then_unplug(source, staging, **kw):
        result = real(source, staging, **kw)
        staged.append(result.sha256)
        if len(staged) == 1:
            shutil.move(str(device), str(elsewhere))
        return result

    monkeypatch.setattr(pipeline, "copy_and_hash", copy_then_unplug)
    return staged


def test_a_file_staged_just_before_the_device_is_pulled_is_catalogued_and_reported(
        samples, settings, engine, store, tmp_path, monkeypatch):
    device = samples.sidecar_recorder
    staged = _pull_after_first_staged(monkeypatch, device, tmp_path / "pocket")
    report = ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    assert len(staged) == 1
    assert [(r["device_path"], r["sha256"], r["ingest"]) for r in report.recordings] == [
        ("CLIPS/CLIP0001.json", staged[0], "new")]
    assert report.errors[-1]["stage"] == "device" and not report.all_preserved
    with Session(engine) as session:
        row = session.exec(select(Recording).where(Recording.sha256 == staged[0])).one()
        assert row.state == "archived"
        assert session.exec(select(DockSession)).one().result == "interrupted"
    with store.open(staged[0]) as fh:
        assert fh.read() == (tmp_path / "pocket" / "CLIPS" / "CLIP0001.json").read_bytes()


def test_a_device_pulled_while_the_catalogue_is_away_is_catalogued_from_the_journal(
        samples, settings, engine, store, tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    device = samples.sidecar_recorder
    staged = _pull_after_first_staged(monkeypatch, device, tmp_path / "pocket")
    real_register = pipeline.DockRun.register

    def catalogue_down(self, item):
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(pipeline.DockRun, "register", catalogue_down)
    with pytest.raises(Exception, match="journaled"):
        ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    assert len(staged) == 1
    serial = "GPS7788"
    assert serial in journaled_serials(settings.staging_dir)
    assert [e.sha256 for e in load_journal(settings.staging_dir, serial).values()] == staged
    # The catalogue answers again; the device never comes back.
    monkeypatch.setattr(pipeline.DockRun, "register", real_register)
    report = catalogue_journal(serial, settings=settings, engine=engine, store=store)
    assert report is not None
    assert [(r["device_path"], r["sha256"]) for r in report.recordings] == [("CLIPS/CLIP0001.json", staged[0])]
    assert journaled_serials(settings.staging_dir) == []
