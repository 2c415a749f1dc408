"""The custody chain in a package: every event from the package's first through the export anchor, other recordings'
events as digest-only rows that recompute without their content, and the export anchor in WORM storage where the
package says it is (local store, and S3 Object Lock)."""
from __future__ import annotations

import hashlib
import json
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, col, select

from catalog import CustodyEvent, open_catalog
from catalog.event_hashes import check_digest_rows
from catalog.models import CustodyAnchor, Recording
from catalog.package import PackageSigning, export_package
from catalog.signing import verify_document
from catalog.types import utcnow
from ingest.config import Settings
from tests.helpers.package_archive import CASE, OTHER_CASE, STATION, export, jsonl, make_archive, ok, small_archive
from tests.helpers.verifier_env import named, verifier_python, verify_json

__all__ = ["verifier_python"]  # the session fixture, used below


def _v2(prev_hash: str, body_sha256: str) -> str:
    return hashlib.sha256((prev_hash + body_sha256).encode()).hexdigest()


def _catalogue(env):
    return open_catalog(Settings.from_env(env).database_url)


@pytest.mark.usefixtures("ffmpeg_available")
def test_chain_jsonl_covers_every_event_to_the_export_anchor_without_showing_other_evidence(samples, env, tmp_path):
    make_archive(samples, env, tmp_path)
    out = tmp_path / "package"
    summary = export(env, out)
    custody = out / "data" / "custody"
    rows, events = jsonl(custody / "chain.jsonl"), jsonl(custody / "events.jsonl")
    where = json.loads((custody / "export-anchor.json").read_text())
    assert where["record_name"] == summary["chain_anchor"]
    engine = _catalogue(env)
    try:
        with Session(engine) as session:
            ids = list(session.exec(select(CustodyEvent.id).where(col(CustodyEvent.id) >= rows[0]["id"],
                                                                  col(CustodyEvent.id) <= where["last_event_id"])
                                    .order_by(col(CustodyEvent.id))))
            theirs = select(Recording.id).where(Recording.case_number == OTHER_CASE)
            others = {e.id: e for e in session.exec(select(CustodyEvent).where(
                col(CustodyEvent.recording_id).in_(theirs)))}
    finally:
        engine.dispose()
    assert [r["id"] for r in rows] == ids and rows[0]["id"] == events[0]["id"]  # every event, first to anchored
    assert rows[-1]["id"] == where["last_event_id"] and rows[-1]["hash"] == where["last_hash"]
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(rows))
    full = [r for r in rows if r.get("full")]
    assert [(r["id"], r["prev_hash"], r["hash"]) for r in full] == [(e["id"], e["prev_hash"], e["hash"])
                                                                    for e in events]
    digests = [r for r in rows if not r.get("full")]
    assert digests and all(r["chain_version"] == 2 and r["hash"] == _v2(r["prev_hash"], r["body_sha256"])
                           for r in digests)
    assert check_digest_rows(digests[:1], prev_hash=None) == []
    # the other case's recordings are in the stretch, by digest only: nothing of theirs is shipped
    shown = {r["id"] for r in digests}
    assert others and set(others) & shown
    chain_text = (custody / "chain.jsonl").read_text(encoding="utf-8")
    assert "另案" not in chain_text and OTHER_CASE not in chain_text and CASE not in chain_text
    assert not {e["recording_id"] for e in events} & {e.recording_id for e in others.values()}


@pytest.mark.usefixtures("ffmpeg_available")
def test_the_export_anchor_is_written_to_worm_storage_and_only_two_anchors_ship(samples, env, tmp_path):
    store = make_archive(samples, env, tmp_path)
    for _ in range(3):  # anchors the package has no use for
        ok(env, "custody", "anchor", "--force")
    other = json.loads(ok(env, "search", "--case", OTHER_CASE, "--json").stdout)["recordings"]
    out = tmp_path / "package"
    summary = export(env, out, *(str(r["id"]) for r in other))
    custody = out / "data" / "custody"
    where = json.loads((custody / "export-anchor.json").read_text())
    name = where["record_name"].rsplit("/", 1)[-1]
    shipped = (custody / "anchors" / name).read_bytes()
    assert where["store"] == "local" and urlsplit(where["location"]).scheme == "file"
    assert Path(urlsplit(where["location"]).path).read_bytes() == shipped == store.get_record(where["record_name"])
    assert hashlib.sha256(shipped).hexdigest() == where["sha256"]
    body = verify_document(json.loads(shipped))
    assert body["reason"] == f"export {out.name}" and body["last_event_id"] == where["last_event_id"]
    assert (custody / "anchors" / name.replace(".json", ".body.json")).is_file()
    first = jsonl(custody / "chain.jsonl")[0]["id"]
    engine = _catalogue(env)
    try:
        with Session(engine) as session:
            anchors = list(session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id))))
            exported = list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == "exported")))
    finally:
        engine.dispose()
    prior = max((a for a in anchors if a.last_event_id <= first), key=lambda a: (a.last_event_id, a.id))
    assert len(anchors) > 3 and sorted(p.name for p in (custody / "anchors").glob("*.sig")) == sorted(
        n.rsplit("/", 1)[-1].replace(".json", ".sig") for n in (prior.record_name, summary["chain_anchor"]))
    # the anchor comes before the exported events, which name it
    assert {e.details["anchor"] for e in exported} == {summary["chain_anchor"]}
    assert min(e.id or 0 for e in exported) > where["last_event_id"]
    verified = ok(env, "verify", "--all", "--by", "admin")
    assert "all checks passed" in verified.stdout


def test_the_export_anchor_is_where_the_package_says_on_every_store(engine, worm_store, tmp_path, verifier_python):
    key, ids = small_archive(engine, worm_store, tmp_path)
    with Session(engine) as session:
        signing = PackageSigning(station=STATION, station_key=key, export_key_path=tmp_path / "export.pem")
        result = export_package(session, worm_store, out=tmp_path / "package", by="clerk", now=utcnow(),
                                reason="移送法院", signing=signing, refs=[str(ids[0])])
    where = json.loads((result.path / "data" / "custody" / "export-anchor.json").read_text())
    shipped = (result.path / "data" / "custody" / "anchors" / where["record_name"].rsplit("/", 1)[-1]).read_bytes()
    assert worm_store.get_record(where["record_name"]) == shipped and where["store"] == worm_store.name
    # and the examiner's verify.py, in a Python holding only cryptography, passes the package of this store
    code, report = verify_json(verifier_python, result.path, "--trust", result.export_key_fingerprint)
    assert code == 0, named(report)
    if where["store"] == "local":
        assert Path(urlsplit(where["location"]).path).read_bytes() == shipped
        return
    assert where["location"] == f"s3://{worm_store.bucket}/{where['key']}" and where["version_id"]
    fetched = worm_store.client.get_object(Bucket=worm_store.bucket, Key=where["key"], VersionId=where["version_id"])
    assert fetched["Body"].read() == shipped and fetched["ObjectLockMode"] == "COMPLIANCE"
    assert fetched["ObjectLockRetainUntilDate"].isoformat()[:10] == where["retain_until"][:10]
