"""verify.py (catalog/package_verifier.py), the verifier shipped in every evidence package, run as an examiner runs
it: a bare Python holding only `cryptography` (tests.helpers.verifier_env), `python -I verify.py --json BAG`.

Packages here are made without a catalogue by tests.helpers.synthetic_package with the project's own signing and
hashing functions (packages exported by `evidence export`: test_package_verifier_real.py); each attack
(tests.helpers.package_attacks) must be named by verify.py with the file and the values that show it, and a clean
package must pass.
"""
from __future__ import annotations

import ast
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from catalog import CustodyKind, append_event, load_chain, report_values
from catalog import package_verifier as verifier
from catalog.canonical import jcs
from catalog.certificates import (
    ROLE_EXPORT,
    ROLE_STATION,
    build_root_certificate,
    issue_certificate,
    key_fingerprint,
    to_pem,
)
from catalog.event_hashes import digest_row, stored_event_body, stored_event_hash
from catalog.key_certs import statement_body
from catalog.models import CustodyEvent
from catalog.signing import sign_document
from catalog.timestamping import timestamp
from tests.conftest import _missing
from tests.helpers import tsa
from tests.helpers.package_attacks import (
    CHAIN,
    EVENTS,
    SIG,
    TSR,
    drop_line,
    edit_json,
    forge_with_own_keys,
    reseal,
    retime_event,
)
from tests.helpers.synthetic_package import T0, Package, build_package, make_keys, seal, write_signed_triple
from tests.helpers.tsa import LocalTsa
from tests.helpers.verifier_env import files, named, run_verifier, verifier_python, verify_json

__all__ = ["verifier_python"]  # the session fixture, used by the tests below
local_tsa = tsa.local_tsa  # a real RFC 3161 authority on 127.0.0.1 (session fixture)


@pytest.fixture
def package(tmp_path: Path) -> Package:
    return build_package(tmp_path / "package")


# -- a clean package ----------------------------------------------------------------------------------------------


def test_a_clean_package_verifies_with_nothing_but_cryptography(verifier_python: Path, package: Package) -> None:
    code, result = verify_json(verifier_python, package.path)
    assert code == 0, named(result)
    checked = result["checked"]
    assert checked["root_fingerprint"] == package.keys.root_fingerprint
    assert checked["package_signature"] is True
    assert (checked["manifests"], checked["anchors"], checked["items"], checked["certificates"]) == (3, 2, 2, 2)
    assert (checked["chain_from"], checked["chain_to"], checked["full_rows"], checked["v2_digest_rows"],
            checked["v1_hash_only_rows"], checked["events"]) == (2, 13, 6, 4, 2, 6)
    assert checked["report_cells"] == 2 * 25 and checked["trust"] == "not given"  # two items, 25 fact rows each
    assert any(w.startswith("no --trust given: compare the root fingerprint " + package.keys.root_fingerprint)
               for w in result["warnings"])
    assert "2 events before chain v2 are linked by hash only" in " ".join(result["warnings"])

    code, trusted = verify_json(verifier_python, package.path, "--trust", package.keys.root_fingerprint.upper())
    assert code == 0 and trusted["checked"]["trust"] == "compared"
    assert not any("no --trust" in w for w in trusted["warnings"])
    text = run_verifier(verifier_python, package.path / "verify.py", "--trust", package.keys.root_fingerprint,
                        package.path)
    assert text.returncode == 0 and package.keys.root_fingerprint in text.stdout
    assert text.stdout.rstrip().endswith("RESULT: OK, nothing wrong was found")
    untrusted = run_verifier(verifier_python, package.path / "verify.py", package.path)
    assert untrusted.returncode == 0 and "WHOSE package it is was NOT checked" in untrusted.stdout.splitlines()[-1]


def test_verify_py_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(Path(verifier.__file__).read_text(encoding="utf-8"))
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {str(node.module).split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules - set(sys.stdlib_module_names) == {"cryptography"}


def test_a_module_planted_beside_verify_py_never_runs(verifier_python: Path, package: Package) -> None:
    """A hostile package ships argparse.py next to the genuine verify.py: run as an examiner would (plain
    `python3 verify.py`, no -I), the verifier imports the real argparse and checks the package."""
    (package.path / "argparse.py").write_text("print('PLANTED: RESULT: OK'); raise SystemExit(0)\n", encoding="utf-8")
    done = subprocess.run([str(verifier_python), str(package.path / "verify.py"), str(package.path)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert "PLANTED" not in done.stdout + done.stderr
    assert "RESULT" in done.stdout, done.stdout + done.stderr


def test_the_usage_errors_exit_2(verifier_python: Path, package: Package, tmp_path: Path) -> None:
    script = package.path / "verify.py"
    for args in (["--trust", "not-a-fingerprint", package.path], [tmp_path / "nowhere"], [package.path / "data"],
                 []):
        done = run_verifier(verifier_python, script, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "usage: verify.py" in done.stderr


# -- the formulas are the catalogue's -----------------------------------------------------------------------------


def test_the_hash_formulas_are_the_catalogues_on_real_events(engine: Any) -> None:
    """Events appended by the catalogue (version 2, floats, Chinese, nesting) and version-1 events hash alike in
    verify.py, which re-implements the formulas with hashlib (no rfc8785, no project import)."""
    details_list: list[dict[str, Any]] = [
        {"clock_offset_s": 0.0, "battery": 0.5}, {"size_bytes": 2**40, "x": 1e-7},
        {"case_number": "京朝城管罚字〔2026〕第00123号", "place": {"lat": 39.9}}, {"files": [1, 2.5, "三", None, True]}]
    with Session(engine) as session:
        for n, details in enumerate(details_list):
            append_event(session, CustodyKind.VIEWED, actor="web:李四", recording_id=n + 1, details=details,
                         at=T0 + timedelta(seconds=n, microseconds=n))
        session.commit()
        chain = load_chain(session)
    for event in chain:
        assert verifier.link_hash(event.chain_version, event.prev_hash, stored_event_body(event)) == event.hash
        row = digest_row(event)
        assert verifier.digest_link(row["prev_hash"], row["body_sha256"]) == row["hash"] == event.hash
    old = CustodyEvent(id=1, kind="copied", recording_id=3, dock_session_id=7, actor="station:s", at=T0,
                       details={"duration_s": 30.0, "名": "值"}, prev_hash="ab" * 32, hash="", chain_version=1)
    assert verifier.link_hash(1, old.prev_hash, stored_event_body(old)) == stored_event_hash(old)


def test_the_rfc8785_writer_is_the_catalogues_for_signed_values() -> None:
    rng = random.Random(16)
    floats = [rng.uniform(-1e6, 1e6) for _ in range(300)] + [rng.random() * 10.0 ** rng.randint(-30, 30)
                                                             for _ in range(300)]
    floats += [0.0, -0.0, 5.0, 1e21, 1e-7, 123456789012345680000.0, 0.1, 2.5e-5, 1e300, -1.5e-300]
    value = {"floats": floats, "text": "京\u2028\x01\"\\/é😀", "n": [0, -1, 2**53 - 1], "b": [True, False, None],
             "keys": {"é": 1, "z": 2, "A": 3, "😀": 4, "\uff5e": 5}}
    assert verifier.rfc8785(value).encode() == jcs(value)


# -- attacks ------------------------------------------------------------------------------------------------------


def _item(bag: Path, recording_id: int) -> dict[str, Any]:
    items = json.loads((bag / "data/items.json").read_text(encoding="utf-8"))["items"]
    return next(i for i in items if i["recording_id"] == recording_id)


def test_a_changed_original_with_every_readable_file_rewritten_and_the_bag_resealed_is_named(
        verifier_python: Path, package: Package) -> None:
    bag, original = package.path, package.path / package.originals[1]
    old = _item(bag, 1)["sha256"]
    data = bytearray(original.read_bytes())
    data[100] ^= 0x01
    original.write_bytes(bytes(data))
    new = hashlib.sha256(data).hexdigest()
    for manifest in (bag / "data/manifests").glob(f"{old}.r?.json"):
        edit_json(manifest, lambda d: d["manifest"].update(sha256=new))
    edit_json(bag / "data/items.json", lambda d: d["items"][0].update(sha256=new))
    report = bag / "data/report.html"
    report.write_text(report.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    reseal(bag)
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    found = named(result)
    assert f"{package.originals[1]}: no signed manifest names this file's SHA-256 (the original was changed, or " \
           "nothing vouches for it)" in found
    assert any(f["file"] == package.originals[1] and f["found"] == new for f in result["findings"])
    assert f"data/manifests/{old}.r2.json: signed manifest: the readable document differs from the signed body " \
           "at sha256" in found
    assert any(f["file"] == "data/items.json" and "sha256 is not the signed sha256" in f["what"]
               and (f["expected"], f["found"]) == (old, new) for f in result["findings"])
    assert [(f["what"], f["expected"]) for f in result["findings"] if f["file"] == "data/report.html"] == [
        ("the report has no fact table for a signed item", old)]
    assert SIG in files(result)


def test_a_signed_fact_edited_in_the_readable_json_is_named_with_its_field(verifier_python: Path,
                                                                           package: Package) -> None:
    bag = package.path
    edit_json(bag / "data/items.json", lambda d: d["items"][0]["recording"].update(purpose="证明其他事项"))
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    assert {(f["file"], f["expected"], f["found"]) for f in result["findings"]
            if "recording.purpose is not the signed stamp.purpose" in f["what"]} == {
        ("data/items.json", "证明无照经营", "证明其他事项")}
    assert "data/items.json: its SHA-256 is not the one manifest-sha256.txt lists (the file was changed)" in \
        named(result)


def test_an_export_key_holder_who_rewrites_items_json_is_named_for_every_signed_fact(verifier_python: Path,
                                                                                      package: Package) -> None:
    """Every fact items.json shares with a manifest is compared, and the newest manifest is the one with the highest
    *signed* revision: leaving r2 off the list, or calling r1 "revision 2", picks nothing older."""
    bag = package.path

    def rewrite(summary: dict[str, Any]) -> None:
        item = summary["items"][0]
        item["recording"].update(captured_end="2026-11-19T08:30:13+00:00", clock_offset_s=0,
                                 place={"lat": 31.2, "lon": 121.5, "source": "manual"}, officer_name="王五",
                                 important=True, station="station-9", purpose="现场执法")
        item["manifests"] = [dict(item["manifests"][0], revision=2)]  # r1 only, passed off as the newest

    edit_json(bag / "data/items.json", rewrite)
    seal(bag, package.keys.export, manifests=True)
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    wrong = {f["what"].split(": ", 1)[1].split(" of ")[0]: (f["expected"], f["found"]) for f in result["findings"]}
    sha = _item(bag, 1)["sha256"]
    assert wrong == {
        "recording.captured_end is not the signed capture.end": ("2026-11-19T08:30:12+00:00",
                                                                  "2026-11-19T08:30:13+00:00"),
        "recording.clock_offset_s is not the signed capture.clock_offset_s": ("0.25", "0"),
        "recording.place is not the signed stamp.place": ('{"lat": 39.9, "lon": 116.4, "source": "gps"}',
                                                          '{"lat": 31.2, "lon": 121.5, "source": "manual"}'),
        "recording.officer_name is not the signed officer.name": ("张三", "王五"),
        "recording.important is not the signed stamp.important": ("false", "true"),
        "recording.station is not the signed station": ("station-1", "station-9"),
        "recording.purpose is not the signed stamp.purpose": ("证明无照经营", "现场执法"),
        f"data/manifests/{sha}.r1.json is listed as another revision than it signs": ("1", "2")}
    assert all(f"data/manifests/{sha}.r2.json" in f["what"] for f in result["findings"]
               if "is not the signed" in f["what"])


def test_a_readable_manifest_edited_and_resealed_is_named(verifier_python: Path, package: Package) -> None:
    bag = package.path
    manifest = next((bag / "data/manifests").glob("*.r2.json"))
    edit_json(manifest, lambda d: d["manifest"]["stamp"].update(case_number="另一案件"))
    reseal(bag)
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    rel = manifest.relative_to(bag).as_posix()
    assert [(f["file"], f["expected"], f["found"]) for f in result["findings"] if "stamp.case_number" in f["what"]] \
        == [(rel, "京朝城管罚字〔2026〕第00123号", "另一案件")]
    assert SIG in files(result)


def test_a_signed_body_edited_breaks_its_signature(verifier_python: Path, package: Package) -> None:
    bag = package.path
    body = next((bag / "data/manifests").glob("*.r1.body.json"))
    body.write_bytes(body.read_bytes().replace(b'"important":false', b'"important":true'))
    reseal(bag)
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    assert any(f["file"] == body.relative_to(bag).as_posix() and "does not verify" in f["what"]
               for f in result["findings"])


def test_an_event_retimed_with_every_hash_recomputed_and_the_package_resigned_is_named(
        verifier_python: Path, package: Package) -> None:
    """Even someone holding the export key cannot move an event: the station-signed export anchor and the signed
    manifests name the hashes the chain had."""
    bag = package.path
    retime_event(bag, 6, T0 - timedelta(days=3))
    seal(bag, package.keys.export, manifests=True)
    code, result = verify_json(verifier_python, bag)
    assert code == 1 and SIG not in files(result)
    found = named(result)
    assert "data/custody/chain.jsonl: the chain does not end at the export anchor's event and hash" in found
    listed = [f for f in result["findings"] if "custody event 6 (stamped), listed when the manifest was signed" in
              f["what"]]
    assert len(listed) == 2 and {f["expected"] for f in listed} == {package.events[5].hash}
    assert "data/custody/export-anchor.json: last_hash differs from the signed export anchor" in found


@pytest.mark.parametrize(("rel", "event_id", "expected"), [
    (CHAIN, 3, "data/custody/events.jsonl: event 3 is not a full row of chain.jsonl"),
    (CHAIN, 4, "data/custody/chain.jsonl: line 3 (event 5): its prev_hash is not the hash of the row before it"),
    (CHAIN, 6, "data/custody/events.jsonl: event 6 is not a full row of chain.jsonl"),
    (CHAIN, 7, "data/custody/chain.jsonl: line 6 (event 8): its prev_hash is not the hash of the row before it"),
    (CHAIN, 13, "data/custody/chain.jsonl: the chain does not end at the export anchor's event and hash"),
    (EVENTS, 9, "data/custody/chain.jsonl: line 8 (event 9): a full row whose event is not in events.jsonl"),
    (EVENTS, 12, "data/custody/chain.jsonl: line 11 (event 12): a full row whose event is not in events.jsonl"),
])
def test_an_event_deleted_anywhere_is_named(verifier_python: Path, package: Package, rel: str, event_id: int,
                                            expected: str) -> None:
    drop_line(package.path, rel, event_id)
    seal(package.path, package.keys.export, manifests=True)  # an insider with the export key
    code, result = verify_json(verifier_python, package.path)
    assert code == 1
    assert any(name.startswith(expected) for name in named(result)), named(result)


@pytest.mark.parametrize("stated", [1.0, True])
def test_a_digest_row_passed_off_as_a_version_1_row_is_named(verifier_python: Path, package: Package,
                                                             stated: object) -> None:
    """An insider with the export key turns another recording's v2 digest row into a hash-only "version 1" row
    (whose hash nothing can recompute), stating the version as 1.0 or true so that it compares equal to 1."""
    rows = [json.loads(line) for line in (package.path / CHAIN).read_text(encoding="utf-8").splitlines()]
    target = next(r for r in rows if "body_sha256" in r)
    forged = {"id": target["id"], "chain_version": stated, "prev_hash": target["prev_hash"],
              "hash": "f" * 64, "body_withheld": True}
    rows = [forged if r is target else r for r in rows]
    (package.path / CHAIN).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    seal(package.path, package.keys.export, manifests=True)
    code, result = verify_json(verifier_python, package.path)
    assert code == 1
    assert any("chain_version must be the integer 1 or 2" in name for name in named(result)), named(result)


def test_the_older_anchor_is_checked_against_the_chain_and_a_segment_cut_short_of_it_is_named(
        verifier_python: Path, package: Package) -> None:
    """The package's chain starts at the older anchor's event, so that anchor is compared with a row; an export-key
    holder who starts the chain later (hiding what happened between) leaves it unreached, which is named."""
    bag = package.path
    rows = (bag / CHAIN).read_text(encoding="utf-8").splitlines(keepends=True)
    assert json.loads(rows[0])["id"] == 2  # the older anchor's event
    (bag / CHAIN).write_text("".join(rows[1:]), encoding="utf-8")
    seal(bag, package.keys.export, manifests=True)
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    assert [(f["what"].split(",")[0], f["found"]) for f in result["findings"]] == [
        ("the chain does not reach this signed anchor's event 2", "2")]


def test_an_event_deleted_from_both_files_is_named(verifier_python: Path, package: Package) -> None:
    for rel in (CHAIN, EVENTS):
        drop_line(package.path, rel, 10)
    seal(package.path, package.keys.export, manifests=True)
    code, result = verify_json(verifier_python, package.path)
    assert code == 1
    found = named(result)
    assert any(n.startswith("data/custody/chain.jsonl: line 9 (event 11): its prev_hash is not the hash")
               for n in found)
    assert any("custody event 10 (stamped), listed when the manifest was signed, is not in events.jsonl" in n
               for n in found)


def test_a_package_resigned_under_an_attackers_own_root_is_caught_with_trust(verifier_python: Path,
                                                                              package: Package) -> None:
    bag = package.path
    forged = forge_with_own_keys(bag)
    code, result = verify_json(verifier_python, bag)
    assert code == 0, named(result)  # consistent in itself: only the root's fingerprint tells
    assert result["checked"]["root_fingerprint"] == forged.root_fingerprint != package.keys.root_fingerprint
    code, result = verify_json(verifier_python, bag, "--trust", package.keys.root_fingerprint)
    assert code == 1
    assert [(f["file"], f["expected"], f["found"]) for f in result["findings"]] == [
        ("trust/root.pem", package.keys.root_fingerprint, forged.root_fingerprint)]
    assert "the agency root is not the one you trust" in result["findings"][0]["what"]


def test_the_package_signature_removed_or_made_by_another_key_is_named(verifier_python: Path,
                                                                       package: Package) -> None:
    bag = package.path
    (bag / SIG).unlink()
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    assert named(result) == [f"{SIG}: the package is not signed: its signature file is missing"]
    (bag / SIG).write_bytes(package.keys.station.sign((bag / "tagmanifest-sha256.txt").read_bytes()))
    code, result = verify_json(verifier_python, bag)
    assert code == 1 and named(result)[0].startswith(f"{SIG}: the package signature does not verify")


# -- certificates and revocations ---------------------------------------------------------------------------------


def _revoke(package: Package, at_minutes: int, *, signer: Any = None) -> str:
    keys, fp = package.keys, package.keys.fingerprint(ROLE_STATION)
    body = statement_body("revoked", fp, role=ROLE_STATION, subject="station-1",
                          at=T0 + timedelta(minutes=at_minutes), reason="钥匙泄露", by="admin:root",
                          root_fp=keys.root_fingerprint, now=T0 + timedelta(hours=2))
    document = sign_document(body, signer or keys.root)
    path = package.path / "trust" / "revocations" / f"{fp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode())
    seal(package.path, keys.export)
    return path.relative_to(package.path).as_posix()


def test_what_a_key_signed_after_its_revocation_is_named(verifier_python: Path, package: Package) -> None:
    _revoke(package, 10)
    code, result = verify_json(verifier_python, package.path)
    assert code == 1
    revoked = {f["file"] for f in result["findings"] if "signed after the key was revoked" in f["what"]}
    item1, item2 = _item(package.path, 1)["sha256"], _item(package.path, 2)["sha256"]
    assert revoked == {f"data/manifests/{item1}.r2.json", f"data/manifests/{item2}.r1.json",
                       next(f"data/custody/anchors/{p.name}" for p in (package.path / "data/custody/anchors")
                            .glob("anchor-000000000013-*.json") if not p.name.endswith(".body.json"))}
    assert result["checked"]["key_statements"] == 1


def test_a_revocation_the_root_did_not_sign_is_named_and_ignored(verifier_python: Path, package: Package) -> None:
    rel = _revoke(package, 10, signer=package.keys.station)
    code, result = verify_json(verifier_python, package.path)
    assert code == 1
    assert files(result) == {rel}
    assert "does not verify with the agency root key" in result["findings"][0]["what"]


def test_expired_certificates_and_one_from_another_root_do_not_count(verifier_python: Path, tmp_path: Path) -> None:
    expired = build_package(tmp_path / "expired", keys=make_keys(not_before=T0 - timedelta(days=10), days=5))
    code, result = verify_json(verifier_python, expired.path)
    assert code == 1
    assert sum("no certificate of key" in f["what"] and "was valid when it signed" in f["what"]
               for f in result["findings"]) == 6  # 3 manifests, 2 anchors, the package
    package = build_package(tmp_path / "other")
    other_key = make_keys().root
    other = build_root_certificate(other_key, name="Forger", now=T0 - timedelta(days=10))
    forged = issue_certificate(other_key, other, package.keys.station.public_key(), role=ROLE_STATION,
                               subject="station-1", not_before=T0 - timedelta(days=10),
                               not_after=T0 + timedelta(days=9))
    cert = package.path / "trust" / "certs" / f"{package.keys.fingerprint(ROLE_STATION)}.pem"
    cert.write_text(to_pem(forged))
    seal(package.path, package.keys.export)
    code, result = verify_json(verifier_python, package.path)
    assert code == 1
    assert any(f["file"] == cert.relative_to(package.path).as_posix() and "does not count" in f["what"]
               for f in result["findings"])
    assert sum("has no certificate from the agency root" in f["what"] for f in result["findings"]) == 5


# -- the bag ------------------------------------------------------------------------------------------------------


def test_a_payload_file_added_or_removed_is_named(verifier_python: Path, package: Package) -> None:
    bag = package.path
    (bag / "data/recordings/000009_planted.mp4").write_bytes(b"planted")
    (bag / "data/report.html").unlink()
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    found = named(result)
    assert "data/recordings/000009_planted.mp4: a payload file that manifest-sha256.txt does not list (added " \
           "after the package was made)" in found
    assert "data/report.html: listed in the bag's manifest, but not a file in the package" in found
    assert any(f["file"] == "bag-info.txt" and f["what"].startswith("Payload-Oxum") for f in result["findings"])


# -- timestamps ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TsaSettings:
    tsa_url: str
    tsa_timeout_s: float = 30.0


def test_timestamps_verify_and_a_swapped_token_is_named(verifier_python: Path, local_tsa: LocalTsa,
                                                         tmp_path: Path) -> None:
    settings = _TsaSettings(local_tsa.url("ok"))

    def stamp(data: bytes) -> bytes:
        token = timestamp(data, settings)
        assert token is not None
        return token

    package = build_package(tmp_path / "package", stamp=stamp, tsa_ca=local_tsa.ca.read_bytes())
    bag = package.path
    code, result = verify_json(verifier_python, bag)
    assert code == 0, named(result)
    assert result["checked"]["timestamps"] == result["checked"]["timestamp_signatures"] == 2
    assert set(result["checked"]["timestamp_times"]) == {TSR, "data/custody/export-anchor.tsr"}

    code, result = verify_json(verifier_python, bag, env={"PATH": str(tmp_path / "no-tools")})
    assert code == 0 and "timestamp signature not checked (no openssl)" in " ".join(result["warnings"])
    without = run_verifier(verifier_python, bag / "verify.py", "--tsa-ca", str(local_tsa.ca), bag,
                           env={"PATH": str(tmp_path / "no-tools")})
    assert without.returncode == 2 and "--tsa-ca needs openssl" in without.stderr

    (bag / TSR).write_bytes(stamp((bag / "bag-info.txt").read_bytes()))  # a genuine token, over another file
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    assert [(f["file"], f["what"], f["found"]) for f in result["findings"]] == [
        (TSR, "the timestamp is not over tagmanifest-sha256.txt (another file's token?)",
         hashlib.sha256((bag / "bag-info.txt").read_bytes()).hexdigest())]


@pytest.mark.slow
def test_a_large_package_is_read_once_at_about_the_speed_of_sha256sum(verifier_python: Path, tmp_path: Path) -> None:
    """Every listed byte is hashed exactly once (4 MiB reads; the chain streamed), so verify.py takes about as long
    as `sha256sum` over the same files, with flat memory."""
    if shutil.which("sha256sum") is None:
        _missing("sha256sum")
    package = build_package(tmp_path / "package", payload_bytes=256 * 1024 * 1024)
    bag = package.path
    listed = [line.split(maxsplit=1)[1] for name in ("manifest-sha256.txt", "tagmanifest-sha256.txt")
              for line in (bag / name).read_text(encoding="utf-8").splitlines()]
    started = time.monotonic()
    subprocess.run(["sha256sum", *listed], cwd=bag, check=True, capture_output=True)
    sha256sum = time.monotonic() - started
    started = time.monotonic()
    code, result = verify_json(verifier_python, bag)
    verify_py = time.monotonic() - started
    assert code == 0, named(result)
    assert result["checked"]["bytes_hashed"] == sum((bag / rel).stat().st_size for rel in listed)
    assert result["checked"]["files_hashed"] == len(listed)
    print(f"verify.py {verify_py:.2f} s, sha256sum {sha256sum:.2f} s, ratio {verify_py / sha256sum:.2f}")
    assert verify_py < 2 * sha256sum + 2.0


def test_malformed_files_are_findings_not_crashes(verifier_python: Path, package: Package) -> None:
    bag = package.path
    with (bag / CHAIN).open("a", encoding="utf-8") as fh:
        fh.write('{"id": "fourteen"}\n[1, 2]\nnot json\n')
    (bag / EVENTS).write_text((bag / EVENTS).read_text(encoding="utf-8") + '{"id": 99, "body": 5}\n'
                              '{"id": 1e999, "body": "{}", "chain_version": 2, "prev_hash": "", "hash": ""}\n',
                              encoding="utf-8")  # an id that parses as infinity
    (bag / "data/items.json").write_text("{", encoding="utf-8")
    (bag / "data/custody/export-anchor.json").write_text("[]", encoding="utf-8")
    report = bag / "data/report.html"
    report.write_text(report.read_text(encoding="utf-8").replace("<body>", "<body><![if x[ y ]]>"), encoding="utf-8")
    (bag / "data/report.pdf").write_bytes(b"%PDF-1.4\n" + b"1 0 obj\n" * 300_000)  # 2.4 MB of objects never ended
    seal(bag, package.keys.export, manifests=True)
    (bag / TSR).write_bytes(b"\x30\x82\xff\xff\x02")  # a token cut short
    code, result = verify_json(verifier_python, bag)  # bounded: a quadratic scan of the PDF would not end in time
    assert code == 1
    found_files = files(result)
    assert {CHAIN, EVENTS, "data/items.json", "data/custody/export-anchor.json", TSR, "data/report.html",
            "data/report.pdf"} <= found_files
    assert any(f["file"] == CHAIN and "cannot be read" in f["what"] for f in result["findings"])


def test_a_hostile_bag_is_named_and_never_read_outside_the_package(verifier_python: Path, package: Package,
                                                                   tmp_path: Path) -> None:
    """A folder of originals replaced by a link to a copy elsewhere (the hashes match: only the link gives it
    away), a file nested deeper than any parser's stack, a manifest path naming a Windows drive."""
    bag = package.path
    nested = "[" * 200_000 + "]" * 200_000
    (bag / "data/custody/export-anchor.json").write_text(nested, encoding="utf-8")
    seal(bag, package.keys.export, manifests=True)
    outside = tmp_path / "elsewhere"
    shutil.move(bag / "data/recordings", outside)  # the same bytes: the manifests still match them
    (bag / "data/recordings").symlink_to(outside, target_is_directory=True)
    manifest = bag / "manifest-sha256.txt"
    manifest.write_text(manifest.read_text(encoding="utf-8") + f"{'0' * 64}  C:/Windows/win.ini\n", encoding="utf-8")
    code, result = verify_json(verifier_python, bag)
    assert code == 1, result
    found = {(f["file"], f["what"].split(" (")[0]) for f in result["findings"]}
    assert ("data/recordings", "a symbolic link: a package holds files only, and a link may lead out of it") in found
    assert (package.originals[1], "listed in the bag's manifest, but not a file in the package") in found
    assert any(f["file"] == "manifest-sha256.txt" and "C:/Windows/win.ini" in str(f["found"])
               for f in result["findings"])
    assert any(f["file"] == "data/custody/export-anchor.json" for f in result["findings"])
    assert not any("Traceback" in str(f) for f in result["findings"])


# -- who may sign what, and trusted time against revocation -------------------------------------------------------


def test_a_manifest_signed_by_another_stations_certified_key_is_named(verifier_python: Path,
                                                                       package: Package) -> None:
    """An insider holding the export key and station-2's key vouches for a recording station-1 never ingested: the
    key is certified, but for station-2, and one certificate must cover role, station and time."""
    keys, bag = package.keys, package.path
    other = Ed25519PrivateKey.generate()
    cert = issue_certificate(keys.root, keys.root_cert, other.public_key(), role=ROLE_STATION, subject="station-2",
                             not_before=T0 - timedelta(days=10), not_after=T0 + timedelta(days=300))
    other_fp = key_fingerprint(other.public_key())
    (bag / "trust" / "certs" / f"{other_fp}.pem").write_text(to_pem(cert))
    sha = _item(bag, 1)["sha256"]
    body = json.loads((bag / f"data/manifests/{sha}.r2.body.json").read_bytes())
    assert body["station"] == "station-1"
    write_signed_triple(bag / "data" / "manifests", f"{sha}.r2", body, other)
    seal(bag, keys.export, manifests=True)
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    assert [(f["file"], f["what"], f["expected"], f["found"]) for f in result["findings"]] == [
        (f"data/manifests/{sha}.r2.json", f"signed manifest: key {other_fp} is not certified for this",
         "station key 'station-1'", "station key 'station-2'"),
        ("data/report.html", f"item {sha}: the report's signing keys are not those of its manifests",
         " ".join(sorted([package.keys.fingerprint(ROLE_STATION), other_fp])), package.keys.fingerprint(ROLE_STATION))]


def test_a_key_revoked_before_the_trusted_time_of_what_it_signed_is_named_though_the_signer_wrote_an_earlier_time(
        verifier_python: Path, local_tsa: LocalTsa, tmp_path: Path) -> None:
    """A stolen station key signs an anchor dated before the revocation; the TSA's time (now) is after it."""
    package = _timestamped_with_revocation(tmp_path, local_tsa, ROLE_STATION, "station-1")
    code, result = verify_json(verifier_python, package.path, "--tsa-ca", str(local_tsa.ca))
    assert code == 1
    assert [(f["file"], f["found"][:16]) for f in result["findings"]] == [
        ("data/custody/export-anchor.tsr", _token_time(package.path / "data/custody/export-anchor.tsr"))]
    assert "timestamped (RFC 3161) after the key was revoked" in result["findings"][0]["what"]


def _timestamped_with_revocation(tmp_path: Path, local_tsa: LocalTsa, role: str, subject: str) -> Package:
    """A timestamped package whose *role* key the root revoked a minute ago: after every time its signer wrote,
    before the tokens' (trusted) times; the package re-signed and its own token made anew."""
    settings = _TsaSettings(local_tsa.url("ok"))
    package = build_package(tmp_path / "package", stamp=lambda data: timestamp(data, settings) or b"")
    keys, fp = package.keys, package.keys.fingerprint(role)
    revoked_at = datetime.now(UTC) - timedelta(minutes=1)
    body = statement_body("revoked", fp, role=role, subject=subject, at=revoked_at, reason="钥匙被盗",
                          by="admin:root", root_fp=keys.root_fingerprint, now=revoked_at)
    (package.path / "trust" / "revocations").mkdir(parents=True)
    (package.path / "trust" / "revocations" / f"{fp}.json").write_bytes(
        json.dumps(sign_document(body, keys.root), ensure_ascii=False).encode())
    seal(package.path, keys.export)
    (package.path / TSR).write_bytes(timestamp((package.path / "tagmanifest-sha256.txt").read_bytes(), settings)
                                     or b"")
    return package


def _token_time(token: Path) -> str:
    when = verifier._gen_time(verifier.parse_timestamp(token.read_bytes()).gen_time)
    assert when is not None
    return when.isoformat()[:16]


def test_a_token_from_a_tsa_the_package_does_not_name_is_named_even_when_genuine(
        verifier_python: Path, local_tsa: LocalTsa, tmp_path: Path) -> None:
    """Someone adds a genuine token (their own TSA, or ours) to a package exported without one, or swaps ours for
    one of their own TSA's over the same bytes: the signed export-anchor.json names the TSA the archive used."""
    plain = build_package(tmp_path / "plain").path
    own_token, own_ca = tsa.outsider_token(tmp_path / "outsider", (plain / "tagmanifest-sha256.txt").read_bytes())
    (plain / TSR).write_bytes(own_token)
    code, result = verify_json(verifier_python, plain, "--tsa-ca", str(own_ca))
    assert code == 1
    assert [(f["file"], f["expected"]) for f in result["findings"]] == [(TSR, "no TSA")]
    assert "by a TSA the signed package does not name" in result["findings"][0]["what"]
    assert result["findings"][0]["found"] == verifier.parse_timestamp(own_token).signer

    settings = _TsaSettings(local_tsa.url("ok"))
    stamped = build_package(tmp_path / "stamped", stamp=lambda data: timestamp(data, settings) or b"").path
    code, result = verify_json(verifier_python, stamped, "--tsa-ca", str(local_tsa.ca))
    assert code == 0, named(result)
    assert result["checked"]["timestamp_signatures"] == 2 and not any("TSA" in w for w in result["warnings"])
    code, result = verify_json(verifier_python, stamped, "--tsa-ca", str(own_ca))  # not the TSA's CA
    assert code == 1
    assert {f["what"] for f in result["findings"]} == {
        f"the timestamp token's signature does not verify (openssl ts -verify -CAfile {own_ca})"}
    own_token, _ = tsa.outsider_token(tmp_path / "outsider2", (stamped / "tagmanifest-sha256.txt").read_bytes())
    (stamped / TSR).write_bytes(own_token)
    code, result = verify_json(verifier_python, stamped)
    assert code == 1
    assert [f["file"] for f in result["findings"]] == [TSR]
    assert "does not name" in result["findings"][0]["what"]


@pytest.mark.parametrize(("attack", "expected"), [
    ("item dropped", "a signed item of the package is not listed once in items.json"),
    ("item unlinked", "item 1: no verified manifest vouches for it (only a disposed item has none)"),
    ("fact missing", "item 1: recording.captured_end is missing"),
    ("ghost item", "item 99: no verified manifest vouches for it (only a disposed item has none)"),
    ("item twice", "a signed item of the package is not listed once in items.json"),
])
def test_items_json_cannot_leave_out_unlink_or_add_items(verifier_python: Path, package: Package, attack: str,
                                                         expected: str) -> None:
    """An export-key holder edits items.json so that a fact escapes comparison: every signed item must be listed
    once, with every fact its manifest carries; an item no manifest vouches for must be a disposed one."""
    def edit(summary: dict[str, Any]) -> None:
        items = summary["items"]
        if attack == "item dropped":
            items.pop(0)
        elif attack == "item unlinked":
            items[0].pop("manifests")
            items[0]["sha256"] = "0" * 64
            items[0]["recording"]["captured_end"] = "2026-11-19T23:10:02+00:00"
        elif attack == "fact missing":
            items[0]["recording"].pop("captured_end")
        elif attack == "ghost item":
            items.append({"recording_id": 99, "sha256": "9" * 64, "state": "archived", "recording": {}})
        else:
            items.append(json.loads(json.dumps(items[0])))

    edit_json(package.path / "data/items.json", edit)
    seal(package.path, package.keys.export, manifests=True)
    code, result = verify_json(verifier_python, package.path)
    assert code == 1
    assert any(f["file"] == "data/items.json" and f["what"].startswith(expected) for f in result["findings"]), \
        named(result)


def test_an_anchor_signed_with_the_export_key_is_named(verifier_python: Path, package: Package) -> None:
    """Only station keys anchor the chain: whoever holds the export key cannot re-anchor a rewritten history."""
    bag = package.path
    anchor = next(p for p in (bag / "data/custody/anchors").glob("anchor-000000000013-*.json")
                  if not p.name.endswith(".body.json"))
    body = json.loads(anchor.with_name(anchor.name[:-5] + ".body.json").read_bytes())
    write_signed_triple(anchor.parent, anchor.name[:-5], body, package.keys.export)
    seal(bag, package.keys.export, manifests=True)
    code, result = verify_json(verifier_python, bag)
    assert code == 1
    assert any(f["file"] == anchor.relative_to(bag).as_posix() and "is not certified for this" in f["what"]
               and f["expected"] == "station key 'station-1'" for f in result["findings"]), named(result)


def test_the_export_key_revoked_before_the_package_token_and_a_removed_token_are_named(
        verifier_python: Path, local_tsa: LocalTsa, tmp_path: Path) -> None:
    package = _timestamped_with_revocation(tmp_path, local_tsa, ROLE_EXPORT, "export")
    code, result = verify_json(verifier_python, package.path, "--tsa-ca", str(local_tsa.ca))
    assert code == 1
    assert [(f["file"], f["what"].split(" (")[0]) for f in result["findings"]] == [
        (TSR, "what tagmanifest-sha256.txt holds: timestamped")]
    (package.path / TSR).unlink()
    code, result = verify_json(verifier_python, package.path, "--tsa-ca", str(local_tsa.ca))
    assert any("names a timestamp authority" in w and "has no tagmanifest-sha256.txt.tsr" in w
               for w in result["warnings"])


def test_the_verifier_knows_the_reports_rows_labels_and_stylesheet() -> None:
    """verify.py is one stand-alone file, so it holds its own copy of what catalog.court_report writes: the item
    rows' labels (catalog.report_values) and the stylesheet's SHA-256 (templates/court_report.html). A change to
    either must be made to verify.py too (keeping the old stylesheet's hash, for packages already written)."""
    label_keys = {"captured_start": "capture_start", "captured_end": "capture_end", "key_fingerprint": "signed_by"}
    for field_name, labels in verifier.ITEM_LABELS.items():
        assert labels == report_values._LABELS[label_keys.get(field_name, field_name)], field_name
    assert set(verifier.ITEM_ROWS) | set(verifier.DISPOSED_ROWS) == set(verifier.ITEM_LABELS)
    assert (verifier.PLACE_WORDS, verifier.TIME_WORDS) == (report_values._SOURCES, report_values._TIME_SOURCES)
    template = (Path(verifier.__file__).parent / "templates" / "court_report.html").read_text(encoding="utf-8")
    css = template.split("<style>", 1)[1].split("</style>", 1)[0]
    assert hashlib.sha256(" ".join(css.split()).encode()).hexdigest() in verifier.REPORT_STYLES
