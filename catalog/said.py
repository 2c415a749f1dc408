"""Messages that can be said in the reader's language: English text (what logs, the command line and str() show)
that keeps its message id and values, so the web app says it in Chinese (said_in, in evidence.web.deps.render).

    raise CaseStateError(say("case {case} is open already", case=case.number))

A value may itself be a Said (translated in turn) or a list of them (joined with "; "); listed(items) says
items separated by ", " (roles, ids, classes). An exception of the
catalogue whose message is a Said gives it back whole from str() (catalog.errors.CatalogError.__str__), so a
page that shows `str(exc)` can still translate it; an f-string or a join makes plain English of it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Said", "kept", "listed", "said_in", "said_of", "say", "unkept"]


def _english(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "; ".join(_english(v) for v in value)
    return str(value)


class Said(str):
    """English text, its message id (`message`, a str.format template) and its `values`."""

    message: str
    values: dict[str, Any]
    translated = True  # False: the message is no message id, only where the values go (listed)

    def __new__(cls, message: str, /, **values: Any) -> Said:
        # without values nothing is filled in: a word said as it is (a role, a state) may hold braces
        made = super().__new__(cls, message.format(**{k: _english(v) for k, v in values.items()}) if values
                               else message)
        made.message, made.values = message, values
        return made

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (a worker's exception) as what it is, not as plain text
        return (_remade, (self.message, self.values))


def _remade(message: str, values: dict[str, Any]) -> Said:
    return Said(message, **values)


class _Listed(Said):
    """Values in a row (listed): only its values are translated, the separators never looked up."""

    translated = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_relisted, (self.message, self.values))


def _relisted(message: str, values: dict[str, Any]) -> Said:
    return _Listed(message, **values)


def say(message: str, /, **values: Any) -> Said:
    """*message* (an English template, the message id) with *values* filled in, able to be said in another
    language."""
    return Said(message, **values)


def listed(items: Iterable[Any], sep: str = ", ") -> Said:
    """*items* said one after another, separated by *sep*; each item that is a Said is translated in turn (a
    plain list as a value is separated by "; ")."""
    values = {f"i{n}": item for n, item in enumerate(items)}
    return _Listed(sep.join("{" + name + "}" for name in values), **values)


def said_in(text: str, translate: Callable[[str], str]) -> str:
    """*text* in the language *translate* (a gettext) speaks: a Said's message translated and its values (each
    translated in turn) filled in; plain text as it is. Pure."""
    if not isinstance(text, Said):
        return text

    def value(v: Any) -> str:
        if isinstance(v, list | tuple):
            return "; ".join(value(x) for x in v)
        return said_in(v, translate) if isinstance(v, Said) else str(v)

    template = translate(text.message) if text.translated else text.message
    return template.format(**{k: value(v) for k, v in text.values.items()}) if text.values else template


def said_of(exc: BaseException) -> str:
    """What *exc* says: its Said whole when it carries one (a ValueError's or an OSError's str() would make plain
    English of it), else its str(). Pure."""
    text = str(exc)
    if isinstance(text, Said):
        return text
    return exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], Said) else text


def kept(text: str) -> dict[str, Any] | None:
    """*text* as JSON a row can hold (a job's error said later in its reader's language): its message id, whether
    it is one (listed rows are not) and its values, each in turn; None for plain text. Pure."""
    if not isinstance(text, Said):
        return None

    def value(v: Any) -> Any:
        if isinstance(v, Said):
            return kept(v)
        if isinstance(v, list | tuple):
            return {"list": [value(x) for x in v]}
        return {"text": str(v)}

    return {"message": text.message, "translated": text.translated,
            "values": {k: value(v) for k, v in text.values.items()}}


def unkept(data: dict[str, Any]) -> Said:
    """The Said *data* (from kept) holds. Pure."""
    def value(v: dict[str, Any]) -> Any:
        if "list" in v:
            return [value(x) for x in v["list"]]
        return v["text"] if "text" in v else unkept(v)

    values = {k: value(v) for k, v in data["values"].items()}
    return Said(data["message"], **values) if data.get("translated", True) else _Listed(data["message"], **values)
