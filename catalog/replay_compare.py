"""The catalogue rows held against the custody chain's replay (catalog.replay): where they differ, and what the
retention rules give the facts the chain states. All pure.

`origin_findings` names a row that no `copied`/`document_attached` event made (planted); `row_findings`,
`link_findings` and `case_findings` name every place the catalogue rows differ from the replay; `chain_decision`
applies the retention rules (`catalog.retention.decide_retention`) to the facts the chain states, so a case type
or a capture end edited in the database cannot shorten what the rules give (`chain_findings`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from catalog.case_models import Case, CaseLink
from catalog.errors import PolicyInvalid
from catalog.models import MediaKind, Recording, RecordingState
from catalog.replay import TRACKED_FIELDS, CaseReplay, LinkReplay, RecordingReplay
from catalog.retention import (
    CaseFacts,
    RetentionDecision,
    RetentionPolicy,
    decide_retention,
    pending_case_holds,
    routine_base,
)

__all__ = ["base_time_of", "case_findings", "chain_decision", "chain_findings", "link_findings", "origin_findings",
           "row_findings"]

#: What `row_findings` compares: the tracked fields and the base of routine retention recorded with the row.
_COMPARED = (*TRACKED_FIELDS, "media_kind", "ingested_at", "time_implausible")


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return repr(value)


def base_time_of(*, media_kind: str | None, captured_start: datetime | None, captured_end: datetime | None,
                 archived_at: datetime | None, ingested_at: datetime, time_implausible: bool) -> datetime:
    """What routine retention counts from (catalog.retention_job.base_time, on plain values). Pure."""
    if media_kind == MediaKind.DOCUMENT:
        return ingested_at
    return routine_base(captured_end=captured_end or captured_start, entered_at=archived_at or ingested_at,
                        time_implausible=time_implausible)


def chain_decision(replay: RecordingReplay, cases: Mapping[str, CaseReplay],
                   policy: RetentionPolicy) -> RetentionDecision | None:
    """The retention the rules give the facts the chain states (capture times, cases and their types, the
    retain-until already recorded), or None when the rules cannot be applied (a case type the policy no
    longer knows). When the chain never stated what routine retention counts from, only the cases and the
    recorded retain-until count. Pure."""
    values = replay.values
    ingested = values.get("ingested_at")
    if replay.counts_from is not None:  # a redacted copy: from its original's base, as its `redacted` event says
        base = replay.counts_from
    elif isinstance(ingested, datetime) and "media_kind" in values:
        base = base_time_of(media_kind=values.get("media_kind"), captured_start=values.get("captured_start"),
                            captured_end=values.get("captured_end"), archived_at=values.get("archived_at"),
                            ingested_at=ingested, time_implausible=bool(values.get("time_implausible")))
    else:
        base = datetime(1970, 1, 1, tzinfo=UTC)  # unknown: routine retention names nothing
    facts = []
    for link in replay.linked_now():
        case = cases.get(link.case)
        if case is None or case.case_type is None:
            continue
        facts.append(CaseFacts(number=case.number, case_type=case.case_type, status=case.status,
                               closed_on=case.closed_on))
    pending: tuple[str, ...] = ()
    if replay.stamped and replay.counts_from is None:  # a copy is held only by its own links (retention_job)
        pending = pending_case_holds(case_number=replay.case_number, case_registered=replay.case_number in cases,
                                     ever_linked_to_it=replay.case_number in replay.ever_linked(),
                                     important=replay.important, linked_now=bool(replay.linked_now()))
    current = values.get("retain_until")
    try:
        return decide_retention(base_time=base, current=current if isinstance(current, datetime) else None,
                                cases=facts, policy=policy, pending=pending)
    except (PolicyInvalid, OverflowError, ValueError):
        return None


def row_findings(recording: Recording, replay: RecordingReplay) -> list[str]:
    """Every tracked value of the row that differs from the value the chain last set. Pure."""
    found = []
    for name in _COMPARED:
        if name not in replay.values:
            continue
        chain, row = replay.values[name], getattr(recording, name)
        if name == "legal_hold" or name == "time_implausible":
            chain, row = bool(chain), bool(row)
        if chain == row:
            continue
        event_id, kind = replay.set_by[name]
        why = ""
        if name == "retain_until" and isinstance(chain, datetime) and (row is None or row < chain):
            why = " (earlier than recorded: retention only grows, so the row was edited behind the application's back)"
        elif name == "legal_hold" and chain and not row:
            why = " (a hold lifted without a legal_hold event)"
        elif name == "state" and chain in (RecordingState.ARCHIVED, RecordingState.VERIFIED) \
                and row in (RecordingState.STAGED, RecordingState.DISPOSED):
            why = f" (a row set to {row} is hidden from checks of what the store holds)"
        found.append(f"{name}: the catalogue row says {_show(row)}, the custody chain says {_show(chain)} "
                     f"(event {event_id}, {kind}){why}")
    return found


def origin_findings(recording: Recording, replay: RecordingReplay) -> list[str]:
    """A row that no `copied`, `document_attached` or `redacted` event made (inserted behind the application's back:
    planted evidence), whose hash is not the one that event recorded, or that names another original than the
    `redacted` event (or one when no such event made it). Pure."""
    if replay.origin is None:
        seen = (f"its {replay.events} other event(s) ({', '.join(sorted(replay.kinds))}) do not make a row"
                if replay.events else "it has no custody event at all")
        return [f"no custody event created this row: the custody chain has no `copied` (ingest) or "
                f"`document_attached` event for recording {recording.id} ({seen}); the row was inserted behind the "
                "application's back and nothing vouches for its bytes or facts"]
    event_id, kind, sha = replay.origin
    if sha is not None and sha != recording.sha256:
        return [f"sha256: the catalogue row says {recording.sha256}, the custody event that created it (event "
                f"{event_id}, {kind}) says {sha} (the row was edited behind the application's back)"]
    if recording.redacted_from_id != replay.redacted_from:
        return [f"redacted_from_id: the catalogue row says {recording.redacted_from_id}, the custody event that "
                f"created it (event {event_id}, {kind}) says {replay.redacted_from} (the row was edited behind the "
                "application's back: a redacted copy passed off as another's, or an original as a copy)"]
    return []


def link_findings(replay: RecordingReplay, rows: Iterable[tuple[str, CaseLink]]) -> list[str]:
    """Case links in the catalogue that the chain's case_linked/case_unlinked events do not account for (and the
    reverse). *rows*: (case number, link row) of every link row of the recording. Pure."""
    chain: dict[str, list[LinkReplay]] = defaultdict(list)
    for link in replay.links:
        chain[link.case].append(link)
    table: dict[str, list[CaseLink]] = defaultdict(list)
    for number, row in rows:
        table[number].append(row)
    found = []
    for number in sorted(set(chain) | set(table)):
        said, held = chain.get(number, []), table.get(number, [])
        said_active = sorted(link.purpose for link in said if link.active)
        held_active = sorted(row.purpose for row in held if row.unlinked_at is None)
        if len(said) != len(held) or said_active != held_active:
            found.append(f"case {number}: the catalogue has {len(held)} link row(s), {len(held_active)} active "
                         f"{held_active}; the custody chain has {len(said)} case_linked event(s), "
                         f"{len(said_active)} still active {said_active} (a link added, removed or ended behind the "
                         "application's back)")
    return found


def case_findings(chain: Mapping[str, CaseReplay], rows: Iterable[Case],
                  numbers: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(case number, what differs) for every case row that differs from the chain's case events, every case the
    chain opened that has no row and every row the chain never opened; *numbers* limits it to those cases.
    Pure."""
    wanted = None if numbers is None else set(numbers)
    table = {row.number: row for row in rows}
    found: list[tuple[str, str]] = []
    for number in sorted(set(chain) | set(table)):
        if wanted is not None and number not in wanted:
            continue
        said, row = chain.get(number), table.get(number)
        if row is None:
            assert said is not None
            found.append((number, f"the custody chain opened it (event {said.event_id}) but the catalogue has no "
                                  "case row (deleted behind the application's back)"))
            continue
        if said is None or said.event_id == 0:
            found.append((number, "the catalogue has a case row that no case_opened event in the custody chain "
                                  "accounts for (added behind the application's back)"))
            continue
        for name, held, stated in (("case_type", row.case_type, said.case_type), ("status", row.status, said.status),
                                   ("opened_on", row.opened_on, said.opened_on),
                                   ("closed_on", row.closed_on, said.closed_on),
                                   ("title", row.title, said.title), ("unit", row.unit, said.unit),
                                   ("created_by", row.created_by, said.created_by),
                                   ("closed_by", row.closed_by, said.closed_by),
                                   ("sensitivity", row.sensitivity, said.sensitivity)):
            if name in ("opened_on", "title", "unit", "created_by") and stated is None:
                continue  # older events did not say
            if held != stated:
                found.append((number, f"{name}: the case row says {held!r}, the custody chain says {stated!r} "
                                      "(changed behind the application's back; retention follows the chain)"))
    return found


def chain_findings(recording: Recording, replay: RecordingReplay, cases: Mapping[str, CaseReplay],
                   policy: RetentionPolicy) -> list[str]:
    """Where the row is behind what the rules give the chain's facts (a longer retain-until, a hold). Pure."""
    decision = chain_decision(replay, cases, policy)
    if decision is None:
        return []
    found = []
    if recording.retain_until is None or recording.retain_until < decision.retain_until:
        found.append(f"retain_until: the catalogue row says {_show(recording.retain_until)}, the rules applied to "
                     f"the custody chain give at least {_show(decision.retain_until)} ({decision.rule}); "
                     "`evidence retention apply` brings it in line")
    if decision.legal_hold and not recording.legal_hold:
        found.append("legal_hold: the catalogue row has none, the rules applied to the custody chain hold it ("
                     + "; ".join(decision.hold_reasons) + "); `evidence retention apply` brings it in line")
    return found
