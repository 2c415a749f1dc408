"""Attacks on trust in signing keys and on the end of the custody chain (issue 13, item 4), as an insider with
database rights would make them: direct SQL on SQLite and PostgreSQL, real files in the local WORM store, the real
`evidence verify` command. Each must be named, with the values that show it, and make `verify` exit 4."""
from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlmodel import Session, col, select

from catalog import CustodyKind, Recording, append_event, ensure_station, ensure_station_key
from catalog.anchors import write_anchor
from catalog.event_hashes import CHAIN_VERSION, event_hash
from catalog.key_trust import KEY_PREFIX, judge_keys, key_record_name, load_key_trust
from catalog.manifests import build_manifest, trusted_fingerprints
from catalog.models import CustodyAnchor, CustodyEvent, CustodyHead, StampRevision
from catalog.signing import fingerprint, load_or_create_key, public_key_b64, sign_document
from catalog.types import utcnow
from evidence.cli.main import main
from storage import LocalStore, S3WormStore
from tests.conftest import _missing
from tests.helpers.custody import cut_tail, head_event_id
from tests.helpers.recordings import archive_recording, verify_recordings

STATION = "station-1"


def _key(settings) -> Ed25519PrivateKey:
    """The station's own key file, as `evidence verify` and `custody anchor` find it."""
    return load_or_create_key(settings.station_key_path)


def _archive(engine, store, tmp_path, key: Ed25519PrivateKey, count: int = 2) -> list[int]:
    """*count* recordings archived, stamped and manifested as ingest does (the key registered with its record)."""
    ids = []
    with Session(engine, expire_on_commit=False) as session:
        ensure_station(session, STATION)
        ensure_station_key(session, STATION, key, actor=f"station:{STATION}", store=store)
        for n in range(count):
            # its `copied` event carries the row's state and lock (the two-day lock is the test's own)
            recording = archive_recording(session, store, tmp_path, n, key, station=STATION,
                                          actor=f"station:{STATION}",
                                          row_fields=("state", "retain_until", "legal_hold"))
            session.commit()
            assert recording.id is not None
            ids.append(recording.id)
    return ids


def _cli_verify(settings) -> tuple[int, str]:
    env = {"EVIDENCE_HOME": str(settings.home), "EVIDENCE_DATABASE_URL": settings.database_url}
    result = CliRunner().invoke(main, ["verify", "--all"], env=env, catch_exceptions=False)
    return result.exit_code, result.output


def _insert_key_row(engine, key: Ed25519PrivateKey) -> str:
    public = public_key_b64(key)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO station_key (station_code, fingerprint, public_key, created_at) "
                          "VALUES (:station, :fp, :public, :at)"),
                     {"station": STATION, "fp": fingerprint(public), "public": public, "at": utcnow()})
    return fingerprint(public)


def _append_forged_event(engine, kind: str, details: dict[str, Any]) -> int:
    """What someone with database rights can do: add an event at the end of the chain with correct hashes and
    move the head to it (the hash chain is not secret)."""
    with engine.begin() as conn:
        last_id, last_hash = conn.execute(text("SELECT last_event_id, last_hash FROM custody_head WHERE id = 1")).one()
        at = utcnow()
        details = json.loads(json.dumps(details))
        digest = event_hash(last_hash, chain_version=CHAIN_VERSION, kind=kind, recording_id=None,
                            dock_session_id=None, actor="station:station-1", at=at, details=details)
        new_id = conn.execute(text("INSERT INTO custody_event (kind, recording_id, dock_session_id, actor, at, "
                                   "details, prev_hash, hash, chain_version) VALUES (:kind, NULL, NULL, "
                                   "'station:station-1', :at, :details, :prev, :hash, :version) RETURNING id"),
                              {"kind": kind, "at": at.replace(tzinfo=None) if engine.dialect.name == "postgresql"
                               else at, "details": json.dumps(details), "prev": last_hash, "hash": digest,
                               "version": CHAIN_VERSION}).scalar()
        conn.execute(text("UPDATE custody_head SET last_event_id = :id, last_hash = :hash WHERE id = 1"),
                     {"id": new_id, "hash": digest})
    assert new_id == last_id + 1
    return int(new_id)


# -- keys ---------------------------------------------------------------------------------------------------------


def test_a_key_registered_by_the_application_is_published_to_worm_storage_and_trusted(engine, worm_store, tmp_path):
    key = Ed25519PrivateKey.generate()
    _archive(engine, worm_store, tmp_path, key, count=1)
    fp = fingerprint(public_key_b64(key))
    assert worm_store.list_records(KEY_PREFIX) == [key_record_name(fp)]
    record = json.loads(worm_store.get_record(key_record_name(fp)))
    assert record["manifest"]["fingerprint"] == fp and record["manifest"]["station"] == STATION
    assert record["signature"]["key_fingerprint"] == fp  # signed by the key it publishes
    with Session(engine) as session:
        trust = load_key_trust(session, worm_store)
    assert fp in trust.trusted and trust.problems == []
    report = verify_recordings(engine, worm_store)
    assert report.ok, [str(p) for p in report.problems]


def test_an_inserted_station_key_row_is_not_trusted_and_verify_names_it(engine, store, settings, tmp_path):
    _archive(engine, store, tmp_path, _key(settings))
    forged = Ed25519PrivateKey.generate()
    fp = _insert_key_row(engine, forged)
    with Session(engine) as session:
        assert fp not in trusted_fingerprints(session, store)
        assert fp not in trusted_fingerprints(session)  # not even on the chain alone
    report = verify_recordings(engine, store)
    keys = [p for p in report.problems if p.kind == "key"]
    assert len(keys) == 1, [str(p) for p in report.problems]
    assert keys[0].subject == f"station key {fp} (station '{STATION}')"
    assert "no key_registered event in the custody chain names it" in keys[0].detail
    assert f"WORM storage holds no key record for it ({key_record_name(fp)})" in keys[0].detail
    code, output = _cli_verify(settings)
    assert code == 4, output
    assert f"PROBLEM [key] station key {fp} (station '{STATION}'): not trusted" in output


def test_a_stamp_revision_forged_with_an_inserted_key_is_a_signature_problem_naming_the_key(engine, store, settings,
                                                                                            tmp_path):
    recording_id = _archive(engine, store, tmp_path, _key(settings))[0]
    forged = Ed25519PrivateKey.generate()
    fp = _insert_key_row(engine, forged)
    public = public_key_b64(forged)
    # The insider also appends a `key_registered` event with correct hashes: the chain alone would accept the key.
    _append_forged_event(engine, CustodyKind.KEY_REGISTERED.value,
                         {"station": STATION, "fingerprint": fp, "public_key": public})
    # A new stamp revision, in the catalogue and as a manifest signed with the inserted key, added to the store.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO stamp_revision (recording_id, revision, case_number, captured_start, collector, "
                          "purpose, important, changed_by, changed_at, reason, changes) SELECT recording_id, 2, "
                          "case_number, captured_start, collector, '证明违法事实', important, 'clerk', changed_at, "
                          "'corrected', changes FROM stamp_revision WHERE recording_id = :id AND revision = 1"),
                     {"id": recording_id})
        conn.execute(text("UPDATE recording SET stamp_revision = 2, purpose = '证明违法事实' WHERE id = :id"),
                     {"id": recording_id})
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None and recording.retain_until is not None
        revision = session.exec(select(StampRevision).where(StampRevision.recording_id == recording_id,
                                                            StampRevision.revision == 2)).one()
        body = build_manifest(recording, revision, [], [], signed_at=utcnow(), version="forged")
        store.put_manifest(recording.sha256, 2, json.dumps(sign_document(body, forged)).encode(),
                           retain_until=recording.retain_until)
    report = verify_recordings(engine, store)
    signature = [p for p in report.problems if p.kind == "signature"]
    assert [(p.recording_id, p.subject.rsplit(", ", 1)[-1]) for p in signature] == [(recording_id, "manifest r2")]
    assert f"key {fp[:16]}… is not a registered station key" in signature[0].detail
    assert f"WORM storage holds no key record for it ({key_record_name(fp)})" in signature[0].detail
    keys = [p for p in report.problems if p.kind == "key"]
    assert [p.subject for p in keys] == [f"station key {fp} (station '{STATION}')"]
    code, output = _cli_verify(settings)
    assert code == 4 and f"key {fp[:16]}… is not a registered station key" in output, output


def test_a_key_registered_before_key_records_existed_is_named_until_its_station_publishes_it(engine, store):
    key = Ed25519PrivateKey.generate()
    fp = fingerprint(public_key_b64(key))
    with Session(engine) as session:
        ensure_station(session, STATION)
        ensure_station_key(session, STATION, key, actor=f"station:{STATION}")  # as older versions did: no record
        session.commit()
    problems = verify_recordings(engine, store).problems
    assert [(p.kind, p.subject) for p in problems] == [("key", f"station key {fp} (station '{STATION}')")]
    assert "the custody chain registered it" not in problems[0].detail  # it has its row and its event …
    assert f"but WORM storage holds no key record for it ({key_record_name(fp)})" in problems[0].detail  # … only
    with Session(engine) as session:  # the station's next anchor (or manifest) publishes it
        write_anchor(session, store, station=STATION, key=key, actor=f"station:{STATION}", now=utcnow())
    assert store.list_records(KEY_PREFIX) == [key_record_name(fp)]
    report = verify_recordings(engine, store)
    assert report.ok, [str(p) for p in report.problems]


def test_a_key_record_the_key_did_not_sign_does_not_make_it_trusted():
    """Pure: a record must be self-signed; a registered event alone (no record) is not enough either."""
    from catalog.key_trust import KeyEvent, KeyRecord, KeyRow

    key = Ed25519PrivateKey.generate()
    public = public_key_b64(key)
    fp = fingerprint(public)
    row = KeyRow(fingerprint=fp, station=STATION, public_key=public)
    event = KeyEvent(event_id=7, station=STATION, fingerprint=fp, public_key=public)
    record = KeyRecord(name=key_record_name(fp), station=STATION, fingerprint=fp, public_key=public, published_at="")
    assert fp in judge_keys([row], [event], [record]).trusted
    assert fp not in judge_keys([row], [event], []).trusted
    assert fp not in judge_keys([row], [], [record]).trusted
    moved = judge_keys([KeyRow(fingerprint=fp, station="station-9", public_key=public)], [event], [record])
    assert any("the row says station 'station-9', the chain registered the key for station 'station-1' (event 7)"
               in detail for _, detail in moved.problems)
    deleted = judge_keys([], [event], [record])
    assert fp in deleted.trusted and any("has no station_key row" in detail for _, detail in deleted.problems)


# -- the end of the chain ------------------------------------------------------------------------------------------


def _view_and_anchor(session: Session, store: LocalStore, key: Ed25519PrivateKey, views: int = 1) -> CustodyAnchor:
    """*views* clerk views appended (committed), then the chain's head anchored in the store."""
    for n in range(views):
        append_event(session, CustodyKind.VIEWED, actor="clerk", details={"n": n})
    session.commit()
    anchor = write_anchor(session, store, station=STATION, key=key, actor="test", now=utcnow())
    assert anchor is not None
    return anchor


def test_deleted_tail_events_reaching_into_an_anchor_are_named(engine, store, settings, tmp_path):
    key = _key(settings)
    _archive(engine, store, tmp_path, key)
    with Session(engine) as session:
        anchor = _view_and_anchor(session, store, key, views=3)
        anchored, name = anchor.last_event_id, anchor.record_name
    keep = anchored - 2
    cut_tail(engine, keep)
    report = verify_recordings(engine, store)
    assert not [p for p in report.problems if p.kind == "chain"], "the chain itself is consistent after the cut"
    anchors = [p for p in report.problems if p.kind == "anchor"]
    assert [p.subject for p in anchors] == [name]
    assert (f"the catalogue has no event {anchored}; the chain now ends at event {keep}, so at least events "
            f"{keep + 1}..{anchored} were cut off its end") in anchors[0].detail
    code, output = _cli_verify(settings)
    assert code == 4 and f"PROBLEM [anchor] {name}:" in output and f"events {keep + 1}..{anchored}" in output


def test_evidence_verify_anchors_the_head_so_later_cuts_are_caught(engine, store, settings, tmp_path):
    _archive(engine, store, tmp_path, _key(settings))
    code, output = _cli_verify(settings)
    assert code == 0, output
    head = head_event_id(engine)
    with Session(engine) as session:
        newest = session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id).desc())).first()
        assert newest is not None and newest.last_event_id == head  # the verification_run event is anchored
        run = session.get(CustodyEvent, head)
        assert run is not None and run.kind == CustodyKind.VERIFICATION_RUN.value
    cut_tail(engine, head - 1)  # hide that the check ran (and what it found)
    code, output = _cli_verify(settings)
    assert code == 4 and f"the catalogue has no event {head}" in output, output


def test_the_chain_head_row_edited_or_deleted_is_named(engine, store, settings, tmp_path):
    _archive(engine, store, tmp_path, _key(settings))
    last = head_event_id(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_head SET last_event_id = :id WHERE id = 1"), {"id": last - 3})
    report = verify_recordings(engine, store)
    assert [(p.kind, p.subject, p.detail) for p in report.problems] == [
        ("chain", "chain head", f"the head names event {last - 3}, but the last event, whose hash it holds, is "
                                f"{last} (the head row was edited)")]
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_head SET last_event_id = :id, last_hash = :hash WHERE id = 1"),
                     {"id": last, "hash": "ab" * 32})
    report = verify_recordings(engine, store)
    assert [p.subject for p in report.problems] == ["chain head"]
    assert report.problems[0].detail.startswith(f"the head says {'ab' * 8}… (event {last}), the last event is {last}")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_head"))
    report = verify_recordings(engine, store)
    assert [p.detail for p in report.problems] == [
        f"the chain head row is missing, the last event is {last} with "
        f"{report.problems[0].detail.split(' with ')[1].split('…')[0]}… (the row was deleted)"]
    code, output = _cli_verify(settings)
    assert code == 4 and "PROBLEM [chain] chain head: the chain head row is missing" in output, output


def _delete_record_file(store: LocalStore, name: str) -> None:
    """What an account that owns the local store can do without the immutable flag: reopen the folder, unlink."""
    path = store.root / "records" / name
    folder = path.parent
    folder.chmod(folder.stat().st_mode | stat.S_IWUSR)
    path.unlink()
    folder.chmod(0o555)


def test_an_anchor_deleted_from_the_local_store_is_named_by_the_next_anchor_and_the_catalogue(engine, store, settings,
                                                                                              tmp_path):
    key = _key(settings)
    _archive(engine, store, tmp_path, key)
    with Session(engine) as session:
        names = [_view_and_anchor(session, store, key).record_name for _ in range(2)]
    second = json.loads(store.get_record(names[1]))["manifest"]
    assert second["previous"] == {"name": names[0],
                                  "sha256": hashlib.sha256(store.get_record(names[0])).hexdigest()}
    try:
        _delete_record_file(store, names[0])
    except PermissionError:
        _missing("a store account that may delete its own files (this one is immutable: chattr +i)")
    report = verify_recordings(engine, store)
    assert [(p.kind, p.subject) for p in report.problems] == [("anchor", names[0])]
    assert report.problems[0].detail == (f"the anchor {names[1]} (written {second['written_at']}) names it as the "
                                         "anchor before it, but the store no longer holds it (deleted from WORM "
                                         "storage)")
    # The newest one deleted too, and its catalogue row: the catalogue's row for the first still names it.
    _delete_record_file(store, names[1])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_anchor WHERE record_name = :name"), {"name": names[1]})
    report = verify_recordings(engine, store)
    assert [(p.kind, p.subject) for p in report.problems] == [("anchor", names[0])]
    assert "the catalogue records this anchor" in report.problems[0].detail
    code, output = _cli_verify(settings)
    assert code == 4 and f"PROBLEM [anchor] {names[0]}: the catalogue records this anchor" in output, output


def test_anchors_on_object_lock_storage_link_to_their_predecessor(engine, worm_store, tmp_path):
    """SeaweedFS (S3 Object Lock) too: the link is written and checked; the first anchor cannot be deleted there."""
    key = Ed25519PrivateKey.generate()
    _archive(engine, worm_store, tmp_path, key, count=1)
    with Session(engine, expire_on_commit=False) as session:
        first = write_anchor(session, worm_store, station=STATION, key=key, actor="test", now=utcnow())
        append_event(session, CustodyKind.VIEWED, actor="clerk")
        session.commit()
        second = write_anchor(session, worm_store, station=STATION, key=key, actor="test", now=utcnow())
        assert first is not None and second is not None
    body = json.loads(worm_store.get_record(second.record_name))["manifest"]
    assert body["previous"]["name"] == first.record_name
    assert verify_recordings(engine, worm_store).ok
    if isinstance(worm_store, S3WormStore):
        from botocore.exceptions import ClientError

        key_name = worm_store.prefix + "records/" + first.record_name
        version = worm_store.client.head_object(Bucket=worm_store.bucket, Key=key_name)["VersionId"]
        with pytest.raises(ClientError):
            worm_store.client.delete_object(Bucket=worm_store.bucket, Key=key_name, VersionId=version)


def test_a_disposal_batch_is_anchored_once_its_record_is_written(engine, store, tmp_path):
    from catalog import Signer, start_sweep
    from tests.helpers.retention import KEY, POLICY, archived, wait_past

    with Session(engine, expire_on_commit=False) as session:
        ensure_station(session, STATION)
        old = archived(session, store, tmp_path, 1, retain_until=timedelta(seconds=2),
                       captured_end=datetime(2025, 1, 1, tzinfo=UTC))  # routine footage past its time
        wait_past(old.retain_until)
        batch = start_sweep(session, store, POLICY, now=utcnow(), by="clerk:李四", approval_required=False,
                            signer=Signer(STATION, KEY))
        assert batch is not None and batch.record_key
        newest = session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id).desc())).first()
        head = session.get(CustodyHead, 1, populate_existing=True)
        assert newest is not None and head is not None and newest.last_event_id == head.last_event_id
        recorded = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "disposal_recorded")).one()
        assert recorded.id is not None and recorded.id <= newest.last_event_id
    body = json.loads(store.get_record(newest.record_name))["manifest"]
    assert body["reason"] == f"disposal batch {batch.id}"
