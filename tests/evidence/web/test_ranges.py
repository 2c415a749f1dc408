"""A ranged response closes the stored file however its client leaves (evidence.web.ranges.RangeResponse).

The player cancels a request the moment it seeks; CI caught a proxy left open when the browser went away before
the first chunk was read. These drive the response as the ASGI server does, with a client that leaves at each
point, over a real file.
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import pytest
from starlette.requests import ClientDisconnect

from evidence.web.ranges import RangeResponse

_SIZE = 3 * 1024 * 1024 + 17  # more than one chunk


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    path = tmp_path / "proxy.mp4"
    path.write_bytes(bytes(range(256)) * (_SIZE // 256) + bytes(_SIZE % 256))
    return path


def _opened_at(path: Path, start: int) -> BinaryIO:
    fh = path.open("rb")
    fh.seek(start)
    return fh


class _Client:
    """An ASGI client that goes away after *sends* messages (None: stays to the end)."""

    def __init__(self, sends: int | None) -> None:
        self.sends, self.body = sends, b""
        self.received: list[MutableMapping[str, Any]] = []
        self.gone = anyio.Event()

    async def receive(self) -> MutableMapping[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if self.sends is not None and len(self.received) >= self.sends:
            self.gone.set()
            raise OSError("connection reset by peer")
        self.received.append(message)
        self.body += message.get("body", b"")


def _serve(response: RangeResponse, client: _Client) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "method": "GET", "path": "/"}

    async def run() -> None:
        with contextlib.suppress(OSError, ClientDisconnect):  # how the server learns the client left
            await response(scope, client.receive, client.send)

    anyio.run(run)


@pytest.mark.parametrize("sends", [0, 1, 2], ids=["before-headers", "after-headers", "mid-body"])
def test_a_client_that_leaves_at_any_point_leaves_no_file_open(stored, sends):
    fh = _opened_at(stored, 1000)
    client = _Client(sends)
    _serve(RangeResponse(fh, (1000, _SIZE - 1), _SIZE, media_type="video/mp4"), client)
    assert fh.closed, f"the stored file stayed open after the client left after {sends} message(s)"
    assert len(client.received) == sends


def test_a_range_is_sent_whole_with_its_headers_and_the_file_closed(stored):
    fh = _opened_at(stored, 1000)
    client = _Client(None)
    _serve(RangeResponse(fh, (1000, 2_500_000), _SIZE, media_type="video/mp4"), client)
    start = client.received[0]
    headers = dict(start["headers"])
    assert start["status"] == 206
    assert headers[b"content-range"] == f"bytes 1000-2500000/{_SIZE}".encode()
    assert headers[b"content-length"] == b"2499001"
    assert client.body == stored.read_bytes()[1000:2_500_001]
    assert fh.closed


def test_the_whole_file_without_a_range_is_a_200(stored):
    fh = _opened_at(stored, 0)
    client = _Client(None)
    _serve(RangeResponse(fh, None, _SIZE, media_type="video/mp4"), client)
    assert client.received[0]["status"] == 200
    assert client.body == stored.read_bytes()
    assert fh.closed


def test_a_response_made_and_never_sent_closes_its_file(stored):
    fh = _opened_at(stored, 0)
    response = RangeResponse(fh, None, _SIZE, media_type="video/mp4")
    del response
    gc.collect()
    assert fh.closed
