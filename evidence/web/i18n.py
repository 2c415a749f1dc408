"""Languages of the web pages: gettext catalogs (Babel `.po` files), zh-CN by default, English on a switch."""
from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "UNTRANSLATED", "catalog_messages", "gettext_for"]

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"zh_CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"


@cache
def catalog_messages(language: str) -> dict[str, str]:
    """msgid -> msgstr for *language*, read from its `.po` catalog (no compile step needed)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}


#: Texts a page asked to translate that its catalog does not hold (shown in English instead), up to a thousand:
#: the zh-CN render test of every page fails on any (tests/evidence/web/test_i18n_pages.py).
UNTRANSLATED: set[str] = set()


def gettext_for(language: str):  # type: ignore[no-untyped-def]
    messages = catalog_messages(language if language in LANGUAGES else DEFAULT_LANGUAGE)

    def gettext(text: str) -> str:
        found = messages.get(text)
        if found is None:
            if len(UNTRANSLATED) < 1000 and str(text).strip():
                UNTRANSLATED.add(str(text))
            return text
        return found

    return gettext
