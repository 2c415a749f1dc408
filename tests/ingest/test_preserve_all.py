"""Nothing is left behind: a card from other vendors' cameras, with every container they write, broken files and
the litter of the computers it went through, is preserved byte for byte and catalogued; a profile only describes.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlmodel import Session, select

from catalog import CustodyEvent, Recording
from catalog.detail import recording_detail
from ingest.errors import SampleToolMissing
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.samples import make_photo
from ingest.station.clearing import clear_device
from tests import media
from tests.conftest import _missing

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def _camera_card(root: Path) -> dict[str, str]:
    """A card as a mix of real devices leave it: relative path -> the kind its content makes it."""
    card = root / "card"
    phone, cam, avchd = card / "DCIM" / "100APPLE", card / "DCIM" / "100MEDIA", card / "PRIVATE" / "AVCHD" / "BDMV"
    broken = card / "DCIM" / "101MEDIA"
    for folder in (phone, cam, broken, avchd / "STREAM", card / "MISC", card / "RECORD"):
        folder.mkdir(parents=True, exist_ok=True)
    made = {
        media.make_heic(phone): "photo", media.make_mov(phone): "video", media.make_m4a(phone): "audio",
        media.make_insv(cam): "video", media.make_mkv(cam): "video", media.make_mxf(cam): "video",
        media.make_dv(cam): "video", media.make_3gp(cam): "video", media.make_mp3(cam): "audio",
        media.make_avi(cam): "video", media.make_ts(cam): "video", media.make_mts(avchd / "STREAM"): "video",
        media.make_h264(card / "RECORD"): "video",
        # broken as found in the field
        media.make_header_only_mov(broken): "video", media.make_mp4_past_eof(broken): "video",
        media.make_truncated_ts(broken): "video",
    }
    try:
        made[media.make_hevc(card / "RECORD")] = "video"
    except SampleToolMissing as exc:
        _missing(str(exc))  # skips on a developer machine, fails under CI=true
    (card / "MISC" / "GPSLOG.NMEA").write_bytes(b"$GPRMC,060705.00,A,3113.82,N,12128.42,E,0.0,0.0,201126,,,A*6A\r\n")
    (avchd / "INDEX.BDM").write_bytes(b"INDX0200" + bytes(32))
    thumb = make_photo(root / "thumb.jpg", size="160x120")  # a camera's JPEG thumbnail, named .THM
    thumb.rename(card / "DCIM" / "100MEDIA" / "MVI_0001.THM")
    (card / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    kinds = {os.path.relpath(path, card): kind for path, kind in made.items()}
    kinds.update({"MISC/GPSLOG.NMEA": "other", "PRIVATE/AVCHD/BDMV/INDEX.BDM": "other",
                  "DCIM/100MEDIA/MVI_0001.THM": "other"})
    return kinds


def test_every_file_of_a_mixed_vendor_card_is_preserved_catalogued_and_described_by_content(
        tmp_path, settings, engine, store):
    kinds = _camera_card(tmp_path)
    card = tmp_path / "card"
    report = ingest_folder(card, settings=settings, engine=engine, store=store,
                           options=IngestOptions(profile="generic-dcim-camera"))
    assert report.errors == []
    rows = {r["device_path"]: r for r in report.recordings}
    assert sorted(rows) == sorted(kinds)  # nothing left behind: every regular file is a catalogued recording
    assert {path: rows[path]["media_kind"] for path in kinds} == kinds
    for path, row in rows.items():
        data = (card / path).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest(), path
        with store.open(row["sha256"]) as fh:
            assert fh.read() == data, path  # byte for byte in the WORM store
        assert row["state"] == "archived", path
    damaged = {p for p, r in rows.items() if r["integrity"]["status"] != "ok"}
    assert damaged == {p for p in rows if p.startswith("DCIM/101MEDIA/")}, {p: rows[p]["integrity"] for p in rows}
    assert all(rows[p]["integrity"]["status"] == "damaged" for p in damaged)
    # the Finder's litter is left, named, with why, in the report and the custody log
    assert report.discarded == [{"file": ".DS_Store", "reason": "macOS Finder folder settings, not made by the "
                                                                "device"}]
    with Session(engine) as session:
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "discarded")).one()
        assert event.details["files"] == report.discarded


def test_housekeeping_files_are_kept_and_point_at_their_recording(samples, settings, engine, store):
    report = ingest_folder(samples.dcim_camera, settings=settings, engine=engine, store=store,
                           options=IngestOptions())
    rows = {r["original_name"]: r for r in report.recordings}
    thm, jpg = rows["IMG_0001.THM"], rows["IMG_0001.JPG"]
    assert thm["media_kind"] == "other" and thm["belongs_to"] == jpg["id"]
    side = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                         options=IngestOptions())
    by_path = {r["device_path"]: r for r in side.recordings}
    assert by_path["CLIPS/CLIP0001.json"]["belongs_to"] == by_path["CLIPS/CLIP0001.mp4"]["id"]
    assert by_path["RECORDER.JSON"]["belongs_to"] is None
    with Session(engine) as session:
        clip = session.get(Recording, by_path["CLIPS/CLIP0001.mp4"]["id"])
        assert clip is not None
        detail = recording_detail(session, clip, settings.retention_policy)
        assert [f["original_name"] for f in detail["housekeeping_files"]] == ["CLIP0001.json"]


def test_a_profile_can_leave_a_derivative_behind_only_by_naming_it_and_saying_why(tmp_path, settings_with_profile,
                                                                                  store):
    settings = settings_with_profile(
        "action-cam.yaml",
        "name: action-cam\nrecognise:\n  all_paths: [DCIM, GOPRO.ID]\nrecordings: ['**/*.mp4']\n"
        "housekeeping:\n  - pattern: '**/*.lrv'\n    discard: true\n"
        "    reason: low-resolution preview the camera rebuilds from the clip\n  - pattern: '**/*.thm'\n"
        "time_sources: [container, file_mtime]\nclock:\n  zone: null\nclear_after_archive: false\n")
    from catalog import open_catalog

    card = tmp_path / "gopro"
    folder = card / "DCIM" / "100GOPRO"
    folder.mkdir(parents=True)
    (card / "GOPRO.ID").write_text("HERO9", encoding="utf-8")
    media.make_faststart_mp4(folder, name="GX010001.MP4", seconds=1.0)
    (folder / "GX010001.LRV").write_bytes(b"low res copy")
    (folder / "GX010001.THM").write_bytes(b"\xff\xd8\xff\xe0 thumbnail")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    engine = open_catalog(settings.database_url)
    try:
        report = ingest_folder(card, settings=settings, engine=engine, store=store, options=IngestOptions())
    finally:
        engine.dispose()
    assert sorted(r["device_path"] for r in report.recordings) == ["DCIM/100GOPRO/GX010001.MP4",
                                                                    "DCIM/100GOPRO/GX010001.THM", "GOPRO.ID"]
    assert report.discarded == [{"file": "DCIM/100GOPRO/GX010001.LRV",
                                 "reason": "low-resolution preview the camera rebuilds from the clip"}]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # left means left: untouched


def test_clearing_a_recorder_never_deletes_its_identity_or_files_the_profile_does_not_know(
        samples, settings, engine, store):
    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions())
    assert report.errors == []
    from device_profiles import load_profiles

    (samples.sidecar_recorder / "CLIPS" / "settings.ini").write_text("[x]\n", encoding="utf-8")
    cleared = clear_device(engine, store, samples.sidecar_recorder, load_profiles()["gps-sidecar-recorder"],
                           device_serial=report.device_serial, actor="station:test")
    assert sorted(cleared.cleared) == ["CLIPS/CLIP0001.json", "CLIPS/CLIP0001.mp4", "CLIPS/CLIP0002.json",
                                       "CLIPS/CLIP0002.wav", "CLIPS/CLIP0003.json", "CLIPS/CLIP0003.mp4"]
    left = sorted(str(p.relative_to(samples.sidecar_recorder)) for p in samples.sidecar_recorder.rglob("*")
                  if p.is_file())
    assert left == ["CLIPS/settings.ini", "RECORDER.JSON"]
