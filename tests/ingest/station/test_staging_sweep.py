"""Sweeping staging of copies nothing needs (ingest.station.staging_sweep), against a real catalogue and LocalStore.

Rows are made by ingesting the sample devices (archiving deferred, so recordings stay `staged`) and archiving
some of them for real; copies are then planted in staging the way the faults leave them.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from catalog import Recording, RecordingState, load_or_create_key
from ingest import known_files
from ingest.archiving import archive_recording
from ingest.config import Settings
from ingest.journal import JournalEntry
from ingest.journal import forget as forget_journal
from ingest.journal import record as record_journal
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.station import staging_sweep
from ingest.station.staging_sweep import sweep_staging
from storage import BackendUnavailable, LocalStore, object_key
from tests.conftest import PG_ADMIN_URL
from tests.s3server import free_ports

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

HERE = "station-1"  # Settings' default station code
THERE = "station-b"


def _station_b(settings: Settings, tmp_path: Path) -> Settings:
    """A second station on the same catalogue and store, with its own staging area and key."""
    return Settings.from_env({"EVIDENCE_HOME": str(settings.staging_dir.parent),
                              "EVIDENCE_DATABASE_URL": settings.database_url, "EVIDENCE_STATION": THERE,
                              "EVIDENCE_STAGING_DIR": str(tmp_path / "staging-b")})


def _dock(root: Path, settings: Settings, engine, store) -> list[tuple[int, str]]:
    """Ingest *root* with archiving left to the queue; (id, sha256) of its new recordings."""
    report = ingest_folder(root, settings=settings, engine=engine, store=store,
                           options=IngestOptions(defer_archive=True))
    assert report.errors == []
    return [(r["id"], r["sha256"]) for r in report.recordings if r["ingest"] == "new"]


def _archive(settings: Settings, engine, store, recording_id: int) -> str:
    return archive_recording(engine, store, settings.staging_dir, recording_id,
                             key=load_or_create_key(settings.station_key_path), actor="test",
                             policy=settings.retention_policy, station=settings.station)


def _plant(staging: Path, store: LocalStore, sha: str) -> int:
    """A staged copy of an archived recording left behind (the bytes read back from the store)."""
    with store.open(sha) as fh:
        data = fh.read()
    (staging / sha).write_bytes(data)
    return len(data)


def _drop_object(settings: Settings, sha: str) -> None:
    """The store loses the object (as root: the sealed folders' modes do not stop us)."""
    os.unlink(settings.store_path / "objects" / object_key(sha))


def _set_state(engine, sha: str, state: RecordingState) -> None:
    with Session(engine) as session:
        row = session.exec(select(Recording).where(Recording.sha256 == sha)).one()
        row.state = state.value
        session.add(row)
        session.commit()


def _tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under *root*: its kind, size and content hash (links described, never followed)."""
    found = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath, name)
            info = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if kind == "file" else (
                os.readlink(path) if kind == "link" else "")
            found[str(path.relative_to(root))] = (kind, info.st_size, digest)
    return found


def test_each_rule_removes_only_what_is_certainly_not_needed(samples, settings, engine, store, tmp_path, caplog):
    staging = settings.staging_dir
    here = _dock(samples.cn_recorder, settings, engine, store)
    assert len(here) >= 8
    (_, s_staged), r_gone, r_journaled, r_protected, r_lost, r_disposed, r_link, (_, s_in_store) = here[:8]
    # Archived for real: the store consumes their staged copies...
    for rid, sha in (r_gone, r_journaled, r_protected, r_lost, r_disposed, r_link):
        assert _archive(settings, engine, store, rid) == "archived"
        assert not (staging / sha).exists()
    # ...and copies of them are left behind, as a crash or the loser of a two-station race leaves them.
    sizes = {sha: _plant(staging, store, sha) for _, sha in (r_gone, r_journaled, r_protected, r_lost, r_disposed)}
    _drop_object(settings, r_lost[1])  # the catalogue says archived, the store does not hold it
    _set_state(engine, r_disposed[1], RecordingState.DISPOSED)  # retention ended, the archive deleted it
    _drop_object(settings, r_disposed[1])
    record_journal(staging, "OTHER-DEVICE", JournalEntry(part_key="k" * 40, sha256=r_journaled[1],
                                                         size_bytes=sizes[r_journaled[1]], relative="x.mp4"))
    # Staged here, and the store already holds the bytes (the upload finished, its commit did not): kept.
    store.put_file(staging / s_in_store, sha256=s_in_store, size_bytes=(staging / s_in_store).stat().st_size,
                   retain_until=datetime.now(UTC) + timedelta(days=1))
    assert store.exists(s_in_store)
    # A recording staged at another station, and a copy of it here.
    b = _station_b(settings, tmp_path)
    there = _dock(samples.sidecar_recorder, b, engine, store)
    elsewhere = there[0][1]
    shutil.copyfile(b.staging_dir / elsewhere, staging / elsewhere)
    # Bytes nothing has catalogued (yet), named by their hash.
    loose = b"uncatalogued bytes, maybe being registered right now"
    (staging / hashlib.sha256(loose).hexdigest()).write_bytes(loose)
    # Things in staging that are not staged copies at all.
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"must survive")
    (staging / r_link[1]).symlink_to(victim)  # a link named like an archived recording held by the store
    (staging / ("c" * 64)).mkdir()
    (staging / ("c" * 64) / "inside").write_bytes(b"x")
    (staging / f"{'d' * 40}.part").write_bytes(b"resumable")
    (staging / f"{r_gone[1]}.part").write_bytes(b"resumable too")
    (staging / r_gone[1].upper()).write_bytes(b"upper case")
    (staging / r_gone[1][:63]).write_bytes(b"short")
    (staging / (r_gone[1] + "0")).write_bytes(b"long")
    known_files.remember(staging, "A123456", [known_files.KnownFile.of(
        "A123456", device_path="x.mp4", size_bytes=1, mtime_ns=1, sha256=r_gone[1], recording_id=r_gone[0])])
    before = _tree(staging)
    with Session(engine) as session:
        staged_here = len(session.exec(select(Recording).where(
            Recording.state == "staged", Recording.station_code == HERE)).all())

    caplog.set_level(logging.INFO, logger="ingest.station.staging_sweep")
    result = sweep_staging(engine, store, staging, station=HERE, protect={r_protected[1]})

    assert sorted((r.sha256, r.size_bytes) for r in result.removed) == sorted(
        [(r_gone[1], sizes[r_gone[1]]), (r_disposed[1], sizes[r_disposed[1]])])
    whys = {r.sha256: r.why for r in result.removed}
    assert "archived" in whys[r_gone[1]] and "disposed" in whys[r_disposed[1]]
    assert result.bytes_removed == sizes[r_gone[1]] + sizes[r_disposed[1]]
    assert result.kept == {staging_sweep.STAGED_HERE: staged_here, staging_sweep.JOURNALED: 1,
                           staging_sweep.PROTECTED: 1, staging_sweep.NOT_IN_STORE: 1,
                           staging_sweep.STAGED_ELSEWHERE: 1, staging_sweep.UNCATALOGUED: 1,
                           staging_sweep.NOT_REGULAR: 2}
    after = _tree(staging)
    assert after == {k: v for k, v in before.items() if k not in (r_gone[1], r_disposed[1])}
    assert (staging / r_link[1]).is_symlink() and victim.read_bytes() == b"must survive"
    assert (staging / s_staged).exists() and (staging / s_in_store).exists()
    removals = [r for r in caplog.records if r.levelno == logging.INFO and "Removed staged copy" in r.message]
    assert len(removals) == 2 and any(r_gone[1] in r.message for r in removals)
    assert any(r.levelno == logging.WARNING and r_lost[1] in r.message for r in caplog.records)

    # A second sweep finds nothing more to do.
    assert sweep_staging(engine, store, staging, station=HERE, protect={r_protected[1]}).removed == []
    # Once the journal is catalogued and forgotten, and the ingest done with its copy, those go too.
    forget_journal(staging, "OTHER-DEVICE")
    again = sweep_staging(engine, store, staging, station=HERE, protect=set())
    assert {r.sha256 for r in again.removed} == {r_journaled[1], r_protected[1]}
    # Station B archives its recording: the copy here is an orphan now, and goes.
    assert _archive(b, engine, store, there[0][0]) == "archived"
    last = sweep_staging(engine, store, staging, station=HERE, protect=set())
    assert [r.sha256 for r in last.removed] == [elsewhere]
    assert (staging / r_lost[1]).exists()  # still not in the store: kept, whatever the catalogue says
    # The same sweep at station B keeps B's own staged copies and leaves A's staging alone.
    at_b = sweep_staging(engine, store, b.staging_dir, station=THERE, protect=set())
    assert at_b.removed == [] and at_b.kept == {staging_sweep.STAGED_HERE: len(there) - 1}


def test_copies_left_by_a_two_station_race_go_once_the_other_station_has_archived(samples, settings, engine, store,
                                                                                   tmp_path):
    # Given a camera docked at station B, and this station left with a copy of each of its files (the loser of the
    # race to register identical bytes, as the fault drill left 1 GB of them)
    b = _station_b(settings, tmp_path)
    there = _dock(samples.dcim_camera, b, engine, store)
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    for _, sha in there:
        shutil.copyfile(b.staging_dir / sha, settings.staging_dir / sha)
    orphans = sorted(sha for _, sha in there)
    # While B has them staged, they are B's to archive: kept here (and B keeps its own)
    result = sweep_staging(engine, store, settings.staging_dir, station=HERE, protect=set())
    assert result.removed == [] and result.kept == {staging_sweep.STAGED_ELSEWHERE: len(there)}
    assert sweep_staging(engine, store, b.staging_dir, station=THERE, protect=set()).removed == []
    # When B's worker has archived them
    for rid, _ in there:
        assert _archive(b, engine, store, rid) == "archived"
    # Then the sweep here removes every orphan, and B's staging is empty too
    result = sweep_staging(engine, store, settings.staging_dir, station=HERE, protect=set())
    assert sorted(r.sha256 for r in result.removed) == orphans
    assert result.bytes_removed == sum((settings.store_path / "objects" / object_key(sha)).stat().st_size
                                       for sha in orphans)
    assert [p.name for p in settings.staging_dir.iterdir() if len(p.name) == 64] == []
    assert [p.name for p in b.staging_dir.iterdir() if len(p.name) == 64] == []


def _unreachable_engine(catalog_url: str, tmp_path: Path):
    if catalog_url.startswith("sqlite"):
        return create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'catalog.db'}")
    port = free_ports(1)[0]
    return create_engine(PG_ADMIN_URL.rsplit("@", 1)[0] + f"@127.0.0.1:{port}/gone",
                         connect_args={"connect_timeout": 2})


def test_a_catalogue_outage_removes_nothing_and_is_raised(samples, settings, engine, store, catalog_url, tmp_path,
                                                          monkeypatch):
    staging = settings.staging_dir
    here = _dock(samples.sidecar_recorder, settings, engine, store)
    for rid, _ in here:
        _archive(settings, engine, store, rid)
    planted = {sha: _plant(staging, store, sha) for _, sha in here}
    # The catalogue does not answer at all
    gone = _unreachable_engine(catalog_url, tmp_path)
    try:
        with pytest.raises(OperationalError):
            sweep_staging(gone, store, staging, station=HERE, protect=set())
    finally:
        gone.dispose()
    assert all((staging / sha).exists() for sha in planted)
    # The catalogue answers the first question and fails at the second: still nothing removed
    monkeypatch.setattr(staging_sweep, "QUERY_CHUNK", 1)
    calls = []

    def fail_second(conn, cursor, statement, *args):
        if "FROM recording" in statement:
            calls.append(statement)
            if len(calls) == 2:
                raise OperationalError(statement, {}, Exception("server closed the connection unexpectedly"))

    event.listen(engine, "before_cursor_execute", fail_second)
    try:
        with pytest.raises(OperationalError):
            sweep_staging(engine, store, staging, station=HERE, protect=set())
    finally:
        event.remove(engine, "before_cursor_execute", fail_second)
    assert len(calls) == 2
    assert all((staging / sha).exists() for sha in planted)
    # Back again: they go
    result = sweep_staging(engine, store, staging, station=HERE, protect=set())
    assert sorted(r.sha256 for r in result.removed) == sorted(planted)


class _StoreDown(LocalStore):
    def exists(self, sha256: str) -> bool:
        raise BackendUnavailable("local:test", "connection refused")


def test_a_store_that_does_not_answer_keeps_archived_copies(samples, settings, engine, store):
    staging = settings.staging_dir
    here = _dock(samples.sidecar_recorder, settings, engine, store)
    for rid, _ in here:
        _archive(settings, engine, store, rid)
    planted = [sha for _, sha in here]
    for sha in planted:
        _plant(staging, store, sha)
    _set_state(engine, planted[0], RecordingState.DISPOSED)  # needs no answer from the store
    result = sweep_staging(engine, _StoreDown(settings.store_path), staging, station=HERE, protect=set())
    assert [r.sha256 for r in result.removed] == [planted[0]]
    assert result.kept == {staging_sweep.STORE_UNAVAILABLE: len(planted) - 1}
    assert all((staging / sha).exists() for sha in planted[1:])


def test_a_missing_or_empty_staging_area_is_nothing_to_do(settings, engine, store, tmp_path):
    assert sweep_staging(engine, store, tmp_path / "nowhere", station=HERE, protect=set()).kept == {}
    (tmp_path / "empty").mkdir()
    result = sweep_staging(engine, store, tmp_path / "empty", station=HERE, protect=set())
    assert result.removed == [] and result.kept == {}


def test_part_checksums_go_with_their_copy_and_never_outlive_it(samples, settings, engine, store):
    # Given archived recordings whose staged copies were left behind with their part checksums, a checksum file
    # whose copy is gone (an upload consumed the copy and stopped before the checksums), and a staged recording's
    from storage.part_checksums import parts_path

    staging = settings.staging_dir
    here = _dock(samples.sidecar_recorder, settings, engine, store)
    for rid, _ in here[1:]:
        _archive(settings, engine, store, rid)
    waiting = here[0][1]
    left = [sha for _, sha in here[1:]]
    for sha in left:
        _plant(staging, store, sha)
        parts_path(staging / sha).write_text('{"part_bytes": 5242880}')
    orphan = parts_path(staging / ("ab" * 32))
    orphan.write_text("{}")
    parts_path(staging / waiting).write_text("{}")
    not_ours = staging / "notes.parts"
    not_ours.write_text("kept")
    # When staging is swept
    result = sweep_staging(engine, store, staging, station=HERE, protect=set())
    # Then each removed copy took its checksums along, the orphan went, and the staged recording's stayed
    assert sorted(r.sha256 for r in result.removed) == sorted(left)
    assert not any(parts_path(staging / sha).exists() for sha in left) and not orphan.exists()
    assert (staging / waiting).exists() and parts_path(staging / waiting).exists()
    assert not_ours.read_text() == "kept"


def test_a_killed_redaction_s_files_go_once_no_redaction_can_still_be_writing_them(engine, store, tmp_path):
    # What `evidence redact` writes before its copy is catalogued, left by a kill: the rendering, its hashing copy's
    # part file, the filter graph; beside them files of the same shape that are not its, and a fresh one
    staging = tmp_path / "staging"
    staging.mkdir()
    old = time.time() - staging_sweep.REDACTION_LEFTOVER_S - 60
    leftovers = [f"redact-{'a' * 32}.mp4", f"redact-{'b' * 32}.jpg", f"redact-{'c' * 32}.part",
                 ".redaction-x1y_2.filtergraph"]
    others = ["redact-notahexname.mp4", f"attach-{'d' * 32}.part", f"redact-{'e' * 32}.mp4.keep"]
    for name in leftovers + others:
        (staging / name).write_bytes(b"rendered evidence")
        os.utime(staging / name, (old, old))
    (staging / f"redact-{'f' * 32}.mp4").write_bytes(b"a redaction rendering now")
    os.symlink("/etc/hostname", staging / f"redact-{'9' * 32}.jpg")
    sweep_staging(engine, store, staging, station=HERE, protect=set())
    kept = [*others, f"redact-{'f' * 32}.mp4", f"redact-{'9' * 32}.jpg"]
    assert sorted(p.name for p in staging.iterdir()) == sorted(kept)
