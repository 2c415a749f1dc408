"""report.pdf: the court report (catalog.court_report's data model) as a PDF, with fpdf2 and an embedded CJK font.

Courts file PDFs. fpdf2 is pure Python (no browser, no system library) and embeds a subset of a TrueType or TTC
font, so Chinese prints on any reader. The document is written in fpdf2's PDF/A-2U mode: XMP metadata with the
PDF/A identification, an sRGB output intent, every font embedded with a ToUnicode map (the text can be searched
and copied), no encryption. fpdf2 does not validate the result, and no PDF/A validator (veraPDF) runs here, so
the file claims PDF/A-2U but its conformance is not proven (docs/verification.md). Without a usable font the
PDF is not written and `write_pdf` says why; the caller writes the HTML and goes on. Nor is it written when the
font has no glyph for a character the report holds (an emoji in a file name, a CJK Extension B character, the
ligature ﬁ): fpdf2 would silently leave it out, and the PDF would state another fact than the signed manifest.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fontTools.ttLib import TTCollection, TTFont  # type: ignore[import-untyped]  # fpdf2 depends on it; no stubs
from fpdf import FPDF
from fpdf.fonts import FontFace, TTFFont

from catalog.manifests import software_version

if TYPE_CHECKING:
    from catalog.court_report import EventLine, ItemReport, Report, Row

__all__ = ["DEFAULT_FONT", "FontFaces", "inspect_font", "output_pdf", "undrawable_reason", "write_pdf"]

#: Debian's fonts-wqy-zenhei (scripts/bootstrap.sh installs it); EVIDENCE_REPORT_FONT names another.
DEFAULT_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
_TEXT, _MONO = "report", "report-mono"
_LABEL_MM = 42.0


def _document(report: Report, font: Path, mono: int) -> FPDF:
    """An A4 PDF/A-2U document with the font embedded: face 0 for text, face *mono* for hashes."""
    pdf = FPDF(format="A4", enforce_compliance="PDFA_2U")
    pdf.add_font(_TEXT, "", str(font), collection_font_number=0)
    pdf.add_font(_MONO, "", str(font), collection_font_number=mono)
    pdf.set_title(report.labels["title"])
    pdf.set_subject(report.labels["title"])
    pdf.set_creator(f"evidence-ingest {software_version()}")
    pdf.set_producer(f"evidence-ingest {software_version()} (fpdf2)")
    pdf.set_lang("zh-CN" if report.language == "zh" else "en")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, 15)
    pdf.add_page()
    return pdf


def _heading(pdf: FPDF, text: str, size: float = 13) -> None:
    pdf.set_font(_TEXT, size=size)
    pdf.ln(2)
    pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.set_font(_TEXT, size=9)


def _paragraph(pdf: FPDF, text: str, size: float = 9) -> None:
    pdf.set_font(_TEXT, size=size)
    pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")


def _rows(pdf: FPDF, rows: list[Row]) -> None:
    """A two-column table: label, value (hashes and fingerprints in the mono face)."""
    pdf.set_font(_TEXT, size=9)
    width = pdf.epw - _LABEL_MM
    with pdf.table(col_widths=(_LABEL_MM, width), first_row_as_headings=False, text_align="LEFT",
                   line_height=4.6) as table:
        for row in rows:
            cells = table.row()
            cells.cell(row.label)
            cells.cell("\n".join(row.lines), style=FontFace(family=_MONO) if row.mono else None)
    pdf.ln(2)


def _events(pdf: FPDF, report: Report, events: list[EventLine]) -> None:
    L = report.labels
    pdf.set_font(_TEXT, size=8)
    with pdf.table(col_widths=(10, 44, pdf.epw - 84, 30), text_align="LEFT", line_height=4.0,
                   headings_style=FontFace(emphasis="", fill_color=(235, 235, 235))) as table:
        head = table.row()
        for text in (L["event_no"], f"{L['local_time']} / {L['utc_time']}", L["event"], L["actor"]):
            head.cell(text)
        for e in events:
            cells = table.row()
            cells.cell(str(e.id))
            cells.cell(f"{e.local}\n{e.utc}")
            cells.cell(f"{e.sentence}\nPREMIS: {e.premis} ({e.premis_uri})\n{L['event_hash']}: {e.hash}")
            cells.cell(e.actor)
    pdf.ln(2)


def _item(pdf: FPDF, report: Report, item: ItemReport) -> None:
    L = report.labels
    _heading(pdf, item.heading, 12)
    _rows(pdf, item.rows)
    if item.stamps:
        _heading(pdf, L["stamp_history"], 10)
        pdf.set_font(_TEXT, size=8)
        with pdf.table(col_widths=(10, 48, 40, pdf.epw - 98), text_align="LEFT", line_height=4.0,
                       headings_style=FontFace(emphasis="", fill_color=(235, 235, 235))) as table:
            head = table.row()
            for text in (L["revision"], f"{L['changed_by']} / {L['changed_at']}", L["change_reason"], L["changes"]):
                head.cell(text)
            for s in item.stamps:
                cells = table.row()
                cells.cell(f"r{s.revision}")
                cells.cell(f"{s.changed_by}\n{s.changed_at}")
                cells.cell(s.reason)
                cells.cell(f"{s.changes}\n{L['signed_at']}: {s.signed_at}\n{L['signed_by']}: {s.key_fingerprint}")
        pdf.ln(2)
    _heading(pdf, L["custody"], 10)
    _events(pdf, report, item.events)


def _body(pdf: FPDF, report: Report) -> None:
    L = report.labels
    _heading(pdf, L["title"], 16)
    _rows(pdf, report.header)
    _heading(pdf, L["verification"])
    problems = report.findings + [text for item in report.items for text in item.findings]
    _paragraph(pdf, L["verified_ok"] if report.ok else "\n".join([L["verified_bad"], *problems]))
    _paragraph(pdf, f"{L['verify_scope']} {L['facts_source']}", 8)
    _heading(pdf, L["signing_keys"])
    _rows(pdf, report.keys)
    if report.case:
        _heading(pdf, L["case"])
        _rows(pdf, report.case)
    for item in report.items:
        _item(pdf, report, item)
    if report.case_events:
        _heading(pdf, L["case_events"])
        _events(pdf, report, report.case_events)
    _heading(pdf, L["coverage"])
    _paragraph(pdf, "\n".join(report.coverage))


@dataclass(frozen=True)
class FontFaces:
    name: str  # the text face's full name
    mono: int  # the index of the fixed-width face in a collection (0: none, hashes are set in the text face)
    glyphs: tuple[frozenset[str], frozenset[str]]  # the characters the text face and the mono face can draw


def inspect_font(font: Path) -> FontFaces | str:
    """*font*'s faces, or why it cannot set the report (missing, not a font fontTools reads, no Chinese glyphs).

    Read here, from a file this function closes, before fpdf2 opens it (fpdf2 leaves the file open when the font
    is bad)."""
    if not font.is_file():
        return (f"the CJK font {font} does not exist (install Debian's fonts-wqy-zenhei, or set "
                "EVIDENCE_REPORT_FONT to a TrueType/TTC font with Chinese glyphs)")
    try:
        with font.open("rb") as fh:
            faces = list(TTCollection(fh, lazy=True)) if fh.read(4) == b"ttcf" else []
            fh.seek(0)
            text = faces[0] if faces else TTFont(fh, lazy=True)
            mono = next((n for n, face in enumerate(faces) if "Mono" in face["name"].getDebugName(4)), 0)
            glyphs = [frozenset(map(chr, face.getBestCmap() or {})) for face in (text, faces[mono] if mono else text)]
            name = text["name"].getDebugName(4) or font.name
    except Exception as exc:  # noqa: BLE001 - whatever fontTools cannot read: no PDF, the export goes on
        return f"the font {font} cannot be used ({type(exc).__name__}: {exc}); set EVIDENCE_REPORT_FONT"
    if not set("证据保管链") <= glyphs[0]:
        return (f"the font {font} has no Chinese glyphs: the report would print blanks; set EVIDENCE_REPORT_FONT "
                "to a CJK font (Debian fonts-wqy-zenhei)")
    return FontFaces(name, mono, (glyphs[0], glyphs[1]))


def _row_texts(where: str, rows: list[Row]) -> Iterator[tuple[str, str, bool]]:
    for row in rows:
        yield f'{where}, row "{row.label}"', row.label, False
        yield f'{where}, row "{row.label}"', "".join(row.lines), row.mono


def _texts(report: Report) -> Iterator[tuple[str, str, bool]]:
    """Every text `_body` draws, in its order: where it is, the text, and whether it is set in the mono face. (All
    labels, drawn or not: they are the report's own words.)"""
    yield from ((f'the label "{key}"', text, False) for key, text in report.labels.items())
    yield from _row_texts("the header", report.header)
    yield from (("the verification findings", text, False) for text in report.findings)
    yield from _row_texts("the signing keys", report.keys)
    yield from _row_texts("the case", report.case)
    for item in report.items:
        name = item.heading.partition(": ")[0]  # "证据 3" of "证据 3: <original name>"
        yield f"the heading of {name}", item.heading, False
        yield from _row_texts(name, item.rows)
        yield from ((f"the findings of {name}", text, False) for text in item.findings)
        for s in item.stamps:
            yield (f"{name} stamp revision {s.revision}", "".join(
                (s.changed_by, s.changed_at, s.reason, s.changes, s.signed_at, s.key_fingerprint)), False)
        for event in item.events:
            yield f"{name} event {event.id}", _event_text(event), False
    for event in report.case_events:
        yield f"case event {event.id}", _event_text(event), False
    yield from (("the coverage", text, False) for text in report.coverage)


def _event_text(e: EventLine) -> str:
    return "".join((str(e.id), e.local, e.utc, e.sentence, e.premis, e.premis_uri, e.hash, e.actor))


def _undrawable(report: Report, font: FontFaces) -> dict[str, str]:
    """The characters of *report* *font* has no glyph for, each with where it first occurs. Whitespace aside:
    fpdf2 breaks lines at a newline or form feed, drops a carriage return, sets a no-break space as a space, and a
    space it cannot draw changes no fact (verify.py compares the text without spaces)."""
    missing: dict[str, str] = {}
    for where, text, mono in _texts(report):
        for ch in sorted(set(text) - font.glyphs[mono], key=text.index):
            if not ch.isspace():
                missing.setdefault(ch, where)
    return missing


def undrawable_reason(font: Path, name: str, missing: dict[str, str]) -> str:
    shown = "; ".join(f"{ch} (U+{ord(ch):04X}) in {where}" if ch.isprintable() else f"U+{ord(ch):04X} in {where}"
                      for ch, where in list(missing.items())[:5])
    more = f" and {len(missing) - 5} other characters" if len(missing) > 5 else ""
    return (f"the font {name} ({font}) has no glyph for {shown}{more}: the PDF would not show those characters "
            "(set EVIDENCE_REPORT_FONT to a font that has them)")


def write_pdf(report: Report, target: Path, *, font: Path = DEFAULT_FONT) -> str | None:
    """Write *report* to *target*; None when written, else why not (the font is missing, unreadable, has no
    Chinese glyphs, or has none for a character the report holds)."""
    face = inspect_font(font)
    if isinstance(face, str):
        return face
    missing = _undrawable(report, face)
    if missing:
        return undrawable_reason(font, face.name, missing)
    pdf = _document(report, font, face.mono)
    _body(pdf, report)
    loaded = [f for f in pdf.fonts.values() if isinstance(f, TTFFont)]
    dropped = {chr(c): "the report" for f in loaded for c in f.missing_glyphs if not chr(c).isspace()}
    if dropped:  # from a text _texts does not know of: fpdf2 left it out all the same
        for f in loaded:
            f.close()  # as output() would
        return undrawable_reason(font, face.name, dropped)
    output_pdf(pdf, target)
    return None


def output_pdf(pdf: FPDF, target: Path) -> None:
    """Write *pdf* to *target* whole or not at all (a `.part` file renamed into place)."""
    partial = target.with_name(target.name + ".part")
    subsetter = logging.getLogger("fontTools.subset")
    level = subsetter.level
    subsetter.setLevel(logging.ERROR)  # "BDF NOT subset": the font's bitmap strikes are left out, as they should be
    try:
        pdf.output(str(partial))
    finally:
        subsetter.setLevel(level)
    partial.rename(target)
