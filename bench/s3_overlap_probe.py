"""A design probe for issue 17 target 4: what would uploading parts while the copy runs buy on this machine?

Not the product's code: a minimal copier in this file. Three methods on the same 4 files in one run, rounds
interleaved, page cache evicted before each:
  aws     `aws s3 cp --recursive` (the baseline);
  serial  a durable copy of each file with its SHA-256 and part SHA-256s, then its multipart upload from the
          staged copy beside the next file's copy (what `evidence ingest` does today, without the catalogue);
  overlap each part uploaded as soon as its range of the staged copy is durable (sync_file_range), from the
          buffer just written, under a key chosen before the hash is known (what keys by upload would allow).
Parts of --part-mib, at most --slots in flight across every upload (memory: slots x part).

    .venv/bin/python bench/s3_overlap_probe.py [--total-mib 4096] [--files 4] [--rounds 3]
"""
from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir, median, object_lock_server
from bench.archive_s3 import _aws_upload, aws_cli, dcim_device

_SYNC = 0x1 | 0x2 | 0x4  # SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER


def _sync_range(fd: int, offset: int, length: int) -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.sync_file_range(fd, ctypes.c_longlong(offset), ctypes.c_longlong(length), _SYNC) != 0:
        raise OSError(ctypes.get_errno(), "sync_file_range")


class _Uploader:
    def __init__(self, client: Any, bucket: str, slots: int) -> None:
        self.client, self.bucket = client, bucket
        self.pool = ThreadPoolExecutor(slots, thread_name_prefix="part")
        self.slots = threading.BoundedSemaphore(slots)
        self.until = datetime.now(UTC) + timedelta(days=1)

    def begin(self, key: str) -> str:
        return str(self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=self.until)["UploadId"])

    def part(self, key: str, upload_id: str, number: int, data: bytes | Any, digest: bytes) -> Future[dict[str, Any]]:
        """Upload one part (its bytes, or a callable that reads them on the sender thread)."""
        self.slots.acquire()

        def send() -> dict[str, Any]:
            try:
                body = data() if callable(data) else data
                checksum = base64.b64encode(digest).decode()
                reply = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                                Body=body, ChecksumSHA256=checksum)
                return {"PartNumber": number, "ETag": reply["ETag"], "ChecksumSHA256": checksum}
            finally:
                self.slots.release()
        return self.pool.submit(send)

    def complete(self, key: str, upload_id: str, parts: list[Future[dict[str, Any]]]) -> None:
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": [p.result() for p in parts]})


def _copy(src: Path, dst: Path, part: int, on_part: Any) -> str:
    """Durable copy of *src* with its SHA-256; each part handed to *on_part* once its range is on disk."""
    whole = hashlib.sha256()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with src.open("rb", buffering=0) as reader:
            offset, number = 0, 1
            while data := reader.read(part):
                os.write(fd, data)
                _sync_range(fd, offset, len(data))
                os.posix_fadvise(fd, offset, len(data), os.POSIX_FADV_DONTNEED)
                whole.update(data)
                on_part(number, data, hashlib.sha256(data).digest())
                offset, number = offset + len(data), number + 1
        os.fsync(fd)
    finally:
        os.close(fd)
    return whole.hexdigest()


def _overlap(client: Any, bucket: str, sources: list[Path], args: Any, *, pread: bool = False) -> float:
    """Parts uploaded while the copy runs: from the buffer just written, or (*pread*) read back from the staged
    copy once its range is durable and dropped from the page cache (what a copier with a small ring must do)."""
    staging = fresh_dir(OUT / "probe-staging")
    up = _Uploader(client, bucket, args.slots)
    size = args.part_mib * 2**20
    evict(sources[0].parent)
    start = time.perf_counter()
    pending = []
    for src in sources:
        key = f"uploads/{uuid.uuid4().hex}"
        upload_id = up.begin(key)
        parts: list[Future[dict[str, Any]]] = []
        dst = staging / src.name

        def on_part(n: int, data: bytes, digest: bytes, k: str = key, u: str = upload_id,
                    p: list[Future[dict[str, Any]]] = parts, d: Path = dst) -> None:
            def read_back(n: int = n, length: int = len(data)) -> bytes:
                with d.open("rb") as staged:
                    return os.pread(staged.fileno(), length, (n - 1) * size)
            p.append(up.part(k, u, n, read_back if pread else data, digest))
        _copy(src, dst, size, on_part)
        pending.append((key, upload_id, parts))
    for key, upload_id, parts in pending:
        up.complete(key, upload_id, parts)
    up.pool.shutdown()
    return time.perf_counter() - start


def _serial(client: Any, bucket: str, sources: list[Path], args: Any) -> float:
    """Copy, then upload from the staged copy (reading it back) beside the next copy: today's shape."""
    staging = fresh_dir(OUT / "probe-staging")
    up = _Uploader(client, bucket, args.slots)
    files = ThreadPoolExecutor(2, thread_name_prefix="file")
    part = args.part_mib * 2**20
    evict(sources[0].parent)
    start = time.perf_counter()

    def upload(path: Path, digests: list[bytes]) -> None:
        key = f"serial/{uuid.uuid4().hex}"
        upload_id = up.begin(key)
        parts = []
        with path.open("rb") as staged:
            for number, digest in enumerate(digests, 1):
                parts.append(up.part(key, upload_id, number, staged.read(part), digest))
        up.complete(key, upload_id, parts)

    done = []
    for src in sources:
        digests: list[bytes] = []
        _copy(src, staging / src.name, part, lambda n, d, h, out=digests: out.append(h))
        done.append(files.submit(upload, staging / src.name, digests))
    for f in done:
        f.result()
    files.shutdown()
    up.pool.shutdown()
    return time.perf_counter() - start


def main() -> None:
    args = arguments(__doc__, total_mib=4096, files=4, rounds=3, part_mib=16, slots=8)
    aws = aws_cli()
    _device, folder, total_gib = dcim_device("probe", args.files, args.total_mib)
    sources = sorted(folder.iterdir())
    runs: dict[str, list[float]] = {"aws": [], "serial": [], "overlap": [], "overlap-pread": []}
    buckets = [f"{m}-{i}" for i in range(args.rounds) for m in runs]
    try:
        with object_lock_server("probe-weed", *buckets) as (server, client):
            for i in range(args.rounds):
                runs["aws"].append(_aws_upload(aws, server, folder, f"aws-{i}"))
                runs["serial"].append(_serial(client, f"serial-{i}", sources, args))
                runs["overlap"].append(_overlap(client, f"overlap-{i}", sources, args))
                runs["overlap-pread"].append(_overlap(client, f"overlap-pread-{i}", sources, args, pread=True))
                print(i, {k: round(v[-1], 1) for k, v in runs.items()}, flush=True)
    finally:
        fresh_dir(OUT / "probe-weed")
        fresh_dir(OUT / "probe-staging")
    print(f"{args.files} files, {total_gib:.1f} GiB; parts {args.part_mib} MiB, {args.slots} in flight")
    for name, values in runs.items():
        print(f"  {name:8s} {median(values):6.1f} s  ratio to aws {median(runs['aws']) / median(values):.2f}  "
              f"(runs {', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
