"""HTTP range requests over an opened evidence or derived file: the one way the web app streams stored bytes.

The response owns the file from the moment it is made: it is closed when the body has been sent, when the
client goes away before or during the body (a player seeking cancels its request at once), and when the
response is dropped unsent. A generator that opened the file only when first iterated left it open whenever the
browser cancelled before the first chunk (the player test's unclosed proxy.mp4 under CI).
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["RangeResponse", "parse_range"]

_CHUNK = 1024 * 1024


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range within *size*; None for no header. ValueError if the
    range cannot be satisfied. Pure."""
    if not header:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise ValueError(f"unsupported range {header!r}")
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0:
            raise ValueError(f"range {header!r} asks for no bytes")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(f"range {header!r} is outside 0-{size - 1}")
    return start, end


def _chunks(fh: BinaryIO, length: int) -> Iterator[bytes]:
    """*length* bytes from a file already opened at the range's start (the store fetched only those)."""
    left = length
    while left > 0:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        yield chunk


class RangeResponse(StreamingResponse):
    """*fh* (opened at the range's start) as a 200, or a 206 for the range *wanted* of *size* bytes; *fh* is
    closed however the response ends."""

    def __init__(self, fh: BinaryIO, wanted: tuple[int, int] | None, size: int, *, media_type: str,
                 headers: Mapping[str, str] | None = None) -> None:
        start, end = wanted if wanted else (0, size - 1)
        all_headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1), **(headers or {})}
        if wanted:
            all_headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._fh = fh
        super().__init__(_chunks(fh, end - start + 1), status_code=206 if wanted else 200, headers=all_headers,
                         media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._fh.close()

    def __del__(self) -> None:
        """A response made and never sent (an exception between making it and returning it) still closes."""
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
