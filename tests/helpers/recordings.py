"""Recordings for catalogue tests: bare rows with their first stamp, recordings archived as ingest leaves them (bytes
in the store, `copied` event, stamp, signed manifest), and verifying every recording of an archive."""
from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import CustodyKind, Recording, append_event, record_stamp, write_manifest
from catalog.replay import ROW_KEY, row_values
from catalog.types import utcnow
from catalog.verification import select_recordings, verify_archive

T0 = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)


def add_recording(session: Session, n: int, **kw: Any) -> Recording:
    """Row *n* (no bytes in any store) of officer 010203's recorder A123456, captured *n* hours after T0, with its
    ingest stamp; *kw* overrides any field. Flushed, not committed."""
    values: dict[str, Any] = dict(
        sha256=f"{n:064x}", size_bytes=100 + n, media_kind="video", original_name=f"clip{n}.mp4",
        station_code="station-1", captured_start=T0 + timedelta(hours=n),
        captured_end=T0 + timedelta(hours=n, seconds=30), time_source="filename", integrity_status="ok",
        state="archived", ingested_at=T0, officer_number="010203", officer_name="张三", device_serial="A123456")
    values.update(kw)
    recording = Recording(**values)
    session.add(recording)
    session.flush()
    record_stamp(session, recording, by="station:test", reason="ingest")
    return recording


def archive_recording(session: Session, store: Any, tmp_path: Path, n: int, key: Ed25519PrivateKey, *,
                      station: str = "station-1", actor: str = "station:test", row_fields: tuple[str, ...] = (),
                      details: dict[str, Any] | None = None) -> Recording:
    """Recording *n* as ingest leaves it: random bytes in *store* under a two-day retention, its verified row, its
    `copied` event (with *details* and the row's *row_fields*, by default all of them), its stamp and its manifest
    signed with *key* (registered beforehand). Not committed."""
    data = os.urandom(1024) + f"recording {n}".encode()
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"{n}.mp4"
    path.write_bytes(data)
    stored = store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=utcnow() + timedelta(days=2))
    recording = Recording(sha256=sha, size_bytes=len(data), media_kind="video", original_name=f"clip{n}.mp4",
                          station_code=station, captured_start=datetime(2026, 11, 20, tzinfo=UTC),
                          captured_end=datetime(2026, 11, 20, 0, 1, tzinfo=UTC), time_source="container",
                          integrity_status="ok", state="verified", ingested_at=utcnow(),
                          retain_until=stored.retain_until, store_name=store.name, store_key=stored.key,
                          device_serial="A123456", officer_number="010203", purpose="巡查")
    session.add(recording)
    session.flush()
    append_event(session, CustodyKind.COPIED, actor=actor, recording_id=recording.id,
                 details={"sha256": sha, "size_bytes": len(data), **(details or {}),
                          ROW_KEY: row_values(recording, *row_fields)})
    record_stamp(session, recording, by=actor, reason="ingest")
    write_manifest(session, store, recording, key, actor=actor)
    return recording


def verify_recordings(engine: Engine, store: Any, **kw: Any) -> Any:
    """verify_archive over every recording of the catalogue (*kw* passed on): its report."""
    with Session(engine) as session:
        return verify_archive(session, store, select_recordings(session), **kw)
