from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from storage import (
    RetentionRefused,
    compute_retain_until,
    is_disposable,
    validate_extension,
    validate_routine_months,
)


def test_routine_retention_adds_six_calendar_months():
    end = datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC)
    assert compute_retain_until(end, routine_months=6, zone="UTC") == datetime(2027, 5, 20, 1, 2, 3, tzinfo=UTC)


def test_month_arithmetic_clamps_to_the_last_day_of_a_short_month():
    end = datetime(2026, 8, 31, 12, 0, tzinfo=UTC)
    assert compute_retain_until(end, routine_months=6, zone="UTC") == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)


def test_longer_routine_period_is_allowed():
    end = datetime(2026, 1, 15, tzinfo=UTC)
    assert compute_retain_until(end, routine_months=24, zone="UTC") == datetime(2028, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize(("archived_utc", "local_until_day"), [
    # 05:00 on 1 March in Beijing is still 28 February in UTC: six months counted in UTC ended on 29 August
    (datetime(2027, 2, 28, 21, 0, tzinfo=UTC), (2027, 9, 1)),
    # the night of 1 December there (30 November UTC): 1 June, not 31 May
    (datetime(2026, 11, 30, 17, 30, tzinfo=UTC), (2027, 6, 1)),
    # 31 August there, clamped on the local calendar: the last day of February
    (datetime(2026, 8, 30, 16, 30, tzinfo=UTC), (2027, 2, 28)),
])
def test_six_months_are_counted_on_the_agencys_calendar_not_utcs(archived_utc, local_until_day):
    until = compute_retain_until(archived_utc, routine_months=6, zone="Asia/Shanghai")
    local = until.astimezone(ZoneInfo("Asia/Shanghai"))
    assert (local.year, local.month, local.day) == local_until_day
    assert local.time() == archived_utc.astimezone(ZoneInfo("Asia/Shanghai")).time()  # to the minute it began
    assert until.tzinfo == UTC


def test_a_dst_zone_keeps_the_local_hour_across_the_change():
    # 10:00 in New York on 15 January (EST) is 10:00 on 15 July there (EDT): one hour less in UTC
    until = compute_retain_until(datetime(2026, 1, 15, 15, 0, tzinfo=UTC), routine_months=6, zone="America/New_York")
    assert until == datetime(2026, 7, 15, 14, 0, tzinfo=UTC)


def test_routine_period_below_six_months_is_refused_with_the_numbers():
    with pytest.raises(RetentionRefused) as info:
        validate_routine_months(5)
    assert str(info.value) == "routine retention of 5 month(s) is below the legal minimum of 6 months"


def test_naive_capture_time_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_retain_until(datetime(2026, 1, 1), routine_months=6, zone="UTC")


def test_retention_can_grow_but_never_shrink():
    now = datetime(2027, 1, 1, tzinfo=UTC)
    later = datetime(2028, 1, 1, tzinfo=UTC)
    assert validate_extension("k", now, later) == later
    with pytest.raises(RetentionRefused, match="can only be extended: requested 2027-01-01T00:00:00\\+00:00"):
        validate_extension("k", later, now)


def test_disposable_only_after_retention_and_without_hold():
    until = datetime(2027, 5, 20, tzinfo=UTC)
    assert not is_disposable(until, False, datetime(2027, 5, 19, tzinfo=UTC))
    assert is_disposable(until, False, until)
    assert not is_disposable(until, True, datetime(2030, 1, 1, tzinfo=UTC))
    assert not is_disposable(None, False, datetime(2030, 1, 1, tzinfo=UTC))
