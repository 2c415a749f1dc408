"""Trusted time in a package: with a real RFC 3161 TSA on 127.0.0.1 (tests.helpers.tsa) the package's tag manifest
and its export anchor carry tokens the real `openssl ts -verify` accepts; with the TSA away the package is written
anyway and says it has no trusted time."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlmodel import Session

from catalog.package import ExportResult, PackageSigning, export_package
from catalog.package.hooks import named_token
from catalog.timestamping import NO_TRUSTED_TIME, timestamp, token_signer
from catalog.types import utcnow
from ingest.config import Settings
from tests.helpers import tsa as tsa_helpers
from tests.helpers.package_archive import STATION, small_archive

# The shared fixtures, registered in this module.
local_tsa = tsa_helpers.local_tsa
down_tsa_url = tsa_helpers.down_tsa_url


def _export(engine, store, tmp_path: Path, tsa_url: str) -> ExportResult:
    key, ids = small_archive(engine, store, tmp_path)
    settings = dataclasses.replace(Settings.defaults(), tsa_url=tsa_url, tsa_timeout_s=5)
    with Session(engine) as session:
        signing = PackageSigning(station=STATION, station_key=key, export_key_path=tmp_path / "export.pem",
                                 settings=settings)
        return export_package(session, store, out=tmp_path / "package", by="clerk", now=utcnow(), reason="移送法院",
                              signing=signing, refs=[str(i) for i in ids])


def _openssl_ts(tsa: tsa_helpers.LocalTsa, data: Path, token: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "ts", "-verify", "-data", str(data), "-in", str(token), "-CAfile", str(tsa.ca),
                           "-untrusted", str(tsa.cert)], capture_output=True, text=True, timeout=60, check=False)


def test_the_package_and_its_export_anchor_are_timestamped(engine, store, tmp_path, local_tsa):
    result = _export(engine, store, tmp_path, local_tsa.url())
    bag = result.path
    assert result.trusted_time.startswith("RFC 3161 time")
    stamped = _openssl_ts(local_tsa, bag / "tagmanifest-sha256.txt", bag / "tagmanifest-sha256.txt.tsr")
    assert stamped.returncode == 0 and "Verification: OK" in stamped.stdout, stamped.stdout + stamped.stderr
    assert "tagmanifest-sha256.txt.tsr" not in (bag / "tagmanifest-sha256.txt").read_text()
    where = json.loads((bag / "data" / "custody" / "export-anchor.json").read_text())
    token = bag / where["timestamp"]
    assert token.name.endswith(".body.json.tsr") and where["trusted_time"].startswith("RFC 3161 time")
    assert token.read_bytes() == store.get_record(where["record_name"].removesuffix(".json") + ".tsr")
    anchored = _openssl_ts(local_tsa, token.with_name(token.name.removesuffix(".tsr")), token)
    assert anchored.returncode == 0 and "Verification: OK" in anchored.stdout, anchored.stdout + anchored.stderr
    # the signed export-anchor.json names the TSA certificate (ESS hash) that signed both tokens
    tsa_der = x509.load_pem_x509_certificate(local_tsa.cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert where["timestamp_signers"] == [f"sha256:{hashlib.sha256(tsa_der).hexdigest()}"]
    assert token_signer((bag / "tagmanifest-sha256.txt.tsr").read_bytes()) == where["timestamp_signers"][0]


def test_a_package_token_from_a_tsa_the_export_anchor_does_not_name_is_not_kept(tmp_path, local_tsa):
    """Between the export anchor's token and the package's, the TSA changed (a fail-over to another authority): the
    package's token would name a TSA the signed package does not, so it is dropped and the note says why."""
    where = tmp_path / "export-anchor.json"
    ours = timestamp(b"anchor body", dataclasses.replace(Settings.defaults(), tsa_url=local_tsa.url("ok")))
    assert ours is not None
    where.write_text(json.dumps({"timestamp_signers": [token_signer(ours)]}))
    own, _ = tsa_helpers.outsider_token(tmp_path / "other-tsa", b"tag manifest")
    assert named_token(own, "RFC 3161 time …", where) == (None, (
        f"{NO_TRUSTED_TIME} (the package's token came from TSA certificate {token_signer(own)}, but the export "
        f"anchor has tokens from {token_signer(ours)} only)"))
    assert named_token(ours, "RFC 3161 time …", where) == (ours, "RFC 3161 time …")
    where.write_text(json.dumps({"timestamp_signers": []}))
    assert named_token(ours, "x", where)[0] is None


def test_a_tsa_that_is_away_never_holds_a_package_back(engine, store, tmp_path, down_tsa_url):
    result = _export(engine, store, tmp_path, down_tsa_url)
    assert result.trusted_time.startswith(NO_TRUSTED_TIME) and "cannot reach" in result.trusted_time
    assert not list(result.path.rglob("*.tsr"))
    where = json.loads((result.path / "data" / "custody" / "export-anchor.json").read_text())
    assert where["timestamp"] is None and where["trusted_time"] == NO_TRUSTED_TIME
    assert where["timestamp_signers"] == []
