"""The court report (report.html, report.pdf) of a real exported package: it says what the signed manifests say,
with local and UTC times that never move a date, the custody events in Chinese words, and a PDF with the font
embedded and the hashes in its text layer."""
from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from catalog import court_report_pdf
from catalog.court_report import build_report, write_reports
from catalog.court_report_pdf import write_pdf
from catalog.custody import CustodyKind
from catalog.custody_words import event_name, event_sentence, has_words
from catalog.package_files import read_package
from catalog.report_values import Values
from tests.cli import run_cli
from tests.conftest import _missing
from tests.helpers.evidence_package import (
    CASE,
    FIRST_PURPOSE,
    LOCAL_CAPTURE,
    REVISION_REASON,
    SIGNED_PURPOSE,
    UTC_CAPTURE,
    Package,
    late_evening_package,
)
from tests.helpers.pdf_text import pdf_text

ROOT = "5e" * 32
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


@pytest.fixture
def package(env, tmp_path, ffmpeg_available) -> Package:
    return late_evening_package(env, tmp_path)


def _cells(page: str, field: str) -> list[str]:
    """The text of every value cell tagged data-field=*field*, in page order (lines joined by a newline)."""
    found = re.findall(rf'<td data-field="{field}"[^>]*>(.*?)</td>', page, re.S)
    return [html.unescape(cell.replace("<br>", "\n")) for cell in found]


def _signed_bodies(package: Package) -> list[dict[str, Any]]:
    """Each item's newest signed manifest body, read from the exact signed bytes."""
    bodies = []
    for item in package.items():
        stem = item["manifests"][-1]["signed"].removesuffix(".json")
        bodies.append(json.loads((package.root / f"{stem}.body.json").read_bytes()))
    return bodies


@pytest.mark.parametrize("kind", list(CustodyKind))
def test_every_custody_kind_has_words_in_both_languages(kind):
    """Fails for a CustodyKind added without a sentence; an event without details still reads."""
    event = {"id": 1, "kind": kind.value, "at": "2026-11-20T15:30:00+00:00", "actor": "x", "details": {}}
    zh, en = event_sentence(event, Values("zh")), event_sentence(event, Values("en"))
    assert zh and en and zh != en and "{" not in zh + en
    # and a name the audit log shows, Chinese by default
    assert has_words(kind) and re.search(r"[\u4e00-\u9fff]", event_name(kind.value, "zh"))
    assert event_name(kind.value, "en") != event_name(kind.value, "zh")


def test_an_instant_is_shown_local_and_utc_and_a_date_as_written():
    zh = Values("zh", "Asia/Shanghai")
    late = zh.moment("2026-11-20T15:30:00+00:00")
    assert late is not None and (late.local, late.utc) == ("2026-11-20 23:30:00 (UTC+08:00)",
                                                           "2026-11-20 15:30:00 UTC")
    after_midnight = zh.moment("2026-11-20T16:30:00+00:00")  # the local calendar day is the 21st: both say so
    assert after_midnight is not None and after_midnight.local.startswith("2026-11-21 00:30:00")
    assert after_midnight.utc == "2026-11-20 16:30:00 UTC"
    assert zh.when("2026-11-20") == "2026-11-20"  # a date has no zone: never converted
    with pytest.raises(ValueError, match="'fr'"):
        Values("fr")


def test_the_report_says_what_the_signed_manifests_say(package):
    written = write_reports(package.data, root_fingerprint=ROOT)
    assert written == [package.data / "report.html", package.data / "report.pdf"] and written.notes == []
    page = (package.data / "report.html").read_text(encoding="utf-8")
    bodies = _signed_bodies(package)
    assert _cells(page, "sha256") == [b["sha256"] for b in bodies]
    assert _cells(page, "purpose") == [b["stamp"]["purpose"] for b in bodies]
    assert _cells(page, "purpose")[0] == SIGNED_PURPOSE  # not the purpose the case link was made with
    assert _cells(page, "case_number") == [CASE, CASE] and _cells(page, "case") == [CASE]
    capture = _cells(page, "captured_start")[0]  # 23:30 in Beijing is 15:30 UTC the same day, both shown
    assert f"{LOCAL_CAPTURE} (UTC+08:00)" in capture and f"{UTC_CAPTURE} UTC" in capture
    assert "2026-11-21" not in capture and "2026-11-19" not in capture
    assert _cells(page, "root_fingerprint")[0].startswith(ROOT)
    assert "通过：签名、文件哈希与保管链事件哈希均与签名清单一致" in page
    # the custody events in Chinese words, the stamp history with its reason and old → new value
    assert "从设备 A123456 复制文件 RECORD/ZFY_A123456_010203_20261120_233000.wav" in page
    assert f"修改证据标识（第 2 版），理由：{REVISION_REASON}" in page
    assert f"证明对象：{FIRST_PURPOSE} → {SIGNED_PURPOSE}" in page
    assert f"关联到案件 {CASE}，证明对象：{FIRST_PURPOSE}" in page  # what happened then, as an event
    assert "http://id.loc.gov/vocabulary/preservation/eventType/mes" in page
    assert "events.jsonl：" in page


def test_the_pdf_embeds_the_font_and_carries_the_text(package):
    if not FONT.is_file():
        _missing(f"the CJK font {FONT} (Debian fonts-wqy-zenhei)")
    write_reports(package.data, root_fingerprint=ROOT)
    pdf = (package.data / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert b"/FontFile2" in pdf and re.search(rb"/BaseFont /[A-Z]{6}\+WenQuanYiZenHei", pdf)
    assert b"<pdfaid:part>2</pdfaid:part>" in pdf and b"/OutputIntents" in pdf
    text = pdf_text(pdf)
    for body in _signed_bodies(package):
        assert body["sha256"] in text
    assert SIGNED_PURPOSE in text and f"{LOCAL_CAPTURE} (UTC+08:00)" in text and f"{UTC_CAPTURE} UTC" in text
    assert "从设备 A123456 复制文件" in text and ROOT in text


def test_english_report(package):
    write_reports(package.data, root_fingerprint=None, language="en")
    page = (package.data / "report.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in page and "Copied RECORD/ZFY_A123456_010203_20261120_233000.wav" in page
    assert f"purpose: {FIRST_PURPOSE} → {SIGNED_PURPOSE}" in page and "This archive has no root key" in page


def test_without_a_usable_font_the_html_is_written_and_says_why(package, tmp_path):
    garbage = tmp_path / "garbage.ttf"
    garbage.write_bytes(b"not a font")
    fonts = {tmp_path / "no-such-font.ttc": "does not exist", garbage: "cannot be used"}
    latin = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian fonts-dejavu-core
    if latin.is_file():
        fonts[latin] = "has no Chinese glyphs"
    for font, why in fonts.items():
        written = write_reports(package.data, root_fingerprint=ROOT, font=font)
        assert written == [package.data / "report.html"] and not (package.data / "report.pdf").exists()
        assert len(written.notes) == 1 and f"{font} {why}" in written.notes[0]
        assert "EVIDENCE_REPORT_FONT" in written.notes[0]
        page = html.unescape((package.data / "report.html").read_text(encoding="utf-8"))
        assert "未生成 PDF" in page and f"{font} {why}" in page
        assert _cells(page, "purpose")[0] == SIGNED_PURPOSE  # the rest of the report as ever
    if not latin.is_file():
        _missing(f"a font without Chinese glyphs to try ({latin})")


def test_a_character_the_font_cannot_draw_leaves_out_the_pdf_and_says_which(env, package, tmp_path, monkeypatch):
    """fpdf2 silently drops a character its font has no glyph for: the PDF would state another fact than the signed
    manifest (and verify.py would fail an honest export). So no PDF, and the export says which character, where."""
    if not FONT.is_file():
        _missing(f"the CJK font {FONT} (Debian fonts-wqy-zenhei)")
    report = build_report(read_package(package.data), Values("zh"), root_fingerprint=ROOT)
    item = report.items[0]
    last = item.events[-1]
    item.events[-1] = dataclasses.replace(last, actor="clerk:𠀀 ﬁ\u200d")  # an emoji joiner: invisible, no glyph
    target = tmp_path / "report.pdf"
    missing = write_pdf(report, target, font=FONT)
    assert missing is not None and not target.exists() and not target.with_name("report.pdf.part").exists()
    where = f"证据 {package.recording_id} event {last.id}"
    assert f"has no glyph for 𠀀 (U+20000) in {where}; ﬁ (U+FB01) in {where}; U+200D in {where}:" in missing
    with monkeypatch.context() as patched:  # a text the check does not know of: what fpdf2 dropped, named all the same
        patched.setattr(court_report_pdf, "_texts", lambda report: iter(()))
        missing = write_pdf(report, target, font=FONT)
    assert missing is not None and "has no glyph for 𠀀 (U+20000) in the report; ﬁ (U+FB01) in the report" in missing
    assert not target.exists()
    item.events[-1] = dataclasses.replace(last, actor="clerk:李四\t\r\n\u00a0")  # whitespace: never a glyph
    assert write_pdf(report, target, font=FONT) is None and target.is_file()

    purpose = "证明占道经营（现场📷照片）"  # a real signed value: U+1F4F7 has no glyph in WenQuanYi Zen Hei
    tagged = run_cli(env, "tag", str(package.recording_id), "--purpose", purpose, "--reason", "补充证明对象",
                     "--by", "clerk:李四")
    assert tagged.exit_code == 0, tagged.output
    exported = run_cli(env, "export", CASE, "--out", str(tmp_path / "again"), "--by", "clerk:李四", "--reason",
                       "移送法院", "--json")
    assert exported.exit_code == 0, exported.output
    data = tmp_path / "again" / "data"
    why = (f"the font WenQuanYi Zen Hei ({FONT}) has no glyph for 📷 (U+1F4F7) in 证据 {package.recording_id}, "
           'row "证明对象"')
    notes = json.loads(exported.stdout)["notes"]
    assert len(notes) == 1 and why in notes[0] and "the PDF would not show those characters" in notes[0]
    assert (data / "report.html").is_file() and not (data / "report.pdf").exists()
    (data / "report.pdf").write_bytes(b"%PDF- an older report")  # must not pass for this one
    written = write_reports(data, root_fingerprint=ROOT, font=FONT)
    assert written == [data / "report.html"] and not (data / "report.pdf").exists()
    assert len(written.notes) == 1 and written.notes == notes and notes[0].startswith("未生成 PDF：")
    page = html.unescape((data / "report.html").read_text(encoding="utf-8"))
    assert why in page and _cells(page, "purpose")[0] == purpose  # the HTML shows it, and says why there is no PDF


def test_a_readable_file_that_disagrees_with_the_signature_is_named(package):
    """An edited items.json cannot change what the report states (it reads the signed bodies), and the report's
    verification names the edit; an edited signed body fails its signature."""
    items_file = package.data / "items.json"
    summary = json.loads(items_file.read_text(encoding="utf-8"))
    summary["items"][0]["recording"]["purpose"] = "编造的证明对象"
    items_file.write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    stem = summary["items"][1]["manifests"][-1]["signed"].removesuffix(".json")
    body = package.root / f"{stem}.body.json"
    body.write_bytes(body.read_bytes().replace(b'"important":false', b'"important":true '))
    write_reports(package.data, root_fingerprint=ROOT, font=Path("/nonexistent"))
    page = html.unescape((package.data / "report.html").read_text(encoding="utf-8"))
    assert _cells(page, "purpose")[0] == SIGNED_PURPOSE and "编造的证明对象' but the signed manifest says" in page
    assert f"items.json item {package.recording_id}: recording.purpose is" in page
    assert "the signature does not verify with key" in page and "发现问题" in page


def test_the_export_passes_its_own_hashes_so_the_report_reads_no_original_again(package):
    """One read pass per byte: given the hashes the export measured while writing, the report does not open the
    originals (a removed original goes unnoticed by it); a measured hash that differs from the signed one is
    named all the same."""
    items = package.items()
    measured = {str(item["file"]): item["sha256"] for item in items if item.get("file")}
    first = items[0]
    (package.data.parent / first["file"]).unlink()
    write_reports(package.data, root_fingerprint=ROOT, font=Path("/nonexistent"), hashed=measured)
    page = html.unescape((package.data / "report.html").read_text(encoding="utf-8"))
    assert "missing file" not in page
    wrong = dict(measured, **{str(first["file"]): "0" * 64})
    write_reports(package.data, root_fingerprint=ROOT, font=Path("/nonexistent"), hashed=wrong)
    page = html.unescape((package.data / "report.html").read_text(encoding="utf-8"))
    assert f"{first['file']}: SHA-256 {'0' * 64} is not the signed {first['sha256']}" in page
