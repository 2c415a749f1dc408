"""Who may see what, against the custody chain: the archive's users (roles, scope, OS login, active) and the
officer list's units, which decide a supervisor's scope. Pure folds and comparisons, and one loader.

Every change to a user is a `user_changed` event, every change of the officer list made in the application a
`registry_changed` event. A review added an administrator bound to another OS account and moved an officer to
another unit with one SQL statement each: verify passed, and the officer's recordings went to another unit's
supervisor. The station records an officer it makes from a device's data, and a field a device fills, as a
`registry_changed` event too (`catalog.recordings.ensure_officer`); officers made before it did have no event and
are not vouched for, nor is a field the last event left empty.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlmodel import Session, col, select

from catalog.custody import CustodyKind
from catalog.models import CustodyEvent, Officer
from catalog.user_models import User

__all__ = ["fold_officers", "fold_users", "officer_findings", "registry_problems", "user_findings"]

#: What each `user_changed` action sets (details key -> user attribute), beyond `added`, which sets them all.
_USER_FIELDS = ("roles", "officer_number", "units", "os_user")


def fold_users(events: Iterable[CustodyEvent]) -> dict[str, dict[str, Any]]:
    """Each user as the `user_changed` events say (attribute -> value; only what the events stated). Pure."""
    users: dict[str, dict[str, Any]] = {}
    for event in events:
        details = event.details or {}
        name, action = details.get("user"), details.get("action")
        if not isinstance(name, str):
            continue
        if action == "added":
            users[name] = {key: details[key] for key in _USER_FIELDS if key in details} | {"active": True}
            continue
        said = users.setdefault(name, {})
        new = details.get("new")
        if action == "scope" and isinstance(new, dict):
            said.update({key: new[key] for key in ("officer_number", "units") if key in new})
        elif action == "os_user" and "new" in details:
            said["os_user"] = new
        elif action == "roles" and isinstance(new, list):
            said["roles"] = new
        elif action in ("activate", "deactivate"):
            said["active"] = action == "activate"
    return users


def user_findings(rows: Iterable[User], said: Mapping[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(user name, what differs) for a user row no `added` event made and for every attribute that differs from
    what the events say. Pure."""
    found = []
    for user in rows:
        stated = said.get(user.name)
        if stated is None:
            found.append((user.name, "no user_changed event added this user: the row was inserted behind the "
                                     "application's back"))
            continue
        for key, value in stated.items():
            held = getattr(user, key)
            if key in ("roles", "units"):
                held, value = sorted(held or []), sorted(value or [])
            if held != value:
                found.append((user.name, f"{key}: the row says {held!r}, the custody chain says {value!r} (changed "
                                          "behind the application's back)"))
    return found


def fold_officers(events: Iterable[CustodyEvent]) -> dict[str, dict[str, Any]]:
    """Each officer as the last `registry_changed` event of the officer list states them. Pure."""
    officers: dict[str, dict[str, Any]] = {}
    for event in events:
        details = event.details or {}
        if details.get("register") == "officer" and isinstance(details.get("key"), str) \
                and isinstance(details.get("new"), dict):
            officers[details["key"]] = details["new"]
    return officers


def officer_findings(rows: Iterable[Officer], said: Mapping[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(officer number, what differs) for registered officers whose name or unit differs from their last
    `registry_changed` event; a field the event left empty may have been filled from a device since. Pure."""
    found = []
    for officer in rows:
        stated = said.get(officer.number)
        if stated is None:
            continue
        for key in ("name", "unit_number", "unit_name"):
            value = stated.get(key)
            if value and getattr(officer, key) != value:
                found.append((officer.number, f"{key}: the officer list says {getattr(officer, key)!r}, its last "
                                              f"registry_changed event {value!r} (changed behind the application's "
                                              "back: it decides which supervisors see this officer's recordings)"))
    return found


def registry_problems(session: Session) -> list[tuple[str, str, str]]:
    """(kind, subject, detail) for every user and registered officer that differs from the chain. A difference is
    read again once, events and rows together, so a change committed between the two reads is not reported."""
    found = _registry_findings(session)
    return _registry_findings(session) if found else found


def _registry_findings(session: Session) -> list[tuple[str, str, str]]:
    events = list(session.exec(select(CustodyEvent).where(col(CustodyEvent.kind).in_(
        [CustodyKind.USER_CHANGED.value, CustodyKind.REGISTRY_CHANGED.value])).order_by(col(CustodyEvent.id))))
    users = fold_users(e for e in events if e.kind == CustodyKind.USER_CHANGED.value)
    officers = fold_officers(e for e in events if e.kind == CustodyKind.REGISTRY_CHANGED.value)
    fresh = {"populate_existing": True}
    return ([("user", f"user {name}", text)
             for name, text in user_findings(session.exec(select(User).execution_options(**fresh)), users)]
            + [("registry", f"officer {number}", text)
               for number, text in officer_findings(session.exec(select(Officer).execution_options(**fresh)),
                                                    officers)])
