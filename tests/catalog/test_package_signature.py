"""The package signature an examiner checks with the real openssl binary, the certificates it rests on, the keys an
export refuses to sign without, and an archive without an agency root, which still exports and says so."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import bagit
import pytest
from sqlmodel import Session, select

from catalog import CustodyEvent, open_catalog
from ingest.config import Settings
from tests.cli import run_cli
from tests.conftest import _missing
from tests.helpers.package_archive import CASE, CLERK, STATION, export, make_archive, ok, set_up_root

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("openssl", "bash"):
        if shutil.which(tool) is None:
            _missing(tool)


def _sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """*command* as an examiner types it into bash (process substitution included), in the package folder."""
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, check=False)


def _signature_check(export_pem: str) -> str:
    return (f"openssl pkeyutl -verify -pubin -inkey <(openssl x509 -in {export_pem} -pubkey -noout) -rawin "
            "-in tagmanifest-sha256.txt -sigfile tagmanifest-sha256.txt.sig")


def _exported(env: dict[str, str]) -> list[CustodyEvent]:
    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            return list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == "exported")))
    finally:
        engine.dispose()


def test_openssl_verifies_the_package_signature_and_the_certificates_as_verify_txt_says(samples, env, tmp_path):
    make_archive(samples, env, tmp_path)
    root_fp = set_up_root(env, tmp_path)
    out = tmp_path / "package"
    summary = export(env, out)
    export_fp = summary["export_key_fingerprint"]
    assert summary["root_key_fingerprint"] == root_fp
    verify_txt = (out / "VERIFY.txt").read_text(encoding="utf-8")
    signature = _signature_check(f"trust/certs/{export_fp}.pem")
    assert signature.replace("-rawin ", "\\\n         -rawin ") in verify_txt and root_fp in verify_txt
    good = _sh(signature, out)
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good.stdout + good.stderr
    chain = _sh("openssl verify -CAfile trust/root.pem trust/certs/*.pem", out)
    certs = sorted(p.name for p in (out / "trust" / "certs").iterdir())
    assert chain.returncode == 0, chain.stdout + chain.stderr
    assert chain.stdout.splitlines() == [f"trust/certs/{name}: OK" for name in certs]
    station_fp = json.loads((out / "data" / "keys" / "station-keys.json").read_text())[0]["fingerprint"]
    assert certs == sorted([f"{export_fp}.pem", f"{station_fp}.pem"])
    printed = _sh("openssl x509 -in trust/root.pem -pubkey -noout | openssl pkey -pubin -outform DER | tail -c 32 "
                  "| sha256sum", out)
    assert printed.stdout.split()[0] == root_fp
    # the copied verifier agrees, with the root fingerprint obtained "out of band"
    checked = subprocess.run([sys.executable, "verify.py", "--trust", root_fp, "."], cwd=out, capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # a tag file changed, and the tag manifest rewritten to match it: bagit is content, the signature is not
    info = out / "bag-info.txt"
    info.write_text(info.read_text(encoding="utf-8").replace("reason: 移送法院", "reason: 内部参考"), encoding="utf-8")
    bag = bagit.Bag(str(out))
    bag.save(manifests=False)
    bagit.Bag(str(out)).validate()
    forged = _sh(signature, out)
    assert forged.returncode != 0 and "Signature Verified Successfully" not in forged.stdout


def test_an_export_needs_the_certified_export_key_and_a_certified_station_key(samples, env, tmp_path):
    make_archive(samples, env, tmp_path)
    root = tmp_path / "root.pem"
    ok(env, "keys", "init-root", "--name", "Agency", "--out", str(root), "--by", "admin")
    key_file = Settings.from_env(env).export_key_path
    missing = run_cli(env, "export", CASE, "--out", str(tmp_path / "a"), "--by", CLERK, "--reason", "移送法院")
    assert missing.exit_code == 2, missing.output
    assert f"no export key at {key_file}" in missing.stderr
    assert "evidence keys export-key init --root-key" in missing.stderr
    ok(env, "keys", "export-key", "init", "--root-key", str(root), "--by", "admin")
    uncertified = run_cli(env, "export", CASE, "--out", str(tmp_path / "b"), "--by", CLERK, "--reason", "移送法院")
    assert uncertified.exit_code == 2, uncertified.output
    assert f"of station '{STATION}', which signs the export anchor, cannot be used" in uncertified.stderr
    assert f"evidence keys certify --station {STATION}" in uncertified.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and _exported(env) == []
    ok(env, "keys", "certify", "--station", STATION, "--root-key", str(root), "--by", "admin")
    assert export(env, tmp_path / "c")["items"] == 8


def test_a_package_from_an_archive_without_a_root_still_exports_and_says_so(samples, env, tmp_path):
    make_archive(samples, env, tmp_path)
    out = tmp_path / "package"
    summary = export(env, out)
    export_fp = summary["export_key_fingerprint"]
    assert summary["root_key_fingerprint"] is None
    key_file = Settings.from_env(env).export_key_path
    assert key_file.is_file() and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600  # made on first use
    assert bagit.Bag(str(out)).info["Root-Key-Fingerprint"] == "none" and not (out / "trust").exists()
    verify_txt = (out / "VERIFY.txt").read_text(encoding="utf-8")
    assert "NO AGENCY ROOT" in verify_txt and "NO certificate vouches for the keys" in verify_txt
    assert json.loads((out / "data" / "items.json").read_text())["root_key_fingerprint"] is None
    good = _sh(_signature_check(f"data/keys/{export_fp}.pem").replace(
        f"<(openssl x509 -in data/keys/{export_fp}.pem -pubkey -noout)", f"data/keys/{export_fp}.pem"), out)
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good.stdout + good.stderr
    registered = json.loads((out / "data" / "keys" / "station-keys.json").read_text())
    assert {"export", STATION} <= {k["station"] for k in registered}
    # the export key is registered like a station key: the archive still verifies, and the next export reuses it
    verified = run_cli(env, "verify", "--all", "--by", "admin")
    assert verified.exit_code == 0, verified.output
    assert export(env, tmp_path / "again")["export_key_fingerprint"] == export_fp


def test_an_export_key_made_before_the_root_is_certified_as_the_export_key_later(samples, env, tmp_path):
    """An archive exports without a root (its export key made on first use), then adopts one: certifying that
    same key as the export key makes the archive verify clean, and the next export is signed under the root."""
    make_archive(samples, env, tmp_path)
    export_fp = export(env, tmp_path / "before")["export_key_fingerprint"]
    root = tmp_path / "offline" / "root.ed25519.pem"
    root_fp = json.loads(ok(env, "keys", "init-root", "--name", "某市城市管理综合执法局", "--out", str(root),
                            "--json", "--by", "admin").stdout)["root"]["fingerprint"]
    ok(env, "keys", "certify", "--station", STATION, "--root-key", str(root), "--by", "admin")
    uncertified = run_cli(env, "verify", "--all", "--by", "admin")
    assert uncertified.exit_code == 4 and export_fp[:16] in uncertified.output  # named until it is certified
    ok(env, "keys", "certify", "--export", "--root-key", str(root), "--by", "admin")
    verified = run_cli(env, "verify", "--all", "--by", "admin")
    assert verified.exit_code == 0, verified.output
    after = export(env, tmp_path / "after")
    assert (after["export_key_fingerprint"], after["root_key_fingerprint"]) == (export_fp, root_fp)
