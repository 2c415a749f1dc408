"""One WORM contract, run against the local store and a real S3 Object Lock server (SeaweedFS)."""
from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import HashMismatch, ObjectExists, ObjectLocked, ObjectMissing, RetentionRefused, S3WormStore

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)


def _file(tmp_path: Path, data: bytes, name: str = "rec.bin") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_put_then_read_back_the_same_bytes(worm_store, tmp_path):
    path, sha = _file(tmp_path, os.urandom(1000))
    stored = worm_store.put_file(path, sha256=sha, size_bytes=1000, retain_until=SOON)
    assert (stored.sha256, stored.size_bytes, stored.retain_until, stored.legal_hold) == (sha, 1000, SOON, False)
    with worm_store.open(sha) as fh:
        assert fh.read() == path.read_bytes()
    assert worm_store.exists(sha) and worm_store.verify(sha) == sha
    assert worm_store.head(sha).retain_until == SOON


def test_consumed_file_leaves_staging(worm_store, tmp_path):
    path, sha = _file(tmp_path, b"staged copy")
    worm_store.put_file(path, sha256=sha, size_bytes=11, retain_until=SOON, consume=True)
    assert not path.exists() and worm_store.exists(sha)


def test_overwrite_is_refused_the_first_bytes_stay(worm_store, tmp_path):
    first, sha = _file(tmp_path, b"the original recording", "a")
    worm_store.put_file(first, sha256=sha, size_bytes=22, retain_until=SOON)
    forged, _ = _file(tmp_path, b"a forged recording....", "b")
    worm_store.put_file(forged, sha256=sha, size_bytes=22, retain_until=SOON)  # lies about its hash
    with worm_store.open(sha) as fh:
        assert fh.read() == b"the original recording"
    if isinstance(worm_store, S3WormStore):
        assert worm_store.version_count(sha) == 1


def test_wrong_checksum_is_rejected_and_nothing_is_stored(worm_store, tmp_path):
    path, _ = _file(tmp_path, b"bytes that do not hash to the claim")
    claimed = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(HashMismatch) as info:
        worm_store.put_file(path, sha256=claimed, size_bytes=35, retain_until=SOON)
    assert info.value.expected == claimed
    assert not worm_store.exists(claimed)


def test_delete_within_retention_is_refused(worm_store, tmp_path):
    path, sha = _file(tmp_path, b"keep")
    worm_store.put_file(path, sha256=sha, size_bytes=4, retain_until=SOON)
    with pytest.raises(ObjectLocked, match="it is retained until"):
        worm_store.delete(sha, now=datetime.now(UTC))
    assert worm_store.exists(sha)


def test_retention_can_be_extended_never_shortened(worm_store, tmp_path):
    path, sha = _file(tmp_path, b"grow only")
    worm_store.put_file(path, sha256=sha, size_bytes=9, retain_until=SOON)
    later = SOON + timedelta(days=30)
    assert worm_store.extend_retention(sha, later).retain_until == later
    with pytest.raises(RetentionRefused, match="can only be extended"):
        worm_store.extend_retention(sha, SOON)
    assert worm_store.head(sha).retain_until == later


def test_legal_hold_blocks_delete(worm_store, tmp_path):
    path, sha = _file(tmp_path, b"held for court")
    worm_store.put_file(path, sha256=sha, size_bytes=14, retain_until=SOON)
    assert worm_store.set_legal_hold(sha, True).legal_hold is True
    with pytest.raises(ObjectLocked, match="under legal hold"):
        worm_store.delete(sha, now=SOON + timedelta(days=365))
    assert worm_store.set_legal_hold(sha, False).legal_hold is False


def test_missing_object(worm_store):
    sha = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ObjectMissing):
        worm_store.head(sha)
    assert not worm_store.exists(sha)


@pytest.mark.s3
def test_multipart_upload_is_locked_and_checksummed(s3_store, tmp_path):
    # Given a file above the multipart threshold (8 MiB) with 5 MiB parts
    data = os.urandom(13 * 1024 * 1024 + 17)
    path, sha = _file(tmp_path, data)
    # When it is stored
    stored = s3_store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON)
    # Then it is under COMPLIANCE retention, every part checked by the server, and reads back identical (the
    # full read-back is the verify queue's by default: not `verified` yet)
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=stored.key, ChecksumMode="ENABLED")
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ChecksumSHA256"].endswith("-3")
    assert not stored.verified and stored.retain_until == SOON and stored.version_id
    assert s3_store.verify(sha) == sha
    assert s3_store.read_range(sha, 5 * 1024 * 1024, 5 * 1024 * 1024 + 9) == data[5 * 1024 * 1024:5 * 1024 * 1024 + 10]
    with pytest.raises(ObjectLocked):
        s3_store.delete(sha, now=datetime.now(UTC))


@pytest.mark.s3
def test_multipart_with_a_false_hash_is_aborted(s3_store, tmp_path):
    path, _ = _file(tmp_path, os.urandom(9 * 1024 * 1024))
    claimed = "ab" * 32
    with pytest.raises(HashMismatch):
        s3_store.put_file(path, sha256=claimed, size_bytes=9 * 1024 * 1024, retain_until=SOON)
    assert not s3_store.exists(claimed)
    uploads = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket)
    assert uploads.get("Uploads", []) == []


@pytest.mark.s3
def test_server_refuses_to_shorten_or_delete_even_when_asked_directly(s3_store, tmp_path):
    path, sha = _file(tmp_path, b"compliance mode")
    stored = s3_store.put_file(path, sha256=sha, size_bytes=15, retain_until=SOON)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        s3_store.client.put_object_retention(
            Bucket=s3_store.bucket, Key=stored.key, VersionId=stored.version_id,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": SOON - timedelta(days=1)})
    with pytest.raises(ClientError):
        s3_store.client.delete_object(Bucket=s3_store.bucket, Key=stored.key, VersionId=stored.version_id)
    assert s3_store.verify(sha) == sha


@pytest.mark.s3
def test_tampering_through_a_new_version_is_detected(s3_store, tmp_path):
    path, sha = _file(tmp_path, b"what the camera saw")
    s3_store.put_file(path, sha256=sha, size_bytes=19, retain_until=SOON)
    # Someone with write access bypasses the application and uploads other bytes under the same key.
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=s3_store.head(sha).key, Body=b"what they wanted seen")
    with pytest.raises(HashMismatch) as info:
        s3_store.verify(sha)
    assert info.value.found == hashlib.sha256(b"what they wanted seen").hexdigest()
    assert s3_store.version_count(sha) == 2  # the original version is still there, locked


@pytest.mark.s3
def test_bucket_without_object_lock_is_refused(s3_server):
    from storage import BucketNotWorm
    from tests.conftest import make_bucket

    client, bucket = make_bucket(s3_server, object_lock=False)
    with pytest.raises(BucketNotWorm) as info:
        S3WormStore(client=client, bucket=bucket).check_bucket()
    assert str(info.value).startswith(f"bucket {bucket!r} cannot hold evidence: ")


@pytest.mark.s3
def test_unreachable_server_is_a_transient_error(tmp_path):
    from storage import BackendUnavailable, make_s3_client

    client = make_s3_client(endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b")
    store = S3WormStore(client=client, bucket="nowhere")
    path, sha = _file(tmp_path, b"x")
    with pytest.raises(BackendUnavailable, match="evidence store s3:nowhere is unavailable"):
        store.put_file(path, sha256=sha, size_bytes=1, retain_until=SOON)


@pytest.mark.s3
def test_presigned_url_reads_the_original_bytes(s3_store, tmp_path):
    import urllib.request

    path, sha = _file(tmp_path, b"shared with the prosecutor")
    s3_store.put_file(path, sha256=sha, size_bytes=26, retain_until=SOON)
    url = s3_store.presigned_url(sha, expires_s=60)
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"shared with the prosecutor"


def test_a_version_can_be_deleted_once_retention_has_passed(worm_store, tmp_path):
    from tests.helpers.retention import wait_past

    path, sha = _file(tmp_path, b"routine patrol, nothing happened")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    worm_store.put_file(path, sha256=sha, size_bytes=32, retain_until=until)
    with pytest.raises(ObjectLocked):
        worm_store.delete(sha, now=datetime.now(UTC))
    wait_past(until, worm_store.head(sha).retain_until)  # the store's own date too (S3 rounds it up to the second)
    worm_store.delete(sha, now=datetime.now(UTC))
    assert not worm_store.exists(sha)


def test_records_are_write_once_and_listed_by_prefix(worm_store):
    until = datetime.now(UTC) + timedelta(days=1)
    worm_store.put_record("custody/anchor-000000000002-a.json", b'{"n": 2}', retain_until=until)
    worm_store.put_record("custody/anchor-000000000001-a.json", b'{"n": 1}', retain_until=until)
    worm_store.put_record("disposals/batch-000001.json", b"{}", retain_until=until)
    worm_store.put_record("custody/anchor-000000000001-a.json", b'{"n": 1}', retain_until=until)  # same bytes: ok
    with pytest.raises(ObjectExists):
        worm_store.put_record("custody/anchor-000000000001-a.json", b'{"n": 9}', retain_until=until)
    assert worm_store.list_records("custody/") == ["custody/anchor-000000000001-a.json",
                                                   "custody/anchor-000000000002-a.json"]
    assert worm_store.get_record("disposals/batch-000001.json") == b"{}"
    with pytest.raises(ValueError, match="plain names"):
        worm_store.put_record("../escape.json", b"{}", retain_until=until)


def test_ranged_opens_start_where_asked(worm_store, tmp_path):
    # a player seeking to the end must not make the store read (or send) everything before it
    data = os.urandom(3 * 1024 * 1024 + 17)
    path, sha = _file(tmp_path, data)
    worm_store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=datetime.now(UTC) + timedelta(days=1))
    with worm_store.open(sha, start=len(data) - 100) as fh:
        assert fh.read() == data[-100:]
    proxy = tmp_path / "proxy.mp4"
    proxy.write_bytes(data[:1_000_000])
    worm_store.put_derived(sha, "proxy.mp4", proxy, content_type="video/mp4")
    with worm_store.open_derived(sha, "proxy.mp4", start=999_990) as fh:
        assert fh.read() == data[999_990:1_000_000]
    with worm_store.open_derived(sha, "proxy.mp4") as fh:
        assert fh.read(10) == data[:10]
