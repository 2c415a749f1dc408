"""A redacted copy is kept as long as its original, never longer by the routine rule.

Before 2026-12-05 a copy's routine retention counted from its own archiving: a copy made the week before its
original's disposal outlived the original (and the personal data left in it, a voice, a place) by up to a routine
period, and the disposal plan listed it a sweep later. Now its routine term counts from its original's base, stated
in its `redacted` event and its row (so verify replays the same decision), and it is locked at first as long as the
original is kept. On SQLite and PostgreSQL, on the local WORM store and SeaweedFS.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from catalog import CustodyKind, Recording, open_catalog
from catalog.disposal import plan_disposal
from catalog.replay import COUNTS_FROM
from catalog.retention import DEFAULT_CASE_TYPES, RetentionPolicy
from catalog.retention_job import apply_retention, base_time
from catalog.signing import load_or_create_key
from catalog.users import add_user
from catalog.verification import verify_archive
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.redaction import RedactionSpec, parse_box
from ingest.redaction.derivative import COPY_MIN_KEEP, copy_kept_until, redact_recording
from tests.ingest.test_redaction_copies import _device, _events

POLICY = RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai")
NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def test_a_copy_is_locked_as_long_as_its_original_is_kept_and_a_day_at_least() -> None:
    base = datetime(2026, 1, 10, tzinfo=UTC)
    # kept as long as the original now, whatever the routine term from its base would say
    assert copy_kept_until(datetime(2030, 1, 1, tzinfo=UTC), base, now=NOW, policy=POLICY) == datetime(
        2030, 1, 1, tzinfo=UTC)
    # an original already past its date (due, awaiting disposal): a store locks only into the future
    assert copy_kept_until(datetime(2026, 7, 10, tzinfo=UTC), base, now=NOW, policy=POLICY) == NOW + COPY_MIN_KEEP
    # no date on the original: the routine term from its base (six months on the agency's calendar), a day at least
    assert copy_kept_until(None, datetime(2026, 11, 20, tzinfo=UTC), now=NOW, policy=POLICY) == datetime(
        2027, 5, 20, tzinfo=UTC)
    assert copy_kept_until(None, base, now=NOW, policy=POLICY) == NOW + COPY_MIN_KEEP


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_copy_is_kept_no_longer_than_its_original_and_is_due_with_it(tmp_path, catalog_url, worm_store):
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url})
    engine = open_catalog(catalog_url)
    try:
        report = ingest_folder(_device(tmp_path / "card"), settings=settings, engine=engine, store=worm_store)
        assert report.errors == [], report
        key = load_or_create_key(settings.station_key_path)
        with Session(engine) as session:
            clip = session.exec(select(Recording).where(Recording.original_name == "MVI_0001.MP4")).one()
            clerk = add_user(session, "clerk", roles=["clerk"], by="test")
            session.commit()
            # Given an original archived (routine footage: six months from its archiving)
            assert clip.retain_until is not None and clip.archived_at is not None
            # When a clerk makes a redacted copy of it (archived after it: its own routine term would end later)
            made = redact_recording(session, worm_store, settings, clip, RedactionSpec(
                boxes=(parse_box("0-1:0,0,64,64"),)), user=clerk, reason="公示前遮蔽", key=key, via="test")
            copy = made.recording
            assert copy.archived_at is not None and copy.archived_at > clip.archived_at
            # Then the copy is kept exactly as long as the original, in the catalogue and in the store
            assert copy.retain_until == clip.retain_until
            assert copy.retention_rule == f"as long as its original, recording {clip.id}"
            # (S3 locks to whole seconds, rounded up: the two objects' locks are equal)
            assert worm_store.head(copy.sha256).retain_until == worm_store.head(clip.sha256).retain_until
            # its routine term counts from the original's base, as its row and its `redacted` event say
            assert copy.technical["redaction"][COUNTS_FROM] == base_time(clip).isoformat()
            [event] = _events(session, CustodyKind.REDACTED, copy.id)
            assert event.details[COUNTS_FROM] == base_time(clip).isoformat()
            # the nightly pass finds nothing to lengthen, and verify replays the same decision from the chain
            changes = apply_retention(session, worm_store, POLICY, actor="nightly", check_store=True)
            assert [c for c in changes if c.recording_id == copy.id] == []
            ids = [r.id for r in session.exec(select(Recording)) if r.id is not None]
            problems = verify_archive(session, worm_store, ids).problems
            assert problems == [], "\n".join(str(p) for p in problems)
            # and the disposal plan lists the two as due on the same day
            plan = {item.recording_id: item for item in plan_disposal(session, POLICY, as_of=clip.retain_until)}
            assert clip.id is not None and copy.id is not None
            assert plan[clip.id].status == plan[copy.id].status == "due"
            assert plan[copy.id].retain_until == plan[clip.id].retain_until
            # A week earlier neither is due: the copy does not go before its original either
            early = plan_disposal(session, POLICY, as_of=clip.retain_until - timedelta(days=7))
            assert {item.recording_id for item in early} & {clip.id, copy.id} == set()

            # What its row says it counts from, edited behind the application's back (its own, later archiving
            # taken instead), no longer matches the copy's signed manifest
            copy.technical = {**copy.technical, "redaction": {
                k: v for k, v in copy.technical["redaction"].items() if k != COUNTS_FROM}}
            session.add(copy)
            session.commit()
            found = [str(p) for p in verify_archive(session, worm_store, [copy.id or 0], chain=False).problems]
            assert any("manifest" in m and "redaction" in m for m in found), found
    finally:
        engine.dispose()
