"""The court report of an evidence package: data/report.html and data/report.pdf, one data model for both.

A court reads the report, not the JSON. So it must say, for every item, what the signed manifests say (case,
capture time, place, collector, purpose, important flag, SHA-256, acquisition, device, integrity, retention,
the stamp history with reasons and old → new values), the custody events in plain words with local times, the
keys that signed, what was checked and with what result, and which custody events the package covers. Every
fact about an item is read from its signed manifest bodies (data/manifests/*.body.json), never from a second
source that could disagree: the case-link purpose a clerk typed and a later stamp revision's purpose once
disagreed in this report, and a capture at 23:30 Beijing time was printed with the next day's UTC date. Times
are shown in agency local time (EVIDENCE_STATION_TZ) beside UTC (catalog.report_values). A missing CJK font
never fails an export: the HTML is written and the result says why there is no PDF.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from catalog.court_report_pdf import DEFAULT_FONT, write_pdf
from catalog.custody import CustodyKind
from catalog.custody_words import event_sentence, stamp_changes, stamp_value
from catalog.package_files import PackageFiles, SignedManifest, read_package
from catalog.premis import premis_event_type
from catalog.replay import ORIGIN_KINDS
from catalog.report_checks import event_findings, item_findings
from catalog.report_values import Values

__all__ = ["EventLine", "ItemReport", "Report", "ReportFiles", "Row", "StampLine", "build_report", "write_reports"]


@dataclass(frozen=True)
class Row:
    """One fact: its label, its value as lines, and the field name the HTML tags it with (data-field)."""
    label: str
    lines: tuple[str, ...]
    field: str = ""
    mono: bool = False  # hashes and fingerprints: set in a fixed-width face


@dataclass(frozen=True)
class StampLine:
    revision: int
    changed_by: str
    changed_at: str
    reason: str
    changes: str
    signed_at: str
    key_fingerprint: str


@dataclass(frozen=True)
class EventLine:
    id: Any
    local: str
    utc: str
    sentence: str
    actor: str
    premis: str  # the PREMIS event type's label
    premis_uri: str
    hash: str


@dataclass
class ItemReport:
    heading: str
    rows: list[Row]
    stamps: list[StampLine]
    events: list[EventLine]
    findings: list[str]


@dataclass
class Report:
    language: str
    labels: dict[str, str]
    header: list[Row]
    case: list[Row]
    items: list[ItemReport]
    case_events: list[EventLine]
    coverage: list[str]
    keys: list[Row]
    findings: list[str]  # package-wide (events not of one item)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and not any(i.findings for i in self.items)


class ReportFiles(list[Path]):
    """The files written (report.html, and report.pdf when it could be made) and notes on what was not."""

    def __init__(self, paths: list[Path], notes: list[str]) -> None:
        super().__init__(paths)
        self.notes = notes


def _row(v: Values, key: str, value: Any, field_name: str = "", *, mono: bool = False) -> Row:
    lines = tuple(value) if isinstance(value, list | tuple) else (v.plain(value),)
    return Row(v.label(key), lines or ("—",), field_name, mono)


def _moment_row(v: Values, key: str, value: Any, field_name: str) -> Row:
    found = v.moment(value)
    if found is None:
        return _row(v, key, None, field_name)
    if found.date_only:
        return _row(v, key, found.local, field_name)
    return Row(v.label(key), (f"{v.label('local_time')}: {found.local}", f"{v.label('utc_time')}: {found.utc}"),
               field_name)


def _signed_events(package: PackageFiles, item: dict[str, Any], body: dict[str, Any]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The item's events in events.jsonl that its newest signed *body* lists (same id and hash), and its retention
    events written after that body."""
    listed = {(e.get("id"), e.get("hash")) for e in body.get("custody") or []}
    newest = max((e.get("id") or 0 for e in body.get("custody") or []), default=0)
    mine = [e for e in package.events if (e.get("id"), e.get("hash")) in listed]
    later = [e for e in package.events_of(item.get("recording_id")) if (e.get("id") or 0) > newest
             and e.get("kind") in (CustodyKind.RETENTION_CHANGED.value, CustodyKind.LEGAL_HOLD.value)]
    return mine, later


def _retention_rows(v: Values, package: PackageFiles, item: dict[str, Any], body: dict[str, Any]) -> list[Row]:
    """Retain-until as signed; the rule and the legal hold from the latest events the signed body lists (their
    hashes are in it); retention events written after the newest manifest, in words."""
    signed, later = _signed_events(package, item, body)
    rule, hold, reasons = None, None, None
    for event in signed:
        details = event.get("details") or {}
        if event.get("kind") in (CustodyKind.ARCHIVED.value, CustodyKind.RETENTION_CHANGED.value):
            rule = details.get("rule", rule)
            hold = details.get("legal_hold", hold)
        elif event.get("kind") == CustodyKind.LEGAL_HOLD.value:
            hold, reasons = details.get("on"), details.get("reasons")
    rows = [_moment_row(v, "retain_until", body.get("retain_until"), "retain_until"),
            _row(v, "retention_rule", rule, "retention_rule"), _row(v, "legal_hold", v.yes_no(hold), "legal_hold")]
    if reasons:
        rows.append(_row(v, "hold_reasons", reasons, "hold_reasons"))
    if later:
        rows.append(_row(v, "retention_after", [f"{v.when(e.get('at'))}: {event_sentence(e, v)}" for e in later],
                         "retention_after"))
    return rows


def _acquired(v: Values, body: dict[str, Any]) -> Row:
    """When the station took the file in: the signed custody list's copy (or document attach) event."""
    for entry in body.get("custody") or []:
        if entry.get("kind") in ORIGIN_KINDS:
            return _moment_row(v, "acquired", entry.get("at"), "acquired")
    return _row(v, "acquired", None, "acquired")


def _fact_rows(v: Values, item: dict[str, Any], body: dict[str, Any]) -> list[Row]:
    stamp, capture = body.get("stamp") or {}, body.get("capture") or {}
    media, officer = body.get("media") or {}, body.get("officer") or {}
    integrity, sightings = body.get("integrity") or {}, body.get("sightings") or []
    collector = stamp.get("collector")
    if collector and officer.get("number") == collector and officer.get("name"):
        collector = f"{collector} {officer['name']}"
    return [
        _row(v, "file", item.get("file"), "file", mono=True),
        _row(v, "original_name", body.get("original_name"), "original_name"),
        _row(v, "media_kind", " / ".join(str(x) for x in (media.get("kind"), media.get("container")) if x),
             "media_kind"),
        _row(v, "sha256", body.get("sha256"), "sha256", mono=True), _row(v, "size", body.get("size_bytes"), "size"),
        _row(v, "case_number", stamp.get("case_number"), "case_number"),
        _row(v, "purpose", stamp.get("purpose"), "purpose"), _row(v, "collector", collector, "collector"),
        _row(v, "important", v.yes_no(stamp.get("important")), "important"),
        _moment_row(v, "capture_start", stamp.get("captured_start") or capture.get("start"), "captured_start"),
        _moment_row(v, "capture_end", capture.get("end"), "captured_end"),
        _row(v, "time_source", v.time_source(capture.get("time_source")), "time_source"),
        _row(v, "raw_device_time", capture.get("raw_device_time"), "raw_device_time"),
        _row(v, "zone_assumed", capture.get("zone_assumed"), "zone_assumed"),
        _row(v, "clock_offset", capture.get("clock_offset_s"), "clock_offset"),
        _row(v, "place", v.place(stamp.get("place")), "place"),
        _acquired(v, body), _row(v, "station", body.get("station"), "station"),
        _row(v, "device", body.get("device_serial"), "device"),
        _row(v, "sightings", [f"{s.get('device_serial')}: {s.get('device_path')}" for s in sightings], "sightings"),
        _row(v, "integrity", " — ".join(str(x) for x in (integrity.get("status"), integrity.get("detail")) if x),
             "integrity"),
    ]


def _stamp_line(v: Values, manifest: SignedManifest) -> StampLine:
    stamp = manifest.stamp
    if stamp.get("changes"):
        changes = stamp_changes(stamp.get("changes"), v)
    else:  # the first stamp: what it set
        changes = v.label("first_stamp") + v.pick("：", ": ") + v.pick("；", "; ").join(
            f"{v.label(key)} {stamp_value(name, stamp.get(name), v)}" for key, name in (
                ("case_number", "case_number"), ("purpose", "purpose"), ("collector", "collector"),
                ("important", "important"), ("capture_start", "captured_start")))
    return StampLine(revision=manifest.revision, changed_by=v.plain(stamp.get("changed_by")),
                     changed_at=v.when(stamp.get("changed_at")), reason=v.plain(stamp.get("reason")),
                     changes=changes, signed_at=v.when(manifest.body.get("signed_at")),
                     key_fingerprint=manifest.key_fingerprint)


def _event_line(v: Values, event: dict[str, Any]) -> EventLine:
    found = v.moment(event.get("at"))
    try:
        label, uri = premis_event_type(str(event.get("kind")))
    except ValueError:
        label, uri = "—", ""
    return EventLine(id=event.get("id"), local=found.local if found else "—", utc=found.utc if found else "—",
                     sentence=event_sentence(event, v), actor=v.plain(event.get("actor")), premis=label,
                     premis_uri=uri, hash=str(event.get("hash", "")))


def _item_report(v: Values, package: PackageFiles, item: dict[str, Any],
                 hashed: Mapping[str, str] | None) -> ItemReport:
    manifests = package.signed_manifests(item)
    heading = f"{v.label('item')} {item.get('recording_id')}: {item.get('original_name')}"
    events = [_event_line(v, e) for e in package.events_of(item.get("recording_id"))]
    findings = item_findings(package, item, hashed)
    if not manifests:
        disposal = item.get("disposal") or {}
        rows = [_row(v, "sha256", item.get("sha256"), "sha256", mono=True),
                _row(v, "status", v.label("disposed"), "status"),
                _moment_row(v, "disposed_at", disposal.get("disposed_at"), "disposed_at")]
        return ItemReport(heading, rows, [], events, findings)
    body = manifests[-1].body
    rows = _fact_rows(v, item, body) + _retention_rows(v, package, item, body)
    rows.append(_row(v, "signed_by", sorted({m.key_fingerprint for m in manifests}), "key_fingerprint", mono=True))
    return ItemReport(heading, rows, [_stamp_line(v, m) for m in manifests], events, findings)


def _header(v: Values, summary: dict[str, Any]) -> list[Row]:
    software = summary.get("software") or {}
    return [_moment_row(v, "exported", summary.get("exported_at"), "exported_at"),
            _row(v, "zone", v.tz), _row(v, "exported_by", summary.get("exported_by")),
            _row(v, "reason", summary.get("reason")),
            _row(v, "software", f"{software.get('name', '')} {software.get('version', '')}".strip()),
            _row(v, "format", summary.get("format"))]


def _case_rows(v: Values, case: dict[str, Any] | None) -> list[Row]:
    if not case:
        return []
    return [_row(v, "case_number", case.get("number"), "case"), _row(v, "case_title", case.get("title")),
            _row(v, "case_type", case.get("case_type")), _row(v, "unit", case.get("unit")),
            _row(v, "status", case.get("status")), _row(v, "opened_on", case.get("opened_on")),
            _row(v, "closed_on", case.get("closed_on"))]


def _coverage(v: Values, package: PackageFiles) -> list[str]:
    """Which custody events the package holds, and which stretch of the chain (and anchor) it proves."""
    ids = [int(e["id"]) for e in package.events if isinstance(e.get("id"), int)]
    lines = [v.pick(f"events.jsonl：{len(ids)} 个事件（编号 {min(ids)}–{max(ids)}），"
                    "即本包各项证据及案件的全部保管链事件",
                    f"events.jsonl: {len(ids)} events (ids {min(ids)}–{max(ids)}): every custody event of the "
                    "package's items and of the case") if ids else v.pick("events.jsonl：无事件", "events.jsonl: none")]
    rows = package.chain_rows()
    if rows:
        full = sum(1 for r in rows if r.get("full"))
        withheld = sum(1 for r in rows if r.get("body_withheld"))
        digest = len(rows) - full - withheld
        lines.append(v.pick(
            f"chain.jsonl：保管链编号 {rows[0].get('id')}–{rows[-1].get('id')} 连续 {len(rows)} 个链接"
            f"（完整事件 {full} 个，仅摘要的其他事件 {digest} 个，仅链接的第 1 版事件 {withheld} 个）",
            f"chain.jsonl: the chain from id {rows[0].get('id')} to {rows[-1].get('id')}, {len(rows)} links ({full} "
            f"full events, {digest} other events as digests only, {withheld} version-1 events as links only)"))
    anchor = package.optional_json("custody/export-anchor.json")
    if isinstance(anchor, dict):
        lines.append(v.pick(f"导出锚点 {anchor.get('record_name')}：截至事件 {anchor.get('last_event_id')}，"
                            f"哈希 {anchor.get('last_hash')}",
                            f"Export anchor {anchor.get('record_name')}: up to event {anchor.get('last_event_id')}, "
                            f"hash {anchor.get('last_hash')}"))
    return lines


def _keys(v: Values, package: PackageFiles, root_fingerprint: str | None) -> list[Row]:
    rows = [Row(v.label("root_key"), (root_fingerprint, v.label("root_note")), "root_fingerprint", True)
            if root_fingerprint else _row(v, "root_key", v.label("no_root"), "root_fingerprint")]
    listed = package.optional_json("keys/station-keys.json") or []
    rows.append(_row(v, "station_keys", [f"{k.get('station')}: {k.get('fingerprint')}" for k in listed
                                         if isinstance(k, dict)], "station_keys", mono=True))
    return rows


def build_report(package: PackageFiles, values: Values, *, root_fingerprint: str | None,
                 hashed: Mapping[str, str] | None = None) -> Report:
    """The report's data model: every fact as the report shows it, in *values*' language and zone."""
    summary = package.summary
    findings = [text for e in package.events for text in event_findings(e)]
    return Report(language=values.language, labels=values.labels(), header=_header(values, summary),
                  case=_case_rows(values, summary.get("case")),
                  items=[_item_report(values, package, item, hashed) for item in package.items],
                  case_events=[_event_line(values, e) for e in package.events_of(None)],
                  coverage=_coverage(values, package), keys=_keys(values, package, root_fingerprint),
                  findings=findings)


_TEMPLATES: Environment | None = None


def render_html(report: Report) -> str:
    """report.html from the Jinja2 template catalog/templates/court_report.html (autoescaped)."""
    global _TEMPLATES
    if _TEMPLATES is None:
        _TEMPLATES = Environment(loader=PackageLoader("catalog", "templates"), autoescape=select_autoescape(["html"]),
                                 trim_blocks=True, lstrip_blocks=True)
    return _TEMPLATES.get_template("court_report.html").render(r=report, L=report.labels)


def write_reports(data_dir: Path, *, root_fingerprint: str | None, language: str = "zh",
                  tz: str = "Asia/Shanghai", font: Path = DEFAULT_FONT,
                  hashed: Mapping[str, str] | None = None) -> ReportFiles:
    """Write *data_dir*/report.html and report.pdf for the package payload in *data_dir* (the bag's data/).

    *root_fingerprint*: the agency root key's fingerprint, shown to be compared out of band (None: the archive
    has none). *tz*: the agency's zone (EVIDENCE_STATION_TZ); *font*: a TrueType/TTC font with CJK glyphs
    (EVIDENCE_REPORT_FONT). Without a usable font the PDF is not written; the HTML and the result's `notes` say
    why, and the export goes on. *hashed*: payload file -> SHA-256 as the export measured it while writing
    (so the report does not read the originals a second time)."""
    report = build_report(read_package(data_dir), Values(language, tz), root_fingerprint=root_fingerprint,
                          hashed=hashed)
    pdf = data_dir / "report.pdf"
    missing = write_pdf(report, pdf, font=font)
    if missing:
        pdf.unlink(missing_ok=True)  # an older report.pdf must not pass for this one
        report.notes.append(report.labels["pdf_missing"] + missing)
    html = data_dir / "report.html"
    html.write_text(render_html(report), encoding="utf-8")
    return ReportFiles([html] if missing else [html, pdf], list(report.notes))
