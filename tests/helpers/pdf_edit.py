"""Rewrite a report.pdf the archive wrote (fpdf2) as a forger would: edit a page's decompressed content stream,
add objects, and write a fresh file with one xref and one %%EOF (no incremental update to give it away)."""
from __future__ import annotations

import re
import zlib

from catalog.package_verifier import _cmaps, _literal, _objects

__all__ = ["Pdf"]

_OBJ = re.compile(rb"(\d+) 0 obj(.*?)endobj", re.S)


class Pdf:
    def __init__(self, data: bytes) -> None:
        self.header = data[:data.index(b"\n") + 1]
        self.raw = {int(m.group(1)): m.group(2) for m in _OBJ.finditer(data)}
        trailer = re.search(rb"trailer\s*(<<.*?>>)\s*startxref", data, re.S)
        assert trailer is not None, "not a PDF with a classic trailer"
        self.trailer = trailer.group(1)
        self.maps = _cmaps(_objects(data))
        self.reverse = {name: {ch: gid for gid, ch in m.items()} for name, m in self.maps.items()}

    def stream(self, n: int) -> bytes:
        body = self.raw[n]
        length = re.search(rb"/Length (\d+)", body)
        assert length is not None
        start = body.index(b"stream") + len(b"stream")
        start += 2 if body[start:start + 2] == b"\r\n" else 1
        return zlib.decompress(body[start:start + int(length.group(1))])

    def set_stream(self, n: int, content: bytes) -> None:
        body = self.raw.get(n, b"\n<<\n/Filter /FlateDecode\n/Length 0\n>>\n")
        head = body[:body.index(b"stream")] if b"stream" in body else body
        data = zlib.compress(content)
        self.raw[n] = re.sub(rb"/Length \d+", b"/Length %d" % len(data), head) + b"stream\n" + data + b"\nendstream\n"

    def contents(self) -> list[int]:
        """The content stream objects the pages name, in object order."""
        return [int(m) for n in sorted(self.raw) for m in re.findall(rb"/Contents (\d+) 0 R", self.raw[n])]

    def strings(self, content: bytes) -> list[tuple[int, int, bytes, str]]:
        """(start, end, font, text) of each literal string a content stream shows."""
        found, font, i = [], b"", 0
        token = re.compile(rb"/(F\d+) [\d.]+ Tf|\(")
        while (match := token.search(content, i)) is not None:
            if match.group(1):
                font, i = match.group(1), match.end()
                continue
            raw, end = _literal(content, match.start())
            text = "".join(self.maps.get(font, {}).get(int.from_bytes(raw[k:k + 2], "big"), "?")
                           for k in range(0, len(raw), 2))
            found.append((match.start(), end, font, text))
            i = end
        return found

    def literal(self, font: bytes, text: str) -> bytes:
        """*text* as a literal string of glyph ids in *font* (only characters the font already holds)."""
        raw = b"".join(self.reverse[font][ch].to_bytes(2, "big") for ch in text)
        return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"

    def write(self) -> bytes:
        out = bytearray(self.header + b"%\xe2\xe3\xcf\xd3\n")
        offsets = {}
        for n in sorted(self.raw):
            offsets[n] = len(out)
            out += b"%d 0 obj" % n + self.raw[n] + b"endobj\n"
        size = max(offsets) + 1
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % size
        for n in range(1, size):
            out += (b"%010d 00000 n \n" % offsets[n]) if n in offsets else b"0000000000 65535 f \n"
        trailer = re.sub(rb"/Size \d+", b"/Size %d" % size, self.trailer)
        out += b"trailer\n" + trailer + b"\nstartxref\n%d\n%%%%EOF\n" % xref
        return bytes(out)
