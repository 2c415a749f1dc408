"""The copy pass's part checksums on S3: the upload sends them unhashed, the server checks every part, and
neither a changed staged copy nor a damaged checksum file can put wrong bytes in the store or fail good ones."""
from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.transfer import copy_and_hash
from storage import HashMismatch, S3WormStore
from storage.backends.s3_worm import SEND_BLOCK_BYTES
from storage.part_checksums import PartDigests, part_size_for, parts_path, read_parts

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
MIB = 1024 * 1024


def _staged(tmp_path: Path, store: S3WormStore, size: int) -> tuple[Path, str, bytes]:
    """A file copied off a "device" into staging by the real copy pass, with the store's part size."""
    device = tmp_path / "device.mp4"
    data = os.urandom(size)
    device.write_bytes(data)
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    copy = copy_and_hash(device, staging, part_name="k", part_bytes=store.part_bytes_for)
    return copy.destination, copy.sha256, data


def test_part_digests_split_at_part_boundaries_whatever_the_chunks():
    data = os.urandom(3 * MIB + 5)
    expected = tuple(hashlib.sha256(data[i:i + MIB]).hexdigest() for i in range(0, len(data), MIB))
    for step in (1000, MIB - 1, MIB, 2 * MIB + 3):
        parts = PartDigests(MIB)
        for i in range(0, len(data), step):
            parts.update(data[i:i + step])
        assert parts.finish() == expected


def test_part_size_rule_keeps_within_ten_thousand_parts():
    assert part_size_for(100 * MIB, 16 * MIB) == 16 * MIB
    assert part_size_for(10_000 * 16 * MIB + 1, 16 * MIB) > 16 * MIB
    assert -(-(10_000 * 16 * MIB + 1) // part_size_for(10_000 * 16 * MIB + 1, 16 * MIB)) <= 10_000


@pytest.mark.s3
def test_copy_pass_keeps_the_parts_the_upload_sends(s3_store, tmp_path):
    # Given a file copied with the S3 store's part size (13 MiB in 5 MiB parts)
    path, sha, data = _staged(tmp_path, s3_store, 13 * MIB + 17)
    # Then the copy kept each part's SHA-256 beside the staged copy
    kept = read_parts(path, part_bytes=5 * MIB, size_bytes=len(data))
    assert kept == tuple(hashlib.sha256(data[i:i + 5 * MIB]).hexdigest() for i in range(0, len(data), 5 * MIB))
    # When it is stored (consuming the staged copy)
    stored = s3_store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON, consume=True)
    # Then the object's checksum is made of those parts, and the checksum file went with the copy
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=stored.key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].endswith("-3")
    assert not path.exists() and not parts_path(path).exists()
    assert s3_store.verify(sha) == sha


@pytest.mark.s3
def test_staged_copy_changed_after_the_copy_is_refused_by_the_server(s3_store, tmp_path):
    # Given a staged copy whose bytes changed after the copy pass (a disk error, someone in staging)
    path, sha, data = _staged(tmp_path, s3_store, 11 * MIB)
    with path.open("r+b") as fh:
        fh.seek(6 * MIB)
        fh.write(b"\x00" * 16)
    # When it is stored
    with pytest.raises(HashMismatch) as caught:
        s3_store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON)
    # Then nothing is stored, no upload is left open, and the error names the staged file
    assert str(path) in str(caught.value)
    assert not s3_store.exists(sha)
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []


@pytest.mark.s3
def test_damaged_checksum_file_never_fails_good_bytes(s3_store, tmp_path, caplog):
    # Given a good staged copy whose checksum file was rewritten with wrong digests of the right shape
    path, sha, data = _staged(tmp_path, s3_store, 11 * MIB)
    kept = json.loads(parts_path(path).read_text())
    kept["sha256"] = [hashlib.sha256(d.encode()).hexdigest() for d in kept["sha256"]]
    parts_path(path).write_text(json.dumps(kept))
    # When it is stored
    stored = s3_store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON)
    # Then the server refused the false parts, the upload hashed them itself and stored the right bytes
    assert "uploading again with every part hashed now" in caplog.text
    assert stored.sha256 == sha and s3_store.verify(sha) == sha
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []


@pytest.mark.s3
def test_checksums_of_other_bytes_are_refused_and_replaced(s3_store, tmp_path):
    # Given the checksum file of one copy put beside another of the same size (a mix-up in staging)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _, _ = _staged(tmp_path / "a", s3_store, 9 * MIB)
    second, sha, data = _staged(tmp_path / "b", s3_store, 9 * MIB)
    parts_path(second).write_bytes(parts_path(first).read_bytes())
    # When the second is stored
    s3_store.put_file(second, sha256=sha, size_bytes=len(data), retain_until=SOON)
    # Then its own bytes are what the store holds
    assert s3_store.verify(sha) == sha


@pytest.mark.s3
def test_inline_readback_reads_the_object_back_before_returning(s3_store, tmp_path):
    inline = S3WormStore(client=s3_store.client, bucket=s3_store.bucket, multipart_threshold_bytes=8 * MIB,
                         part_size_bytes=5 * MIB, max_concurrency=3, readback="inline")
    path, sha, data = _staged(tmp_path, inline, 9 * MIB)
    assert inline.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON).verified
    with pytest.raises(ValueError, match="readback"):
        S3WormStore(client=s3_store.client, bucket=s3_store.bucket, readback="later")


@pytest.mark.s3
def test_a_staged_copy_that_grew_after_the_copy_is_named_and_never_stored(s3_store, tmp_path):
    # Given a staged copy with more bytes appended after its copy (and its part checksums) were made
    path, sha, data = _staged(tmp_path, s3_store, 11 * MIB)
    with path.open("ab") as fh:
        fh.write(os.urandom(6 * MIB))
    # When it is stored under the size and hash taken at copy time
    with pytest.raises(HashMismatch) as caught:
        s3_store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON)
    # Then the damage is named, nothing is stored and no upload is left open
    assert str(path) in str(caught.value)
    assert not s3_store.exists(sha)
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []


@pytest.mark.s3
def test_one_put_sends_the_whole_file_in_blocks_and_the_server_checks_its_sha256(s3_store, tmp_path):
    # Given a staged copy under the multipart threshold, several send blocks long and not a whole number of them
    size = 3 * SEND_BLOCK_BYTES + 12_345
    assert size < s3_store.multipart_threshold_bytes
    path, sha, data = _staged(tmp_path, s3_store, size)
    assert not parts_path(path).exists()  # one PUT: no parts to hash in the copy pass
    # When it is stored
    stored = s3_store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON, consume=True)
    # Then the server holds every byte, and the checksum it computed itself is the recording's own SHA-256
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=stored.key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(sha)).decode()
    assert head["ContentLength"] == size and head["ObjectLockMode"] == "COMPLIANCE"
    with s3_store.open(sha) as body:
        assert body.read() == data


@pytest.mark.s3
@pytest.mark.parametrize("damage", ["changed", "grew", "shrank"])
def test_one_put_of_a_staged_copy_damaged_after_the_copy_stores_nothing(s3_store, tmp_path, damage):
    # Given a staged copy (one PUT) whose bytes changed, grew or shrank after its SHA-256 was taken
    path, sha, data = _staged(tmp_path, s3_store, 2 * SEND_BLOCK_BYTES + 99)
    with path.open("r+b") as fh:
        if damage == "changed":
            fh.seek(SEND_BLOCK_BYTES + 5)
            fh.write(b"\xff" * 8)
        elif damage == "grew":
            fh.seek(0, os.SEEK_END)
            fh.write(os.urandom(SEND_BLOCK_BYTES))
        else:
            fh.truncate(SEND_BLOCK_BYTES)
    # When it is stored under the hash and size taken at copy time
    with pytest.raises(HashMismatch) as caught:
        s3_store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON, consume=True)
    # Then the damage is named, the store holds nothing under the hash and the staged copy is kept
    assert str(path) in str(caught.value) or s3_store.bucket in str(caught.value)
    assert not s3_store.exists(sha)
    assert path.exists()


def test_a_file_too_large_for_one_put_goes_in_parts_whatever_the_threshold():
    # A threshold set above S3's 5 GiB limit of one PUT (EVIDENCE_S3_MULTIPART_THRESHOLD_MB=10000)
    store = S3WormStore(connect=lambda: None, bucket="b", multipart_threshold_bytes=10_000 * MIB,
                        part_size_bytes=16 * MIB)
    assert store.part_bytes_for(5 * 1024 * MIB - 1) is None  # one PUT: under S3's limit
    assert store.part_bytes_for(5 * 1024 * MIB) == 16 * MIB  # S3 would refuse it in one PUT
    assert store.part_bytes_for(8 * 1024 * MIB) == 16 * MIB
