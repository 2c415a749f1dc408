"""Changing a recording's or a case's sensitivity class, and the grants that open classed recordings to a person
(the rules: catalog.sensitivity). One function per act; the command line and the web app call these.

Each change is a custody event: `classified` on the recording (its new class in the event's `row`, so verify and
export find a row edited behind the application's back, catalog.replay) or naming the case, and
`access_granted` / `access_revoked` naming the case and the person. A class is changed only with a reason;
lowering one needs a supervisor or an administrator, as does granting access.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import reduce

from sqlmodel import Session, col, or_, select

from catalog.case_models import Case, CaseGrant, CaseLink
from catalog.custody import CustodyKind, append_event
from catalog.errors import CaseStateError, PermissionDenied
from catalog.models import CustodyEvent, Recording
from catalog.recordings import redacted_copies
from catalog.replay import ROW_KEY
from catalog.said import Said, listed, say
from catalog.sensitivity import CLASSES, DEFAULT, RANK, Holder, class_problem, higher, label
from catalog.types import utcnow
from catalog.user_models import User

__all__ = ["LOWERING_ROLES", "case_grants", "case_numbers", "chain_grants", "class_refusals", "classify_case",
           "classify_recordings", "grant_case_access", "grant_findings", "granted_recording_ids", "live_grants",
           "raise_to_case_class", "revoke_case_access"]

#: Who may lower a class (raising it is any `classify` role's).
LOWERING_ROLES = frozenset({"supervisor", "admin"})
_MAX_REASON = 500


def _need_reason(reason: str, what: Said) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise CaseStateError(say("{what} needs a reason; it is recorded with the change", what=what))
    if len(reason) > _MAX_REASON:
        raise CaseStateError(say("the reason is {n} characters long; state it in at most {max}", n=len(reason),
                                 max=_MAX_REASON))
    return reason


def _check_class(to: str) -> None:
    if to not in CLASSES:
        raise CaseStateError(say("{to!r} is no sensitivity class; choose one of {classes}", to=to,
                                 classes=", ".join(CLASSES)))


def _roles(roles: Iterable[str]) -> Said:
    """*roles* as a refusal lists them (each a word a page says in its reader's language)."""
    return listed([say(role) for role in roles])


def _either(roles: Iterable[str]) -> Said:
    """"supervisor or admin": *roles* (at least one), each said in the reader's language."""
    return reduce(lambda first, second: say("{first} or {second}", first=first, second=second),
                  [say(role) for role in sorted(roles)])


def _lowers(old: str, new: str) -> bool:
    return RANK[new] < RANK.get(old, RANK[DEFAULT])


def _may_lower(user: User, what: Said, old: str, new: str) -> None:
    if _lowers(old, new) and not LOWERING_ROLES & set(user.roles):
        raise PermissionDenied(say("user {name!r} (roles: {roles}) may not lower {what} from {old} ({old_zh}) to "
                                   "{new} ({new_zh}): that needs one of {allowed}", name=user.name,
                                   roles=_roles(user.roles), what=what, old=label(old, "en"), old_zh=label(old),
                                   new=label(new, "en"), new_zh=label(new), allowed=_roles(sorted(LOWERING_ROLES))))


def _set_recording_class(session: Session, recording: Recording, to: str, *, by: str, reason: str,
                         case: str | None = None) -> None:
    old = recording.sensitivity
    recording.sensitivity = to
    session.add(recording)
    details = {"from": old, "to": to, "reason": reason, "sha256": recording.sha256, ROW_KEY: {"sensitivity": to}}
    if case is not None:
        details["case"] = case
    append_event(session, CustodyKind.CLASSIFIED, actor=by, recording_id=recording.id, details=details)


def classify_recordings(session: Session, user: User, recordings: Sequence[Recording], *, to: str,
                        reason: str) -> list[int]:
    """Give each of *recordings* class *to* (one `classified` event each; those already of it are left alone).
    Returns the ids changed. The caller commits. PermissionDenied when *user* may not lower one of them (nothing
    changed); CaseStateError for an unknown class or a missing reason."""
    _check_class(to)
    reason = _need_reason(reason, say("changing a sensitivity class"))
    for recording in recordings:
        _may_lower(user, say("recording {recording}", recording=recording.id), recording.sensitivity, to)
    lowered = [r for r in recordings if _lowers(r.sensitivity, to)]
    closed = class_refusals(session, user, lowered, "play")
    if closed:
        # Lowering a class opens what it closed: only someone it opens to already may (a supervisor refused a state
        # secret lowered it to public and read it, found by a review)
        raise PermissionDenied(listed([say("user {name!r} may not lower recording {recording}: {why}", name=user.name,
                                           recording=rid, why=why) for rid, why in closed], sep="; "))
    changed = []
    for recording in recordings:
        if recording.sensitivity != to:
            raised = RANK[to] > RANK.get(recording.sensitivity, RANK[DEFAULT])
            _set_recording_class(session, recording, to, by=user.name, reason=reason)
            changed.append(recording.id)
            if raised and recording.id is not None:
                _raise_copies(session, recording.id, to, by=user.name, reason=reason)
    return [i for i in changed if i is not None]


def _raise_copies(session: Session, original_id: int, to: str, *, by: str, reason: str) -> None:
    """An original raised raises its redacted copies below *to* (they show the same moment; a copy is lowered on its
    own, once it is fit to publish). Each is a `classified` event of its own."""
    for copy in redacted_copies(session, original_id):
        if RANK.get(copy.sensitivity, RANK[DEFAULT]) < RANK[to]:
            _set_recording_class(session, copy, to, by=by,
                                 reason=f"{reason} (its original, recording {original_id}, was raised)"[:500])


def _linked_recordings(session: Session, case: Case) -> list[Recording]:
    return list(session.exec(select(Recording).join(CaseLink, col(CaseLink.recording_id) == col(Recording.id))
                             .where(CaseLink.case_id == case.id, col(CaseLink.unlinked_at).is_(None))
                             .order_by(col(Recording.id))))


def _whole_case_in_scope(session: Session, user: User, case: Case, act: Said) -> None:
    """PermissionDenied unless every recording *case* holds now lies in *user*'s scope: a unit's supervisor
    granted an agency-wide clerk a case holding another unit's state secret (found by a review)."""
    from catalog.access import out_of_scope, user_scope  # access imports this module

    outside = out_of_scope(session, user_scope(user), [r.id for r in _linked_recordings(session, case)
                                                       if r.id is not None])
    if outside:
        raise PermissionDenied(say("user {name!r} may not {act} case {case}: it holds recording(s) {recordings} "
                                   "outside what they may see ({scope}); an agency-wide supervisor or administrator "
                                   "does it", name=user.name, act=act, case=case.number,
                                   recordings=", ".join(map(str, outside)), scope=user_scope(user).describe()))


def classify_case(session: Session, user: User, case: Case, *, to: str, reason: str) -> list[int]:
    """Give *case* class *to* (a `classified` event naming it) and raise each recording it holds now whose class is
    lower to *to*, when *to* is one that asks for more than role and scope (one event each, naming the case).
    Lowering a case lowers no recording. Returns the ids of the recordings raised. The caller commits."""
    _check_class(to)
    reason = _need_reason(reason, say("changing a sensitivity class"))
    _may_lower(user, say("case {case}", case=case.number), case.sensitivity, to)
    _whole_case_in_scope(session, user, case, say("classify"))
    raised: list[int] = []
    if case.sensitivity != to:
        old = case.sensitivity
        case.sensitivity = to
        session.add(case)
        append_event(session, CustodyKind.CLASSIFIED, actor=user.name,
                     details={"case": case.number, "from": old, "to": to, "reason": reason})
    for recording in _linked_recordings(session, case) if RANK[to] > RANK[DEFAULT] else []:
        if higher(recording.sensitivity, to) != recording.sensitivity:
            _set_recording_class(session, recording, to, by=user.name, case=case.number,
                                 reason=f"case {case.number} is {label(to, 'en')} ({label(to)}): {reason}")
            raised.append(recording.id)  # type: ignore[arg-type]
    return raised


def raise_to_case_class(session: Session, case: Case, recording: Recording, *, by: str) -> bool:
    """On linking: raise *recording* to *case*'s class where it is lower and the case's class asks for more than
    role and scope (a public recording stays public in an ordinary, internal case); an event naming the case. True
    if raised. The caller commits."""
    if RANK[case.sensitivity] <= RANK[DEFAULT] or higher(recording.sensitivity, case.sensitivity) == \
            recording.sensitivity:
        return False
    _set_recording_class(session, recording, case.sensitivity, by=by, case=case.number,
                         reason=f"linked to case {case.number}, which is {label(case.sensitivity, 'en')} "
                                f"({label(case.sensitivity)})")
    return True


def _may_grant(user: User, case: Case, act: Said) -> None:
    if not LOWERING_ROLES & set(user.roles):
        raise PermissionDenied(say("user {name!r} (roles: {roles}) may not {act} case {case}: that needs one of "
                                   "{allowed}", name=user.name, roles=_roles(user.roles), act=act, case=case.number,
                                   allowed=_roles(sorted(LOWERING_ROLES))))


def grant_case_access(session: Session, user: User, case: Case, *, to_user: str, reason: str,
                      expires_at: datetime | None = None) -> CaseGrant:
    """Open the classed recordings *case* holds to *to_user* (their role and scope still apply), until
    *expires_at* or until revoked; an `access_granted` event. The caller commits."""
    _may_grant(user, case, say("grant access to"))
    assert case.id is not None
    reason = _need_reason(reason, say("a grant"))
    if to_user == user.name:
        raise PermissionDenied(say("user {name!r} may not grant themselves access to case {case}: another {roles} does "
                                   "it", name=user.name, case=case.number, roles=_either(LOWERING_ROLES)))
    grantee = session.exec(select(User).where(User.name == to_user)).first()
    if grantee is None or not grantee.active:
        raise CaseStateError(say("{name!r} is not an active user of this archive; a grant names one", name=to_user))
    _whole_case_in_scope(session, user, case, say("grant access to"))
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise CaseStateError(say("the grant would expire at {when}, which is not in the future",
                                 when=expires_at.isoformat()))
    grant = CaseGrant(case_id=case.id, user_name=to_user, granted_by=user.name, granted_at=now, reason=reason,
                      expires_at=expires_at)
    session.add(grant)
    session.flush()
    append_event(session, CustodyKind.ACCESS_GRANTED, actor=user.name, details={
        "case": case.number, "user": to_user, "reason": reason, "grant": grant.id,
        "expires_at": expires_at.astimezone(UTC).isoformat() if expires_at else None})
    return grant


def revoke_case_access(session: Session, user: User, case: Case, *, to_user: str, reason: str) -> list[int]:
    """End every live grant of *to_user* on *case* (rows kept); an `access_revoked` event each. Returns the grant
    ids ended. The caller commits."""
    _may_grant(user, case, say("revoke access to"))
    reason = _need_reason(reason, say("revoking a grant"))
    now = utcnow()
    ended = []
    for grant in live_grants(session, to_user, case_ids=[case.id] if case.id is not None else [], now=now):
        grant.revoked_by, grant.revoked_at, grant.revoke_reason = user.name, now, reason
        session.add(grant)
        append_event(session, CustodyKind.ACCESS_REVOKED, actor=user.name, details={
            "case": case.number, "user": to_user, "reason": reason, "grant": grant.id})
        ended.append(grant.id)
    if not ended:
        raise CaseStateError(say("{name!r} holds no grant on case {case}", name=to_user, case=case.number))
    return [i for i in ended if i is not None]


def live_grants(session: Session, user_name: str, *, case_ids: Iterable[int] | None = None,
                now: datetime | None = None) -> list[CaseGrant]:
    """*user_name*'s grants neither revoked nor expired (on *case_ids* only, when given), each as the custody chain
    gave it: a row no `access_granted` event accounts for, or one revoked by an event or changed since, opens
    nothing (grant_findings names it)."""
    now = now or utcnow()
    query = select(CaseGrant).where(CaseGrant.user_name == user_name, col(CaseGrant.revoked_at).is_(None),
                                    or_(col(CaseGrant.expires_at).is_(None), col(CaseGrant.expires_at) > now))
    if case_ids is not None:
        query = query.where(col(CaseGrant.case_id).in_(list(case_ids)))
    rows = list(session.exec(query.order_by(col(CaseGrant.id))))
    if not rows:
        return rows
    said = chain_grants(session)
    numbers = case_numbers(session, {g.case_id for g in rows})
    return [g for g in rows if not _grant_differences(g, said.get(g.id or 0), numbers.get(g.case_id))]


def case_numbers(session: Session, case_ids: Iterable[int]) -> dict[int, str]:
    """Case id -> number, in one query."""
    wanted = sorted(set(case_ids))
    if not wanted:
        return {}
    return {int(i or 0): str(n) for i, n in session.exec(select(Case.id, Case.number).where(col(Case.id).in_(wanted)))}


def chain_grants(session: Session) -> dict[int, dict[str, object]]:
    """Every grant as the custody chain says it (grant id -> case, user, expires_at, revoked), from the
    `access_granted` and `access_revoked` events (few: read whole, through the kind index)."""
    events = session.exec(select(CustodyEvent).where(col(CustodyEvent.kind).in_(
        [CustodyKind.ACCESS_GRANTED.value, CustodyKind.ACCESS_REVOKED.value])).order_by(col(CustodyEvent.id)))
    said: dict[int, dict[str, object]] = {}
    for event in events:
        details = event.details or {}
        grant = details.get("grant")
        if not isinstance(grant, int):
            continue
        if event.kind == CustodyKind.ACCESS_GRANTED:
            said[grant] = {"case": details.get("case"), "user": details.get("user"),
                           "expires_at": details.get("expires_at"), "revoked": False, "event": event.id}
        elif grant in said:
            said[grant]["revoked"] = True
    return said


def _grant_differences(grant: CaseGrant, said: dict[str, object] | None, number: str | None) -> list[str]:
    if said is None:
        return ["no access_granted event in the custody chain accounts for it (added behind the application's back)"]
    found = []
    for name, row, chain in (("case", number, said["case"]), ("user", grant.user_name, said["user"]),
                             ("expires_at", _instant(grant.expires_at), _instant(said["expires_at"]))):
        if row != chain:
            found.append(f"{name}: the grant row says {row!r}, the custody chain says {chain!r} (event "
                         f"{said['event']})")
    if said["revoked"] and grant.revoked_at is None:
        found.append("the custody chain revoked it, the row is live again")
    return found


def _instant(value: object) -> str | None:
    """A time as one comparable text (UTC), whatever offset it was written with; other values as they are."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        value = parsed
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return None if value is None else str(value)


def grant_findings(session: Session) -> list[tuple[int, str]]:
    """(grant id, what differs) for every grant row that differs from the custody chain's grant events, and every
    grant the chain gave that has no row (verify names them; live_grants never honours such a row). """
    said = chain_grants(session)
    rows = list(session.exec(select(CaseGrant).order_by(col(CaseGrant.id))))
    numbers = case_numbers(session, {g.case_id for g in rows})
    found = [(g.id or 0, text) for g in rows for text in _grant_differences(g, said.get(g.id or 0),
                                                                             numbers.get(g.case_id))]
    kept = {g.id for g in rows}
    found += [(grant, "the custody chain gave it (event "
                      f"{chain['event']}) but the catalogue has no grant row (deleted behind the application's back)")
              for grant, chain in said.items() if grant not in kept]
    return found


def case_grants(session: Session, case: Case) -> list[CaseGrant]:
    """Every grant on *case*, live, expired or revoked, newest first (the case page lists them)."""
    return list(session.exec(select(CaseGrant).where(CaseGrant.case_id == case.id).order_by(col(CaseGrant.id).desc())))


def granted_recording_ids(session: Session, user_name: str, recording_ids: Iterable[int]) -> set[int]:
    """Which of *recording_ids* serve (are linked now to) a case on which *user_name* holds a live grant."""
    wanted = sorted(set(recording_ids))
    cases = [g.case_id for g in live_grants(session, user_name)]
    if not wanted or not cases:
        return set()
    return set(session.exec(select(CaseLink.recording_id).where(
        col(CaseLink.recording_id).in_(wanted), col(CaseLink.case_id).in_(cases),
        col(CaseLink.unlinked_at).is_(None))))


def class_refusals(session: Session, user: User, recordings: Sequence[Recording], step: str) -> list[tuple[int, str]]:
    """(recording id, why) for each of *recordings* whose class refuses *step* to *user* (catalog.sensitivity).
    Role and scope are checked before."""
    classed = [r for r in recordings if r.id is not None and class_problem(r.sensitivity, step, Holder()) is not None]
    if not classed:
        return []
    granted = granted_recording_ids(session, user.name, [r.id for r in classed if r.id is not None])
    custodian = "clerk" in user.roles
    refused = []
    for r in classed:
        collected = bool(user.officer_number) and "officer" in user.roles and r.officer_number == user.officer_number
        problem = class_problem(r.sensitivity, step, Holder(granted=r.id in granted, collected_it=collected,
                                                            custodian=custodian))
        if problem is not None and r.id is not None:
            refused.append((r.id, problem))
    return refused
