from pathlib import Path

import pytest

from device_profiles import (
    ProfileInvalid,
    ProfileNotFound,
    get_profile,
    is_match,
    load_profile,
    load_profiles,
    parse_profile,
    recognise,
)

VALID = {
    "name": "test-cam", "recognise": {"any_files": ["CAM.ID"]}, "recordings": ["*.mp4"],
    "time_sources": ["container", "file_mtime"], "clock": {"zone": "Asia/Shanghai"}, "clear_after_archive": False,
}


def test_builtin_profiles_cover_the_three_device_shapes():
    profiles = load_profiles()
    assert set(profiles) == {"cn-enforcement-recorder", "generic-dcim-camera", "gps-sidecar-recorder"}
    cn = profiles["cn-enforcement-recorder"]
    assert cn.identity is not None and cn.identity.encoding == "gbk"
    assert cn.identity.fields["officer_number"] == "警员编号"
    assert cn.clock.zone == "Asia/Shanghai" and cn.clock.container_time_is_local
    assert cn.clear_after_archive is True
    assert profiles["generic-dcim-camera"].clear_after_archive is False
    assert profiles["gps-sidecar-recorder"].sidecar is not None


def test_an_ignore_list_is_refused_because_every_file_is_kept():
    with pytest.raises(ProfileInvalid) as info:
        parse_profile({**VALID, "ignore": ["**/*.tmp"]})
    assert info.value.details == [
        "ignore: no longer supported: every file on a device is kept; list device-made derivatives under "
        "housekeeping (with discard: true and a reason to leave one behind)"]


def test_a_valid_mapping_parses():
    profile = parse_profile(VALID)
    assert profile.name == "test-cam" and profile.time_sources == ("container", "file_mtime")


def test_every_problem_is_reported_at_once():
    bad = {**VALID, "colour": "red", "time_sources": ["container", "sundial"], "clock": {"zone": "Mars/Olympus"},
           "clear_after_archive": "yes", "filename": {"pattern": "(?P<when>x"}}
    with pytest.raises(ProfileInvalid) as info:
        parse_profile(bad, source="bad.yaml")
    details = info.value.details
    assert "profile: unknown key 'colour' (allowed: area, clear_after_archive, clock, description, filename, " \
           "housekeeping, identity, name, recognise, recordings, sidecar, time_sources)" in details
    assert "time_sources: unknown source 'sundial' (allowed: sidecar, container, exif, filename, file_mtime)" in details
    assert "clock.zone: 'Mars/Olympus' is not a known IANA time zone" in details
    assert "clear_after_archive: expected true/false, got 'yes'" in details
    assert any(d.startswith("filename.pattern: not a valid regular expression") for d in details)
    assert len(details) == 5
    assert str(info.value).startswith("device profile 'bad.yaml' is invalid (5 problem(s)):\n  - profile: unknown key")


def test_missing_required_keys_and_inconsistent_sources_are_named():
    with pytest.raises(ProfileInvalid) as info:
        parse_profile({"name": "x", "time_sources": ["sidecar", "filename"]})
    details = info.value.details
    for key in ("clear_after_archive", "clock", "recognise", "recordings"):
        assert f"profile: missing required key {key!r}" in details
    assert "time_sources: 'sidecar' is listed but the profile has no sidecar rule" in details
    assert "time_sources: 'filename' is listed but the profile has no filename rule" in details


def test_filename_pattern_groups_are_restricted():
    bad = {**VALID, "filename": {"pattern": r"(?P<colour>\w+)\.mp4"}}
    with pytest.raises(ProfileInvalid, match="unknown groups \\['colour'\\]"):
        parse_profile(bad)


def test_yaml_file_that_does_not_parse_is_invalid(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProfileInvalid) as info:
        load_profile(path)
    assert info.value.source == str(path)
    assert info.value.details[0].startswith("cannot read:")


def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(ProfileNotFound) as info:
        get_profile(load_profiles(), "nope")
    assert str(info.value) == ("no device profile named 'nope' (known: cn-enforcement-recorder, "
                               "generic-dcim-camera, gps-sidecar-recorder)")


def test_matching_is_case_insensitive_and_needs_every_all_path():
    profiles = load_profiles()
    assert is_match(profiles["cn-enforcement-recorder"], {"zfyinfo.txt", "record"})
    assert not is_match(profiles["cn-enforcement-recorder"], {"record"})
    assert is_match(profiles["generic-dcim-camera"], {"dcim", "dcim/100evcam"})
    assert is_match(parse_profile({**VALID, "recognise": {"volume_labels": ["ZFY_DISK"]}}), set(), "zfy_disk")


def test_recognise_prefers_a_marker_file_over_a_generic_layout(tmp_path: Path):
    (tmp_path / "DCIM").mkdir()
    (tmp_path / "ZFYINFO.TXT").write_bytes(b"")
    assert recognise(tmp_path, load_profiles()).name == "cn-enforcement-recorder"


def test_recognise_unknown_folder_says_so(tmp_path: Path):
    with pytest.raises(ProfileNotFound, match=r"no device profile recognises .* pass --profile NAME"):
        recognise(tmp_path, load_profiles())


def test_extra_profile_folder_adds_profiles(tmp_path: Path):
    (tmp_path / "cam.yaml").write_text(
        "name: test-cam\nrecognise: {any_files: [CAM.ID]}\nrecordings: ['*.mp4']\n"
        "time_sources: [container]\nclock: {zone: null}\nclear_after_archive: false\n", encoding="utf-8")
    assert "test-cam" in load_profiles((tmp_path,))


def test_every_top_level_key_becomes_the_typed_field_of_that_name():
    full = {
        **VALID, "description": "A test camera", "area": ["/DCIM/"], "time_sources": ["sidecar", "filename"],
        "housekeeping": [{"pattern": "**/*.lrv", "discard": True, "reason": " low-res copy "}],
        "identity": {"file": "ID.TXT", "fields": {"serial": "SN"}},
        "filename": {"pattern": r"(?P<serial>\w+)_(?P<date>\d{8})_(?P<time>\d{6})\.mp4", "important_suffix": "_IMP"},
        "sidecar": {"name": "{stem}.json"}, "clock": {"zone": "UTC", "file": "TIME.TXT"}, "clear_after_archive": True,
    }
    profile = parse_profile(full, source="full.yaml")
    assert profile.description == "A test camera" and profile.area == ("DCIM",) and profile.source == "full.yaml"
    assert profile.time_sources == ("sidecar", "filename") and profile.clear_after_archive is True
    assert [(h.pattern, h.discard, h.reason, h.belongs_to) for h in profile.housekeeping] == [
        ("**/*.lrv", True, "low-res copy", ("{stem}.*",))]
    assert profile.identity is not None and (profile.identity.file, profile.identity.encoding) == ("ID.TXT", "utf-8")
    assert profile.filename is not None and profile.filename.important_suffix == "_IMP"
    assert profile.sidecar is not None and (profile.sidecar.name, profile.sidecar.format) == ("{stem}.json", "json")
    assert (profile.clock.zone, profile.clock.file) == ("UTC", "TIME.TXT")
    assert profile.clock.file_format == "%Y-%m-%d %H:%M:%S"


def test_problems_are_listed_in_the_order_of_the_profile_keys():
    bad = {**VALID, "name": "Bad Name", "recordings": [], "clock": {"container_time_is_local": "no"},
           "sidecar": {"name": "x.json", "format": "xml"}}
    with pytest.raises(ProfileInvalid) as info:
        parse_profile(bad, source="bad.yaml")
    assert info.value.details == [
        "name: 'Bad Name' must be lowercase letters, digits and '-'",
        "recordings: give at least one glob pattern",
        "clock.container_time_is_local: expected true/false, got 'no'",
        "sidecar.format: 'xml' is not one of json, keyvalue",
        "sidecar.name: must be a template containing {stem}",
    ]
