"""A recording's integrity history rows against the verdicts its custody chain records. Pure.

Every later verdict (the decode check, revision 2 on) is an `integrity_checked` event naming its revision, check,
status and detail; the ingest verdict (revision 1) is in the event that made the row, or in an `integrity_checked`
event of revision 1 when it changed. A review rewrote a damaged file's history to "ok / decoded without errors"
and deleted a verdict: `evidence integrity history` showed the forgery and every check passed.
"""
from __future__ import annotations

from collections.abc import Iterable

from catalog.models import IntegrityCheck
from catalog.replay import RecordingReplay

__all__ = ["integrity_findings"]


def integrity_findings(rows: Iterable[IntegrityCheck], replay: RecordingReplay) -> list[str]:
    """How the integrity rows differ from the chain's verdicts: a row no event records (or says otherwise), an
    event whose row is gone."""
    found: list[str] = []
    held = {row.revision: row for row in rows}
    for number, row in sorted(held.items()):
        said = replay.integrity.get(number)
        if said is None:
            if number == 1:
                if replay.first_integrity is not None and row.status != replay.first_integrity:
                    found.append(f"integrity revision 1 ({row.check}) says {row.status!r}, the event that made the "
                                 f"row recorded {replay.first_integrity!r} (changed behind the application's back)")
                continue
            found.append(f"integrity revision {number} ({row.check}, {row.status!r}) has no integrity_checked event "
                         "in the custody chain (added behind the application's back)")
            continue
        event_id, details = said
        for name, value in (("check", row.check), ("status", row.status), ("detail", row.detail)):
            stated = details.get(name)
            if name == "detail" and isinstance(stated, str):
                stated = stated[:2000]
            if name in details and value != stated:
                found.append(f"integrity revision {number}'s {name} is {value!r}, its integrity_checked event "
                             f"{event_id} says {stated!r} (changed behind the application's back)")
    for number, (event_id, details) in sorted(replay.integrity.items()):
        if number not in held and number >= 2:
            found.append(f"the custody chain's integrity_checked event {event_id} records revision {number} "
                         f"({details.get('check')}, {details.get('status')!r}), but the catalogue has no such row "
                         "(deleted behind the application's back)")
    return found
