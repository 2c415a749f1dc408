"""The run's staging journal: written ahead once per staged copy, durable when journaled, known to the next run."""
from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.describe.identity import DeviceIdentity
from ingest.journal import JournalFile
from ingest.journal import load as load_journal
from ingest.pipeline import IngestOptions, busy_serials, ingest_folder
from ingest.pipeline import run as run_module
from ingest.pipeline.outage import OutageJournal, StagedCopy
from ingest.scan import DeviceFile
from ingest.transfer import CopyResult
from tests.helpers.fsyncs import spy_fsyncs


def _staged(tmp_path, staging) -> StagedCopy:
    device = tmp_path / "dock"
    device.mkdir()
    sha = "ef" * 32
    (staging / sha).write_bytes(b"x")
    file = DeviceFile(path=device / "CLIP1.MP4", relative="CLIP1.MP4", name="CLIP1.MP4", size_bytes=1,
                      mtime_ns=1_700_000_000_000_000_000)
    copy = CopyResult(source=file.path, destination=staging / sha, size_bytes=1, sha256=sha, resumed_from=0)
    return StagedCopy(file, copy, None, None, key="k1", sidecar=b"{}")


def _staging_with_copy(tmp_path) -> tuple[Path, StagedCopy]:
    staging = tmp_path / "staging"
    staging.mkdir()
    return staging, _staged(tmp_path, staging)


def _journal(tmp_path, staging) -> OutageJournal:
    return OutageJournal(staging, "CAM1", root=tmp_path / "dock", profile="generic", identity=DeviceIdentity(),
                         options=IngestOptions(officer="A1", actor="station"))


def test_a_staged_copy_is_written_ahead_once_and_counted_when_journaled(tmp_path):
    staging, item = _staging_with_copy(tmp_path)
    outage = _journal(tmp_path, staging)
    # When the copy is written ahead twice, then journaled
    outage.write_ahead(item)
    outage.write_ahead(item)
    outage.journal(item)
    # Then the journal holds it once, with what is needed to catalogue it without the device
    entries = load_journal(staging, "CAM1")
    assert [(e.part_key, e.sha256) for e in entries.values()] == [("k1", "ef" * 32)] and outage.journaled == 1
    entry = next(iter(entries.values()))
    assert (entry.relative, entry.sidecar_hex, entry.profile, entry.options["officer"]) == (
        "CLIP1.MP4", "7b7d", "generic", "A1")
    # And the next run knows it was journaled, so does not write it again
    again = _journal(tmp_path, staging)
    again.load()
    again.write_ahead(item)
    lines = [line for path in (staging / "journal").iterdir() for line in path.read_text().splitlines()]
    assert len(lines) == 1
    # But another copy under the same device-file key (other bytes) is an entry of its own: both are kept
    (staging / ("ab" * 32)).write_bytes(b"y")
    other = replace(item, copy=replace(item.copy, destination=staging / ("ab" * 32), sha256="ab" * 32))
    again.write_ahead(other)
    again.sync_before_commit()
    assert sorted(e.sha256 for e in load_journal(staging, "CAM1").values()) == ["ab" * 32, "ef" * 32]
    assert [e.sha256 for e in again.for_file("k1", item.file)] == ["ef" * 32]  # what was journaled before this run
    # An entry written under an older key scheme (the mount point in the key) still stands for its file
    assert [e.sha256 for e in again.for_file("a-newer-key", item.file)] == ["ef" * 32]
    assert again.for_file("a-newer-key", replace(item.file, mtime_ns=1)) == []


def test_going_offline_is_noted_once_with_its_reason(tmp_path):
    outage = _journal(tmp_path, tmp_path)
    assert outage.go_offline(ConnectionError("connection refused\nmore")) is True
    assert outage.go_offline(ConnectionError("again")) is False
    assert outage.is_offline and outage.reason.startswith("connection refused")


def test_a_device_is_busy_while_its_run_copies_and_free_after(samples, settings, engine, store):
    seen: list[set[str]] = []

    def progress(event, value):
        if event == "advance":
            seen.append(busy_serials())

    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions(), progress=progress)
    assert seen and all(report.device_serial in busy for busy in seen)
    assert report.device_serial not in busy_serials()


def test_a_file_s_resume_and_journal_key_does_not_depend_on_where_the_device_is_mounted(tmp_path):
    """The same file of the same device mounted at two places (another USB port) has one key; another path,
    size, time or device another one."""
    from ingest.pipeline.device import part_key

    def file(root, relative="DCIM/100/CLIP1.MP4", size=10, mtime=1_700_000_000_000_000_000) -> DeviceFile:
        return DeviceFile(path=root / relative, relative=relative, name=relative.rsplit("/", 1)[1], size_bytes=size,
                          mtime_ns=mtime)

    here, there = tmp_path / "media" / "CAM", tmp_path / "run" / "media" / "CAM1"
    key = part_key("CAM1", file(here), here)
    assert part_key("CAM1", file(there), there) == key
    assert len({key, part_key("CAM2", file(here), here), part_key("CAM1", file(here, "DCIM/100/CLIP2.MP4"), here),
                part_key("CAM1", file(here, size=11), here), part_key("CAM1", file(here, mtime=1), here)}) == 5


def test_a_journal_entry_s_stamp_is_taken_as_far_as_it_is_sound():
    """A journal entry is a file in staging: a corrupt or edited one stamps nothing unsound and stops no dock."""
    from ingest.journal import JournalEntry
    from ingest.pipeline.outage import JournaledStamp, stamp_options

    good = JournalEntry(part_key="k", sha256="ef" * 32, size_bytes=1, relative="a.mp4",
                        identity={"officer_number": "010203", "officer_name": "张三"},
                        options={"officer": "1001", "case_number": "AB-1", "purpose": "占道经营",
                                 "clock_offset_s": -3600})
    assert stamp_options(good) == JournaledStamp(officer="1001", case_number="AB-1", purpose="占道经营",
                                                 clock_offset_s=-3600.0, identity_officer_number="010203",
                                                 identity_officer_name="张三")
    for options, identity in ((None, None), ([1, 2], "x"),
                              ({"officer": 7, "case_number": ["AB"], "clock_offset_s": float("nan")}, {}),
                              ({"clock_offset_s": True}, {"officer_number": 5}),
                              ({"clock_offset_s": 1e300}, {})):
        bad = replace(good, options=options, identity=identity)  # type: ignore[arg-type]
        assert stamp_options(bad) == JournaledStamp(), (options, identity)


def _journal_descriptors(staging) -> dict[int, str]:
    """This process's open descriptors on files of *staging*'s journal folder."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(staging / "journal")):
                found[int(fd)] = target
    return found


def test_a_run_writes_its_journal_through_one_open_file_and_closes_it_at_the_end(samples, settings, engine,
                                                                               store, monkeypatch):
    # Each staged copy's entry is one write to the journal the run holds open (opening, writing and closing the
    # file for each copy cost 1.4 ms of every photo); the file is closed when the run ends, whatever its result.
    held: list[dict[int, str]] = []
    real_append = JournalFile.append

    def appending(self, entry):
        real_append(self, entry)
        held.append(_journal_descriptors(settings.staging_dir))

    monkeypatch.setattr(JournalFile, "append", appending)
    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions())
    assert len(report.recordings) >= 2 and report.errors == []
    # One descriptor held the journal across the entries (the same one each time) ...
    assert len(held) >= 2 and len(held[0]) == 1 and all(h == held[0] for h in held)
    # ... and none is left once the run is over, its journal removed with a complete dock
    assert _journal_descriptors(settings.staging_dir) == {}
    assert not (settings.staging_dir / "journal").exists() or not list((settings.staging_dir / "journal").iterdir())


def test_journaling_a_copy_an_earlier_run_only_wrote_ahead_makes_its_entry_durable(tmp_path, monkeypatch):
    # An earlier run wrote the entry ahead (page cache only) and was killed before its commit; this run finds the
    # catalogue away and journals that copy without appending anything itself: the entry must reach the disk.
    staging, item = _staging_with_copy(tmp_path)
    _journal(tmp_path, staging).write_ahead(item)
    synced = spy_fsyncs(monkeypatch)
    again = _journal(tmp_path, staging)
    again.load()
    again.go_offline(ConnectionError("connection refused"))
    again.journal(item)
    assert again.journaled == 1
    assert [path for path in synced if path.startswith(str(staging / "journal"))], synced
    again.close()


def test_an_entry_after_a_line_cut_short_is_still_read(tmp_path):
    # A power cut during a write (or a full disk) left the journal's last line without its end: the next entry
    # must not be glued onto it, or loading drops both.
    staging, item = _staging_with_copy(tmp_path)
    first = _journal(tmp_path, staging)
    first.write_ahead(item)
    first.close()
    (path,) = (staging / "journal").iterdir()
    path.write_bytes(path.read_bytes()[:-20])
    (staging / ("ab" * 32)).write_bytes(b"y")
    other = replace(item, key="k2", copy=replace(item.copy, destination=staging / ("ab" * 32), sha256="ab" * 32))
    second = _journal(tmp_path, staging)
    second.write_ahead(other)
    second.close()
    assert [e.part_key for e in load_journal(staging, "CAM1").values()] == ["k2"]


def test_a_run_that_fails_to_begin_lets_the_device_go(samples, settings, engine, store, monkeypatch):
    # The staging journal cannot be read when a dock begins (an I/O error): that run fails, and the device must not
    # stay claimed by it, or the station's next dock of the device waits an hour for a run that is over.
    monkeypatch.setattr(run_module, "DEVICE_BUSY_WAIT_S", 2.0)
    real_load = OutageJournal.load

    def unreadable(self: OutageJournal) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(OutageJournal, "load", unreadable)
    with pytest.raises(OSError, match="Input/output error"):
        ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                      options=IngestOptions())
    assert busy_serials() == set()
    monkeypatch.setattr(OutageJournal, "load", real_load)
    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions())
    assert len(report.recordings) >= 2 and report.errors == []
