"""The text layer of a PDF fpdf2 wrote, read back with the standard library only (no pypdf or poppler here).

fpdf2 writes text as 2-byte glyph ids in literal strings (`(…) Tj`) after a font selection (`/F1 9.00 Tf`) and,
for every embedded TrueType font, a ToUnicode CMap of `bfchar` pairs: mapping each font's ids back through its
map gives the text a reader's copy-and-paste or search gives. Enough for the PDFs this project writes, not a
general PDF parser.
"""
from __future__ import annotations

import re
import zlib

_OBJECT = re.compile(rb"(\d+) 0 obj(.*?)endobj", re.S)
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
_FONT_REF = re.compile(rb"/(F\d+) (\d+) 0 R")
_TO_UNICODE = re.compile(rb"/ToUnicode (\d+) 0 R")
_TEXT_OP = re.compile(rb"/(F\d+) [\d.]+ Tf|\(")
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]+)>")
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}


def _objects(pdf: bytes) -> dict[int, bytes]:
    """Each `N 0 obj … endobj`: its dictionary text, with its stream decompressed after it."""
    found = {}
    for match in _OBJECT.finditer(pdf):
        body = match.group(2)
        stream = _STREAM.search(body)
        if stream is not None:
            try:
                data = zlib.decompress(stream.group(1))
            except zlib.error:
                data = stream.group(1)
            body = body[:stream.start()] + data
        found[int(match.group(1))] = body
    return found


def _literal(content: bytes, start: int) -> tuple[bytes, int]:
    """The literal string opening at content[start] ("("), escapes resolved, and the index after it."""
    out, depth, i = bytearray(), 1, start + 1
    while depth:
        ch = content[i]
        if ch == 0x5C:  # backslash
            nxt = content[i + 1]
            digits = re.match(rb"[0-7]{1,3}", content[i + 1:i + 4])
            if digits is not None:
                out.append(int(digits.group(), 8) & 0xFF)
                i += 1 + len(digits.group())
            else:
                out += _ESCAPES.get(nxt, bytes([nxt]))
                i += 2
            continue
        depth += ch == 0x28
        depth -= ch == 0x29
        if depth:
            out.append(ch)
        i += 1
    return bytes(out), i


def _cmaps(objects: dict[int, bytes]) -> dict[bytes, dict[int, str]]:
    """Font resource name (b"F1") → its glyph id → text map, from the fonts' ToUnicode CMaps."""
    maps: dict[bytes, dict[int, str]] = {}
    for name, ref in _FONT_REF.findall(b"".join(objects.values())):
        unicode_ref = _TO_UNICODE.search(objects.get(int(ref), b""))
        if unicode_ref is None:
            continue
        maps[name] = {int(code, 16): bytes.fromhex(uni.decode()).decode("utf-16-be")
                      for code, uni in _BFCHAR.findall(objects.get(int(unicode_ref.group(1)), b""))}
    return maps


def pdf_text(pdf: bytes) -> str:
    """All text the PDF shows, in content-stream order, joined without separators (a wrapped hash reads whole)."""
    objects = _objects(pdf)
    maps = _cmaps(objects)
    parts: list[str] = []
    for body in objects.values():
        if b" Tj" not in body:
            continue
        glyphs: dict[int, str] = {}
        i = 0
        while (match := _TEXT_OP.search(body, i)) is not None:
            if match.group(1) is not None:
                glyphs, i = maps.get(match.group(1), {}), match.end()
                continue
            raw, i = _literal(body, match.start())
            parts.append("".join(glyphs.get(int.from_bytes(raw[k:k + 2], "big"), "") for k in range(0, len(raw), 2)))
    return "".join(parts)
