"""Archive figures on SQLite and PostgreSQL: the statistics over kept recordings (scoped), the counts by state,
the staged backlog and the catalogue's liveness check."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session

from catalog import Officer
from catalog.access import EVERYTHING, scope_for
from catalog.periods import period_of
from catalog.statistics import check_catalogue, recordings_by_state, staged_backlog, statistics
from tests.helpers.recordings import T0, add_recording

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def _archive(engine):
    """Four kept recordings of two officers in two units (one staged, one tagged, one damaged, one due in 10 days)
    and one disposed of (never counted)."""
    with Session(engine) as session:
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
        add_recording(session, 1, duration_s=1800.0, case_number="AB-2026-00042", retain_until=NOW + timedelta(days=10))
        add_recording(session, 2, duration_s=3600.0, retain_until=NOW + timedelta(days=90), integrity_status="damaged")
        add_recording(session, 3, officer_number="030405", officer_name="王五", station_code="station-2",
                      state="staged", retain_until=None)
        add_recording(session, 4, officer_number="030405", officer_name="王五", legal_hold=True,
                      retain_until=NOW + timedelta(days=1), sensitivity="personal")
        add_recording(session, 5, state="disposed", sensitivity="state_secret")
        session.commit()


def test_statistics_count_the_kept_recordings_by_officer_station_unit_and_day(engine):
    # Given the archive
    _archive(engine)
    # When the figures are read for the whole archive
    with Session(engine) as session:
        figures = statistics(session, EVERYTHING, now=NOW)
    # Then the disposed-of recording is left out and the held one is not counted as upcoming
    assert (figures["total"], figures["tagged_share"], figures["pending_archive"]) == (4, 0.25, 1)
    assert figures["storage_bytes"] == 101 + 102 + 103 + 104
    assert figures["upcoming_disposals_30d"] == 1
    assert figures["integrity"] == {"ok": 3, "damaged": 1}
    # counted by sensitivity class, every class named (the disposed state secret is not kept)
    assert figures["by_class"] == {"public": 0, "internal": 3, "commercial": 0, "personal": 1, "state_secret": 0}
    assert sorted(figures["by_officer"], key=lambda r: r["key"]) == [  # equal counts: either may come first
        {"key": "010203", "count": 2, "hours": 1.5, "tagged": 1}, {"key": "030405", "count": 2, "hours": 0.0,
                                                                 "tagged": 0}]
    assert {r["key"]: r["count"] for r in figures["by_station"]} == {"station-1": 3, "station-2": 1}
    assert {r["key"]: (r["label"], r["count"]) for r in figures["by_unit"]} == {"U1": ("一中队", 2),
                                                                               "U2": ("二中队", 2)}
    assert figures["hours"] == 1.5
    assert [r["key"] for r in figures["by_day"]] == [T0.date().isoformat()]
    assert figures["scope"] == EVERYTHING.describe()


def test_statistics_of_a_unit_supervisor_cover_only_their_units(engine):
    _archive(engine)
    unit_2 = scope_for(roles=["supervisor"], officer_number=None, units=["U2"])
    with Session(engine) as session:
        figures = statistics(session, unit_2, now=NOW)
    assert (figures["total"], figures["pending_archive"], figures["upcoming_disposals_30d"]) == (2, 1, 0)
    assert (figures["by_class"]["internal"], figures["by_class"]["personal"]) == (1, 1)
    assert [r["key"] for r in figures["by_officer"]] == ["030405"]


def test_statistics_of_an_empty_archive_are_zero(engine):
    with Session(engine) as session:
        figures = statistics(session, now=NOW)
    assert (figures["total"], figures["tagged_share"], figures["storage_bytes"]) == (0, 0.0, 0)
    assert figures["by_day"] == [] and figures["integrity"] == {}
    assert set(figures["by_class"].values()) == {0}


def test_recordings_are_counted_by_state_and_the_staged_backlog_is_archive_wide(engine):
    _archive(engine)
    with Session(engine) as session:
        check_catalogue(session)
        assert recordings_by_state(session) == {"archived": 3, "staged": 1, "disposed": 1}
        backlog = staged_backlog(session)
    assert backlog.count == 1 and backlog.oldest is not None
    assert backlog.oldest == T0
    assert backlog.age_s(T0 + timedelta(seconds=90)) == 90.0


def test_an_empty_backlog_has_no_age(engine):
    with Session(engine) as session:
        backlog = staged_backlog(session)
    assert (backlog.count, backlog.oldest, backlog.age_s(NOW)) == (0, None, 0.0)


def test_days_are_the_agencys_calendar_days_and_text_records_are_not_recordings(engine):
    """A recording at 00:30 on 21 November in Beijing (16:30 UTC on the 20th) is the 21st's there, on SQLite and
    PostgreSQL alike, summer time included; a text record attached to a case is counted apart, never as footage."""
    with Session(engine) as session:
        add_recording(session, 1, captured_start=datetime(2026, 11, 20, 16, 30, tzinfo=UTC))
        add_recording(session, 2, captured_start=datetime(2026, 11, 20, 15, 59, tzinfo=UTC))  # 23:59 in Beijing
        add_recording(session, 3, captured_start=datetime(2026, 7, 1, 3, 30, tzinfo=UTC))  # 23:30 on 30 June, EDT
        add_recording(session, 4, media_kind="document", case_number="AB-2026-00042", integrity_status="damaged",
                      captured_start=datetime(2026, 11, 20, 16, 40, tzinfo=UTC))
        session.commit()
    with Session(engine) as session:
        beijing = statistics(session, now=NOW, zone="Asia/Shanghai")
        utc = statistics(session, now=NOW)
        new_york = statistics(session, now=NOW, zone="America/New_York")
    # without a period: the 30 days before the newest recording (the July one is older)
    assert {r["key"]: r["count"] for r in beijing["by_day"]} == {"2026-11-20": 1, "2026-11-21": 1}
    assert {r["key"]: r["count"] for r in utc["by_day"]} == {"2026-11-20": 2}
    assert {r["key"]: r["count"] for r in new_york["by_day"]} == {"2026-11-20": 2}
    with Session(engine) as session:  # summer time: 03:30 UTC on 1 July is 23:30 on 30 June in New York (EDT)
        summer = [statistics(session, now=NOW, zone=zone, period=period_of("day", day))["by_day"]
                  for zone, day in (("America/New_York", date(2026, 6, 30)), ("Asia/Shanghai", date(2026, 7, 1)))]
    assert [[(r["key"], r["count"]) for r in days] for days in summer] == [[("2026-06-30", 1)], [("2026-07-01", 1)]]
    assert (beijing["total"], beijing["documents"], beijing["tagged_share"]) == (3, 1, 0.0)
    assert beijing["integrity"] == {"ok": 3} and sum(beijing["by_class"].values()) == 3
    assert sum(r["count"] for r in beijing["by_officer"]) == 3
    assert beijing["storage_bytes"] == 101 + 102 + 103 + 104  # the text record's bytes are stored all the same


def test_units_that_share_a_name_are_told_apart_and_a_shared_name_drills_into_neither(engine):
    """Every 大队 may have its 一中队: two units named so are two rows, each named with its number, and asking
    for the name alone counts neither (as a supervisor's scope reads it, catalog.access.scope_clause)."""
    with Session(engine) as session:
        session.add(Officer(number="010203", name="张三", unit_number="A1", unit_name="一中队"))
        session.add(Officer(number="030405", name="王五", unit_number="B1", unit_name="一中队"))
        session.add(Officer(number="050607", name="赵六", unit_number="B2", unit_name="二中队"))
        add_recording(session, 1)
        add_recording(session, 2, officer_number="030405")
        add_recording(session, 3, officer_number="030405")
        add_recording(session, 4, officer_number="050607")
        session.commit()
    with Session(engine) as session:
        figures = statistics(session, now=NOW)
        assert {r["key"]: (r["label"], r["count"]) for r in figures["by_unit"]} == {
            "A1": ("一中队 (A1)", 1), "B1": ("一中队 (B1)", 2), "B2": ("二中队", 1)}
        assert statistics(session, now=NOW, unit="B1")["total"] == 2
        assert statistics(session, now=NOW, unit="二中队")["total"] == 1  # a name one unit carries
        assert statistics(session, now=NOW, unit="一中队")["total"] == 0  # a name two carry: neither
