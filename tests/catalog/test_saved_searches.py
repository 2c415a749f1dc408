"""Each user's saved searches (catalog.saved_searches): the rules on a name are a pure function; keeping,
replacing, listing and deleting run on SQLite and PostgreSQL, with another user's ids and a full list tried."""
from __future__ import annotations

import threading

import pytest
from sqlmodel import Session

from catalog.errors import SavedSearchInvalid
from catalog.said import Said
from catalog.saved_searches import (
    CONTROL_IN_NAME,
    LONG_NAME,
    LONG_QUERY,
    MAX_NAME,
    MAX_QUERY,
    MAX_SAVED,
    NO_FILTER,
    NO_NAME,
    TOO_MANY,
    delete_saved_search,
    name_problems,
    save_search,
    saved_searches,
)
from catalog.users import add_user, get_user


def _pairs(problems: list[Said]) -> list[tuple[str, dict[str, object]]]:
    return [(p.message, p.values) for p in problems]


def test_every_problem_with_a_name_and_its_filters_is_said_with_its_values():
    assert name_problems("本周巡查", "case=AB") == []
    assert _pairs(name_problems("", "")) == [(NO_NAME, {}), (NO_FILTER, {})]
    assert _pairs(name_problems("x" * (MAX_NAME + 1), "x" * (MAX_QUERY + 1))) == [
        (LONG_NAME, {"max": MAX_NAME, "n": MAX_NAME + 1}), (LONG_QUERY, {"n": MAX_QUERY + 1, "max": MAX_QUERY})]
    for hidden in ("a\nb", "a\u202eb", "a\u2028b", "a\x00b"):  # a line break, a bidi override, a NUL
        assert (CONTROL_IN_NAME, {}) in _pairs(name_problems(hidden, "case=AB")), repr(hidden)
    assert name_problems("x" * MAX_NAME, "x" * MAX_QUERY) == []


def _users(engine):
    with Session(engine) as session:
        add_user(session, "clerk:李四", roles=["clerk"], by="admin")
        add_user(session, "clerk:王五", roles=["clerk"], by="admin")
        session.commit()


def _user(session, name):
    return get_user(session, name)


def test_a_name_keeps_one_search_and_each_user_sees_only_their_own(engine):
    _users(engine)
    with Session(engine) as session:
        li, wang = _user(session, "clerk:李四"), _user(session, "clerk:王五")
        first = save_search(session, li, "  本周巡查 ", "purpose=%E5%B7%A1%E6%9F%A5")
        assert first.name == "本周巡查"  # the spaces around it are not part of the name
        again = save_search(session, li, "本周巡查", "purpose=%E5%B7%A1%E6%9F%A5&size=48")
        assert again.id == first.id and again.query.endswith("size=48")  # replaced, not a second row
        save_search(session, li, "A 案", "case=AB-2026-00042")
        save_search(session, wang, "本周巡查", "station=station-1")  # the same name, another user: theirs
        assert [(s.name, s.query) for s in saved_searches(session, li)] == [
            ("A 案", "case=AB-2026-00042"), ("本周巡查", "purpose=%E5%B7%A1%E6%9F%A5&size=48")]
        assert [s.name for s in saved_searches(session, wang)] == ["本周巡查"]
        wangs = saved_searches(session, wang)[0]
        assert wangs.id is not None
        assert delete_saved_search(session, li, wangs.id) is None  # not theirs: as if there were none
        assert delete_saved_search(session, li, 10**9) is None
        assert [s.name for s in saved_searches(session, wang)] == ["本周巡查"]
        assert delete_saved_search(session, wang, wangs.id) == "本周巡查"
        assert saved_searches(session, wang) == []


def test_a_full_list_refuses_a_new_name_but_still_replaces_a_kept_one(engine):
    _users(engine)
    with Session(engine) as session:
        li = _user(session, "clerk:李四")
        for n in range(MAX_SAVED):
            save_search(session, li, f"检索{n:02d}", f"case=A{n}")
        with pytest.raises(SavedSearchInvalid) as refused:
            save_search(session, li, "再一个", "case=B")
        assert _pairs(refused.value.problems) == [(TOO_MANY, {"max": MAX_SAVED})]
        assert f"You keep {MAX_SAVED} searches already" in str(refused.value)
        session.rollback()
        assert save_search(session, li, "检索07", "case=C").query == "case=C"
        assert len(saved_searches(session, li)) == MAX_SAVED


def test_many_tabs_saving_at_once_never_pass_the_limit(engine):
    """Twelve saves of new names at once (fewer than the engine's pool of connections), five places left: five
    are kept, the rest are told the limit (found by a review: counting, then inserting, let 56 of 16 in)."""
    _users(engine)
    with Session(engine) as session:
        li = _user(session, "clerk:李四")
        for n in range(MAX_SAVED - 5):
            save_search(session, li, f"检索{n:02d}", f"case=A{n}")
    start = threading.Barrier(12, timeout=30)
    outcomes: list[str] = []

    def tab(n: int) -> None:
        with Session(engine) as session:
            user = _user(session, "clerk:李四")
            start.wait()
            try:
                save_search(session, user, f"新检索{n:02d}", "kind=video")
                outcomes.append("kept")
            except SavedSearchInvalid as refused:
                outcomes.append("refused" if _pairs(refused.problems) == [(TOO_MANY, {"max": MAX_SAVED})] else
                                str(refused))

    threads = [threading.Thread(target=tab, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["kept"] * 5 + ["refused"] * 7
    with Session(engine) as session:
        assert len(saved_searches(session, _user(session, "clerk:李四"))) == MAX_SAVED


def test_a_name_that_shows_nothing_is_no_name_and_one_name_typed_two_ways_is_one(engine):
    for blank in ("\u3164", "\u2800", " \u3164 ", "\u115f\u1160"):  # Hangul fillers, a blank Braille cell
        assert (NO_NAME, {}) in _pairs(name_problems(blank, "case=AB")), repr(blank)
    _users(engine)
    with Session(engine) as session:
        li = _user(session, "clerk:李四")
        composed = save_search(session, li, "caf\u00e9", "case=A")
        decomposed = save_search(session, li, "cafe\u0301", "case=B")
        assert decomposed.id == composed.id and [s.query for s in saved_searches(session, li)] == ["case=B"]
