"""Pure decisions: filename rules, ISO 6709, EXIF, sidecars, capture time, integrity verdicts."""
from datetime import UTC, datetime

import pytest

from device_profiles import load_profiles, parse_profile
from ingest.describe.metadata import (
    Facts,
    RawTime,
    describe,
    exif_facts,
    parse_filename,
    parse_iso6709,
    resolve_capture_time,
    sidecar_facts,
)
from ingest.describe.structure import Structure

PROFILES = load_profiles()
CN = PROFILES["cn-enforcement-recorder"]
DCIM = PROFILES["generic-dcim-camera"]
SIDE = PROFILES["gps-sidecar-recorder"]
MTIME_NS = int(datetime(2026, 11, 21, 0, 0, tzinfo=UTC).timestamp() * 1e9)
MP4 = Structure("mp4", None)


def _probe(tags=None, duration="2.0", streams=None):
    return {"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": duration, "tags": tags or {}},
            "streams": streams if streams is not None else [
                {"codec_type": "video", "codec_name": "h264", "width": 320, "height": 240},
                {"codec_type": "audio", "codec_name": "aac", "sample_rate": "44100", "channels": 1}]}


def test_filename_rule_reads_serial_officer_time_and_important_flag():
    facts = parse_filename(CN.filename, "ZFY_A123456_010203_20261120_083500_IMP.mp4")
    assert facts is not None
    assert (facts.serial, facts.officer, facts.important) == ("A123456", "010203", True)
    assert facts.local_time == datetime(2026, 11, 20, 8, 35, 0)
    assert facts.text == "20261120_083500"


def test_filename_that_only_looks_like_a_time_gives_no_time():
    facts = parse_filename(CN.filename, "ZFY_A123456_010203_20261340_256100.mp4")
    assert facts is not None and facts.local_time is None


def test_filename_outside_the_rule_gives_nothing():
    assert parse_filename(CN.filename, "IMG_0001.JPG") is None
    assert parse_filename(None, "anything") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("+39.9042+116.4074/", (39.9042, 116.4074)),
    ("+39.9042+116.4074+050.000/", (39.9042, 116.4074)),
    ("-33.8688+151.2093CRSWGS_84/", (-33.8688, 151.2093)),
    ("+91.0+10.0/", None),
    ("somewhere", None),
])
def test_iso6709(text, expected):
    assert parse_iso6709(text) == expected


def test_exif_gps_south_west_and_gps_time():
    facts = exif_facts({
        "GPS GPSLatitude": [33.0, 52.0, 7.68], "GPS GPSLatitudeRef": "S",
        "GPS GPSLongitude": [151.0, 12.0, 33.48], "GPS GPSLongitudeRef": "E",
        "GPS GPSDate": "2026:11:20", "GPS GPSTimeStamp": [6.0, 5.0, 0.0],
        "EXIF DateTimeOriginal": "2026:11:20 17:05:00", "EXIF OffsetTimeOriginal": "+11:00",
        "EXIF BodySerialNumber": "CAM1",
    })
    assert facts.lat == pytest.approx(-33.8688) and facts.lon == pytest.approx(151.2093)
    assert facts.gps_utc == datetime(2026, 11, 20, 6, 5, 0, tzinfo=UTC)
    assert (facts.offset_time_original, facts.serial) == ("+11:00", "CAM1")


def test_exif_zero_zero_is_no_fix():
    facts = exif_facts({"GPS GPSLatitude": [0.0, 0.0, 0.0], "GPS GPSLongitude": [0.0, 0.0, 0.0]})
    assert (facts.lat, facts.lon) == (None, None)


def test_sidecar_validation_names_the_bad_field():
    with pytest.raises(ValueError, match="start_utc 'yesterday' is not an ISO time with a zone"):
        sidecar_facts({"start_utc": "yesterday"})
    with pytest.raises(ValueError, match="expected an object"):
        sidecar_facts([1, 2])
    facts = sidecar_facts({"track": [{"utc": "2026-11-20T02:00:00Z", "lat": 0, "lon": 0},
                                     {"utc": "2026-11-20T02:00:01Z", "lat": 31.2, "lon": 121.4}]})
    assert (facts.lat, facts.lon, facts.track_points) == (31.2, 121.4, 2)
    assert facts.start_utc == datetime(2026, 11, 20, 2, 0, 1, tzinfo=UTC)


def _raw(source, utc, device_clock=True, zone=None, text="t"):
    return RawTime(source, text, utc, zone, device_clock)


def test_first_available_source_in_profile_order_wins():
    t1 = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
    t2 = datetime(2026, 11, 20, 0, 31, tzinfo=UTC)
    candidates = {"container": _raw("container", t2), "filename": _raw("filename", t1, zone="Asia/Shanghai"),
                  "file_mtime": _raw("file_mtime", t2)}
    capture = resolve_capture_time(candidates, ("filename", "container", "file_mtime"), duration_s=2.0)
    assert (capture.source, capture.start, capture.zone_assumed) == ("filename", t1, "Asia/Shanghai")
    assert capture.end == datetime(2026, 11, 20, 0, 30, 2, tzinfo=UTC)
    assert capture.clock_offset_s == 0.0


def test_known_clock_offset_corrects_device_time():
    t = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
    capture = resolve_capture_time({"file_mtime": _raw("file_mtime", t)}, ("container", "file_mtime"),
                                   duration_s=None, explicit_offset_s=-30.5)
    assert capture.start == datetime(2026, 11, 20, 0, 29, 29, 500000, tzinfo=UTC)
    assert (capture.source, capture.clock_offset_s) == ("file_mtime", -30.5)


def test_gps_time_measures_the_device_clock_drift():
    gps = datetime(2026, 11, 20, 2, 10, tzinfo=UTC)
    device = datetime(2026, 11, 20, 2, 11, 35, tzinfo=UTC)
    capture = resolve_capture_time(
        {"sidecar": _raw("sidecar", gps, device_clock=False), "device_time": _raw("device_time", device, text="dt"),
         "container": _raw("container", device), "file_mtime": _raw("file_mtime", device)},
        ("sidecar", "container", "file_mtime"), duration_s=2.0)
    assert (capture.start, capture.clock_offset_s, capture.raw_device_time) == (gps, -95.0, "dt")


def _facts(**kw):
    base = {"name": "x.mp4", "size_bytes": 100, "mtime_ns": MTIME_NS, "structure": MP4}
    return Facts(**{**base, **kw})


def test_container_time_labelled_utc_but_local_is_reinterpreted():
    meta = describe(_facts(probe=_probe({"creation_time": "2026-11-20T09:30:00.000000Z"})), profile=CN,
                    station_zone="UTC")
    assert meta.capture.start == datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
    assert (meta.capture.source, meta.capture.zone_assumed) == ("container", "Asia/Shanghai")
    assert meta.capture.raw_device_time == "2026-11-20T09:30:00.000000Z"


def test_true_utc_container_time_is_kept():
    meta = describe(_facts(probe=_probe({"creation_time": "2026-11-20T06:10:00.000000Z",
                                         "location": "+31.2304+121.4737/"})), profile=DCIM,
                    station_zone="Asia/Shanghai")
    assert meta.capture.start == datetime(2026, 11, 20, 6, 10, tzinfo=UTC)
    assert meta.capture.zone_assumed is None
    assert meta.place is not None
    assert (meta.place.lat, meta.place.lon, meta.place.source) == (31.2304, 121.4737, "container")
    assert (meta.media_kind, meta.video_codec, meta.audio_codec, meta.width, meta.duration_s) == (
        "video", "h264", "aac", 320, 2.0)


def test_broadcast_wav_origination_time_is_local():
    probe = _probe({"date": "2026-11-20", "creation_time": "08:45:00", "encoded_by": "ZFY"}, duration="1.5",
                   streams=[{"codec_type": "audio", "codec_name": "pcm_s16le"}])
    meta = describe(_facts(structure=Structure("wav", None), probe=probe), profile=DCIM, station_zone="Asia/Shanghai")
    assert meta.capture.start == datetime(2026, 11, 20, 0, 45, tzinfo=UTC)
    assert (meta.media_kind, meta.capture.zone_assumed, meta.capture.raw_device_time) == (
        "audio", "Asia/Shanghai", "2026-11-20 08:45:00")


def test_avi_idit_date_without_zone():
    probe = _probe({"date": "Fri Nov 20 09:10:11 2026"},
                   streams=[{"codec_type": "video", "codec_name": "mjpeg", "width": 160, "height": 120}])
    meta = describe(_facts(structure=Structure("avi", None), probe=probe), profile=DCIM, station_zone="Asia/Shanghai")
    assert meta.capture.start == datetime(2026, 11, 20, 1, 10, 11, tzinfo=UTC)
    assert meta.media_kind == "video"


def test_exif_with_offset_needs_no_zone_and_without_uses_the_station_zone():
    with_offset = describe(_facts(structure=Structure("jpeg", None), image_size=(640, 480),
                                  exif=exif_facts({"EXIF DateTimeOriginal": "2026:11:20 14:05:00",
                                                   "EXIF OffsetTimeOriginal": "+08:00"})),
                           profile=DCIM, station_zone="Europe/Berlin")
    assert with_offset.capture.start == datetime(2026, 11, 20, 6, 5, tzinfo=UTC)
    assert with_offset.capture.zone_assumed is None
    assert (with_offset.media_kind, with_offset.width, with_offset.height) == ("photo", 640, 480)
    without = describe(_facts(structure=Structure("jpeg", None), image_size=(640, 480),
                              exif=exif_facts({"EXIF DateTimeOriginal": "2026:11:20 14:05:00"})),
                       profile=DCIM, station_zone="Europe/Berlin")
    assert without.capture.start == datetime(2026, 11, 20, 13, 5, tzinfo=UTC)
    assert without.capture.zone_assumed == "Europe/Berlin"


def test_file_time_is_the_last_resort():
    meta = describe(_facts(structure=Structure("jpeg", None), image_size=(1, 1)), profile=DCIM, station_zone="UTC")
    assert meta.capture.source == "file_mtime"
    assert meta.capture.start == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)


def test_place_falls_back_to_the_station():
    meta = describe(_facts(probe=_probe()), profile=DCIM, station_zone="UTC", station_place=(39.9, 116.4))
    assert meta.place is not None
    assert (meta.place.lat, meta.place.lon, meta.place.source) == (39.9, 116.4, "station")
    assert describe(_facts(probe=_probe()), profile=DCIM, station_zone="UTC").place is None


def test_sidecar_wins_time_and_place_and_a_broken_one_is_noted():
    side = sidecar_facts({"start_utc": "2026-11-20T02:10:00Z", "end_utc": "2026-11-20T02:10:02Z",
                          "device_time": "2026-11-20 10:11:35", "track": [{"lat": 31.2, "lon": 121.4}]})
    meta = describe(_facts(probe=_probe({"creation_time": "2026-11-20T10:11:35Z"}), sidecar=side), profile=SIDE,
                    station_zone="UTC")
    assert (meta.capture.source, meta.capture.clock_offset_s) == ("sidecar", -95.0)
    assert meta.capture.end == datetime(2026, 11, 20, 2, 10, 2, tzinfo=UTC)
    assert meta.place is not None and meta.place.source == "sidecar"
    broken = describe(_facts(probe=_probe(), sidecar_error="not UTF-8 JSON"), profile=SIDE, station_zone="UTC")
    assert broken.integrity_detail == "sidecar ignored: not UTF-8 JSON"


@pytest.mark.parametrize(("facts", "status", "detail"), [
    (dict(structure=Structure("empty", "empty file (0 bytes)")), "unreadable", "empty file (0 bytes)"),
    (dict(structure=Structure("mp4", "no 'moov' index box"), probe_error="moov atom not found"), "damaged",
     "no 'moov' index box; ffprobe: moov atom not found"),
    (dict(structure=Structure("unknown", None, first_bytes=b"hello"),
          probe_error="Invalid data found when processing input"),
     "unreadable", "named like a recording but its content is not a recognised audiovisual format "
                   "(first bytes 68 65 6c 6c 6f = b'hello'); ffprobe: Invalid data found when processing input"),
    (dict(structure=Structure("mp4", None), probe_error="Invalid data"), "damaged", "ffprobe: Invalid data"),
    (dict(probe=_probe(duration="N/A")), "damaged", "container gives no duration"),
    (dict(structure=Structure("jpeg", None), image_error="truncated"), "damaged", "image header unreadable: truncated"),
    (dict(probe=_probe()), "ok", ""),
])
def test_integrity_verdicts(facts, status, detail):
    meta = describe(_facts(**facts), profile=DCIM, station_zone="UTC")
    assert (meta.integrity_status, meta.integrity_detail) == (status, detail)


def test_custom_profile_order_can_prefer_the_container():
    profile = parse_profile({"name": "c", "recognise": {"any_files": ["X"]}, "recordings": ["*"],
                             "time_sources": ["container", "filename"], "clock": {"zone": "UTC"},
                             "clear_after_archive": False,
                             "filename": {"pattern": r"(?P<date>\d{8})_(?P<time>\d{6})\.mp4"}})
    meta = describe(_facts(name="20261120_083000.mp4", probe=_probe({"creation_time": "2026-11-20T08:31:00Z"})),
                    profile=profile, station_zone="UTC", names=parse_filename(profile.filename, "20261120_083000.mp4"))
    assert meta.capture.source == "container"
    assert meta.capture.start == datetime(2026, 11, 20, 8, 31, tzinfo=UTC)


@pytest.mark.parametrize("role", ["unlisted", "housekeeping"])
def test_a_file_that_is_not_media_and_not_called_a_recording_is_kept_as_found(role):
    facts = _facts(name="INDEX.DAT", structure=Structure("unknown", None, first_bytes=b"\x00\x01"),
                   probe_error="Invalid data found when processing input")
    meta = describe(facts, profile=DCIM, station_zone="UTC", role=role)
    assert (meta.media_kind, meta.integrity_status, meta.integrity_detail) == (
        "other", "ok", "not audiovisual media; kept as found")


def test_a_housekeeping_thumbnail_is_kind_other_but_judged_as_the_photo_it_is():
    facts = _facts(name="GOPR0001.THM", structure=Structure("jpeg", "JPEG end-of-image marker missing (truncated)"))
    meta = describe(facts, profile=DCIM, station_zone="UTC", role="housekeeping")
    assert (meta.media_kind, meta.integrity_status, meta.integrity_detail) == (
        "other", "damaged", "JPEG end-of-image marker missing (truncated)")


def test_an_unlisted_file_whose_content_is_media_is_described_as_that_media():
    meta = describe(_facts(name="FILE0001.BIN", probe=_probe()), profile=DCIM, station_zone="UTC", role="unlisted")
    assert (meta.media_kind, meta.integrity_status, meta.duration_s) == ("video", "ok", 2.0)


def test_an_mp4_with_only_audio_streams_is_audio_and_an_m4a_brand_says_so_even_unreadable():
    audio_only = _probe(streams=[{"codec_type": "audio", "codec_name": "aac"}])
    assert describe(_facts(probe=audio_only), profile=DCIM, station_zone="UTC").media_kind == "audio"
    broken = _facts(structure=Structure("mp4", None, brand="M4A "), probe_error="moov atom not found")
    meta = describe(broken, profile=DCIM, station_zone="UTC")
    assert (meta.media_kind, meta.integrity_status, meta.integrity_detail) == (
        "audio", "damaged", "ffprobe: moov atom not found")


@pytest.mark.parametrize(("tags", "text", "utc", "zone"), [
    # AVI IDIT as ffmpeg's avidec renders it: creation_time without a zone -> the device's wall clock
    ({"creation_time": "2026-11-20 14:10:05", "date": "2026-11-20"}, "2026-11-20 14:10:05",
     datetime(2026, 11, 20, 6, 10, 5, tzinfo=UTC), "Asia/Shanghai"),
    # ID3v2.3 TYER+TDAT+TIME merged by ffmpeg into minutes only; ID3v2.4 TDRC with seconds
    ({"date": "2026-11-20 14:10"}, "2026-11-20 14:10", datetime(2026, 11, 20, 6, 10, tzinfo=UTC), "Asia/Shanghai"),
    ({"date": "2026-11-20T14:10:05"}, "2026-11-20T14:10:05", datetime(2026, 11, 20, 6, 10, 5, tzinfo=UTC),
     "Asia/Shanghai"),
    # MXF identification set: ffprobe labels it UTC
    ({"modification_date": "2026-11-20T06:10:05.000000Z"}, "2026-11-20T06:10:05.000000Z",
     datetime(2026, 11, 20, 6, 10, 5, tzinfo=UTC), None),
    # Apple keeps the capture moment with its offset; it wins over an edited creation_time
    ({"com.apple.quicktime.creationdate": "2026-11-20T14:10:05+0800", "creation_time": "2026-12-01T00:00:00Z"},
     "2026-11-20T14:10:05+0800", datetime(2026, 11, 20, 6, 10, 5, tzinfo=UTC), None),
])
def test_container_dates_with_and_without_a_zone(tags, text, utc, zone):
    meta = describe(_facts(probe=_probe(tags)), profile=DCIM, station_zone="Asia/Shanghai")
    assert (meta.capture.source, meta.capture.raw_device_time, meta.capture.start, meta.capture.zone_assumed) == (
        "container", text, utc, zone)


@pytest.mark.parametrize("tags", [{"date": "2026"}, {"date": "2026-11-20"}, {"creation_time": "08:45:00"}])
def test_a_date_without_a_time_is_not_a_capture_time(tags):
    meta = describe(_facts(probe=_probe(tags)), profile=DCIM, station_zone="UTC")
    assert meta.capture.source == "file_mtime"


def test_a_wall_clock_time_from_the_framing_is_used_when_no_tag_has_one():
    facts = _facts(structure=Structure("dv", None, embedded_time="2026-11-20 14:10:05"), probe=_probe())
    meta = describe(facts, profile=DCIM, station_zone="Asia/Shanghai")
    assert (meta.capture.source, meta.capture.start, meta.capture.zone_assumed) == (
        "container", datetime(2026, 11, 20, 6, 10, 5, tzinfo=UTC), "Asia/Shanghai")
