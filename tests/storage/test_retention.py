from datetime import UTC, datetime

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
    assert compute_retain_until(end, routine_months=6) == datetime(2027, 5, 20, 1, 2, 3, tzinfo=UTC)


def test_month_arithmetic_clamps_to_the_last_day_of_a_short_month():
    end = datetime(2026, 8, 31, 12, 0, tzinfo=UTC)
    assert compute_retain_until(end, routine_months=6) == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)


def test_longer_routine_period_is_allowed():
    end = datetime(2026, 1, 15, tzinfo=UTC)
    assert compute_retain_until(end, routine_months=24) == datetime(2028, 1, 15, tzinfo=UTC)


def test_routine_period_below_six_months_is_refused_with_the_numbers():
    with pytest.raises(RetentionRefused) as info:
        validate_routine_months(5)
    assert str(info.value) == "routine retention of 5 month(s) is below the legal minimum of 6 months"


def test_naive_capture_time_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_retain_until(datetime(2026, 1, 1), routine_months=6)


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
