"""ISO base media files (MP4, MOV, 3GP, M4A, INSV, HEIF): box framing and the movie's sample tables.

Two checks, both reading headers and the `moov` index only, never the media payload:

* the top-level walk: every box fits in the file, nothing dangles after the last one, a movie has its
  `moov` index (an Insta360 trailer after the boxes is recognised and stepped over);
* the sample tables: every chunk that `stco`/`co64` + `stsc` + `stsz`/`stz2` describe lies inside the file.
  A file cut short and then "repaired" by rewriting its `mdat` size passes the first check and fails here.

The work is bounded so a hostile index cannot hang a station or eat its memory: the `moov` read is capped
(`MAX_MOOV_BYTES`) and so are the table sizes (`MAX_TABLE_ENTRIES`); past a cap, and on fragmented movies
(their samples live in `moof` fragments), the sample check is skipped and a note says so - never a problem.
"""
from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "INSV_MAGIC", "MAX_BOXES", "MAX_MOOV_BYTES", "MAX_TABLE_ENTRIES", "MAX_TRACKS", "Box", "BoxCheck",
    "check_image_boxes", "check_movie_boxes", "check_sample_tables", "major_brand",
]

#: Top-level boxes walked before giving up (real files have < 20; fragmented ones a few thousand).
MAX_BOXES = 10_000
#: The largest `moov` index read for the sample-table check (a 10-hour recording's index is a few MiB).
MAX_MOOV_BYTES = 64 * 1024 * 1024
#: Entries in one track's sample-size or chunk-offset table beyond which its chunks are not checked; also the
#: number of chunks checked in all tracks together (about two seconds of work).
MAX_TABLE_ENTRIES = 4_000_000
#: Tracks looked at (real movies have fewer than twenty).
MAX_TRACKS = 256
#: Insta360 cameras append a trailer (gyro, thumbnails) after the last box; the file ends with this text.
INSV_MAGIC = b"8db42d694ccc418790edff439fe026bf"
_INSV_FOOTER_BYTES = 72  # 32 reserved, u32 LE trailer size, u32 LE version, 32-byte magic
_SWAP = sys.byteorder == "little"  # tables are big-endian


@dataclass(frozen=True)
class Box:
    name: str
    offset: int
    size_bytes: int
    header_bytes: int  # 8, or 16 with a 64-bit size

    @property
    def payload(self) -> int:
        return self.offset + self.header_bytes

    @property
    def end(self) -> int:
        return self.offset + self.size_bytes


@dataclass(frozen=True)
class BoxCheck:
    problem: str | None  # None: nothing wrong found
    note: str | None = None  # worth knowing, not damage (a trailer stepped over, a check skipped)


def major_brand(head: bytes) -> str | None:
    """The `ftyp` major brand ("isom", "qt  ", "M4A ", "heic"), None when the file does not start with `ftyp`."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12].decode("latin-1")
    return None


def _insv_media_end(fh: BinaryIO, size: int) -> int | None:
    """Where the boxes end when an Insta360 trailer follows them; None when there is no such trailer."""
    if size < _INSV_FOOTER_BYTES:
        return None
    fh.seek(size - _INSV_FOOTER_BYTES)
    footer = fh.read(_INSV_FOOTER_BYTES)
    if footer[-32:] != INSV_MAGIC:
        return None
    trailer_bytes = int.from_bytes(footer[32:36], "little")
    if not _INSV_FOOTER_BYTES <= trailer_bytes <= size:
        return None
    return size - trailer_bytes


def _walk(fh: BinaryIO, end: int) -> tuple[list[Box], str | None]:
    """The top-level boxes up to *end* and the first framing problem; stops quietly after MAX_BOXES (the boxes then
    end before *end*)."""
    boxes: list[Box] = []
    offset = 0
    for _ in range(MAX_BOXES):
        if offset == end:
            break
        fh.seek(offset)
        header = fh.read(16)
        if len(header) < 8 or offset + 8 > end:
            return boxes, f"{end - offset} stray byte(s) after the last box at offset {offset}"
        box_size, box_type = struct.unpack(">I4s", header[:8])
        name = box_type.decode("latin-1")
        header_bytes = 8
        if box_size == 1:
            if len(header) < 16 or offset + 16 > end:
                return boxes, f"box {name!r} at offset {offset} is cut inside its header"
            box_size, header_bytes = struct.unpack(">Q", header[8:16])[0], 16
        elif box_size == 0:
            box_size = end - offset  # "to end of file"
        if box_size < header_bytes:
            return boxes, f"box {name!r} at offset {offset} declares an impossible size {box_size}"
        if offset + box_size > end:
            return boxes, (f"box {name!r} at offset {offset} declares {box_size} bytes but only "
                           f"{end - offset} remain (file truncated)")
        boxes.append(Box(name, offset, box_size, header_bytes))
        offset += box_size
    return boxes, None


def check_image_boxes(fh: BinaryIO, size: int) -> BoxCheck:
    """HEIF/HEIC/AVIF: the boxes fit the file and the `meta` box that describes the image is there."""
    boxes, problem = _walk(fh, size)
    if problem is None and not any(b.name == "meta" for b in boxes):
        problem = "no 'meta' box: the image has no description of its items (truncated or not an image)"
    return BoxCheck(problem)


def check_movie_boxes(fh: BinaryIO, size: int) -> BoxCheck:
    """MP4/MOV/3GP/M4A/INSV: the top-level walk, then every chunk of every track inside the file."""
    media_end = _insv_media_end(fh, size)
    notes: list[str] = []
    if media_end is not None:
        notes.append(f"Insta360 trailer of {size - media_end} bytes after the boxes")
    boxes, problem = _walk(fh, size if media_end is None else media_end)
    if problem is not None:
        return BoxCheck(problem, _join(notes))
    moov = next((b for b in boxes if b.name == "moov"), None)
    if moov is None and boxes and boxes[-1].end != (size if media_end is None else media_end):
        notes.append(f"more than {MAX_BOXES} top-level boxes: the walk stopped at offset {boxes[-1].end}")
        return BoxCheck(None, _join(notes))
    if moov is None:
        return BoxCheck("no 'moov' index box: the recording was not finalised (truncated or still recording)",
                        _join(notes))
    if any(b.name == "moof" for b in boxes):
        # Only the index says a movie is fragmented (its 'mvex' box, checked below): a 'moof' appended to a cut
        # file must not switch the sample-table check off.
        notes.append("'moof' fragment boxes present")
    if moov.size_bytes - moov.header_bytes > MAX_MOOV_BYTES:
        notes.append(f"index ('moov') of {moov.size_bytes} bytes is larger than the {MAX_MOOV_BYTES} bytes "
                     f"read for checking: sample tables not checked")
        return BoxCheck(None, _join(notes))
    fh.seek(moov.payload)
    result = check_sample_tables(fh.read(moov.size_bytes - moov.header_bytes), size)
    return BoxCheck(result.problem, _join([*notes, result.note] if result.note else notes))


def _join(notes: list[str]) -> str | None:
    return "; ".join(notes) or None


# ----------------------------------------------------------------------------- the sample tables


class _Corrupt(Exception):
    """The index itself is malformed; the message says where and with what values."""


def _children(buf: bytes, start: int, end: int, where: str) -> Iterator[tuple[str, int, int]]:
    """(name, payload start, box end) of the boxes in buf[start:end]; a few trailing bytes (terminators) are ignored."""
    offset = start
    while offset + 8 <= end:
        box_size, box_type = struct.unpack_from(">I4s", buf, offset)
        name = box_type.decode("latin-1")
        header = 8
        if box_size == 1:
            if offset + 16 > end:
                raise _Corrupt(f"box {name!r} in {where} is cut inside its header")
            box_size, header = struct.unpack_from(">Q", buf, offset + 8)[0], 16
        elif box_size == 0:
            box_size = end - offset
        if box_size < header or offset + box_size > end:
            raise _Corrupt(f"box {name!r} in {where} declares {box_size} bytes at index offset {offset} "
                           f"but its parent ends at index offset {end}")
        yield name, offset + header, offset + box_size
        offset += box_size


def _find(buf: bytes, start: int, end: int, where: str, *path: str) -> tuple[int, int] | None:
    """The payload span of the first box at *path* below buf[start:end]."""
    for depth, name in enumerate(path):
        for child, payload, box_end in _children(buf, start, end, where + "/" + "/".join(path[:depth])):
            if child == name:
                start, end = payload, box_end
                break
        else:
            return None
    return start, end


@dataclass(frozen=True)
class _Tables:
    track_id: int
    offsets: array[int]  # chunk offsets (stco / co64)
    runs: array[int]  # stsc: first_chunk, samples_per_chunk, description index; flattened
    constant_size: int  # stsz sample_size (0: sizes are listed)
    sample_count: int
    sizes: array[int]  # listed sample sizes (empty when constant)


def _table(buf: bytes, span: tuple[int, int], code: str, count_at: int, item_bytes: int, where: str,
           fields: int = 1) -> array[int]:
    """A big-endian table after the entry count at *count_at*: entries of *fields* integers of *item_bytes* each,
    flattened; checked against its box."""
    start, end = span
    if end - start < count_at + 4:
        raise _Corrupt(f"{where} {code!r} box of {end - start} bytes is too short to hold its entry count")
    declared = struct.unpack_from(">I", buf, start + count_at)[0]
    first, entry_bytes = start + count_at + 4, item_bytes * fields
    if declared * entry_bytes > end - first:
        raise _Corrupt(f"{where} {code!r} declares {declared} entries but its box holds only "
                       f"{(end - first) // entry_bytes}")
    if declared > MAX_TABLE_ENTRIES:
        raise _TooBig(f"{where} {code!r} lists {declared} entries (more than the {MAX_TABLE_ENTRIES} checked)")
    table = array({2: "H", 4: "I", 8: "Q"}[item_bytes])
    table.frombytes(buf[first:first + declared * entry_bytes])
    if _SWAP:
        table.byteswap()
    return table


class _TooBig(Exception):
    """A table is larger than the check's budget: not damage, the track is simply not checked."""


def _compact_sizes(buf: bytes, span: tuple[int, int], where: str) -> tuple[int, array[int]]:
    start, end = span
    if end - start < 12:
        raise _Corrupt(f"{where} 'stz2' box of {end - start} bytes is too short to hold its entry count")
    field_bits = buf[start + 7]
    count = struct.unpack_from(">I", buf, start + 8)[0]
    if field_bits not in (4, 8, 16):
        raise _Corrupt(f"{where} 'stz2' declares a field size of {field_bits} bits (4, 8 or 16 allowed)")
    if field_bits == 16:
        return count, _table(buf, span, "stz2", 8, 2, where)
    needed = (count * field_bits + 7) // 8
    if needed > end - start - 12:
        raise _Corrupt(f"{where} 'stz2' declares {count} entries but its box holds only "
                       f"{(end - start - 12) * 8 // field_bits}")
    if count > MAX_TABLE_ENTRIES:
        raise _TooBig(f"{where} 'stz2' lists {count} entries (more than the {MAX_TABLE_ENTRIES} checked)")
    raw = buf[start + 12:start + 12 + needed]
    if field_bits == 8:
        return count, array("I", list(raw))
    nibbles = array("I", (n for byte in raw for n in (byte >> 4, byte & 15)))
    return count, nibbles[:count]


def _is_self_contained(buf: bytes, minf: tuple[int, int], where: str) -> bool:
    """False when the track's data reference points at another file (a QuickTime reference movie)."""
    dref = _find(buf, minf[0], minf[1], where, "dinf", "dref")
    if dref is None or dref[1] - dref[0] < 8 + 12:
        return True
    for _name, payload, _end in _children(buf, dref[0] + 8, dref[1], where + "/dinf/dref"):
        flags = int.from_bytes(buf[payload + 1:payload + 4], "big")
        return bool(flags & 1)
    return True


def _track_tables(buf: bytes, trak: tuple[int, int], index: int) -> _Tables | None:
    where = f"track #{index}"
    track_id = index
    tkhd = _find(buf, trak[0], trak[1], where, "tkhd")
    if tkhd is not None and tkhd[1] - tkhd[0] >= 24:
        id_at = tkhd[0] + (12 if buf[tkhd[0]] == 0 else 20)  # after version/flags and two (32 or 64-bit) times
        if id_at + 4 <= tkhd[1]:
            track_id = struct.unpack_from(">I", buf, id_at)[0]
            where = f"track {track_id}"
    minf = _find(buf, trak[0], trak[1], where, "mdia", "minf")
    if minf is None or not _is_self_contained(buf, minf, where):
        return None
    stbl = _find(buf, minf[0], minf[1], where, "stbl")
    if stbl is None:
        return None
    spans: dict[str, tuple[int, int]] = {}
    for name, payload, box_end in _children(buf, stbl[0], stbl[1], where + "/stbl"):
        spans.setdefault(name, (payload, box_end))
    if "stco" in spans:
        offsets = _table(buf, spans["stco"], "stco", 4, 4, where)
    elif "co64" in spans:
        offsets = _table(buf, spans["co64"], "co64", 4, 8, where)
    else:
        return None
    if "stsc" not in spans:
        return None
    runs = _table(buf, spans["stsc"], "stsc", 4, 4, where, fields=3)
    if "stsz" in spans:
        start, end = spans["stsz"]
        if end - start < 12:
            raise _Corrupt(f"{where} 'stsz' box of {end - start} bytes is too short to hold its sample count")
        constant, count = struct.unpack_from(">II", buf, start + 4)
        sizes = array("I") if constant else _table(buf, spans["stsz"], "stsz", 8, 4, where)
    elif "stz2" in spans:
        constant = 0
        count, sizes = _compact_sizes(buf, spans["stz2"], where)
    else:
        return None
    return _Tables(track_id, offsets, runs, constant, count, sizes)


def _first_chunk_past_end(t: _Tables, file_size: int) -> str | None:
    chunks = len(t.offsets)
    sample = 0
    total = t.sample_count if t.constant_size else len(t.sizes)
    entries = len(t.runs) // 3
    for i in range(entries):
        first, per_chunk = t.runs[3 * i], t.runs[3 * i + 1]
        last = t.runs[3 * (i + 1)] - 1 if i + 1 < entries else chunks
        if first < 1 or last < first:
            return None  # a malformed run: ffprobe judges such tables, the byte check stops here
        for chunk in range(first, min(last, chunks) + 1):
            count = min(per_chunk, total - sample)
            if count <= 0:
                return None
            chunk_bytes = count * t.constant_size if t.constant_size else sum(t.sizes[sample:sample + count])
            offset = t.offsets[chunk - 1]
            if offset + chunk_bytes > file_size:
                return (f"track {t.track_id} chunk {chunk} at offset {offset} + {chunk_bytes} bytes ends past "
                        f"the end of the {file_size}-byte file")
            sample += count
    return None


def check_sample_tables(moov: bytes, file_size: int) -> BoxCheck:
    """Every chunk of every self-contained track of *moov* (its payload) lies inside a *file_size*-byte file.

    Pure: bytes in, verdict out. The first chunk found past the end is the problem, with its values.
    """
    notes: list[str] = []
    try:
        traks: list[tuple[int, int]] = []
        track_count = 0
        for name, payload, end in _children(moov, 0, len(moov), "moov"):
            if name == "mvex":
                return BoxCheck(None, "fragmented movie ('mvex'): sample tables not checked")
            if name == "trak":
                track_count += 1  # only the first MAX_TRACKS are kept: a hostile index of millions stays small
                if len(traks) < MAX_TRACKS:
                    traks.append((payload, end))
        if track_count > MAX_TRACKS:
            notes.append(f"{track_count} tracks: only the first {MAX_TRACKS} were checked")
        budget = MAX_TABLE_ENTRIES
        for index, trak in enumerate(traks[:MAX_TRACKS], start=1):
            try:
                tables = _track_tables(moov, trak, index)
            except _TooBig as exc:
                notes.append(f"{exc}: its chunks were not checked")
                continue
            if tables is None:
                continue
            if len(tables.offsets) > budget:
                notes.append(f"track {tables.track_id} and later ones not checked: more than {MAX_TABLE_ENTRIES} "
                             f"chunks in all")
                break
            budget -= len(tables.offsets)
            problem = _first_chunk_past_end(tables, file_size)
            if problem is not None:
                return BoxCheck(problem, _join(notes))
    except _Corrupt as exc:
        return BoxCheck(f"index ('moov') is corrupt: {exc}", _join(notes))
    return BoxCheck(None, _join(notes))
