"""Retention and disposal tests' archive: recordings stored as ingest stores them, cases under the test policy, and
waiting for the clock to pass a retain-until.

POLICY (six months routine, the default case types, Beijing time) and KEY (the station's signing key) are the ones
every recording and case made here uses, so a test's sweep, approval and checks agree with what was stored.
"""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from catalog import (
    DEFAULT_CASE_PATTERN,
    DEFAULT_CASE_TYPES,
    CustodyKind,
    Recording,
    RetentionPolicy,
    append_event,
    create_case,
    ensure_station_key,
    record_stamp,
    write_manifest,
)
from catalog.replay import ROW_KEY, row_values
from catalog.types import utcnow
from storage import RetentionRefused
from tests.conftest import wait_for

POLICY = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")
KEY = Ed25519PrivateKey.generate()


def archived(session: Session, store: Any, tmp_path: Path, n: int, *, retain_until: datetime | timedelta,
             captured_end: datetime, manifest: bool = True) -> Recording:
    """Recording *n* stored as ingest makes it: its `copied` event (with the row's values), its stamp and, unless
    *manifest* is false, its signed manifest (the key registered and published in the store). Commits.

    A *retain_until* given as a timedelta counts from the moment the object is stored, after the key is registered:
    a lock of a few seconds then still lies ahead when its manifest is written, however slow the machine."""
    data = f"recording {n} {tmp_path}".encode() * 50
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"{n}.bin"
    path.write_bytes(data)
    if manifest:
        ensure_station_key(session, "station-1", KEY, actor="station:test", store=store)
    lock = retain_until
    if isinstance(retain_until, timedelta):
        retain_until = utcnow() + retain_until
    stored = store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=retain_until)
    recording = Recording(sha256=sha, size_bytes=len(data), media_kind="video", original_name=f"clip{n}.mp4",
                          station_code="station-1", captured_start=captured_end - timedelta(minutes=1),
                          captured_end=captured_end, time_source="container", integrity_status="ok",
                          state="verified", ingested_at=captured_end, archived_at=captured_end,
                          retain_until=stored.retain_until,
                          store_name=store.name, store_key=stored.key, case_number=None, purpose="巡查")
    session.add(recording)
    session.flush()
    append_event(session, CustodyKind.COPIED, actor="station:test", recording_id=recording.id,
                 details={"sha256": sha, "size_bytes": len(data), ROW_KEY: row_values(recording)})
    record_stamp(session, recording, by="station:test", reason="ingest")
    if manifest:
        try:
            write_manifest(session, store, recording, KEY, actor="station:test")
        except RetentionRefused:
            if not isinstance(lock, timedelta):
                raise
            # A loaded machine took longer than the short lock between storing the object and signing its
            # manifest (a CI run saw 08:58:39.27 refused at 08:58:40): extend the object's lock by as much again,
            # as a retention extension would, and sign the manifest under the new date.
            recording.retain_until = store.extend_retention(sha, utcnow() + lock).retain_until
            write_manifest(session, store, recording, KEY, actor="station:test")
    session.commit()
    return recording


def open_case(session: Session, number: str, case_type: str = "penalty-general") -> Any:
    """Case *number* of *case_type*, opened 30 days ago by a clerk under POLICY (not committed)."""
    today = datetime.now(UTC).date()
    return create_case(session, number=number, title="无照经营", case_type=case_type, unit="城管",
                       opened_on=today - timedelta(days=30), by="clerk:李四", case_pattern=DEFAULT_CASE_PATTERN,
                       policy=POLICY, today=today)


def wait_past(*moments: datetime | None) -> None:
    """Until the clock passes every retain-until given (S3 keeps them in whole seconds, rounded up); None is
    skipped."""
    last = max(m for m in moments if m is not None)
    wait_for(lambda: utcnow() > last, 15, f"the clock to pass {last.isoformat()}")


def one_person_disposal(session: Session, policy: RetentionPolicy) -> None:
    """Adopt *policy* with EVIDENCE_DISPOSAL_APPROVAL=none, as an administrator would (catalog.policy_adoption):
    a sweep under `approval_required=False` is refused while the adopted terms require a second person."""
    from catalog.policy_adoption import PolicyTerms, adopt_policy

    adopt_policy(session, PolicyTerms.of(policy, disposal_approval="none"), by="admin", reason="one-person disposal")
    session.commit()
