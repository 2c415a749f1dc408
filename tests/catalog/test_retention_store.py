"""Case retention applied to real WORM stores (local and SeaweedFS Object Lock), and lawful disposal."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from dateutil.relativedelta import relativedelta
from sqlmodel import Session, col, select

from catalog import (
    CaseStateError,
    CustodyEvent,
    Disposal,
    DisposalError,
    Signer,
    apply_retention,
    approve_batch,
    close_case,
    find_chain_breaks,
    link_recording,
    load_chain,
    plan_disposal,
    reopen_case,
    start_sweep,
    unlink_recording,
)
from catalog.models import CustodyAnchor
from catalog.signing import signed_bytes, verify_document
from catalog.timestamping import timestamp, token_name, token_problem
from catalog.types import utcnow
from ingest.config import Settings
from storage import EvidenceStore, LocalStore, ObjectLocked, S3WormStore, manifest_key, record_key
from tests.helpers import tsa as tsa_helpers
from tests.helpers.recordings import verify_recordings
from tests.helpers.retention import KEY, POLICY, archived, open_case, wait_past

local_tsa = tsa_helpers.local_tsa  # a real RFC 3161 authority on 127.0.0.1 (session fixture)

SIGNER = Signer("station-1", KEY)


def _server_refuses_delete(store: S3WormStore, sha256: str) -> str:
    """Ask the S3 server itself (no client-side check) to delete the locked version; return its error code."""
    head = store.head(sha256)
    with pytest.raises(ClientError) as refused:
        store.client.delete_object(Bucket=store.bucket, Key=head.key, VersionId=head.version_id)
    return str(refused.value.response["Error"]["Code"])


def test_case_lifecycle_sets_holds_and_extends_retention_on_the_store(engine, worm_store, tmp_path):
    now = utcnow()
    with Session(engine) as session:
        rec = archived(session, worm_store, tmp_path, 1, retain_until=now + timedelta(days=200),  # past any 6 months
                       captured_end=now - timedelta(days=1), manifest=True)
        case = open_case(session, "AB-2026-00042")
        link_recording(session, case, rec, purpose="证明违法事实", by="clerk:李四")
        session.commit()

        changes = apply_retention(session, worm_store, POLICY, actor="clerk:李四")
        assert [(c.recording_id, c.new_hold, c.error) for c in changes] == [(rec.id, True, None)]
        assert worm_store.head(rec.sha256).legal_hold is True
        with pytest.raises(ObjectLocked, match="legal hold"):
            worm_store.delete(rec.sha256, now=now + timedelta(days=365 * 100))
        if isinstance(worm_store, S3WormStore):
            assert _server_refuses_delete(worm_store, rec.sha256) == "AccessDenied"
            manifest = worm_store.client.head_object(Bucket=worm_store.bucket, Key=manifest_key(rec.sha256, 1))
            assert manifest["ObjectLockLegalHoldStatus"] == "ON"  # the manifest is held with its recording

        closed_on = datetime.now(UTC).date()
        close_case(session, case, by="clerk:李四", closed_on=closed_on, today=closed_on)
        session.commit()
        changes = apply_retention(session, worm_store, POLICY, actor="clerk:李四")
        expected = datetime.combine(date(closed_on.year + 30, closed_on.month, closed_on.day) + timedelta(days=1),
                                    datetime.min.time()).replace(tzinfo=UTC) - timedelta(hours=8)
        assert [(c.new_until, c.new_hold) for c in changes] == [(expected, False)]
        head = worm_store.head(rec.sha256)
        assert head.retain_until == expected and head.legal_hold is False
        if isinstance(worm_store, S3WormStore):
            assert _server_refuses_delete(worm_store, rec.sha256) == "AccessDenied"  # COMPLIANCE, 30 years
            manifest = worm_store.client.head_object(Bucket=worm_store.bucket, Key=manifest_key(rec.sha256, 1))
            assert manifest["ObjectLockRetainUntilDate"] >= expected
        assert apply_retention(session, worm_store, POLICY, actor="retention-job") == []  # idempotent

        reopen_case(session, case, by="supervisor:王", reason="行政复议")
        session.commit()
        apply_retention(session, worm_store, POLICY, actor="supervisor:王")
        assert worm_store.head(rec.sha256).legal_hold is True
        unlink_recording(session, case, rec, by="clerk:李四", reason="与本案无关")
        session.commit()
        changes = apply_retention(session, worm_store, POLICY, actor="clerk:李四")
        assert [(c.new_hold, c.new_until) for c in changes] == [(False, expected)]  # unlinking never shortens
        head = worm_store.head(rec.sha256)
        assert head.legal_hold is False and head.retain_until == expected
        session.refresh(rec)
        assert rec.retain_until == expected and rec.legal_hold is False
        kinds = [e.kind for e in session.exec(select(CustodyEvent).where(CustodyEvent.recording_id == rec.id)
                                                  .order_by(col(CustodyEvent.id)))]
        assert kinds.count("legal_hold") == 4 and kinds.count("retention_changed") == 1
        assert find_chain_breaks(load_chain(session)) == []


def test_disposal_needs_a_second_person_and_leaves_tombstones_and_a_signed_record(engine, worm_store, tmp_path):
    soon = timedelta(seconds=2)  # counted from each object's storing (tests.helpers.retention.archived)
    old_capture = datetime(2025, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        due = archived(session, worm_store, tmp_path, 1, retain_until=soon, captured_end=old_capture)
        held = archived(session, worm_store, tmp_path, 2, retain_until=soon, captured_end=old_capture)
        routine_ends_in_3_days = utcnow() - relativedelta(months=6) + timedelta(days=3)
        later = archived(session, worm_store, tmp_path, 3, retain_until=utcnow() + timedelta(days=1),
                         captured_end=routine_ends_in_3_days)
        case = open_case(session, "AB-2026-00099")
        link_recording(session, case, held, purpose="证明", by="clerk:李四")
        session.commit()
        apply_retention(session, worm_store, POLICY, actor="retention-job")
        wait_past(due.retain_until, held.retain_until)

        plan = {i.recording_id: i for i in plan_disposal(session, POLICY, as_of=utcnow(), within_days=7)}
        assert due.id is not None and held.id is not None and later.id is not None
        assert plan[due.id].status == "due"
        assert plan[held.id].status == "held" and plan[held.id].hold_reasons == ("case AB-2026-00099 is open",)
        assert plan[later.id].status == "upcoming"
        assert not plan_disposal(session, POLICY, as_of=utcnow() - timedelta(days=400))

        batch = start_sweep(session, worm_store, POLICY, now=utcnow(), by="clerk:李四", approval_required=True,
                            signer=SIGNER)
        assert batch is not None and batch.id is not None and batch.status == "awaiting_approval"
        assert [i["recording_id"] for i in batch.items] == [due.id]
        assert worm_store.exists(due.sha256)  # nothing happens before approval
        with pytest.raises(DisposalError, match="a different person must approve it"):
            approve_batch(session, worm_store, POLICY, batch.id, by="clerk:李四", now=utcnow(), signer=SIGNER)

        done = approve_batch(session, worm_store, POLICY, batch.id, by="supervisor:王", now=utcnow(), signer=SIGNER)
        assert done.status == "done"
        assert [o["result"] for o in done.outcome] == ["disposed"]
        assert not worm_store.exists(due.sha256)
        assert worm_store.exists(held.sha256) and worm_store.exists(later.sha256)
        session.refresh(due)
        assert due.state == "disposed"
        tombstone = session.exec(select(Disposal).where(Disposal.recording_id == due.id)).one()
        assert (tombstone.sha256, tombstone.operator, tombstone.approver) == (due.sha256, "clerk:李四", "supervisor:王")
        assert tombstone.stamp["purpose"] == "巡查" and tombstone.rule
        record = json.loads(worm_store.get_record(f"disposals/batch-{batch.id:06d}.json"))
        body = verify_document(record)
        assert body["approved_by"] == "supervisor:王"
        assert [(i["sha256"], i["result"]) for i in body["items"]] == [(due.sha256, "disposed")]
        assert done.record_key and done.record_key.endswith(f"disposals/batch-{batch.id:06d}.json")
        with pytest.raises(DisposalError, match="is 'done'"):
            approve_batch(session, worm_store, POLICY, batch.id, by="supervisor:赵", now=utcnow(), signer=SIGNER)
        with pytest.raises(CaseStateError, match="was disposed of"):
            link_recording(session, case, due, purpose="证明", by="clerk:李四")
        kinds = [e.kind for e in load_chain(session)]
        assert {"disposal_proposed", "disposal_approved", "disposed", "disposal_recorded"} <= set(kinds)
        assert find_chain_breaks(load_chain(session)) == []


def test_a_proposer_renamed_in_the_batch_row_cannot_approve_their_own_batch(engine, worm_store, tmp_path):
    from sqlalchemy import text

    with Session(engine) as session:
        due = archived(session, worm_store, tmp_path, 1, retain_until=timedelta(seconds=2),
                       captured_end=datetime(2025, 1, 1, tzinfo=UTC))
        wait_past(due.retain_until)
        batch = start_sweep(session, worm_store, POLICY, now=utcnow(), by="clerk:李四", approval_required=True,
                            signer=SIGNER)
        assert batch is not None and batch.id is not None
        # Given the batch row edited behind the application's back to name someone else as its proposer
        session.execute(text("UPDATE disposal_batch SET created_by = 'clerk:王五' WHERE id = :id"), {"id": batch.id})
        session.commit()
        session.expire_all()
        # When the real proposer, or anyone, approves it: refused, naming both; nothing is disposed of
        for approver in ("clerk:李四", "supervisor:王"):
            with pytest.raises(DisposalError) as refused:
                approve_batch(session, worm_store, POLICY, batch.id, by=approver, now=utcnow(), signer=SIGNER)
            assert "its row names 'clerk:王五'" in str(refused.value)
            assert "the custody chain 'clerk:李四'" in str(refused.value)
        assert worm_store.exists(due.sha256)
        session.refresh(batch)
        assert batch.status == "awaiting_approval"


def test_with_a_tsa_a_disposal_record_and_its_anchor_carry_tokens_and_a_swapped_token_is_found(
        engine, worm_store, tmp_path, local_tsa):
    """The record of what was destroyed is what a court asks for years later: its time comes from a TSA too."""
    tsa = dataclasses.replace(Settings.defaults(), tsa_url=local_tsa.url("ok"))
    signer = Signer("station-1", KEY, tsa=tsa)
    with Session(engine) as session:
        due = archived(session, worm_store, tmp_path, 1, retain_until=timedelta(seconds=1),
                       captured_end=datetime(2025, 1, 1, tzinfo=UTC), manifest=True)
        wait_past(due.retain_until)
        batch = start_sweep(session, worm_store, POLICY, now=utcnow(), by="clerk:李四", approval_required=False,
                            signer=signer)
        assert batch is not None and batch.status == "done"
        name = f"disposals/batch-{batch.id:06d}.json"
        record, token = worm_store.get_record(name), worm_store.get_record(token_name(name))
        assert token_problem(signed_bytes(json.loads(record)), token) is None
        (tmp_path / "record.body").write_bytes(signed_bytes(json.loads(record)))
        (tmp_path / "record.tsr").write_bytes(token)
        checked = subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp_path / "record.body"), "-in",
                                  str(tmp_path / "record.tsr"), "-CAfile", str(local_tsa.ca), "-untrusted",
                                  str(local_tsa.cert)], capture_output=True, text=True, timeout=60, check=False)
        assert "Verification: OK" in checked.stdout, checked.stdout + checked.stderr
        anchor = session.exec(select(CustodyAnchor).order_by(col(CustodyAnchor.id).desc())).first()
        assert anchor is not None and worm_store.get_record(token_name(anchor.record_name))
    assert verify_recordings(engine, worm_store).ok

    other = timestamp(b"another record", tsa)
    assert other is not None
    _replace_record(worm_store, token_name(name), other)  # a genuine token, of other bytes
    found = [p.detail for p in verify_recordings(engine, worm_store).problems]
    assert any(f"its RFC 3161 token {token_name(name)} does not stamp it" in d for d in found), found


def _replace_record(store: EvidenceStore, name: str, data: bytes) -> None:
    """Below the application: a new version of an S3 record (whoever has write rights can add one), or the sealed
    file rewritten in a local store."""
    if isinstance(store, S3WormStore):
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + record_key(name), Body=data)
        return
    assert isinstance(store, LocalStore)
    path = store.root / record_key(name)
    mode = path.stat().st_mode & 0o777
    path.chmod(0o644)
    path.write_bytes(data)
    path.chmod(mode)


def test_an_item_linked_to_a_case_after_the_plan_is_refused_and_reported(engine, worm_store, tmp_path):
    soon = timedelta(seconds=2)  # counted from each object's storing (tests.helpers.retention.archived)
    with Session(engine) as session:
        first = archived(session, worm_store, tmp_path, 1, retain_until=soon, captured_end=datetime(2025, 1, 1,
                                                                                                    tzinfo=UTC))
        second = archived(session, worm_store, tmp_path, 2, retain_until=soon, captured_end=datetime(2025, 1, 1,
                                                                                                     tzinfo=UTC))
        wait_past(first.retain_until, second.retain_until)
        batch = start_sweep(session, worm_store, POLICY, now=utcnow(), by="clerk:李四", approval_required=True,
                            signer=SIGNER)
        assert batch is not None and batch.id is not None and len(batch.items) == 2
        case = open_case(session, "AB-2026-00100")
        link_recording(session, case, second, purpose="新发现的证据", by="clerk:李四")
        session.commit()
        done = approve_batch(session, worm_store, POLICY, batch.id, by="supervisor:王", now=utcnow(), signer=SIGNER)
        results = {o["recording_id"]: o for o in done.outcome}
        assert results[first.id]["result"] == "disposed"
        assert results[second.id]["result"] == "refused"
        assert "under legal hold: case AB-2026-00100 is open" in results[second.id]["reason"]
        assert done.status == "partial"
        assert worm_store.exists(second.sha256)
        failed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "disposal_failed")).one()
        assert failed.recording_id == second.id


def test_the_store_has_the_last_word_when_the_catalog_drifted(engine, worm_store, tmp_path):
    soon = timedelta(seconds=2)  # counted from each object's storing (tests.helpers.retention.archived)
    with Session(engine) as session:
        rec = archived(session, worm_store, tmp_path, 1, retain_until=soon, captured_end=datetime(2025, 1, 1,
                                                                                                  tzinfo=UTC))
        worm_store.extend_retention(rec.sha256, utcnow() + timedelta(days=1))  # changed behind the catalog's back
        wait_past(rec.retain_until)
        batch = start_sweep(session, worm_store, POLICY, now=utcnow(), by="clerk:李四", approval_required=False,
                            signer=SIGNER)
        assert batch is not None and batch.status == "partial" and batch.approved_by is None
        assert batch.outcome[0]["result"] == "refused"
        assert batch.outcome[0]["reason"].startswith("the store refused")
        assert worm_store.exists(rec.sha256)
        session.refresh(rec)
        assert rec.state == "verified"
        assert session.exec(select(Disposal)).first() is None


def test_a_sweep_with_nothing_due_makes_no_batch(engine, worm_store, tmp_path):
    with Session(engine) as session:
        archived(session, worm_store, tmp_path, 1, retain_until=utcnow() + timedelta(days=1), captured_end=utcnow())
        assert start_sweep(session, worm_store, POLICY, now=utcnow(), by="clerk", approval_required=False,
                           signer=SIGNER) is None


def test_check_store_repairs_a_hold_lifted_behind_the_catalogue(engine, worm_store, tmp_path):
    now = utcnow()
    with Session(engine) as session:
        rec = archived(session, worm_store, tmp_path, 1, retain_until=now + timedelta(days=200),  # past any 6 months
                       captured_end=now - timedelta(days=1))
        link_recording(session, open_case(session, "AB-2026-00200"), rec, purpose="证明", by="clerk")
        session.commit()
        apply_retention(session, worm_store, POLICY, actor="clerk")
        worm_store.set_legal_hold(rec.sha256, False)  # someone with store rights lifted it directly
        assert apply_retention(session, worm_store, POLICY, actor="retention-job") == []  # the catalogue agrees
        repaired = apply_retention(session, worm_store, POLICY, actor="retention-job", check_store=True)
        assert [(c.recording_id, c.new_hold, c.error) for c in repaired] == [(rec.id, True, None)]
        assert "legal hold off: repaired" in repaired[0].notes[0]
        assert worm_store.head(rec.sha256).legal_hold is True
        assert apply_retention(session, worm_store, POLICY, actor="retention-job", check_store=True) == []
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "legal_hold")
                             .order_by(col(CustodyEvent.id).desc())).first()
        assert event is not None and "repaired" in event.details["repair"]
