"""What counts as a stated reason (调阅事由) for reading evidence: something a person can read, of a sentence's
length. Pure: no catalogue."""
from __future__ import annotations

import pytest

from catalog.access import MAX_REASON_CHARS, ReasonRequired, stated_reason


@pytest.mark.parametrize("blank", [None, "", " ", "\t\n", "\u3000", "\u00a0", "\x00", "\x00\x01\x7f", "\u200b",
                                   "\u200b\u200c\u200d\u2060\ufeff", "\u2028\u2029", "\u202e", "\ue000", " \x00 "])
def test_nothing_readable_is_no_reason(blank):
    assert stated_reason(blank) is None


LONGEST = "x" * MAX_REASON_CHARS


@pytest.mark.parametrize(("given", "kept"), [("审计", "审计"), ("  复核 案件 ", "复核 案件"), ("a", "a"),
                                             ("\u200b调阅", "\u200b调阅"), (LONGEST, LONGEST)])
def test_a_readable_reason_is_kept_as_stated_without_its_surrounding_space(given, kept):
    assert stated_reason(given) == kept


def test_a_reason_longer_than_a_sentence_is_refused_naming_its_length():
    with pytest.raises(ReasonRequired, match=f"{MAX_REASON_CHARS + 1} characters long; state it in at most "
                                             f"{MAX_REASON_CHARS}"):
        stated_reason("理" * (MAX_REASON_CHARS + 1))
