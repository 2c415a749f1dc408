import os
import shutil
from pathlib import Path

import pytest

from device_profiles import IdentityRule, load_profiles
from ingest.describe.identity import DeviceIdentity, parse_identity, read_identity
from ingest.samples import HOSTILE_NAME
from ingest.scan import scan_device

PROFILES = load_profiles()


def _gbk_rule() -> IdentityRule:
    """The recorder profile's identity rule (the profile has one)."""
    rule = PROFILES["cn-enforcement-recorder"].identity
    assert rule is not None
    return rule


GBK_RULE = _gbk_rule()


def test_gbk_identity_file_is_read():
    text = "[DeviceInfo]\r\n产品序号=A123456\r\n警员编号=010203\r\n警员姓名=张三\r\n单位名称=城管执法局\r\n"
    raw = text.encode("gbk")
    identity = parse_identity(raw, GBK_RULE)
    assert (identity.serial, identity.officer_number, identity.officer_name, identity.unit_name) == (
        "A123456", "010203", "张三", "城管执法局")
    assert identity.problem is None


def test_identity_with_bytes_outside_gbk_is_read_as_far_as_possible():
    raw = "产品序号=A123456\n".encode("gbk") + b"\x80\xff=\n"
    identity = parse_identity(raw, GBK_RULE)
    assert identity.serial == "A123456"
    assert identity.problem is not None and identity.problem.startswith("identity file is not valid gbk at byte")


def test_json_identity_and_broken_json():
    rule = IdentityRule(file="RECORDER.JSON", encoding="utf-8", fields={"serial": "serial"})
    assert parse_identity(b'{"serial": "GPS7788"}', rule).serial == "GPS7788"
    broken = parse_identity(b'{"serial": ', rule)
    assert broken.serial is None and broken.problem is not None
    assert broken.problem.startswith("identity file is not valid JSON")


def test_a_hostile_identity_never_names_a_device_nor_an_officer_the_catalogue_cannot_hold():
    """A JSON null is no serial (it had named a device 'None'); a serial of 300 characters or holding a NUL, an
    officer number longer than the catalogue holds: not used, each said, the rest read."""
    rule = IdentityRule(file="RECORDER.JSON", encoding="utf-8",
                        fields={"serial": "serial", "officer_number": "officer", "officer_name": "name"})
    assert parse_identity(b'{"serial": null, "officer": 10203, "name": true}', rule) == DeviceIdentity(
        officer_number="10203")
    hostile = parse_identity(('{"serial": "' + "S" * 300 + '", "officer": "0102030405060708091011121314151617", '
                              '"name": "\\u5f20\\u4e09\\u0000"}').encode(), rule)
    assert (hostile.serial, hostile.officer_number, hostile.officer_name) == (None, None, None)
    assert hostile.problem == ("identity field serial is 300 characters (at most 64): not used; identity field "
                               "officer_number is 34 characters (at most 32): not used; identity field officer_name "
                               "holds control characters: not used")


def test_identity_file_is_found_case_insensitively(tmp_path):
    (tmp_path / "zfyinfo.txt").write_bytes("产品序号=B765432\n".encode("gbk"))
    assert read_identity(tmp_path, GBK_RULE).serial == "B765432"
    nowhere = read_identity(tmp_path / "nowhere", GBK_RULE).problem
    assert nowhere is not None and nowhere.startswith("device root unreadable")


def test_an_identity_file_that_cannot_be_opened_is_a_problem_not_a_crash(tmp_path):
    # A review's chmod 000 identity file (read without root's override) aborted the whole device with a
    # PermissionError: no dock session, nothing copied. Root reads through file modes, so as root the read is
    # made by the unprivileged `nobody` in a child process.
    import subprocess
    import sys
    import tempfile

    device = Path(tempfile.mkdtemp(prefix="identity-", dir="/tmp"))
    try:
        device.chmod(0o755)
        identity = device / "ZFYINFO.TXT"
        identity.write_bytes("产品序号=B765432\n".encode("gbk"))
        identity.chmod(0)
        if os.geteuid() != 0:
            problem = read_identity(device, GBK_RULE).problem
        else:
            code = ("import sys; from device_profiles import load_profiles; from ingest.describe.identity import "
                    "read_identity; from pathlib import Path; rule = load_profiles()['cn-enforcement-recorder']"
                    ".identity; print(read_identity(Path(sys.argv[1]), rule).problem)")
            done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                                   "-c", code, str(device)], capture_output=True, text=True, timeout=60,
                                  cwd=Path(__file__).resolve().parents[2],
                                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
            assert done.returncode == 0, done.stderr[-2000:]
            problem = done.stdout.strip()
        assert problem is not None and problem.startswith("identity file 'ZFYINFO.TXT' unreadable: ")
    finally:
        shutil.rmtree(device, ignore_errors=True)


def test_scan_keeps_every_regular_file_and_explains_every_skip(samples):
    result = scan_device(samples.cn_recorder, PROFILES["cn-enforcement-recorder"])
    roles = {f.relative: f.role for f in result.files}
    assert len(roles) == 12
    assert roles["RECORD/20261120/ZFY_A123456_010203_20261120_083500_IMP.mp4"] == "recording"
    assert roles["ZFYINFO.TXT"] == "identity"  # kept (and never cleared): it says whose device this is
    assert roles["RECORD/20261120/notes.txt"] == "unlisted"  # a file the profile does not know is kept too
    skipped = {s.relative: s.reason for s in result.skipped}
    assert skipped == {"RECORD/20261120/ZFY_A123456_010203_20261120_092000.mp4":
                       "symbolic link to '/etc/passwd' not followed"}
    assert result.discarded == []
    hostile = next(f for f in result.files if f.name.startswith(".."))
    assert hostile.name == "..\\x0a;rm -rf ~;$(reboot) \\xff\\xfe.mp4"
    assert os.fsencode(hostile.path).endswith(HOSTILE_NAME)
    assert "name is not valid UTF-8" in hostile.warnings


def test_sidecars_and_thumbnails_are_kept_as_housekeeping_files_of_their_recording(samples):
    side = scan_device(samples.sidecar_recorder, PROFILES["gps-sidecar-recorder"])
    assert [(f.relative, f.role, f.companion) for f in side.files] == [
        ("CLIPS/CLIP0001.json", "housekeeping", "CLIPS/CLIP0001.mp4"), ("CLIPS/CLIP0001.mp4", "recording", None),
        ("CLIPS/CLIP0002.json", "housekeeping", "CLIPS/CLIP0002.wav"), ("CLIPS/CLIP0002.wav", "recording", None),
        ("CLIPS/CLIP0003.json", "housekeeping", "CLIPS/CLIP0003.mp4"), ("CLIPS/CLIP0003.mp4", "recording", None),
        ("RECORDER.JSON", "identity", None)]
    assert side.skipped == [] and side.discarded == []
    cam = scan_device(samples.dcim_camera, PROFILES["generic-dcim-camera"])
    assert [(f.name, f.role, f.companion) for f in cam.files] == [
        ("IMG_0001.JPG", "recording", None), ("IMG_0001.THM", "housekeeping", "DCIM/100EVCAM/IMG_0001.JPG"),
        ("IMG_0002.JPG", "recording", None), ("IMG_0004.JPG", "recording", None),
        ("MVI_0003.MP4", "recording", None)]
    assert cam.skipped == [] and cam.discarded == []


def test_a_camcorder_card_keeps_avchd_streams_and_files_outside_dcim(tmp_path):
    stream = tmp_path / "PRIVATE" / "AVCHD" / "BDMV" / "STREAM"
    stream.mkdir(parents=True)
    (stream / "00000.MTS").write_bytes(b"G" + bytes(187))
    (tmp_path / "DCIM" / "100CANON").mkdir(parents=True)
    (tmp_path / "DCIM" / "100CANON" / "IMG_0001.HEIC").write_bytes(b"x")
    (tmp_path / "MISC").mkdir()
    (tmp_path / "MISC" / "GPSLOG.LOG").write_bytes(b"$GPRMC")
    result = scan_device(tmp_path, PROFILES["generic-dcim-camera"])
    assert [(f.relative, f.role) for f in result.files] == [
        ("DCIM/100CANON/IMG_0001.HEIC", "recording"), ("MISC/GPSLOG.LOG", "unlisted"),
        ("PRIVATE/AVCHD/BDMV/STREAM/00000.MTS", "recording")]


def test_operating_system_litter_is_discarded_with_its_reason_but_trash_is_kept(tmp_path):
    (tmp_path / "DCIM" / "100A").mkdir(parents=True)
    shutil.copyfile(__file__, tmp_path / "DCIM" / "100A" / "A.JPG")
    (tmp_path / "System Volume Information").mkdir()
    (tmp_path / "System Volume Information" / "IndexerVolumeGuid").write_bytes(b"x")
    (tmp_path / "DCIM" / "100A" / "._A.JPG").write_bytes(b"x")
    (tmp_path / ".Trashes" / "501").mkdir(parents=True)
    (tmp_path / ".Trashes" / "501" / "MVI_0007.MP4").write_bytes(b"a deleted recording")
    os.mkfifo(tmp_path / "DCIM" / "100A" / "B.JPG")
    result = scan_device(tmp_path, PROFILES["generic-dcim-camera"])
    assert [f.relative for f in result.files] == [".Trashes/501/MVI_0007.MP4", "DCIM/100A/A.JPG"]
    assert [(s.relative, s.reason) for s in result.skipped] == [("DCIM/100A/B.JPG", "not a regular file")]
    assert [(s.relative, s.reason) for s in result.discarded] == [
        ("DCIM/100A/._A.JPG", "macOS AppleDouble metadata of another file, not made by the device"),
        ("System Volume Information/IndexerVolumeGuid",
         "Windows volume metadata (indexer, restore points), not made by the device")]


def test_a_recording_with_a_litter_name_or_in_a_litter_folder_is_kept(tmp_path):
    clip = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)
    (tmp_path / "DCIM" / "100A").mkdir(parents=True)
    (tmp_path / "DCIM" / "100A" / "._CLIP0002.MP4").write_bytes(clip)  # renamed to hide it from a dock
    (tmp_path / "DCIM" / "100A" / "Thumbs.db").write_bytes(clip)
    (tmp_path / "DCIM" / "100A" / "._REAL").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    deep = tmp_path / "System Volume Information" / "deep" / "er"
    deep.mkdir(parents=True)
    (deep / "REC.MP4").write_bytes(clip)
    result = scan_device(tmp_path, PROFILES["generic-dcim-camera"])
    assert sorted(f.relative for f in result.files) == [
        "DCIM/100A/._CLIP0002.MP4", "DCIM/100A/Thumbs.db", "System Volume Information/deep/er/REC.MP4"]
    assert [s.relative for s in result.discarded] == ["DCIM/100A/._REAL"]


def test_a_profile_may_discard_a_housekeeping_file_only_with_a_reason(tmp_path):
    from device_profiles import ProfileInvalid, parse_profile

    base = {"name": "cam", "recognise": {"all_paths": ["DCIM"]}, "recordings": ["**/*.mp4"],
            "time_sources": ["container"], "clock": {"zone": None}, "clear_after_archive": False}
    with pytest.raises(ProfileInvalid) as refused:
        parse_profile({**base, "housekeeping": [{"pattern": "**/*.lrv", "discard": True}]})
    assert refused.value.details == ["housekeeping[0].reason: a discarded file needs the reason it may be left behind"]
    profile = parse_profile({**base, "housekeeping": [{"pattern": "**/*.lrv", "discard": True,
                                                       "reason": "low-resolution copy the camera rebuilds"}]})
    (tmp_path / "DCIM" / "100GOPRO").mkdir(parents=True)
    for name in ("GX010001.MP4", "GX010001.LRV"):
        (tmp_path / "DCIM" / "100GOPRO" / name).write_bytes(name.encode())
    result = scan_device(tmp_path, profile)
    assert [f.name for f in result.files] == ["GX010001.MP4"]
    assert [(s.relative, s.reason) for s in result.discarded] == [
        ("DCIM/100GOPRO/GX010001.LRV", "low-resolution copy the camera rebuilds")]


def test_longest_possible_name_and_deep_folders_are_handled(tmp_path):
    folder = tmp_path / "DCIM" / "100A"
    folder.mkdir(parents=True)
    long_name = "执" * 83 + ".JPG"  # 83 × 3 bytes + 4 = 253 bytes, near the 255-byte limit
    (folder / long_name).write_bytes(b"\xff\xd8\xff")
    deep = tmp_path
    for level in range(70):
        deep = deep / f"d{level}"
    deep.mkdir(parents=True)
    (deep.parent / "deep.mp4").write_bytes(b"x")  # level 69: still kept? no: beyond the walk, and reported
    result = scan_device(tmp_path, PROFILES["generic-dcim-camera"])
    assert [f.name for f in result.files] == [long_name]
    assert [(s.reason, s.unread) for s in result.skipped] == [("folder deeper than 64 levels not walked", True)]


def test_an_unreadable_file_with_a_litter_name_is_kept_not_discarded_as_litter():
    # A review's `._CLIP0002.MP4` that could not be read was left on the device as "macOS AppleDouble metadata"
    # with no error: what cannot be read might be a recording, so it is kept (its copy then says why it failed).
    # Root reads through file modes: the scan runs as `nobody` in a child process.
    import json
    import subprocess
    import sys
    import tempfile

    device = Path(tempfile.mkdtemp(prefix="litter-", dir="/tmp"))
    try:
        device.chmod(0o755)
        folder = device / "DCIM" / "100MEDIA"
        folder.mkdir(parents=True)
        for part in (device / "DCIM", folder):
            part.chmod(0o755)
        hidden = folder / "._CLIP0002.MP4"
        hidden.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
        hidden.chmod(0)
        (folder / "._NOTES").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # readable litter: still discarded
        (folder / "._NOTES").chmod(0o644)
        code = ("import json, sys; from pathlib import Path; from device_profiles import load_profiles; "
                "from ingest.scan import scan_device; r = scan_device(Path(sys.argv[1]), "
                "load_profiles()['generic-dcim-camera']); print(json.dumps([[f.relative for f in r.files], "
                "[d.relative for d in r.discarded]]))")
        repo = Path(__file__).resolve().parents[2]
        command = [sys.executable, "-c", code, str(device)]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=repo,
                              env={**os.environ, "PYTHONPATH": str(repo)})
        assert done.returncode == 0, done.stderr[-2000:]
        files, discarded = json.loads(done.stdout)
        assert "DCIM/100MEDIA/._CLIP0002.MP4" in files
        assert "DCIM/100MEDIA/._NOTES" in discarded
    finally:
        shutil.rmtree(device, ignore_errors=True)
