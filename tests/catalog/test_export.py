"""Court-ready packages and verification from the command line, with real media and real tools."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bagit
import pytest
from sqlmodel import Session, select

from catalog import CustodyEvent, open_catalog
from catalog.manifests import software_version
from catalog.models import Recording
from catalog.package import Item, bag_info, hooks
from catalog.premis import premis_event_type
from ingest.config import Settings
from storage import object_key
from tests.cli import invoke, run_cli
from tests.conftest import _missing
from tests.helpers.package_archive import CASE, make_archive, set_up_root

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


_run = run_cli


def _ok(env, *args):
    result = _run(env, *args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def archive(samples, env, tmp_path):
    """A case with three stamped clips and a PDF (another case's recordings ingested in between), an agency root
    certifying the station and export keys, and a clerk allowed to export."""
    store = make_archive(samples, env, tmp_path)
    set_up_root(env, tmp_path)
    return store


def test_export_is_a_valid_bag_that_standard_tools_verify(archive, env, tmp_path):
    out = tmp_path / "package"
    result = _run(env, "export", CASE, "--out", str(out), "--by", "clerk:李四", "--reason", "移送法院", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["items"] == 8  # the three clips, their GPS sidecars, the recorder's identity file, the PDF
    bag = bagit.Bag(str(out))
    bag.validate()  # the Library of Congress validator, full fixity
    assert {"sha256", "sha512"} <= set(bag.algorithms)
    assert bag.info["External-Identifier"] == CASE
    for tool in ("sha256", "sha512"):  # both payload manifests, written from the digests measured while copying
        checked = subprocess.run([f"{tool}sum", "-c", f"manifest-{tool}.txt"], cwd=out, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    items = json.loads((out / "data" / "items.json").read_text(encoding="utf-8"))
    kinds = sorted(i["media_kind"] for i in items["items"])
    assert kinds.count("document") == 1 and len(kinds) == 8
    for item in items["items"]:
        assert (out / item["file"]).is_file()
        assert item["manifests"] and (out / item["manifests"][0]["signed"]).is_file()
    report = (out / "data" / "report.html").read_text(encoding="utf-8")
    assert CASE in report and items["items"][0]["sha256"] in report and "保管链" in report  # catalog.court_report
    events = [json.loads(line) for line in (out / "data" / "custody" / "events.jsonl").read_text().splitlines()]
    assert {"copied", "stamped", "case_opened", "case_linked", "document_attached"} <= {e["kind"] for e in events}
    assert items["format"] == "evidence-package/2" and (out / "data" / "premis.xml").is_file()
    assert bag.info["Package-Format"] == "evidence-package/2"
    assert bag.info["Root-Key-Fingerprint"] == items["root_key_fingerprint"] == summary["root_key_fingerprint"]
    assert bag.info["Export-Key-Fingerprint"] == summary["export_key_fingerprint"]
    assert bag.info["Chain-Anchor"] == summary["chain_anchor"]
    # VERIFY.txt and verify.py are tag files at the bag root, listed in the signed tag manifest
    assert (out / "VERIFY.txt").is_file() and not (out / "data" / "VERIFY.txt").exists()
    listed = (out / "tagmanifest-sha256.txt").read_text()
    assert " VERIFY.txt" in listed and " trust/root.pem" in listed and "tagmanifest-sha256.txt.sig" not in listed
    assert (out / "tagmanifest-sha256.txt.sig").stat().st_size == 64

    engine = open_catalog(Settings.from_env(env).database_url)
    try:
        with Session(engine) as session:
            exported = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "exported")).all()
            assert len(exported) == 8 and {e.actor for e in exported} == {"clerk:李四"}
            assert {e.details["tagmanifest_sha256"] for e in exported} == {summary["tagmanifest_sha256"]}
    finally:
        engine.dispose()


def test_openssl_verifies_a_manifest_signature_from_the_package(archive, env, tmp_path):
    if shutil.which("openssl") is None:
        _missing("openssl")
    out = tmp_path / "package"
    _ok(env, "export", CASE, "--out", str(out), "--by", "clerk:李四", "--reason", "移送法院")
    item = json.loads((out / "data" / "items.json").read_text(encoding="utf-8"))["items"][0]
    signed = item["manifests"][0]
    stem = out / signed["signed"].removesuffix(".json")
    key = out / "data" / "keys" / f"{signed['key_fingerprint']}.pem"
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
               "-in", f"{stem}.body.json", "-sigfile", f"{stem}.sig"]
    good = subprocess.run(command, capture_output=True, text=True)
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good.stdout + good.stderr
    body = Path(f"{stem}.body.json")
    body.write_bytes(body.read_bytes().replace(b'"important":false', b'"important":true '))
    bad = subprocess.run(command, capture_output=True, text=True)
    assert bad.returncode != 0


def test_custody_events_recompute_with_hashlib_as_verify_txt_says(archive, env, tmp_path):
    """An examiner with nothing but hashlib and json follows VERIFY.txt step 4 on every exported event; an event
    whose time was edited in the readable fields, or whose body was edited, is caught."""
    out = tmp_path / "package"
    assert _run(env, "export", CASE, "--out", str(out), "--by", "clerk", "--reason", "r").exit_code == 0
    lines = (out / "data" / "custody" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert {e["chain_version"] for e in events} == {2}  # an archive made today writes version 2 only

    def problems(event: dict[str, Any]) -> list[str]:
        body = event["body"].encode("utf-8")
        fields = {k: event[k] for k in ("kind", "recording_id", "dock_session_id", "actor", "at", "details")}
        found = [] if json.loads(body) == fields else ["readable fields differ from the hashed body"]
        if event["chain_version"] == 2:
            expected = hashlib.sha256((event["prev_hash"] + hashlib.sha256(body).hexdigest()).encode()).hexdigest()
        else:
            expected = hashlib.sha256(event["prev_hash"].encode() + b"\n" + body).hexdigest()
        return found if expected == event["hash"] else [*found, "hash does not cover the body"]

    assert [problems(e) for e in events] == [[] for _ in events]
    edited = dict(events[0], at="2026-01-01T00:00:00.000000+00:00")
    assert problems(edited) == ["readable fields differ from the hashed body"]
    rewritten = dict(edited, body=events[0]["body"].replace(events[0]["at"], edited["at"]))
    assert problems(rewritten) == ["hash does not cover the body"]
    assert "chain_version 2:  hash = SHA-256( prev_hash + hex SHA-256(body) )" in (
        out / "VERIFY.txt").read_text(encoding="utf-8")


def test_every_event_carries_its_premis_type_and_a_missing_font_is_said_not_hidden(archive, env, tmp_path):
    """PREMIS terms ride on each events.jsonl line (outside the hashed body); an agency without the report font
    still gets its package, with the HTML report and a note in the result saying why there is no PDF."""
    out = tmp_path / "package"
    result = _ok({**env, "EVIDENCE_REPORT_FONT": str(tmp_path / "no-such-font.ttc")},
                 "export", CASE, "--out", str(out), "--by", "clerk", "--reason", "r", "--json")
    summary = json.loads(result.stdout)
    assert (out / "data" / "report.html").is_file() and not (out / "data" / "report.pdf").exists()
    assert len(summary["notes"]) == 1 and "no-such-font.ttc" in summary["notes"][0]
    lines = (out / "data" / "custody" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    for event in map(json.loads, lines):
        label, uri = premis_event_type(event["kind"])
        assert (event["premis_event_type"], event["premis_event_type_uri"]) == (label, uri)
        assert "premis" not in event["body"]  # the terms are labels on the line, not part of what was hashed


def test_a_large_package_renders_its_report_in_a_process_of_its_own_while_the_originals_copy(archive, env, tmp_path,
                                                                                          monkeypatch):
    """With the originals above ASIDE_BYTES the court report is made in a spawned process during the copy: the
    package is the same kind of package (report.html and report.pdf, a valid bag the bag's verify.py passes)."""
    monkeypatch.setattr(hooks, "ASIDE_BYTES", 0)
    out = tmp_path / "package"
    summary = json.loads(_ok(env, "export", CASE, "--out", str(out), "--by", "clerk", "--reason", "r",
                             "--json").stdout)
    assert summary["notes"] == [] and (out / "data" / "report.pdf").read_bytes().startswith(b"%PDF")
    page = (out / "data" / "report.html").read_text(encoding="utf-8")
    assert all(item["sha256"] in page for item in json.loads((out / "data" / "items.json").read_text())["items"])
    bagit.Bag(str(out)).validate()
    checked = subprocess.run([sys.executable, str(out / "verify.py"), str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_tampering_with_any_payload_file_fails_validation(archive, env, tmp_path):
    out = tmp_path / "package"
    _ok(env, "export", CASE, "--out", str(out), "--by", "clerk:李四", "--reason", "移送法院")
    payload = sorted(p for p in (out / "data").rglob("*") if p.is_file())
    assert len(payload) > 10
    for victim in payload:  # one flipped bit in any file of the payload is caught, by name
        original = victim.read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
        with pytest.raises(bagit.BagValidationError) as caught:
            bagit.Bag(str(out)).validate()
        assert {d.path for d in caught.value.details} == {victim.relative_to(out).as_posix()}
        assert subprocess.run(["sha256sum", "--quiet", "-c", "manifest-sha256.txt"], cwd=out,
                              capture_output=True).returncode != 0
        victim.write_bytes(original)
    bagit.Bag(str(out)).validate()


def test_zip_package_and_role_checks(archive, env, tmp_path):
    unstated = _run(env, "export", CASE, "--out", str(tmp_path / "w"), "--by", "clerk:李四")
    assert unstated.exit_code == 2 and "state the reason" in unstated.stderr and not (tmp_path / "w").exists()
    denied = _run(env, "export", CASE, "--out", str(tmp_path / "x"), "--by", "officer:张三")
    assert denied.exit_code == 2 and "may not export: that needs one of" in denied.stderr
    # run as the OS account bound to officer:张三, asserting another name (tests.cli.invoke)
    stranger = invoke(env, "export", CASE, "--out", str(tmp_path / "y"), "--by", "nobody", "--reason", "移送")
    assert stranger.exit_code == 2 and "nobody" in stranger.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()

    package = tmp_path / "案件.zip"
    _ok(env, "export", CASE, "--out", str(package), "--by", "clerk:李四", "--reason", "移送法院")
    with zipfile.ZipFile(package) as archive_zip:
        archive_zip.extractall(tmp_path / "unzipped")
    bagit.Bag(str(tmp_path / "unzipped" / "案件")).validate()
    again = _run(env, "export", CASE, "--out", str(package), "--by", "clerk:李四", "--reason", "移送法院")
    assert again.exit_code == 2 and "never written over another" in again.stderr

    ids = [str(r["id"]) for r in json.loads(_ok(env, "search", "--case", CASE, "--json").stdout)["recordings"][:2]]
    picked = json.loads(_ok(env, "export", *ids, "--out", str(tmp_path / "two"), "--by", "clerk:李四",
                            "--reason", "移送法院", "--json").stdout)
    assert picked["items"] == 2
    bagit.Bag(str(tmp_path / "two")).validate()
    unknown = _run(env, "export", "AB-404", "--out", str(tmp_path / "z"), "--by", "clerk:李四", "--reason", "移送法院")
    assert unknown.exit_code == 2 and "no recording 'AB-404'" in unknown.stderr


def test_a_tampered_store_object_is_never_exported(archive, env, tmp_path):
    shown = json.loads(_ok(env, "search", "--case", CASE, "--json").stdout)["recordings"][0]
    path = archive.root / "objects" / object_key(shown["sha256"])
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    result = _run(env, "export", CASE, "--out", str(tmp_path / "package"), "--by", "clerk:李四", "--reason", "移送法院")
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("error: INTEGRITY:") and shown["sha256"] in result.stderr
    assert not (tmp_path / "package").exists() or not any((tmp_path / "package").rglob("*.mp4"))


def test_verify_from_the_command_line(archive, env):
    good = _run(env, "verify", "--all")
    assert good.exit_code == 0 and "all checks passed" in good.stdout, good.output
    assert json.loads(_run(env, "custody", "anchor", "--json").stdout)["anchor"] is None  # verify anchored the head
    anchor = _run(env, "custody", "anchor", "--force", "--json")
    assert json.loads(anchor.stdout)["anchor"]["last_event_id"] > 0
    sample = json.loads(_ok(env, "verify", "--sample", "2", "--no-chain", "--json").stdout)
    assert sample["ok"] and sample["recordings"] == 2
    shown = json.loads(_ok(env, "search", "--case", CASE, "--json").stdout)["recordings"][0]
    path = archive.root / "objects" / object_key(shown["sha256"])
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    bad = _run(env, "verify", "--all")
    assert bad.exit_code == 4
    assert f"PROBLEM [object] recording {shown['id']} ({shown['original_name']}): stored bytes hash to" in bad.stdout
    assert _run(env, "verify").exit_code == 2  # nothing chosen: a usage error


def test_bag_info_names_the_case_or_the_recordings_the_sender_the_reason_and_the_keys():
    items = [Item(Recording(id=n, sha256="a" * 64, size_bytes=1, media_kind="video", original_name="c.mp4",
                            station_code="s", time_source="filename", integrity_status="ok", state="archived"), None)
             for n in (4, 9)]
    now = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    keys: dict[str, Any] = {"root_fingerprint": None, "export_fingerprint": "e" * 64,
                            "chain_anchor": "custody/anchor-1.json"}
    assert bag_info(None, items, by="clerk:李四", now=now, reason=" 移送法院 ", organisation="", **keys) == {
        "Source-Organization": "evidence-ingest archive", "External-Identifier": "4, 9",
        "External-Description": "Evidence package for selected recordings", "Contact-Name": "clerk:李四",
        "Bag-Software-Agent": f"evidence-ingest {software_version()}",
        "Internal-Sender-Identifier": "exported 2026-11-20T08:30:00+00:00",
        "Internal-Sender-Description": "reason: 移送法院", "Package-Format": "evidence-package/2",
        "Root-Key-Fingerprint": "none", "Export-Key-Fingerprint": "e" * 64, "Chain-Anchor": "custody/anchor-1.json"}
    named = bag_info(CASE, items, by="clerk:李四", now=now, reason="移送法院", organisation="某某公安局",
                     **{**keys, "root_fingerprint": "r" * 64})
    assert (named["Source-Organization"], named["External-Identifier"], named["External-Description"],
            named["Root-Key-Fingerprint"]) == ("某某公安局", CASE, f"Evidence package for case {CASE}", "r" * 64)
