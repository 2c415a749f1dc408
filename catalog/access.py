"""Which recordings a person may see: the whole archive, their own, or their units'.

Roles say *what* a person may do (users.PERMISSIONS); the scope says *to which recordings*. A clerk,
auditor or admin works on the whole archive; a supervisor on the recordings of the officers in their
units (all of them when no unit is set: an agency-wide supervisor); an officer on the recordings they
collected. A person with several roles gets the widest. `scope_for` is pure; `scope_clause` turns a scope
into SQL so a search, a draw or a single lookup never returns what the caller may not see.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false
from sqlmodel import Session, col, or_, select

from catalog.models import Officer, Recording, User

__all__ = ["EVERYTHING", "Scope", "can_see", "scope_clause", "scope_for", "user_scope"]


@dataclass(frozen=True)
class Scope:
    everything: bool = False
    officers: frozenset[str] = frozenset()  # officer numbers whose recordings are in scope
    units: frozenset[str] = frozenset()  # unit numbers or names whose officers' recordings are in scope

    def describe(self) -> str:
        if self.everything:
            return "the whole archive"
        parts = [f"officer {n}" for n in sorted(self.officers)] + [f"unit {u}" for u in sorted(self.units)]
        return ", ".join(parts) or "nothing (an officer account without an officer number)"


#: The whole archive (clerks, auditors, administrators, agency-wide supervisors).
EVERYTHING = Scope(everything=True)


def scope_for(*, roles: list[str], officer_number: str | None, units: list[str]) -> Scope:
    """The widest scope any of the roles gives. Pure."""
    if {"clerk", "auditor", "admin"} & set(roles):
        return EVERYTHING
    wanted_units = frozenset(u.strip() for u in units if u.strip())
    if "supervisor" in roles and not wanted_units:
        return EVERYTHING
    officers = frozenset({officer_number}) if "officer" in roles and officer_number else frozenset()
    return Scope(officers=officers, units=wanted_units if "supervisor" in roles else frozenset())


def user_scope(user: User) -> Scope:
    return scope_for(roles=list(user.roles), officer_number=user.officer_number, units=list(user.units))


def scope_clause(scope: Scope) -> ColumnElement[bool] | None:
    """A WHERE condition on Recording for *scope*; None for the whole archive."""
    if scope.everything:
        return None
    parts: list[ColumnElement[bool]] = []
    if scope.officers:
        parts.append(col(Recording.officer_number).in_(sorted(scope.officers)))
    if scope.units:
        units = sorted(scope.units)
        members = select(Officer.number).where(or_(col(Officer.unit_number).in_(units),
                                                   col(Officer.unit_name).in_(units)))
        parts.append(col(Recording.officer_number).in_(members))
    return or_(*parts) if parts else false()


def can_see(session: Session, scope: Scope, recording_id: int) -> bool:
    clause = scope_clause(scope)
    if clause is None:
        return True
    return session.exec(select(Recording.id).where(Recording.id == recording_id, clause)).first() is not None
