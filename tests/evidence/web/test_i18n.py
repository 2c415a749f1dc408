"""Every visible text of the web pages is in both gettext catalogs (zh-CN translated, English)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from catalog.access import ACCESS_STEPS
from catalog.case_models import CaseStatus, DisposalStatus
from catalog.device_alerts import ALERT_KINDS
from catalog.devices import DEVICE_STATUSES
from catalog.integrity import INTEGRITY_CHECKS
from catalog.models import DockResult, IntegrityStatus, MediaKind, RecordingState
from catalog.periods import PERIOD_KINDS
from catalog.redaction_jobs import JOB_STAGES, JOB_STATES
from catalog.registry import CERTIFICATE_STATES
from catalog.releases import RELEASE_KINDS, RELEASE_STATES
from catalog.saved_searches import PROBLEMS as SAVED_SEARCH_PROBLEMS
from catalog.search import RETENTION_STATES, SORTS
from catalog.spotcheck import OUTCOMES
from catalog.users import ROLES
from evidence.web.admin import SECTIONS
from evidence.web.deps import DONE, NAV
from evidence.web.i18n import catalog_messages
from evidence.web.search import BULK_ACTIONS
from evidence.web.search_form import FIELD_LABELS, QUICK_RANGES, SearchInvalid, parse_search

WEB = Path(__file__).parents[3] / "evidence" / "web"
LITERAL = re.compile(r"""(?:\b_|gettext_for\([^)]*\))\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*[,)]""")


def used_message_ids() -> set[str]:
    """The literal `_("…")` strings in the templates and the web modules, plus the values shown through
    `_(value)`: navigation labels, media kinds, integrity, retention states, sort orders, case statuses, roles,
    certificate states and access steps."""
    found: set[str] = set()
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("*.py")]:
        for match in LITERAL.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(1) if match.group(1) is not None else match.group(2))
    found |= {label for _path, label, _action in NAV}
    found |= {k.value for k in MediaKind} | {i.value for i in IntegrityStatus} | {s.value for s in CaseStatus}
    found |= set(RETENTION_STATES) | {f"sort {s}" for s in SORTS}
    found |= set(ROLES) | set(CERTIFICATE_STATES) | set(ACCESS_STEPS) | {label for _path, label in SECTIONS}
    found |= {"due", "upcoming", "held"} | {s.value for s in DisposalStatus}
    found |= set(FIELD_LABELS.values()) | {"pending", *OUTCOMES} | set(INTEGRITY_CHECKS)
    found |= set(JOB_STATES) | set(JOB_STAGES) | set(RELEASE_KINDS) | set(RELEASE_STATES)
    found |= {f"bulk {a}" for a in BULK_ACTIONS} | set(DONE.values()) | set(QUICK_RANGES)
    found |= set(DEVICE_STATUSES) | {s.value for s in RecordingState} | {f"alert {k}" for k in ALERT_KINDS}
    found |= {r.value for r in DockResult}  # a recorder's docks on its page
    found |= {f"period {k}" for k in PERIOD_KINDS} | set(SAVED_SEARCH_PROBLEMS) | said_message_ids()
    return found


def said_message_ids() -> set[str]:
    """Every message made with catalog.said.say in the code (a page may say any of them in Chinese)."""
    found: set[str] = set()
    for top in ("catalog", "evidence", "ingest"):
        for path in (WEB.parents[1] / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "say" \
                        and node.args and isinstance(node.args[0], ast.Constant):
                    found.add(str(node.args[0].value))
    return found


def problem_messages() -> set[str]:
    from zoneinfo import ZoneInfo

    from catalog.access import Scope

    bad = {"case": "x" * 300, "from": "x", "to": "y", "lat": "x", "lon": "1", "radius": "1", "kind": "x",
           "page": "0", "size": "7"}
    messages = set()
    for query in (bad, {"lat": "91", "lon": "1", "radius": "1"}, {"lat": "1", "lon": "181", "radius": "1"},
                  {"lat": "1", "lon": "1", "radius": "0"}, {"from": "2026-11-02", "to": "2026-11-01"}):
        try:
            parse_search(query, zone=ZoneInfo("Asia/Shanghai"), scope=Scope(everything=True))
        except SearchInvalid as exc:
            messages |= {p.message for p in exc.problems}
    return messages


def test_every_shown_message_is_in_both_catalogs():
    chinese, english = catalog_messages("zh_CN"), catalog_messages("en")
    wanted = used_message_ids() | problem_messages()
    assert sorted(wanted - set(chinese)) == []
    assert sorted(wanted - set(english)) == []
    assert set(chinese) == set(english)
    assert sorted(set(chinese) - wanted) == []  # no message left behind by a removed page
    untranslated = [m for m in wanted if not re.search(r"[\u4e00-\u9fff]", chinese[m]) and m not in ("SHA-256",)]
    assert untranslated == []


def _fields(text: str) -> set[str]:
    from string import Formatter
    return {name for _literal, name, _spec, _conv in Formatter().parse(text) if name is not None}


def test_every_translation_fills_in_exactly_the_values_its_message_names():
    """A translation that names a value its message lacks would fail when said (KeyError); one that drops a
    value hides it from the reader (a recording id, a date)."""
    for language in ("zh_CN", "en"):
        wrong = {m: t for m, t in catalog_messages(language).items() if _fields(m) != _fields(t)}
        assert wrong == {}, language
