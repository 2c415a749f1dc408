"""The `evidence` command line: its JSON contract, exit codes and recorded accesses."""
from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from catalog import CustodyEvent, open_catalog
from tests.cli import run_cli

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

RECORDING_FIELDS = {"id", "sha256", "size_bytes", "media_kind", "original_name", "device_serial", "officer", "station",
                    "captured_start", "captured_end", "time_source", "clock_offset_s", "place", "case_number",
                    "purpose", "important", "integrity", "state", "retain_until"}


_run = run_cli


def test_ingest_json_contract(samples, env):
    result = _run(env, "ingest", str(samples.sidecar_recorder), "--json", "--case", "AB-2026-00042",
                  "--purpose", "证明违法事实", "--station", "dock-7", "--officer", "999001")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"recordings", "skipped", "discarded", "errors"}
    # three clips, their three GPS sidecars and the recorder's identity file: every file on the device
    assert len(data["recordings"]) == 7 and data["errors"] == [] and data["discarded"] == []
    for row in data["recordings"]:
        assert set(row) >= RECORDING_FIELDS
        assert (row["case_number"], row["purpose"], row["station"]) == ("AB-2026-00042", "证明违法事实", "dock-7")
        assert row["officer"]["number"] == "999001"


def test_table_output_and_damaged_files_still_exit_zero(samples, env):
    result = _run(env, "ingest", str(samples.cn_recorder), "--no-clock-set")
    assert result.exit_code == 0
    assert "damaged: box 'mdat'" in result.stdout and "unreadable: empty file (0 bytes)" in result.stdout
    assert "12 new, 0 already known, 1 skipped, 0 discarded, 0 error(s)" in result.stdout
    assert not (samples.cn_recorder / "TIME.TXT").exists()  # a copied card: nothing written to it


def test_bad_input_exits_2_with_a_clear_message(tmp_path, env):
    result = _run(env, "ingest", str(tmp_path / "not-mounted"))
    assert result.exit_code == 2
    assert f"error: device folder '{tmp_path / 'not-mounted'}' is gone: not a folder" in result.stderr
    result = _run({**env, "EVIDENCE_ROUTINE_RETENTION_MONTHS": "2"}, "search")
    assert result.exit_code == 2 and "below the legal minimum of 6 months" in result.stderr
    (tmp_path / "plain").mkdir()
    result = _run(env, "ingest", str(tmp_path / "plain"))
    assert result.exit_code == 2 and "no device profile recognises" in result.stderr
    result = _run(env, "ingest", str(tmp_path / "plain"), "--case", "?")
    assert result.exit_code == 2 and "case number '?' does not match" in result.stderr


def test_unreachable_catalog_exits_3(tmp_path, env):
    bad = {**env, "EVIDENCE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = _run(bad, "search")
    assert result.exit_code == 3 and "catalog database postgresql+psycopg://nobody@127.0.0.1:1/none" in result.stderr


def test_search_show_cat_and_tag(samples, env):
    _run(env, "ingest", str(samples.cn_recorder), "--json")
    found = json.loads(_run(env, "search", "--json", "--kind", "audio").stdout)["recordings"]
    assert sorted(r["original_name"][-3:] for r in found) == ["amr", "wav"]
    near = json.loads(_run(env, "search", "--json", "--near", "39.9042,116.4074,100").stdout)["recordings"]
    assert len(near) == 2 and {r["place"]["source"] for r in near} == {"container", "exif"}
    window = json.loads(_run(env, "search", "--json", "--from", "2026-11-20T08:39:00+08:00",
                             "--to", "2026-11-20T00:46:00Z").stdout)["recordings"]
    assert [r["original_name"][-10:] for r in window] == ["084000.jpg", "084500.wav"]
    assert _run(env, "search", "--from", "yesterday").exit_code == 2
    assert _run(env, "search", "--near", "39.9,116.4,1000000").exit_code == 2  # wider than any search takes
    damaged = json.loads(_run(env, "search", "--json", "--integrity", "damaged", "--sort", "-captured").stdout)
    starts = [r["captured_start"] for r in damaged["recordings"]]
    assert len(starts) >= 2 and all(r["integrity"]["status"] == "damaged" for r in damaged["recordings"])
    assert starts == sorted(starts, reverse=True)  # newest first
    staged = json.loads(_run(env, "search", "--json", "--retention", "staged", "--station", "station-1").stdout)
    assert staged["recordings"] == []  # ingest archived everything

    wav = next(r for r in found if r["original_name"].endswith(".wav"))
    # cat: exact original bytes, and the access is in the custody log
    result = _run(env, "cat", str(wav["id"]), "--reason", "复核录音", "--by", "clerk:王五")
    original = (samples.cn_recorder / "AUDIO" / "20261120" / wav["original_name"]).read_bytes()
    assert result.exit_code == 0 and result.stdout_bytes == original
    # tag: a revision
    tagged = json.loads(_run(env, "tag", wav["sha256"][:12], "--by", "clerk:王五", "--reason", "case opened",
                             "--case", "AB-2026-00042", "--important", "--json").stdout)
    assert (tagged["revision"], tagged["case_number"], tagged["important"]) == (2, "AB-2026-00042", True)
    assert _run(env, "tag", str(wav["id"]), "--by", "x", "--reason", "y", "--case", "!").exit_code == 2
    shown = json.loads(_run(env, "show", str(wav["id"]), "--json", "--by", "auditor").stdout)
    assert [h["revision"] for h in shown["stamp_history"]] == [1, 2]
    assert shown["sightings"][0]["device_path"] == f"AUDIO/20261120/{wav['original_name']}"
    kinds = [e["kind"] for e in shown["custody"]]
    # the background decode check added its verdict; the case number names no registered case: held at once
    assert kinds == ["copied", "stamped", "archived", "manifested", "integrity_checked", "accessed", "restamped",
                     "manifested", "legal_hold", "viewed"]
    assert shown["retention"]["pending_case"] and shown["legal_hold"] is True
    # the re-stamp is sealed as signed manifest r2; r1 still holds the ingest stamp
    sealed = json.loads(_run(env, "manifest", str(wav["id"])).stdout)
    assert sealed["verified_signature"] is True
    assert (sealed["manifest"]["stamp"]["revision"], sealed["manifest"]["stamp"]["case_number"]) == (2, "AB-2026-00042")
    first = json.loads(_run(env, "manifest", str(wav["id"]), "--revision", "1").stdout)["manifest"]
    assert (first["stamp"]["case_number"], first["sha256"]) == (None, wav["sha256"])
    engine = open_catalog(env["EVIDENCE_DATABASE_URL"])
    with Session(engine) as session:
        access = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "accessed")).one()
        assert access.actor == "clerk:王五" and access.details["sha256"] == wav["sha256"]
    engine.dispose()


def test_profiles_lists_the_builtin_profiles(env):
    data = json.loads(_run(env, "profiles", "--json").stdout)
    assert [p["name"] for p in data["profiles"]] == ["cn-enforcement-recorder", "generic-dcim-camera",
                                                     "gps-sidecar-recorder"]
    # each says how a dock measures its clock and whether the station can set it (校时), or that it cannot
    assert [(p["clock_measured_by"], p["clock_set_file"]) for p in data["profiles"]] == [
        ([], "TIME.TXT"), ([], None), (["sidecar_gps"], None)]
    text = _run(env, "profiles").stdout
    assert "clock: cannot be measured at a dock; set through TIME.TXT (校时)" in text
    assert "clock: sidecar_gps; cannot be set (校时)" in text
