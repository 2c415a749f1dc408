"""Faults a dock station must survive, each with real files, processes and filesystems."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlmodel import Session, select

from catalog import CustodyEvent, DockSession, Recording, Sighting, open_catalog
from ingest.config import Settings
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.samples import make_photo
from ingest.scan import scan_device
from ingest.station.service import read_status
from ingest.transfer import copy_and_hash
from storage import LocalStore
from tests.conftest import running_station, station_env, wait_for

pytestmark = pytest.mark.usefixtures("ffmpeg_available")



def _big_device(root: Path, mib: int, name: str = "MVI_0001.MP4") -> Path:
    folder = root / "DCIM" / "100BIG"
    folder.mkdir(parents=True)
    with (folder / name).open("wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))
    return folder / name


def test_device_unplugged_mid_file_is_resumed_at_the_next_dock(tmp_path, settings, engine, store):
    # Given a recorder that disappears while a 24 MiB clip is being copied
    device = tmp_path / "cam"
    clip = _big_device(device, 24)
    original = clip.read_bytes()
    parked = tmp_path / "unplugged"
    seen = {"bytes": 0}

    def unplug_after_8_mib(event: str, value: int) -> None:
        if event == "advance":
            seen["bytes"] += value
            if seen["bytes"] >= 8 << 20 and device.exists():
                device.rename(parked)  # the mount goes away
                raise OSError(errno.ENODEV, "No such device")

    report = ingest_folder(device, settings=settings, engine=engine, store=store, progress=unplug_after_8_mib)
    # Then nothing is recorded as complete, and the partial copy waits in staging
    assert report.recordings == [] and report.errors[-1]["stage"] == "device"
    with Session(engine) as session:
        assert session.exec(select(Recording)).all() == []
        assert session.exec(select(DockSession)).one().result == "interrupted"
    parts = list(settings.staging_dir.glob("*.part"))
    assert len(parts) == 1 and 8 << 20 <= parts[0].stat().st_size < 24 << 20
    # When it is docked again, the copy resumes and the recording is whole
    parked.rename(device)
    again = ingest_folder(device, settings=settings, engine=engine, store=store)
    (row,) = again.recordings
    with store.open(row["sha256"]) as fh:
        assert fh.read() == original
    assert list(settings.staging_dir.glob("*.part")) == []
    with Session(engine) as session:
        copied = [e for e in session.exec(select(CustodyEvent).where(
            CustodyEvent.kind == "copied"))]
    assert copied[0].details["resumed_from"] >= 8 << 20


def test_two_devices_with_the_same_serial_keep_their_recordings_apart(tmp_path, settings, engine, store):
    ident = "产品序号=A123456\r\n警员编号=010203\r\n".encode("gbk")
    for name, seed in (("first", 1), ("second", 2)):
        folder = tmp_path / name / "RECORD"
        folder.mkdir(parents=True)
        (tmp_path / name / "ZFYINFO.TXT").write_bytes(ident)
        (folder / "ZFY_A123456_010203_20261120_083000.jpg").write_bytes(
            make_photo(tmp_path / f"p{seed}.jpg", size=f"{320 + seed * 16}x240").read_bytes())
    first = ingest_folder(tmp_path / "first", settings=settings, engine=engine, store=store)
    second = ingest_folder(tmp_path / "second", settings=settings, engine=engine, store=store)
    photos = [r for r in first.recordings + second.recordings if r["original_name"].endswith(".jpg")]
    assert [r["ingest"] for r in photos] == ["new", "new"]
    assert photos[0]["sha256"] != photos[1]["sha256"]
    with Session(engine) as session:
        sightings = session.exec(select(Sighting).where(Sighting.device_serial == "A123456",
                                                        Sighting.device_path.endswith(".jpg"))).all()
    assert len(sightings) == 2  # same serial, same path, different bytes: both kept


def test_a_file_still_growing_is_taken_as_it_was_and_again_when_complete(tmp_path, settings, engine, store,
                                                                          monkeypatch):
    device = tmp_path / "cam"
    clip = _big_device(device, 2)
    real_scan = scan_device

    def scan_then_grow(root, profile, **kwargs):
        result = real_scan(root, profile, **kwargs)
        with clip.open("ab") as fh:  # the recorder is still finishing the file
            fh.write(os.urandom(1 << 20))
        return result

    monkeypatch.setattr(pipeline, "scan_device", scan_then_grow)
    first = ingest_folder(device, settings=settings, engine=engine, store=store)
    monkeypatch.setattr(pipeline, "scan_device", real_scan)
    second = ingest_folder(device, settings=settings, engine=engine, store=store)
    # the first pass copied what was there when it read; the complete file is a new recording, nothing lost
    assert first.recordings[0]["size_bytes"] in (2 << 20, 3 << 20)
    assert second.recordings and second.recordings[0]["size_bytes"] == 3 << 20
    with store.open(second.recordings[0]["sha256"]) as fh:
        assert fh.read() == clip.read_bytes()


def test_a_recorder_clock_hours_off_is_measured_and_corrected(tmp_path, settings_with_profile):
    # Given a recorder model whose dock shows its clock in TIME.TXT, and a unit 5 h 0 min 30 s slow
    settings = settings_with_profile(
        "clocked.yaml",
        "name: clocked-recorder\nrecognise: {any_files: [TIME.TXT]}\nrecordings: ['REC/*.jpg']\n"
        "time_sources: [filename, file_mtime]\nclock: {zone: Asia/Shanghai, file: TIME.TXT}\n"
        "clear_after_archive: false\n"
        "filename: {pattern: '(?P<date>\\d{8})_(?P<time>\\d{6})\\.(?P<ext>jpg)'}\n")
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    device = tmp_path / "rec"
    (device / "REC").mkdir(parents=True)
    written = datetime.now(UTC)
    shown = written.astimezone(ZoneInfo("Asia/Shanghai")) - timedelta(hours=5, seconds=30)
    (device / "TIME.TXT").write_text(shown.strftime("%Y-%m-%d %H:%M:%S"), encoding="utf-8")
    make_photo(device / "REC" / "20261120_083000.jpg")
    engine = open_catalog(settings.database_url)
    try:
        report = ingest_folder(device, settings=settings, engine=engine, store=LocalStore(settings.store_path))
        with Session(engine) as session:
            dock = session.exec(select(DockSession)).one()
    finally:
        engine.dispose()
    # The clock file was read at some moment of the ingest: the recorder's clock ran on meanwhile, so the
    # measured offset is 18030 s plus at most the time between writing the file and the ingest's end, plus
    # under 1 s because the file shows whole seconds (the fraction is cut off) and 0.5 s because the measured
    # offset is rounded to whole seconds.
    slack = (datetime.now(UTC) - written).total_seconds() + 1.5

    def measured_right(offset: float | None) -> bool:
        return offset is not None and 18030 - 1 <= offset <= 18030 + slack

    # Then the offset is on the dock session and applied to the device-clock time
    assert measured_right(dock.clock_offset_s), (dock.clock_offset_s, slack)
    row = report.recordings[0]
    assert measured_right(row["clock_offset_s"]) and row["clock_offset_s"] == dock.clock_offset_s
    assert row["captured_start"] is not None
    corrected = datetime.fromisoformat(row["captured_start"].replace("Z", "+00:00"))
    device_reading = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)  # 08:30 Beijing as the recorder wrote it
    assert (corrected - device_reading).total_seconds() == row["clock_offset_s"]


@pytest.mark.slow
def test_twenty_devices_docked_within_one_second(tmp_path, station_settings):
    root = Path(station_settings.mount_roots[0])
    template = tmp_path / "template"
    make_photo(template / "photo.jpg", size="160x120")
    with running_station(station_settings):
        for i in range(20):
            folder = root / f"CAM{i:02d}" / "DCIM" / "100CAM"
            folder.mkdir(parents=True)
            data = bytearray((template / "photo.jpg").read_bytes())
            data[-3] = i  # a different photo on every camera (inside the scan data, before the end marker)
            (folder / "IMG_0001.JPG").write_bytes(bytes(data))
        wait_for(lambda: [d["state"] for d in read_status(station_settings.status_path).get("devices", [])]
                  == ["done"] * 20, 120, "twenty docks to finish")
    engine = open_catalog(station_settings.database_url)
    try:
        with Session(engine) as session:
            assert len(session.exec(select(Recording)).all()) == 20
            assert len(session.exec(select(DockSession)).all()) == 20
    finally:
        engine.dispose()


@pytest.mark.slow
def test_station_killed_mid_ingest_and_restarted_loses_and_duplicates_nothing(tmp_path, station_settings):
    root = Path(station_settings.mount_roots[0])
    env = station_env(station_settings)
    evidence = str(Path(sys.executable).with_name("evidence"))
    device = tmp_path / "staged-device"
    _big_device(device, 400, "MVI_0001.MP4")
    make_photo(device / "DCIM" / "100BIG" / "IMG_0002.JPG")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([evidence, "station", "watch"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    proc = start()
    try:
        shutil.move(str(device), str(root / "CAM"))
        wait_for(lambda: (read_status(station_settings.status_path).get("devices") or [{}])[0].get(
            "bytes_done", 0) > 0, 60, "copying to start")
        os.killpg(proc.pid, signal.SIGKILL)  # power cut
        proc.wait(timeout=30)
        proc = start()
        wait_for(lambda: [d.get("state") for d in read_status(station_settings.status_path).get("devices", [])]
                  == ["done"], 120, "the restarted station to finish")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    engine = open_catalog(station_settings.database_url)
    try:
        with Session(engine) as session:
            names = sorted(r.original_name for r in session.exec(select(Recording)))
            states = {r.state for r in session.exec(select(Recording))}
    finally:
        engine.dispose()
    assert names == ["IMG_0002.JPG", "MVI_0001.MP4"] and states == {"archived"}
    assert list(station_settings.staging_dir.glob("*")) == []


def _mount_tmpfs(path: Path, size: str) -> None:
    from tests.conftest import _missing

    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        _missing(f"a tmpfs mount for the full-disk test ({done.stderr.decode().strip()})")


@pytest.mark.slow
def test_staging_disk_full_pauses_and_resumes_when_space_returns(tmp_path, catalog_url):
    staging = tmp_path / "small-staging"
    _mount_tmpfs(staging, "3m")
    try:
        settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": catalog_url,
                                      "EVIDENCE_STAGING_DIR": str(staging), "EVIDENCE_DISK_FULL_WAIT_S": "60"})
        device = tmp_path / "cam"
        clip = _big_device(device, 6)
        engine = open_catalog(settings.database_url)
        paused = threading.Event()

        def watch(event: str, value: int) -> None:
            if event == "paused":
                paused.set()

        def grow_disk() -> None:
            # Space returns as soon as the copy says it paused: the copy looks for space again only after its poll
            # interval (ingest.pipeline.run.DISK_FULL_POLL_S), so it has waited on the full disk either way.
            paused.wait(timeout=30)
            subprocess.run(["mount", "-o", "remount,size=64m", str(staging)], check=True)

        grower = threading.Thread(target=grow_disk)
        grower.start()
        try:
            report = ingest_folder(device, settings=settings, engine=engine, store=LocalStore(settings.store_path),
                                   options=IngestOptions(), progress=watch)
        finally:
            grower.join(timeout=60)
            engine.dispose()
        assert paused.is_set()
        assert report.errors == [] and report.notes[0].startswith("paused: staging disk full while copying")
        (row,) = report.recordings
        assert row["size_bytes"] == 6 << 20
        with LocalStore(settings.store_path).open(row["sha256"]) as fh:
            assert fh.read() == clip.read_bytes()
    finally:
        subprocess.run(["umount", str(staging)], check=False)


@pytest.mark.postgres
def test_catalogue_outage_keeps_copying_and_catalogues_from_staging_when_it_returns(tmp_path, pg_outage,
                                                                                   monkeypatch):
    from catalog import CatalogUnavailable

    url, _down, allow = pg_outage
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": url})
    engine = open_catalog(url)
    store = LocalStore(settings.store_path)
    device = tmp_path / "cam"
    folder = device / "DCIM" / "100CAM"
    originals = {}
    for i in range(3):
        photo = make_photo(folder / f"IMG_000{i}.JPG", size=f"{160 + 16 * i}x120")
        originals[photo.name] = photo.read_bytes()
    try:
        # Given the catalogue database goes down
        allow(False)
        # When a device is docked, every file is still copied to staging and journaled
        with pytest.raises(CatalogUnavailable) as info:
            ingest_folder(device, settings=settings, engine=engine, store=store)
        assert "3 file(s) from" in str(info.value) and "journaled" in str(info.value)
        staged = sorted(p.name for p in settings.staging_dir.iterdir() if p.is_file())
        assert len(staged) == 3
        copies: list[str] = []
        real = copy_and_hash

        def counting(source, *a, **k):
            copies.append(str(source))
            return real(source, *a, **k)

        monkeypatch.setattr(pipeline, "copy_and_hash", counting)
        # Then, once it is back, the staged copies are catalogued and archived, the device not read again (a
        # glance at each file tells it is still the journaled copy: test_known_files_outage)
        allow(True)
        report = ingest_folder(device, settings=settings, engine=engine, store=store)
        assert report.errors == [] and len(report.recordings) == 3 and copies == []
        for row in report.recordings:
            with store.open(row["sha256"]) as fh:
                assert fh.read() == originals[row["original_name"]]
        journal = settings.staging_dir / "journal"
        assert not journal.exists() or list(journal.iterdir()) == []
        assert [p for p in settings.staging_dir.iterdir() if p.is_file()] == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_journal_is_catalogued_even_after_the_device_has_left(tmp_path, pg_outage):
    from ingest.errors import CatalogueDeferred
    from ingest.pipeline import catalogue_journal

    url, down, _allow = pg_outage
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": url})
    store = LocalStore(settings.store_path)
    device = tmp_path / "cam"
    originals = {p.name: p.read_bytes() for p in (
        make_photo(device / "DCIM" / "100CAM" / f"IMG_000{i}.JPG", size=f"{160 + 16 * i}x120") for i in range(2))}
    engine = open_catalog(url)
    try:
        # Given a dock during a catalogue outage, after which the officer takes the camera away
        with down(), pytest.raises(CatalogueDeferred) as info:
            ingest_folder(device, settings=settings, engine=engine, store=store)
        serial = info.value.device_serial
        assert info.value.journaled == 2
        shutil.rmtree(device)
        # When the catalogue is back, the journal alone is enough
        report = catalogue_journal(serial, settings=settings, engine=engine, store=store)
        assert report is not None and sorted(r["original_name"] for r in report.recordings) == sorted(originals)
        for row in report.recordings:
            with store.open(row["sha256"]) as fh:
                assert fh.read() == originals[row["original_name"]]
            assert row["captured_start"] is not None and row["state"] == "archived"
        with Session(engine) as session:
            paths = sorted(s.device_path for s in session.exec(select(Sighting)))
        assert paths == ["DCIM/100CAM/IMG_0000.JPG", "DCIM/100CAM/IMG_0001.JPG"]
        assert catalogue_journal(serial, settings=settings, engine=engine, store=store) is None  # nothing left
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_station_catalogues_a_departed_devices_journal_when_the_catalogue_returns(tmp_path, pg_outage):
    url, _down, allow = pg_outage
    root = tmp_path / "media"
    root.mkdir()
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": url,
                                  "EVIDENCE_MOUNT_ROOTS": str(root), "EVIDENCE_MOUNT_STABLE_S": "0.3",
                                  "EVIDENCE_RESCAN_S": "0.5", "EVIDENCE_STATUS_ADDR": "127.0.0.1:0",
                                  "EVIDENCE_CLEAR_DEVICES": "never"})
    with running_station(settings) as service:
        wait_for(lambda: read_status(settings.status_path).get("running"), 30, "the station to start")
        allow(False)
        make_photo(tmp_path / "cam" / "DCIM" / "100CAM" / "IMG_0001.JPG")
        (tmp_path / "cam").rename(root / "CAM")
        wait_for(lambda: service.devices.get(str(root / "CAM")) is not None
                 and service.devices[str(root / "CAM")].state in ("waiting-catalog", "failed"), 60, "the dock")
        assert service.devices[str(root / "CAM")].state == "waiting-catalog", service.devices[str(root / "CAM")]
        shutil.rmtree(root / "CAM")  # the officer leaves with the camera
        allow(True)
        wait_for(lambda: service.devices[str(root / "CAM")].state == "done", 60, "cataloguing from the journal")
        assert service.devices[str(root / "CAM")].message.startswith("catalogued from the staging journal")
    engine = open_catalog(url)
    try:
        with Session(engine) as session:
            assert [r.original_name for r in session.exec(select(Recording))] == ["IMG_0001.JPG"]
    finally:
        engine.dispose()
