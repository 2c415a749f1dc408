"""The package verifier's search for active content in report.pdf (catalog.package_verifier.pdf_active_names):
bytes that spell "/JS" by chance inside stream data are not a script; every place a viewer reads a dictionary is
searched, including the tricks that hide a dictionary behind a stream that is not one."""
from __future__ import annotations

import zlib

import pytest

from catalog.package_verifier import pdf_active_names, pdf_without_stream_data


def _stream(number: int, data: bytes, length: int | None = None, extra: bytes = b"") -> bytes:
    size = len(data) if length is None else length
    return (b"%d 0 obj\n<< /Filter /FlateDecode /Length %d%s >>\nstream\n" % (number, size, extra)
            + data + b"\nendstream\nendobj\n")


def _pdf(*objects: bytes, trailer: bytes = b"<< /Size 9 /Root 1 0 R >>") -> bytes:
    return (b"%PDF-1.3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R /OpenAction [3 0 R /FitH null] >>\nendobj\n"
            + b"".join(objects) + b"xref\n0 0\ntrailer\n" + trailer + b"\nstartxref\n0\n%%EOF\n")


# Compressed bytes and a font program that happen to hold the names, as about one real report in a hundred did
# (CI, 2026-12-02: "data/report.pdf: the PDF holds actions, scripts or embedded files" on an untouched package).
_CHANCE = zlib.compress(b"\x00\x01glyf/AA\x00/EmbeddedFile \x7f/Launch\x02") + b"\x9c/JS\x00/XObject)(>>"


def test_names_spelled_by_chance_inside_stream_data_are_not_active_content() -> None:
    pdf = _pdf(_stream(4, _CHANCE, extra=b" /Length1 900"), _stream(5, b"BT /F1 9 Tf (/JavaScript) Tj ET"),
               b"6 0 obj\n<< /Length 3 % a comment's ( or >> is not a string or an end\n>>\nstream\n/AA\nendstream\n"
               b"endobj\n")
    assert pdf_active_names(pdf) == []
    assert b"/JS" not in pdf_without_stream_data(pdf) and b"/Length1 900 >>\nstream\n" in pdf_without_stream_data(pdf)


@pytest.mark.parametrize(("pdf", "names"), [
    (_pdf(b"6 0 obj\n<< /Type /Action /S /JavaScript /JS (app.alert\\(1\\)) >>\nendobj\n"), ["JS", "JavaScript"]),
    (_pdf(trailer=b"<< /Size 9 /Root 1 0 R /AA << /O 7 0 R >> >>"), ["AA"]),
    (_pdf(b"6 0 obj\n<< /Names << /Embedded#46iles 8 0 R >> >>\nendobj\n"), ["EmbeddedFiles"]),
    # a stream whose data is followed by a dictionary: the data is cut, what follows endstream is read
    (_pdf(_stream(4, _CHANCE) + b"7 0 obj\n<< /S /Launch /F (calc.exe) >>\nendobj\n"), ["Launch"]),
    # a /Length that sizes the data past the script: "endstream" does not follow, so nothing is cut
    (_pdf(_stream(4, b"x /S /JavaScript /JS (1)", length=2)), ["JS", "JavaScript"]),
    # ">> stream" written inside a string: the dictionary has not closed, its script is read
    (_pdf(b"6 0 obj\n<< /T (>> stream\n) /Length 17 /S /JavaScript /JS (x) (\nendstream) >>\nendobj\n"),
     ["JS", "JavaScript"]),
    # the /Length of a nested dictionary does not size the outer object's stream
    (_pdf(b"6 0 obj\n<< /P << /Length 19 >> /N 1 >>\nstream\n/S /JavaScript /JS ()\nendstream\nendobj\n"),
     ["JS", "JavaScript"]),
    # a stream sized by an indirect /Length (fpdf2 never writes one) is read whole
    (_pdf(b"6 0 obj\n<< /Length 9 0 R >>\nstream\n/AA\nendstream\nendobj\n"), ["AA"]),
    # an object stream, whose compressed data could hold any dictionary, is named by its type
    (_pdf(_stream(4, _CHANCE, extra=b" /Type /ObjStm /N 1 /First 4")), ["ObjStm"]),
    # a dictionary that never closes: everything from it on is read
    (_pdf(b"6 0 obj\n<< /Length 3 /A (unclosed\nstream\n/AA\nendstream\nendobj\n"), ["AA"]),
])
def test_active_content_declared_anywhere_a_viewer_reads_a_dictionary_is_named(pdf: bytes, names: list[str]) -> None:
    assert pdf_active_names(pdf) == names
