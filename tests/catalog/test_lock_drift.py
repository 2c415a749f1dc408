"""The store must lock every recording at least as long as the catalogue says, and never "until" a past date.

An outsider shortens a lock behind the application's back (the local store's lock file edited; on S3 COMPLIANCE
nobody can, so the drift is the catalogue's date moved later, as a crash between the two writes would leave it):
`evidence verify` names it (exit 4) and `evidence retention apply --check-store` repairs it.
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from catalog import Recording, apply_retention, ensure_station_key, write_manifest
from catalog.custody import CustodyKind, append_event
from catalog.replay import ROW_KEY, row_values
from catalog.stamps import record_stamp
from catalog.types import utcnow
from catalog.verification import verify_archive
from storage import LocalStore, RetentionRefused
from tests.conftest import as_attacker

NOW = datetime.now(UTC)


def _stored_recording(session, store, tmp_path) -> Recording:
    data = f"evidence {tmp_path}".encode() * 40
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "clip").write_bytes(data)
    until = NOW + timedelta(days=200)
    stored = store.put_file(tmp_path / "clip", sha256=sha, size_bytes=len(data), retain_until=until)
    recording = Recording(sha256=sha, size_bytes=len(data), media_kind="video", original_name="clip.mp4",
                          station_code="station-1", captured_start=NOW, captured_end=NOW, time_source="container",
                          integrity_status="ok", state="verified", ingested_at=NOW, archived_at=NOW,
                          retain_until=stored.retain_until, store_name=store.name, store_key=stored.key)
    session.add(recording)
    session.flush()
    append_event(session, CustodyKind.COPIED, actor="station:test", recording_id=recording.id,
                 details={"sha256": sha, "size_bytes": len(data), ROW_KEY: row_values(recording)})
    record_stamp(session, recording, by="station:test", reason="ingest")
    key = Ed25519PrivateKey.generate()
    ensure_station_key(session, "station-1", key, actor="station:test")
    write_manifest(session, store, recording, key, actor="station:test")
    session.commit()
    return recording


def test_a_lock_shorter_than_the_catalogue_is_reported_and_repaired(engine, settings, worm_store, tmp_path):
    with Session(engine) as session:
        recording = _stored_recording(session, worm_store, tmp_path)
        assert recording.id is not None
        assert verify_archive(session, worm_store, [recording.id], chain=False).problems == []
        # Behind the application's back: the store's lock now ends before the catalogue's date.
        if isinstance(worm_store, LocalStore):
            lock = worm_store.root / "retention" / f"{recording.store_key}.json"
            lock.write_text(json.dumps({"retain_until": (NOW + timedelta(days=1)).isoformat(), "legal_hold": False}))
        else:
            as_attacker(engine)
            recording.retain_until = NOW + timedelta(days=400)
            session.add(recording)  # the catalogue's side of a retention change (its event too), not the store's
            append_event(session, CustodyKind.RETENTION_CHANGED, actor="job", recording_id=recording.id,
                         details={"new": recording.retain_until.isoformat()})
            session.commit()
        held = worm_store.head(recording.sha256).retain_until
        report = verify_archive(session, worm_store, [recording.id], chain=False)
        # Named twice: shorter than the catalogue row says, and shorter than the custody chain recorded.
        assert [(p.kind, p.recording_id) for p in report.problems] == [("retention", recording.id)] * 2
        assert report.problems[0].detail.startswith(f"the store locks {recording.store_key} until "
                                                    f"{held.isoformat()}, the catalogue says")
        assert report.problems[1].detail.startswith(f"the store locks {recording.store_key} until "
                                                    f"{held.isoformat()}, but it must be kept until")
        assert report.problems[0].recording_id not in report.verified_ids
        # The weekly check repairs it: the store is brought up to the catalogue's date
        changes = apply_retention(session, worm_store, settings.retention_policy, actor="job", check_store=True)
        assert [c.recording_id for c in changes if c.notes] == [recording.id]
        assert worm_store.head(recording.sha256).retain_until >= recording.retain_until
        assert verify_archive(session, worm_store, [recording.id], chain=False).problems == []


def test_the_store_refuses_to_lock_until_a_date_already_past(worm_store, tmp_path):
    path = tmp_path / "old-clock"
    path.write_bytes(b"recorded by a camera whose clock said 2000")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    past = datetime(2000, 7, 1, tzinfo=UTC)
    with pytest.raises(RetentionRefused) as info:
        worm_store.put_file(path, sha256=sha, size_bytes=path.stat().st_size, retain_until=past)
    assert "until 2000-07-01T00:00:00+00:00: that is not after now" in str(info.value)
    assert not worm_store.exists(sha)  # nothing was sent
    with pytest.raises(RetentionRefused):
        worm_store.put_manifest(sha, 1, b"{}", retain_until=utcnow() - timedelta(seconds=5))
