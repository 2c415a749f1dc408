"""执法数据分析报告: the enforcement-data analysis report of a period (a quarter, a year, or any period of
catalog.periods), over the caller's scope, as CSV and as PDF.

Its figures are catalog.statistics' for the period (every unit and officer, not the page's top rows), and the
spot checks signed off in it (their publishable summaries: no officer, reviewer or note). The CSV is one table,
one row per figure, UTF-8 with a BOM and every cell defused (catalog.csvsafe); the PDF is set with fpdf2 in the
CJK font the court report uses (EVIDENCE_REPORT_FONT), and is not written when the font cannot draw a character
the report holds (it would silently print another fact).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.fonts import FontFace, TTFFont
from sqlmodel import Session, col, select

from catalog.access import Scope
from catalog.checklist import ChecklistFigures, checklist_figures
from catalog.checklist_rules import Checklist
from catalog.court_report_pdf import DEFAULT_FONT, inspect_font, output_pdf, undrawable_reason
from catalog.csvsafe import csv_chunks
from catalog.manifests import software_version
from catalog.models import Recording, SpotCheckItem
from catalog.periods import Period
from catalog.spotcheck import spot_checks_signed
from catalog.spotcheck_result import spot_check_summary
from catalog.statistics import Statistics, statistics, unit_members

__all__ = ["EnforcementReport", "build_report", "report_csv", "write_report_pdf"]

#: Every row of a grouping: a report lists every unit and officer, not the page's top twenty.
ALL_ROWS = 100_000

_WORDS = {
    "title": ("执法数据分析报告", "Enforcement data analysis report"),
    "period": ("统计期间", "Period"), "scope": ("统计范围", "Covering"), "unit": ("单位", "Unit"),
    "generated": ("生成", "Generated"), "zone": ("时区", "Time zone"),
    "overview": ("一、总体情况", "1. Overview"), "by_unit": ("二、按单位", "2. By unit"),
    "by_officer": ("三、按执法人员", "3. By officer"), "by_day": ("四、按日", "4. By day"),
    "integrity": ("五、完整性", "5. Integrity"), "spot_checks": ("六、双随机抽查", "6. Spot checks (双随机)"),
    "recordings": ("音视频记录", "Recordings"), "hours": ("时长（小时）", "Hours"),
    "tagged": ("已关联案件", "Tagged with a case"), "share": ("关联率", "Share tagged"),
    "documents": ("文字记录", "Text records"), "storage": ("存储（GiB）", "Storage (GiB)"),
    "pending": ("待归档", "Waiting for the archive"), "officer": ("执法人员", "Officer"),
    "day": ("日期", "Day"), "month": ("月份", "Month"), "by_month": ("四、按月", "4. By month"),
    "status": ("状态", "Status"), "check": ("抽查", "Check"),
    "drawn_on": ("抽取日期", "Drawn on"), "sample": ("抽取 / 总体", "Drawn / population"),
    "findings": ("发现问题", "Findings"), "signed_on": ("签署日期", "Signed off on"), "none": ("无", "none"),
    "action_cases": ("有执法事项的案件", "Cases with enforcement actions"),
    "review_cases": ("其中需法制审核", "Of them for legal review (法制审核)"),
    "required_actions": ("须全过程记录事项（全程 / 部分 / 未记录）",
                         "Actions needing full recording (covered / partly / not recorded)"),
    "software": ("由 evidence-ingest {version} 生成", "Made by evidence-ingest {version}"),
}


@dataclass(frozen=True)
class EnforcementReport:
    period: Period
    zone: str
    scope: str  # what it covers, in words (Scope.describe)
    unit: str | None
    generated_at: datetime
    generated_by: str
    lang: str  # "zh" or "en"
    figures: Statistics
    spot_checks: list[dict[str, Any]] = field(default_factory=list)  # summaries of checks signed off in the period
    actions: ChecklistFigures | None = None  # the action checklist's figures of the period (catalog.checklist)

    def word(self, key: str) -> str:
        zh, en = _WORDS[key]
        return zh if self.lang == "zh" else en

    @property
    def title(self) -> str:
        return f"{self.word('title')}（{self.period.label(self.lang)}）" if self.lang == "zh" else \
            f"{self.word('title')} ({self.period.label(self.lang)})"

    @property
    def file_name(self) -> str:
        return f"enforcement-report-{self.period.first.isoformat()}-{self.period.last.isoformat()}"


def build_report(session: Session, scope: Scope, *, period: Period, zone: str, now: datetime, by: str, lang: str,
                 unit: str | None = None, checklist: Checklist | None = None,
                 tolerance_s: float = 120.0) -> EnforcementReport:
    """The report of *period* over *scope* (and *unit*, drilled into), as *by* asks for it at *now*; with the
    agency's action *checklist*, the period's cases and actions judged by it (over the whole scope: a case's
    handling unit is not an officer's unit)."""
    figures = statistics(session, scope, now=now, zone=zone, period=period, unit=unit, rows=ALL_ROWS)
    start, end = period.bounds(zone)
    summaries = []
    for check in spot_checks_signed(session, scope, start, end,
                                    within=col(Recording.officer_number).in_(unit_members(unit)) if unit else None):
        items = list(session.exec(select(SpotCheckItem).where(SpotCheckItem.check_id == check.id)
                                  .order_by(col(SpotCheckItem.id))))
        summaries.append(spot_check_summary(check, items, zone))
    actions = (checklist_figures(session, scope, checklist=checklist, tolerance_s=tolerance_s, zone=zone,
                                 period=period) if checklist is not None else None)
    return EnforcementReport(period, zone, scope.describe(), unit, now, by, "zh" if lang.startswith("zh") else "en",
                             figures, summaries, actions)


def _share(tagged: int, count: int) -> str:
    return f"{tagged / count * 100:.1f}%" if count else ""


def _local(report: EnforcementReport, when: datetime) -> str:
    return when.astimezone(ZoneInfo(report.zone)).isoformat(sep=" ", timespec="seconds")


def _overview(report: EnforcementReport) -> list[tuple[str, str]]:
    f = report.figures
    tagged = round(f["tagged_share"] * f["total"])
    return [(report.word("recordings"), str(f["total"])), (report.word("hours"), f"{f['hours']:.2f}"),
            (report.word("tagged"), str(tagged)), (report.word("share"), _share(tagged, f["total"])),
            (report.word("documents"), str(f["documents"])),
            (report.word("storage"), f"{f['storage_bytes'] / 2**30:.2f}"),
            (report.word("pending"), str(f["pending_archive"])), *_actions(report)]


def _actions(report: EnforcementReport) -> list[tuple[str, str]]:
    a = report.actions
    if a is None:
        return []
    needed = a["required_actions"]
    return [(report.word("action_cases"), str(a["cases"])), (report.word("review_cases"), str(a["cases_for_review"])),
            (report.word("required_actions"),
             f"{needed['covered']} / {needed['partly_covered']} / {needed['not_recorded']}")]


def _groups(report: EnforcementReport, key: str) -> list[list[str]]:
    return [[r.get("label", r["key"]), str(r["count"]), f"{r['hours']:.2f}", str(r["tagged"]),
             _share(r["tagged"], r["count"])] for r in report.figures[key]]  # type: ignore[literal-required]


def _checks(report: EnforcementReport) -> list[list[str]]:
    return [[str(c["check"]), str(c["drawn_on"]), f"{c['sample_size']} / {c['population']}", str(c["findings"]),
             str(c["signed_off_on"])] for c in report.spot_checks]


def report_csv(report: EnforcementReport) -> Iterator[str]:
    """The report as one CSV table: section, key, then the figures (UTF-8 with a BOM, cells defused)."""
    w = report.word
    header = ["section", "key", w("recordings"), w("hours"), w("tagged"), w("share")]
    rows: list[list[Any]] = [["title", report.title, "", "", "", ""],
                             ["period", report.period.first.isoformat(), report.period.last.isoformat(), "", "", ""],
                             ["scope", report.scope, report.unit or "", "", "", ""],
                             ["generated", _local(report, report.generated_at), report.generated_by, report.zone,
                              "", ""]]
    rows += [["overview", label, value, "", "", ""] for label, value in _overview(report)]
    for section in ("by_unit", "by_officer", "by_station", "by_day"):
        rows += [[section, *row] for row in _groups(report, section)]
    rows += [["integrity", status, str(n), "", "", ""] for status, n in sorted(report.figures["integrity"].items())]
    rows += [["spot_check", w("check"), w("drawn_on"), w("sample"), w("findings"), w("signed_on")]]
    rows += [["spot_check", *row] for row in _checks(report)]
    return csv_chunks(header, rows)


def _table(pdf: FPDF, head: list[str], rows: list[list[str]], widths: tuple[int, ...]) -> None:
    pdf.set_font("report", size=8)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=5, first_row_as_headings=True,
                   headings_style=FontFace(emphasis="", fill_color=(225, 232, 242))) as table:
        for cells in [head, *rows]:
            row = table.row()
            for cell in cells:
                row.cell(cell)


def _texts(report: EnforcementReport) -> Iterator[str]:
    """Every text the PDF draws (its glyphs are checked before it is drawn)."""
    yield from (report.title, report.period.label(report.lang), " · ", _local(report, report.generated_at))
    yield from (text for pair in _WORDS.values() for text in pair)
    yield from (report.scope, report.unit or "", report.generated_by, report.zone, software_version())
    for section in ("by_unit", "by_officer", "by_day"):
        yield from (cell for row in _groups(report, section) for cell in row)
    yield from (cell for pair in _overview(report) for cell in pair)
    yield from (cell for row in _checks(report) for cell in row)
    yield from report.figures["integrity"]


def write_report_pdf(report: EnforcementReport, target: Path, *, font: Path = DEFAULT_FONT) -> str | None:
    """Write the report as an A4 PDF at *target*; None when written, else why not (the font: missing, not a CJK
    font, or without a glyph for a character the report holds)."""
    face = inspect_font(font)
    if isinstance(face, str):
        return face
    missing = {ch: "the report" for text in _texts(report) for ch in set(text) - face.glyphs[0] if not ch.isspace()}
    if missing:
        return undrawable_reason(font, face.name, missing)
    pdf = FPDF(format="A4")
    pdf.add_font("report", "", str(font), collection_font_number=0)
    pdf.set_title(report.title)
    pdf.set_creator(f"evidence-ingest {software_version()}")
    pdf.set_lang("zh-CN" if report.lang == "zh" else "en")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, 15)
    pdf.add_page()
    w = report.word
    pdf.set_font("report", size=16)
    pdf.multi_cell(0, 9, report.title, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("report", size=9)
    for label, value in ((w("period"), report.period.label(report.lang)), (w("scope"), report.scope),
                         (w("unit"), report.unit or "-"), (w("zone"), report.zone),
                         (w("generated"), f"{_local(report, report.generated_at)} · {report.generated_by}")):
        pdf.multi_cell(0, 5, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
    sections = (("overview", [w("recordings"), ""], [list(pair) for pair in _overview(report)], (60, 40)),
                ("by_unit", [w("unit"), w("recordings"), w("hours"), w("tagged"), w("share")],
                 _groups(report, "by_unit"), (60, 25, 25, 25, 25)),
                ("by_officer", [w("officer"), w("recordings"), w("hours"), w("tagged"), w("share")],
                 _groups(report, "by_officer"), (60, 25, 25, 25, 25)),
                ("by_month" if report.figures["by_day_unit"] == "month" else "by_day",
                 [w("month" if report.figures["by_day_unit"] == "month" else "day"), w("recordings"), w("hours"),
                  w("tagged"), w("share")], _groups(report, "by_day"), (60, 25, 25, 25, 25)),
                ("integrity", [w("status"), w("recordings")],
                 [[k, str(v)] for k, v in sorted(report.figures["integrity"].items())], (60, 40)),
                ("spot_checks", [w("check"), w("drawn_on"), w("sample"), w("findings"), w("signed_on")],
                 _checks(report), (25, 35, 40, 25, 35)))
    for key, head, rows, widths in sections:
        pdf.set_font("report", size=12)
        pdf.ln(3)
        pdf.multi_cell(0, 7, w(key), new_x="LMARGIN", new_y="NEXT")
        if rows:
            _table(pdf, head, rows, widths)
        else:
            pdf.set_font("report", size=9)
            pdf.multi_cell(0, 5, w("none"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("report", size=8)
    pdf.ln(4)
    pdf.multi_cell(0, 5, w("software").format(version=software_version()), new_x="LMARGIN", new_y="NEXT")
    dropped = {chr(c): "the report" for f in pdf.fonts.values() if isinstance(f, TTFFont) for c in f.missing_glyphs
               if not chr(c).isspace()}
    if dropped:  # from a text _texts does not know of: fpdf2 left it out all the same
        return undrawable_reason(font, face.name, dropped)
    output_pdf(pdf, target)
    return None
