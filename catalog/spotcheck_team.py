"""双随机's second draw: the inspectors who review a spot check, drawn at random from a pool.

The pool is the people named for the draw, or else every active user who may run spot checks; the one who draws
is never in it (whoever picks the sample does not also pick its reviewers), nor anyone who recorded part of the
sample (nobody reviews their own footage), whose scope does not cover every recording drawn (they could not
open the check) or whose class rights would refuse them one (they could not watch it). The reviewers are drawn
from the pool, in name order, with the seed `<check seed>/reviewers`: like the sample, anyone can redraw them
from the recorded pool and seed and get the same people.
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from catalog.access import out_of_scope, user_scope
from catalog.classification import class_refusals
from catalog.errors import CatalogError
from catalog.models import Recording
from catalog.said import listed, say
from catalog.user_models import User

__all__ = ["REVIEWER_SEED", "draw_names", "eligible_pool", "reviewer_seed"]

REVIEWER_SEED = "{seed}/reviewers"


def reviewer_seed(seed: str) -> str:
    """The seed the reviewers are drawn with, from the check's own. Pure."""
    return REVIEWER_SEED.format(seed=seed)


def draw_names(pool: Sequence[str], count: int, seed: str) -> list[str]:
    """*count* names from *pool* (sorted, duplicates dropped), chosen as catalog.spotcheck.draw chooses ids: the
    same pool and seed always give the same names, in pool order. Pure."""
    from catalog.spotcheck import draw_positions  # spotcheck imports this module

    ordered = sorted(set(pool))
    return [ordered[p] for p in draw_positions(len(ordered), count, seed)]


def eligible_pool(session: Session, named: Sequence[str], *, drawer: str, recording_ids: list[int],
                  error: type[CatalogError]) -> list[str]:
    """The pool the reviewers are drawn from for a sample of *recording_ids*: *named* (each an active user who may
    run spot checks, not *drawer*, whose scope covers the sample; *error* naming each who is not), or, when none
    is named, every such user."""
    from catalog.users import PERMISSIONS

    allowed = PERMISSIONS["spotcheck"]
    wanted = sorted({n.strip() for n in named if n.strip()})
    query = select(User)
    if wanted:
        query = query.where(col(User.name).in_(wanted))
    users = {u.name: u for u in session.exec(query)}
    problems = [say("{name} is not a user of this archive", name=repr(name)) for name in wanted if name not in users]
    sample = list(session.exec(select(Recording).where(col(Recording.id).in_(recording_ids))))
    recorded_by = {r.officer_number for r in sample if r.officer_number}
    pool = []
    for name, user in sorted(users.items()):
        why = None
        if not user.active:
            why = say("{name} is not active", name=repr(name))
        elif not allowed & set(user.roles):
            why = say("{name} may not review spot checks (roles: {roles})", name=repr(name),
                      roles=listed([say(role) for role in user.roles]) if user.roles else say("none"))
        elif name == drawer:
            why = say("{name} drew the sample: the one who draws does not review", name=repr(name))
        elif user.officer_number and user.officer_number in recorded_by:
            why = say("{name} recorded part of the sample (officer {number}): nobody reviews their own footage",
                      name=repr(name), number=user.officer_number)
        elif out_of_scope(session, user_scope(user), recording_ids):
            why = say("{name} may not see all of the sample ({scope})", name=repr(name),
                      scope=user_scope(user).describe())
        elif class_refusals(session, user, sample, "play"):
            why = say("{name} may not play all of the sample (its sensitivity class)", name=repr(name))
        if why is None:
            pool.append(name)
        elif wanted:
            problems.append(why)
    if problems:
        raise error(say("reviewer pool: {problems}", problems=problems))
    return sorted(set(pool))  # in code-point order, as draw_names sorts: the recorded pool is what it draws from
