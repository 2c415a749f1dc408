"""A Matroska stream passed through byte for byte, each video frame handed over to be changed in place first.

The redaction's renderer (ingest.redaction.render) has one ffmpeg decode the original to raw 4:2:0 pictures and
PCM sound in Matroska on a pipe, changes the pictures here, and has a second ffmpeg encode the same stream. Matroska
carries each frame's time, so a variable frame rate (a phone's) is kept; the pictures keep their size, so every
byte but the pictures' goes through unchanged. ffmpeg must write the stream without CRC-32 elements
(`-write_crc32 0`): a changed picture would no longer match them.

Only what this needs is read: the time scale (Info), the video track's number and picture size (Tracks), cluster
times, and the header of each block; every other element is copied through. Segments and clusters of unknown size
(what ffmpeg writes to a pipe) are read as a flat run of their children.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

__all__ = ["MAX_ELEMENT", "MatroskaUnexpected", "VideoTrack", "pass_frames"]

_SEGMENT, _CLUSTER, _BLOCK_GROUP = 0x18538067, 0x1F43B675, 0xA0
_INFO, _TIMESTAMP_SCALE, _TRACKS, _TRACK_ENTRY = 0x1549A966, 0x2AD7B1, 0x1654AE6B, 0xAE
_TRACK_NUMBER, _TRACK_TYPE, _CODEC_ID, _VIDEO, _PIXEL_WIDTH, _PIXEL_HEIGHT = 0xD7, 0x83, 0x86, 0xE0, 0xB0, 0xBA
_TIMESTAMP, _SIMPLE_BLOCK, _BLOCK = 0xE7, 0xA3, 0xA1
_DESCENDED = {_SEGMENT, _CLUSTER, _BLOCK_GROUP}  # read as their children, in line
_READ = {_INFO, _TRACKS, _TIMESTAMP, _SIMPLE_BLOCK, _BLOCK}  # read whole (small, or a frame)
_CHUNK = 1 << 20
#: The largest element read whole: a raw 4:2:0 frame of 8K (7680 × 4320) is 50 MB; a larger size is a broken stream,
#: not a frame to allocate.
MAX_ELEMENT = 256 << 20


class MatroskaUnexpected(ValueError):
    """The stream is not what ffmpeg was asked to write (the reason and the byte offset)."""


@dataclass(frozen=True)
class VideoTrack:
    number: int
    width: int
    height: int
    codec: str


class _Reader:
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.offset = 0

    def exact(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            n = self._stream.readinto(view[got:])  # type: ignore[attr-defined]  # a buffered pipe or file
            if not n:
                raise MatroskaUnexpected(f"the stream ends {got} bytes into an element of {size} at byte "
                                         f"{self.offset}")
            got += n
        self.offset += size
        return buffer

    def first(self) -> int | None:
        byte = self._stream.read(1)
        if not byte:
            return None
        self.offset += 1
        return byte[0]


def _vint(reader: _Reader, first: int, *, marker: bool) -> tuple[int, bytes]:
    """An EBML variable-length number that starts with byte *first*: its value (with the length marker for an ID;
    -1 for a size of all ones, unknown) and its bytes."""
    length = next((n for n in range(1, 9) if first & (0x80 >> (n - 1))), 0)
    if not length:
        raise MatroskaUnexpected(f"an invalid EBML number at byte {reader.offset - 1}")
    raw = bytes([first]) + bytes(reader.exact(length - 1))
    value = int.from_bytes(raw, "big")
    if marker:
        return value, raw
    value &= (1 << (7 * length)) - 1
    return (-1 if value == (1 << (7 * length)) - 1 else value), raw


def _children(data: bytes | bytearray) -> list[tuple[int, bytes]]:
    """The elements inside a master element read whole (IDs with their markers)."""
    out: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        ident, at = _number(data, at, marker=True)
        size, at = _number(data, at, marker=False)
        out.append((ident, bytes(data[at:at + size])))
        at += size
    return out


def _number(data: bytes | bytearray, at: int, *, marker: bool) -> tuple[int, int]:
    first = data[at]
    length = next((n for n in range(1, 9) if first & (0x80 >> (n - 1))), 0)
    if not length or at + length > len(data):
        raise MatroskaUnexpected(f"an invalid EBML number inside an element, at its byte {at}")
    value = int.from_bytes(data[at:at + length], "big")
    if not marker:
        value &= (1 << (7 * length)) - 1
    return value, at + length


def _uint(data: bytes | bytearray) -> int:
    return int.from_bytes(data, "big")


def _video_track(tracks: bytes | bytearray) -> VideoTrack | None:
    for ident, entry in _children(tracks):
        if ident != _TRACK_ENTRY:
            continue
        fields = dict(_children(entry))
        if _uint(fields.get(_TRACK_TYPE, b"")) != 1:
            continue
        video = dict(_children(fields.get(_VIDEO, b"")))
        return VideoTrack(number=_uint(fields.get(_TRACK_NUMBER, b"")), width=_uint(video.get(_PIXEL_WIDTH, b"")),
                          height=_uint(video.get(_PIXEL_HEIGHT, b"")),
                          codec=fields.get(_CODEC_ID, b"").decode("ascii", errors="replace"))
    return None


def _copy(reader: _Reader, sink: IO[bytes], size: int) -> None:
    while size:
        chunk = reader.exact(min(size, _CHUNK))
        sink.write(chunk)
        size -= len(chunk)


def _block_start(data: bytearray, offset: int) -> tuple[int, int]:
    """A block's track number and where its 16-bit time starts."""
    track, at = _number(data, 0, marker=False)
    if at + 3 > len(data):
        raise MatroskaUnexpected(f"a cut block at byte {offset}")
    return track, at


def _header(reader: _Reader) -> tuple[int, int, bytes] | None:
    """The next element's ID, size (-1: unknown) and header bytes; None at the stream's end."""
    first = reader.first()
    if first is None:
        return None
    ident, id_bytes = _vint(reader, first, marker=True)
    start = reader.first()
    if start is None:
        raise MatroskaUnexpected(f"the stream ends inside an element's header at byte {reader.offset}")
    size, size_bytes = _vint(reader, start, marker=False)
    return ident, size, id_bytes + size_bytes


def pass_frames(source: IO[bytes], sink: IO[bytes], frame: Callable[[VideoTrack, float, memoryview], None],
                clock: Callable[[float], None] | None = None) -> int:
    """Copy the Matroska stream *source* to *sink*, calling *frame* with the video track, the time (seconds) and
    the picture's bytes of each video frame before it is written (what *frame* changes in them is what is written),
    and *clock* with the time of every other block (the sound going on where pictures do not come).
    Returns the number of video frames. MatroskaUnexpected when the stream is not as ffmpeg writes it; OSError
    (BrokenPipeError) when *sink* stops reading."""
    reader = _Reader(source)
    scale_ns = 1_000_000
    cluster_time = 0
    video: VideoTrack | None = None
    frames = 0
    while (header := _header(reader)) is not None:
        ident, size, raw = header
        sink.write(raw)
        if ident in _DESCENDED:
            continue
        if size < 0:
            raise MatroskaUnexpected(f"element {ident:#x} of unknown size at byte {reader.offset}")
        if ident not in _READ:
            _copy(reader, sink, size)
            continue
        if size > MAX_ELEMENT:
            raise MatroskaUnexpected(f"an element of {size} bytes at byte {reader.offset}: more than a frame")
        data = reader.exact(size)
        if ident == _INFO:
            scale_ns = _uint(dict(_children(data)).get(_TIMESTAMP_SCALE, b"")) or scale_ns
        elif ident == _TRACKS:
            video = _video_track(data)
        elif ident == _TIMESTAMP:
            cluster_time = _uint(data)
        else:  # a block: track number, a 16-bit signed time, flags, the frame
            track, at = _block_start(data, reader.offset - size)
            at_s = (cluster_time + int.from_bytes(data[at:at + 2], "big", signed=True)) * scale_ns / 1e9
            if video is not None and track == video.number:
                if data[at + 2] & 0x06:
                    raise MatroskaUnexpected(f"a laced video block at byte {reader.offset - size}")
                frame(video, at_s, memoryview(data)[at + 3:])
                frames += 1
            elif clock is not None:
                clock(at_s)
        sink.write(data)
    return frames
