"""Coverage (catalog.coverage): each day of an officer's recordings on the agency's calendar, its gaps and
overlaps, and what is left out because its time cannot be trusted; the day's edges at 00:00 +08:00."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlmodel import Session

from catalog.access import Scope
from catalog.coverage import Span, day_bounds, day_coverage, officer_coverage, unit_coverage
from catalog.models import Officer
from tests.helpers.recordings import add_recording

CST = timezone(timedelta(hours=8))
ZONE = "Asia/Shanghai"
DAY = date(2026, 11, 20)


def _at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CST)


def test_a_day_is_the_agencys_from_midnight_to_midnight():
    begin, end = day_bounds(DAY, ZONE)
    assert begin == datetime(2026, 11, 19, 16, 0, tzinfo=UTC) and end - begin == timedelta(days=1)


def test_a_recording_across_midnight_counts_on_each_day_for_its_own_part():
    across = Span(_at(23, 50), _at(0, 10, DAY + timedelta(days=1)), 1)
    before, after = day_coverage([across], DAY, ZONE), day_coverage([across], DAY + timedelta(days=1), ZONE)
    assert before.recorded == ((_at(23, 50), _at(0, 0, DAY + timedelta(days=1))),) and before.recorded_s == 600
    assert after.recorded_s == 600 and after.recorded[0][0] == _at(0, 0, DAY + timedelta(days=1))
    # 00:00 +08:00 is 16:00 UTC the day before: a recording then belongs to the 20th, not the 19th
    at_midnight = Span(datetime(2026, 11, 19, 16, 0, tzinfo=UTC), datetime(2026, 11, 19, 16, 5, tzinfo=UTC), 2)
    assert day_coverage([at_midnight], DAY, ZONE).recorded_s == 300
    assert day_coverage([at_midnight], DAY - timedelta(days=1), ZONE).recorded == ()


def test_gaps_overlaps_and_untrusted_times_are_each_named():
    spans = [Span(_at(8), _at(8, 30), 1, "A"), Span(_at(8, 20), _at(8, 40), 2, "B"),  # two recorders at once
             Span(_at(9), _at(9, 10), 3, "A"), Span(_at(9, 10), _at(9, 20), 4, "A"),  # back to back: no gap
             Span(_at(10), _at(11), 5, "A", implausible=True)]
    day = day_coverage(spans, DAY, ZONE)
    assert day.recorded == ((_at(8), _at(8, 40)), (_at(9), _at(9, 20)))
    assert day.gaps == ((_at(8, 40), _at(9)),)
    assert day.overlaps == ((_at(8, 20), _at(8, 30), 1, 2),)
    assert day.implausible == (5,) and day.recorded_s == 60 * 60
    assert day_coverage([], DAY, ZONE).recorded == () and day_coverage([], DAY, ZONE).gaps == ()


def test_an_officers_days_from_the_catalogue(engine):
    t = _at(23, 50).astimezone(UTC)
    with Session(engine) as session:
        add_recording(session, 1, captured_start=t, captured_end=t + timedelta(minutes=20))
        add_recording(session, 2, captured_start=t + timedelta(hours=9), captured_end=t + timedelta(hours=9, minutes=5))
        add_recording(session, 3, captured_start=t + timedelta(hours=10), captured_end=None)  # no end: an instant
        add_recording(session, 4, captured_start=t, captured_end=t + timedelta(hours=1), media_kind="photo")
        add_recording(session, 5, captured_start=t, captured_end=t + timedelta(hours=1), officer_number="030405")
        session.commit()
        days = officer_coverage(session, "010203", DAY, DAY + timedelta(days=1), ZONE)
    assert [d.day for d in days] == [DAY, DAY + timedelta(days=1)]
    assert days[0].recorded_s == 600  # recording 1's first ten minutes; the photo and the other officer's left out
    assert days[1].recorded_s == 600 + 300 and len(days[1].recorded) == 3 and len(days[1].gaps) == 2


def test_each_recorder_has_its_periods_and_a_split_file_leaves_no_gap():
    later = datetime(2026, 11, 20, 8, 20, 1, tzinfo=CST)
    spans = [Span(_at(8), _at(8, 10), 1, "A"), Span(_at(8, 10), _at(8, 20), 2, "A"),  # one clip cut in two files
             Span(later, _at(8, 30), 3, "A"),  # a second later: within SLACK_S, no gap listed
             Span(_at(8, 5), _at(8, 15), 4, "B")]
    day = day_coverage(spans, DAY, ZONE)
    assert list(day.by_device) == [
        ("A", _at(8), _at(8, 20), (1, 2)), ("A", later, _at(8, 30), (3,)),
        ("B", _at(8, 5), _at(8, 15), (4,))]
    assert day.gaps == () and day.recorded_s == 30 * 60 - 1
    assert [o[2:] for o in day.overlaps] == [(1, 4), (4, 2)]


def _unit(session) -> None:
    """Unit U1 (一中队): 010203 and 050607; unit U2 (二中队): 030405; unit U9, also named 一中队 later."""
    session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
    session.add(Officer(number="050607", name="李四", unit_number="U1", unit_name="一中队"))
    session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))


def test_a_units_officers_and_their_days_in_one_query(engine):
    t = _at(23, 50).astimezone(UTC)
    with Session(engine) as session:
        _unit(session)
        add_recording(session, 1, captured_start=t, captured_end=t + timedelta(minutes=20))
        add_recording(session, 2, officer_number="050607", device_serial="B1", captured_start=t + timedelta(hours=9),
                      captured_end=t + timedelta(hours=10))
        add_recording(session, 3, officer_number="030405", captured_start=t, captured_end=t + timedelta(hours=1))
        add_recording(session, 4, captured_start=datetime(2000, 1, 1, tzinfo=UTC),  # a wrong clock, docked on the 21st
                      captured_end=datetime(2000, 1, 1, 0, 5, tzinfo=UTC), time_implausible=True,
                      ingested_at=_at(10, day=DAY + timedelta(days=1)))
        add_recording(session, 5, captured_start=datetime(2000, 1, 1, tzinfo=UTC), time_implausible=True,  # before
                      captured_end=datetime(2000, 1, 1, 0, 5, tzinfo=UTC), ingested_at=_at(10, day=DAY - timedelta(3)))
        session.commit()
        for unit in ("U1", "一中队"):
            found = unit_coverage(session, unit, DAY, DAY + timedelta(days=1), ZONE)
            assert [o.number for o in found.officers] == ["010203", "050607"] and found.outside_scope == 0
        first, second = found.officers
        assert [d.recorded_s for d in first.days] == [600, 600] and second.days[1].recorded_s == 3600
        assert second.days[1].by_device[0][0] == "B1"
        docked = _at(10, day=DAY + timedelta(days=1))
        assert [(f.recording_id, f.ingested_at) for f in first.implausible] == [(4, docked)]
        # a supervisor of U2 sees none of U1; an officer of U1 only themself
        assert unit_coverage(session, "U1", DAY, DAY, ZONE, scope=Scope(units=frozenset({"U2"}))).officers == ()
        mine = unit_coverage(session, "U1", DAY, DAY, ZONE, scope=Scope(officers=frozenset({"050607"})))
        assert [o.number for o in mine.officers] == ["050607"] and mine.outside_scope == 1
        session.add(Officer(number="070809", name="赵六", unit_number="U9", unit_name="一中队"))
        session.commit()
        shared = unit_coverage(session, "一中队", DAY, DAY, ZONE)  # a name two units carry names neither
        assert shared.officers == () and not shared.known
        assert unit_coverage(session, "U9", DAY, DAY, ZONE).officers[0].days[0].recorded == ()
