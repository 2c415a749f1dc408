"""Per-part SHA-256 checksums of a staged copy, computed in the copy pass and kept beside it for the upload.

An S3 multipart upload sends every part with its `x-amz-checksum-sha256`, which the server checks against the
bytes it receives. Hashing each part again at upload time would read and hash every byte a second time (on a
2-core station, the upload's CPU is the S3 path's limit). So the copy off the device (ingest.transfer) hashes
each part-sized slice beside the whole-file SHA-256, from the same buffers, and writes the part digests next to
the staged copy (`<sha256>.parts`, written atomically and fsynced). The upload sends those digests as they are:
a staged copy that changed after the copy is refused by the server part by part (BadDigest), so nothing is
trusted that the server does not check. A missing, unreadable or mismatched `.parts` file only means the
upload hashes the parts itself, as before.

The part size is S3's rule, in one place: `part_size_for` (parts of *part_size_bytes*, larger when a file
would need more than MAX_PARTS of them).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

__all__ = ["MAX_PARTS", "PARTS_SUFFIX", "PartDigests", "part_size_for", "parts_path", "read_parts", "write_parts"]

#: S3's most parts in one multipart upload.
MAX_PARTS = 10_000
#: The suffix of a staged copy's part-checksum file.
PARTS_SUFFIX = ".parts"


def part_size_for(size_bytes: int, part_size_bytes: int) -> int:
    """The part size a multipart upload of *size_bytes* uses: *part_size_bytes*, or more to stay within MAX_PARTS."""
    return max(part_size_bytes, math.ceil(size_bytes / MAX_PARTS))


class PartDigests:
    """SHA-256 of each *part_bytes* slice of a stream fed in order (the last slice may be shorter)."""

    def __init__(self, part_bytes: int) -> None:
        if part_bytes <= 0:
            raise ValueError(f"part_bytes must be positive, not {part_bytes}")
        self.part_bytes = part_bytes
        self._done: list[str] = []
        self._current = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self.part_bytes - self._filled)
            self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.part_bytes:
                self._done.append(self._current.hexdigest())
                self._current, self._filled = hashlib.sha256(), 0

    def finish(self) -> tuple[str, ...]:
        """The digests (lower-case hex), one per part; feeding more after this is an error of the caller."""
        if self._filled:
            self._done.append(self._current.hexdigest())
            self._current, self._filled = hashlib.sha256(), 0
        return tuple(self._done)


def parts_path(staged: Path) -> Path:
    """Where the part checksums of the staged copy *staged* are kept."""
    return staged.with_name(staged.name + PARTS_SUFFIX)


def write_parts(staged: Path, *, part_bytes: int, size_bytes: int, digests: tuple[str, ...]) -> Path:
    """Keep *digests* beside *staged* (written to a temporary name, fsynced, renamed); return the file's path."""
    target = parts_path(staged)
    temporary = target.with_name(target.name + ".tmp")
    data = json.dumps({"part_bytes": part_bytes, "size_bytes": size_bytes, "sha256": list(digests)}).encode()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    return target


def read_parts(staged: Path, *, part_bytes: int, size_bytes: int) -> tuple[str, ...] | None:
    """The part digests kept beside *staged* for this part size and file size, or None (absent, unreadable, made
    for another part size or size, or the wrong count): the caller then hashes the parts itself."""
    try:
        kept = json.loads(parts_path(staged).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("part_bytes") != part_bytes or kept.get("size_bytes") != size_bytes:
        return None
    digests = kept.get("sha256")
    expected = max(1, math.ceil(size_bytes / part_bytes))
    if not isinstance(digests, list) or len(digests) != expected or not all(_is_hex_digest(d) for d in digests):
        return None
    return tuple(digests)


def _is_hex_digest(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
