"""Recorders with wrong clocks, docked for real: reset to 2000, 20 years ahead, names saying 9999, EXIF 9999 and 0001.

Each case runs on SQLite and PostgreSQL, into the local WORM store and into SeaweedFS with Object Lock. Nothing
may crash, every file is catalogued with the raw time kept and flagged, the store locks each recording at least
until archiving + 6 months (S3 refuses a retain-until in the past, so a date counted from 2000 would leave the
recording staged for ever), and a second dock of the same device changes nothing.
"""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import piexif
import pytest
from dateutil.relativedelta import relativedelta
from sqlmodel import Session, select

from catalog import CustodyEvent, DockSession, Recording, find_chain_breaks, load_chain
from catalog.retention_job import apply_retention
from catalog.verification import verify_archive
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.samples import make_clip, make_photo

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

PREFIX = "ZFY_A123456_010203"
RESET = datetime(2000, 1, 1, 0, 0, 12, tzinfo=UTC)
AHEAD = datetime(2046, 11, 30, 4, 0, tzinfo=UTC)


def _set_mtime(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def _exif_photo(path: Path, raw_time: bytes) -> Path:
    """A JPEG whose EXIF DateTimeOriginal holds *raw_time* exactly as a broken camera writes it."""
    make_photo(path)
    piexif.insert(piexif.dump({"0th": {}, "Exif": {piexif.ExifIFD.DateTimeOriginal: raw_time}, "GPS": {}}),
                  str(path))
    return path


def _wrong_clock_recorder(root: Path) -> Path:
    """An enforcement recorder whose clock went wrong in every way seen in the field."""
    dev = root / "bad-clock-recorder"
    dev.mkdir(parents=True)
    (dev / "ZFYINFO.TXT").write_bytes("产品序号=A123456\r\n警员编号=010203\r\n警员姓名=张三\r\n".encode("gbk"))
    day = dev / "RECORD"
    # Battery pulled: the clock restarted at 2000-01-01 08:00 local, and so did the file times.
    reset = make_clip(day / f"{PREFIX}_20000101_080012.mp4", seconds=1, creation_time="2000-01-01T08:00:12Z")
    _set_mtime(reset, RESET)
    # A name saying 9999-12-31 23:59:59 (a firmware bug), with a sane container time.
    make_clip(day / f"{PREFIX}_99991231_235959.mp4", seconds=1, creation_time="2026-11-29T09:00:00Z")
    # Set 20 years ahead: name, container and file time all agree on 2046.
    ahead = make_clip(day / f"{PREFIX}_20461130_120000.mp4", seconds=1, creation_time="2046-11-30T12:00:00Z")
    _set_mtime(ahead, AHEAD)
    _exif_photo(dev / "PHOTO" / "IMG_9999.jpg", b"9999:12:31 23:59:59")
    _exif_photo(dev / "PHOTO" / "IMG_0001.jpg", b"0001:01:01 00:00:00")
    return dev


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_wrong_device_clocks_never_crash_nor_shorten_retention(where, tmp_path, settings, engine, request):
    # Given a recorder with every kind of wrong clock, and a local or S3 Object Lock store
    store = (request.getfixturevalue("s3_store") if where == "s3" else
             request.getfixturevalue("store"))
    device = _wrong_clock_recorder(tmp_path / "dock")
    started = datetime.now(UTC)

    # When it is docked
    report = ingest_folder(device, settings=settings, engine=engine, store=store,
                           options=IngestOptions(officer="010203"))

    # Then every file is catalogued and archived, none is an error
    assert report.errors == []
    rows = {r["original_name"]: r for r in report.recordings}
    assert len(rows) == 6
    assert {r["state"] for r in rows.values()} == {"archived"}  # read back later (the verify queue)
    with Session(engine) as session:
        assert session.exec(select(DockSession)).one().result == "complete"
        for name, row in rows.items():
            recording = session.get(Recording, row["id"])
            assert recording is not None and recording.archived_at is not None, name
            assert recording.archived_at >= started - timedelta(seconds=1)
            # retention runs from archiving: at least six months from today, whatever the clock said
            floor = recording.archived_at + relativedelta(months=6)
            assert recording.retain_until is not None and recording.retain_until >= floor, name
            assert store.head(recording.sha256).retain_until >= recording.retain_until, name
            if name != "ZFYINFO.TXT":
                assert recording.time_implausible is True, name
                assert recording.technical["time_problem"], name
    # and the raw device times are kept as found
    reset = rows[f"{PREFIX}_20000101_080012.mp4"]
    assert (reset["captured_start"], reset["raw_device_time"]) == ("2000-01-01T00:00:12Z", "20000101_080012")
    nines = rows[f"{PREFIX}_99991231_235959.mp4"]
    assert (nines["time_source"], nines["captured_start"]) == ("container", "2026-11-29T01:00:00Z")
    nines_problem = nines["time_problem"]
    assert nines_problem is not None and "filename time '99991231_235959'" in nines_problem
    ahead = rows[f"{PREFIX}_20461130_120000.mp4"]
    assert ahead["captured_start"] == "2046-11-30T04:00:00Z"  # kept as the device said, flagged
    ahead_until = ahead["retain_until"]
    assert ahead_until is not None and ahead_until < "2028-01-01"  # not locked until 2047: counted from archiving
    for name in ("IMG_9999.jpg", "IMG_0001.jpg"):
        assert rows[name]["time_source"] == "file_mtime" and rows[name]["media_kind"] == "photo"
    exif_problem = rows["IMG_0001.jpg"]["time_problem"]
    assert exif_problem is not None
    assert "exif time '0001:01:01 00:00:00' is outside the representable range" in exif_problem

    # And nothing is due for disposal the night it is ingested; the nightly job agrees and changes nothing
    with Session(engine) as session:
        assert [c for c in apply_retention(session, store, settings.retention_policy, actor="job")
                if c.new_until < c.old_until] == []  # type: ignore[operator]
        assert verify_archive(session, store, [r["id"] for r in rows.values()]).problems == []
        assert find_chain_breaks(load_chain(session)) == []
        copied = [e for e in session.exec(select(CustodyEvent).where(CustodyEvent.kind == "copied"))]
        assert {e.details["time_implausible"] for e in copied} == {True, False}

    # And a second dock of the same device finds everything known and crashes nowhere (files whose times are
    # implausible are read again, since their name, size and time cannot stand for their bytes)
    again = ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    assert {r["ingest"] for r in again.recordings} <= {"known"} and again.errors == []
    assert {r["original_name"] for r in again.recordings} == {f"{PREFIX}_20000101_080012.mp4",
                                                             f"{PREFIX}_20461130_120000.mp4"}


def test_a_describe_failure_is_a_flagged_row_and_the_rest_of_the_device_is_ingested(
        tmp_path, settings, engine, store, monkeypatch):
    from ingest.describe.metadata import describe
    from ingest.pipeline import cataloguing

    device = _wrong_clock_recorder(tmp_path / "dock")
    real = describe

    def describe_that_breaks_on_one_file(facts, **kw):
        if facts.name.endswith("20461130_120000.mp4"):
            raise RuntimeError("a bug in describing this file")
        return real(facts, **kw)

    monkeypatch.setattr(cataloguing, "describe", describe_that_breaks_on_one_file)
    report = ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions())
    assert report.errors == [] and len(report.recordings) == 6
    broken = next(r for r in report.recordings if r["original_name"].endswith("20461130_120000.mp4"))
    assert (broken["media_kind"], broken["integrity"]["status"], broken["state"]) == ("other", "unreadable",
                                                                                      "archived")
    assert broken["integrity"]["detail"] == "describing the file failed: RuntimeError: a bug in describing this file"
    assert broken["time_source"] == "docked" and broken["time_implausible"] is True
    with store.open(broken["sha256"]) as fh:
        assert fh.read() == (device / "RECORD" / f"{PREFIX}_20461130_120000.mp4").read_bytes()


def test_a_station_clock_behind_the_custody_chain_neither_shortens_retention_nor_flags_true_times(
        tmp_path, settings, engine, store):
    """The station's own clock is a month slow (a dead RTC battery, a clock set back); the other hosts (the web app,
    other stations) wrote the custody chain's recent events at the true time. Recordings are entered at the chain's
    time, not the slow clock's: routine retention counts from it, a device time that is right is not "ahead of the
    station", the `copied` event says how slow the clock was, and no disposal runs on that clock."""
    from catalog import CustodyKind, append_event
    from catalog.disposal import Signer, start_sweep
    from catalog.errors import DisposalError
    from catalog.signing import load_or_create_key

    true_now = datetime.now(UTC) + timedelta(days=30)  # what the rest of the installation's clocks read
    with Session(engine) as session:
        for minute in range(60):
            append_event(session, CustodyKind.SIGNED_IN, actor="clerk-li", at=true_now - timedelta(minutes=minute),
                         details={"via": "web"})
        session.commit()
    dev = tmp_path / "recorder"
    (dev / "RECORD").mkdir(parents=True)
    (dev / "ZFYINFO.TXT").write_bytes("产品序号=A123456\r\n警员编号=010203\r\n".encode("gbk"))
    shot = true_now - timedelta(hours=2)
    local = shot.astimezone(ZoneInfo("Asia/Shanghai"))
    clip = make_clip(dev / "RECORD" / f"{PREFIX}_{local:%Y%m%d_%H%M%S}.mp4", seconds=1,
                     creation_time=shot.strftime("%Y-%m-%dT%H:%M:%SZ"))
    _set_mtime(clip, shot)

    report = ingest_folder(dev, settings=settings, engine=engine, store=store,
                           options=IngestOptions(officer="010203"))
    assert report.errors == []
    assert any("behind the custody chain" in note for note in report.notes), report.notes
    [row] = [r for r in report.recordings if r["original_name"] == clip.name]
    with Session(engine) as session:
        recording = session.get(Recording, row["id"])
        assert recording is not None and recording.ingested_at is not None and recording.archived_at is not None
        assert recording.time_implausible is False, recording.technical.get("time_problem")
        agreed = true_now - timedelta(hours=1)  # the recent events' median: within the hour before true_now
        assert recording.ingested_at >= agreed and recording.archived_at >= agreed
        assert recording.retain_until is not None and recording.retain_until >= agreed + relativedelta(months=6)
        copied = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "copied",
                                                         CustodyEvent.recording_id == row["id"])).one()
        assert copied.details["station_clock_behind_s"] > 29 * 86400
        assert verify_archive(session, store, [row["id"]]).problems == []
        with pytest.raises(DisposalError, match=r"behind the custody chain's recent events"):
            start_sweep(session, store, settings.retention_policy, now=datetime.now(UTC), by="clerk-li",
                        approval_required=True, signer=Signer("ST1", load_or_create_key(tmp_path / "k")))


def test_one_event_from_a_clock_far_ahead_moves_no_floor(tmp_path, settings, engine, store):
    """A laptop whose clock reads 2046 signs in once: the floor is what the chain's recent events agree on, so new
    recordings are entered now, not in 2046, and disposal is not blocked (a review found one such event pushing
    every later recording's retention out by twenty years and stopping disposal for good)."""
    from catalog import CustodyKind, append_event
    from catalog.clock import archive_now, clock_problem

    device = _wrong_clock_recorder(tmp_path / "dock")
    ingest_folder(device, settings=settings, engine=engine, store=store, options=IngestOptions(officer="010203"))
    with Session(engine) as session:
        append_event(session, CustodyKind.SIGNED_IN, actor="clerk-li", at=AHEAD, details={"via": "web"})
        session.commit()
        now, lag = archive_now(session)
        assert lag is None and now < datetime.now(UTC) + timedelta(minutes=1)
        assert clock_problem(session, datetime.now(UTC)) is None


def test_the_floor_is_the_middle_of_the_recent_times():
    from catalog.clock import behind_by, median_time

    base = datetime(2026, 12, 3, tzinfo=UTC)
    times = [base + timedelta(minutes=m) for m in range(5)] + [AHEAD]
    assert median_time(times) == base + timedelta(minutes=2) and median_time([]) is None
    assert behind_by(base, base + timedelta(minutes=4)) is None  # within the slack between hosts
    assert behind_by(base, base + timedelta(days=30)) == timedelta(days=30)
