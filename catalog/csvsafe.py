"""CSV the archive hands out: every cell defused against formula injection, and a UTF-8 BOM first.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula (and a leading tab or carriage return
can hide one), so a login name such as `=cmd|' /C calc'!A0` typed at the sign-in form would run on the auditor's
machine when the custody log is opened. OWASP's rule: prefix such a cell with a single quote, which makes it text.
The BOM makes Excel (and WPS) read the file as UTF-8, so Chinese names are not garbled. Pure functions.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["BOM", "FORMULA_STARTS", "csv_chunks", "defuse"]

#: The characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: ... also after leading whitespace: spreadsheets skip spaces (and a pasted cell's tabs and line breaks) before `=`.
_FORMULA_SIGNS = ("=", "+", "-", "@")
BOM = "\ufeff"


def defuse(value: Any) -> str:
    """The cell's text, with a single quote in front when it would start a formula: it starts with one of
    FORMULA_STARTS, or its first character that is not whitespace is `=`, `+`, `-` or `@` (`  =1+1`). None is an
    empty cell."""
    text = "" if value is None else str(value)
    risky = text.startswith(FORMULA_STARTS) or text.lstrip().startswith(_FORMULA_SIGNS)
    return "'" + text if risky else text


def csv_chunks(header: Iterable[Any], rows: Iterable[Iterable[Any]], *, chunk_chars: int = 64 * 1024) -> Iterator[str]:
    """The CSV text in pieces of about *chunk_chars* (for a streamed download): the BOM, the header, then each row,
    every cell passed through `defuse`."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow([defuse(cell) for cell in header])
    for row in rows:
        writer.writerow([defuse(cell) for cell in row])
        if out.tell() > chunk_chars:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
