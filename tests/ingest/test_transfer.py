import errno
import hashlib
import os
from pathlib import Path

import pytest

from ingest.errors import CopyFailed
from ingest.transfer import CHUNK_BYTES, MATCH_EDGE_BYTES, copy_and_hash, device_file_matches, hash_device_file


def _source(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "src.bin"
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES, 2 * CHUNK_BYTES + 3, 9 * CHUNK_BYTES + 12345])
def test_copy_hashes_exactly_the_bytes_it_writes(tmp_path, size):
    src = _source(tmp_path, size)
    staging = tmp_path / "staging"
    staging.mkdir()
    result = copy_and_hash(src, staging, part_name="k")
    expected = hashlib.sha256(src.read_bytes()).hexdigest()
    assert (result.sha256, result.size_bytes, result.resumed_from) == (expected, size, 0)
    assert result.destination == staging / expected
    assert result.destination.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in staging.iterdir()) == [expected]  # no .part left behind


def test_progress_reports_every_byte(tmp_path):
    src = _source(tmp_path, 3 * CHUNK_BYTES + 7)
    staging = tmp_path / "staging"
    staging.mkdir()
    seen: list[int] = []
    copy_and_hash(src, staging, part_name="k", progress=seen.append)
    assert sum(seen) == 3 * CHUNK_BYTES + 7


def test_interrupted_copy_resumes_from_the_part_file(tmp_path):
    # Given a copy that stopped after 5 MiB (its .part is in staging)
    src = _source(tmp_path, 3 * CHUNK_BYTES)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "k.part").write_bytes(src.read_bytes()[: 5 * 1024 * 1024])
    # When the copy runs again
    result = copy_and_hash(src, staging, part_name="k")
    # Then it continues from the device where it stopped and the hash covers all bytes
    assert result.resumed_from == 5 * 1024 * 1024
    assert result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert result.destination.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("size", [1, CHUNK_BYTES, 3 * CHUNK_BYTES + 7, 9 * CHUNK_BYTES])
@pytest.mark.parametrize("part", [5 * 1024 * 1024, 6 * 1024 * 1024 + 1])
def test_part_checksums_are_taken_in_the_same_pass_and_kept_beside_the_copy(tmp_path, size, part):
    # Given a store that uploads in parts of *part* bytes (not a multiple of the copy's chunk, for one of them)
    from storage.part_checksums import read_parts

    src = _source(tmp_path, size)
    staging = tmp_path / "staging"
    staging.mkdir()
    # When the file is copied
    result = copy_and_hash(src, staging, part_name="k", part_bytes=lambda n: part)
    # Then every part's SHA-256 is the SHA-256 of exactly that slice, kept beside the staged copy for the upload
    data = src.read_bytes()
    expected = tuple(hashlib.sha256(data[i:i + part]).hexdigest() for i in range(0, len(data), part))
    assert result.part_sha256 == expected
    assert read_parts(result.destination, part_bytes=part, size_bytes=size) == expected
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_a_resumed_copy_takes_its_part_checksums_over_all_its_bytes(tmp_path):
    # Given a copy that stopped after 7 MiB (its .part is in staging), and 5 MiB parts
    src = _source(tmp_path, 3 * CHUNK_BYTES + 5)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "k.part").write_bytes(src.read_bytes()[: 7 * 1024 * 1024])
    # When it is resumed
    result = copy_and_hash(src, staging, part_name="k", part_bytes=lambda n: 5 * 1024 * 1024)
    # Then the part checksums cover the bytes taken from the earlier copy too
    data = src.read_bytes()
    assert result.resumed_from == 7 * 1024 * 1024
    assert result.part_sha256 == tuple(hashlib.sha256(data[i:i + 5 * 1024 * 1024]).hexdigest()
                                       for i in range(0, len(data), 5 * 1024 * 1024))


def test_no_part_checksums_for_a_store_that_takes_files_whole(tmp_path):
    from storage.part_checksums import parts_path

    src = _source(tmp_path, 2 * CHUNK_BYTES)
    staging = tmp_path / "staging"
    staging.mkdir()
    result = copy_and_hash(src, staging, part_name="k", part_bytes=lambda n: None)
    assert result.part_sha256 == () and not parts_path(result.destination).exists()


@pytest.mark.parametrize("differs_at", [0, 5 * 1024 * 1024 - 1, 2 * 1024 * 1024], ids=["first", "last", "middle"])
def test_a_part_the_device_no_longer_begins_with_is_never_spliced_onto_it(tmp_path, differs_at):
    # Given day 1's copy that stopped after 5 MiB, and on day 2 a recorder whose clock was reset wrote another
    # recording under the same name, size and time (the resume key sees the same file)
    src = _source(tmp_path, 3 * CHUNK_BYTES)
    staging = tmp_path / "staging"
    staging.mkdir()
    day_one = bytearray(src.read_bytes()[: 5 * 1024 * 1024])
    day_one[differs_at] ^= 0x01
    (staging / "k.part").write_bytes(day_one)
    # When the copy runs again
    result = copy_and_hash(src, staging, part_name="k")
    # Then day 2's recording is copied whole, from its first byte: no day-1 byte spliced in
    assert result.resumed_from == 0
    assert result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert result.destination.read_bytes() == src.read_bytes()


def test_part_file_longer_than_the_source_is_discarded(tmp_path):
    src = _source(tmp_path, 100)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "k.part").write_bytes(b"x" * 500)
    result = copy_and_hash(src, staging, part_name="k")
    assert result.resumed_from == 0 and result.destination.read_bytes() == src.read_bytes()


def test_missing_source_fails_with_the_file_and_reason(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(CopyFailed) as info:
        copy_and_hash(tmp_path / "gone.mp4", staging, part_name="k")
    assert info.value.source == str(tmp_path / "gone.mp4")
    assert info.value.reason == "No such file or directory"
    assert str(info.value).startswith(f"copy of '{tmp_path / 'gone.mp4'}' to ")


def test_unreadable_source_keeps_nothing_complete(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    folder = tmp_path / "a-folder.mp4"
    folder.mkdir()
    with pytest.raises(CopyFailed, match="not a regular file any more"):  # refused at its open, before any read
        copy_and_hash(folder, staging, part_name="k")
    assert [p.name for p in staging.iterdir() if not p.name.endswith(".part")] == []


def test_symlinked_source_is_refused(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (tmp_path / "link.mp4").symlink_to("/etc/hostname")
    with pytest.raises(CopyFailed, match="Too many levels of symbolic links"):
        copy_and_hash(tmp_path / "link.mp4", staging, part_name="k")


def test_same_bytes_copied_twice_leave_one_staged_file(tmp_path):
    src = _source(tmp_path, 1000)
    staging = tmp_path / "staging"
    staging.mkdir()
    first = copy_and_hash(src, staging, part_name="a")
    second = copy_and_hash(src, staging, part_name="b")
    assert first.destination == second.destination
    assert [p.name for p in staging.iterdir()] == [first.sha256]


def test_device_file_hash_is_the_copy_hash(tmp_path):
    src = _source(tmp_path, 2 * CHUNK_BYTES + 5)
    staging = tmp_path / "staging"
    staging.mkdir()
    assert hash_device_file(src) == copy_and_hash(src, staging, part_name="k").sha256


def test_device_file_hash_refuses_a_symbolic_link(tmp_path):
    (tmp_path / "link.mp4").symlink_to("/etc/hostname")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        hash_device_file(tmp_path / "link.mp4")


def _cached_bytes(path: Path) -> int:
    """Bytes of *path* in the page cache (util-linux fincore)."""
    import shutil
    import subprocess

    if shutil.which("fincore") is None:
        from tests.conftest import _missing

        _missing("fincore (util-linux) to read what a file keeps in the page cache")
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[0])


@pytest.mark.parametrize("resumed_mib", [0, 37])
def test_a_long_copy_never_keeps_more_than_two_windows_in_the_page_cache(tmp_path, resumed_mib):
    # Given a 192 MiB recording (a resumed copy appends after an earlier attempt's bytes)
    from ingest.transfer import WRITEBACK_BYTES

    size = 192 * 1024 * 1024
    src = _source(tmp_path, size)
    staging = tmp_path / "staging"
    staging.mkdir()
    if resumed_mib:
        (staging / "k.part").write_bytes(src.read_bytes()[: resumed_mib * 1024 * 1024])
    # When it is copied
    result = copy_and_hash(src, staging, part_name="k")
    # Then the copy's written-back windows were dropped as it went: what stays cached is at most the last
    # windows (two paced ones and the unpaced tail), not the whole file (a copy must not crowd out the
    # page cache of a station docking many devices)
    assert result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert _cached_bytes(result.destination) <= 3 * WRITEBACK_BYTES + resumed_mib * 1024 * 1024


def test_a_file_replaced_by_a_fifo_after_the_scan_fails_at_once_instead_of_hanging(tmp_path):
    # A review swapped a scanned file for a FIFO: the copy's open waited for a writer for ever and the run never
    # reached its stop check. Now the open does not block, and what is not a regular file is named and refused.
    import threading

    fifo = tmp_path / "CLIP0001.MP4"
    os.mkfifo(fifo)
    staging = tmp_path / "staging"
    staging.mkdir()
    outcome: list[BaseException] = []

    def copy() -> None:
        try:
            copy_and_hash(fifo, staging, part_name="k")
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=copy, daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # unblock the hung open before failing, so the test run can end
        with open(fifo, "wb"):
            pass
        pytest.fail("the copy of a FIFO hung in its open")
    assert len(outcome) == 1 and isinstance(outcome[0], CopyFailed)
    assert "not a regular file any more" in str(outcome[0]) and str(fifo) in str(outcome[0])
    assert not list(staging.iterdir())


def _pair(tmp_path: Path, size: int) -> tuple[Path, Path]:
    device = _source(tmp_path, size)
    staged = tmp_path / "staged"
    staged.write_bytes(device.read_bytes())
    return device, staged


def _flip(path: Path, at: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("where", ["start", "end", "last byte", "middle probe"])
def test_another_recording_under_a_journaled_copy_s_name_size_and_time_is_told_apart(tmp_path, where):
    size = 9 * 1024 * 1024 + 5
    device, staged = _pair(tmp_path, size)
    assert device_file_matches(device, staged)
    at = {"start": 100, "end": size - MATCH_EDGE_BYTES + 7, "last byte": size - 1,
          "middle probe": MATCH_EDGE_BYTES + (size - 2 * MATCH_EDGE_BYTES) // 17 * 8 + 3}[where]
    _flip(device, at)
    assert not device_file_matches(device, staged)
    assert not device_file_matches(device, staged, every_byte=True)


def test_a_sample_is_a_sample_every_byte_is_proof(tmp_path):
    """A change between the sampled slices passes the cheap look (documented: it tells recordings apart, it does
    not prove bytes); the full comparison, used where the file's time is no evidence, finds it."""
    size = 9 * 1024 * 1024
    device, staged = _pair(tmp_path, size)
    _flip(device, MATCH_EDGE_BYTES + 70_000)  # after the first MiB, before the first probe slice
    assert device_file_matches(device, staged)
    assert not device_file_matches(device, staged, every_byte=True)


def test_a_size_difference_or_a_small_file_s_one_byte_is_enough(tmp_path):
    device, staged = _pair(tmp_path, 1000)
    assert device_file_matches(device, staged) and device_file_matches(device, staged, every_byte=True)
    _flip(device, 500)
    assert not device_file_matches(device, staged)
    device.write_bytes(staged.read_bytes() + b"x")
    assert not device_file_matches(device, staged)


def test_a_device_file_that_is_not_a_regular_file_cannot_be_compared(tmp_path):
    device, staged = _pair(tmp_path, 1000)
    device.unlink()
    os.mkfifo(device)
    with pytest.raises(OSError, match="not a regular file"):
        device_file_matches(device, staged)


def test_a_copy_made_without_fsync_says_so_and_fsyncs_nothing(tmp_path, monkeypatch):
    # A dock syncs its small copies a batch at a time (ingest.staging_sync): the copy itself must not fsync.
    from tests.helpers.fsyncs import spy_fsyncs

    src = _source(tmp_path, 40_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    synced = spy_fsyncs(monkeypatch)
    result = copy_and_hash(src, staging, part_name="k", durable=False)
    assert synced == [] and result.durable is False
    assert result.destination.read_bytes() == src.read_bytes()
    assert copy_and_hash(src, staging, part_name="k2").durable is True and synced  # the default fsyncs


@pytest.mark.parametrize("left", [b"", b"\0" * 40_000, b"other bytes"])
def test_a_staged_name_a_power_cut_left_without_its_bytes_is_replaced_by_the_next_copy(tmp_path, left):
    # A copy named in staging but never synced, then a power cut: the name may hold nothing, zeros or stale bytes.
    # The next copy of the same file must not be dropped as a duplicate of it (the store links staged files in
    # without reading them again).
    src = _source(tmp_path, 40_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    expected = hashlib.sha256(src.read_bytes()).hexdigest()
    (staging / expected).write_bytes(left)
    result = copy_and_hash(src, staging, part_name="k", durable=False)
    assert result.destination == staging / expected
    assert result.destination.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in staging.iterdir()) == [expected]


def test_a_staged_name_already_there_is_taken_by_this_copy_made_durable(tmp_path, monkeypatch):
    # The same bytes staged before (another file of the device, another dock, a run killed after its copy): this
    # copy never vouches for that file (its writer's write-back error would be reported to that writer, not here;
    # found by a review). It fsyncs its own bytes and takes the name; the result names the file it left there, so a
    # later failure of the other copy cannot remove it.
    from tests.helpers.fsyncs import spy_fsyncs

    src = _source(tmp_path, 40_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    expected = hashlib.sha256(src.read_bytes()).hexdigest()
    (staging / expected).write_bytes(src.read_bytes())
    before = (staging / expected).stat().st_ino
    synced = spy_fsyncs(monkeypatch)
    result = copy_and_hash(src, staging, part_name="k", durable=False)
    after = (staging / expected).stat()
    assert result.durable is True and after.st_ino != before and result.inode == (after.st_dev, after.st_ino)
    assert any(path.endswith("k.part") for path in synced) and str(staging) in synced
    assert sorted(p.name for p in staging.iterdir()) == [expected]
    assert (staging / expected).read_bytes() == src.read_bytes()


def test_the_copy_names_the_file_it_wrote_even_when_another_dock_takes_the_name_at_once(tmp_path, monkeypatch):
    # Another dock staging the same bytes renames its own copy onto the name the moment this copy linked it: the
    # result still names the file this copy wrote (a later failure of this copy then leaves the other's file alone;
    # found by a review: the identity was read from the name, after the link).
    src = _source(tmp_path, 40_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    real_link = os.link
    written: list[tuple[int, int]] = []

    def link_then_taken_over(part, final, *args, **kwargs):
        real_link(part, final, *args, **kwargs)
        mine = os.stat(final)
        written.append((mine.st_dev, mine.st_ino))
        other = Path(f"{final}.other-dock")
        other.write_bytes(Path(final).read_bytes())
        os.replace(other, final)

    monkeypatch.setattr(os, "link", link_then_taken_over)
    result = copy_and_hash(src, staging, part_name="k", durable=False)
    theirs = result.destination.stat()
    assert written and result.inode == written[0] and result.inode != (theirs.st_dev, theirs.st_ino)


def test_a_resumed_copy_is_fsynced_even_when_the_caller_syncs_later(tmp_path, monkeypatch):
    # The .part holds an earlier run's bytes, written before this run's sync could see their write-back errors.
    from tests.helpers.fsyncs import spy_fsyncs

    src = _source(tmp_path, 3 * CHUNK_BYTES)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "k.part").write_bytes(src.read_bytes()[:CHUNK_BYTES])
    synced = spy_fsyncs(monkeypatch)
    result = copy_and_hash(src, staging, part_name="k", durable=False)
    assert result.resumed_from == CHUNK_BYTES and result.durable is True
    assert str(staging) in synced and any(path.endswith(".part") for path in synced)


def test_a_staged_name_that_cannot_be_replaced_fails_the_copy_not_the_dock(tmp_path, monkeypatch):
    src = _source(tmp_path, 40_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / hashlib.sha256(src.read_bytes()).hexdigest()).write_bytes(b"stale")

    def refusing(*_args, **_kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", refusing)
    with pytest.raises(CopyFailed) as caught:
        copy_and_hash(src, staging, part_name="k", durable=False)
    assert caught.value.reason == "Read-only file system"
