"""A recording's catalogue row and case links held against the custody chain's replay of them.

Verify and disposal ask the same question of one recording (did a custody
event create this row, does the row say what the chain last set, do its
case links match the case_linked/case_unlinked events, which cases does it
serve): this module asks it once. Each finding carries the kind of problem it
is; verify turns them into problems, disposal into reasons to refuse.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from catalog.case_models import CaseLink
from catalog.models import Recording
from catalog.replay import RecordingReplay, load_link_rows, load_replays
from catalog.replay_compare import link_findings, origin_findings, row_findings

__all__ = ["RecordingChain", "chain_differences", "linked_cases", "load_recording_chain"]

#: Row values whose difference from the chain is about retention (the rest are about the catalogue).
_RETENTION_VALUES = ("retain_until", "legal_hold")


@dataclass(frozen=True)
class RecordingChain:
    """What the custody chain says about one recording, read together."""

    replay: RecordingReplay
    links: list[tuple[str, CaseLink]]  # (case number, link row) of every link row, active or ended
    broken: list[str]  # events that no longer match their hash (only read with check_hashes)


def load_recording_chain(session: Session, recording_id: int, *, check_hashes: bool = False) -> RecordingChain:
    """The replay of one recording's custody events (read first), then its case link rows."""
    replays, broken = load_replays(session, [recording_id], check_hashes=check_hashes)
    return RecordingChain(replays[recording_id], load_link_rows(session, [recording_id])[recording_id], broken)


def chain_differences(recording: Recording, replay: RecordingReplay,
                      links: list[tuple[str, CaseLink]]) -> list[tuple[str, str]]:
    """(kind, text) for every way the row and its case links differ from the chain, in this order: no event
    created the row (or not with this hash), a row value the chain set differently, a case link the chain does not
    account for. Kind: `catalog`, `retention` (retain_until, legal_hold) or `case`. Pure."""
    found = [("catalog", text) for text in origin_findings(recording, replay)]
    found += [("retention" if text.startswith(_RETENTION_VALUES) else "catalog", text)
              for text in row_findings(recording, replay)]
    found += [("case", text) for text in link_findings(replay, links)]
    return found


def linked_cases(replay: RecordingReplay, links: list[tuple[str, CaseLink]]) -> set[str]:
    """The case numbers the recording was ever linked to, by the chain or by a link row. Pure."""
    return {link.case for link in replay.links} | {number for number, _link in links}
