"""Device file names: pure rules for showing them safely and matching globs.

Names from a device are data, never paths we build on: staging files are
named by hash, so a hostile name cannot reach outside staging. These
functions make a name safe to print and store, and say what is odd about it.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache

__all__ = ["MAX_DISPLAY_CHARS", "display_name", "glob_regex", "matches_any", "name_warnings"]

#: Longest name kept for display; longer ones end in "…".
MAX_DISPLAY_CHARS = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def display_name(raw: bytes) -> str:
    """UTF-8 text for a raw name, a different text for every different name (a device file is known by it):
    undecodable bytes and control characters become \\xNN and a backslash \\\\, so the byte 0xFF and the four
    characters `\\xff` stay apart; a name longer than MAX_DISPLAY_CHARS keeps its start and ends in "…#" and 16
    hex digits of the SHA-256 of the whole name. Before, both pairs came out the same and the second file of each
    was skipped as "already ingested" on its first dock (found by a review)."""
    text = raw.decode("utf-8", errors="surrogateescape")
    if _PLAIN.fullmatch(text) is None:
        text = _ESCAPE.sub(_escaped, text)
    if len(text) > MAX_DISPLAY_CHARS:
        text = text[: MAX_DISPLAY_CHARS - 18] + "…#" + hashlib.sha256(raw).hexdigest()[:16]
    return text


#: A name that needs no escaping (no control character, backslash or undecodable byte).
_PLAIN = re.compile(r"[^\x00-\x1f\x7f\\\udc80-\udcff]*")
_ESCAPE = re.compile(r"[\x00-\x1f\x7f\\\udc80-\udcff]")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def name_warnings(raw: bytes) -> list[str]:
    """What is hostile or odd about a device name (empty: an ordinary name)."""
    warnings: list[str] = []
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append("name is not valid UTF-8")
    if _CONTROL.search(raw.decode("utf-8", errors="replace")):
        warnings.append("name contains control characters")
    if b"/" in raw or b"\\" in raw:
        warnings.append("name contains a path separator")
    if raw in (b".", b"..") or raw.startswith(b"../") or b"/../" in raw:
        warnings.append("name refers to a parent folder")
    if raw.startswith(b"-"):
        warnings.append("name starts with '-'")
    if len(raw) > 255:
        warnings.append(f"name is {len(raw)} bytes long (over 255)")
    return warnings


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a case-insensitive glob: `**/` spans folders, `*` and `?` stay within one."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def matches_any(relative: str, patterns: tuple[str, ...]) -> bool:
    return any(glob_regex(p).fullmatch(relative) for p in patterns)
