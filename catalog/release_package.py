"""An approved release handed over: an evidence package (catalog.package: BagIt, signed, verifiable by the same
`verify.py` as any export) of its items, with the release's signed records in it, and for a publication (公示) a
public-facing summary that carries no personal data (issue 18, part 3).

The summary (`public_summary`, pure) says what was published and on what basis, and for each item its kind, length,
capture date, size and SHA-256, so that anyone holding a published file can check it is the one released. It leaves
out everything that names or places a person: officers, devices, places, file names (a recorder's names carry officer
numbers), the people who proposed and approved it, the recipient and the reason. The title and the legal basis are
published as the proposer wrote them.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from catalog.custody_words import RELEASE_KIND_WORDS
from catalog.models import Release
from catalog.package import ExportResult, PackageSigning, export_package
from catalog.releases import ReleaseRefused, current_problems, get_release, release_as_json, release_items
from catalog.users import require
from storage import EvidenceStore

__all__ = ["SUMMARY_FORMAT", "public_summary", "release_package", "summary_of", "summary_text"]

SUMMARY_FORMAT = "evidence-release-summary/1"
_MEDIA_WORDS = {"video": "视频", "audio": "音频", "photo": "照片", "document": "文书"}


def public_summary(release: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The public-facing summary of *release* (catalog.releases.release_as_json) and its *items* (each: media_kind,
    duration_s, captured_start, size_bytes, sha256). Pure."""
    decided = release.get("decided_at")
    return {"format": SUMMARY_FORMAT, "release": release["id"], "kind": release["kind"], "title": release["title"],
            "legal_basis": release["legal_basis"], "approved_on": decided[:10] if decided else None,
            "items": [{"n": n, "media_kind": item["media_kind"], "duration_s": item.get("duration_s"),
                       "captured_on": item["captured_start"][:10] if item.get("captured_start") else None,
                       "size_bytes": item["size_bytes"], "sha256": item["sha256"]}
                      for n, item in enumerate(items, 1)]}


def summary_text(summary: dict[str, Any]) -> str:
    """The summary in words, Chinese then English. Pure."""
    zh, en = RELEASE_KIND_WORDS.get(summary["kind"], (summary["kind"], summary["kind"]))
    lines = [f"第 {summary['release']} 号{zh}：{summary['title']}", f"依据：{summary['legal_basis']}",
             f"法制审核通过日期：{summary['approved_on'] or '—'}", f"共 {len(summary['items'])} 项："]
    for item in summary["items"]:
        length = f"，时长 {item['duration_s']:.0f} 秒" if item.get("duration_s") else ""
        lines.append(f"  {item['n']}. {_MEDIA_WORDS.get(item['media_kind'], item['media_kind'])}，"
                     f"拍摄日期 {item['captured_on'] or '—'}{length}，{item['size_bytes']} 字节，"
                     f"SHA-256 {item['sha256']}")
    lines += ["", f"Release {summary['release']} ({en}): {summary['title']}", f"Legal basis: {summary['legal_basis']}",
              f"Approved by legal review on {summary['approved_on'] or '-'}; {len(summary['items'])} item(s):"]
    for item in summary["items"]:
        length = f", {item['duration_s']:.0f} s" if item.get("duration_s") else ""
        lines.append(f"  {item['n']}. {item['media_kind']}, captured {item['captured_on'] or '-'}{length}, "
                     f"{item['size_bytes']} bytes, SHA-256 {item['sha256']}")
    return "\n".join(lines) + "\n"


def summary_of(session: Session, release: Release) -> dict[str, Any]:
    """`public_summary` of a release as the catalogue holds it now."""
    return public_summary(release_as_json(session, release), [{
        "media_kind": r.media_kind, "duration_s": r.duration_s, "size_bytes": r.size_bytes, "sha256": r.sha256,
        "captured_start": r.captured_start.isoformat() if r.captured_start else None}
        for _item, r in release_items(session, release)])


def release_package(session: Session, store: EvidenceStore, release_id: int, *, out: Path, by: str, now: datetime,
                    signing: PackageSigning, organisation: str = "", language: str = "zh") -> ExportResult:
    """Write the package of approved release *release_id* to *out* (a new folder, or a `.zip`): its items as an
    export of them is (the same checks: *by* must be able to download each, and a state secret never leaves),
    with data/release/ holding the release, its signed records as kept in WORM storage and, for a publication, the
    public summary (JSON and text). Each item gets its `exported` event naming the release.

    Raises:
      ReleaseRefused: no such release, not approved (proposed, rejected, withdrawn), or an item that may no longer
        go out (a class raised, disposed of, other bytes).
      PermissionDenied, AccessRefused, ExportFailed: as catalog.package.export_package raises them.
    """
    require(session, by, "export")
    release = get_release(session, release_id)
    if release.state != "approved":
        raise ReleaseRefused([f"release {release_id} is {release.state}: only an approved release is handed over"])
    items = release_items(session, release)
    problems = current_problems(release, items)
    if problems:
        raise ReleaseRefused(problems)
    shown = release_as_json(session, release)
    extra = {"release/release.json": json.dumps(shown, ensure_ascii=False, indent=1).encode()}
    for name in release.records:
        extra[f"release/records/{name.rsplit('/', 1)[-1]}"] = store.get_record(name)
    if release.kind == "publication":
        summary = summary_of(session, release)
        extra["release/public-summary.json"] = json.dumps(summary, ensure_ascii=False, indent=1).encode()
        extra["release/public-summary.txt"] = summary_text(summary).encode()
    zh, en = RELEASE_KIND_WORDS[release.kind]
    return export_package(session, store, out=out, by=by, now=now, signing=signing,
                          refs=[str(recording.id) for _i, recording in items],
                          reason=f"release {release.id} ({en} {zh}) to {release.recipient}: {release.reason}",
                          organisation=organisation, language=language, extra=extra,
                          description=f"Release {release.id}: {en} ({zh}) to {release.recipient}, on "
                                      f"{release.legal_basis}")
