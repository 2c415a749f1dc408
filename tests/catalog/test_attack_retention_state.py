"""High 2: early disposal that `verify` could not see. An insider with database rights (and the store account's
rights on the local store) shortens a recording's retention in the catalogue row and in the store's retention
record, lifts its legal hold, edits its integrity verdict; the application's own two-person disposal must refuse
to destroy it (a `disposal_failed` event naming why), and `evidence verify --all` must name every edit (exit 4).

Everything runs for real: ingest through `evidence ingest`, the attack as direct SQL on SQLite and PostgreSQL plus
a rewrite of the local store's retention record, disposal through `evidence retention sweep|approve`, and
`evidence verify --all`.
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from catalog import DEFAULT_CASE_PATTERN, load_or_create_key
from catalog.models import CustodyEvent, Recording
from catalog.restamping import change_stamp
from ingest.config import Settings
from storage import object_key
from tests.cli import run_cli
from tests.helpers.cli_archive import ingest_recorder, problems_of, store_of, sweep_and_approve, verify_all
from tests.helpers.insider import LONG_AGO, PAST, rewrite_retention_record, sql

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def test_retention_shortened_in_the_row_and_the_store_record_is_refused_by_disposal_and_named_by_verify(
        env, engine, tmp_path):
    [row] = ingest_recorder(env, tmp_path, "a")
    rid, sha = row["id"], row["sha256"]
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    with Session(engine) as session:
        kept = session.get(Recording, rid)
        assert kept is not None and kept.retain_until is not None and kept.captured_end is not None
        truly_until, truly_end = kept.retain_until, kept.captured_end

    # The attack: the row says the recording was made and archived long ago and is due; so does the store.
    sql(engine, "UPDATE recording SET retain_until = :until, captured_start = :start, captured_end = :end, "
                "archived_at = :start, ingested_at = :start, retention_rule = 'routine' WHERE id = :id",
        until=PAST, start=LONG_AGO, end=LONG_AGO, id=rid)
    sql(engine, "UPDATE stamp_revision SET captured_start = :start WHERE recording_id = :id", start=LONG_AGO, id=rid)
    store = store_of(env)
    rewrite_retention_record(store, sha, retain_until=PAST, legal_hold=False)

    outcome, code = sweep_and_approve(env)
    assert code == 1  # a partial batch
    [item] = outcome["outcome"]
    assert (item["recording_id"], item["result"]) == (rid, "refused")
    assert item["reason"].startswith("the catalogue disagrees with the custody chain: ")
    assert f"retain_until: the catalogue row says {PAST.isoformat()}, the custody chain says " \
           f"{truly_until.isoformat()}" in item["reason"]
    assert f"captured_end: the catalogue row says {LONG_AGO.isoformat()}, the custody chain says " \
           f"{truly_end.isoformat()}" in item["reason"]
    assert store.exists(sha)  # nothing was deleted
    with Session(engine) as session:
        failed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "disposal_failed",
                                                         CustodyEvent.recording_id == rid)).one()
        assert failed.details["reason"] == item["reason"]
        assert session.exec(select(CustodyEvent).where(CustodyEvent.kind == "disposed")).first() is None

    code, report = verify_all(env)
    assert code == 4
    found = problems_of(report, rid)
    assert any(p.startswith(f"[retention] retain_until: the catalogue row says {PAST.isoformat()}, the custody "
                            f"chain says {truly_until.isoformat()}") and "edited behind the application's back" in p
               for p in found), found
    assert any(p.startswith(f"[catalog] captured_end: the catalogue row says {LONG_AGO.isoformat()}") for p in found)
    assert any(p.startswith(f"[catalog] captured_start: the catalogue row says {LONG_AGO.isoformat()}")
               for p in found)
    assert any(p.startswith("[catalog] ingested_at: the catalogue row says") for p in found)
    assert any(f"the store locks {object_key(sha)} until {PAST.isoformat()}, but it must be kept until "
               f"{truly_until.isoformat()}" in p for p in found), found


def test_a_hold_lifted_and_an_integrity_verdict_edited_behind_the_app_are_named_and_block_disposal(
        env, engine, tmp_path):
    # Stamped with a case number nobody registered: held until a clerk decides (a pending-case hold).
    [held] = ingest_recorder(env, tmp_path, "held", extra=("--case", "AB-2026-07777", "--purpose", "证明违法事实"))
    [damaged] = ingest_recorder(env, tmp_path, "ok")
    assert held["legal_hold"] is True
    store = store_of(env)
    for r in (held, damaged):
        sql(engine, "UPDATE recording SET retain_until = :until, captured_end = :end, archived_at = :end, "
                    "ingested_at = :end WHERE id = :id", until=PAST, end=LONG_AGO, id=r["id"])
        rewrite_retention_record(store, r["sha256"], retain_until=PAST, legal_hold=False)
    # What held it goes too: its hold, and the case number that put it on (row and stamp revision alike).
    sql(engine, "UPDATE recording SET legal_hold = false, case_number = NULL WHERE id = :id", id=held["id"])
    sql(engine, "UPDATE stamp_revision SET case_number = NULL WHERE recording_id = :id", id=held["id"])
    sql(engine, "UPDATE recording SET integrity_status = 'damaged' WHERE id = :id", id=damaged["id"])

    outcome, code = sweep_and_approve(env)
    assert code == 1
    reasons = {o["recording_id"]: o["reason"] for o in outcome["outcome"]}
    assert set(reasons) == {held["id"], damaged["id"]}
    assert "legal_hold: the catalogue row says False, the custody chain says True" in reasons[held["id"]]
    assert "integrity_status: the catalogue row says 'damaged', the custody chain says 'ok'" in reasons[damaged["id"]]
    assert all(o["result"] == "refused" for o in outcome["outcome"])
    assert store.exists(held["sha256"]) and store.exists(damaged["sha256"])

    code, report = verify_all(env)
    assert code == 4
    on_held = problems_of(report, held["id"])
    assert any(p.startswith("[retention] legal_hold: the catalogue row says False, the custody chain says True")
               and "a hold lifted without a legal_hold event" in p for p in on_held), on_held
    assert any("the custody chain holds" in p and "under legal hold, the store does not" in p for p in on_held)
    assert any(p.startswith("[catalog] integrity_status: the catalogue row says 'damaged', the custody chain says "
                            "'ok'") for p in problems_of(report, damaged["id"]))


def test_retention_applied_through_the_app_keeps_verify_and_disposal_quiet(env, engine, tmp_path):
    """The control: the same recordings changed only through the application verify clean, so every problem the
    attacks above show comes from the attack."""
    [row] = ingest_recorder(env, tmp_path, "c", extra=("--case", "AB-2026-08888", "--purpose", "证明"))
    created = run_cli(env, "case", "create", "AB-2026-08888", "--title", "占道经营", "--type", "penalty-summary",
                      "--opened", "2026-01-05", "--by", "clerk-li", "--json")
    assert created.exit_code == 0, created.output
    closed = run_cli(env, "case", "close", "AB-2026-08888", "--on", "2026-02-01", "--by", "clerk-li", "--json")
    assert closed.exit_code == 0, closed.output
    cfg = Settings.from_env(env)
    with Session(engine) as session:  # a clerk corrects the capture time (the web form's call)
        recording = session.get(Recording, row["id"])
        assert recording is not None
        change_stamp(session, store_of(env), recording, by="clerk-li", reason="设备时钟错误",
                     case_pattern=DEFAULT_CASE_PATTERN, policy=cfg.retention_policy,
                     key=load_or_create_key(cfg.station_key_path), captured_start=datetime(2026, 1, 5, tzinfo=UTC))
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    with Session(engine) as session:
        kept = session.get(Recording, row["id"])
        assert kept is not None and kept.retain_until is not None and kept.retain_until.year == 2036


def test_retention_apply_never_lifts_a_hold_the_custody_chain_still_gives(env, engine, tmp_path):
    """A review rolled back the re-stamp that put a pending-case hold on (the revision row deleted, the case number
    taken off the row): `retention apply` then lifted the hold, row and store, as the row's facts said, and verify
    only named it afterwards with advice that did nothing. The chain's `restamped` event still states the case
    number: apply keeps the hold and says why."""
    [row] = ingest_recorder(env, tmp_path, "pending")
    rid = row["id"]
    tagged = run_cli(env, "tag", str(rid), "--case", "Z-2026-999", "--reason", "belongs to a case",
                     "--by", "supervisor-wang")
    assert tagged.exit_code == 0, tagged.output
    store = store_of(env)
    assert store.head(row["sha256"]).legal_hold is True
    sql(engine, "DELETE FROM stamp_revision WHERE recording_id = :id AND revision = 2", id=rid)
    sql(engine, "UPDATE recording SET stamp_revision = 1, case_number = NULL WHERE id = :id", id=rid)
    applied = run_cli(env, "retention", "apply", "--by", "clerk-li", "--json")
    assert applied.exit_code != 0, applied.output
    assert "the custody chain holds it" in applied.output and "nothing was lifted" in applied.output
    with Session(engine) as session:
        kept = session.get(Recording, rid)
        assert kept is not None and kept.legal_hold is True
    assert store.head(row["sha256"]).legal_hold is True
    code, report = verify_all(env)
    assert code == 4 and any("names stamp revision 2" in p for p in problems_of(report, rid))


def test_an_integrity_history_rewritten_or_cut_in_the_database_is_named(env, engine, tmp_path):
    """A review rewrote a damaged recording's integrity history to "ok / decoded without errors", and deleted a
    verdict of another: `evidence integrity history` showed the forgery and verify passed. The chain's
    integrity_checked events record every verdict."""
    from catalog.integrity import record_integrity

    rows = [ingest_recorder(env, tmp_path, name)[0] for name in ("decoded", "cut")]
    with Session(engine) as session:
        for row in rows:
            recording = session.get(Recording, row["id"])
            assert recording is not None
            record_integrity(session, recording, check="decode", status="damaged",
                             detail="Invalid data found when processing input at 0.48 s", by="worker:decode")
        session.commit()
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    rewritten, cut = rows[0]["id"], rows[1]["id"]
    sql(engine, "UPDATE integrity_check SET status = 'ok', detail = 'decoded without errors' "
                "WHERE recording_id = :id", id=rewritten)
    sql(engine, "DELETE FROM integrity_check WHERE recording_id = :id AND revision = 2", id=cut)
    code, report = verify_all(env)
    assert code == 4
    on_rewritten = problems_of(report, rewritten)
    assert any("integrity revision 2's status is 'ok', its integrity_checked event" in p and "says 'damaged'" in p
               for p in on_rewritten), on_rewritten
    assert any("integrity revision 2's detail is 'decoded without errors'" in p for p in on_rewritten)
    on_cut = problems_of(report, cut)
    assert any("records revision 2 (decode, 'damaged'), but the catalogue has no such row" in p for p in on_cut), \
        on_cut


def test_an_integrity_detail_emptied_against_its_signed_manifest_is_named(env, engine, tmp_path):
    """A review emptied a damaged recording's integrity detail (and the court package showed "damaged" with no
    reason) while its signed manifest stated the finding: verify passed. The detail only grows and the verdict only
    worsens after signing."""
    from catalog.integrity import record_integrity

    [row] = ingest_recorder(env, tmp_path, "signed-damage")
    rid = row["id"]
    with Session(engine) as session:
        recording = session.get(Recording, rid)
        assert recording is not None
        record_integrity(session, recording, check="decode", status="damaged",
                         detail="Invalid data found when processing input at 0.48 s", by="worker:decode")
        session.commit()
    tagged = run_cli(env, "tag", str(rid), "--purpose", "证明违法事实", "--reason", "补充", "--by", "clerk-li")
    assert tagged.exit_code == 0, tagged.output  # manifest r2 signs the damaged verdict and its detail
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    sql(engine, "UPDATE recording SET integrity_detail = '' WHERE id = :id", id=rid)
    code, report = verify_all(env)
    assert code == 4
    assert any(p.startswith("[catalog] integrity detail: the catalogue says '', which does not begin with") and
               "Invalid data found" in p for p in problems_of(report, rid)), problems_of(report, rid)
