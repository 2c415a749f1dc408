"""A supervisor's units named by a name more than one unit carries (found by a review): every 大队 may have its
一中队, and a supervisor set up with "一中队" read the recordings of another unit's 一中队."""
from __future__ import annotations

import pytest
from sqlmodel import Session

from catalog.access import out_of_scope, scope_for
from catalog.errors import UserInvalid
from catalog.models import Officer
from catalog.users import add_user, set_scope
from tests.helpers.recordings import add_recording


def _two_units_named_alike(session: Session) -> tuple[int, int]:
    session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
    session.add(Officer(number="070809", name="赵六", unit_number="U7", unit_name="一中队"))
    mine = add_recording(session, 1, officer_number="010203")
    theirs = add_recording(session, 2, officer_number="070809", sha256=f"{2:064x}")
    session.commit()
    assert mine.id is not None and theirs.id is not None
    return mine.id, theirs.id


def test_a_unit_name_two_units_carry_matches_neither_and_a_number_matches_its_own(engine):
    with Session(engine) as session:
        mine, theirs = _two_units_named_alike(session)
        by_name = scope_for(roles=["supervisor"], officer_number=None, units=["一中队"])
        assert out_of_scope(session, by_name, [mine, theirs]) == [mine, theirs]  # fail closed: which one?
        by_number = scope_for(roles=["supervisor"], officer_number=None, units=["U1"])
        assert out_of_scope(session, by_number, [mine, theirs]) == [theirs]
        unique = scope_for(roles=["supervisor"], officer_number=None, units=["二中队"])
        session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
        third = add_recording(session, 3, officer_number="030405", sha256=f"{3:064x}")
        session.commit()
        assert third.id is not None
        assert out_of_scope(session, unique, [mine, theirs, third.id]) == [mine, theirs]  # a name one unit carries


def test_a_supervisor_cannot_be_given_a_unit_by_a_name_two_units_carry(engine):
    with Session(engine) as session:
        _two_units_named_alike(session)
        with pytest.raises(UserInvalid) as refused:
            add_user(session, "王队长", roles=["supervisor"], by="admin", units=["一中队"])
        assert "unit '一中队' is the name of units 'U1', 'U7': give the unit's number" in str(refused.value)
        add_user(session, "王队长", roles=["supervisor"], by="admin", units=["U1"])
        with pytest.raises(UserInvalid, match="is the name of units 'U1', 'U7'"):
            set_scope(session, "王队长", officer_number=None, units=["一中队"], by="admin")


def test_a_unit_number_means_its_own_unit_even_when_another_unit_is_named_so(engine):
    """A review's administrator entered officer 040506 in unit X9 named "U1": the supervisor of unit U1 (by its
    number) then read 040506's recordings too, and setting the scope again raised nothing."""
    with Session(engine) as session:
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="040506", name="钱七", unit_number="X9", unit_name="U1"))
        session.add(Officer(number="050607", name="孙八", unit_number="X8", unit_name="三中队"))
        mine = add_recording(session, 1, officer_number="010203")
        named_so = add_recording(session, 2, officer_number="040506", sha256=f"{2:064x}")
        third = add_recording(session, 3, officer_number="050607", sha256=f"{3:064x}")
        session.commit()
        ids = [r.id for r in (mine, named_so, third) if r.id is not None]
        assert len(ids) == 3
        by_number = scope_for(roles=["supervisor"], officer_number=None, units=["U1"])
        assert out_of_scope(session, by_number, ids) == [named_so.id, third.id]
        add_user(session, "王队长", roles=["supervisor"], by="admin", units=["U1"])  # a number: its own unit
        by_its_number = scope_for(roles=["supervisor"], officer_number=None, units=["X9"])
        assert out_of_scope(session, by_its_number, ids) == [mine.id, third.id]
        by_a_plain_name = scope_for(roles=["supervisor"], officer_number=None, units=["三中队"])
        assert out_of_scope(session, by_a_plain_name, ids) == [mine.id, named_so.id]  # names still work
