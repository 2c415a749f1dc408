"""Small real text-record files (PDF, JPEG, Word), made in memory: what clerks attach to cases."""
from __future__ import annotations

import io
import zipfile

from PIL import Image


def pdf_bytes() -> bytes:
    """A one-page PDF (a blank white page)."""
    out = io.BytesIO()
    Image.new("RGB", (60, 80), "white").save(out, format="PDF")
    return out.getvalue()


def jpeg_bytes() -> bytes:
    """A small grey JPEG (a photographed form)."""
    out = io.BytesIO()
    Image.new("L", (40, 40), 200).save(out, format="JPEG")
    return out.getvalue()


def docx_bytes() -> bytes:
    """A minimal Word document: the ZIP members that make a .docx recognisable."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document>询问笔录</w:document>")
    return out.getvalue()
