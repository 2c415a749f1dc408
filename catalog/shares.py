"""Share links (issue 18, part 3): an approved release handed to one named recipient (a prosecutor, a lawyer, a
court clerk) who has no account, through a link that lasts a set time, opens once with a one-time code given to them
by another channel (a phone call), records every download, and can be revoked.

Only hashes are kept: of the link's token (256 bits from `secrets`), of its code (8 digits, hashed with the token so
that a copy of the table alone does not give the codes away) and of the browser session that used the code. The code
works once: after it, only that browser session downloads (a link forwarded is useless). MAX_FAILURES wrong codes
revoke the link. A link stops working when it expires, is revoked, or its release is no longer approved (withdrawn);
an item whose class was raised since the approval (to a state secret) is not served. Every act is a custody event
on each item of the release (`share_created`, `share_opened`, `share_downloaded`, `share_revoked`) and a refusal an
`access_refused` with action `share`. Plain functions on a session; each commits.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog.access import check_access, record_refusals
from catalog.custody import CustodyKind, append_event
from catalog.db import by_id
from catalog.errors import CatalogError, PermissionDenied
from catalog.models import CustodyEvent, Recording, Release, ShareLink
from catalog.releases import current_problems, get_release, may_act_on, release_items
from catalog.said import Said, listed, say
from catalog.user_models import User
from catalog.users import PERMISSIONS

__all__ = ["CODE_DIGITS", "DOWNLOAD_WINDOW", "MAX_DAYS", "MAX_FAILURES", "NEED_CODE", "NewShare",
           "ShareRefused", "counts_as_download", "create_share", "open_share", "record_download", "revoke_share",
           "share_as_json", "shared_item", "shares_of"]

CODE_DIGITS = 8
#: Wrong codes after which a link is revoked (10^8 codes: 5 guesses find one with a chance of 1 in 20 million).
MAX_FAILURES = 5
#: The longest a link may last.
MAX_DAYS = 90
#: A request that does not start at the first byte is counted as a download unless one of the same item through the
#: same link was recorded this recently (catalog.shares.counts_as_download).
DOWNLOAD_WINDOW = timedelta(hours=1)
#: What a browser that has not used the link's code is told (the web app shows the code form instead).
NEED_CODE = say("enter the code you were given to open this link")


class ShareRefused(CatalogError):
    """A share link that cannot be made, opened or used: why, in words the recipient may read (*public*, said in
    the reader's language) and in full for the log (*detail*)."""

    def __init__(self, public: Said, detail: str = "") -> None:
        self.public = public
        super().__init__(detail or public)


@dataclass(frozen=True)
class NewShare:
    """A link just made: its token and code are shown once and never kept."""

    link: ShareLink
    token: str
    code: str

    @property
    def path(self) -> str:
        return f"/share/{self.token}"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _code_hash(token: str, code: str) -> str:
    return _sha(f"{token}\n{code.strip()}")


def _events(session: Session, link: ShareLink, kind: CustodyKind, actor: str, details: dict[str, Any]) -> None:
    release = get_release(session, link.release_id)
    for _item, recording in release_items(session, release):
        append_event(session, kind, actor=actor, recording_id=recording.id,
                     details={"link": link.id, "release": link.release_id, "recipient": link.recipient, **details})


def create_share(session: Session, user: User, release_id: int, *, recipient: str, days: int,
                 now: datetime) -> NewShare:
    """A link to approved release *release_id* for *recipient*, lasting *days*; committed.

    Raises:
      PermissionDenied: *user* may not propose releases (who hands one over).
      ShareRefused: the release is not approved; no recipient; *days* outside 1..MAX_DAYS.
    """
    allowed = PERMISSIONS["propose_release"]
    if not user.active or not allowed & set(user.roles):
        raise PermissionDenied(say("user {user} may not share releases: that needs one of {needed}",
                                   user=repr(user.name), needed=listed([say(role) for role in sorted(allowed)])))
    release = get_release(session, release_id)
    who = " ".join((recipient or "").split())
    # who hands evidence over must be able to download it (role, scope, class; a refusal recorded), as its proposer
    check_access(session, user, [recording for _item, recording in release_items(session, release)],
                 step="download", reason=f"share release {release_id} with {who or 'a recipient'}", policy="download",
                 action="share")
    problems = []
    if release.state != "approved":
        problems.append(say("release {release} is {state}: only an approved release is shared", release=release_id,
                            state=say(release.state)))
    if not who or len(who) > 200:
        problems.append(say("name the one recipient (at most 200 characters)"))
    if not 1 <= days <= MAX_DAYS:
        problems.append(say("a link lasts 1 to {max} days, not {days}", max=MAX_DAYS, days=days))
    if problems:
        raise ShareRefused(listed(problems, sep="; "))
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    link = ShareLink(release_id=release_id, recipient=who, token_sha256=_sha(token),
                     code_sha256=_code_hash(token, code), created_by=user.name, created_at=now,
                     expires_at=now + timedelta(days=days))
    session.add(link)
    session.flush()
    _events(session, link, CustodyKind.SHARE_CREATED, user.name,
            {"expires_at": link.expires_at.isoformat() if link.expires_at else None})
    session.commit()
    return NewShare(link, token, code)


def _live(session: Session, token: str, now: datetime) -> tuple[ShareLink, Release]:
    """The link *token* names while it may be used; ShareRefused saying why (nothing about a token that names no
    link)."""
    link = session.exec(select(ShareLink).where(ShareLink.token_sha256 == _sha(token))).first()
    if link is None:
        raise ShareRefused(say("this link is not valid"))
    release = get_release(session, link.release_id)
    if link.revoked_at is not None:
        raise ShareRefused(say("this link was revoked"), f"share link {link.id} was revoked: {link.revoke_reason}")
    assert link.expires_at is not None
    if now >= link.expires_at:
        raise ShareRefused(say("this link expired on {date}", date=link.expires_at.date().isoformat()))
    if release.state != "approved":
        raise ShareRefused(say("this release is no longer available"),
                           f"share link {link.id}: release {release.id} is {release.state}")
    return link, release


def _refused(session: Session, link: ShareLink, why: str, details: dict[str, Any]) -> None:
    release = get_release(session, link.release_id)
    ids = [recording.id or 0 for _item, recording in release_items(session, release)]
    record_refusals(session, f"share:{link.id}:{link.recipient}", ids, action="share", why=why,
                    details={"link": link.id, **details})


def open_share(session: Session, token: str, code: str, *, now: datetime, client: str) -> tuple[ShareLink, str]:
    """Use the link's one-time code: the link and a new browser-session secret (for a cookie); committed. A wrong
    code is counted and recorded; the MAX_FAILURES-th revokes the link. ShareRefused otherwise, saying why."""
    link, _release = _live(session, token, now)
    if link.opened_at is not None:
        raise ShareRefused(say("this link's code was used already; ask the sender for a new link"),
                           f"share link {link.id}: its code was used at {link.opened_at.isoformat()}")
    if not secrets.compare_digest(_code_hash(token, code), link.code_sha256):
        # counted in the database (guesses at once each count), the revocation decided on the count it returns
        session.execute(update(ShareLink).where(col(ShareLink.id) == link.id)
                        .values(failures=ShareLink.failures + 1))
        session.refresh(link)
        left = MAX_FAILURES - link.failures
        _refused(session, link, "code", {"failures": link.failures, "client": client})
        if left <= 0 and link.revoked_at is None:
            revoked = session.execute(update(ShareLink).where(col(ShareLink.id) == link.id,
                                                              col(ShareLink.revoked_at).is_(None))
                                      .values(revoked_at=now, revoked_by="system",
                                              revoke_reason=f"{MAX_FAILURES} wrong codes"))
            if getattr(revoked, "rowcount", 0):
                _events(session, link, CustodyKind.SHARE_REVOKED, "system", {"reason": f"{MAX_FAILURES} wrong codes"})
        session.commit()
        if left <= 0:
            raise ShareRefused(say("wrong code; the link is now revoked"))
        raise ShareRefused(say("wrong code; {left} attempt(s) left before the link is revoked", left=left))
    secret = secrets.token_urlsafe(32)
    # one statement: of two browsers with the right code at once, one opens the link
    taken = session.execute(update(ShareLink).where(
        col(ShareLink.id) == link.id, col(ShareLink.opened_at).is_(None), col(ShareLink.revoked_at).is_(None),
        col(ShareLink.failures) < MAX_FAILURES, col(ShareLink.expires_at) > now)
        .values(opened_at=now, session_sha256=_sha(secret)))
    if not getattr(taken, "rowcount", 0):
        session.rollback()
        raise ShareRefused(say("this link's code was used already; ask the sender for a new link"))
    session.refresh(link)
    _events(session, link, CustodyKind.SHARE_OPENED, f"share:{link.id}:{link.recipient}", {"client": client})
    session.commit()
    return link, secret


def shared_item(session: Session, token: str, browser: str | None, recording_id: int | None, *,
                now: datetime) -> tuple[ShareLink, Release, list[Recording]]:
    """The link, its release and the items this browser session may download now (all of them, or the one
    *recording_id* names); ShareRefused when it may not (the code not used in this browser, an item not in the
    release, or one that may no longer go out)."""
    link, release = _live(session, token, now)
    if link.session_sha256 is None or browser is None or not secrets.compare_digest(_sha(browser),
                                                                                   link.session_sha256):
        raise ShareRefused(NEED_CODE)
    pairs = [(item, recording) for item, recording in release_items(session, release)
             if recording_id is None or recording.id == recording_id]
    if recording_id is not None and not pairs:
        raise ShareRefused(say("this item is not part of the release"))
    if recording_id is not None:
        problems = current_problems(release, pairs)
        if problems:
            _refused(session, link, "class", {"problems": problems})
            session.commit()
            raise ShareRefused(say("this item is no longer available"), "; ".join(problems))
    # the list shows only what may still go out (an item raised to a state secret is not even named)
    return link, release, [recording for item, recording in pairs if not current_problems(release, [(item, recording)])]


def counts_as_download(session: Session, link: ShareLink, recording: Recording, start: int, *,
                       now: datetime) -> bool:
    """Whether a request from byte *start* of *recording* through *link* is a download of its own: one from the
    first byte, or any request when none of this item through this link was recorded in the last DOWNLOAD_WINDOW
    (a player's later ranges of a recorded download are not counted again; a download that starts past the first
    byte is)."""
    if start == 0:
        return True
    recent = session.exec(select(CustodyEvent.details, CustodyEvent.at).where(
        CustodyEvent.kind == CustodyKind.SHARE_DOWNLOADED.value, CustodyEvent.recording_id == recording.id,
        col(CustodyEvent.at) > now - DOWNLOAD_WINDOW))
    return not any(isinstance(details, dict) and details.get("link") == link.id for details, _at in recent)


def record_download(session: Session, link: ShareLink, recording: Recording, *, client: str, span: str) -> None:
    """One download through *link* (committed): the custody event on the item."""
    append_event(session, CustodyKind.SHARE_DOWNLOADED, actor=f"share:{link.id}:{link.recipient}",
                 recording_id=recording.id, details={"link": link.id, "release": link.release_id,
                                                     "recipient": link.recipient, "sha256": recording.sha256,
                                                     "bytes": span, "client": client})
    session.commit()


def revoke_share(session: Session, user: User, link_id: int, *, reason: str, now: datetime) -> ShareLink:
    """End a link before its time (the proposer's roles or legal review); committed."""
    allowed = PERMISSIONS["propose_release"] | PERMISSIONS["approve_release"]
    if not user.active or not allowed & set(user.roles):
        raise PermissionDenied(say("user {user} may not revoke share links", user=repr(user.name)))
    link = by_id(session, ShareLink, link_id)
    why = " ".join((reason or "").split())
    if link is None:
        raise ShareRefused(say("no share link {link}", link=link_id))
    release = get_release(session, link.release_id)
    may_act_on(session, user, release, release_items(session, release))
    if link.revoked_at is not None:
        raise ShareRefused(say("share link {link} was revoked already", link=link_id))
    if not why:
        raise ShareRefused(say("state why the link is revoked"))
    link.revoked_at, link.revoked_by, link.revoke_reason = now, user.name, why[:500]
    session.add(link)
    _events(session, link, CustodyKind.SHARE_REVOKED, user.name, {"reason": link.revoke_reason})
    session.commit()
    return link


def shares_of(session: Session, release_id: int) -> list[ShareLink]:
    return list(session.exec(select(ShareLink).where(ShareLink.release_id == release_id)
                             .order_by(col(ShareLink.id))))


def share_as_json(link: ShareLink) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"id": link.id, "release": link.release_id, "recipient": link.recipient, "created_by": link.created_by,
            "created_at": when(link.created_at), "expires_at": when(link.expires_at),
            "opened_at": when(link.opened_at), "failures": link.failures, "revoked_at": when(link.revoked_at),
            "revoked_by": link.revoked_by, "revoke_reason": link.revoke_reason}
