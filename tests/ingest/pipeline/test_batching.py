"""Many small files catalogued, archived and sealed in batches: attacks on the batching.

A file that cannot be read, a damaged one, the device pulled, a batch the catalogue refuses, the process killed
between making the copies durable and committing: the files before (and beside) it are catalogued and durable,
nothing is catalogued that was not copied, every archived recording has its signed manifest, and the whole
archive (bytes, manifests, rows against their custody events, the chain) verifies.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from catalog import CustodyEvent, DockSession, Recording, Sighting, open_catalog
from catalog.custody import CustodyKind, append_event
from catalog.manifests import read_manifest, trusted_fingerprints
from catalog.recordings import find_by_sha256s
from catalog.verification import verify_archive
from ingest import staging_sync
from ingest.config import Settings
from ingest.errors import CatalogueDeferred, CopyFailed
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.pipeline import register as registering
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.pipeline.outage import OutageJournal
from ingest.samples import make_photo
from ingest.staging_sync import StagingSync
from ingest.transfer import copy_and_hash
from storage.backends.local_tree import FileSystemSync, fsync_path
from tests.helpers.fsyncs import spy_fsyncs

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

REPO = Path(__file__).resolve().parents[3]
PHOTOS = 12


@pytest.fixture(scope="module")
def base_photo(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One real JPEG with EXIF time, offset and GPS (ffmpeg + piexif)."""
    path = make_photo(tmp_path_factory.mktemp("photo") / "base.jpg", taken_local=datetime(2026, 11, 20, 14, 0),
                      offset="+08:00", gps=(31.2304, 121.4737), gps_utc=datetime(2026, 11, 20, 6, 0, tzinfo=UTC),
                      size="320x240")
    return path.read_bytes()


def _photo(base: bytes, i: int) -> bytes:
    """*base* with a comment segment after its EXIF segment: new bytes, the same picture and EXIF."""
    app1_end = 4 + int.from_bytes(base[4:6], "big")
    comment = f"batch photo {i:04d}".encode()
    return base[:app1_end] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[app1_end:]


def _camera(root: Path, base: bytes, count: int = PHOTOS) -> list[Path]:
    folder = root / "DCIM" / "100BATCH"
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = folder / f"IMG_{i:04d}.JPG"
        path.write_bytes(_photo(base, i))
        paths.append(path)
    return paths


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Batches of at most five copies, formed by count (never by a clock); the sizes of the batches registered."""
    sizes: list[int] = []
    real = registering.Registrar.register

    def counting(self, items):
        sizes.append(len(items))
        return real(self, items)

    monkeypatch.setattr(pipeline, "REGISTER_BATCH_FILES", 5)
    monkeypatch.setattr(pipeline, "REGISTER_BATCH_S", 3600.0)
    monkeypatch.setattr(registering.Registrar, "register", counting)
    return sizes


def _ingest(root: Path, settings, engine, store):
    return ingest_folder(root, settings=settings, engine=engine, store=store, options=IngestOptions())


def _verified(engine, store) -> list[Recording]:
    """Every recording, after checking that the whole archive verifies (bytes, manifests, rows, chain)."""
    with Session(engine) as session:
        rows = list(session.exec(select(Recording).order_by(col(Recording.id))))
        problems = verify_archive(session, store, [r.id for r in rows if r.id is not None], chain=True).problems
    assert problems == []
    return rows


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_batch_of_photos_is_catalogued_archived_and_sealed(tmp_path, base_photo, settings, engine, store,
                                                             small_batches):
    paths = _camera(tmp_path / "cam", base_photo)
    report = _ingest(tmp_path / "cam", settings, engine, store)
    assert report.errors == [] and len(report.recordings) == PHOTOS
    assert max(small_batches) > 1 and sum(small_batches) == PHOTOS  # the copies really went in batches
    rows = _verified(engine, store)
    assert sorted(r.sha256 for r in rows) == sorted(_sha(p.read_bytes()) for p in paths)
    assert {r.state for r in rows} == {"archived"} and {r.time_source for r in rows} == {"exif"}
    with Session(engine) as session:
        trusted = trusted_fingerprints(session, store)
        kinds = Counter(e.kind for e in session.exec(select(CustodyEvent)) if e.recording_id is not None)
    # Each recording: copied, stamped, archived, manifested; and its manifest signed in the store.
    assert kinds == Counter({"copied": PHOTOS, "stamped": PHOTOS, "archived": PHOTOS, "manifested": PHOTOS})
    for row in rows:
        assert read_manifest(store, row.sha256, 1, trusted=trusted)["sha256"] == row.sha256
    assert list(settings.staging_dir.iterdir()) == []


def test_nothing_counts_before_its_copy_is_durable(tmp_path, base_photo, settings, engine, store, small_batches,
                                                  monkeypatch):
    """Small copies are not fsynced one by one but synced together (ingest.staging_sync): none is described,
    written ahead to the journal, catalogued or committed before the sync that made it durable returned."""
    monkeypatch.setattr(FileSystemSync, "reports_errors", True)  # as on Linux 5.17 and later, whatever runs this
    _camera(tmp_path / "cam", base_photo, count=20)
    durable: set[Path] = set()
    late: list[tuple[str, str]] = []
    syncs: list[int] = []
    real_sync = StagingSync.make_durable

    def syncing(self, paths):
        failed = real_sync(self, paths)
        durable.update(path for path in paths if path not in failed)
        syncs.append(len(paths))
        return failed

    def check(what: str, path: Path) -> None:
        if path not in durable:
            late.append((what, path.name))

    real_write_ahead, real_register, real_commit = OutageJournal.write_ahead, registering.Registrar.register, \
        registering.Batch.commit

    def writing_ahead(self, item):
        check("written ahead", item.copy.destination)
        real_write_ahead(self, item)

    def registering_batch(self, items):
        for item in items:
            check("catalogued", item.copy.destination)
        real_register(self, items)

    def committing(self):
        for recording_id in self.new_ids:
            check("committed", settings.staging_dir / self.session.get(Recording, recording_id).sha256)
        real_commit(self)

    monkeypatch.setattr(StagingSync, "make_durable", syncing)
    monkeypatch.setattr(OutageJournal, "write_ahead", writing_ahead)
    monkeypatch.setattr(registering.Registrar, "register", registering_batch)
    monkeypatch.setattr(registering.Batch, "commit", committing)
    fsynced = spy_fsyncs(monkeypatch)
    report = _ingest(tmp_path / "cam", settings, engine, store)
    assert report.errors == [] and len(report.recordings) == 20 and late == []
    assert sum(syncs) == 20 and len(syncs) < 20  # synced together, not one by one
    staged = [path for path in fsynced if Path(path).parent == settings.staging_dir]
    assert staged == []  # neither a copy nor the staging folder was fsynced on its own
    _verified(engine, store)


def test_another_dock_can_write_to_the_catalogue_while_this_one_waits_for_its_staging_sync(
        tmp_path, base_photo, settings, engine, store, small_batches, monkeypatch):
    """The staging sync waits for everything the staging disk holds, another process's video too: while it does,
    this dock holds no catalogue lock, so another dock appending a custody event (SQLite's writer lock, PostgreSQL's
    custody head) is not kept waiting behind it. Tried at every grouped sync; at least one of them came after this
    dock had catalogued rows it had not committed yet (the case the commit before the sync is for)."""
    monkeypatch.setattr(FileSystemSync, "reports_errors", True)
    monkeypatch.setattr(pipeline, "STAGE_BATCH_FILES", 4)  # several groups, with the earlier ones' rows written
    monkeypatch.setattr(pipeline, "COPIES_AHEAD", 4)
    _camera(tmp_path / "cam", base_photo, count=20)

    def slow_card(source, staging, **kw):  # a slow memory card: each photo's description is ready before the next
        time.sleep(0.03)
        return copy_and_hash(source, staging, **kw)

    other_dock = open_catalog(settings.database_url)
    refused: list[str] = []
    tried: list[int] = []
    had_rows: list[bool] = []
    real_sync, real_commit_first = StagingSync.make_durable, pipeline.DockRun._commit_before_syncing

    def another_dock_writes() -> None:
        for thread in threading.enumerate():  # this dock's own registration is a short transaction of its own
            if thread.name == "dock-begin":
                thread.join(30)
        with Session(other_dock) as session:
            if other_dock.dialect.name == "sqlite":
                session.connection().exec_driver_sql("PRAGMA busy_timeout=2000")
            else:
                session.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            try:
                append_event(session, CustodyKind.DOCKED, actor="station-2", details={"device_serial": "OTHER"})
                session.commit()
            except OperationalError as exc:
                refused.append(str(exc.orig))

    def syncing(self, paths):
        another_dock_writes()
        tried.append(len(paths))
        return real_sync(self, paths)

    def committing_first(self, items, pending):
        had_rows.append(self.batch.has_uncommitted)
        real_commit_first(self, items, pending)

    monkeypatch.setattr(pipeline, "copy_and_hash", slow_card)
    monkeypatch.setattr(StagingSync, "make_durable", syncing)
    monkeypatch.setattr(pipeline.DockRun, "_commit_before_syncing", committing_first)
    try:
        report = _ingest(tmp_path / "cam", settings, engine, store)
    finally:
        other_dock.dispose()
    assert report.errors == [] and len(report.recordings) == 20
    assert len(tried) >= 5 and any(had_rows) and refused == []
    _verified(engine, store)


def test_a_commit_before_a_staging_sync_that_fails_journals_and_loses_nothing(
        tmp_path, base_photo, settings, engine, store, small_batches, monkeypatch):
    """The staging journal cannot be synced (EIO) at the commit made before a group's staging sync: the dock
    treats the catalogue as away (CatalogueDeferred, as when a batch cannot be catalogued), what is staged is
    journaled, and the next dock catalogues everything, the archive verifying.

    The state is made, not hoped for: before a group that waits for the staging sync, what is described so far is
    registered (uncommitted, as a dock whose ffprobe keeps pace with its copies leaves it). Left to the race, a
    loaded machine's slow ffprobe left nothing uncommitted at any group, and the failure never came (CI, 2026-12-05)."""
    monkeypatch.setattr(FileSystemSync, "reports_errors", True)
    monkeypatch.setattr(pipeline, "STAGE_BATCH_FILES", 4)
    monkeypatch.setattr(pipeline, "COPIES_AHEAD", 4)
    monkeypatch.setattr(registering, "COMMIT_EVERY_S", 3600.0)  # commits by count alone, never by a clock
    paths = _camera(tmp_path / "cam", base_photo, count=20)
    real_commit_first, real_sync_journal = pipeline.DockRun._commit_before_syncing, OutageJournal.sync_before_commit
    failing: list[bool] = []
    failed: list[OSError] = []

    def committing_first(self, items, pending):
        if not failed and pending and not all(item.copy.durable for item in items):
            self.register_ready(pending, wait=True)
        failing.append(self.batch.has_uncommitted)
        try:
            real_commit_first(self, items, pending)
        finally:
            failing[-1] = False

    def sync_journal(self):
        if failing and failing[-1] and self._unsynced:
            failing[-1] = False
            failed.append(OSError(errno.EIO, "Input/output error"))
            raise failed[-1]
        real_sync_journal(self)

    monkeypatch.setattr(pipeline.DockRun, "_commit_before_syncing", committing_first)
    monkeypatch.setattr(OutageJournal, "sync_before_commit", sync_journal)
    with pytest.raises(CatalogueDeferred, match="Input/output error"):
        _ingest(tmp_path / "cam", settings, engine, store)
    monkeypatch.setattr(OutageJournal, "sync_before_commit", real_sync_journal)
    monkeypatch.setattr(pipeline.DockRun, "_commit_before_syncing", real_commit_first)
    again = _ingest(tmp_path / "cam", settings, engine, store)
    assert again.errors == []
    rows = _verified(engine, store)
    assert sorted(r.sha256 for r in rows) == sorted(_sha(p.read_bytes()) for p in paths)


def test_a_copy_the_staging_sync_could_not_make_durable_is_not_kept_and_is_read_again(
        tmp_path, base_photo, settings, engine, store, small_batches, monkeypatch):
    """The staging file system reports a write-back error (EIO) for one copy of a batch: each copy is then fsynced on
    its own, which names it; that copy is reported and not kept (nothing of it catalogued or journaled), the rest of
    the batch is, and the next dock reads the file again."""
    paths = _camera(tmp_path / "cam", base_photo)
    bad = settings.staging_dir / _sha(paths[3].read_bytes())
    real_fsync = os.fsync

    class FailingOnce(FileSystemSync):
        failed = False

        def sync(self) -> None:
            if not FailingOnce.failed and bad.exists():  # the write-back of the bad copy is what fails
                FailingOnce.failed = True
                raise OSError(errno.EIO, "syncfs failed: Input/output error", str(self.path))
            super().sync()

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(bad):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(staging_sync, "FileSystemSync", FailingOnce)
    monkeypatch.setattr(FailingOnce, "reports_errors", True)  # as on Linux 5.17 and later, whatever runs this
    monkeypatch.setattr(os, "fsync", fsync)
    report = _ingest(tmp_path / "cam", settings, engine, store)
    assert [(e["file"].endswith(paths[3].name), e["stage"]) for e in report.errors] == [(True, "copy")]
    assert "could not be made durable" in report.errors[0]["reason"]
    assert len(report.recordings) == PHOTOS - 1 and not bad.exists()
    assert not any(bad.name in line for path in (settings.staging_dir / "journal").iterdir()
                   for line in path.read_text().splitlines())
    monkeypatch.setattr(os, "fsync", real_fsync)
    again = _ingest(tmp_path / "cam", settings, engine, store)
    assert again.errors == []
    rows = _verified(engine, store)
    assert sorted(r.sha256 for r in rows) == sorted(_sha(p.read_bytes()) for p in paths)


def test_a_copy_that_could_not_be_made_durable_leaves_another_docks_file_of_the_same_name_alone(
        tmp_path, base_photo, settings, engine, store, small_batches, monkeypatch):
    """A staged copy is named by its SHA-256: another dock copying the same bytes at that moment takes the name over
    (its own copy, renamed onto it). When this dock's copy then cannot be made durable, it is not kept, but the file
    now under that name is the other dock's and stays; the next dock reads the file again and all verifies."""
    paths = _camera(tmp_path / "cam", base_photo)
    bad = settings.staging_dir / _sha(paths[3].read_bytes())
    real_fsync = os.fsync
    theirs: list[int] = []

    class FailingOnce(FileSystemSync):
        failed = False

        def sync(self) -> None:
            if not FailingOnce.failed and bad.exists():
                FailingOnce.failed = True
                other = bad.with_name(bad.name + ".other-dock")
                other.write_bytes(bad.read_bytes())  # the other dock's copy of the same bytes, then its rename
                fsync_path(other)
                os.replace(other, bad)
                theirs.append(bad.stat().st_ino)
                raise OSError(errno.EIO, "syncfs failed: Input/output error", str(self.path))
            super().sync()

    def fsync(fd: int) -> None:  # this dock's own fsync of the name fails (the write-back error is reported again)
        if FailingOnce.failed and os.readlink(f"/proc/self/fd/{fd}") == str(bad):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(staging_sync, "FileSystemSync", FailingOnce)
    monkeypatch.setattr(FailingOnce, "reports_errors", True)
    monkeypatch.setattr(os, "fsync", fsync)
    report = _ingest(tmp_path / "cam", settings, engine, store)
    assert [(e["file"].endswith(paths[3].name), e["stage"]) for e in report.errors] == [(True, "copy")]
    assert len(report.recordings) == PHOTOS - 1
    assert bad.exists() and bad.stat().st_ino == theirs[0]  # the other dock's file, untouched
    monkeypatch.setattr(os, "fsync", real_fsync)
    again = _ingest(tmp_path / "cam", settings, engine, store)
    assert again.errors == []
    rows = _verified(engine, store)
    assert sorted(r.sha256 for r in rows) == sorted(_sha(p.read_bytes()) for p in paths)


def test_an_unreadable_file_in_the_middle_of_a_batch_fails_alone(tmp_path, base_photo, settings, engine, store,
                                                                 small_batches, monkeypatch):
    paths = _camera(tmp_path / "cam", base_photo)
    bad = paths[6]

    def failing(source, staging, **kw):
        if source == bad:  # what a bad sector gives: EIO on read
            raise CopyFailed(source, staging / f"{kw['part_name']}.part", reason="Input/output error",
                             errno=errno.EIO)
        return copy_and_hash(source, staging, **kw)

    monkeypatch.setattr(pipeline, "copy_and_hash", failing)
    report = _ingest(tmp_path / "cam", settings, engine, store)
    assert [(e["file"], e["stage"], e["preserved"]) for e in report.errors] == [
        ("DCIM/100BATCH/IMG_0006.JPG", "copy", False)]
    assert sorted(r["device_path"] for r in report.recordings) == sorted(
        f"DCIM/100BATCH/{p.name}" for p in paths if p != bad)
    rows = _verified(engine, store)
    assert len(rows) == PHOTOS - 1 and {r.state for r in rows} == {"archived"}
    with Session(engine) as session:
        failed = [e.details for e in session.exec(select(CustodyEvent).where(CustodyEvent.kind == "ingest_failed"))]
        assert [(d["file"], d["stage"]) for d in failed] == [("DCIM/100BATCH/IMG_0006.JPG", "copy")]
        assert session.exec(select(DockSession)).one().files_failed == 1


def test_a_damaged_photo_in_the_middle_of_a_batch_is_kept_and_flagged(tmp_path, base_photo, settings, engine, store,
                                                                      small_batches):
    paths = _camera(tmp_path / "cam", base_photo)
    torn = paths[5].read_bytes()[: len(base_photo) // 3]  # a write cut short: no end of image
    paths[5].write_bytes(torn)
    report = _ingest(tmp_path / "cam", settings, engine, store)
    assert report.errors == [] and len(report.recordings) == PHOTOS
    rows = {r.original_name: r for r in _verified(engine, store)}
    assert rows["IMG_0005.JPG"].integrity_status != "ok" and rows["IMG_0005.JPG"].sha256 == _sha(torn)
    assert {r.integrity_status for name, r in rows.items() if name != "IMG_0005.JPG"} == {"ok"}
    with store.open(_sha(torn)) as fh:
        assert fh.read() == torn  # kept byte for byte


def test_a_device_pulled_mid_batch_keeps_what_was_copied_and_the_next_dock_takes_the_rest(
        tmp_path, base_photo, settings, engine, store, small_batches, monkeypatch):
    device = tmp_path / "cam"
    paths = _camera(device, base_photo)
    copied: list[str] = []

    def copy_then_unplug(source, staging, **kw):
        result = copy_and_hash(source, staging, **kw)
        copied.append(result.sha256)
        if len(copied) == 7:
            shutil.move(str(device), str(tmp_path / "pocket"))  # pulled right after the 7th copy was staged
        return result

    monkeypatch.setattr(pipeline, "copy_and_hash", copy_then_unplug)
    report = _ingest(device, settings, engine, store)
    assert len(copied) == 7 and report.errors[-1]["stage"] == "device"
    rows = _verified(engine, store)
    # What was copied is catalogued and archived; nothing that was not copied is catalogued.
    assert sorted(r.sha256 for r in rows) == sorted(copied) and {r.state for r in rows} == {"archived"}
    for sha256 in copied:
        assert store.exists(sha256)
    # The device comes back: the next dock takes the rest, and nothing is catalogued twice.
    shutil.move(str(tmp_path / "pocket"), str(device))
    monkeypatch.setattr(pipeline, "copy_and_hash", copy_and_hash)
    again = _ingest(device, settings, engine, store)
    assert again.errors == []
    rows = _verified(engine, store)
    assert sorted(r.sha256 for r in rows) == sorted(_sha(p.read_bytes()) for p in paths)


def test_a_station_stopping_mid_run_catalogues_what_it_copied_and_leaves_the_rest(
        tmp_path, base_photo, settings, engine, store, small_batches, monkeypatch):
    """Copies queue ahead of cataloguing: a stop between files catalogues every copy that reached staging, starts
    no new one, and the next dock takes the rest."""
    device = tmp_path / "cam"
    paths = _camera(device, base_photo)
    copied: list[str] = []

    def copying(source, staging, **kw):
        result = copy_and_hash(source, staging, **kw)
        copied.append(result.sha256)
        return result

    monkeypatch.setattr(pipeline, "copy_and_hash", copying)
    asked = iter(range(10_000))
    stop_after_five_files = IngestOptions(should_stop=lambda: next(asked) >= 5)
    report = ingest_folder(device, settings=settings, engine=engine, store=store, options=stop_after_five_files)
    assert report.errors[-1]["stage"] == "station"
    rows = _verified(engine, store)
    assert 0 < len(rows) <= 5 and sorted(r.sha256 for r in rows) == sorted(copied)
    assert [p.name for p in settings.staging_dir.iterdir() if p.name != "journal"] == []
    again = _ingest(device, settings, engine, store)
    assert again.errors == []
    assert sorted(r.sha256 for r in _verified(engine, store)) == sorted(_sha(p.read_bytes()) for p in paths)


def test_a_batch_the_catalogue_refuses_is_catalogued_one_by_one(tmp_path, base_photo, settings, engine, store,
                                                                small_batches, monkeypatch, caplog):
    """Another dock catalogues a photo's bytes between the batch's look-up and its insert: the batch breaks on the
    unique hash, and is catalogued again copy by copy (that photo a sighting of the other dock's recording)."""
    other = tmp_path / "other"
    (other / "DCIM" / "100OTHER").mkdir(parents=True)
    shared = _photo(base_photo, 3)
    (other / "DCIM" / "100OTHER" / "IMG_9003.JPG").write_bytes(shared)
    first = _ingest(other, settings, engine, store)
    assert [r["ingest"] for r in first.recordings] == ["new"]
    real_lookup = find_by_sha256s

    def lookup_before_the_other_dock_committed(session, hashes, **kw):
        return {sha: row for sha, row in real_lookup(session, hashes, **kw).items() if sha != _sha(shared)}

    monkeypatch.setattr(registering, "find_by_sha256s", lookup_before_the_other_dock_committed)  # the name it calls
    paths = _camera(tmp_path / "cam", base_photo, count=6)
    with caplog.at_level("WARNING", logger=registering.__name__):
        report = _ingest(tmp_path / "cam", settings, engine, store)
    assert report.errors == []
    assert any("together failed (IntegrityError" in m for m in caplog.messages)  # the batch did break
    outcomes = {r["device_path"].rsplit("/", 1)[1]: r["ingest"] for r in report.recordings}
    assert outcomes == {p.name: ("known" if p.name == "IMG_0003.JPG" else "new") for p in paths}
    rows = _verified(engine, store)
    assert len(rows) == 6
    with Session(engine) as session:
        one = session.exec(select(Recording).where(Recording.sha256 == _sha(shared))).one()
        places = {s.device_path for s in session.exec(select(Sighting).where(Sighting.recording_id == one.id))}
    assert places == {"DCIM/100OTHER/IMG_9003.JPG", "DCIM/100BATCH/IMG_0003.JPG"}


_CRASH = """
import os, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from catalog import open_catalog
from ingest.config import Settings
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.pipeline import register as registering
from ingest.pipeline import run as pipeline
from storage import LocalStore

pipeline.REGISTER_BATCH_FILES, pipeline.REGISTER_BATCH_S = 5, 3600.0
registering.COMMIT_EVERY_S = 3600.0  # the first commit is the one before the first batch's manifests

def sync_then_die(self):
    self._journal.sync_before_commit()  # the staged copies and their journal are durable...
    os._exit(9)                         # ...and the process dies before the catalogue commits

registering.Batch.commit = sync_then_die
settings = Settings.from_env(dict(os.environ))
ingest_folder(Path(sys.argv[1]), settings=settings, engine=open_catalog(settings.database_url),
              store=LocalStore(settings.store_path), options=IngestOptions())
"""


def test_a_crash_between_sync_and_commit_re_ingests_cleanly(tmp_path, base_photo, settings, engine, store):
    device = tmp_path / "cam"
    paths = _camera(device, base_photo)
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(_CRASH.format(repo=str(REPO))), encoding="utf-8")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")},
           "EVIDENCE_HOME": str(settings.home), "EVIDENCE_DATABASE_URL": settings.database_url}
    died = subprocess.run([sys.executable, str(script), str(device)], env=env, capture_output=True, timeout=300)
    assert died.returncode == 9, died.stderr.decode(errors="replace")[-2000:]
    with Session(engine) as session:
        assert session.exec(select(Recording)).all() == []  # nothing of the dead run was committed
    # A batch was in the store already (its staged copies consumed), with no manifest written for it.
    assert any(store.exists(_sha(p.read_bytes())) for p in paths)
    assert not (settings.store_path / "manifests").exists() or not any(
        f for f in (settings.store_path / "manifests").rglob("*") if f.is_file())
    report = _ingest(device, Settings.from_env({"EVIDENCE_HOME": str(settings.home),
                                                "EVIDENCE_DATABASE_URL": settings.database_url}), engine, store)
    assert report.errors == [] and len(report.recordings) == PHOTOS
    rows = _verified(engine, store)
    assert sorted(r.sha256 for r in rows) == sorted(_sha(p.read_bytes()) for p in paths)
    assert {r.state for r in rows} == {"archived"}
    assert list(settings.staging_dir.iterdir()) == []
