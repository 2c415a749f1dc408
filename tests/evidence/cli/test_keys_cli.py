"""`evidence keys …` as an administrator runs it (and as others may not): the agency root, certificates an examiner
checks with the real `openssl verify`, the export key, rotation, revocation and `keys list --json`."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlmodel import Session

from catalog import ensure_station, ensure_station_key, open_catalog
from catalog.cert_trust import cert_record_name, root_record_name
from catalog.signing import load_or_create_key
from ingest.config import Settings
from storage import LocalStore
from tests.cli import bind_caller, invoke, run_cli
from tests.conftest import _missing
from tests.helpers.recordings import archive_recording

STATION = "station-1"


def _archive(env: dict[str, str], tmp_path: Path, *, first: int = 0) -> None:
    """One recording ingested as the station does, signed with the station's key file."""
    cfg = Settings.from_env(env)
    store, key = LocalStore(cfg.store_path), load_or_create_key(cfg.station_key_path)
    engine = open_catalog(cfg.database_url)
    try:
        with Session(engine) as session:
            ensure_station(session, STATION)
            ensure_station_key(session, STATION, key, actor=f"station:{STATION}", store=store)
            archive_recording(session, store, tmp_path, first, key, station=STATION, actor=f"station:{STATION}",
                              row_fields=("state", "retain_until", "legal_hold"))
            session.commit()
    finally:
        engine.dispose()


def _ok(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _keys(env: dict[str, str]) -> dict[str, Any]:
    return _ok(run_cli(env, "keys", "list", "--json", "--by", "admin"))


def test_an_administrator_sets_up_the_root_and_an_examiner_checks_the_certificates_with_openssl(env: dict[str, str],
                                                                                               tmp_path: Path) -> None:
    _archive(env, tmp_path)
    root_path = tmp_path / "offline" / "root.ed25519.pem"
    created = _ok(run_cli(env, "keys", "init-root", "--name", "某市城管局", "--out", str(root_path), "--json",
                          "--by", "admin"))
    root_fp = created["root"]["fingerprint"]
    assert stat.S_IMODE(os.stat(root_path).st_mode) == 0o600
    # before certification the station key is not trusted, and verify says so
    listed = _keys(env)
    assert listed["root"]["fingerprint"] == root_fp and listed["root"]["name"] == "某市城管局"
    assert [k["status"] for k in listed["keys"]] == ["uncertified"]
    unverified = run_cli(env, "verify", "--all", "--by", "admin")
    assert unverified.exit_code == 4 and "it has no valid certificate from the agency root" in unverified.output
    certified = _ok(run_cli(env, "keys", "certify", "--station", STATION, "--root-key", str(root_path), "--json",
                            "--by", "admin"))["certified"]
    station_fp = certified[0]["fingerprint"]
    listed = _keys(env)
    assert [(k["fingerprint"], k["role"], k["status"], k["certifier"]) for k in listed["keys"]] == [
        (station_fp, "station", "certified", root_fp)]
    assert listed["keys"][0]["not_after"] == certified[0]["not_after"] and listed["problems"] == []
    verified = run_cli(env, "verify", "--all", "--by", "admin")
    assert verified.exit_code == 0, verified.output
    # what an examiner runs, on the WORM copies
    if shutil.which("openssl") is None:
        _missing("openssl")
    records = Path(Settings.from_env(env).store_path) / "records"
    root_pem = records / root_record_name(root_fp)
    cert_pem = records / cert_record_name(station_fp, certified[0]["serial"])
    checked = subprocess.run(["openssl", "verify", "-CAfile", str(root_pem), str(cert_pem)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0 and checked.stdout.strip() == f"{cert_pem}: OK", checked.stdout + checked.stderr
    # a second root is refused and nothing is overwritten
    before = root_path.read_bytes()
    again = run_cli(env, "keys", "init-root", "--name", "Again", "--out", str(root_path), "--by", "admin")
    assert again.exit_code == 2 and "already exists: a key file is never overwritten" in again.stderr
    elsewhere = tmp_path / "second.pem"
    second = run_cli(env, "keys", "init-root", "--name", "Again", "--out", str(elsewhere), "--by", "admin")
    assert second.exit_code == 2 and f"this archive already has an agency root ({root_fp})" in second.stderr
    assert root_path.read_bytes() == before and not elsewhere.exists()


def test_export_key_rotation_and_revocation(env: dict[str, str], tmp_path: Path) -> None:
    _archive(env, tmp_path)
    root_path = tmp_path / "root.pem"
    _ok(run_cli(env, "keys", "init-root", "--name", "Agency", "--out", str(root_path), "--json", "--by", "admin"))
    root = ["--root-key", str(root_path), "--json", "--by", "admin"]
    _ok(run_cli(env, "keys", "certify", "--station", STATION, *root))
    exported = _ok(run_cli(env, "keys", "export-key", "init", *root))
    export_path = Path(exported["key_file"])
    assert export_path == Path(env["EVIDENCE_HOME"]) / "keys" / "export.ed25519.pem"
    assert stat.S_IMODE(os.stat(export_path).st_mode) == 0o600
    assert exported["certified"][0]["role"] == "export"
    twice = run_cli(env, "keys", "export-key", "init", *root)
    assert twice.exit_code == 2 and "already exists" in twice.stderr
    again = run_cli(env, "keys", "certify", "--export", *root)
    assert again.exit_code == 2 and "already has a certificate valid until" in again.stderr
    assert _ok(run_cli(env, "keys", "certify", "--export", "--renew", *root))["certified"][0]["role"] == "export"

    old_fp = _keys(env)["keys"][0]["fingerprint"]
    rotated = _ok(run_cli(env, "keys", "rotate", "--station", STATION, *root))
    assert rotated["retired"] == [old_fp] and Path(rotated["old_key_kept_as"]).exists()
    _archive(env, tmp_path, first=1)  # signed with the new key file
    statuses = {k["fingerprint"]: (k["role"], k["status"]) for k in _keys(env)["keys"]}
    assert statuses == {old_fp: ("station", "retired"), rotated["new_fingerprint"]: ("station", "certified"),
                        exported["certified"][0]["fingerprint"]: ("export", "certified")}
    assert run_cli(env, "verify", "--all", "--by", "admin").exit_code == 0

    new_fp = rotated["new_fingerprint"]
    revoked = _ok(run_cli(env, "keys", "revoke", new_fp[:10], "--reason", "station stolen", *root))["revoked"]
    assert revoked["fingerprint"] == new_fp and revoked["role"] == "station"
    listed = _keys(env)
    key = next(k for k in listed["keys"] if k["fingerprint"] == new_fp)
    assert (key["status"], key["revocation_reason"]) == ("revoked", "station stolen")
    _archive(env, tmp_path, first=2)  # the stolen station signs on
    found = run_cli(env, "verify", "--all", "--by", "admin")
    assert found.exit_code == 4 and f"PROBLEM [key] key {new_fp}: manifest r1 of recording 3" in found.output
    assert "the key was revoked at" in found.output


def test_the_root_key_must_be_this_archives_and_its_passphrase_is_asked_for(env: dict[str, str],
                                                                            tmp_path: Path) -> None:
    _archive(env, tmp_path)
    root_path = tmp_path / "root.pem"
    env = {**env, "ROOT_PASS": "correct horse battery"}
    _ok(run_cli(env, "keys", "init-root", "--name", "Agency", "--out", str(root_path), "--passphrase-env", "ROOT_PASS",
                "--json", "--by", "admin"))
    assert b"ENCRYPTED" in root_path.read_bytes()
    wrong = run_cli(env, "keys", "certify", "--station", STATION, "--root-key", str(root_path), "--by", "admin",
                    stdin="wrong passphrase\n")
    assert wrong.exit_code == 2 and "cannot be read as a private key" in wrong.stderr
    asked = run_cli(env, "keys", "certify", "--station", STATION, "--root-key", str(root_path), "--json", "--by",
                    "admin", stdin="correct horse battery\n")
    assert asked.exit_code == 0, asked.output
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(Path(Settings.from_env(env).station_key_path).read_bytes())
    refused = run_cli(env, "keys", "certify", "--station", STATION, "--renew", "--root-key", str(stranger), "--by",
                      "admin")
    assert refused.exit_code == 2 and "not this archive's agency root" in refused.stderr


@pytest.mark.parametrize("command", [
    ("init-root", "--name", "Mallory", "--out", "{tmp}/m.pem"),
    ("certify", "--station", STATION, "--root-key", "{tmp}/root.pem"),
    ("export-key", "init", "--root-key", "{tmp}/root.pem"),
    ("rotate", "--station", STATION, "--root-key", "{tmp}/root.pem"),
    ("revoke", "0123456789abcdef", "--reason", "x", "--root-key", "{tmp}/root.pem"),
])
def test_only_an_administrator_manages_keys(env: dict[str, str], tmp_path: Path, command: tuple[str, ...]) -> None:
    _archive(env, tmp_path)
    bind_caller(env, "clerk:李四", roles=("clerk",))
    result = invoke(env, "keys", *(part.format(tmp=tmp_path) for part in command))
    assert result.exit_code == 2, result.output
    assert "archive user 'clerk:李四'" in result.stderr
    assert "may not manage_keys: that needs one of admin" in result.stderr
    assert not (tmp_path / "m.pem").exists()
    assert not (Path(env["EVIDENCE_HOME"]) / "keys" / "export.ed25519.pem").exists()
