import os
import shutil

from device_profiles import IdentityRule, load_profiles
from ingest.identity import parse_identity, read_identity
from ingest.samples import HOSTILE_NAME
from ingest.scan import scan_device

PROFILES = load_profiles()
GBK_RULE = PROFILES["cn-enforcement-recorder"].identity


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
    assert broken.serial is None and broken.problem.startswith("identity file is not valid JSON")


def test_identity_file_is_found_case_insensitively(tmp_path):
    (tmp_path / "zfyinfo.txt").write_bytes("产品序号=B765432\n".encode("gbk"))
    assert read_identity(tmp_path, GBK_RULE).serial == "B765432"
    assert read_identity(tmp_path / "nowhere", GBK_RULE).problem.startswith("device root unreadable")


def test_scan_lists_recordings_and_explains_every_skip(samples):
    result = scan_device(samples.cn_recorder, PROFILES["cn-enforcement-recorder"])
    names = [f.relative for f in result.files]
    assert len(names) == 10
    assert "RECORD/20261120/ZFY_A123456_010203_20261120_083500_IMP.mp4" in names
    assert "ZFYINFO.TXT" not in names
    skipped = {s.relative: s.reason for s in result.skipped}
    assert skipped["RECORD/20261120/ZFY_A123456_010203_20261120_092000.mp4"] == \
        "symbolic link to '/etc/passwd' not followed"
    assert skipped["RECORD/20261120/notes.txt"] == "not a recording for profile 'cn-enforcement-recorder'"
    hostile = next(f for f in result.files if f.name.startswith(".."))
    assert hostile.name == "..\\x0a;rm -rf ~;$(reboot) \\xff\\xfe.mp4"
    assert os.fsencode(hostile.path).endswith(HOSTILE_NAME)
    assert "name is not valid UTF-8" in hostile.warnings


def test_scan_hides_sidecars_and_thumbnails(samples):
    side = scan_device(samples.sidecar_recorder, PROFILES["gps-sidecar-recorder"])
    assert [f.relative for f in side.files] == ["CLIPS/CLIP0001.mp4", "CLIPS/CLIP0002.wav", "CLIPS/CLIP0003.mp4"]
    assert side.skipped == []
    cam = scan_device(samples.dcim_camera, PROFILES["generic-dcim-camera"])
    assert [f.name for f in cam.files] == ["IMG_0001.JPG", "IMG_0002.JPG", "IMG_0004.JPG", "MVI_0003.MP4"]
    assert cam.skipped == []


def test_scan_skips_operating_system_litter_and_special_files(tmp_path):
    (tmp_path / "DCIM" / "100A").mkdir(parents=True)
    shutil.copyfile(__file__, tmp_path / "DCIM" / "100A" / "A.JPG")
    (tmp_path / "System Volume Information").mkdir()
    (tmp_path / "System Volume Information" / "IndexerVolumeGuid").write_bytes(b"x")
    (tmp_path / "DCIM" / "100A" / "._A.JPG").write_bytes(b"x")
    os.mkfifo(tmp_path / "DCIM" / "100A" / "B.JPG")
    result = scan_device(tmp_path, PROFILES["generic-dcim-camera"])
    assert [f.name for f in result.files] == ["A.JPG"]
    assert [(s.relative, s.reason) for s in result.skipped] == [("DCIM/100A/B.JPG", "not a regular file")]


def test_longest_possible_name_and_deep_folders_are_handled(tmp_path):
    folder = tmp_path / "DCIM" / "100A"
    folder.mkdir(parents=True)
    long_name = "执" * 83 + ".JPG"  # 83 × 3 bytes + 4 = 253 bytes, near the 255-byte limit
    (folder / long_name).write_bytes(b"\xff\xd8\xff")
    deep = tmp_path
    for level in range(20):
        deep = deep / f"d{level}"
    deep.mkdir(parents=True)
    result = scan_device(tmp_path, PROFILES["generic-dcim-camera"])
    assert [f.name for f in result.files] == [long_name]
    assert any(s.reason == "folder deeper than 16 levels not walked" for s in result.skipped)
