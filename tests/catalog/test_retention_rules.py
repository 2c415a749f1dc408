"""Retention rules as pure functions, with fixed dates: every rule and their combinations."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from catalog import DEFAULT_CASE_TYPES, CaseFacts, PolicyInvalid, RetentionPolicy, decide_retention, disposal_due
from catalog.retention import CaseType, case_retain_until, parse_case_types, pending_case_holds, routine_base
from storage import RetentionRefused

POLICY = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")
CAPTURED = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
ROUTINE_END = datetime(2026, 9, 10, 2, 0, tzinfo=UTC)


def _open(number: str = "AB-2026-001", case_type: str = "penalty-general") -> CaseFacts:
    return CaseFacts(number=number, case_type=case_type, status="open", closed_on=None)


def _closed(closed_on: date, number: str = "AB-2026-001", case_type: str = "penalty-general") -> CaseFacts:
    return CaseFacts(number=number, case_type=case_type, status="closed", closed_on=closed_on)


def test_routine_recording_is_kept_capture_end_plus_the_routine_period():
    decision = decide_retention(base_time=CAPTURED, current=None, cases=[], policy=POLICY)
    assert decision.retain_until == ROUTINE_END
    assert decision.legal_hold is False
    assert decision.rule == "routine: later of capture end and archiving + 6 months"


def test_a_longer_routine_period_is_honoured_and_a_shorter_one_refused():
    twelve = RetentionPolicy(routine_months=12, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")
    assert decide_retention(base_time=CAPTURED, current=None, cases=[], policy=twelve).retain_until == \
        datetime(2027, 3, 10, 2, 0, tzinfo=UTC)
    with pytest.raises(RetentionRefused, match="below the legal minimum of 6"):
        RetentionPolicy(routine_months=5, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")


def test_open_case_puts_a_legal_hold_and_keeps_the_date():
    decision = decide_retention(base_time=CAPTURED, current=ROUTINE_END, cases=[_open()], policy=POLICY)
    assert decision.legal_hold is True
    assert decision.hold_reasons == ("case AB-2026-001 is open",)
    assert decision.retain_until == ROUTINE_END
    assert not disposal_due(decision, datetime(2099, 1, 1, tzinfo=UTC))


def test_closed_case_keeps_the_record_through_the_anniversary_day_in_the_agency_zone():
    decision = decide_retention(base_time=CAPTURED, current=ROUTINE_END, cases=[_closed(date(2026, 6, 30))],
                                policy=POLICY)
    # 30 years after 2026-06-30, through that whole day in Beijing: until 2056-07-01 00:00 +08:00.
    assert decision.retain_until == datetime(2056, 6, 30, 16, 0, tzinfo=UTC)
    assert decision.legal_hold is False
    assert decision.rule == "case AB-2026-001 closed 2026-06-30 + 30 years (penalty-general)"


def test_leap_day_closing_clamps_to_the_last_day_of_february():
    one_year = CaseType("short", "短", "short", 1)
    assert case_retain_until(date(2028, 2, 29), one_year, "UTC") == datetime(2029, 3, 1, tzinfo=UTC)


def test_permanent_case_type_keeps_the_hold_after_closing():
    decision = decide_retention(base_time=CAPTURED, current=ROUTINE_END,
                                cases=[_closed(date(2026, 6, 30), case_type="major")], policy=POLICY)
    assert decision.legal_hold is True
    assert decision.hold_reasons == ("case AB-2026-001 (major) is kept permanently",)


def test_the_longest_of_several_closed_cases_wins():
    cases = [_closed(date(2026, 6, 30), "AB-1", "penalty-summary"), _closed(date(2026, 5, 1), "AB-2", "coercion")]
    decision = decide_retention(base_time=CAPTURED, current=ROUTINE_END, cases=cases, policy=POLICY)
    assert decision.retain_until == datetime(2056, 5, 1, 16, 0, tzinfo=UTC)
    assert decision.rule.startswith("case AB-2 closed 2026-05-01 + 30 years")
    assert decision.legal_hold is False


def test_an_open_case_holds_even_when_another_is_closed():
    cases = [_closed(date(2026, 6, 30), "AB-1", "penalty-summary"), _open("AB-2")]
    decision = decide_retention(base_time=CAPTURED, current=ROUTINE_END, cases=cases, policy=POLICY)
    assert decision.legal_hold is True
    assert decision.hold_reasons == ("case AB-2 is open",)
    assert decision.retain_until == datetime(2036, 6, 30, 16, 0, tzinfo=UTC)


def test_retention_never_shrinks_unlinking_keeps_what_was_given():
    after_closing = datetime(2056, 6, 30, 16, 0, tzinfo=UTC)
    # The case link is gone (no cases), but the record had already been given 30 years.
    decision = decide_retention(base_time=CAPTURED, current=after_closing, cases=[], policy=POLICY)
    assert decision.retain_until == after_closing
    assert decision.rule == "kept: retention never shrinks"
    assert decision.legal_hold is False


def test_reopening_holds_again_and_keeps_the_date_from_the_first_closing():
    after_closing = datetime(2056, 6, 30, 16, 0, tzinfo=UTC)
    decision = decide_retention(base_time=CAPTURED, current=after_closing, cases=[_open()], policy=POLICY)
    assert decision.legal_hold is True
    assert decision.retain_until == after_closing


def test_a_shorter_case_period_does_not_undercut_routine_retention():
    recent = datetime(2026, 11, 1, tzinfo=UTC)
    short = RetentionPolicy(routine_months=6, zone="UTC",
                            case_types={"tiny": CaseType("tiny", "短", "tiny", 1)})
    decision = decide_retention(base_time=recent, current=None, cases=[_closed(date(2025, 1, 1), case_type="tiny")],
                                policy=short)
    assert decision.retain_until == datetime(2027, 5, 1, tzinfo=UTC)
    assert decision.rule.startswith("routine")


def test_disposal_is_due_only_after_retain_until_and_without_hold():
    decision = decide_retention(base_time=CAPTURED, current=None, cases=[], policy=POLICY)
    assert not disposal_due(decision, ROUTINE_END - timedelta(seconds=1))
    assert disposal_due(decision, ROUTINE_END)


def test_unknown_case_type_and_a_closed_case_without_date_are_errors():
    with pytest.raises(PolicyInvalid, match="unknown case type 'parking'"):
        decide_retention(base_time=CAPTURED, current=None, cases=[_open(case_type="parking")], policy=POLICY)
    broken = CaseFacts(number="AB-1", case_type="licensing", status="closed", closed_on=None)
    with pytest.raises(PolicyInvalid, match="without a closed date"):
        decide_retention(base_time=CAPTURED, current=None, cases=[broken], policy=POLICY)


def test_case_type_table_parses_years_and_permanent():
    types = parse_case_types({"case_types": {
        "traffic": {"name": "交通", "name_en": "Traffic", "years": 15},
        "homicide-related": {"name": "重大", "permanent": True},
    }}, source="policy.toml")
    assert types["traffic"].years == 15 and not types["traffic"].permanent
    assert types["homicide-related"].permanent and types["homicide-related"].name_en == "重大"


def test_case_type_table_lists_every_problem():
    with pytest.raises(PolicyInvalid) as caught:
        parse_case_types({"case_types": {
            "Bad Code": {"name": "x", "years": 3},
            "zero": {"name": "零", "years": 0},
            "both": {"name": "两", "years": 5, "permanent": True},
            "anon": {"years": 5},
            "typo": {"name": "t", "yeras": 5, "years": 2},
        }, "extra": 1}, source="policy.toml")
    message = str(caught.value)
    for expected in ("policy.toml", "unknown top-level key(s): extra", "case_types.Bad Code: a code is",
                     "case_types.zero: years must be a whole number ≥ 1", "case_types.both: give either years",
                     "case_types.anon: needs a name", "case_types.typo: unknown key(s) yeras"):
        assert expected in message
    with pytest.raises(PolicyInvalid, match="non-empty"):
        parse_case_types({}, source="empty.toml")


ARCHIVED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("device_clock", "implausible"), [
    (datetime(2000, 1, 1, tzinfo=UTC), True),  # a clock reset to 2000
    (datetime(2019, 5, 1, tzinfo=UTC), False),  # an old photo, ingested today: a true but old time
    (datetime(2046, 11, 30, tzinfo=UTC), True),  # a clock 20 years ahead
])
def test_a_device_clock_never_shortens_routine_retention(device_clock, implausible):
    base = routine_base(captured_end=device_clock, entered_at=ARCHIVED, time_implausible=implausible)
    decision = decide_retention(base_time=base, current=None, cases=[], policy=POLICY)
    assert decision.retain_until == datetime(2027, 5, 30, 9, 0, tzinfo=UTC)  # archiving + 6 months
    assert not disposal_due(decision, ARCHIVED + timedelta(days=1))


def test_a_plausible_capture_after_archiving_counts_from_the_capture_end():
    later = ARCHIVED + timedelta(hours=20)  # a clip whose end the station saw a little ahead (within a day)
    assert routine_base(captured_end=later, entered_at=ARCHIVED) == later
    assert routine_base(captured_end=None, entered_at=ARCHIVED) == ARCHIVED


def test_a_base_at_the_end_of_the_calendar_is_kept_as_long_as_can_be_written():
    decision = decide_retention(base_time=datetime(9999, 12, 31, 23, 59, tzinfo=UTC), current=None, cases=[],
                                policy=POLICY)
    assert decision.retain_until == datetime(9999, 12, 31, tzinfo=UTC)


def test_a_case_number_that_names_no_registered_case_holds_until_a_clerk_decides():
    reasons = pending_case_holds(case_number="AB-2026-404", case_registered=False, ever_linked_to_it=False,
                                 important=False, linked_now=False)
    assert reasons == ("pending case: case number AB-2026-404 is not registered here; held until a clerk links "
                       "the recording to a registered case or removes the case number with a reason",)
    decision = decide_retention(base_time=CAPTURED, current=None, cases=[], policy=POLICY, pending=reasons)
    assert decision.legal_hold is True and decision.hold_reasons == reasons
    assert not disposal_due(decision, datetime(2099, 1, 1, tzinfo=UTC))


def test_a_registered_case_decides_once_linked_and_a_clerks_unlink_is_a_decision():
    never = pending_case_holds(case_number="AB-1", case_registered=True, ever_linked_to_it=False, important=False,
                               linked_now=False)
    assert never and "registered but the recording was never linked" in never[0]
    assert pending_case_holds(case_number="AB-1", case_registered=True, ever_linked_to_it=True, important=False,
                              linked_now=True) == ()
    assert pending_case_holds(case_number="AB-1", case_registered=True, ever_linked_to_it=True, important=False,
                              linked_now=False) == ()  # unlinked by a clerk, with a reason


def test_an_important_recording_is_held_until_it_serves_a_case_or_loses_the_flag():
    held = pending_case_holds(case_number=None, case_registered=False, ever_linked_to_it=False, important=True,
                              linked_now=False)
    assert held == ("pending case: marked important and linked to no case; held until a clerk links it to a case "
                    "or removes the important flag with a reason",)
    assert pending_case_holds(case_number=None, case_registered=False, ever_linked_to_it=False, important=True,
                              linked_now=True) == ()
    assert pending_case_holds(case_number=None, case_registered=False, ever_linked_to_it=False, important=False,
                              linked_now=False) == ()
    closed = decide_retention(base_time=CAPTURED, current=None, cases=[_closed(date(2026, 6, 30))], policy=POLICY,
                              pending=())
    assert closed.legal_hold is False and closed.rule.startswith("case AB-2026-001 closed")
