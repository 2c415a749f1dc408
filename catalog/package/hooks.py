"""The parts of a package other modules make, called with what the export knows: RFC 3161 timestamps
(catalog.timestamping), PREMIS (catalog.premis), the court report (catalog.court_report) and the examiner's
verify.py (catalog/package_verifier.py, shipped as a file, never imported)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from catalog.court_report import write_reports as write_court_reports
from catalog.premis import write_premis
from catalog.timestamping import NO_TRUSTED_TIME, try_timestamp

__all__ = ["timestamp", "verifier_source", "write_premis", "write_reports"]

_VERIFIER = Path(__file__).resolve().parent.parent / "package_verifier.py"


def timestamp(data: bytes, settings: Any, *, what: str) -> tuple[bytes | None, str]:
    """An RFC 3161 TimeStampResp (DER) over SHA-256(*data*) and what it says, or None and why not (no authority
    configured, or it failed: logged, and the package is written without trusted time, as anchors are)."""
    if settings is None:
        return None, NO_TRUSTED_TIME
    stamp = try_timestamp(data, settings, what=what)
    return stamp.token, stamp.note


def write_reports(data: Path, *, root_fingerprint: str | None, settings: Any,
                  hashed: Mapping[str, str]) -> list[str]:
    """data/report.html and data/report.pdf from the payload files already written, in the agency's zone
    (EVIDENCE_STATION_TZ) with its CJK font (EVIDENCE_REPORT_FONT); the report's defaults without *settings*.
    *hashed*: the originals' SHA-256 as the export measured them (the report reads no original again). What was
    not made, and why (no usable font: no PDF)."""
    if settings is None:
        written = write_court_reports(data, root_fingerprint=root_fingerprint, hashed=hashed)
    else:
        written = write_court_reports(data, root_fingerprint=root_fingerprint, tz=settings.station_tz,
                                      font=Path(settings.report_font), hashed=hashed)
    return written.notes


def verifier_source() -> bytes:
    """The bytes of verify.py for the bag root (catalog/package_verifier.py, installed with the package)."""
    return _VERIFIER.read_bytes()
