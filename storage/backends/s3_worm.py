"""WORM store on S3 with Object Lock (COMPLIANCE): MinIO, AWS S3, Ceph RGW, SeaweedFS.

Every write carries an `x-amz-checksum-sha256` the server verifies (one PUT,
or every part of a multipart upload) and COMPLIANCE retention. The part
checksums come from the copy pass where it kept them (storage.part_checksums):
the upload then reads each staged byte once and hashes nothing. After a write
the object's HEAD is checked: checksum and size must match what was hashed at
copy time, and retention / legal hold are re-applied if the server dropped
them (some servers ignore lock headers on multipart uploads). The full
read-back (GET and re-hash) runs here only with `readback="inline"`; by
default it is left to the verify queue (the recording stays `archived` until
then). botocore errors become the project's storage errors here and nowhere
else.
"""
from __future__ import annotations

import base64
import hashlib
import io
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from storage.backend import Leftover, StoredObject, derived_key, manifest_key, object_key, record_key
from storage.errors import (
    BackendUnavailable,
    BucketNotWorm,
    HashMismatch,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    StorageError,
)
from storage.hashing import hash_stream, hashed_chunks
from storage.part_checksums import part_size_for, parts_path, read_parts
from storage.retention import is_disposable, require_future, validate_extension

__all__ = ["MAX_PRESIGN_S", "S3WormStore", "make_s3_client"]

logger = logging.getLogger(__name__)

#: S3's smallest part (except the last).
MIN_PART_BYTES = 5 * 1024 * 1024
#: S3's largest object in one PUT: a file this large goes in parts whatever the multipart threshold says.
MAX_PUT_BYTES = 5 * 1024 * 1024 * 1024
#: Bytes a single PUT's body hands the HTTP connection per read (`_BlockReader`).
SEND_BLOCK_BYTES = 1024 * 1024
#: When the full read-back of a new object runs: in the upload ("inline") or by the verify queue ("queued").
READBACK_MODES = ("queued", "inline")
_MISSING = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}
_BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500", "RequestTimeTooSkewed"}


def make_s3_client(*, endpoint_url: str | None, access_key: str | None, secret_key: str | None,
                   region: str = "us-east-1", max_pool: int = 16) -> Any:
    """A boto3 S3 client for WORM use: path-style, checksums only where we ask for them.

    Payload signing is off: every write of ours carries its own `x-amz-checksum-sha256` (a signed header) that the
    server checks against the body, so botocore's second SHA-256 of every uploaded byte (which it adds on plain
    http, where the AWS CLI pays it too) proves nothing more and costs a core's worth of hashing per upload."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region, retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=max_pool,
        s3={"addressing_style": "path", "payload_signing_enabled": False}, connect_timeout=5, read_timeout=60,
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint_url, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, config=config)


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _whole_seconds_up(when: datetime) -> datetime:
    # Servers keep retain-until in whole seconds; rounding up never shortens what was asked for.
    when = when.astimezone(UTC)
    if when.microsecond and when.replace(microsecond=0) >= datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC):
        return when.replace(microsecond=0)  # the calendar's last second: nothing later can be written
    return when.replace(microsecond=0) + (timedelta(seconds=1) if when.microsecond else timedelta())


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))



def _from(start: int) -> dict[str, str]:
    """get_object arguments for the bytes from *start* on (S3 sends only those)."""
    return {"Range": f"bytes={start}-"} if start else {}


#: The longest a presigned URL may be valid (SigV4's limit: a week; AWS S3 and MinIO refuse a longer one).
MAX_PRESIGN_S = 7 * 24 * 3600

class _BlockReader(io.FileIO):
    """A staged copy opened for a single PUT whose reads are at least SEND_BLOCK_BYTES: urllib3 reads a file body
    16 KiB at a time and sends each block with its own call, ~65,000 rounds of Python per GiB; a larger block
    sends the same bytes in 1/64 of them. Content length, seek and tell (botocore rewinds a body to retry) are
    the file's own."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")

    def read(self, size: int | None = -1, /) -> bytes:
        return super().read(max(size, SEND_BLOCK_BYTES) if size is not None and size > 0 else size)


class S3WormStore:
    """Evidence objects under `<prefix>sha256/ab/cd/<sha256>` in an Object Lock bucket."""

    name = "s3"

    def __init__(self, *, client: Any = None, connect: Callable[[], Any] | None = None, bucket: str,
                 prefix: str = "", multipart_threshold_bytes: int = 64 * 1024 * 1024,
                 part_size_bytes: int = 16 * 1024 * 1024, max_concurrency: int = 4, readback: str = "queued") -> None:
        """*client*: a boto3 S3 client; or *connect*, which makes one when the store first calls S3."""
        if (client is None) == (connect is None):
            raise ValueError("S3WormStore needs a client or a way to connect one, not both")
        if part_size_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_size_bytes {part_size_bytes} is below S3's minimum of {MIN_PART_BYTES}")
        if readback not in READBACK_MODES:
            raise ValueError(f"readback {readback!r} is not one of {', '.join(READBACK_MODES)}")
        self.readback = readback
        self._client, self._connect, self._connecting = client, connect, threading.Lock()
        self.bucket, self.prefix = bucket, prefix
        self.multipart_threshold_bytes = multipart_threshold_bytes
        self.part_size_bytes = part_size_bytes
        self.max_concurrency = max_concurrency

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use: making one takes ~0.15 s (boto3's import, its service model), which
        a station's `evidence ingest` with a broker, which never uploads, no longer pays before its first copy."""
        if self._client is None:
            with self._connecting:
                if self._client is None:
                    assert self._connect is not None  # __init__: one of the two
                    self._client = self._connect()
        return self._client

    # -- errors ------------------------------------------------------------------------------------
    def _translate(self, exc: Exception, key: str, action: str) -> StorageError:
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _MISSING or status == 404:
                return ObjectMissing(key)
            if code in _TRANSIENT or status >= 500:
                return BackendUnavailable(f"s3:{self.bucket}", f"{action} {key}: {code} {exc}")
            if code == "NoSuchBucket":
                return BucketNotWorm(self.bucket, "the bucket does not exist")
            return StorageError(f"S3 refused to {action} {key!r}: {code}: "
                                f"{exc.response.get('Error', {}).get('Message', '')}")
        if isinstance(exc, BotoCoreError):
            return BackendUnavailable(f"s3:{self.bucket}", f"{action} {key}: {exc}")
        raise exc

    def _key(self, sha256: str) -> str:
        return self.prefix + object_key(sha256)

    # -- set-up ------------------------------------------------------------------------------------
    def check_bucket(self) -> None:
        """Refuse a bucket without versioning and Object Lock (BucketNotWorm)."""
        try:
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket)
            lock = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"):
                raise BucketNotWorm(self.bucket, "Object Lock is not enabled (create the bucket with "
                                                 "Object Lock; it cannot be added later on most servers)") from exc
            raise self._translate(exc, self.bucket, "inspect bucket") from exc
        except BotoCoreError as exc:
            raise self._translate(exc, self.bucket, "inspect bucket") from exc
        if versioning.get("Status") != "Enabled":
            raise BucketNotWorm(self.bucket, f"versioning is {versioning.get('Status', 'off')!r}, not 'Enabled'")
        if lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise BucketNotWorm(self.bucket, "Object Lock is not enabled")

    # -- reads -------------------------------------------------------------------------------------
    def _head(self, key: str, version_id: str | None = None) -> dict[str, Any]:
        extra = {"VersionId": version_id} if version_id else {}
        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED",
                                                                **extra))
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, "read") from exc

    def _stored(self, sha256: str, head: dict[str, Any], *, verified: bool = False) -> StoredObject:
        key = self._key(sha256)
        until = head.get("ObjectLockRetainUntilDate")
        return StoredObject(
            key=key, sha256=sha256, size_bytes=int(head["ContentLength"]),
            retain_until=until.astimezone(UTC) if until else datetime.min.replace(tzinfo=UTC),
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON", version_id=head.get("VersionId"),
            location=f"s3://{self.bucket}/{key}", verified=verified)

    def head(self, sha256: str) -> StoredObject:
        return self._stored(sha256, self._head(self._key(sha256)))

    def exists(self, sha256: str) -> bool:
        try:
            self._head(self._key(sha256))
        except ObjectMissing:
            return False
        return True

    def open(self, sha256: str, *, start: int = 0) -> BinaryIO:
        key = self._key(sha256)
        try:
            return cast(BinaryIO, self.client.get_object(Bucket=self.bucket, Key=key, **_from(start))["Body"])
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, "read") from exc

    def read_range(self, sha256: str, start: int, end_inclusive: int) -> bytes:
        key = self._key(sha256)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end_inclusive}")["Body"]
            return cast(bytes, body.read())
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, "read") from exc

    def presigned_url(self, sha256: str, *, expires_s: int = 900) -> str:
        return cast(str, self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(sha256)}, ExpiresIn=expires_s))

    def read_in_place(self, sha256: str, *, valid_s: float = 900) -> AbstractContextManager[str]:
        """A presigned GET URL of the object for a media reader, valid for at least *valid_s* seconds (rounded up to
        whole seconds, plus one for the signer's own rounding down; at most MAX_PRESIGN_S, a week, which AWS S3 and
        MinIO refuse to go past): the reader fetches byte ranges itself, nothing
        is copied (EvidenceStore.read_in_place). A context manager yielding the URL (nothing to clean up).
        ObjectMissing if absent."""
        self.head(sha256)
        return nullcontext(self.presigned_url(sha256, expires_s=min(int(valid_s) + 2, MAX_PRESIGN_S)))

    def verify(self, sha256: str) -> str:
        key = self._key(sha256)
        try:
            with self.open(sha256) as body:
                # The next chunk arrives while this one is hashed: the read-back's tail after the last upload is
                # the slower of the two, not their sum.
                found = hash_stream(body, read_ahead=True).sha256
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, "read") from exc
        if found != sha256:
            raise HashMismatch(key, algorithm="sha256", expected=sha256, found=found)
        return sha256

    # -- writes ------------------------------------------------------------------------------------
    def put_file(self, path: Path, *, sha256: str, size_bytes: int, retain_until: datetime,
                 consume: bool = False) -> StoredObject:
        key = self._key(sha256)
        until = require_future(key, _whole_seconds_up(retain_until), datetime.now(UTC))
        try:
            head = self._head(key)
        except ObjectMissing:
            head = None
        if head is None:
            try:
                if self.part_bytes_for(size_bytes) is not None:
                    expected_checksum = self._put_multipart(path, key, sha256=sha256, size_bytes=size_bytes,
                                                            until=until)
                else:
                    expected_checksum = self._put_single(path, key, sha256=sha256, until=until)
            except ClientError as exc:
                if _code(exc) in _BAD_DIGEST:
                    raise HashMismatch(str(path), algorithm="sha256", expected=sha256,
                                       found="(the server computed a different SHA-256)") from exc
                raise self._translate(exc, key, "store") from exc
            except BotoCoreError as exc:
                raise self._translate(exc, key, "store") from exc
            head = self._head(key)
            stored_checksum = head.get("ChecksumSHA256")
            if stored_checksum != expected_checksum or int(head["ContentLength"]) != size_bytes:
                raise HashMismatch(f"s3://{self.bucket}/{key}", algorithm="sha256",
                                   expected=f"{expected_checksum} ({size_bytes} bytes)",
                                   found=f"{stored_checksum} ({head['ContentLength']} bytes)")
        head = self._ensure_lock(key, head, until)
        if self.readback == "inline":
            self.verify(sha256)  # the whole object read back and re-hashed before the staged copy goes
        if consume:
            path.unlink(missing_ok=True)
            parts_path(path).unlink(missing_ok=True)
        return self._stored(sha256, head, verified=self.readback == "inline")

    def part_bytes_for(self, size_bytes: int) -> int | None:
        """The part size an upload of *size_bytes* uses, or None when it goes in one PUT."""
        if size_bytes < min(self.multipart_threshold_bytes, MAX_PUT_BYTES):
            return None
        return part_size_for(size_bytes, self.part_size_bytes)

    def _put_single(self, path: Path, key: str, *, sha256: str, until: datetime) -> str:
        checksum = _b64(sha256)
        with _BlockReader(path) as body:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumSHA256=checksum,
                                   ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
                                   Metadata={"sha256": sha256})
        return checksum

    def _put_multipart(self, path: Path, key: str, *, sha256: str, size_bytes: int, until: datetime) -> str:
        """Upload *path* in parts; return the object's S3 checksum (SHA-256 of the part digests, with the count).

        With the part digests the copy pass kept, nothing is hashed here: the server checks every part against
        them. If it refuses one (the staged copy or the kept digests changed since the copy), the upload is
        made again hashing every part and the whole file here, so a damaged `.parts` file never fails evidence
        and a damaged staged copy is named (HashMismatch) either way."""
        part_size = part_size_for(size_bytes, self.part_size_bytes)
        # Only for a staged copy of the size catalogued (one that grew or shrank is hashed whole below, and named).
        kept = read_parts(path, part_bytes=part_size, size_bytes=size_bytes) \
            if path.stat().st_size == size_bytes else None
        if kept is not None:
            try:
                return self._upload_in_parts(path, key, sha256=sha256, until=until, part_size=part_size, kept=kept)
            except ClientError as exc:
                if _code(exc) not in _BAD_DIGEST:
                    raise
                logger.warning("The server refused a part of %r against the checksums kept at copy time (%s); "
                               "uploading again with every part hashed now.", str(path), _code(exc))
        return self._upload_in_parts(path, key, sha256=sha256, until=until, part_size=part_size, kept=None)

    def _upload_in_parts(self, path: Path, key: str, *, sha256: str, until: datetime, part_size: int,
                         kept: tuple[str, ...] | None) -> str:
        upload_id = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until, Metadata={"sha256": sha256})["UploadId"]
        whole = hashlib.sha256() if kept is None else None
        # At most max_concurrency parts in memory or in flight: bounded memory whatever the size.
        slots = threading.BoundedSemaphore(self.max_concurrency)

        def send(number: int, data: bytes) -> dict[str, Any]:
            try:
                # Kept from the copy pass, or computed here in parallel with the reader's whole-file hash.
                if kept is not None and number > len(kept):  # the staged copy grew while it was being read
                    raise HashMismatch(str(path), algorithm="sha256", expected=f"{len(kept)} parts",
                                       found=f"part {number}")
                digest = bytes.fromhex(kept[number - 1]) if kept is not None else hashlib.sha256(data).digest()
                checksum = base64.b64encode(digest).decode()
                reply = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                                Body=data, ChecksumSHA256=checksum)
                return {"PartNumber": number, "ETag": reply["ETag"], "ChecksumSHA256": checksum}
            finally:
                slots.release()

        try:
            with path.open("rb") as src, ThreadPoolExecutor(self.max_concurrency,
                                                            thread_name_prefix="s3-part") as pool:
                chunks = (iter(partial(src.read, part_size), b"") if whole is None
                          else hashed_chunks(src, into=whole, chunk_bytes=part_size))
                futures: list[Future[dict[str, Any]]] = []
                slots.acquire()  # taken before each read (the generator reads when the loop asks for the next)
                for number, data in enumerate(chunks, start=1):
                    futures.append(pool.submit(send, number, data))
                    del data
                    slots.acquire()
                slots.release()  # the slot taken for the read that found the end
                parts = [f.result() for f in futures]
            if whole is not None and whole.hexdigest() != sha256:
                raise HashMismatch(str(path), algorithm="sha256", expected=sha256, found=whole.hexdigest())
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except (ClientError, BotoCoreError):
                logger.warning("Could not abort multipart upload %r of %r.", upload_id, key)
            raise
        digests = b"".join(base64.b64decode(part["ChecksumSHA256"]) for part in parts)
        return f"{base64.b64encode(hashlib.sha256(digests).digest()).decode()}-{len(parts)}"

    def _ensure_lock(self, key: str, head: dict[str, Any], until: datetime) -> dict[str, Any]:
        """Re-apply COMPLIANCE retention if the server dropped it or holds a shorter date."""
        current = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockMode") == "COMPLIANCE" and current is not None and current >= until:
            return head
        logger.warning("Retention on %r missing or short (%s %s); re-applying.", key, head.get("ObjectLockMode"),
                       current)
        self._put_retention(key, head.get("VersionId"), until)
        return self._head(key)

    def _put_lock(self, key: str, version_id: str | None, put: Callable[..., Any], doing: str, **lock: Any) -> None:
        """One Object Lock call *put* (put_object_retention, put_object_legal_hold) on *key*, on its *version_id* if
        known, with the setting in *lock*; a failure says what it was *doing*."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            put(Bucket=self.bucket, Key=key, **lock, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, doing) from exc

    def _put_retention(self, key: str, version_id: str | None, until: datetime) -> None:
        self._put_lock(key, version_id, self.client.put_object_retention, "set retention on",
                       Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})

    def _manifest_keys(self, sha256: str) -> list[str]:
        prefix = self.prefix + manifest_key(sha256, 1).rsplit(".r", 1)[0] + ".r"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, prefix, "list") from exc

    def extend_retention(self, sha256: str, retain_until: datetime) -> StoredObject:
        current = self.head(sha256)
        until = require_future(current.key, _whole_seconds_up(retain_until), datetime.now(UTC))
        validate_extension(current.key, current.retain_until, until)
        self._put_retention(current.key, current.version_id, until)
        for key in self._manifest_keys(sha256):
            # A manifest is kept at least as long as the recording it describes.
            head = self._head(key)
            held = head.get("ObjectLockRetainUntilDate")
            if held is None or held < until:
                self._put_retention(key, head.get("VersionId"), until)
        return self.head(sha256)

    def _put_legal_hold(self, key: str, version_id: str | None, on: bool) -> None:
        self._put_lock(key, version_id, self.client.put_object_legal_hold, "set legal hold on",
                       LegalHold={"Status": "ON" if on else "OFF"})

    def set_legal_hold(self, sha256: str, on: bool) -> StoredObject:
        current = self.head(sha256)
        self._put_legal_hold(current.key, current.version_id, on)
        for key in self._manifest_keys(sha256):
            self._put_legal_hold(key, self._head(key).get("VersionId"), on)
        return self.head(sha256)

    def delete(self, sha256: str, *, now: datetime) -> None:
        obj = self.head(sha256)
        if not is_disposable(obj.retain_until, obj.legal_hold, now):
            raise ObjectLocked(obj.key, retain_until=obj.retain_until, legal_hold=obj.legal_hold, action="delete")
        try:
            versions = self.client.list_object_versions(Bucket=self.bucket, Prefix=obj.key)
            for version in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
                if version["Key"] == obj.key:
                    self.client.delete_object(Bucket=self.bucket, Key=obj.key, VersionId=version["VersionId"])
        except ClientError as exc:
            if _code(exc) == "AccessDenied":
                raise ObjectLocked(obj.key, retain_until=obj.retain_until, legal_hold=obj.legal_hold,
                                   action="delete") from exc
            raise self._translate(exc, obj.key, "delete") from exc
        except BotoCoreError as exc:
            raise self._translate(exc, obj.key, "delete") from exc

    def _put_once(self, key: str, data: bytes, *, retain_until: datetime, content_type: str) -> StoredObject:
        """Write *data* under *key* with COMPLIANCE retention once; the same bytes again are accepted."""
        digest = hashlib.sha256(data).hexdigest()
        checksum = _b64(digest)
        until = require_future(key, _whole_seconds_up(retain_until), datetime.now(UTC))
        try:
            head = self._head(key)
        except ObjectMissing:
            head = None
        if head is not None and head.get("ChecksumSHA256") != checksum:
            raise ObjectExists(key)
        if head is None:
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ChecksumSHA256=checksum,
                                       ContentType=content_type, ObjectLockMode="COMPLIANCE",
                                       ObjectLockRetainUntilDate=until)
            except (ClientError, BotoCoreError) as exc:
                raise self._translate(exc, key, "store") from exc
            head = self._head(key)
        head = self._ensure_lock(key, head, until)
        until_held = head.get("ObjectLockRetainUntilDate")
        return StoredObject(key=key, sha256=digest, size_bytes=len(data),
                            retain_until=until_held.astimezone(UTC) if until_held else until,
                            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
                            version_id=head.get("VersionId"), location=f"s3://{self.bucket}/{key}",
                            verified=head.get("ChecksumSHA256") == checksum)

    def _read_once(self, key: str) -> bytes:
        try:
            return cast(bytes, self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, "read") from exc

    def put_manifest(self, sha256: str, revision: int, data: bytes, *, retain_until: datetime) -> StoredObject:
        return self._put_once(self.prefix + manifest_key(sha256, revision), data, retain_until=retain_until,
                              content_type="application/json")

    def get_manifest(self, sha256: str, revision: int) -> bytes:
        return self._read_once(self.prefix + manifest_key(sha256, revision))

    def put_record(self, name: str, data: bytes, *, retain_until: datetime) -> StoredObject:
        return self._put_once(self.prefix + record_key(name), data, retain_until=retain_until,
                              content_type="application/json")

    def get_record(self, name: str) -> bytes:
        return self._read_once(self.prefix + record_key(name))

    def list_records(self, prefix: str) -> list[str]:
        base = self.prefix + "records/"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix)
            return sorted(item["Key"].removeprefix(base) for page in pages for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, base + prefix, "list") from exc

    def put_derived(self, sha256: str, name: str, path: Path, *, content_type: str) -> str:
        key = self.prefix + derived_key(sha256, name)
        try:
            with path.open("rb") as body:
                # No Object Lock: derived files are not evidence. They say what they derive from.
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                                       ChecksumAlgorithm="SHA256",  # checked by the server (no payload signing)
                                       Metadata={"derived-from-sha256": sha256, "evidence": "false"})
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, "store") from exc
        return key

    def open_derived(self, sha256: str, name: str, *, start: int = 0) -> BinaryIO:
        key = self.prefix + derived_key(sha256, name)
        try:
            return cast(BinaryIO, self.client.get_object(Bucket=self.bucket, Key=key, **_from(start))["Body"])
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, "read") from exc

    def delete_derived(self, sha256: str) -> int:
        """Remove every version of the recording's derived files (they carry no lock)."""
        prefix = self.prefix + derived_key(sha256, "x")[:-1]
        removed = 0
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    self.client.delete_object(Bucket=self.bucket, Key=version["Key"], VersionId=version["VersionId"])
                    removed += "Size" in version
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, prefix, "delete") from exc
        return removed

    def sweep_scratch(self, *, older_than: timedelta, now: datetime) -> list[Leftover]:
        """Abort the multipart uploads of evidence objects begun more than *older_than* before *now* and never
        completed (their writer was killed: the parts stay stored, unlocked and unseen, until aborted). Only keys
        under this store's object prefix; an upload another sweep aborted meanwhile is skipped."""
        prefix = self.prefix + object_key("0" * 64).split("/", 1)[0] + "/"
        removed: list[Leftover] = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
            stale = [upload for page in pages for upload in page.get("Uploads", [])
                     if upload.get("Initiated") is not None and now - upload["Initiated"] >= older_than]
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, prefix, "list the multipart uploads under") from exc
        for upload in stale:
            key, upload_id = upload["Key"], upload["UploadId"]
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError as exc:
                if _code(exc) in ("NoSuchUpload", "404"):
                    continue
                raise self._translate(exc, key, "abort an unfinished upload of") from exc
            except BotoCoreError as exc:
                raise self._translate(exc, key, "abort an unfinished upload of") from exc
            age = timedelta(seconds=round((now - upload["Initiated"]).total_seconds()))
            leftover = Leftover(f"s3://{self.bucket}/{key} (upload {upload_id})",
                                f"a multipart upload begun {age} ago and never completed (older than {older_than})")
            logger.warning("Store scratch: aborted %s (%s).", leftover.name, leftover.reason)
            removed.append(leftover)
        return removed

    def version_count(self, sha256: str) -> int:
        """How many versions the key holds (1 for a well-kept archive)."""
        key = self._key(sha256)
        try:
            versions = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, key, "list") from exc
        return sum(1 for v in versions.get("Versions", []) if v["Key"] == key)
