from ingest.names import display_name, glob_regex, matches_any, name_warnings


def test_display_name_escapes_control_characters_and_bad_bytes():
    assert display_name(b"a\nb\x00c\xff.mp4") == "a\\x0ab\\x00c\\xff.mp4"
    assert display_name("执法.mp4".encode()) == "执法.mp4"


def test_display_name_truncates_very_long_names_and_keeps_them_apart():
    shown = display_name(b"x" * 5000)
    assert len(shown) == 1024 and shown[:1006] == "x" * 1006 and shown[1006:1008] == "…#"
    assert display_name(b"x" * 4999 + b"y") != shown  # the same first 1,006 characters, another name


def test_two_different_names_never_show_as_one():
    # the byte 0xFF and the four characters "\xff"; a control character and its escape; a backslash
    pairs = [(b"\xff_CLIP.mp4", b"\\xff_CLIP.mp4"), (b"a\nb", b"a\\x0ab"), (b"a\\b", b"a\\\\b")]
    for one, other in pairs:
        assert display_name(one) != display_name(other), (one, other)
    assert display_name(b"a\\b") == "a\\\\b"


def test_hostile_names_are_described():
    assert name_warnings(b"ok.mp4") == []
    warnings = name_warnings(b"-..\n\xff" + b"a" * 300)
    assert warnings == ["name is not valid UTF-8", "name contains control characters", "name starts with '-'",
                        "name is 305 bytes long (over 255)"]
    assert "name refers to a parent folder" in name_warnings(b"..")
    assert "name contains a path separator" in name_warnings(b"../etc/passwd")


def test_globs_are_case_insensitive_and_double_star_spans_folders():
    assert glob_regex("**/*.mp4").fullmatch("RECORD/20261120/A.MP4")
    assert glob_regex("**/*.mp4").fullmatch("a.mp4")
    assert not glob_regex("DCIM/*/*.jpg").fullmatch("DCIM/a/b/c.jpg")
    assert glob_regex("DCIM/*/*.jpg").fullmatch("dcim/100EVCAM/IMG_0001.JPG")
    assert matches_any("x/.DS_Store", ("**/.DS_Store",))
    assert not matches_any("x.mp4", ("*.jpg", "*.wav"))
