"""Structural checks on real files made by ffmpeg, then broken on purpose."""
from pathlib import Path

import pytest

from ingest.describe.structure import check_structure, sniff_format
from ingest.samples import make_amr, make_clip, make_photo, make_wav

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def _cut(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_whole_files_have_no_problem(tmp_path):
    for path, fmt in [(make_clip(tmp_path / "a.mp4"), "mp4"), (make_wav(tmp_path / "a.wav"), "wav"),
                      (make_photo(tmp_path / "a.jpg"), "jpeg"), (make_amr(tmp_path / "a.amr"), "amr")]:
        assert check_structure(path).format == fmt
        assert check_structure(path).problem is None, path


def test_clip_cut_before_its_index_is_damaged(tmp_path):
    clip = _cut(make_clip(tmp_path / "a.mp4", seconds=3), 0.6)
    problem = check_structure(clip).problem
    assert problem is not None and problem.startswith("box 'mdat' at offset ")
    assert problem.endswith("(file truncated)")


def test_clip_whose_header_promises_more_bytes_than_exist(tmp_path):
    clip = _cut(make_clip(tmp_path / "a.mp4", seconds=3, faststart=True), 0.8)
    problem = check_structure(clip).problem
    assert problem is not None
    assert "box 'mdat'" in problem
    assert "declares" in problem


def test_clip_without_index_box(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", faststart=True)
    data = clip.read_bytes()
    moov = data.index(b"moov") - 4
    size = int.from_bytes(data[moov:moov + 4], "big")
    clip.write_bytes(data[:moov] + b"\x00\x00\x00\x08free" + data[moov + size:])
    assert check_structure(clip).problem == (
        "no 'moov' index box: the recording was not finalised (truncated or still recording)")


def test_truncated_wav_names_the_declared_and_real_size(tmp_path):
    wav = make_wav(tmp_path / "a.wav", seconds=1)
    full = wav.stat().st_size
    _cut(wav, 0.5)
    assert check_structure(wav).problem == (
        f"RIFF header declares {full} bytes but the file has {int(full * 0.5)} (truncated)")


def test_truncated_jpeg_misses_its_end_marker(tmp_path):
    jpg = _cut(make_photo(tmp_path / "a.jpg"), 0.5)
    assert check_structure(jpg).problem == "JPEG end-of-image marker missing (truncated)"


def test_empty_and_unknown_files(tmp_path):
    (tmp_path / "e.mp4").write_bytes(b"")
    (tmp_path / "u.mp4").write_bytes(b"hello world, not media")
    assert check_structure(tmp_path / "e.mp4").problem == "empty file (0 bytes)"
    assert check_structure(tmp_path / "u.mp4").format == "unknown"


def test_sniffing_names_containers():
    assert sniff_format(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff_format(b"#!AMR-WB\n") == "amr"
    assert sniff_format(b"\x1a\x45\xdf\xa3") == "matroska"


def test_a_movie_with_more_top_level_boxes_than_are_walked_is_not_called_unfinalised(tmp_path):
    # Given a fragmented-looking file: ftyp, then more 'free' boxes than the walk looks at, then moov
    from ingest.describe.bmff import MAX_BOXES

    ftyp = b"\x00\x00\x00\x10ftypisom\x00\x00\x02\x00"
    movie = tmp_path / "many.mp4"
    movie.write_bytes(ftyp + b"\x00\x00\x00\x08free" * MAX_BOXES + b"\x00\x00\x00\x08moov")
    # When it is checked, Then nothing is called missing: the walk says where it stopped
    structure = check_structure(movie)
    assert (structure.format, structure.brand, structure.problem) == ("mp4", "isom", None)
    assert structure.note == (f"more than {MAX_BOXES} top-level boxes: the walk stopped at offset "
                              f"{16 + 8 * (MAX_BOXES - 1)}")


def test_a_trailer_that_only_looks_like_insta360s_is_still_damage(tmp_path):
    # an Insta360 footer whose trailer size is larger than the file: not a trailer, so the boxes must end the file
    clip = make_clip(tmp_path / "a.mp4")
    size = clip.stat().st_size
    clip.write_bytes(clip.read_bytes() + b"\x01" * 36 + b"\xff\xff\xff\x7f" + b"8db42d694ccc418790edff439fe026bf")
    assert check_structure(clip).problem == (
        f"box '\\x01\\x01\\x01\\x01' at offset {size} declares 16843009 bytes but only 72 remain (file truncated)")
