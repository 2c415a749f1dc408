"""A worker or station left running with its old retention terms after an administrator adopted new ones: what it
archives is locked under the adopted terms, never its own shorter ones (a review found new recordings locked for the
old six months after a year was adopted, 2026-12-02), also when the dock's copies were journaled during a catalogue
outage and catalogued afterwards; the difference is logged once, not per recording. An adoption event edited behind
the application's back stops neither a dock nor an archive."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from catalog import Recording, policy_adoption
from catalog.canonical import jcs
from catalog.models import CustodyEvent
from catalog.policy_adoption import PolicyTerms, adopt_policy, adopted_policy, policy_in_force
from catalog.signing import load_or_create_key
from catalog.types import utcnow
from ingest.archiving import archive_recording
from ingest.pipeline import IngestOptions, catalogue_journal, ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from tests.conftest import as_attacker

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

MONTH = timedelta(days=30.44)


def _locked_for_two_years(engine, store, ids: list[int], *, since) -> None:
    """Each recording's retention, and its WORM lock itself, runs about two years from *since* (not six months)."""
    with Session(engine) as session:
        for rid in ids:
            recording = session.get(Recording, rid)
            assert recording is not None and recording.retain_until is not None
            assert recording.retain_until > since + 23 * MONTH, (recording.id, recording.retain_until)
            assert store.head(recording.sha256).retain_until == recording.retain_until


def test_a_worker_still_on_the_old_terms_locks_new_recordings_under_the_adopted_ones(
        samples, settings, engine, store, caplog, monkeypatch):
    monkeypatch.setattr(policy_adoption, "_WARNED", set())  # once per process: this test's process is many tests'
    old = settings.retention_policy
    assert old.routine_months == 6
    staged = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions(defer_archive=True)).recordings  # the station adopts its terms
    assert len(staged) >= 2 and {r["state"] for r in staged} == {"staged"}
    with Session(engine) as session:
        first = adopted_policy(session)
        assert first is not None and first.terms.routine_months == 6
        # An administrator adopts two years; this worker's environment still says six months
        adopt_policy(session, PolicyTerms.of(replace(old, routine_months=24),
                                             disposal_approval=first.terms.disposal_approval),
                     by="admin-wu", reason="新规定: 两年")
        session.commit()

    key = load_or_create_key(settings.station_key_path)
    caplog.set_level(logging.WARNING, logger="catalog.policy_adoption")
    before = utcnow()
    for row in staged:
        assert archive_recording(engine, store, settings.staging_dir, row["id"], key=key, actor="worker:old",
                                 policy=old, station=settings.station) == "archived"
    # Under the old terms the lock would end about six months after the hand-off (or capture); it is two years
    _locked_for_two_years(engine, store, [row["id"] for row in staged], since=before)
    warned = [r for r in caplog.records if "other retention terms" in r.getMessage()]
    assert len(warned) == 1 and "routine_months: adopted 24, here 6" in warned[0].getMessage()


def test_while_nothing_is_adopted_the_process_s_own_terms_decide(engine, settings):
    with Session(engine) as session:
        assert adopted_policy(session) is None
        assert policy_in_force(session, settings.retention_policy) == settings.retention_policy


def test_an_embedded_station_still_on_the_old_terms_locks_its_next_dock_under_the_adopted_ones(
        samples, settings, engine, store, monkeypatch):
    monkeypatch.setattr(policy_adoption, "_WARNED", set())
    old = settings.retention_policy
    first = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store)
    assert first.recordings and not any("retention terms" in n for n in first.notes)
    with Session(engine) as session:
        adopted = adopted_policy(session)
        assert adopted is not None
        adopt_policy(session, PolicyTerms.of(replace(old, routine_months=24),
                                             disposal_approval=adopted.terms.disposal_approval),
                     by="admin-wu", reason="新规定: 两年")
        session.commit()
    before = utcnow()
    # The same station process (its settings unchanged) docks the next recorder: copied, stamped and archived inline
    report = ingest_folder(samples.dcim_camera, settings=settings, engine=engine, store=store)
    assert report.recordings and {r["state"] for r in report.recordings} <= {"archived", "verified"}
    assert any("retention terms" in n and "routine_months: adopted 24, here 6" in n for n in report.notes)
    _locked_for_two_years(engine, store, [row["id"] for row in report.recordings], since=before)


def _adopt_two_years(engine, settings) -> None:
    with Session(engine) as session:
        adopted = adopted_policy(session)
        assert adopted is not None
        adopt_policy(session, PolicyTerms.of(replace(settings.retention_policy, routine_months=24),
                                             disposal_approval=adopted.terms.disposal_approval),
                     by="admin-wu", reason="新规定: 两年")
        session.commit()


def test_copies_journaled_during_an_outage_are_locked_under_the_terms_adopted_meanwhile(
        samples, settings, engine, store, monkeypatch):
    monkeypatch.setattr(policy_adoption, "_WARNED", set())
    assert ingest_folder(samples.dcim_camera, settings=settings, engine=engine, store=store).recordings
    _adopt_two_years(engine, settings)
    real_register = pipeline.DockRun.register

    def catalogue_down(self, item):
        raise OperationalError("INSERT INTO recording", {}, Exception("connection refused"))

    monkeypatch.setattr(pipeline.DockRun, "register", catalogue_down)
    with pytest.raises(Exception, match="journaled"):
        ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store)
    monkeypatch.setattr(pipeline.DockRun, "register", real_register)
    before = utcnow()
    report = catalogue_journal("GPS7788", settings=settings, engine=engine, store=store)
    assert report is not None and report.recordings
    _locked_for_two_years(engine, store, [row["id"] for row in report.recordings], since=before)


def _recomputed(**changes):
    """An edit by someone who also recomputes the fingerprint (owner rights on the database), as PolicyTerms does."""
    def edit(details):
        terms = {**details["terms"], **changes}
        return {**details, "terms": terms, "fingerprint": hashlib.sha256(jcs(terms)).hexdigest()}
    return edit


@pytest.mark.parametrize("edit", [
    pytest.param(lambda d: {**d, "terms": {**d["terms"], "routine_months": 1}}, id="terms-changed"),
    pytest.param(lambda d: ["edited"], id="details-not-an-object"),
    pytest.param(_recomputed(zone="Nowhere/Land"), id="impossible-zone-with-its-fingerprint"),
    pytest.param(_recomputed(disposal_approval="maybe"), id="unknown-approval-with-its-fingerprint"),
    pytest.param(_recomputed(routine_months=12 * 10**6), id="months-no-date-holds-with-its-fingerprint"),
    pytest.param(lambda d: {**d, "terms": {**d["terms"], "routine_months": "1e999"}}, id="months-not-a-number"),
])
def test_an_edited_adoption_event_stops_neither_the_archive_nor_the_next_dock(
        samples, settings, engine, store, monkeypatch, caplog, edit):
    monkeypatch.setattr(policy_adoption, "_WARNED", set())
    staged = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine, store=store,
                           options=IngestOptions(defer_archive=True)).recordings
    with Session(engine) as session:
        adopted = adopted_policy(session)
        assert adopted is not None
    as_attacker(engine)
    with Session(engine) as session:
        event = session.get(CustodyEvent, adopted.event_id)
        assert event is not None
        event.details = edit(dict(event.details))
        session.add(event)
        session.commit()
    caplog.set_level(logging.ERROR)
    key = load_or_create_key(settings.station_key_path)
    before = utcnow()
    for row in staged:  # the process's own terms (six months) decide: the evidence still goes to WORM storage
        assert archive_recording(engine, store, settings.staging_dir, row["id"], key=key, actor="worker",
                                 policy=settings.retention_policy, station=settings.station) == "archived"
    with Session(engine) as session:
        for row in staged:
            recording = session.get(Recording, row["id"])
            assert recording is not None and recording.retain_until is not None
            assert before + 5 * MONTH < recording.retain_until < before + 7 * MONTH
    again = ingest_folder(samples.dcim_camera, settings=settings, engine=engine, store=store)
    assert again.recordings and {r["state"] for r in again.recordings} <= {"archived", "verified"}
    assert any(n.startswith("retention terms:") for n in again.notes), again.notes
    assert any("deciding retention by this process's own terms" in r.getMessage() for r in caplog.records)


def test_a_document_attached_by_a_process_on_the_old_terms_is_locked_under_the_adopted_ones(
        samples, settings, engine, store, tmp_path, monkeypatch):
    from datetime import date

    from catalog import DEFAULT_CASE_PATTERN, create_case
    from ingest.documents import attach_document
    from tests.helpers.documents import pdf_bytes

    monkeypatch.setattr(policy_adoption, "_WARNED", set())
    assert ingest_folder(samples.dcim_camera, settings=settings, engine=engine, store=store).recordings  # adopts
    _adopt_two_years(engine, settings)
    report = tmp_path / "询问笔录.pdf"
    report.write_bytes(pdf_bytes())
    before = utcnow()
    with Session(engine) as session:
        case = create_case(session, number="AB-2026-00077", title="无照经营", case_type="penalty-general", unit="",
                           opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN,
                           policy=policy_in_force(session, settings.retention_policy), today=date(2026, 11, 23))
        session.commit()
        attached = attach_document(session, store, settings, case, report, title="询问笔录", by="clerk",
                                   key=load_or_create_key(settings.station_key_path)).recording
        assert attached.retain_until is not None and attached.retain_until > before + 23 * MONTH
        assert store.head(attached.sha256).retain_until == attached.retain_until


def test_a_station_left_running_on_other_terms_raises_an_alarm_until_the_terms_agree_again(
        samples, settings, engine, store):
    from ingest.station.health import StationMetrics
    from tests.ingest.station.test_station_health import _alarm

    metrics = StationMetrics(settings.station, broker_configured=False)
    metrics.refresh(engine, staged_alarm_s=3600, terms=settings.policy_terms)
    assert _alarm(metrics, "retention_terms_differ") == 0  # nothing adopted yet: nothing to differ from
    assert ingest_folder(samples.dcim_camera, settings=settings, engine=engine, store=store).recordings  # adopts
    metrics.refresh(engine, staged_alarm_s=3600, terms=settings.policy_terms)
    assert _alarm(metrics, "retention_terms_differ") == 0
    _adopt_two_years(engine, settings)
    metrics.refresh(engine, staged_alarm_s=3600, terms=settings.policy_terms)
    assert _alarm(metrics, "retention_terms_differ") == 1
    (raised,) = [a for a in metrics.alarms() if a["kind"] == "retention_terms_differ"]
    assert "routine_months: adopted 24, here 6" in raised["message"] and "restart the station" in raised["message"]
    assert raised["here"] == settings.policy_terms.fingerprint != raised["adopted"]
    with Session(engine) as session:  # the administrator adopts the station's terms back
        adopt_policy(session, settings.policy_terms, by="admin-wu", reason="撤回")
        session.commit()
    metrics.refresh(engine, staged_alarm_s=3600, terms=settings.policy_terms)
    assert _alarm(metrics, "retention_terms_differ") == 0 and metrics.alarms() == []
