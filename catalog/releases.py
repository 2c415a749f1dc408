"""Releases (issue 18, part 3): recordings published (公示) or transferred (移送, to prosecutors or a court), each
release proposed by one person and decided by a second with the legal-review role (`reviewer`, 法制审核).

What may go out is a plain decision (`item_problems`): only what is in the WORM store; a state secret (国家秘密)
never; a publication only what is classed public (公开) — a redacted copy is lowered to public once a person judged it
fit to publish, the original stays as it is classed — while a transfer to a prosecutor or court may carry originals
of any other class. The proposer must be able to download every item (role, scope, class: catalog.access), as an
export's maker must.

Every act is a custody event on each item: `release_proposed`, then `release_approved` or `release_rejected`, and
`release_withdrawn`. A decision or a withdrawal is also a signed record (the station key, an RFC 3161 token where a
timestamp authority is configured) written to WORM storage for a hundred years, naming the release, its recipient
and legal basis, every item's SHA-256 and class, the proposer, the decider and when. Nobody decides their own
proposal, and a release is checked again when it is approved (a class raised or an item disposed of meanwhile
refuses it).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog.access import Scope, check_access, out_of_scope
from catalog.custody import CustodyKind, append_event
from catalog.db import by_id
from catalog.disposal import RECORD_RETENTION, Signer
from catalog.errors import CatalogError, PermissionDenied
from catalog.manifests import ensure_station_key, software_version
from catalog.models import IN_ARCHIVE, Recording, Release, ReleaseItem
from catalog.said import Said, listed, say
from catalog.sensitivity import CLASSES, class_word
from catalog.signing import sign_document, signed_bytes
from catalog.timestamping import stamp_record
from catalog.user_models import User
from catalog.users import PERMISSIONS
from storage import EvidenceStore

__all__ = [
    "RECORD_FORMAT",
    "RELEASE_KINDS",
    "RELEASE_STATES",
    "ReleaseRefused",
    "current_problems",
    "decide_release",
    "drifted",
    "get_release",
    "item_problems",
    "list_releases",
    "may_act_on",
    "propose_release",
    "release_as_json",
    "release_in_scope",
    "release_items",
    "withdraw_release",
]

#: The signed record's format name (a decision or a withdrawal).
RECORD_FORMAT = "evidence-release-record/1"
RELEASE_KINDS = ("publication", "transfer")  # 公示, 移送
RELEASE_STATES = ("proposed", "approved", "rejected", "withdrawn")
_MAX_TEXT = 500


class ReleaseRefused(CatalogError):
    """A release act that cannot be done as asked: every problem named (each made with catalog.said.say, so a page
    says them in its language; str() is the English, separated by "; ")."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(listed(problems, sep="; "))


@dataclass(frozen=True)
class ItemFacts:
    """What decides whether a recording may go out in a release (a plain value, for `item_problems`)."""

    recording_id: int
    name: str
    state: str
    sensitivity: str
    redacted_from_id: int | None

    @classmethod
    def of(cls, recording: Recording) -> ItemFacts:
        assert recording.id is not None
        return cls(recording.id, recording.original_name, recording.state, recording.sensitivity,
                   recording.redacted_from_id)


def item_problems(kind: str, item: ItemFacts) -> list[str]:
    """Why *item* may not go out in a release of *kind* (empty: it may). Pure."""
    what = {"recording": item.recording_id, "name": item.name}
    problems: list[str] = []
    if item.state not in IN_ARCHIVE:
        problems.append(say("recording {recording} ({name}) is {state}: only what is in the WORM store is released",
                            state=say(item.state), **what))
    if item.sensitivity == "state_secret":
        problems.append(say("recording {recording} ({name}) is a state secret (国家秘密): it is never released",
                            **what))
    elif kind == "publication" and item.sensitivity != "public":
        classed = class_word(item.sensitivity)
        problems.append(say("recording {recording} ({name}) is {sensitivity}, a redacted copy: a publication (公示) "
                            "carries only what is classed public (公开); lower its class once it is judged fit to "
                            "publish", sensitivity=classed, **what) if item.redacted_from_id is not None else
                        say("recording {recording} ({name}) is {sensitivity}, an original (publish a redacted copy "
                            "instead: `evidence redact`): a publication (公示) carries only what is classed public "
                            "(公开); lower its class once it is judged fit to publish", sensitivity=classed, **what))
    return problems


def drifted(item: ReleaseItem, recording: Recording) -> list[str]:
    """Why an item may no longer go out as it was proposed: other bytes, or a class above the one it had. Pure."""
    problems: list[str] = []
    if recording.sha256 != item.sha256:
        problems.append(say("recording {recording}'s SHA-256 is not the one proposed", recording=recording.id))
    if CLASSES.index(recording.sensitivity) > CLASSES.index(item.sensitivity):
        problems.append(say("recording {recording} is {now} now, above the {was} it was proposed as",
                            recording=recording.id, now=class_word(recording.sensitivity),
                            was=class_word(item.sensitivity)))
    return problems


def current_problems(release: Release, items: list[tuple[ReleaseItem, Recording]]) -> list[str]:
    """Why *release* may not go out now: each item by the rules (`item_problems`) and against what was proposed."""
    return [p for item, recording in items
            for p in item_problems(release.kind, ItemFacts.of(recording)) + drifted(item, recording)]


def _allowed(user: User, action: str) -> None:
    allowed = PERMISSIONS[action] if action != "withdraw_release" else \
        PERMISSIONS["propose_release"] | PERMISSIONS["approve_release"]
    if not user.active or not allowed & set(user.roles):
        needs = listed(say(role) for role in sorted(allowed))
        raise PermissionDenied(say("user {name} is not active: that needs one of {needs}", name=repr(user.name),
                                   needs=needs) if not user.active else
                               say("user {name} (roles: {roles}) may not {action}: that needs one of {needs}",
                                   name=repr(user.name), roles=listed(say(role) for role in user.roles),
                                   action=action, needs=needs))


def _text(value: str, what: Said, problems: list[str]) -> str:
    text = " ".join((value or "").split())
    if not text:
        problems.append(say("{what} is required", what=what))
    elif len(text) > _MAX_TEXT:
        problems.append(say("{what} is longer than {max} characters", what=what, max=_MAX_TEXT))
    return text


def propose_release(session: Session, user: User, *, kind: str, title: str, recipient: str, legal_basis: str,
                    recordings: list[Recording], reason: str, now: datetime) -> Release:
    """Propose *recordings* for a release of *kind* to *recipient* on *legal_basis*; committed.

    Raises:
      PermissionDenied: *user*'s roles do not allow proposing.
      AccessRefused: *user* may not download one of them (role, scope, class; recorded).
      ReleaseRefused: a field missing, or an item that may not go out in such a release (each named).
    """
    _allowed(user, "propose_release")
    problems: list[str] = []
    if kind not in RELEASE_KINDS:
        problems.append(say("kind {kind}: one of {kinds} (公示, 移送)", kind=repr(kind), kinds=listed(RELEASE_KINDS)))
    fields = {name: _text(value, label, problems) for name, label, value in
              (("title", say("title"), title), ("recipient", say("recipient"), recipient),
               ("legal basis", say("legal basis"), legal_basis), ("reason", say("reason"), reason))}
    if not recordings:
        problems.append(say("a release needs at least one recording"))
    ids = [r.id for r in recordings]
    if len(set(ids)) != len(ids):
        problems.append(say("a recording is named twice"))
    if problems:
        raise ReleaseRefused(problems)
    check_access(session, user, recordings, step="download", reason=fields["reason"], policy="download",
                 action="release")
    problems = [p for r in recordings for p in item_problems(kind, ItemFacts.of(r))]
    if problems:
        raise ReleaseRefused(problems)
    release = Release(kind=kind, title=fields["title"], recipient=fields["recipient"],
                      legal_basis=fields["legal basis"], reason=fields["reason"], proposed_by=user.name,
                      proposed_at=now)
    session.add(release)
    session.flush()
    assert release.id is not None
    for recording in recordings:
        session.add(ReleaseItem(release_id=release.id, recording_id=recording.id or 0, sha256=recording.sha256,
                                sensitivity=recording.sensitivity))
        append_event(session, CustodyKind.RELEASE_PROPOSED, actor=user.name, recording_id=recording.id, details={
            "release": release.id, "kind": kind, "recipient": release.recipient, "legal_basis": release.legal_basis,
            "reason": release.reason, "sha256": recording.sha256, "class": recording.sensitivity})
    session.commit()
    return release


def get_release(session: Session, release_id: int) -> Release:
    release = by_id(session, Release, release_id)
    if release is None:
        raise ReleaseRefused([say("no release {release}", release=release_id)])
    return release


def release_items(session: Session, release: Release) -> list[tuple[ReleaseItem, Recording]]:
    """The release's items with their recordings as they are now, in the order proposed."""
    rows = session.exec(select(ReleaseItem, Recording).where(ReleaseItem.release_id == release.id,
                                                             ReleaseItem.recording_id == Recording.id)
                        .order_by(col(ReleaseItem.id)))
    return [(item, recording) for item, recording in rows]


def decide_release(session: Session, store: EvidenceStore, user: User, release_id: int, *, approve: bool,
                   note: str, signer: Signer, now: datetime) -> Release:
    """Approve or reject a proposed release as legal review (法制审核); the signed decision is written to WORM
    storage and each item gets the custody event; committed.

    Raises:
      PermissionDenied: *user* does not have the legal-review role.
      ReleaseRefused: no such release; not awaiting a decision; *user* proposed it; no note; on approval, an item
        that may no longer go out (a class raised, disposed of, its bytes changed) — each named.
      StorageError: the store did not take the signed record (nothing is decided).
    """
    _allowed(user, "approve_release")
    release = get_release(session, release_id)
    problems: list[str] = []
    why = _text(note, say("a note on the decision"), problems)
    if release.state != "proposed":
        problems.append(say("release {release} is {state}: only a proposed release is decided", release=release_id,
                            state=say(release.state)))
    if release.proposed_by == user.name:
        problems.append(say("{person} proposed release {release}: a second person decides it (no self-approval)",
                            person=user.name, release=release_id))
    items = release_items(session, release)
    if approve:
        problems += current_problems(release, items)
    if problems:
        raise ReleaseRefused(problems)
    _move(session, release, ("proposed",), "approved" if approve else "rejected")
    release.decided_by, release.decided_at, release.decision_note = user.name, now, why
    key = _write_record(session, store, release, items, signer=signer, now=now,
                        act={"decision": release.state, "by": user.name, "at": now.isoformat(), "note": why})
    kind = CustodyKind.RELEASE_APPROVED if approve else CustodyKind.RELEASE_REJECTED
    for item, _recording in items:
        append_event(session, kind, actor=user.name, recording_id=item.recording_id, details={
            "release": release.id, "kind": release.kind, "note": why, "record": key})
    session.commit()
    return release


def withdraw_release(session: Session, store: EvidenceStore, user: User, release_id: int, *, reason: str,
                     signer: Signer, now: datetime) -> Release:
    """Withdraw a proposed or approved release (a publication taken down, a transfer recalled), with a signed
    record in WORM storage and a custody event on each item; committed. The proposer's roles or legal review may.

    Raises:
      PermissionDenied: *user* may neither propose nor decide releases.
      ReleaseRefused: no such release; already rejected or withdrawn; no reason.
    """
    _allowed(user, "withdraw_release")
    release = get_release(session, release_id)
    problems: list[str] = []
    why = _text(reason, say("reason"), problems)
    if release.state not in ("proposed", "approved"):
        problems.append(say("release {release} is {state}: only a proposed or approved one is withdrawn",
                            release=release_id, state=say(release.state)))
    if problems:
        raise ReleaseRefused(problems)
    items = release_items(session, release)
    may_act_on(session, user, release, items)
    _move(session, release, ("proposed", "approved"), "withdrawn")
    release.withdrawn_by, release.withdrawn_at, release.withdrawal_reason = user.name, now, why
    key = _write_record(session, store, release, items, signer=signer, now=now,
                        act={"decision": "withdrawn", "by": user.name, "at": now.isoformat(), "reason": why})
    for item, _recording in items:
        append_event(session, CustodyKind.RELEASE_WITHDRAWN, actor=user.name, recording_id=item.recording_id,
                     details={"release": release.id, "kind": release.kind, "reason": why, "record": key})
    session.commit()
    return release


def may_act_on(session: Session, user: User, release: Release, items: list[tuple[ReleaseItem, Recording]]) -> None:
    """Refuse (AccessRefused, recorded) a person who neither proposed *release* nor reviews releases unless they may
    download every item: withdrawing a release or ending its links is for those who could have proposed it."""
    if user.name == release.proposed_by or "reviewer" in user.roles:
        return
    check_access(session, user, [recording for _item, recording in items], step="download",
                 reason=f"release {release.id}", policy="download", action="release")


def _move(session: Session, release: Release, were: tuple[str, ...], to: str) -> None:
    """Move *release* from one of *were* to *to* in one statement (of two people deciding or withdrawing at once,
    one does; the other is refused), inside the caller's transaction, before its signed record is written."""
    moved = session.execute(update(Release).where(col(Release.id) == release.id, col(Release.state).in_(were))
                            .values(state=to))
    if not getattr(moved, "rowcount", 0):
        session.rollback()
        session.refresh(release)
        raise ReleaseRefused([say("release {release} is {state} now: someone acted on it meanwhile",
                                  release=release.id, state=say(release.state))])
    release.state = to


def _write_record(session: Session, store: EvidenceStore, release: Release,
                  items: list[tuple[ReleaseItem, Recording]], *, signer: Signer, now: datetime,
                  act: dict[str, Any]) -> str:
    """The signed record of one act on *release*, in WORM storage; its name (also kept on the release)."""
    assert release.id is not None
    body = {"format": RECORD_FORMAT, "release": release.id, "kind": release.kind, "title": release.title,
            "recipient": release.recipient, "legal_basis": release.legal_basis, "reason": release.reason,
            "proposed_by": release.proposed_by,
            "proposed_at": release.proposed_at.isoformat() if release.proposed_at else None,
            "items": [{"recording_id": item.recording_id, "sha256": item.sha256, "class": item.sensitivity,
                       "name": recording.original_name, "redacted_from_id": recording.redacted_from_id}
                      for item, recording in items],
            **act, "software": {"name": "evidence-ingest", "version": software_version()},
            "signed_at": now.isoformat()}
    ensure_station_key(session, signer.station, signer.key, actor=f"station:{signer.station}", store=store)
    document = sign_document(body, signer.key)
    data = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
    # numbered, and unique: a record written before a failed commit never blocks the next try with its name
    name = (f"releases/release-{release.id:06d}-{len(release.records) + 1:02d}-{act['decision']}-"
            f"{uuid.uuid4().hex[:8]}.json")
    stored = store.put_record(name, data, retain_until=now + RECORD_RETENTION)
    stamp_record(store, name, signed_bytes(document), signer.tsa, retain_until=now + RECORD_RETENTION)
    assert stored.sha256
    release.records = [*release.records, name]  # the record's name in the store (EvidenceStore.get_record)
    session.add(release)
    return name


def release_in_scope(session: Session, scope: Scope, release: Release) -> bool:
    """Whether every item of *release* lies in *scope* (a supervisor of some units sees only their releases)."""
    return scope.everything or not out_of_scope(session, scope, [item.recording_id for item, _r in
                                                                 release_items(session, release)])


def list_releases(session: Session, *, state: str | None = None) -> list[Release]:
    query = select(Release).order_by(col(Release.id).desc())
    if state is not None:
        query = query.where(Release.state == state)
    return list(session.exec(query))


def release_as_json(session: Session, release: Release) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"id": release.id, "kind": release.kind, "title": release.title, "recipient": release.recipient,
            "legal_basis": release.legal_basis, "reason": release.reason, "state": release.state,
            "proposed_by": release.proposed_by, "proposed_at": when(release.proposed_at),
            "decided_by": release.decided_by, "decided_at": when(release.decided_at),
            "decision_note": release.decision_note, "withdrawn_by": release.withdrawn_by,
            "withdrawn_at": when(release.withdrawn_at), "withdrawal_reason": release.withdrawal_reason,
            "records": list(release.records),
            "items": [{"recording_id": item.recording_id, "sha256": item.sha256, "class": item.sensitivity,
                       "name": recording.original_name, "redacted_from_id": recording.redacted_from_id}
                      for item, recording in release_items(session, release)]}

