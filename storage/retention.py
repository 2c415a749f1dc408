"""Retention arithmetic: pure functions, no clock (pass `now`).

Rules (DESIGN.md, evidence rule 5): routine footage is kept at least six
calendar months after capture; a configured period below that is refused;
retention can be extended but never shortened; nothing is disposed of while
a legal hold is set.
"""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from storage.errors import RetentionRefused

__all__ = [
    "MIN_ROUTINE_MONTHS", "compute_retain_until", "is_disposable", "require_future", "validate_extension",
    "validate_routine_months",
]

#: The legal floor for routine footage (日常巡查 ≥ 6 个月).
MIN_ROUTINE_MONTHS = 6


def validate_routine_months(months: int) -> int:
    """Return *months* if it is a lawful routine retention period, else raise RetentionRefused."""
    if months < MIN_ROUTINE_MONTHS:
        raise RetentionRefused(
            f"routine retention of {months} month(s) is below the legal minimum of "
            f"{MIN_ROUTINE_MONTHS} months")
    return months


def compute_retain_until(captured_end: datetime, *, routine_months: int, zone: str) -> datetime:
    """Retain-until for routine footage: capture end plus whole calendar months of the agency's calendar (*zone*,
    an IANA name), in UTC.

    Months are counted on the agency's calendar, not UTC's: archived at 05:00 on 1 March in Beijing (21:00 on
    28 February UTC), six months later is 1 September there, not 29 August. Month arithmetic clamps to the
    month's last day (31 Aug + 6 months = 28/29 Feb).
    """
    if captured_end.tzinfo is None:
        raise ValueError(f"captured_end must be timezone-aware, got naive {captured_end.isoformat()}")
    local = captured_end.astimezone(ZoneInfo(zone))
    return (local + relativedelta(months=validate_routine_months(routine_months))).astimezone(UTC)


def validate_extension(key: str, current: datetime | None, requested: datetime) -> datetime:
    """Return *requested* if it does not shorten *current* retention; else raise RetentionRefused."""
    if current is not None and requested < current:
        raise RetentionRefused(
            f"retention of {key!r} can only be extended: requested {requested.isoformat()} is before "
            f"current {current.isoformat()}")
    return requested


def is_disposable(retain_until: datetime | None, legal_hold: bool, now: datetime) -> bool:
    """True when retention has passed and no legal hold is set."""
    return not legal_hold and retain_until is not None and now >= retain_until


def require_future(key: str, retain_until: datetime, now: datetime) -> datetime:
    """Return *retain_until* if it lies after *now*; else raise RetentionRefused.

    A WORM lock "until" a date already passed protects nothing (S3 refuses it outright): the caller decided
    retention from the wrong time, typically a device clock reset to the past.
    """
    if retain_until <= now:
        raise RetentionRefused(
            f"refusing to lock {key!r} until {retain_until.isoformat()}: that is not after now "
            f"({now.isoformat(timespec='seconds')}); retention must count from the archiving time too")
    return retain_until
