"""Every retention rule, hold reason, case period, scope and link source the catalogue writes is said in Chinese
on a Chinese page (evidence.web.words); the texts come from the catalogue's own functions, so a changed wording
there fails here instead of reaching a clerk in English."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime

from catalog.access import EVERYTHING, Scope, scope_for
from catalog.retention import DEFAULT_CASE_TYPES, CaseFacts, RetentionPolicy, decide_retention, pending_case_holds
from evidence.web.words import link_source_words, period_words, retention_words, scope_words

POLICY = RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai")
BASE = datetime(2026, 11, 20, tzinfo=UTC)
LATIN = re.compile(r"[A-Za-z]{3,}")


def _english_left(said: str, *allowed: str) -> list[str]:
    """English words left in a Chinese text, apart from the case numbers and codes it names."""
    for value in allowed:
        said = said.replace(value, "")
    return LATIN.findall(said)


def _every_catalogue_text() -> list[str]:
    texts = []
    closed = CaseFacts("AB-2026-00042", "penalty-general", "closed", date(2026, 1, 5))
    for cases in ([], [closed], [CaseFacts("AB-2026-00043", "major", "closed", date(2026, 1, 5))],
                  [CaseFacts("AB-2026-00044", "inspection", "open", None)]):
        decision = decide_retention(base_time=BASE, current=None, cases=cases, policy=POLICY)
        texts += [decision.rule, *decision.hold_reasons]
    kept = decide_retention(base_time=BASE, current=datetime(2099, 1, 1, tzinfo=UTC), cases=[], policy=POLICY)
    texts.append(kept.rule)
    for flags in ({"case_registered": False, "ever_linked_to_it": False, "important": False},
                  {"case_registered": True, "ever_linked_to_it": False, "important": False},
                  {"case_registered": True, "ever_linked_to_it": True, "important": True}):
        texts += pending_case_holds(case_number="AB-2026-00042", linked_now=False, **flags)
    texts += ["as long as its original, recording 17",  # ingest.redaction.derivative: a redacted copy
              "routine: later of capture end and archiving + 6 months; locked 1 day at least when archived"]
    return texts


def test_every_retention_text_the_catalogue_writes_reads_in_chinese():
    texts = _every_catalogue_text()
    assert len(texts) == 12
    for text in texts:
        said = retention_words(text, "zh_CN")
        assert said != text and not _english_left(said, "AB-2026-00042", "AB-2026-00043", "AB-2026-00044",
                                                  "penalty-general", "major", "inspection"), (text, said)
        assert retention_words(text, "en") == text  # English pages say them as recorded
    assert retention_words("case AB-1 closed 2026-01-05 + 30 years (penalty-general)", "zh_CN") == (
        "案件 AB-1 于 2026-01-05 结案，再保存 30 年（penalty-general）")


def test_a_text_no_pattern_reads_is_shown_as_recorded():
    for odd in ("set by hand during the 2025 migration", "case AB-1 is open; kept by order 17"):
        assert odd.split("; ")[-1] in retention_words(odd, "zh_CN")
    assert retention_words("case AB-1 is open; kept by order 17", "zh_CN") == "案件 AB-1 尚未结案；kept by order 17"
    assert retention_words(None, "zh_CN") == retention_words("", "en") == "-"


def test_periods_scopes_and_link_sources_read_in_chinese():
    assert {t.describe(): period_words(t.describe(), "zh_CN") for t in DEFAULT_CASE_TYPES.values()} == {
        "30 years": "30 年", "10 years": "10 年", "permanent": "永久"}
    scopes = {
        "everything": EVERYTHING,
        "officer": scope_for(roles=["officer"], officer_number="010203", units=[]),
        "units": scope_for(roles=["supervisor"], officer_number=None, units=["U2", "U1"]),
        "nothing": Scope(),
    }
    said = {name: scope_words(scope, "zh_CN") for name, scope in scopes.items()}
    assert said == {"everything": "整个档案", "officer": "执法人员 010203 本人的记录", "units": "单位 U1、单位 U2",
                    "nothing": "无（执法人员账户未绑定警号）"}
    assert scope_words(scopes["units"], "en") == "unit U1, unit U2"
    assert [link_source_words(s, "zh_CN") for s in ("manual", "stamp", "attach", "imported")] == [
        "人工关联", "按标记的案件编号关联", "随案附件", "imported"]
