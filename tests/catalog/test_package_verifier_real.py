"""verify.py on packages `evidence export` wrote (tests.helpers.package_archive: a case of three clips with GPS
sidecars and a PDF, another case's recordings in between, an agency root), run in a bare Python holding only
`cryptography`: a clean package passes with --trust, and each attack, on a copy, is named by file and values."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog.court_report import build_report
from catalog.court_report_pdf import write_pdf
from catalog.key_files import read_private_key
from catalog.package_files import read_package
from catalog.report_values import Values
from ingest.config import Settings
from ingest.samples import SampleSet, make_photo
from tests.helpers import tsa
from tests.helpers.package_archive import CASE, CLERK, export, make_archive, ok, set_up_root
from tests.helpers.package_attacks import (
    CHAIN,
    EVENTS,
    SIG,
    TSR,
    drop_line,
    edit_json,
    forge_with_own_keys,
    reseal,
    retime_event,
)
from tests.helpers.pdf_edit import Pdf
from tests.helpers.synthetic_package import seal
from tests.helpers.tsa import LocalTsa
from tests.helpers.verifier_env import files, named, verifier_python, verify_json

__all__ = ["verifier_python"]  # the session fixture, used by the tests below
local_tsa = tsa.local_tsa  # a real RFC 3161 authority on 127.0.0.1 (session fixture)

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


@dataclass(frozen=True)
class _Real:
    plain: Path  # a package of an archive with an agency root
    stamped: Path  # the same case exported again with a timestamp authority configured
    english: Path  # and again with the report in English
    root_fingerprint: str
    export_key: Path  # the archive's export key file (an insider holding it re-signs what they changed)


@pytest.fixture(scope="module")
def real(sample_set: SampleSet, tmp_path_factory: pytest.TempPathFactory, local_tsa: LocalTsa) -> _Real:
    """One archive (tests.helpers.package_archive: a case of three clips with sidecars and a PDF, another case's
    recordings in between, an agency root), exported twice; each test attacks its own copy."""
    folder = tmp_path_factory.mktemp("real-archive")
    devices = folder / "devices"
    shutil.copytree(sample_set.cn_recorder.parent, devices, symlinks=True)
    samples = SampleSet(cn_recorder=devices / sample_set.cn_recorder.name,
                        dcim_camera=devices / sample_set.dcim_camera.name,
                        sidecar_recorder=devices / sample_set.sidecar_recorder.name)
    env = {"EVIDENCE_HOME": str(folder / "home"), "EVIDENCE_DATABASE_URL": f"sqlite:///{folder / 'catalog.db'}"}
    make_archive(samples, env, folder)
    root = set_up_root(env, folder)
    export(env, folder / "package")
    export({**env, "EVIDENCE_TSA_URL": local_tsa.url("ok")}, folder / "stamped")
    export(env, folder / "english", language="en")
    return _Real(folder / "package", folder / "stamped", folder / "english", root,
                 Settings.from_env(env).export_key_path)


def _copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "bag", symlinks=True))


def _rows(bag: Path, rel: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (bag / rel).read_text(encoding="utf-8").splitlines()]


def _resign(bag: Path, real: _Real) -> None:
    """Re-save the bag and sign it with the archive's own export key: an insider who holds it."""
    seal(bag, read_private_key(real.export_key), manifests=True)


def test_a_real_package_verifies_in_a_bare_python(verifier_python: Path, real: _Real) -> None:
    code, result = verify_json(verifier_python, real.plain, "--trust", real.root_fingerprint)
    assert code == 0, named(result)
    checked = result["checked"]
    assert checked["root_fingerprint"] == real.root_fingerprint and checked["package_signature"] is True
    assert (checked["manifests"], checked["items"], checked["certificates"]) == (8, 8, 2)
    assert checked["full_rows"] == checked["events"] > 0 and checked["v2_digest_rows"] > 0  # the other case's
    assert checked["report_cells"] > 0 and checked["anchors"] >= 1
    assert not any("no --trust" in w for w in result["warnings"])


def test_a_real_package_with_its_report_in_english_verifies_and_a_relabelled_row_is_named(
        verifier_python: Path, real: _Real, tmp_path: Path) -> None:
    page = (real.english / "data/report.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in page and "<th>Capture start</th>" in page
    code, result = verify_json(verifier_python, real.english, "--trust", real.root_fingerprint)
    assert code == 0, named(result)
    assert result["checked"]["report_pdf_items"] == result["checked"]["items"]
    bag = _copy(real.english, tmp_path)
    report = bag / "data/report.html"
    report.write_text(page.replace("<th>Capture start</th>", "<th>Capture end</th>", 1), encoding="utf-8")
    found = _report_findings(verifier_python, bag, real)
    assert any("the captured_start row is labelled 'Capture end', not 'Capture start'" in what for _, what in found)


def test_a_real_timestamped_package_verifies_and_a_swapped_token_is_named(verifier_python: Path, real: _Real,
                                                                          tmp_path: Path, local_tsa: LocalTsa) -> None:
    code, result = verify_json(verifier_python, real.stamped, "--trust", real.root_fingerprint)
    assert code == 0, named(result)
    anchor_token = next((real.stamped / "data" / "custody").rglob("*.tsr")).relative_to(real.stamped).as_posix()
    assert set(result["checked"]["timestamp_times"]) == {TSR, anchor_token}
    assert result["checked"]["timestamps"] == result["checked"]["timestamp_signatures"] == 2
    assert any("the timestamp's signature verifies with the certificate of" in w and "Evidence Test TSA" in w
               for w in result["warnings"])  # no trust/tsa-ca.pem shipped: the TSA itself is for the reader
    bag = _copy(real.stamped, tmp_path)
    token = bytearray((bag / TSR).read_bytes())
    token[-5] ^= 0x01  # in the TSA's signature value, the last field of the token
    (bag / TSR).write_bytes(bytes(token))
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1
    assert [(f["file"], f["what"]) for f in result["findings"]] == [
        (TSR, "the timestamp token's signature does not verify (openssl ts -verify)")]
    shutil.rmtree(bag)
    bag = _copy(real.stamped, tmp_path)
    (bag / TSR).write_bytes((bag / anchor_token).read_bytes())  # a genuine token of the package, over other bytes
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1
    assert [(f["file"], f["what"]) for f in result["findings"]] == [
        (TSR, "the timestamp is not over tagmanifest-sha256.txt (another file's token?)")]
    own, own_ca = tsa.outsider_token(tmp_path / "own-tsa", (bag / "tagmanifest-sha256.txt").read_bytes())
    (bag / TSR).write_bytes(own)  # a genuine token over the right bytes, from a TSA of the attacker's own
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint, "--tsa-ca", str(own_ca))
    assert code == 1
    assert [(f["file"], f["what"].split(" (")[0]) for f in result["findings"]] == [
        (anchor_token, "the timestamp token's signature does not verify"),  # the genuine one is not by own_ca
        (TSR, "the timestamp is by a TSA the signed package does not name")]
    code, result = verify_json(verifier_python, real.stamped, "--trust", real.root_fingerprint, "--tsa-ca",
                               str(local_tsa.ca))
    assert code == 0 and result["checked"]["timestamp_signatures"] == 2, named(result)


def test_a_changed_original_in_a_real_package_is_named_though_everything_readable_was_rewritten(
        verifier_python: Path, real: _Real, tmp_path: Path) -> None:
    bag = _copy(real.plain, tmp_path)
    item = next(i for i in json.loads((bag / "data/items.json").read_text(encoding="utf-8"))["items"]
                if i["media_kind"] == "video")
    original, old = bag / item["file"], item["sha256"]
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    original.write_bytes(bytes(data))
    new = hashlib.sha256(data).hexdigest()
    for manifest in (bag / "data/manifests").glob(f"{old}.r*.json"):
        if not manifest.name.endswith(".body.json"):
            edit_json(manifest, lambda d: d["manifest"].update(sha256=new))
    for name in ("data/items.json", "data/report.html", "data/premis.xml"):
        (bag / name).write_text((bag / name).read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    reseal(bag)
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1
    found_files = files(result)
    assert {item["file"], SIG, "data/items.json", "data/report.html", f"data/manifests/{old}.r1.json"} <= found_files
    assert any(f["file"] == item["file"] and f["found"] == new and "no signed manifest names" in f["what"]
               for f in result["findings"])


def test_a_signed_fact_edited_in_a_real_packages_readable_files_is_named(verifier_python: Path, real: _Real,
                                                                         tmp_path: Path) -> None:
    bag = _copy(real.plain, tmp_path)
    edit_json(bag / "data/items.json", lambda d: d["items"][0]["recording"].update(case_number="XX-0000"))
    report = bag / "data/report.html"
    report.write_text(report.read_text(encoding="utf-8").replace(CASE, "XX-0000"), encoding="utf-8")
    reseal(bag)
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1
    assert any(f["file"] == "data/items.json" and "recording.case_number is not the signed stamp.case_number" in
               f["what"] and (f["expected"], f["found"]) == (CASE, "XX-0000") for f in result["findings"])
    assert any(f["file"] == "data/report.html" and "the report's case_number is not the signed value" in f["what"]
               and (f["expected"], f["found"]) == (CASE, "XX-0000") for f in result["findings"])


def test_a_real_event_retimed_with_every_hash_recomputed_is_named(verifier_python: Path, real: _Real,
                                                                  tmp_path: Path) -> None:
    bag = _copy(real.plain, tmp_path)
    events = _rows(bag, EVENTS)
    target = events[len(events) // 2]
    retime_event(bag, target["id"], datetime.fromisoformat(target["at"]) - timedelta(hours=5))
    _resign(bag, real)
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1 and SIG not in files(result)
    assert "data/custody/chain.jsonl: the chain does not end at the export anchor's event and hash" in named(result)


@pytest.mark.parametrize("where", ["digest row", "full row", "event line", "last row"])
def test_a_real_event_deleted_anywhere_is_named(verifier_python: Path, real: _Real, tmp_path: Path,
                                                where: str) -> None:
    bag = _copy(real.plain, tmp_path)
    rows = _rows(bag, CHAIN)
    middle = rows[len(rows) // 2:-1]
    digest = next(r["id"] for r in middle if not r.get("full"))
    full = next(r["id"] for r in middle if r.get("full"))
    rel, event_id, expected = {
        "digest row": (CHAIN, digest, "its prev_hash is not the hash of the row before it"),
        "full row": (CHAIN, full, f"event {full} is not a full row of chain.jsonl"),
        "event line": (EVENTS, full, f"(event {full}): a full row whose event is not in events.jsonl"),
        "last row": (CHAIN, rows[-1]["id"], "the chain does not end at the export anchor's event and hash"),
    }[where]
    drop_line(bag, rel, event_id)
    _resign(bag, real)
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1 and SIG not in files(result)
    assert any(expected in name for name in named(result)), named(result)


def test_a_real_package_resigned_under_an_attackers_root_is_caught_with_trust(verifier_python: Path, real: _Real,
                                                                              tmp_path: Path) -> None:
    bag = _copy(real.plain, tmp_path)
    forged = forge_with_own_keys(bag, edit_manifest=lambda body: body["stamp"].update(purpose="另案"))
    code, result = verify_json(verifier_python, bag)
    assert result["checked"]["root_fingerprint"] == forged.root_fingerprint
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1
    assert ("trust/root.pem", real.root_fingerprint, forged.root_fingerprint) in {
        (f["file"], f["expected"], f["found"]) for f in result["findings"]}


def test_a_real_package_without_its_signature_is_named(verifier_python: Path, real: _Real, tmp_path: Path) -> None:
    bag = _copy(real.plain, tmp_path)
    (bag / SIG).unlink()
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1
    assert named(result) == [f"{SIG}: the package is not signed: its signature file is missing"]


def test_a_package_of_an_archive_without_a_root_is_trusted_by_its_export_key(
        verifier_python: Path, samples: SampleSet, env: dict[str, str], tmp_path: Path) -> None:
    make_archive(samples, env, tmp_path)
    summary = export(env, tmp_path / "package")
    bag, export_fp = tmp_path / "package", summary["export_key_fingerprint"]
    code, result = verify_json(verifier_python, bag)
    assert code == 0, named(result)
    assert any(w.startswith("the archive has no agency root") for w in result["warnings"])
    assert any(f"no --trust given: compare the export key fingerprint {export_fp}" in w for w in result["warnings"])
    assert verify_json(verifier_python, bag, "--trust", export_fp)[0] == 0
    code, result = verify_json(verifier_python, bag, "--trust", "ab" * 32)
    assert code == 1
    assert [(f["file"], f["expected"], f["found"]) for f in result["findings"]] == [
        ("bag-info.txt", "ab" * 32, export_fp)]


# -- the court report, rewritten by someone holding the export key ------------------------------------------------


def _report_findings(verifier_python: Path, bag: Path, real: _Real) -> list[tuple[str, str]]:
    _resign(bag, real)
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 1
    return [(f["file"], f["what"]) for f in result["findings"]]


def _other_digit(match: re.Match[str]) -> str:
    """The match with its middle group, one digit, changed (3 ↔ 4 …): a different value whatever it was."""
    return f"{match.group(1)}{(int(match.group(2)) + 1) % 10}{match.group(3)}"


@pytest.mark.parametrize(("attack", "expected"), [
    ("extra row", "its fact table is not the report's: row 8 is not one label and one fact cell"),
    ("script", "the report holds what the archive's report never does"),
    ("hiding style", "the report's stylesheet is not the archive's"),
    ("place", "the report's place is not the signed value"),
    ("capture end", "the report's captured_end is not the signed value"),
    ("second purpose", "its fact table is not the report's: its rows are not the report's"),
    ("noembed", "the report holds what the archive's report never does"),
    ("labels swapped", "its fact table is not the report's: the captured_start row is labelled '采集结束时间'"),
    ("row dropped", "its fact table is not the report's: its rows are not the report's (missing ['clock_offset']"),
    ("sha256 unmarked", "the report has no fact table for a signed item"),
    ("escaped css", "the report's stylesheet is not the archive's"),
    ("tags in the title", "the report holds what the archive's report never does"),
    ("text between rows", "the report holds what the archive's report never does"),
    ("local time", "the report's captured_start is not the signed value"),
    ("time source", "the report's time_source is not the signed value"),
    ("signing key", "the report's signing keys are not those of its manifests"),
    ("no report.html", "the package has no report.html"),
])
def test_a_report_html_rewritten_by_an_export_key_holder_is_named(verifier_python: Path, real: _Real, tmp_path: Path,
                                                                   attack: str, expected: str) -> None:
    """Cells without data-field, a script or style that changes what is shown, a fact cell changed or doubled."""
    bag = _copy(real.plain, tmp_path)
    page = bag / "data/report.html"
    html = page.read_text(encoding="utf-8")
    purpose_cell = re.search(r'<td data-field="purpose">[^<]*</td></tr>', html)
    assert purpose_cell is not None
    row_end = purpose_cell.end()
    changed = {
        "extra row": html[:row_end] + "<tr><th>补充说明</th><td>当事人已认可违法事实</td></tr>" + html[row_end:],
        "script": html.replace("</body>", "<script>document.querySelectorAll('[data-field=purpose]')"
                                          ".forEach(c => c.textContent = '证明其他事项')</script></body>"),
        "hiding style": html.replace("</style>", "td[data-field=purpose] { display: none }</style>"),
        "place": re.sub(r"(<td data-field=\"place\">[^<]*?)(\d)(°)", _other_digit, html, count=1),
        "capture end": re.sub(r"(<td data-field=\"captured_end\">[^<]*<br>[^<]*?)(\d)( UTC)", _other_digit, html,
                              count=1),
        "second purpose": html[:row_end] + '<tr><th>证明对象</th><td data-field="purpose">证明其他事项</td></tr>'
                          + html[row_end:],
        "noembed": html.replace("<h2>", "<noembed><table><tr><th>x</th></tr></table></noembed><h2>", 1),
        "labels swapped": html.replace("<th>采集开始时间</th>", "<th>@</th>", 1).replace(
            "<th>采集结束时间</th>", "<th>采集开始时间</th>", 1).replace("<th>@</th>", "<th>采集结束时间</th>", 1),
        "row dropped": re.sub(r"<tr><th>设备时钟偏差（秒）</th>.*?</tr>", "", html, count=1, flags=re.S),
        "sha256 unmarked": html.replace(' data-field="sha256"', "", 1),
        "escaped css": html.replace("</style>", "td { fo\\6e t-size: 0 }</style>"),
        "tags in the title": html.replace("<h2>", "<title><table><tr><th>证明对象</th><td>x</td></tr></table></title>"
                                                  "<h2>", 1),
        "text between rows": html.replace("<tr><th>证明对象</th>", "证明其他事项<tr><th>证明对象</th>", 1),
        "local time": re.sub(r"(<td data-field=\"captured_start\">[^<]*?)(\d)( \(UTC)", _other_digit, html, count=1),
        "time source": re.sub(r"(<td data-field=\"time_source\">)([^<]*)(</td>)",
                              lambda m: f"{m.group(1)}伪造 {m.group(2)}{m.group(3)}", html, count=1),
        "signing key": re.sub(r"(<td data-field=\"key_fingerprint\" class=\"mono\">)(\w)([^<]*</td>)",
                              lambda m: m.group(1) + ("0" if m.group(2) != "0" else "1") + m.group(3), html, count=1),
        "no report.html": "",
    }[attack]
    assert changed != html
    if changed:
        page.write_text(changed, encoding="utf-8")
    else:
        page.unlink()
    found = _report_findings(verifier_python, bag, real)
    assert {file for file, _ in found} <= {"data/report.html", "data/report.pdf"}, found
    assert any(file == "data/report.html" and expected in what for file, what in found), found


def test_a_report_pdf_rendered_from_other_facts_or_changed_after_writing_is_named(verifier_python: Path, real: _Real,
                                                                                   tmp_path: Path) -> None:
    """report.pdf rendered with one fact changed (the PDF a court files says another purpose), an incremental
    update appended to it, and an embedded script: each named against the signed manifests."""
    bag = _copy(real.plain, tmp_path / "attacked")
    report = build_report(read_package(bag / "data"), Values("zh", "Asia/Shanghai"),
                          root_fingerprint=real.root_fingerprint)
    item = report.items[-1]
    rows = {row.field: index for index, row in enumerate(item.rows) if row.field}
    sha = item.rows[rows["sha256"]].lines[0]
    item.rows[rows["purpose"]] = dataclasses.replace(item.rows[rows["purpose"]], lines=("证明其他事项",))
    assert write_pdf(report, bag / "data/report.pdf") is None
    found = _report_findings(verifier_python, bag, real)
    assert found == [("data/report.pdf",
                      f"item {sha}: the PDF's fact table is not report.html's from row 7 (证明对象)")]

    bag = _copy(real.plain, tmp_path / "appended")
    with (bag / "data/report.pdf").open("ab") as pdf:
        pdf.write(b"\n99 0 obj\n<< /Type /Action /S /JavaScript /JS (app.alert\\(1\\)) >>\nendobj\n%%EOF\n")
    assert sorted(what.split(" (")[0] for _, what in _report_findings(verifier_python, bag, real)) == [
        "the PDF holds actions, scripts or embedded files",
        "the PDF was changed after it was written"]


def test_a_real_report_pdf_whose_font_program_spells_script_names_by_chance_verifies(
        verifier_python: Path, real: _Real, tmp_path: Path) -> None:
    """Compressed stream data and font programs are arbitrary bytes: about one report in a hundred spelled "/JS" or
    "/AA" somewhere in them and an untouched package was named as holding a script (CI, 2026-12-02)."""
    bag = _copy(real.plain, tmp_path / "chance")
    pdf = Pdf((bag / "data/report.pdf").read_bytes())
    font = next(int(ref) for body in pdf.raw.values() for ref in re.findall(rb"/FontFile2 (\d+) 0 R", body))
    program = pdf.stream(font)
    pdf.set_stream(font, program + b"\x00/AA\x00/JS /Launch\x00/EmbeddedFiles\x7f")
    (bag / "data/report.pdf").write_bytes(pdf.write())
    _resign(bag, real)
    code, result = verify_json(verifier_python, bag, "--trust", real.root_fingerprint)
    assert code == 0, named(result)
    assert result["checked"]["report_cells"] > 0


def _forge_pdf(bag: Path, how: str) -> None:
    """report.pdf rewritten by the export-key holder so that a viewer shows a purpose reversed while the original
    text stays somewhere in the file (tests.helpers.pdf_edit: one xref, one %%EOF, nothing appended)."""
    path = bag / "data/report.pdf"
    pdf = Pdf(path.read_bytes())
    purposes = {i["recording"]["purpose"] for i in json.loads((bag / "data/items.json").read_text())["items"]
                if i.get("recording", {}).get("purpose")}
    for n in pdf.contents():
        content = pdf.stream(n)
        hits = [h for h in pdf.strings(content) if h[3] in purposes]
        if not hits:
            continue
        start, end, font, text = hits[0]
        forged = pdf.literal(font, text[::-1])
        x, y = map(float, re.findall(rb"BT ([\d.]+) ([\d.]+) Td $", content[:start])[-1])
        real, fake = content[start:end], b"BT /%s 9.00 Tf ET BT %.2f %.2f Td %s Tj ET\n" % (font, x, y, forged)
        hidden = {  # the real text drawn so that a reader does not see it, the forged text drawn visibly after
            "invisible": b"3 Tr " + real + b" Tj 0 Tr",
            "tiny in q/Q": b"Tj ET BT /" + font + b" 0.05 Tf q /" + font + b" 9 Tf Q " + real + b" Tj",
            "kerned off the page": b"[-100000 " + real + b"] TJ",
            "pale colour": b"1 1 0.89 rg " + real + b" Tj 0 g",
        }
        boxes = {  # a box painted over the real text (white, just above its baseline, from its left edge, a stroke)
            "white box": b"q 1 g %.2f %.2f 300 10 re f Q\n" % (x - 1, y - 2),
            "box above the baseline": b"q 1 g %.2f %.2f 300 9 re f Q\n" % (x - 1, y + 0.3),
            "box from the left edge": b"q 1 g %.2f %.2f 300 10 re f Q\n" % (x, y - 2),
            "white stroke": b"q 1 G 12 w %.2f %.2f 300 0.1 re S Q\n" % (x, y + 3),
        }
        if how in hidden:
            content = content[:start] + hidden[how] + content[end:] + b"\n" + fake
        elif how in boxes:
            content += b"\n" + boxes[how] + fake
        else:  # "orphan": the page shows a new stream; the original stays in the file, shown by nothing
            new = max(pdf.raw) + 1
            pdf.set_stream(new, content[:start] + forged + content[end:])
            page = next(k for k, body in pdf.raw.items() if b"/Contents %d 0 R" % n in body)
            pdf.raw[page] = pdf.raw[page].replace(b"/Contents %d 0 R" % n, b"/Contents %d 0 R" % new)
            break
        pdf.set_stream(n, content)
        break
    else:
        raise AssertionError("no purpose drawn in the PDF")
    path.write_bytes(pdf.write())


@pytest.mark.parametrize(("how", "expected"), [
    ("invisible", "draws something a text check cannot vouch for: operator 'Tr'"),
    ("tiny in q/Q", "draws something a text check cannot vouch for: text a reader does not see"),
    ("kerned off the page", "draws something a text check cannot vouch for: text a reader does not see"),
    ("pale colour", "draws something a text check cannot vouch for: text a reader does not see"),
    ("white box", "draws something a text check cannot vouch for: a filled area painted over text"),
    ("box above the baseline", "draws something a text check cannot vouch for: a filled area painted over text"),
    ("box from the left edge", "draws something a text check cannot vouch for: a filled area painted over text"),
    ("white stroke", "draws something a text check cannot vouch for: a stroke that could paint over text"),
    ("orphan", "the PDF's fact table is not report.html's"),
])
def test_a_report_pdf_drawn_to_show_what_its_text_does_not_say_is_named(verifier_python: Path, real: _Real,
                                                                         tmp_path: Path, how: str,
                                                                         expected: str) -> None:
    bag = _copy(real.plain, tmp_path)
    _forge_pdf(bag, how)
    found = _report_findings(verifier_python, bag, real)
    assert {file for file, _ in found} == {"data/report.pdf"}, found
    assert any(expected in what for _, what in found), found


def test_line_and_paragraph_separators_in_a_purpose_export_and_verify(verifier_python: Path, env: dict[str, str],
                                                                      tmp_path: Path) -> None:
    """Text pasted from a word processor carries U+2028/U+2029/U+0085, which json.dumps leaves as they are and
    str.splitlines() splits at: the export read its own events.jsonl wrongly and crashed (nothing written)."""
    purpose = "第一行\u2028第二行\u2029第三段\u0085第四行"
    device = tmp_path / "dev"
    make_photo(device / "DCIM" / "100EVCAM" / "IMG_0001.JPG", taken_local=datetime(2026, 11, 20, 8, 0),
               offset="+08:00")
    ok(env, "ingest", str(device), "--case", "REP-2026-0001", "--purpose", purpose, "--no-derive")
    ok(env, "case", "create", "REP-2026-0001", "--title", "行\u2028分隔", "--type", "inspection", "--by", CLERK)
    summary = export(env, tmp_path / "package", "REP-2026-0001")
    assert summary["items"] == 1
    code, result = verify_json(verifier_python, tmp_path / "package")
    assert code == 0, named(result)
    assert purpose in (tmp_path / "package" / "data/items.json").read_text(encoding="utf-8")
