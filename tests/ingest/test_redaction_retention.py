"""A redacted copy is kept as long as its original, never longer by the routine rule.

Before 2026-12-05 a copy's routine retention counted from its own archiving: a copy made the week before its
original's disposal outlived the original (and the personal data left in it, a voice, a place) by up to a routine
period, and the disposal plan listed it a sweep later. Now its routine term counts from its original's base, stated
in its `redacted` event and its row (so verify replays the same decision), and it is locked at first as long as the
original is kept. On SQLite and PostgreSQL, on the local WORM store and SeaweedFS.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import storage.backends.local as local_backend
from catalog import DEFAULT_CASE_PATTERN, CustodyKind, Recording, clock, open_catalog
from catalog.cases import cases_of, create_case, get_case, unlink_recording
from catalog.disposal import plan_disposal, plan_pending_cases
from catalog.replay import COUNTS_FROM
from catalog.restamping import change_stamp
from catalog.retention import DEFAULT_CASE_TYPES, RetentionPolicy
from catalog.retention_job import apply_retention, base_time
from catalog.signing import load_or_create_key
from catalog.types import utcnow
from catalog.user_models import User
from catalog.users import add_user
from catalog.verification import verify_archive
from ingest.archiving import MIN_LOCK, archive_staged
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.redaction import RedactionSpec, parse_box
from ingest.redaction.derivative import copy_kept_until, redact_recording
from storage import BackendUnavailable, LocalStore
from tests.ingest.test_redaction_copies import _device, _events

POLICY = RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai")
NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def test_a_copy_is_locked_as_long_as_its_original_is_kept_and_a_day_at_least() -> None:
    base = datetime(2026, 1, 10, tzinfo=UTC)
    # kept as long as the original now, whatever the routine term from its base would say
    assert copy_kept_until(datetime(2030, 1, 1, tzinfo=UTC), base, now=NOW, policy=POLICY) == datetime(
        2030, 1, 1, tzinfo=UTC)
    # an original already past its date (due, awaiting disposal): a store locks only into the future
    assert copy_kept_until(datetime(2026, 7, 10, tzinfo=UTC), base, now=NOW, policy=POLICY) == NOW + MIN_LOCK
    # no date on the original: the routine term from its base (six months on the agency's calendar), a day at least
    assert copy_kept_until(None, datetime(2026, 11, 20, tzinfo=UTC), now=NOW, policy=POLICY) == datetime(
        2027, 5, 20, tzinfo=UTC)
    assert copy_kept_until(None, base, now=NOW, policy=POLICY) == NOW + MIN_LOCK


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


# A review of the first version found a copy kept longer than its original three ways: held by the case its
# original was unlinked from, held by the important flag a clerk had taken off the original, and left staged for
# ever once its date passed during a store outage. On SQLite and the local store.

CASE = "京朝城管罚字〔2026〕第00123号"
SPEC = RedactionSpec(boxes=(parse_box("0-1:0,0,64,64"),))


@pytest.fixture
def archive(tmp_path: Path, ffmpeg_available: None) -> Iterator[tuple[Settings, Engine, LocalStore]]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": url})
    engine = open_catalog(url)
    store = _StoreAway(tmp_path / "worm")
    report = ingest_folder(_device(tmp_path / "card"), settings=settings, engine=engine, store=store)
    assert report.errors == [], report
    with Session(engine) as session:
        add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
    yield settings, engine, store
    engine.dispose()


class _StoreAway(LocalStore):
    """The local store, away (BackendUnavailable) for uploads while `away` is set."""

    away = False

    def put_file(self, *args: Any, **kwargs: Any) -> Any:
        if self.away:
            raise BackendUnavailable("test", "the store is away")
        return super().put_file(*args, **kwargs)


def _clip(session: Session) -> Recording:
    return session.exec(select(Recording).where(Recording.original_name == "MVI_0001.MP4")).one()


def _clerk(session: Session) -> User:
    return session.exec(select(User).where(User.name == "clerk")).one()


def _due_together(session: Session, clip: Recording, copy: Recording) -> None:
    """Neither held, and the plan lists both as due on the original's date."""
    assert clip.id is not None and copy.id is not None and clip.retain_until is not None
    assert (clip.legal_hold, copy.legal_hold) == (False, False)
    plan = {i.recording_id: i.status for i in plan_disposal(session, POLICY, as_of=clip.retain_until)}
    assert (plan.get(clip.id), plan.get(copy.id)) == ("due", "due")


def test_a_copy_of_an_original_a_clerk_unlinked_from_its_case_is_not_linked_to_it_again(archive) -> None:
    settings, engine, store = archive
    key = load_or_create_key(settings.station_key_path)
    with Session(engine) as session:
        create_case(session, number=CASE, title="无照经营", case_type="penalty-general", unit="朝阳区城管执法局",
                    opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY,
                    today=date.today())
        session.commit()
        clip = _clip(session)
        # Given a clip stamped with the case at the station (linked and held), which a clerk unlinks: not this case's
        change_stamp(session, store, clip, by="020304", reason="tagged at the station kiosk",
                     case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY, key=key, case_number=CASE)
        assert clip.legal_hold
        unlink_recording(session, get_case(session, CASE), clip, by="clerk", reason="与本案无关")
        session.commit()
        apply_retention(session, store, POLICY, actor="nightly")
        session.refresh(clip)
        # When a copy is made of it (its stamp repeats the case number) and the nightly pass runs
        copy = redact_recording(session, store, settings, clip, SPEC, user=_clerk(session), reason="公示前遮蔽",
                                key=key, via="test").recording
        apply_retention(session, store, POLICY, actor="nightly")
        session.refresh(copy)
        # Then the copy is not linked to the case the clerk took its original out of, and goes with its original
        assert copy.case_number == CASE and cases_of(session, copy.id or 0) == []
        _due_together(session, clip, copy)


def test_a_copy_of_an_important_original_is_not_held_by_the_flag_the_clerk_takes_off_the_original(archive) -> None:
    settings, engine, store = archive
    key = load_or_create_key(settings.station_key_path)
    with Session(engine) as session:
        clip = _clip(session)
        change_stamp(session, store, clip, by="020304", reason="tagged at the station kiosk",
                     case_pattern=DEFAULT_CASE_PATTERN, policy=POLICY, key=key, important=True)
        assert clip.legal_hold  # held pending a clerk's decision
        copy = redact_recording(session, store, settings, clip, SPEC, user=_clerk(session), reason="公示前遮蔽",
                                key=key, via="test").recording
        # the copy repeats the flag, but is held only by its own links: the decision is the original's
        assert copy.important and not copy.legal_hold
        session.refresh(clip)
        change_stamp(session, store, clip, by="clerk", reason="经审查不属于重要证据", case_pattern=DEFAULT_CASE_PATTERN,
                     policy=POLICY, key=key, roles=["clerk"], important=False)
        apply_retention(session, store, POLICY, actor="nightly")
        session.refresh(clip)
        session.refresh(copy)
        _due_together(session, clip, copy)
        assert copy.id not in {i.recording_id for i in plan_pending_cases(session, POLICY)}
        ids = [r.id for r in session.exec(select(Recording)) if r.id is not None]
        problems = verify_archive(session, store, ids).problems
        assert problems == [], "\n".join(str(p) for p in problems)


def test_a_copy_left_staged_past_its_date_by_a_store_outage_is_archived_when_the_store_is_back(
        archive, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, engine, store = archive
    key = load_or_create_key(settings.station_key_path)
    with Session(engine) as session:
        clip = _clip(session)
        # Given a copy catalogued while the store is away (left staged for the archive queue)
        store.away = True
        with pytest.raises(BackendUnavailable):
            redact_recording(session, store, settings, clip, SPEC, user=_clerk(session), reason="公示前遮蔽",
                             key=key, via="test")
        [copy] = session.exec(select(Recording).where(Recording.redacted_from_id == clip.id)).all()
        assert copy.state == "staged" and copy.retain_until is not None
        lock_date = copy.retain_until
    # When the store comes back a day after that date (both clocks moved on: the catalogue's and the store's)
    store.away = False
    later = lock_date + timedelta(days=1) - datetime.now(UTC)

    class _Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz or UTC) + later

    monkeypatch.setattr(local_backend, "datetime", _Later)
    monkeypatch.setattr(clock, "utcnow", lambda: utcnow() + later)
    assert archive_staged(engine, store, settings.staging_dir, key=key, policy=POLICY, station=settings.station) == 1
    # Then it is archived, locked a day from its archiving (a store locks only into the future), and said so
    with Session(engine) as session:
        again = session.get(Recording, copy.id)
        assert again is not None and again.state in ("archived", "verified") and again.archived_at is not None
        assert again.retain_until == again.archived_at + MIN_LOCK
        assert again.retention_rule.endswith("locked 1 day at least when archived")
        ids = [r.id for r in session.exec(select(Recording)) if r.id is not None]
        problems = verify_archive(session, store, ids, chain=True).problems
        assert problems == [], "\n".join(str(p) for p in problems)
