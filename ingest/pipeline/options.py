"""What the caller of an ingest run chooses (the stamp given at the dock, the actor, store-and-forward), checked
before anything is read, and the callbacks a run reports through."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from catalog import Stamp, StampInvalid, validate_stamp
from catalog.said import say
from ingest.config import Settings

__all__ = ["MAX_CLOCK_OFFSET_S", "AfterCommit", "IngestOptions", "Progress", "validate_options"]

#: The largest device clock correction accepted (a clock off by more is a wrong date, flagged, not corrected).
MAX_CLOCK_OFFSET_S = 100 * 366 * 86400

Progress = Callable[[str, int], None]  # (event, value): "files" total, "bytes" total, "advance" bytes
AfterCommit = Callable[[list[int]], None]  # ids of new recordings now safely in the catalog


@dataclass(frozen=True)
class IngestOptions:
    profile: str | None = None
    officer: str | None = None
    case_number: str | None = None
    purpose: str | None = None
    clock_offset_s: float | None = None
    actor: str = "station"
    defer_archive: bool = False  # leave recordings staged for the archive queue (store-and-forward)
    should_stop: Callable[[], bool] | None = None  # checked between files: a station shutting down
    usb: dict[str, str] | None = None  # the docked volume's USB identity, when the station knows it

    def is_stopping(self) -> bool:
        return self.should_stop is not None and self.should_stop()


def validate_options(options: IngestOptions, settings: Settings) -> None:
    """Raises StampInvalid with every problem of the stamp and clock offset given."""
    problems = validate_stamp(Stamp(case_number=options.case_number, captured_start=None, lat=None, lon=None,
                                    place_source=None, collector=options.officer, purpose=options.purpose,
                                    important=False), case_pattern=settings.case_pattern)
    offset = options.clock_offset_s
    if offset is not None and not (math.isfinite(offset) and abs(offset) <= MAX_CLOCK_OFFSET_S):
        problems.append(say("clock offset {offset} s is not a number of seconds within 100 years", offset=repr(offset)))
    if problems:
        raise StampInvalid(problems)
