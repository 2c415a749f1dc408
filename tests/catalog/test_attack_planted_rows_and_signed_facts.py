"""Outside review of issue 13 (verify): what `evidence verify --all` still did not see.

* A recording row planted in the catalogue (with its bytes put in the store, as the store's account can) has no
  custody event at all, no stamp revision and no manifest; `verify --all` passed it (exit 0), so fabricated
  evidence sat in search results and in court packages with a clean verification. A case row no `case_opened`
  event made is already named; a recording row no `copied`/`document_attached` event made is named too, and
  neither an evidence package nor the application's disposal takes it.
* A stamp revision's stated reason, time, changes and place source, and where the recording was found (its
  sightings), are signed in the recording's manifests, but `verify` compared none of them: edited in the database,
  they passed (exit 0). Sightings found after the last signing are legitimate (a `sighted` event names each);
  one inserted in the database is not.

Direct SQL and a store write on SQLite and PostgreSQL against a catalogue filled by `evidence ingest`; the checks
run `evidence verify --all`, `evidence export` and `evidence retention sweep|approve`.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from catalog.models import CustodyEvent, Recording, Sighting
from catalog.types import utcnow
from tests.cli import run_cli
from tests.helpers.cli_archive import IDENTITY, ingest_recorder, problems_of, store_of, sweep_and_approve, verify_all
from tests.helpers.insider import sql
from tests.helpers.retention import wait_past

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

NO_ORIGIN = ("[catalog] no custody event created this row: the custody chain has no `copied` (ingest) or "
             "`document_attached` event for recording {id} (it has no custody event at all); the row was inserted "
             "behind the application's back and nothing vouches for its bytes or facts")


def _plant(env: dict[str, str], engine: Engine, tmp_path: Path, name: str, *, state: str = "archived",
           lock_for: timedelta = timedelta(days=200)) -> Recording:
    """The attack: bytes of the attacker's choosing put in the store (as the store's account can), and a row for
    them in the catalogue (as database rights can), with no custody event, stamp revision or manifest."""
    store = store_of(env)
    data = f"fabricated evidence {name} ".encode() * 100
    sha = hashlib.sha256(data).hexdigest()
    planted_file = tmp_path / f"{name}.bin"
    planted_file.write_bytes(data)
    stored = store.put_file(planted_file, sha256=sha, size_bytes=len(data), retain_until=utcnow() + lock_for)
    with Session(engine, expire_on_commit=False) as session:
        now = utcnow()
        planted = Recording(sha256=sha, size_bytes=len(data), media_kind="video", original_name=f"ZFY_{name}.MP4",
                            station_code="station-1", captured_start=now - timedelta(days=400),
                            captured_end=now - timedelta(days=400), time_source="container", integrity_status="ok",
                            state=state, ingested_at=now - timedelta(days=400),
                            archived_at=now - timedelta(days=400), retain_until=stored.retain_until,
                            store_name=store.name, store_key=stored.key, officer_number="010203", stamp_revision=0)
        session.add(planted)
        session.commit()
    return planted


def test_a_recording_row_planted_without_any_custody_event_is_named_by_verify(env, engine, tmp_path):
    ingest_recorder(env, tmp_path, "real")
    code, report = verify_all(env)
    assert code == 0, problems_of(report)

    planted = _plant(env, engine, tmp_path, "PLANTED")
    hidden = _plant(env, engine, tmp_path, "HIDDEN", state="staged")  # not even read back from the store

    code, report = verify_all(env)
    assert code == 4, report
    found = problems_of(report, planted.id)
    assert found == [NO_ORIGIN.format(id=planted.id),
                     "[manifest] in the store, but it has no stamp revision (stamp_revision 0, revisions []) and so "
                     "no signed manifest: every stored recording is stamped and sealed when it is archived, so "
                     "nothing vouches for this row (inserted or edited behind the application's back)"], found
    assert problems_of(report, hidden.id) == [NO_ORIGIN.format(id=hidden.id)]
    assert planted.id not in [p["recording_id"] for p in report["problems"] if p["kind"] == "object"]


def test_a_planted_row_is_neither_exported_nor_disposed(env, engine, tmp_path):
    [real] = ingest_recorder(env, tmp_path, "genuine")
    planted = _plant(env, engine, tmp_path, "DUE", lock_for=timedelta(seconds=2))

    # An evidence package would hand the fabricated file to a court with the archive's signature beside it.
    out = tmp_path / "package"
    result = run_cli(env, "export", str(real["id"]), str(planted.id), "--recordings", "--out", str(out),
                     "--by", "clerk-li", "--reason", "移送法院")
    assert result.exit_code == 2, result.output
    assert f"recording {planted.id} (ZFY_DUE.MP4): no custody event created this row" in result.output
    assert "in the store, but it has no stamp revision and so no signed manifest" in result.output
    assert not out.exists()
    with Session(engine) as session:
        assert session.exec(select(CustodyEvent).where(CustodyEvent.kind == "exported")).all() == []
    # the genuine recording alone exports
    alone = run_cli(env, "export", str(real["id"]), "--recordings", "--out", str(tmp_path / "genuine"),
                    "--by", "clerk-li", "--reason", "移送法院")
    assert alone.exit_code == 0, alone.output

    # Nor is it the archive's to destroy: its deletion would be signed into a disposal record as lawful.
    wait_past(planted.retain_until)
    outcome, code = sweep_and_approve(env)
    assert code == 1, outcome  # a partial batch
    [item] = [o for o in outcome["outcome"] if o["recording_id"] == planted.id]
    assert item["result"] == "refused", item
    assert "no custody event created this row" in item["reason"] and "nothing was deleted" in item["reason"]
    assert store_of(env).exists(planted.sha256)
    with Session(engine) as session:
        refused = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "disposal_failed",
                                                          CustodyEvent.recording_id == planted.id)).one()
        assert "no custody event created this row" in refused.details["reason"]
        kept = session.get(Recording, planted.id)
        assert kept is not None and kept.state == "archived"


def test_a_signed_stamp_reason_and_sighting_edited_in_the_database_are_named(env, engine, tmp_path):
    [row] = ingest_recorder(env, tmp_path, "sighted")
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    with Session(engine) as session:
        [sighting] = session.exec(select(Sighting).where(Sighting.recording_id == row["id"])).all()
    assert sighting.seen_at is not None

    # The attack: the stated reason and time of the ingest stamp and where the recording was found are rewritten.
    sql(engine, "UPDATE stamp_revision SET reason = '依法调取', changed_at = :at WHERE recording_id = :id",
        at=utcnow() - timedelta(days=3), id=row["id"])
    sql(engine, "UPDATE sighting SET device_serial = 'B999999', device_path = 'RECORD/other.wav' "
                "WHERE recording_id = :id", id=row["id"])

    code, report = verify_all(env)
    found = problems_of(report, row["id"])
    assert code == 4, f"stamp reason/time and sighting edited behind the app's back passed verify --all: {report}"
    assert "[catalog] stamp.reason: the catalogue says '依法调取', the signed manifest says 'ingest'" in found
    assert any(p.startswith("[catalog] stamp.changed_at: the catalogue says ") for p in found), found
    assert (f"[catalog] sighting on device A123456 at '{sighting.device_path}' (seen "
            f"{sighting.seen_at.isoformat()}), signed in manifest r1: the catalogue has no such sighting (edited or "
            "deleted behind the application's back)") in found
    assert (f"[catalog] sighting {sighting.id} on device B999999 at 'RECORD/other.wav' (seen "
            f"{sighting.seen_at.isoformat()}): no signed manifest lists it and no `copied` or `sighted` custody "
            "event names it (added or edited behind the application's back)") in found


def _dock_again(env: dict[str, str], tmp_path: Path, name: str, serial: str) -> dict[str, Any]:
    """The same recorder file found on another recorder (*serial*): `evidence ingest` records a sighting."""
    source = tmp_path / f"recorder-{name}"
    device = tmp_path / f"recorder-{name}-{serial}"
    device.mkdir()
    (device / "ZFYINFO.TXT").write_bytes(IDENTITY.replace(b"A123456", serial.encode()))
    for wav in source.rglob("*.wav"):
        target = device / wav.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wav, target)
    result = run_cli(env, "ingest", str(device), "--no-derive", "--json")
    assert result.exit_code == 0, result.output
    known: list[dict[str, Any]] = [r for r in json.loads(result.stdout)["recordings"] if r["ingest"] == "known"]
    [recording] = known
    return recording


def test_sightings_after_signing_stand_and_stamp_facts_of_every_revision_are_compared(env, engine,
                                                                                      tmp_path):
    [row] = ingest_recorder(env, tmp_path, "twice")
    rid = row["id"]
    # Found again on a second recorder after r1 was signed: no manifest lists it, its `sighted` event vouches.
    again = _dock_again(env, tmp_path, "twice", "B765432")
    assert again["id"] == rid
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    # A re-stamp signs r2 with both sightings and a manual place; r1 still lists one: older revisions list fewer.
    tagged = run_cli(env, "tag", str(rid), "--place", "31.23,121.47", "--purpose", "证明违法事实",
                     "--reason", "现场复核", "--by", "supervisor-wang")
    assert tagged.exit_code == 0, tagged.output
    code, report = verify_all(env)
    assert code == 0, problems_of(report)

    # The attack: r2's stated change, its place's source, r1's time; a sighting inserted, a signed one deleted.
    with Session(engine) as session:
        sightings = list(session.exec(select(Sighting).where(Sighting.recording_id == rid)
                                      .order_by(col(Sighting.id))))
        assert [s.device_serial for s in sightings] == ["A123456", "B765432"]
        dock = sightings[0].dock_session_id
    sql(engine, "UPDATE stamp_revision SET changes = :changes, place_source = 'gps' WHERE recording_id = :id "
                "AND revision = 2", changes=json.dumps({"purpose": {"old": None, "new": "巡查"}}), id=rid)
    sql(engine, "DELETE FROM sighting WHERE id = :id", id=sightings[1].id)
    sql(engine, "INSERT INTO sighting (recording_id, dock_session_id, device_serial, device_path, size_bytes, "
                "mtime_ns, important, seen_at) VALUES (:id, :dock, 'C000001', 'RECORD/planted.wav', 1, 1, :no, :at)",
        id=rid, dock=dock, no=False, at=utcnow().replace(tzinfo=None))

    code, report = verify_all(env)
    found = problems_of(report, rid)
    assert code == 4, report
    assert any(p.startswith("[catalog] stamp.changes: the catalogue says {'purpose': {'old': None, 'new': '巡查'}}, "
                            "the signed manifest says") for p in found), found
    assert "[catalog] stamp.place.source: the catalogue says 'gps', the signed manifest says 'manual'" in found
    assert any("sighting on device B765432" in p and "signed in manifest r2: the catalogue has no such sighting"
               in p for p in found), found
    assert any("on device C000001 at 'RECORD/planted.wav'" in p and "no `copied` or `sighted` custody event names "
               "it" in p for p in found), found
    # what was left alone is not named
    assert not any("on device A123456" in p or "stamp.reason" in p or "changed_at" in p for p in found), found


def test_a_manifest_another_trusted_station_signed_with_false_facts_is_named(env, engine, tmp_path):
    """A station key the archive trusts (registered in the chain, its record in WORM storage) signs a manifest
    whose officer, capture time and media differ from the catalogue's: the signature is good, the facts are not.
    Evidence packages take their facts from the newest manifest, so verify must hold every signed fact to the
    catalogue, not only the stamp's."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from catalog.manifests import ensure_station_key
    from catalog.signing import sign_document
    from storage import manifest_key
    from tests.helpers.insider import writable

    [row] = ingest_recorder(env, tmp_path, "forged")
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    store = store_of(env)
    other = Ed25519PrivateKey.generate()
    with Session(engine) as session:
        ensure_station_key(session, "station-9", other, actor="station:station-9", store=store)
        session.commit()
    genuine = json.loads(store.get_manifest(row["sha256"], 1))
    body = genuine["manifest"]
    body["officer"]["name"] = "李逵"
    body["capture"]["start"] = "2020-01-01T00:00:00+00:00"
    source = body["capture"]["time_source"]
    body["capture"]["time_source"] = "exif" if source != "exif" else "container"
    body["media"]["duration_s"] = 1.0
    forged = json.dumps(sign_document(body, other), ensure_ascii=False, indent=1, sort_keys=True).encode()
    path = store.root / manifest_key(row["sha256"], 1)
    with writable(path.parent, path):
        path.write_bytes(forged)

    code, report = verify_all(env)
    found = problems_of(report, row["id"])
    assert code == 4, f"a trusted key's manifest with false facts passed verify --all: {report}"
    assert f"[catalog] officer.name: the catalogue says {row.get('officer_name')!r}, the signed manifest says '李逵'" \
        in found, found
    assert any(p.startswith("[catalog] capture.start: the catalogue says ") and "2020-01-01T00:00:00+00:00" in p
               for p in found), found
    assert (f"[catalog] capture.time_source: the catalogue says {source!r}, the signed manifest says "
            f"{body['capture']['time_source']!r}") in found, found
    assert any(p.startswith("[catalog] media.duration_s: the catalogue says ") for p in found), found


def _roll_back_restamp(engine: Engine, rid: int) -> None:
    """Undo a re-stamp to revision 2 in the database: its revision row deleted, the row's stamp put back."""
    sql(engine, "DELETE FROM stamp_revision WHERE recording_id = :id AND revision = 2", id=rid)
    sql(engine, "UPDATE recording SET stamp_revision = 1, case_number = NULL, purpose = NULL, legal_hold = :no "
                "WHERE id = :id", id=rid, no=False)


def test_a_restamp_rolled_back_in_the_database_is_named_by_verify(env, engine, tmp_path):
    """A review deleted a re-stamp's revision row and put the row's stamp back as it was: revisions 1..1 ran, r1's
    manifest matched, and verify passed although the chain's `restamped` and `manifested` events and the store's
    signed r2 say the recording was stamped with the case."""
    [row] = ingest_recorder(env, tmp_path, "rollback")
    rid = row["id"]
    tagged = run_cli(env, "tag", str(rid), "--case", "A2026-001", "--purpose", "打架斗殴", "--reason", "assign case",
                     "--by", "supervisor-wang")
    assert tagged.exit_code == 0, tagged.output
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    with Session(engine) as session:
        before = session.get(Recording, rid)
        assert before is not None and before.stamp_revision == 2 and before.case_number == "A2026-001"
    _roll_back_restamp(engine, rid)
    code, report = verify_all(env)
    assert code == 4
    named = [p for p in problems_of(report, rid) if "names stamp revision 2" in p]
    assert len(named) == 1 and "holds revision 1: a re-stamp was rolled back" in named[0], problems_of(report, rid)
    out = tmp_path / "package"  # a package would hand over r1's stamp as the recording's: refused
    exported = run_cli(env, "export", str(rid), "--recordings", "--out", str(out), "--by", "clerk-li", "--reason",
                       "移送法院")
    assert exported.exit_code == 2 and not out.exists(), exported.output
    assert "names stamp revision 2, but the catalogue holds revision 1" in exported.output


def test_a_restamp_rolled_back_with_the_chains_tail_cut_is_named_by_its_stored_manifest(env, engine, tmp_path):
    """The same rollback with the chain's tail cut back to the newest anchor (the `restamped` and `manifested`
    events gone too, the head row rewritten): the catalogue then agrees with itself, but the store still holds
    the write-once manifest r2 the re-stamp signed (found by a review)."""
    from tests.helpers.custody import cut_tail, head_event_id, newest_anchor

    [row] = ingest_recorder(env, tmp_path, "cut")
    rid = row["id"]
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    anchor = newest_anchor(engine)
    assert anchor is not None and anchor.last_event_id == head_event_id(engine)
    tagged = run_cli(env, "tag", str(rid), "--case", "A2026-001", "--purpose", "打架斗殴", "--reason", "assign case",
                     "--by", "supervisor-wang")
    assert tagged.exit_code == 0, tagged.output
    cut_tail(engine, anchor.last_event_id)
    _roll_back_restamp(engine, rid)
    code, report = verify_all(env)
    assert code == 4
    named = [p for p in problems_of(report, rid) if "the store holds signed manifest r2" in p]
    assert len(named) == 1 and "but the catalogue holds revision 1: a re-stamp was rolled back or the custody " \
                               "chain's tail cut" in named[0], problems_of(report)
