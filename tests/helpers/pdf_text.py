"""The text layer of a PDF fpdf2 wrote, read back with the standard library only: verify.py's own reader
(catalog/package_verifier.py), which compares report.pdf with the signed manifests."""
from __future__ import annotations

from catalog.package_verifier import pdf_text

__all__ = ["pdf_text"]
