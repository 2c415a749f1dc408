"""The parts of a package other modules make, called with what the export knows: RFC 3161 timestamps
(catalog.timestamping), PREMIS (catalog.premis), the court report (catalog.court_report) and the examiner's
verify.py (catalog/package_verifier.py, shipped as a file; the archive uses only its token parser, through
catalog.timestamping.token_signer, so that it writes what verify.py reads)."""
from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from catalog.court_report import write_reports as write_court_reports
from catalog.premis import write_premis
from catalog.timestamping import NO_TRUSTED_TIME, token_signer, try_timestamp

__all__ = ["ASIDE_BYTES", "PendingReports", "named_token", "render_reports", "timestamp", "verifier_source",
           "write_premis"]

logger = logging.getLogger(__name__)

_VERIFIER = Path(__file__).resolve().parent.parent / "package_verifier.py"


def timestamp(data: bytes, settings: Any, *, what: str) -> tuple[bytes | None, str]:
    """An RFC 3161 TimeStampResp (DER) over SHA-256(*data*) and what it says, or None and why not (no authority
    configured, or it failed: logged, and the package is written without trusted time, as anchors are)."""
    if settings is None:
        return None, NO_TRUSTED_TIME
    stamp = try_timestamp(data, settings, what=what)
    return stamp.token, stamp.note


def named_token(token: bytes | None, note: str, where: Path) -> tuple[bytes | None, str]:
    """*token* (the package's) kept only if its TSA is one the signed export-anchor.json *where* names (the TSA that
    stamped the export anchor moments before): verify.py refuses a token from any TSA the package does not name."""
    if token is None:
        return token, note
    named = json.loads(where.read_text(encoding="utf-8")).get("timestamp_signers") or []
    signer = token_signer(token)
    if signer in named:
        return token, note
    logger.warning("package timestamp dropped: its TSA certificate %s is not one the package names (%s)", signer,
                   ", ".join(named) or "none: the export anchor got no timestamp")
    return None, (f"{NO_TRUSTED_TIME} (the package's token came from TSA certificate {signer}, but the export "
                  "anchor has " + (f"tokens from {', '.join(named)} only" if named else "no token") + ")")


#: Packages whose originals are at least this large render the court report in a process of their own while
#: the originals are copied (its fixed cost, the CJK font and the PDF's tables, about 3 s, then hides behind the
#: copy); smaller ones render it after the copy, in this process (starting a process costs about a second).
ASIDE_BYTES = 256 * 2**20


class PendingReports:
    """data/report.html and data/report.pdf, made from the payload files already written (items.json, events,
    signed manifests), in the agency's zone (EVIDENCE_STATION_TZ) with its CJK font (EVIDENCE_REPORT_FONT).

    *expected*: each original's SHA-256 as the copy will have measured it — the copy refuses any other, and the
    export with it — so the report reads no original itself. With *payload_bytes* >= ASIDE_BYTES the report is
    rendered in a spawned process from now on; `finish()` waits for it (or renders it now) and returns what was
    not made, and why (no usable font: no PDF). `cancel()` when the export fails first."""

    def __init__(self, data: Path, *, root_fingerprint: str | None, settings: Any, expected: Mapping[str, str],
                 payload_bytes: int, language: str = "zh") -> None:
        options: dict[str, Any] = {"language": language}
        if settings is not None:
            options.update(tz=settings.station_tz, font=str(settings.report_font))
        self._args = (str(data), root_fingerprint, dict(expected), options)
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[list[str]] | None = None
        if payload_bytes >= ASIDE_BYTES:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            self._future = self._pool.submit(render_reports, *self._args)

    def finish(self) -> list[str]:
        if self._future is None:
            return render_reports(*self._args)
        try:
            return self._future.result()
        finally:
            self.cancel()

    def cancel(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def render_reports(data: str, root_fingerprint: str | None, expected: dict[str, str],
                   options: dict[str, Any]) -> list[str]:
    """The court report for the payload in *data* (a plain function of plain values: it runs in a spawned
    process too); what was not made, and why."""
    if "font" in options:
        options = {**options, "font": Path(options["font"])}
    written = write_court_reports(Path(data), root_fingerprint=root_fingerprint, hashed=expected, **options)
    return list(written.notes)


def verifier_source() -> bytes:
    """The bytes of verify.py for the bag root (catalog/package_verifier.py, installed with the package)."""
    return _VERIFIER.read_bytes()
