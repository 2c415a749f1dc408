from ingest.station.usb_identity import parse_mountinfo, usb_identity

MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "98 22 8:17 / /media/evidence/ZFY\\040DISK rw,nosuid,nodev shared:50 - vfat /dev/sdb1 ro,fmask=0022\n"
    "99 22 0:50 / /media/evidence/other rw - tmpfs tmpfs rw\n"
    "100 22 8:33 / /media/evidence/ZFY\\040DISK ro - exfat /dev/sdc1 ro\n"
)


def test_mount_source_is_read_from_mountinfo_with_escapes_and_the_last_mount_wins():
    assert parse_mountinfo(MOUNTINFO, "/media/evidence/ZFY DISK") == "/dev/sdc1"
    assert parse_mountinfo(MOUNTINFO, "/media/evidence/other") == "tmpfs"
    assert parse_mountinfo(MOUNTINFO, "/media/nothing") is None
    assert parse_mountinfo("garbage line\n", "/") is None


def test_a_plain_folder_has_no_usb_identity(tmp_path):
    assert usb_identity(tmp_path) is None
