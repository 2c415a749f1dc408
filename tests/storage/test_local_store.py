import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import HashMismatch, LocalStore, ObjectLocked, ObjectMissing, RetentionRefused, object_key

UNTIL = datetime(2027, 5, 20, tzinfo=UTC)


def _file(tmp_path: Path, data: bytes, name: str = "f.bin") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "worm")


def test_put_stores_read_only_content_addressed_object(local, tmp_path):
    path, sha = _file(tmp_path, b"evidence")
    obj = local.put_file(path, sha256=sha, size_bytes=8, retain_until=UNTIL, consume=True)
    stored = local.root / "objects" / object_key(sha)
    assert obj.key == f"sha256/{sha[:2]}/{sha[2:4]}/{sha}"
    assert stored.read_bytes() == b"evidence"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o444
    assert not path.exists()  # consumed
    assert (obj.retain_until, obj.legal_hold, obj.size_bytes) == (UNTIL, False, 8)


def test_copying_put_verifies_the_hash_and_keeps_the_source(local, tmp_path):
    path, sha = _file(tmp_path, b"abc")
    local.put_file(path, sha256=sha, size_bytes=3, retain_until=UNTIL)
    assert path.read_bytes() == b"abc"
    wrong = "0" * 64
    with pytest.raises(HashMismatch) as info:
        local.put_file(path, sha256=wrong, size_bytes=3, retain_until=UNTIL)
    assert (info.value.expected, info.value.found) == (wrong, sha)
    assert not local.exists(wrong)


@pytest.mark.parametrize("many", [False, True], ids=["put_file", "put_files"])
def test_a_staged_copy_longer_than_what_was_hashed_is_refused_and_kept(local, tmp_path, many):
    # a staged copy a second writer appended to after the first hashed its 3 bytes (two runs of one device)
    path, sha = _file(tmp_path, b"abc")
    with path.open("ab") as more:
        more.write(b"appended by another run")
    other, other_sha = _file(tmp_path, b"a file beside it", "g.bin")
    if many:
        outcomes = local.put_files([(path, sha, 3, UNTIL), (other, other_sha, 16, UNTIL)], consume=True)
        error = outcomes[0]
        assert not isinstance(outcomes[1], Exception) and local.exists(other_sha)  # the rest go on
    else:
        with pytest.raises(HashMismatch) as info:
            local.put_file(path, sha256=sha, size_bytes=3, retain_until=UNTIL, consume=True)
        error = info.value
    assert isinstance(error, HashMismatch) and str(path) in str(error)
    assert "(3 bytes)" in error.expected and "a file of 26 bytes" in error.found
    assert not local.exists(sha)
    assert path.read_bytes() == b"abcappended by another run"  # kept for whoever looks into it


def test_same_bytes_twice_keep_one_object_and_the_longer_retention(local, tmp_path):
    path, sha = _file(tmp_path, b"same")
    local.put_file(path, sha256=sha, size_bytes=4, retain_until=UNTIL)
    later = UNTIL + timedelta(days=30)
    obj = local.put_file(path, sha256=sha, size_bytes=4, retain_until=later)
    assert obj.retain_until == later
    shorter = local.put_file(path, sha256=sha, size_bytes=4, retain_until=UNTIL - timedelta(days=1))
    assert shorter.retain_until == later


def test_delete_inside_retention_is_refused(local, tmp_path):
    path, sha = _file(tmp_path, b"keep me")
    local.put_file(path, sha256=sha, size_bytes=7, retain_until=UNTIL)
    with pytest.raises(ObjectLocked) as info:
        local.delete(sha, now=UNTIL - timedelta(seconds=1))
    assert str(info.value) == f"cannot delete object {object_key(sha)!r}: it is retained until 2027-05-20T00:00:00Z"
    assert local.exists(sha)


def test_delete_after_retention_removes_the_object(local, tmp_path):
    path, sha = _file(tmp_path, b"old")
    local.put_file(path, sha256=sha, size_bytes=3, retain_until=UNTIL)
    local.delete(sha, now=UNTIL)
    assert not local.exists(sha)
    with pytest.raises(ObjectMissing):
        local.head(sha)


def test_legal_hold_blocks_delete_even_after_retention(local, tmp_path):
    path, sha = _file(tmp_path, b"held")
    local.put_file(path, sha256=sha, size_bytes=4, retain_until=UNTIL)
    local.set_legal_hold(sha, True)
    with pytest.raises(ObjectLocked, match="it is under legal hold"):
        local.delete(sha, now=UNTIL + timedelta(days=999))
    local.set_legal_hold(sha, False)
    local.delete(sha, now=UNTIL + timedelta(days=999))


def test_retention_extends_but_never_shortens(local, tmp_path):
    path, sha = _file(tmp_path, b"grow")
    local.put_file(path, sha256=sha, size_bytes=4, retain_until=UNTIL)
    assert local.extend_retention(sha, UNTIL + timedelta(days=1)).retain_until == UNTIL + timedelta(days=1)
    with pytest.raises(RetentionRefused):
        local.extend_retention(sha, UNTIL)
    assert local.head(sha).retain_until == UNTIL + timedelta(days=1)


def test_verify_detects_a_flipped_byte(local, tmp_path):
    path, sha = _file(tmp_path, b"original bytes")
    local.put_file(path, sha256=sha, size_bytes=14, retain_until=UNTIL)
    assert local.verify(sha) == sha
    stored = local.root / "objects" / object_key(sha)
    stored.chmod(0o644)  # an attacker with filesystem access
    stored.write_bytes(b"Original bytes")
    with pytest.raises(HashMismatch) as info:
        local.verify(sha)
    assert info.value.expected == sha
    assert info.value.found == hashlib.sha256(b"Original bytes").hexdigest()
    assert str(info.value).startswith(f"sha256 mismatch for {object_key(sha)}: expected=")


def test_object_key_rejects_non_hashes():
    with pytest.raises(ValueError, match="not a lower-case hex SHA-256"):
        object_key("../../etc/passwd")


def test_a_consumed_file_keeps_its_name_until_the_store_has_given_it_one(local, tmp_path):
    # A redelivered archive message looks for the bytes in staging or in the store: at no moment may they be in
    # neither (a put that unlinked its source before linking the object made a second worker give up on them).
    import threading

    files = [_file(tmp_path, f"clip {n}".encode(), f"staged-{n}") for n in range(40)]
    gaps: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for path, sha in files:
                if not path.exists() and not local.exists(sha):
                    gaps.append(path.name)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for path, sha in files:
            local.put_file(path, sha256=sha, size_bytes=path.stat().st_size, retain_until=UNTIL, consume=True)
    finally:
        done.set()
        watcher.join()
    assert gaps == []
    assert all(local.exists(sha) and not path.exists() for path, sha in files)
