"""Custody events, stamps and manifests written in batches: the same chain, rows and signed files as one at a time.

On SQLite and PostgreSQL: a batch of events links up with single appends before and after it; a savepoint rolled
back after appending leaves the chain linked; a batch of stamps is revision 1 of each with its `stamped` event; a
batch of manifests is signed and stored, and one the store refuses costs only that one (no event for it).
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from catalog import CustodyEvent, Recording, StampRevision, find_chain_breaks, load_chain, open_catalog
from catalog.custody import CustodyKind, NewEvent, append_event, append_events
from catalog.manifests import read_manifest, trusted_fingerprints, write_manifest, write_manifests
from catalog.signing import load_or_create_key
from catalog.stamps import record_stamps
from storage import BackendUnavailable, LocalStore


def _head(session: Session) -> tuple[int | None, str]:
    row = session.execute(text("SELECT last_event_id, last_hash FROM custody_head WHERE id = 1")).one()
    return row[0], row[1]


def test_a_batch_of_events_links_up_with_single_appends_around_it(engine):
    with Session(engine) as session:
        first = append_event(session, CustodyKind.DOCKED, actor="station", details={"n": 0})
        ids = append_events(session, [NewEvent(CustodyKind.SIGHTED, "station", recording_id=i,
                                               details={"i": i, "size": 5.0, "name": "照片"}) for i in range(5)])
        last = append_event(session, CustodyKind.UNDOCKED, actor="station")
        assert append_events(session, []) == []
        session.commit()
    with Session(engine) as session:
        chain = load_chain(session)
        assert find_chain_breaks(chain, head_hash=_head(session)[1]) == []
        assert [e.id for e in chain] == [first.id, *ids, last.id]
        assert [e.kind for e in chain] == ["docked", *["sighted"] * 5, "undocked"]
        assert [e.details["i"] for e in chain[1:6]] == list(range(5))
        assert _head(session) == (last.id, last.hash)


def _append_in_a_savepoint_then_fail(session: Session) -> None:
    with session.begin_nested():
        append_events(session, [NewEvent(CustodyKind.COPIED, "station", recording_id=1)])
        append_event(session, CustodyKind.STAMPED, actor="station", recording_id=1)
        raise ZeroDivisionError("the savepoint's work fails after its appends")


def test_a_savepoint_rolled_back_after_appending_leaves_the_chain_linked(engine):
    with Session(engine) as session:
        append_event(session, CustodyKind.DOCKED, actor="station")
        with pytest.raises(ZeroDivisionError):
            _append_in_a_savepoint_then_fail(session)
        append_events(session, [NewEvent(CustodyKind.COPIED, "station", recording_id=2)])
        append_event(session, CustodyKind.UNDOCKED, actor="station")
        session.commit()
    with Session(engine) as session:
        chain = load_chain(session)
        assert [e.kind for e in chain] == ["docked", "copied", "undocked"]
        assert find_chain_breaks(chain, head_hash=_head(session)[1]) == []


def _recording(session: Session, n: int) -> Recording:
    now = datetime.now(UTC)
    row = Recording(sha256=hashlib.sha256(f"bytes {n}".encode()).hexdigest(), size_bytes=10 + n, media_kind="photo",
                    original_name=f"IMG_{n:04d}.JPG", station_code="ST1", captured_start=now, captured_end=now,
                    time_source="exif", integrity_status="ok", state="archived", retain_until=now + timedelta(days=200),
                    retention_rule="routine", ingested_at=now, case_number=f"AB-2026-{n:05d}", purpose="巡查",
                    officer_number="999001", important=n % 2 == 0, lat=31.2 if n else None, lon=121.4 if n else None,
                    place_source="exif" if n else None)
    session.add(row)
    session.flush()
    return row


def test_a_batch_of_stamps_is_revision_one_of_each_with_its_event(engine):
    with Session(engine) as session:
        rows = [_recording(session, n) for n in range(3)]
        revisions = record_stamps(session, rows, by="station", reason="ingest")
        session.commit()
        assert [(r.recording_id, r.revision, r.reason) for r in revisions] == [(row.id, 1, "ingest") for row in rows]
        stored = list(session.exec(select(StampRevision).order_by(col(StampRevision.recording_id))))
        assert [(s.recording_id, s.case_number, s.important) for s in stored] == [
            (row.id, row.case_number, row.important) for row in rows]
        events = list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == "stamped")
                                   .order_by(col(CustodyEvent.id))))
        assert [e.recording_id for e in events] == [row.id for row in rows]
        assert events[1].details["case_number"] == rows[1].case_number and events[0].details["lat"] is None
        assert find_chain_breaks(load_chain(session)) == []


class _RefusingStore(LocalStore):
    """The real local store that refuses one recording's manifest, as a full or failing disk would."""

    refuse = ""

    def put_manifests(self, manifests):
        outcomes = super().put_manifests([m for m in manifests if m[0] != self.refuse])
        out = iter(outcomes)
        return [BackendUnavailable("local", "disk offline") if m[0] == self.refuse else next(out) for m in manifests]


def test_a_batch_of_manifests_is_signed_stored_and_recorded_except_the_one_refused(engine, tmp_path):
    store = _RefusingStore(tmp_path / "worm")
    key = load_or_create_key(tmp_path / "station.key")
    with Session(engine) as session:
        rows = [_recording(session, n) for n in range(4)]
        record_stamps(session, rows, by="station", reason="ingest")
        store.refuse = rows[2].sha256
        outcomes = write_manifests(session, store, rows, key, actor="station")
        session.commit()
        assert [type(o).__name__ for o in outcomes] == ["StoredObject", "StoredObject", "BackendUnavailable",
                                                        "StoredObject"]
        manifested = [e.recording_id for e in session.exec(select(CustodyEvent).where(
            CustodyEvent.kind == "manifested").order_by(col(CustodyEvent.id)))]
        assert manifested == [rows[0].id, rows[1].id, rows[3].id]
        from catalog.manifests import ensure_station_key

        ensure_station_key(session, "ST1", key, actor="station", store=store)
        session.commit()
        trusted = trusted_fingerprints(session, store)
        for row in (rows[0], rows[1], rows[3]):
            body = read_manifest(store, row.sha256, 1, trusted=trusted)
            assert body["sha256"] == row.sha256 and body["stamp"]["case_number"] == row.case_number
            assert [c["kind"] for c in body["custody"]] == ["stamped"]
        assert not (store.root / "manifests" / "sha256" / rows[2].sha256[:2] / rows[2].sha256[2:4]).exists() or \
            not list((store.root / "manifests" / "sha256" / rows[2].sha256[:2] / rows[2].sha256[2:4]).iterdir())
        # The refused one is written later, alone, the same way.
        store.refuse = ""
        write_manifest(session, store, rows[2], key, actor="station")
        session.commit()
        assert read_manifest(store, rows[2].sha256, 1, trusted=trusted)["sha256"] == rows[2].sha256
        assert find_chain_breaks(load_chain(session)) == []


def test_a_batch_of_manifests_is_durable_before_it_counts(engine, tmp_path, monkeypatch):
    """Every manifest's bytes are synced before any gets its name, and the names before write_manifests returns."""
    from storage.backends import local_tree

    store = LocalStore(tmp_path / "worm")
    key = load_or_create_key(tmp_path / "station.key")
    steps: list[str] = []
    real_sync, real_link = local_tree.FileSystemSync.sync, __import__("os").link

    def sync(self):
        steps.append("sync")
        real_sync(self)

    def link(src, dst, *a, **kw):
        if "/manifests/" in str(dst):
            steps.append("name")
        return real_link(src, dst, *a, **kw)

    monkeypatch.setattr(local_tree.FileSystemSync, "sync", sync)
    monkeypatch.setattr("os.link", link)
    with Session(engine, expire_on_commit=False) as session:
        rows = [_recording(session, n) for n in range(3)]
        record_stamps(session, rows, by="station", reason="ingest")
        write_manifests(session, store, rows, key, actor="station")
        session.commit()
    assert steps == ["sync", "name", "name", "name", "sync"]
    for row in rows:
        document = json.loads(store.get_manifest(row.sha256, 1))
        assert document["manifest"]["sha256"] == row.sha256


def test_a_second_catalogue_connection_sees_the_batch_only_when_committed(settings):
    """The events of a batch are in the caller's transaction: another reader sees none of them before the commit."""
    engine = open_catalog(settings.database_url)
    try:
        with Session(engine) as writer, Session(engine) as reader:
            append_events(writer, [NewEvent(CustodyKind.SIGHTED, "station", recording_id=i) for i in range(3)])
            assert reader.exec(select(CustodyEvent)).all() == []
            writer.commit()
            assert len(reader.exec(select(CustodyEvent)).all()) == 3
    finally:
        engine.dispose()
