"""What time it is, as far as the archive can tell: the host's clock, but never earlier than the custody chain.

Every event of the chain carries the time of the host that wrote it; what the recent events agree on is a floor no
honest clock is behind: the median time of the last CHAIN_WINDOW events (the latest alone would let one event from
a host whose clock ran ahead, a year or twenty, push every later recording's retention out and block disposal for
good: a review, 2026-12-03; a median needs most recent writers to agree, and moves back once a wrong clock is put
right). A station whose clock is far behind it (a dead RTC battery, a clock set back) would enter recordings
"earlier" than they were, so routine retention would count from a wrong, early time and a correct device time would
look "ahead of the station" (a review, 2026-12-02). So ingest, the archive hand-off and attached documents take the
later of the two (`archive_now`), and say by how much the clock was behind; disposal refuses to run at all while
the clock is behind the chain (`clock_problem`): a clock that went backwards cannot say what is due. A clock
*ahead* cannot be told from a quiet archive by the chain alone: on S3 Object Lock the server's own clock refuses an
early delete; on the local store it is not caught (docs/security.md).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from catalog.models import CustodyEvent
from catalog.types import utcnow

__all__ = ["CHAIN_WINDOW", "CLOCK_SLACK", "archive_now", "behind_by", "chain_floor", "clock_problem", "median_time"]

#: How far behind the chain's floor a clock may be before it counts as wrong (hosts are not in step).
CLOCK_SLACK = timedelta(minutes=5)
#: How many of the chain's last events the floor is the median of.
CHAIN_WINDOW = 101


def chain_floor(session: Session) -> datetime | None:
    """The median time of the custody chain's last CHAIN_WINDOW events (None: an empty chain); one lookup on the
    primary key."""
    times = [t if t.tzinfo is not None else t.replace(tzinfo=UTC)
             for t in session.exec(select(CustodyEvent.at).order_by(col(CustodyEvent.id).desc())
                                   .limit(CHAIN_WINDOW)) if t is not None]
    return median_time(times)


def median_time(times: list[datetime]) -> datetime | None:
    """The middle of *times* (the earlier of the two middles of an even count; None when empty). Pure."""
    if not times:
        return None
    ordered = sorted(times)
    return ordered[(len(ordered) - 1) // 2]


def behind_by(now: datetime, floor: datetime | None) -> timedelta | None:
    """How far *now* is behind *floor*, when more than CLOCK_SLACK (None: the clock may be believed). Pure."""
    if floor is None or floor - now <= CLOCK_SLACK:
        return None
    return floor - now


def archive_now(session: Session) -> tuple[datetime, timedelta | None]:
    """The time to enter or hand off a recording at: the host's clock, or the chain's floor (`chain_floor`) when the
    clock is behind it; with how far behind the clock was (None: it was not)."""
    now = utcnow()
    floor = chain_floor(session)
    lag = behind_by(now, floor)
    return (floor, lag) if floor is not None and lag is not None else (now, None)


def clock_problem(session: Session, now: datetime) -> str | None:
    """Why *now* may not decide what is due (None: it may)."""
    floor = chain_floor(session)
    lag = behind_by(now, floor)
    if lag is None or floor is None:
        return None
    return (f"this host's clock reads {now.isoformat(timespec='seconds')}, {lag} behind the custody chain's recent "
            f"events (their median time {floor.isoformat(timespec='seconds')}): a clock that was set back, or ran "
            "ahead before, cannot say what is due; nothing is disposed until it is right")
