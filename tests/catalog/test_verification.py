"""Independent verification catches every tamper case, on the local store and on S3 Object Lock."""
from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlmodel import Session, select

from catalog import CustodyKind, Recording, append_event, ensure_station, ensure_station_key
from catalog.anchors import write_anchor
from catalog.findings import chain_differences, linked_cases, load_recording_chain
from catalog.fixity import run_fixity
from catalog.models import CustodyEvent, CustodyHead, StampRevision
from catalog.signing import sign_document
from catalog.types import utcnow
from catalog.verification import check_recording_record, object_problems
from storage import LocalStore, S3WormStore, manifest_key, object_key
from tests.conftest import as_attacker
from tests.helpers.chain_forgery import rewrite_chain
from tests.helpers.recordings import archive_recording, verify_recordings

KEY = Ed25519PrivateKey.generate()


def _archive(session: Session, store, tmp_path, n: int) -> Recording:
    if session.get(Recording, 1) is None and n == 1:
        ensure_station(session, "station-1")
        ensure_station_key(session, "station-1", KEY, actor="station:test")
    recording = archive_recording(session, store, tmp_path, n, KEY,
                                  details={"device_serial": "A123456", "device_path": f"DCIM/clip{n}.mp4"})
    session.commit()
    return recording


def _archive_three(engine, store, tmp_path) -> list[Recording]:
    with Session(engine, expire_on_commit=False) as session:  # the rows stay readable after the session
        return [_archive(session, store, tmp_path, n) for n in (1, 2, 3)]


def _overwrite(store, key: str, data: bytes) -> None:
    """Tamper below the application: a new S3 version, or the file itself on the local store."""
    if isinstance(store, S3WormStore):
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + key, Body=data)
    else:
        assert isinstance(store, LocalStore)
        path = store.root / "objects" / key if key.startswith("sha256/") else store.root / key
        mode = path.stat().st_mode & 0o777
        path.chmod(0o644)
        path.write_bytes(data)
        path.chmod(mode)  # the seal put back: only the bytes tell


def test_an_untouched_archive_verifies(engine, worm_store, tmp_path):
    recordings = _archive_three(engine, worm_store, tmp_path)
    with Session(engine) as session:
        assert write_anchor(session, worm_store, station="station-1", key=KEY, actor="test", now=utcnow())
    report = verify_recordings(engine, worm_store)
    assert report.ok, [str(p) for p in report.problems]
    assert report.recordings == 3 and report.manifests == 3 and report.anchors == 1
    assert report.bytes_read == sum(r.size_bytes for r in recordings)
    assert report.events > 6


def test_one_flipped_byte_in_a_stored_object_is_named(engine, worm_store, tmp_path):
    recordings = _archive_three(engine, worm_store, tmp_path)
    target = recordings[1]
    with worm_store.open(target.sha256) as fh:
        data = bytearray(fh.read())
    data[100] ^= 0x01
    _overwrite(worm_store, object_key(target.sha256), bytes(data))
    report = verify_recordings(engine, worm_store)
    expected = [("object", target.id)]
    if isinstance(worm_store, S3WormStore):  # the forged version was written without the lock: named too (against
        expected += [("retention", target.id)] * 2  # the catalogue row and against the custody chain)
    assert [(p.kind, p.recording_id) for p in report.problems] == expected
    assert f"stored bytes hash to {hashlib.sha256(data).hexdigest()}, expected {target.sha256}" in \
        report.problems[0].detail


def test_an_edited_catalogue_row_is_named(engine, worm_store, tmp_path):
    recordings = _archive_three(engine, worm_store, tmp_path)
    with engine.begin() as conn:
        conn.execute(text("UPDATE recording SET case_number = 'AB-2026-99999' WHERE id = :id"),
                     {"id": recordings[0].id})
        conn.execute(text("UPDATE stamp_revision SET purpose = '证明违法事实' WHERE recording_id = :id"),
                     {"id": recordings[2].id})
    report = verify_recordings(engine, worm_store)
    details = {(p.recording_id, p.detail) for p in report.problems}
    assert (recordings[0].id, "case_number is 'AB-2026-99999' in the recording row but None in stamp revision 1") \
        in details
    assert (recordings[2].id, "stamp.purpose: the catalogue says '证明违法事实', the signed manifest says '巡查'") \
        in details


def test_an_appended_event_that_cuts_retention_does_not_make_a_shorter_row_agree(engine, worm_store, tmp_path):
    # Given a recording whose retention an insider cuts by appending an event the application never writes (a
    # shorter retain-until) and making the row agree with it (a review: verify passed, disposal went ahead)
    recordings = _archive_three(engine, worm_store, tmp_path)
    target = recordings[0]
    assert target.retain_until is not None
    cut = target.retain_until - timedelta(days=150)
    with Session(engine) as session:
        append_event(session, CustodyKind.RETENTION_CHANGED, actor="clerk:李四", recording_id=target.id, details={
            "old": target.retain_until.isoformat(), "new": cut.isoformat(), "rule": "routine", "in_store": True})
        session.execute(text("UPDATE recording SET retain_until = :cut WHERE id = :id"), {"cut": cut, "id": target.id})
        session.commit()
    # When the archive is verified: the row is named against the longer retention the chain holds
    report = verify_recordings(engine, worm_store)
    found = [p.detail for p in report.problems if p.recording_id == target.id]
    assert any(d.startswith("retain_until: the catalogue row says") and "retention only grows" in d for d in found), \
        found
    assert {p.recording_id for p in report.problems} == {target.id}


def test_a_deleted_or_reordered_custody_row_breaks_the_chain_where_it_happened(engine, worm_store, tmp_path):
    _archive_three(engine, worm_store, tmp_path)
    with Session(engine) as session:
        ids = [e.id for e in session.exec(select(CustodyEvent).order_by(CustodyEvent.id))]  # type: ignore[arg-type]
    # key_registered; then copied, stamped, manifested for each recording
    victim = ids[5]  # recording 2's `stamped` event, which its signed manifest lists
    as_attacker(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_event WHERE id = :id"), {"id": victim})
    report = verify_recordings(engine, worm_store)
    chain = [p for p in report.problems if p.kind == "chain"]
    assert any(p.subject.startswith(f"event {ids[6]} ") and f"does not follow event {ids[4]}'s hash" in p.detail
               for p in chain), [str(p) for p in chain]
    # The manifests list the events they were signed with, so the deleted one is missed there too.
    assert any(f"custody event {victim}" in p.detail and "no such event" in p.detail for p in chain)

    with engine.begin() as conn:  # two events change places: each row takes the other's content
        rows = {r.id: r for r in conn.execute(text("SELECT id, kind, actor FROM custody_event WHERE id IN (:a, :b)"),
                                               {"a": ids[1], "b": ids[2]})}
        for this, other in ((ids[1], ids[2]), (ids[2], ids[1])):
            conn.execute(text("UPDATE custody_event SET kind = :kind, actor = :actor WHERE id = :id"),
                         {"kind": rows[other].kind, "actor": rows[other].actor, "id": this})
    report = verify_recordings(engine, worm_store)
    moved = {p.subject.split(" (")[0] for p in report.problems if p.kind == "chain" and "was edited" in p.detail}
    assert {f"event {ids[1]}", f"event {ids[2]}"} <= moved


def test_a_chain_rewritten_consistently_is_caught_by_the_worm_anchor(engine, worm_store, tmp_path):
    _archive_three(engine, worm_store, tmp_path)
    with Session(engine) as session:
        anchor = write_anchor(session, worm_store, station="station-1", key=KEY, actor="test", now=utcnow())
        assert anchor is not None
        anchored_id, anchored_hash, anchor_name = anchor.last_event_id, anchor.last_hash, anchor.record_name
        third = session.exec(select(CustodyEvent).order_by(CustodyEvent.id)).all()[2].id  # type: ignore[arg-type]
    assert third is not None
    # Someone with database rights edits an old event and recomputes every hash after it.
    rewrite_chain(engine, {third: {"actor": "someone else"}}, from_id=third)
    report = verify_recordings(engine, worm_store)
    anchors = [p for p in report.problems if p.kind == "anchor"]
    assert len(anchors) == 1 and anchors[0].subject == anchor_name
    assert f"says event {anchored_id} has hash {anchored_hash[:16]}" in anchors[0].detail
    assert not [p for p in report.problems if p.kind == "chain" and "content does not match" in p.detail]


def test_a_forged_manifest_signature_is_named(engine, worm_store, tmp_path):
    recordings = _archive_three(engine, worm_store, tmp_path)
    target = recordings[0]
    body = json.loads(worm_store.get_manifest(target.sha256, 1))["manifest"]
    body["stamp"]["purpose"] = "证明违法事实"
    forged = sign_document(body, Ed25519PrivateKey.generate())  # a key no station registered
    _overwrite(worm_store, manifest_key(target.sha256, 1), json.dumps(forged).encode())
    report = verify_recordings(engine, worm_store)
    assert [(p.kind, p.recording_id) for p in report.problems] == [("signature", target.id)]
    assert "is not a registered station key" in report.problems[0].detail


def test_fixity_checks_a_rolling_sample_and_records_it(engine, worm_store, tmp_path):
    recordings = _archive_three(engine, worm_store, tmp_path)
    with Session(engine) as session:
        first = run_fixity(session, worm_store, sample=2, actor="worker:fixity", now=utcnow())
        second = run_fixity(session, worm_store, sample=2, actor="worker:fixity", now=utcnow())
        assert first.verified_ids == [recordings[0].id, recordings[1].id]
        assert recordings[2].id in second.verified_ids  # never checked before: first in line
        kinds = [e.kind for e in session.exec(select(CustodyEvent).where(CustodyEvent.kind == "verified"))]
        assert len(kinds) == 4
    with worm_store.open(recordings[1].sha256) as fh:
        data = bytearray(fh.read())
    data[0] ^= 0xFF
    _overwrite(worm_store, object_key(recordings[1].sha256), bytes(data))
    with Session(engine) as session:
        report = run_fixity(session, worm_store, sample=3, actor="worker:fixity", now=utcnow())
        assert {p.recording_id for p in report.problems} == {recordings[1].id}
        failed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "fixity_failed")).one()
        assert failed.recording_id == recordings[1].id and "stored bytes hash to" in failed.details["problems"][0]


def test_a_check_dated_in_the_future_does_not_hide_an_altered_object_from_fixity(engine, worm_store, tmp_path):
    recordings = _archive_three(engine, worm_store, tmp_path)
    with Session(engine) as session:  # every recording checked once: each has a last check now
        assert run_fixity(session, worm_store, sample=3, actor="worker:fixity", now=utcnow()).ok
    target = recordings[0]
    with worm_store.open(target.sha256) as fh:
        data = bytearray(fh.read())
    data[0] ^= 0xFF
    _overwrite(worm_store, object_key(target.sha256), bytes(data))
    # Given the altered recording's last check dated 9999 behind the application's back (never in line again)
    with engine.begin() as conn:
        conn.execute(text("UPDATE recording SET fixity_checked_at = :far WHERE id = :id"),
                     {"far": datetime(9999, 12, 31, tzinfo=UTC), "id": target.id})
    # When the scheduled fixity check takes its sample of one: the impossible date counts as never checked
    with Session(engine) as session:
        report = run_fixity(session, worm_store, sample=1, actor="worker:fixity", now=utcnow())
    assert {p.recording_id for p in report.problems} == {target.id}


def test_concurrent_writers_keep_one_total_order(engine):
    def writer(n: int) -> None:
        with Session(engine) as session:
            for i in range(25):
                append_event(session, CustodyKind.VIEWED, actor=f"writer-{n}", details={"i": i})
                session.commit()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(engine) as session:
        from catalog import find_chain_breaks, load_chain

        chain = load_chain(session)
        head = session.get(CustodyHead, 1)
        assert head is not None
        assert len(chain) == 100 and find_chain_breaks(chain, head_hash=head.last_hash) == []


def test_a_rows_differences_from_its_chain_come_kinded_and_in_order(engine, worm_store, tmp_path):
    # Given a recording whose row was edited behind the application's back (hash, retention, integrity)
    recording = _archive_three(engine, worm_store, tmp_path)[0]
    assert recording.id is not None
    with engine.begin() as conn:
        conn.execute(text("UPDATE recording SET sha256 = :sha, retain_until = :until, integrity_status = 'failed' "
                          "WHERE id = :id"), {"sha": "0" * 64, "until": datetime(2020, 1, 1), "id": recording.id})
    with Session(engine) as session:
        row = session.get(Recording, recording.id)
        assert row is not None
        # When its chain is read and held against it
        chain = load_recording_chain(session, recording.id, check_hashes=True)
        found = chain_differences(row, chain.replay, chain.links)
    # Then the origin comes first, then the row values, each with its kind; nothing is linked or broken
    assert chain.broken == [] and chain.links == [] and linked_cases(chain.replay, chain.links) == set()
    assert [kind for kind, _text in found] == ["catalog", "retention", "catalog"]
    assert found[0][1].startswith("sha256: the catalogue row says " + "0" * 64 + ", the custody event that created it")
    assert found[1][1].startswith("retain_until: the catalogue row says 2020-01-01")
    assert found[2][1].startswith("integrity_status: the catalogue row says 'failed', the custody chain says 'ok'")


def test_a_record_is_held_against_its_revision_and_manifest_fact_by_fact():
    # Given a row, its one stamp revision and a signed manifest that disagree on a few facts
    at = datetime(2026, 11, 20, tzinfo=UTC)
    recording = Recording(id=7, sha256="a" * 64, size_bytes=10, media_kind="video", original_name="clip.mp4",
                          station_code="station-1", device_serial="A1", officer_number="010203", purpose="巡查",
                          case_number="AB-1", captured_start=at, stamp_revision=1, important=False,
                          retain_until=at + timedelta(days=1), time_source="filename", integrity_status="ok",
                          state="archived")
    revision = StampRevision(recording_id=7, revision=1, case_number="AB-2", captured_start=at, collector="010203",
                             purpose="巡查", important=False, changed_by="station:test", reason="ingest", changes={},
                             changed_at=at)
    body = {"sha256": "a" * 64, "size_bytes": 11, "original_name": "clip.mp4", "device_serial": "A1",
            "station": "station-1", "retain_until": (at + timedelta(days=30)).isoformat(),
            "stamp": {"case_number": "AB-2", "collector": "010203", "purpose": "巡查", "important": False,
                      "changed_by": "station:test", "reason": "ingest", "changes": {},
                      "captured_start": at.isoformat(), "changed_at": "2026-11-21T00:00:00+00:00"},
            "custody": [{"id": 1, "kind": "copied", "hash": "b" * 64}]}
    # When they are compared
    problems = check_recording_record(recording, [revision], {1: body}, {1: "c" * 64})
    # Then each difference is named with both values, in a fixed order, all about recording 7
    assert [str(p) for p in problems] == [
        "[catalog] recording 7 (clip.mp4): case_number is 'AB-1' in the recording row but 'AB-2' in stamp revision 1",
        "[catalog] recording 7 (clip.mp4), manifest r1: size_bytes: the catalogue says 10, the signed manifest says 11",
        "[catalog] recording 7 (clip.mp4), manifest r1: stamp.changed_at: the catalogue says "
        "'2026-11-20T00:00:00+00:00', the signed manifest says '2026-11-21T00:00:00+00:00'",
        "[catalog] recording 7 (clip.mp4), manifest r1: retain_until: the catalogue says 2026-11-21T00:00:00+00:00, "
        "earlier than the 2026-12-20T00:00:00+00:00 signed in this manifest (retention only grows: the row was "
        "edited)",
        "[chain] recording 7 (clip.mp4), manifest r1: the manifest lists custody event 1 (copied) with hash "
        "bbbbbbbbbbbbbbbb…; the catalogue has cccccccccccccccc…",
    ]
    assert {p.recording_id for p in problems} == {7}
    assert check_recording_record(Recording(
        id=8, sha256="a" * 64, size_bytes=1, media_kind="video", original_name="x.mp4", station_code="s",
        stamp_revision=0, time_source="filename", integrity_status="ok", state="archived"), [], {}, {})[0].kind == \
        "manifest"


def test_read_back_bytes_are_held_against_the_catalogue_hash_and_size():
    recording = Recording(id=3, sha256="a" * 64, size_bytes=10, media_kind="video", original_name="clip.mp4",
                          station_code="station-1", time_source="filename", integrity_status="ok", state="archived")
    assert object_problems(recording, "a" * 64, 10) == []
    assert [p.detail for p in object_problems(recording, "b" * 64, 9)] == [
        f"stored bytes hash to {'b' * 64}, expected {'a' * 64}", "stored object is 9 bytes, the catalogue says 10"]


def test_a_case_opened_or_closed_while_verify_runs_is_not_reported(engine):
    """verify reads the case events when it begins and the case rows when it ends (hours later on a large
    archive): a case a clerk opened or closed meanwhile was reported as changed behind the application's back
    (found by a review). A difference is read again, events and row together."""
    from datetime import date

    from catalog import DEFAULT_CASE_PATTERN
    from catalog.case_models import Case
    from catalog.cases import close_case, create_case
    from catalog.replay import load_case_replays
    from catalog.retention import DEFAULT_CASE_TYPES, RetentionPolicy
    from catalog.verification import case_problems

    policy = RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai")

    def opening(session: Session, number: str) -> None:
        create_case(session, number=number, title="无照经营", case_type="inspection", unit="",
                    opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN, policy=policy,
                    today=date(2026, 12, 3))

    with Session(engine) as session:
        opening(session, "AB-2026-00001")
        session.commit()
    with Session(engine) as verifying:
        said_at_start = load_case_replays(verifying)
        with Session(engine) as clerk:  # meanwhile: one case closed, another opened
            case = clerk.exec(select(Case).where(Case.number == "AB-2026-00001")).one()
            close_case(clerk, case, by="clerk", closed_on=date(2026, 12, 2), today=date(2026, 12, 3))
            opening(clerk, "AB-2026-00002")
            clerk.commit()
        assert case_problems(verifying, said_at_start, None) == []
        # an edit behind the application's back is still named
        as_attacker(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE case_file SET title = 'forged' WHERE number = 'AB-2026-00002'"))
        [problem] = case_problems(verifying, said_at_start, None)
        assert problem.subject == "case AB-2026-00002" and problem.detail.startswith(
            "title: the case row says 'forged', the custody chain says '无照经营'")
