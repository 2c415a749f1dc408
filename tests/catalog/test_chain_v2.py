"""Custody chain version 2 (issue 16): hash = SHA-256(prev_hash + SHA-256(RFC 8785 body)), from migration 0017 on.

Checked the way an outside examiner would: the formula rebuilt here from hashlib and rfc8785 alone, the same
events hashed alike by SQLite and PostgreSQL, an archive made before the migration still verifying and going on
with version 2, and an insider's rewrites (a time changed, a downgrade to the old formula, a digest-only row that
lies) named by `evidence verify`'s own checks.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import re
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from catalog import CustodyKind, append_event, find_chain_breaks, load_chain, open_catalog
from catalog.anchors import write_anchor
from catalog.db import alembic_config
from catalog.event_hashes import GENESIS_HASH, check_digest_rows, digest_row, event_hash, stored_event_hash
from catalog.models import CustodyEvent, CustodyHead
from catalog.types import utcnow
from storage import LocalStore
from tests.conftest import as_attacker, postgres_database
from tests.helpers.chain_forgery import rewrite_chain
from tests.helpers.recordings import verify_recordings

T0 = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
#: Floats, Chinese text, nesting and null: what RFC 8785 writes differently from Python's json.dumps.
EVENTS: list[tuple[CustodyKind, dict[str, Any]]] = [
    (CustodyKind.DOCKED, {"device_serial": "A123456", "clock_offset_s": 0.0, "battery": 0.5}),
    (CustodyKind.COPIED, {"sha256": "ab" * 32, "size_bytes": 1048576, "duration_s": 30.0}),
    (CustodyKind.STAMPED, {"case_number": "京朝城管罚字〔2026〕第00123号", "place": {"lat": 39.9, "lon": 116.4}}),
    (CustodyKind.VIEWED, {"via": "web", "note": None}),
    (CustodyKind.UNDOCKED, {"result": "ok", "files": [1, 2.5, "三"]}),
]


def _append_all(engine: Engine) -> list[CustodyEvent]:
    with Session(engine) as session:
        for n, (kind, details) in enumerate(EVENTS):
            append_event(session, kind, actor="station:station-1", recording_id=n + 1, details=details,
                         at=T0 + timedelta(seconds=n, microseconds=n))
        session.commit()
        return load_chain(session)


def _outsider_hash(prev_hash: str, event: CustodyEvent) -> str:
    """Version 2 as docs/verification.md gives it, with nothing of this project: hashlib and rfc8785 only."""
    assert event.at is not None
    body = {"kind": event.kind, "recording_id": event.recording_id, "dock_session_id": event.dock_session_id,
            "actor": event.actor, "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "details": event.details}
    return hashlib.sha256((prev_hash + hashlib.sha256(rfc8785.dumps(body)).hexdigest()).encode()).hexdigest()


def _chain_problems(engine: Engine, store: LocalStore) -> list[tuple[str, str]]:
    report = verify_recordings(engine, store)
    return [(p.subject, p.detail) for p in report.problems if p.kind in ("chain", "anchor")]


def test_new_events_are_version_2_and_an_outsider_recomputes_their_hashes(engine, store):
    chain = _append_all(engine)
    assert [e.chain_version for e in chain] == [2] * len(EVENTS)
    prev = GENESIS_HASH
    for event in chain:
        assert event.prev_hash == prev and event.hash == _outsider_hash(prev, event)
        prev = event.hash
    assert find_chain_breaks(chain) == []
    assert _chain_problems(engine, store) == []


@pytest.mark.postgres
def test_sqlite_and_postgresql_hash_the_same_events_alike(tmp_path):
    sqlite = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with contextlib.contextmanager(postgres_database)() as url:
        postgres = open_catalog(url)
        try:
            by_sqlite, by_postgres = _append_all(sqlite), _append_all(postgres)
        finally:
            postgres.dispose()
            sqlite.dispose()
    assert [(e.prev_hash, e.hash, e.chain_version) for e in by_postgres] == [
        (e.prev_hash, e.hash, e.chain_version) for e in by_sqlite]


# -- an archive made before migration 0017 ----------------------------------------------------------------------


@contextlib.contextmanager
def _catalogue_at_0016(url: str) -> Iterator[Engine]:
    """A catalogue as the code before chain version 2 made it (schema 0016, no chain_version column)."""
    engine = create_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0016")
    try:
        yield engine
    finally:
        engine.dispose()


def _append_v1(engine: Engine, kind: str, details: dict[str, Any], at: datetime) -> None:
    """An append as the old code made it: version-1 hash, no chain_version column to fill."""
    table = CustodyEvent.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        prev = conn.execute(text("SELECT last_hash FROM custody_head WHERE id = 1")).scalar_one()
        digest = event_hash(prev, chain_version=1, kind=kind, recording_id=None, dock_session_id=None,
                            actor="station:old", at=at, details=details)
        new_id = conn.execute(insert(table).values(kind=kind, recording_id=None, dock_session_id=None,
                                                   actor="station:old", at=at, details=details, prev_hash=prev,
                                                   hash=digest).returning(table.c.id)).scalar_one()
        conn.execute(update(CustodyHead.__table__).where(text("id = 1"))  # type: ignore[attr-defined]
                     .values(last_event_id=new_id, last_hash=digest))


def test_an_archive_from_before_the_migration_verifies_and_goes_on_with_version_2(catalog_url, tmp_path):
    with _catalogue_at_0016(catalog_url) as old:
        for n, (kind, details) in enumerate(EVENTS[:3]):
            _append_v1(old, kind.value, details, T0 + timedelta(seconds=n, microseconds=7))
    engine = open_catalog(catalog_url)  # upgrades to head, 0017 included
    try:
        with Session(engine) as session:
            append_event(session, CustodyKind.VIEWED, actor="web:clerk", details={"via": "web", "zoom": 1.0})
            session.commit()
            chain = load_chain(session)
        assert [e.chain_version for e in chain] == [1, 1, 1, 2]
        assert find_chain_breaks(chain) == []
        assert _chain_problems(engine, LocalStore(tmp_path / "worm")) == []
        # the migration added a column only: the append-only triggers of 0007 still refuse both
        for statement in ("UPDATE custody_event SET actor = 'x' WHERE id = 1", "DELETE FROM custody_event"):
            with pytest.raises(DBAPIError, match="custody events are append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()


# -- an insider's rewrites ----------------------------------------------------------------------------------------


def test_a_time_changed_with_that_events_hash_recomputed_is_named(engine, store):
    chain = _append_all(engine)
    target, after = chain[1], chain[2]
    assert target.at is not None and target.id is not None
    as_attacker(engine)
    with Session(engine) as session:
        event = session.get(CustodyEvent, target.id)
        assert event is not None and event.at is not None
        event.at = event.at - timedelta(hours=2)
        event.hash = stored_event_hash(event)  # the edited event alone matches its (version-2) hash again
        session.add(event)
        session.commit()
    problems = _chain_problems(engine, store)
    assert [subject for subject, _ in problems] == [f"event {after.id} ({after.kind})"]
    assert f"does not follow event {target.id}'s hash" in problems[0][1]


def test_a_version_2_event_rewritten_as_version_1_is_a_named_downgrade(engine, store):
    chain = _append_all(engine)
    target = chain[2]
    assert target.id is not None
    rewrite_chain(engine, {target.id: {"chain_version": 1, "actor": "someone else"}}, from_id=target.id)
    problems = _chain_problems(engine, store)
    assert len(problems) == 1, problems
    assert problems[0][0] == f"event {target.id} ({target.kind})"
    assert "chain version 1 after version 2: versions never go down" in problems[0][1]
    with Session(engine) as session:
        breaks = find_chain_breaks(load_chain(session))
    assert len(breaks) == 1 and "downgrade forgery" in breaks[0]


def test_a_whole_chain_rewritten_as_version_1_is_caught_by_the_worm_anchor(engine, store):
    _append_all(engine)
    key = Ed25519PrivateKey.generate()
    with Session(engine) as session:
        anchor = write_anchor(session, store, station="station-1", key=key, actor="test", now=utcnow())
        assert anchor is not None
        name, anchored_id, anchored_hash = anchor.record_name, anchor.last_event_id, anchor.last_hash
        ids = [e.id for e in load_chain(session)]
    # every event back to the first becomes version 1: no version ever goes down, every link and hash agrees
    changes: dict[int, dict[str, Any]] = {i: {"chain_version": 1} for i in ids if i is not None}
    changes[ids[1] or 0]["actor"] = "someone else"
    rewrite_chain(engine, changes, from_id=ids[0] or 0)
    problems = _chain_problems(engine, store)
    assert [subject for subject, _ in problems] == [name], problems
    assert f"says event {anchored_id} has hash {anchored_hash[:16]}" in problems[0][1]


def test_an_unknown_chain_version_is_named(engine, store):
    chain = _append_all(engine)
    target = chain[-1]
    assert target.id is not None
    rewrite_chain(engine, {target.id: {"chain_version": 3}}, from_id=target.id)
    problems = _chain_problems(engine, store)
    assert any(s == f"event {target.id} ({target.kind})" and "chain version 3 is unknown" in d for s, d in problems)


# -- digest-only rows (what a package shows of other recordings' events) ------------------------------------------


def test_digest_only_rows_link_up_and_a_lying_row_is_named(engine):
    rows = [digest_row(event) for event in _append_all(engine)]
    assert set(rows[0]) == {"id", "chain_version", "prev_hash", "body_sha256", "hash"}
    assert check_digest_rows(rows) == []
    assert check_digest_rows(rows[2:], prev_hash=None) == []  # a run starting mid-chain
    lying = [dict(row) for row in rows]
    lying[2]["body_sha256"] = hashlib.sha256(b"another body").hexdigest()
    problems = check_digest_rows(lying)
    assert problems and all(p.startswith(f"row {rows[2]['id']}:") for p in problems)
    assert "is not SHA-256(prev_hash + body_sha256)" in problems[0]
    missing = check_digest_rows(rows[:2] + rows[3:])
    assert [p.split(":")[0] for p in missing] == [f"row {rows[3]['id']}"]
    assert "a row between them was left out" in missing[0]
    downgraded = [dict(row) for row in rows]
    downgraded[1]["chain_version"] = 1
    assert any("only a version-2 link can be checked" in p for p in check_digest_rows(downgraded))


def test_a_version_1_event_has_no_digest_only_row():
    event = CustodyEvent(id=7, kind="viewed", actor="a", at=T0, details={}, prev_hash=GENESIS_HASH, hash="0" * 64,
                         chain_version=1)
    with pytest.raises(ValueError, match="event 7 is chain version 1: its hash covers the whole body"):
        digest_row(event)


# -- the recipes in docs/verification.md ---------------------------------------------------------------------------


def _doc_recipes() -> dict[str, Any]:
    """The Python code blocks of docs/verification.md's "Chain versions and canonical JSON", run as given."""
    text_ = (Path(__file__).parents[2] / "docs" / "verification.md").read_text(encoding="utf-8")
    section = text_.split("## Chain versions and canonical JSON", 1)[1].split("\n## ", 1)[0]
    namespace: dict[str, Any] = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL):
        exec(block, namespace)  # the documented recipe itself is what is tested
    return namespace


def _as_exported(event: CustodyEvent) -> dict[str, Any]:
    """An event as a package lists it (its time without fixed microseconds), with its chain version."""
    assert event.at is not None
    return {"id": event.id, "kind": event.kind, "at": event.at.isoformat(), "actor": event.actor,
            "recording_id": event.recording_id, "dock_session_id": event.dock_session_id,
            "details": json.loads(json.dumps(event.details)), "prev_hash": event.prev_hash, "hash": event.hash,
            "chain_version": event.chain_version}


def test_the_documented_stdlib_recipes_check_a_chain_of_both_versions():
    recipes = _doc_recipes()
    events, prev = [], GENESIS_HASH
    for n, (kind, details) in enumerate(EVENTS + EVENTS[:1]):
        version = 1 if n < 3 else 2
        fields: dict[str, Any] = {"kind": kind.value, "recording_id": n, "dock_session_id": None, "actor": "a",
                                  "at": T0 + timedelta(minutes=n), "details": details}
        digest = event_hash(prev, chain_version=version, **fields)
        events.append(CustodyEvent(id=n + 1, prev_hash=prev, hash=digest, chain_version=version, **fields))
        prev = digest
    exported = [_as_exported(e) for e in events]
    assert recipes["check_chain"](exported) == []
    exported[4]["details"]["duration_s"] = 31.0
    exported[2]["chain_version"] = 2
    assert recipes["check_chain"](exported) == [3, 5]


def test_the_documented_number_writer_is_rfc_8785():
    number, rng = _doc_recipes()["number"], random.Random(8785)
    values = [0.0, -0.0, 5.0, 1e21, 1e20, 1e-7, 1e-6, 123.456, 2.0**53, 5e-324, 1.7976931348623157e308, 0.1 + 0.2]
    values += [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20000)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(5000)] + [float(rng.randint(-10**17, 10**17)) for _ in range(500)]
    for value in values:
        if math.isfinite(value):
            assert number(value).encode() == rfc8785.dumps(value), value
