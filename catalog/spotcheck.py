"""双随机 spot checks: a reproducible random sample of recordings, and the reviewer's outcome for each.

`draw` is pure: the same population and seed always give the same sample, so an auditor can redraw a
past check from its recorded criteria and seed and confirm nobody picked the recordings by hand. A check is
opened and reviewed only by someone whose scope covers every recording in it (a supervisor of other units is
refused, and the refusal is an `access_refused` custody event).
"""
from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, select

from catalog.access import Scope, out_of_scope, scope_clause
from catalog.custody import CustodyKind, append_event
from catalog.db import begin_write, by_id
from catalog.errors import CatalogError
from catalog.models import DerivedMedia, Officer, Recording, RecordingState, SpotCheck, SpotCheckItem
from catalog.said import listed, say
from catalog.spotcheck_team import draw_names, eligible_pool, reviewer_seed

__all__ = [
    "ENFORCEMENT_KINDS",
    "FINDINGS",
    "OUTCOMES",
    "UNREADABLE",
    "SpotCheckCriteria",
    "SpotCheckError",
    "SpotCheckNotFound",
    "SpotCheckRefused",
    "derived_kinds",
    "draw",
    "draw_from_catalogue",
    "draw_positions",
    "may_review",
    "new_spot_check",
    "open_spot_check",
    "population",
    "record_outcome",
    "require_reviewer",
    "spot_checks_in_scope",
    "spot_checks_signed",
]

OUTCOMES = ("compliant", "issue")  # what a reviewer records
UNREADABLE = "unreadable"  # set by the draw for a file that is not media at all: a finding, not footage to review
FINDINGS = ("issue", UNREADABLE)
#: What a spot check draws from: enforcement recordings, never a text record, a redacted copy or a device's
#: housekeeping file (they are not what an officer recorded).
ENFORCEMENT_KINDS = ("video", "audio", "photo")
MAX_SAMPLE = 500
MAX_REVIEWERS = 20
#: A named pool holds at least this many times the reviewers drawn from it: a draw from exactly the people named
#: would let the one who draws choose the reviewers (found by a review).
POOL_FACTOR = 2
MAX_SEED = 64


class SpotCheckError(CatalogError):
    """A spot check cannot be drawn or reviewed as asked."""


@dataclass(frozen=True)
class SpotCheckCriteria:
    unit: str | None = None  # officer's unit number or name
    officer: str | None = None  # officer number
    kind: str | None = None
    start: datetime | None = None  # captured at or after
    end: datetime | None = None  # captured before

    def as_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "officer": self.officer, "kind": self.kind,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}


def draw(population_ids: list[int], size: int, seed: str) -> list[int]:
    """The sample: *size* ids from the sorted population, chosen by a generator seeded with SHA-256(seed)."""
    ordered = sorted(set(population_ids))
    return [ordered[p] for p in draw_positions(len(ordered), size, seed)]


def draw_positions(population_size: int, size: int, seed: str) -> list[int]:
    """The positions (in id order) `draw` picks: the same generator, so `draw(ids)` equals the ids at these."""
    rng = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big"))
    return sorted(rng.sample(range(population_size), min(size, population_size)))


def _population_query(criteria: SpotCheckCriteria) -> Any:
    query = select(Recording.id).where(col(Recording.state).in_((RecordingState.ARCHIVED.value,
                                                                   RecordingState.VERIFIED.value)),
                                       col(Recording.media_kind).in_(ENFORCEMENT_KINDS),
                                       col(Recording.redacted_from_id).is_(None),
                                       col(Recording.belongs_to_id).is_(None))
    if criteria.officer:
        query = query.where(Recording.officer_number == criteria.officer)
    if criteria.kind:
        query = query.where(Recording.media_kind == criteria.kind)
    if criteria.start:
        query = query.where(col(Recording.captured_start) >= criteria.start)
    if criteria.end:
        query = query.where(col(Recording.captured_start) < criteria.end)
    if criteria.unit:
        units = select(Officer.number).where((Officer.unit_number == criteria.unit)
                                             | (Officer.unit_name == criteria.unit))
        query = query.where(col(Recording.officer_number).in_(units))
    return query


def population(session: Session, criteria: SpotCheckCriteria) -> list[int]:
    """Every recording id the criteria select (what an auditor redraws from)."""
    return [rid for rid in session.exec(_population_query(criteria)) if rid is not None]


def draw_from_catalogue(session: Session, criteria: SpotCheckCriteria, size: int, seed: str) -> tuple[int, list[int]]:
    """(population size, sample), equal to `draw(population(...), size, seed)` without loading every id: the
    database counts, the seeded generator picks positions, and a server-side cursor over the population in id
    order skips to each position (PostgreSQL; SQLite reads the ids)."""
    query = _population_query(criteria).order_by(col(Recording.id))
    if session.get_bind().dialect.name != "postgresql":
        ids = population(session, criteria)
        return len(ids), draw(ids, size, seed)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    positions = draw_positions(total, size, seed)
    if not positions:
        return total, []
    compiled = query.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    import psycopg

    raw = cast(psycopg.Connection[Any], session.connection().connection.dbapi_connection)
    chosen: list[int] = []
    with raw.cursor(name=f"spot_check_{secrets.token_hex(4)}") as cursor:
        cursor.execute(str(compiled), compiled.params)
        at = 0
        for position in positions:
            if position > at:
                cursor.scroll(position - at)
            row = cursor.fetchone()
            assert row is not None
            chosen.append(int(row[0]))
            at = position + 1
    return total, chosen


def new_spot_check(session: Session, criteria: SpotCheckCriteria, size: int, *, by: str, now: datetime,
                   seed: str | None = None, reviewers: int = 1, pool: Sequence[str] = ()) -> SpotCheck:
    """Draw *size* enforcement recordings matching *criteria* and, with *reviewers*, that many reviewers from
    *pool* (catalog.spotcheck_team: the named people, or everyone who may review; never *by*); both draws and
    their seeds are the `spot_check_drawn` event. A drawn file that is not media at all (integrity unreadable)
    is recorded as a finding at once, not handed to a reviewer as footage. *seed*: the server draws one unless a
    caller redraws a recorded check (the web never takes one typed: a chosen seed chooses the sample, found by a
    review). Committed."""
    if not 1 <= size <= MAX_SAMPLE:
        raise SpotCheckError(say("a spot check draws 1 to {max} recordings, not {size}", max=MAX_SAMPLE, size=size))
    if not 1 <= reviewers <= MAX_REVIEWERS:
        raise SpotCheckError(say("a spot check draws 1 to {max} reviewers (双随机: never the one who draws), not "
                                 "{reviewers}", max=MAX_REVIEWERS, reviewers=reviewers))
    if seed is not None and not 0 < len(seed) <= MAX_SEED:
        raise SpotCheckError(say("a seed is 1 to {max} characters, not {n}", max=MAX_SEED, n=len(seed)))
    if criteria.kind is not None and criteria.kind not in ENFORCEMENT_KINDS:
        raise SpotCheckError(say("a spot check draws enforcement recordings ({kinds}), not {kind}",
                                 kinds=listed(say(k) for k in ENFORCEMENT_KINDS), kind=repr(criteria.kind)))
    seed = seed or secrets.token_hex(16)
    total, chosen = draw_from_catalogue(session, criteria, size, seed)
    if not chosen:
        raise SpotCheckError(say("no archived enforcement recording matches {criteria}", criteria=criteria.as_json()))
    eligible = eligible_pool(session, pool, drawer=by, recording_ids=chosen, error=SpotCheckError)
    if len(eligible) < reviewers:
        raise SpotCheckError(say("{reviewers} reviewer(s) asked for, but the pool holds {n} who may review this "
                                 "sample ({names}; never the one who draws, nor who recorded any of it or may not "
                                 "play all of it)", reviewers=reviewers, n=len(eligible),
                                 names=listed(eligible) if eligible else say("nobody")))
    if any(name.strip() for name in pool) and len(eligible) < POOL_FACTOR * reviewers:
        raise SpotCheckError(say("a pool named for the draw holds at least {factor} × the reviewers drawn ({least} "
                                 "for {reviewers}), so that the draw, not the one who names it, chooses them; it "
                                 "holds {n}", factor=POOL_FACTOR, least=POOL_FACTOR * reviewers, reviewers=reviewers,
                                 n=len(eligible)))
    team = draw_names(eligible, reviewers, reviewer_seed(seed))
    check = SpotCheck(created_by=by, created_at=now, seed=seed, criteria=criteria.as_json(), population=total,
                      sample_size=len(chosen), reviewer_pool=eligible, reviewers=team)
    session.add(check)
    session.flush()
    assert check.id is not None
    unreadable = {r.id: r.integrity_detail for r in session.exec(select(Recording).where(
        col(Recording.id).in_(chosen), Recording.integrity_status == UNREADABLE))}
    session.add_all(SpotCheckItem(check_id=check.id, recording_id=rid, outcome=UNREADABLE,
                                  notes=(unreadable[rid] or "not media at all")[:2000], reviewed_by=f"draw:{by}",
                                  reviewed_at=now) if rid in unreadable else
                    SpotCheckItem(check_id=check.id, recording_id=rid) for rid in chosen)
    append_event(session, CustodyKind.SPOT_CHECK_DRAWN, actor=by, details={
        "check": check.id, "criteria": check.criteria, "seed": seed, "population": total, "recordings": chosen,
        "reviewer_pool": eligible, "reviewer_seed": reviewer_seed(seed), "reviewers": team,
        "unreadable": sorted(unreadable)})
    session.commit()
    return check


def may_review(check: SpotCheck, who: str) -> bool:
    """Whether *who* records outcomes on *check* and signs it off: one of its drawn reviewers; for a check drawn
    before reviewers were (none recorded), anyone in scope but the one who drew it. Pure."""
    return who in check.reviewers if check.reviewers else who != check.created_by


def require_reviewer(session: Session, check: SpotCheck, by: str, verb: Literal["review", "sign off"]) -> None:
    """SpotCheckRefused, recorded as `access_refused` (committed), unless *by* may review *check* (may_review):
    *verb* it is what they asked to do ("review", "sign off")."""
    if may_review(check, by):
        return
    append_event(session, CustodyKind.ACCESS_REFUSED, actor=by, details={
        "action": f"{verb} spot check", "check": check.id, "why": "not a drawn reviewer",
        "reviewers": check.reviewers})
    session.commit()
    reviewers = listed(check.reviewers) if check.reviewers else say("anyone but {person}", person=check.created_by)
    if verb == "sign off":
        raise SpotCheckRefused(say("spot check {check} is for its drawn reviewers to sign off ({reviewers}); {by} is "
                                   "not one of them", check=check.id, reviewers=reviewers, by=by))
    raise SpotCheckRefused(say("spot check {check} is for its drawn reviewers to review ({reviewers}); {by} is not "
                               "one of them", check=check.id, reviewers=reviewers, by=by))


class SpotCheckNotFound(SpotCheckError):
    """No such spot check, or no such item in it."""


class SpotCheckRefused(SpotCheckError):
    """The caller's scope does not cover the spot check (a supervisor of other units)."""


def _refuse_outside(session: Session, check: SpotCheck, scope: Scope, *, by: str,
                    verb: Literal["open", "review"]) -> None:
    """SpotCheckRefused (recorded as an `access_refused` custody event) unless every recording of *check* is in
    *scope*: a check of other units is neither opened nor reviewed by a supervisor limited to theirs."""
    ids = [rid for rid in session.exec(select(SpotCheckItem.recording_id).where(SpotCheckItem.check_id == check.id))]
    outside = out_of_scope(session, scope, ids)
    if not outside:
        return
    unit = check.criteria.get("unit") or "the whole archive"
    append_event(session, CustodyKind.ACCESS_REFUSED, actor=by, details={
        "action": f"{verb} spot check", "check": check.id, "check_unit": unit, "scope": scope.describe(),
        "outside": len(outside)})
    session.commit()
    values = {"check": check.id, "unit": check.criteria.get("unit") or say("the whole archive"), "by": by,
              "n": len(outside), "total": len(ids), "scope": scope.describe()}
    if verb == "open":
        raise SpotCheckRefused(say("spot check {check} (drawn from {unit}) is outside what {by} may open: {n} of its "
                                   "{total} recordings lie outside {scope}", **values))
    raise SpotCheckRefused(say("spot check {check} (drawn from {unit}) is outside what {by} may review: {n} of its "
                               "{total} recordings lie outside {scope}", **values))


def open_spot_check(session: Session, check_id: int, *, scope: Scope,
                    by: str) -> tuple[SpotCheck, list[tuple[SpotCheckItem, Recording]]]:
    """The check and its (item, recording) rows if *scope* covers all of it; SpotCheckError if there is none,
    SpotCheckRefused (recorded) if it lies outside the caller's scope."""
    check = by_id(session, SpotCheck, check_id)
    if check is None:
        raise SpotCheckNotFound(say("no spot check {check}", check=check_id))
    _refuse_outside(session, check, scope, by=by, verb="open")
    rows = session.exec(select(SpotCheckItem, Recording).where(SpotCheckItem.check_id == check_id,
                                                               SpotCheckItem.recording_id == Recording.id)
                        .order_by(col(SpotCheckItem.id)))
    return check, [(item, recording) for item, recording in rows]


def derived_kinds(session: Session, recording_ids: list[int], kind: str) -> set[int]:
    """Which of *recording_ids* have a derived file of *kind* (a browser proxy, a thumbnail)."""
    return set(session.exec(select(DerivedMedia.recording_id).where(DerivedMedia.kind == kind,
                                                                    col(DerivedMedia.recording_id).in_(recording_ids))))


def spot_checks_in_scope(session: Session, scope: Scope, *, limit: int = 100) -> list[SpotCheck]:
    """The latest checks whose every recording lies in *scope* (a supervisor of other units does not see theirs)."""
    query = _wholly(select(SpotCheck).order_by(col(SpotCheck.id).desc()), scope_clause(scope))
    return list(session.exec(query.limit(limit)))


def _wholly(query: Any, clause: ColumnElement[bool] | None) -> Any:
    """*query* of checks, kept to those whose every recording meets *clause* (None: all)."""
    if clause is None:
        return query
    outside = select(SpotCheckItem.check_id).join(Recording, col(Recording.id) == SpotCheckItem.recording_id) \
        .where(~clause)
    return query.where(col(SpotCheck.id).not_in(outside))


def spot_checks_signed(session: Session, scope: Scope, start: datetime, end: datetime, *,
                       within: ColumnElement[bool] | None = None) -> list[SpotCheck]:
    """The checks signed off in [*start*, *end*) whose every recording lies in *scope* (and meets *within*, e.g.
    a unit's officers), oldest first: a report's spot checks."""
    query = select(SpotCheck).where(col(SpotCheck.signed_off_at) >= start, col(SpotCheck.signed_off_at) < end)
    query = _wholly(_wholly(query, scope_clause(scope)), within)
    return list(session.exec(query.order_by(col(SpotCheck.id))))


def record_outcome(session: Session, item_id: int, *, outcome: str, notes: str, by: str, now: datetime,
                   scope: Scope, check_id: int | None = None) -> SpotCheckItem:
    """Record the reviewer's outcome for one item; refused (SpotCheckRefused, recorded) when the check (*check_id*,
    else the item's) lies outside *scope* — decided before anything is said of its items —, and SpotCheckNotFound
    when there is no such check, or the item is not part of it."""
    if outcome not in OUTCOMES:
        raise SpotCheckError(say("outcome must be one of {outcomes}, not {outcome}",
                                 outcomes=listed(say(o) for o in OUTCOMES), outcome=repr(outcome)))
    if outcome == "issue" and not notes.strip():
        raise SpotCheckError(say("describe the issue found"))
    item = by_id(session, SpotCheckItem, item_id)
    # The scope is checked on the check asked for before saying anything of its items: an answer "no item X in
    # spot check Y" to a caller outside Y would tell which items Y holds.
    check = by_id(session, SpotCheck, item.check_id if check_id is None and item is not None else check_id)
    if check is None:
        raise SpotCheckNotFound(say("no spot check {check}", check=check_id) if check_id is not None else
                                say("no spot-check item {item}", item=item_id))
    begin_write(session)  # a sign-off in another transaction waits, or is seen: never an outcome after it
    session.refresh(check)
    _refuse_outside(session, check, scope, by=by, verb="review")
    if item is None or item.check_id != check.id:  # said only to someone who may open the check
        raise SpotCheckNotFound(say("no item {item} in spot check {check}", item=item_id, check=check.id))
    session.refresh(item)
    require_reviewer(session, check, by, "review")
    if check.signed_off_at is not None:
        raise SpotCheckError(say("spot check {check} was signed off by {person}; its outcomes are final",
                                 check=check.id, person=check.signed_off_by))
    if item.outcome == UNREADABLE:
        raise SpotCheckError(say("item {item} (recording {recording}) is not media at all: it is counted as a "
                                 "finding, not reviewed as footage", item=item.id, recording=item.recording_id))
    item.outcome, item.notes, item.reviewed_by, item.reviewed_at = outcome, notes.strip(), by, now
    session.add(item)
    append_event(session, CustodyKind.REVIEWED, actor=by, recording_id=item.recording_id, at=now, details={
        "check": item.check_id, "outcome": outcome, "notes": item.notes})
    session.commit()
    return item
