"""Sensitivity classes (密级/敏感类别) and what each lets a person do with a recording. Pure.

Every recording, text record and case has a class. The seed documents require that records touching state secrets,
commercial secrets or personal privacy are handled by the rules (「涉及国家秘密、商业秘密、个人隐私的记录资料…严格执行
国家有关规定」); the class is how the archive applies them:

* 公开 `public` and 内部 `internal` (the default): the role and scope decide (catalog.access).
* 个人隐私 `personal` and 商业秘密 `commercial`: anyone in scope sees the entry and its thumbnail; playing,
  downloading or exporting it needs, besides the role and scope, to be its collecting officer, a records clerk (the
  custodian), or to hold a grant on a case it serves (catalog.classification.grant_case_access).
* 国家秘密 `state_secret`: every read of its content, the thumbnail included, needs a grant on a case it serves,
  whatever the role; it never leaves the archive in a package, and is never released.

A case's class reaches its recordings: linking a recording to a case, or raising a case's class, raises the
recording's class to the case's where it is lower (catalog.classification). Lowering a class is never automatic.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from catalog.said import Said, listed, say

__all__ = ["CLASSES", "CONTENT_STEPS", "DEFAULT", "LABELS", "MAX_NAME", "NEEDS_GRANT_FOR", "RANK", "Holder",
           "class_problem", "class_word", "higher", "label", "parse_class", "parse_names", "step_word"]

CLASSES = ("public", "internal", "commercial", "personal", "state_secret")
DEFAULT = "internal"
#: Order for "raise to at least": personal and commercial are held alike; state secret above both.
RANK = {name: i for i, name in enumerate(CLASSES)}
#: Chinese and English names (shown everywhere the item is; `evidence classify` takes either or the key).
LABELS = {
    "public": ("公开", "public"),
    "internal": ("内部", "internal"),
    "commercial": ("商业秘密", "commercial secret"),
    "personal": ("个人隐私", "personal privacy"),
    "state_secret": ("国家秘密", "state secret"),
}
#: What a person may do with a recording: see its content (thumbnail, photo), play it, download it, put it in a
#: package, release it to someone outside (issue 18, part 3).
CONTENT_STEPS = ("view", "play", "download", "export", "release")
#: For each class, the steps that need more than role and scope.
NEEDS_GRANT_FOR: dict[str, frozenset[str]] = {
    "public": frozenset(),
    "internal": frozenset(),
    "commercial": frozenset({"play", "download", "export", "release"}),
    "personal": frozenset({"play", "download", "export", "release"}),
    "state_secret": frozenset({"view", "play", "download", "export", "release"}),
}
#: Never, whoever asks (a grant does not open them).
NEVER: dict[str, frozenset[str]] = {"state_secret": frozenset({"export", "release"})}
#: The steps (CONTENT_STEPS) and the other acts on a recording (catalog.access.check_access's action, a web route's),
#: as a refusal says them: in the reader's language on a page.
_STEP_WORDS = {"view": say("view"), "play": say("play"), "download": say("download"), "export": say("export"),
               "release": say("release"), "redact": say("redact"), "share": say("share"),
               "snapshot": say("snapshot"), "classify": say("classify"), "link": say("link"), "stamp": say("stamp"),
               "manage_cases": say("manage_cases")}


#: Each class as a message says it (the built-in names; a page says them in its reader's language).
_CLASS_WORDS = {"public": say("public"), "internal": say("internal"), "commercial": say("commercial secret"),
                "personal": say("personal privacy"), "state_secret": say("state secret")}


def class_word(name: str) -> Said | str:
    """Class *name* as a message says it (an unknown name as it is). Pure."""
    return _CLASS_WORDS.get(name, name)


def step_word(step: str) -> str:
    """*step* (view, play, …; an act that reads a recording) as a refusal says it: a message a page says in its
    reader's language; an act without one as it is. Pure."""
    return _STEP_WORDS.get(step, step)


#: The most characters a configured name may have (it is shown in badges and table cells).
MAX_NAME = 20


def label(name: str, lang: str = "zh", names: Mapping[str, tuple[str, str]] | None = None) -> str:
    """*name*'s Chinese or English name: the agency's (*names*, EVIDENCE_SENSITIVITY_NAMES) or the built-in."""
    zh, en = (names or LABELS).get(name, LABELS.get(name, (name, name)))
    return zh if lang.startswith("zh") else en


def _folded(text: str) -> str:
    return text.strip().lower().replace("-", "_").replace(" ", "_")


def parse_class(text: str, names: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The class *text* names: its key, or its Chinese or English name, the agency's or the built-in one
    (ValueError listing the choices)."""
    wanted = _folded(text)
    for table in (names or {}, LABELS):
        for name, (zh, en) in table.items():
            if wanted in (name, _folded(zh), _folded(en)):
                return name
    raise ValueError(say("{text!r} is no sensitivity class; choose one of {classes}", text=text,
                         classes=", ".join(f"{n} ({label(n, 'zh', names)})" for n in CLASSES)))


def parse_names(table: Mapping[str, object]) -> dict[str, tuple[str, str]]:
    """The agency's names from a TOML table `{class: {zh = "…", en = "…"}}` (classes left out keep the built-in
    names); ValueError naming every problem: an unknown class, a missing or blank or too long name, one name for
    two classes. Pure."""
    problems: list[Said] = []
    names = dict(LABELS)
    for key, entry in table.items():
        if key not in CLASSES:
            problems.append(say("[{key}] is no class; the classes are {classes}", key=key, classes=", ".join(CLASSES)))
            continue
        if not isinstance(entry, Mapping):
            problems.append(say("[{key}] must be a table with zh and en", key=key))
            continue
        pair = []
        for lang in ("zh", "en"):
            value = entry.get(lang)
            if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME:
                problems.append(say("[{key}] {lang} must be a name of 1-{max} characters", key=key, lang=lang,
                                    max=MAX_NAME))
            pair.append(value.strip() if isinstance(value, str) else "")
        names[key] = (pair[0], pair[1])
    for lang, index in (("zh", 0), ("en", 1)):
        seen: dict[str, str] = {}
        for key, given in names.items():
            folded = _folded(given[index])
            if folded and folded in seen:
                problems.append(say("the {lang} name {name!r} is given to both {first} and {second}", lang=lang,
                                    name=given[index], first=seen[folded], second=key))
            seen[folded] = key
    if problems:
        raise ValueError(listed(problems, sep="; "))
    return names


def higher(a: str, b: str) -> str:
    """The stricter of two classes."""
    return a if RANK.get(a, RANK[DEFAULT]) >= RANK.get(b, RANK[DEFAULT]) else b


@dataclass(frozen=True)
class Holder:
    """What, besides role and scope, may open a classed recording to one person."""

    granted: bool = False  # holds a live grant on a case the recording serves
    collected_it: bool = False  # is its collecting officer
    custodian: bool = False  # a records clerk (档案管理员)


def class_problem(sensitivity: str, step: str, holder: Holder) -> str | None:
    """Why *step* on a recording of class *sensitivity* is refused to *holder* (None when allowed). Role and scope
    are checked before this (catalog.access). Pure."""
    if step in NEVER.get(sensitivity, frozenset()):
        return say("a {name} ({zh}) recording never leaves the archive ({step})", name=label(sensitivity, "en"),
                   zh=label(sensitivity), step=step_word(step))
    if step not in NEEDS_GRANT_FOR.get(sensitivity, frozenset()):
        return None
    if holder.granted:
        return None
    if sensitivity != "state_secret" and (holder.collected_it or holder.custodian):
        return None
    who = (say("a grant on a case it serves") if sensitivity == "state_secret" else
           say("a grant on a case it serves, or being its collecting officer or a records clerk"))
    return say("it is {name} ({zh}): to {step} it needs {who}", name=label(sensitivity, "en"), zh=label(sensitivity),
               step=step_word(step), who=who)
