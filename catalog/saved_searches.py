"""Each user's saved searches: a name and the search page's filters, kept to run again with one click.

A saved search holds only filters, never results or rights: run again, it is run with the caller's scope of that
day (catalog.search), so one saved by someone before their units changed opens no more than they may see now.
Only its owner lists, runs or deletes it; asked for another user's, the answer is the same as for none at all.
Saving under a name already used replaces that search (one name, one search). Not evidence: no custody event.
"""
from __future__ import annotations

import unicodedata

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select, update

from catalog.db import by_id
from catalog.errors import SavedSearchInvalid
from catalog.said import Said, say
from catalog.types import utcnow
from catalog.user_models import SavedSearch, User

__all__ = ["MAX_NAME", "MAX_QUERY", "MAX_SAVED", "PROBLEMS", "delete_saved_search", "name_problems", "save_search",
           "saved_searches"]

MAX_NAME = 100
MAX_QUERY = 2000
MAX_SAVED = 50  # per user: more is a list nobody reads; delete one first

#: Letters and symbols that draw nothing (Hangul fillers, the blank Braille pattern): a name of them shows as blank.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")

#: What can be wrong (message ids of catalog.said: a page says them in the reader's language).
NO_NAME = "Give the search a name."
LONG_NAME = "A search's name is at most {max} characters; this one has {n}."
CONTROL_IN_NAME = "A search's name cannot hold control characters."
NO_FILTER = "There is nothing to keep: choose at least one filter first."
LONG_QUERY = "These filters are too long to keep ({n} characters; at most {max})."
TOO_MANY = "You keep {max} searches already; delete one first."
PROBLEMS = (NO_NAME, LONG_NAME, CONTROL_IN_NAME, NO_FILTER, LONG_QUERY, TOO_MANY)


def name_problems(name: str, query: str) -> list[Said]:
    """What is wrong with keeping *query* under *name* (empty: nothing). Pure."""
    found: list[Said] = []
    if not any((c.isalnum() or unicodedata.category(c)[0] in "PS") and c not in _BLANK for c in name):
        found.append(say(NO_NAME))
    elif len(name) > MAX_NAME:
        found.append(say(LONG_NAME, max=MAX_NAME, n=len(name)))
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        found.append(say(CONTROL_IN_NAME))
    if not query:
        found.append(say(NO_FILTER))
    elif len(query) > MAX_QUERY:
        found.append(say(LONG_QUERY, n=len(query), max=MAX_QUERY))
    return found


def saved_searches(session: Session, user: User) -> list[SavedSearch]:
    """*user*'s saved searches, by name."""
    return list(session.exec(select(SavedSearch).where(SavedSearch.user_id == user.id)
                             .order_by(col(SavedSearch.name), col(SavedSearch.id))))


def save_search(session: Session, user: User, name: str, query: str) -> SavedSearch:
    """Keep *query* (filters, URL-encoded: evidence.web.search_form.saved_query) as *user*'s search *name*
    (surrounding spaces dropped), replacing one of that name; commits. SavedSearchInvalid lists every problem,
    including a user who has MAX_SAVED already."""
    assert user.id is not None, "a user not yet in the catalogue keeps no search"
    name = unicodedata.normalize("NFC", name.strip())  # é typed two ways is one name
    problems = name_problems(name, query)
    # the user's row first: saves from many tabs at once wait here one by one, so none counts before another's
    # insert and the limit holds (PostgreSQL: a row lock; SQLite: the write transaction begins here)
    session.exec(update(User).where(col(User.id) == user.id).values(id=user.id))
    mine = session.exec(select(SavedSearch).where(SavedSearch.user_id == user.id,
                                                  SavedSearch.name == name)).first()
    if mine is None and not problems:
        count = session.exec(select(func.count()).select_from(SavedSearch)
                             .where(SavedSearch.user_id == user.id)).one()
        if count >= MAX_SAVED:
            problems.append(say(TOO_MANY, max=MAX_SAVED))
    if problems:
        raise SavedSearchInvalid(problems)
    saved = mine or SavedSearch(user_id=user.id, name=name, query=query)
    saved.query, saved.saved_at = query, utcnow()
    session.add(saved)
    try:
        session.commit()
    except IntegrityError:  # the same name saved at the same moment from another tab: that one stands
        session.rollback()
        again = session.exec(select(SavedSearch).where(SavedSearch.user_id == user.id,
                                                       SavedSearch.name == name)).one()
        again.query, again.saved_at = query, utcnow()
        session.add(again)
        session.commit()
        saved = again
    session.refresh(saved)
    return saved


def delete_saved_search(session: Session, user: User, saved_id: int) -> str | None:
    """Delete *user*'s saved search *saved_id*; commits; its name. None when they have none of that id (another
    user's is not theirs: the same None, so its existence is not told)."""
    saved = by_id(session, SavedSearch, saved_id)
    if saved is None or saved.user_id != user.id:
        return None
    name = saved.name
    session.delete(saved)
    session.commit()
    return name
