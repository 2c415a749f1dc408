"""Catalogue texts said in the page's language: the retention rule a recording's row records, why it is held, a
case type's period, a caller's scope, where a link came from.

The catalogue keeps these in English on purpose: they are part of the record (rows, custody events, manifests,
`evidence verify`'s findings say them the same way whatever language a clerk reads). A page in Chinese says them
in Chinese by the patterns below; a text no pattern reads (an older row, a note an administrator typed) is shown
as recorded, never dropped. Pure.
"""
from __future__ import annotations

import re
from itertools import pairwise

from catalog.access import Scope

__all__ = ["link_source_words", "period_words", "retention_words", "scope_words"]

#: A retention rule or hold reason as catalog.retention and ingest write it -> how a Chinese page says it.
_RETENTION_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), zh) for p, zh in (
    (r"routine: later of capture end and archiving \+ (?P<n>\d+) months",
     "常规保存：自采集结束与归档两者中较晚者起 {n} 个月"),
    (r"case (?P<case>.+?) closed (?P<date>\d{4}-\d{2}-\d{2}) \+ (?P<n>\d+) years \((?P<code>[^)]*)\)",
     "案件 {case} 于 {date} 结案，再保存 {n} 年（{code}）"),
    (r"case (?P<case>.+?) \((?P<code>[^)]*)\) is kept permanently", "案件 {case}（{code}）永久保存"),
    (r"case (?P<case>.+?) is open", "案件 {case} 尚未结案"),
    (r"kept: retention never shrinks", "维持原期限：保存期限只延长不缩短"),
    (r"as long as its original, recording (?P<id>\d+)", "与原始记录（第 {id} 号）保存同样长的时间"),
    (r"locked (?P<n>\d+) day at least when archived", "归档时至少锁定 {n} 天"),
    (r"pending case: case number (?P<case>.+?) is not registered here; held until a clerk links the recording to a "
     r"registered case or removes the case number with a reason",
     "待关联案件：案件编号 {case} 未在本系统登记；保全至档案管理员将其关联到已登记案件，或说明理由后删除该案件编号"),
    (r"pending case: case (?P<case>.+?) is registered but the recording was never linked to it; held until a clerk "
     r"links it or removes the case number with a reason",
     "待关联案件：案件 {case} 已登记，但该记录从未关联到该案件；保全至档案管理员关联，或说明理由后删除该案件编号"),
    (r"pending case: marked important and linked to no case; held until a clerk links it to a case or removes the "
     r"important flag with a reason",
     "待关联案件：已标记为重要但未关联任何案件；保全至档案管理员将其关联到案件，或说明理由后取消重要标记"),
))


def _zh(text: str) -> str | None:
    for pattern, said in _RETENTION_ZH:
        found = pattern.fullmatch(text.strip())
        if found:
            return said.format(**found.groupdict())
    return None


def retention_words(text: str | None, lang: str) -> str:
    """A retention rule or hold reason in *lang*; several joined by "; " (the retention page joins a recording's
    hold reasons so) are read one by one, each the shortest run of parts a pattern reads whole (a pending-case
    reason has a "; " of its own); a part no pattern reads is shown as recorded, with its own separator."""
    if not text:
        return "-"
    if not lang.startswith("zh"):
        return text
    parts, start = text.split("; "), 0
    said: list[tuple[str, bool]] = []  # (what is shown, whether a pattern read it)
    while start < len(parts):
        for end in range(start + 1, len(parts) + 1):
            found = _zh("; ".join(parts[start:end]))
            if found is not None:
                said.append((found, True))
                start = end
                break
        else:
            said.append((parts[start], False))
            start += 1
    out = said[0][0]
    for (_before, read_before), (part, read) in pairwise(said):
        out += ("；" if read or read_before else "; ") + part
    return out


def period_words(period: str | None, lang: str) -> str:
    """A case type's period as catalog.retention.CaseType.describe says it ("5 years", "permanent")."""
    if not period or not lang.startswith("zh"):
        return period or "-"
    if period == "permanent":
        return "永久"
    years = re.fullmatch(r"(\d+) years?", period)
    return f"{years.group(1)} 年" if years else period


def scope_words(scope: Scope, lang: str) -> str:
    """What a caller sees (catalog.access.Scope.describe) in *lang*."""
    if not lang.startswith("zh"):
        return scope.describe()
    if scope.everything:
        return "整个档案"
    parts = [f"执法人员 {n} 本人的记录" for n in sorted(scope.officers)] + [f"单位 {u}" for u in sorted(scope.units)]
    return "、".join(parts) or "无（执法人员账户未绑定警号）"


#: CaseLink.source: a clerk's link, one made from the stamped case number, a text record attached to the case.
_SOURCES_ZH = {"manual": "人工关联", "stamp": "按标记的案件编号关联", "attach": "随案附件"}


def link_source_words(source: str, lang: str) -> str:
    """How a recording came to serve a case (CaseLink.source) in *lang*."""
    return _SOURCES_ZH.get(source, source) if lang.startswith("zh") else source
