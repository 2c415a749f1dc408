"""Capture times from wrong device clocks: reset to 2000, 20 years ahead, 0001 and 9999. Pure, fixed dates."""
from __future__ import annotations

from datetime import UTC, datetime

from device_profiles import load_profiles
from ingest.describe.capture_time import collect_time_candidates
from ingest.describe.metadata import (
    ExifFacts,
    Facts,
    RawTime,
    TimeBounds,
    describe,
    parse_filename,
    resolve_capture_time,
)
from ingest.describe.structure import Structure

CN = load_profiles()["cn-enforcement-recorder"]
MTIME_NS = int(datetime(2026, 11, 21, 0, 0, tzinfo=UTC).timestamp() * 1e9)


def _raw(source, utc, device_clock=True, zone=None, text="t"):
    return RawTime(source, text, utc, zone, device_clock)


def _facts(**kw):
    base = {"name": "x.mp4", "size_bytes": 100, "mtime_ns": MTIME_NS, "structure": Structure("mp4", None)}
    return Facts(**{**base, **kw})


def _probe(tags=None):
    return {"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "2.0", "tags": tags or {}},
            "streams": [{"codec_type": "video", "codec_name": "h264", "width": 320, "height": 240}]}


BOUNDS = TimeBounds(floor=datetime(2005, 1, 1, tzinfo=UTC), now=datetime(2026, 11, 30, 12, 0, tzinfo=UTC))


def test_a_clock_reset_to_2000_is_kept_as_found_and_flagged():
    reset = datetime(2000, 1, 1, 0, 0, 12, tzinfo=UTC)
    capture = resolve_capture_time({"filename": _raw("filename", reset, text="20000101_080012"),
                                    "file_mtime": _raw("file_mtime", reset)}, ("filename", "file_mtime"),
                                   duration_s=2.0, bounds=BOUNDS)
    assert (capture.start, capture.source, capture.implausible) == (reset, "filename", True)
    assert capture.raw_device_time == "20000101_080012"
    assert capture.problem == (
        "no plausible capture time; kept the device's filename time as found: filename time '20000101_080012' = "
        "2000-01-01T00:00:12+00:00 is before 2005-01-01 (the earliest plausible time); file_mtime time 't' = "
        "2000-01-01T00:00:12+00:00 is before 2005-01-01 (the earliest plausible time)")


def test_an_implausible_preferred_source_gives_way_to_the_next_plausible_one_flagged():
    ahead = datetime(2046, 11, 30, 12, 0, tzinfo=UTC)
    good = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    capture = resolve_capture_time({"filename": _raw("filename", ahead, text="20461130_200000"),
                                    "container": _raw("container", good)}, ("filename", "container"),
                                   duration_s=5.0, bounds=BOUNDS)
    assert (capture.start, capture.source, capture.implausible) == (good, "container", True)
    assert capture.problem is not None
    assert capture.problem.startswith("used the container time because filename time '20461130_200000' = "
                                      "2046-11-30T12:00:00+00:00 is more than 1 day after the station's clock")


def test_a_time_outside_pythons_range_never_raises():
    # EXIF 0001:01:01 in Beijing is before year 1 in UTC; a name saying 9999-12-31 23:59:59 in New York is after 9999.
    names = parse_filename(CN.filename, "ZFY_A123456_010203_99991231_235959.mp4")
    facts = _facts(name="x.jpg", structure=Structure("jpeg", None), image_size=(1, 1),
                   exif=ExifFacts(datetime_original="0001:01:01 00:00:00"))
    meta = describe(facts, profile=CN, station_zone="Asia/Shanghai", names=names, bounds=BOUNDS)
    assert meta.capture.source == "file_mtime" and meta.capture.implausible is True
    assert meta.capture.problem is not None
    assert "exif time '0001:01:01 00:00:00' is outside the representable range" in meta.capture.problem
    assert "filename time '99991231_235959'" in meta.capture.problem
    assert meta.technical["time_candidates"]["exif"]["utc"] is None
    west = describe(_facts(probe=_probe()), profile=CN, station_zone="America/New_York", names=names,
                    bounds=BOUNDS)
    assert west.capture.implausible is True and west.capture.source == "file_mtime"
    edge = resolve_capture_time({"filename": _raw("filename", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))},
                                ("filename",), duration_s=600.0)
    assert edge.end == edge.start  # the duration cannot be added past the calendar's end: no crash


def test_within_bounds_nothing_is_flagged():
    capture = resolve_capture_time({"container": _raw("container", datetime(2026, 11, 30, 1, tzinfo=UTC))},
                                   ("container",), duration_s=1.0, bounds=BOUNDS)
    assert capture.implausible is False and capture.problem is None


def test_every_time_reading_is_collected_and_one_outside_pythons_range_is_named_not_raised():
    # Given a file whose EXIF says year 1 (east of UTC it cannot be held in UTC) and whose name holds a time
    facts = _facts(probe=_probe({"creation_time": "2026-11-21T00:00:00Z"}),
                   exif=ExifFacts(datetime_original="0001:01:01 00:00:00"))
    names = parse_filename(CN.filename, "ZFY_A123456_000001_20261121_080000.MP4")
    # When the readings are collected in the device's zone
    found, unusable = collect_time_candidates(facts, names, zone="Asia/Shanghai", container_time_is_local=False)
    # Then each usable one is kept by source, and the unusable one says why
    assert list(found) == ["container", "filename", "file_mtime"]
    assert found["container"].utc == datetime(2026, 11, 21, tzinfo=UTC) and found["container"].zone_assumed is None
    assert found["filename"].utc == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    assert found["filename"].zone_assumed == "Asia/Shanghai"
    assert list(unusable) == ["exif"]
    assert unusable["exif"].startswith("exif time '0001:01:01 00:00:00' is outside the representable range (")


def test_a_container_time_labelled_utc_is_read_as_local_when_the_profile_says_so():
    facts = _facts(probe=_probe({"creation_time": "2026-11-21T08:00:00Z"}))
    found, _ = collect_time_candidates(facts, None, zone="Asia/Shanghai", container_time_is_local=True)
    assert found["container"].utc == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    assert found["container"].zone_assumed == "Asia/Shanghai"
