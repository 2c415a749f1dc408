"""Fixtures of the catalogue's web tests: a small archive with a user for every role."""
from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session

from catalog import DEFAULT_CASE_PATTERN, DEFAULT_CASE_TYPES, Officer, Recording, RetentionPolicy
from catalog.cases import create_case
from catalog.custody import CustodyKind, append_event
from catalog.manifests import ensure_station_key, write_manifest
from catalog.replay import ROW_KEY, row_values
from catalog.stamps import record_stamp
from catalog.types import utcnow
from catalog.users import ROLES
from evidence.web import WebConfig, create_app
from tests.webhelpers import add_web_users

CASE = "AB-2026-00042"


def add_recording(session: Session, store, tmp_path, n: int, officer: str, kind: str = "video", *,
                  start: datetime | None = None, undated: bool = False) -> Recording:
    """Recording *n* as the station records one (its bytes in the store, its `copied` event and stamp), with
    the capture time its device gave (*start*, or none at all)."""
    recording = _recording(store, tmp_path, n, officer, kind)
    if start is not None or undated:
        recording.captured_start = start
        recording.captured_end = start + timedelta(seconds=30) if start else None
    session.add(recording)
    session.flush()
    append_event(session, CustodyKind.COPIED, actor="station:test", recording_id=recording.id,
                 details={"sha256": recording.sha256, ROW_KEY: row_values(recording)})
    record_stamp(session, recording, by="station:test", reason="ingest")
    return recording


def _recording(store, tmp_path, n: int, officer: str, kind: str = "video") -> Recording:
    """A recording whose bytes are really in the store (under WORM retention)."""
    start = datetime(2026, 11, 20, 8, n, tzinfo=UTC)
    data = f"recording {n}".encode() * 100
    path = tmp_path / f"R{n}"
    path.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    store.put_file(path, sha256=sha256, size_bytes=len(data), retain_until=utcnow() + timedelta(days=180))
    return Recording(sha256=sha256, size_bytes=len(data), media_kind=kind, original_name=f"R{n}.{kind}",
                     station_code="station-1", captured_start=start, captured_end=start + timedelta(seconds=30),
                     time_source="container", integrity_status="ok", state="archived", ingested_at=utcnow(),
                     retain_until=utcnow() + timedelta(days=180), officer_number=officer)


def seal_all(engine, store, ids: tuple[int, ...] = (1, 2, 3)) -> None:
    """Signed manifests in the store for recordings 1, 2 (officer 010203, unit U1) and 3 (officer 030405, unit
    U2), as the archive writes them (an evidence package carries them)."""
    key = Ed25519PrivateKey.generate()
    with Session(engine) as session:
        ensure_station_key(session, "station-1", key, actor="station:station-1", store=store)
        for rid in ids:
            recording = session.get(Recording, rid)
            assert recording is not None
            write_manifest(session, store, recording, key, actor="station:station-1")
        session.commit()


@pytest.fixture
def web_site(engine, store, settings, tmp_path):
    """Three recordings (two of officer 010203 in unit U1, one of 030405 in U2) with their bytes in the store,
    case AB-2026-00042, and a user per role plus another officer and a supervisor of unit U2."""
    with Session(engine) as session:
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
        for n, officer, kind in ((1, "010203", "video"), (2, "010203", "photo"), (3, "030405", "video")):
            add_recording(session, store, tmp_path, n, officer, kind)
        create_case(session, number=CASE, title="无照经营", case_type="penalty-general", unit="",
                    opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN,
                    policy=RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai"), today=date(2026, 11, 23))
        session.commit()
    users = {role: role for role in ROLES} | {"other-officer": "officer", "unit-2-supervisor": "supervisor"}
    add_web_users(engine, users, officer_numbers={"officer": "010203", "other-officer": "030405"},
                  units={"unit-2-supervisor": ["U2"]})
    config = WebConfig(engine=engine, store=store, key=Ed25519PrivateKey.generate(), station="station-1",
                       settings=settings)  # settings: the export key (EVIDENCE_EXPORT_KEY) under the test's home
    with TestClient(create_app(config)) as client:
        yield client, engine
