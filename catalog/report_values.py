"""How the court report writes values: times in agency local time beside UTC, places, yes/no, sources; and the
labels of its fields, in Chinese (the default) or English.

Every time the archive signs is UTC. A report that printed only UTC (or only the local time, without saying so)
moves a capture at 23:30 Beijing time to the next or previous calendar day, and a court reads that as another
date. So each instant is shown twice, in the agency's zone (EVIDENCE_STATION_TZ) with its offset and in UTC,
both computed from the one signed value; a plain date (a case's opening day) is shown as written. Pure.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from catalog.package_verifier import PLACE_WORDS, TIME_WORDS

__all__ = ["LANGUAGES", "Moment", "Values"]

LANGUAGES = ("zh", "en")

#: Field labels: key → (Chinese, English).
_LABELS: dict[str, tuple[str, str]] = {
    "title": ("证据包报告", "Evidence package report"),
    "exported": ("导出时间", "Exported"), "exported_by": ("导出人", "Exported by"), "reason": ("导出事由", "Reason"),
    "software": ("软件版本", "Software"), "case": ("案件", "Case"), "case_number": ("案件编号", "Case number"),
    "case_title": ("案由", "Title"), "case_type": ("案件类型", "Case type"), "unit": ("承办单位", "Unit"),
    "status": ("状态", "Status"), "opened_on": ("立案日期", "Opened"), "closed_on": ("结案日期", "Closed"),
    "item": ("证据", "Item"), "file": ("文件", "File"), "original_name": ("原始文件名", "Original name"),
    "media_kind": ("类型", "Kind"), "sha256": ("SHA-256", "SHA-256"), "size": ("大小（字节）", "Size (bytes)"),
    "purpose": ("证明对象", "Purpose"), "collector": ("采集人", "Collector"), "important": ("重要标记", "Important"),
    "capture_start": ("采集开始时间", "Capture start"), "capture_end": ("采集结束时间", "Capture end"),
    "local_time": ("当地时间", "Local time"), "utc_time": ("协调世界时（UTC）", "UTC"),
    "time_source": ("时间来源", "Time source"), "raw_device_time": ("设备原始时间", "Raw device time"),
    "zone_assumed": ("假定时区", "Zone assumed"), "clock_offset": ("设备时钟偏差（秒）", "Device clock offset (s)"),
    "place": ("采集地点", "Place"), "acquired": ("入库（复制）时间", "Acquired (copied)"),
    "station": ("采集站", "Station"), "device": ("采集设备", "Device"), "sightings": ("设备上的位置", "Seen on device"),
    "integrity": ("完整性", "Integrity"),
    "retain_until": ("保存至", "Retained until"), "retention_rule": ("保存规则", "Rule"),
    "legal_hold": ("诉讼保全", "Legal hold"), "hold_reasons": ("保全理由", "Hold reasons"),
    "retention_after": ("签名之后的变更（保管链事件）", "Changes after signing (custody events)"),
    "stamp_history": ("证据标识修订记录", "Stamp history"), "revision": ("版本", "Revision"),
    "changed_by": ("修改人", "Changed by"), "changed_at": ("修改时间", "Changed at"),
    "change_reason": ("修改理由", "Reason"), "changes": ("修改内容（原值 → 新值）", "Changes (old → new)"),
    "first_stamp": ("首次标识", "first stamp"), "custody": ("保管链", "Custody"), "event_no": ("序号", "No."),
    "event": ("事件", "Event"), "actor": ("操作人", "By"),
    "premis": ("PREMIS 事件类型", "PREMIS event type"), "event_hash": ("事件哈希", "Event hash"),
    "signing_keys": ("签名密钥", "Signing keys"), "zone": ("当地时间所用时区", "Local time zone"),
    "signed_by": ("签名密钥指纹", "Signed by key"), "signed_at": ("签名时间", "Signed at"),
    "root_key": ("机构根密钥指纹", "Agency root key fingerprint"),
    "root_note": ("请与机构公布的根密钥指纹核对（例如电话或公函）。", "Compare with the fingerprint the agency "
                  "publishes (by telephone or letter)."),
    "no_root": ("本档案库未设根密钥：签名密钥须逐一与登记核对。", "This archive has no root key: each signing key "
                "must be compared with the station's registration."),
    "verification": ("核验结果", "Verification"),
    "verified_ok": ("通过：签名、文件哈希与保管链事件哈希均与签名清单一致。", "Passed: signatures, file hashes "
                    "and custody event hashes agree with the signed manifests."),
    "verified_bad": ("发现问题：", "Problems found:"),
    "verify_scope": ("本核验由导出程序在生成报告时进行；独立核验请按 VERIFY.txt 或运行 verify.py。",
                     "Checked by the exporting software when it wrote this report; check independently with "
                     "VERIFY.txt or verify.py."),
    "coverage": ("本包包含的保管链事件", "Custody events in this package"),
    "case_events": ("案件事件", "Case events"), "pdf_missing": ("未生成 PDF：", "No PDF was written: "),
    "facts_source": ("本报告中每项证据的事实均取自其签名清单（data/manifests/*.body.json）。",
                     "Each item's facts in this report are taken from its signed manifests "
                     "(data/manifests/*.body.json)."),
    "yes": ("是", "yes"), "no": ("否", "no"), "none": ("无", "none"), "on": ("开启", "on"), "off": ("解除", "off"),
    "disposed": ("已销毁（无签名清单可列）", "disposed (no signed manifest to show)"),
    "disposed_at": ("销毁时间", "Disposed at"), "format": ("包格式", "Package format"),
    "station_keys": ("采集站签名公钥", "Station signing keys"),
}

#: Where a capture place came from (ingest.describe.place) and how a capture time was found.
# Where a place / a capture time came from, in words: the verifier shipped in every package words them too (it must
# stand alone), so its tables are the one copy.
_SOURCES: dict[str, tuple[str, str]] = PLACE_WORDS
_TIME_SOURCES: dict[str, tuple[str, str]] = TIME_WORDS


@dataclass(frozen=True)
class Moment:
    """One instant as the report shows it: local (with its offset) and UTC, from the same value."""
    local: str
    utc: str
    date_only: bool = False

    def __str__(self) -> str:
        return self.local if self.date_only else f"{self.local} · {self.utc}"


@dataclass(frozen=True)
class Values:
    language: str = "zh"
    tz: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"report language {self.language!r}: choose one of {', '.join(LANGUAGES)}")
        ZoneInfo(self.tz)  # an unknown zone fails here, naming it

    @property
    def _en(self) -> bool:
        return self.language == "en"

    def label(self, key: str) -> str:
        zh, en = _LABELS[key]
        return en if self._en else zh

    def labels(self) -> dict[str, str]:
        """Every label in the report's language (the template's `L`)."""
        return {key: self.label(key) for key in _LABELS}

    def pick(self, zh: str, en: str) -> str:
        return en if self._en else zh

    def moment(self, value: Any) -> Moment | None:
        """*value* (an ISO 8601 time or date, as signed) shown local and UTC; None for no value."""
        if value in (None, ""):
            return None
        text = str(value)
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            return Moment(text, text, date_only=True)  # not a time: shown exactly as written
        if len(text) <= 10:
            return Moment(text, text, date_only=True)  # a calendar date: it has no zone, nothing to convert
        if at.tzinfo is None:
            note = self.pick("（未注明时区）", " (no zone stated)")
            return Moment(f"{at:%Y-%m-%d %H:%M:%S}{note}", f"{at:%Y-%m-%d %H:%M:%S}{note}")
        local = at.astimezone(ZoneInfo(self.tz))
        offset = f"{local:%z}"
        return Moment(f"{local:%Y-%m-%d %H:%M:%S} (UTC{offset[:3]}:{offset[3:]})",
                      f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")

    def when(self, value: Any) -> str:
        """*value* as one line: local time · UTC time (or "—")."""
        found = self.moment(value)
        return "—" if found is None else str(found)

    def yes_no(self, value: Any) -> str:
        return "—" if value is None else self.label("yes" if value else "no")

    def source(self, value: Any, words: dict[str, tuple[str, str]] = _SOURCES) -> str:
        """Where a place (or, with *words* _TIME_SOURCES: a time) came from, in words, with its code."""
        if not value:
            return "—"
        found = words.get(str(value))
        return f"{self.pick(*found)} ({value})" if found else str(value)

    def time_source(self, value: Any) -> str:
        return self.source(value, _TIME_SOURCES)

    def place(self, place: Any) -> str:
        """A signed place ({lat, lon, source}) in words with its source, e.g. "北纬 39.904200°，东经 116.407400°"."""
        if not isinstance(place, dict) or place.get("lat") is None or place.get("lon") is None:
            return self.pick("未记录", "not recorded")
        lat, lon = float(place["lat"]), float(place["lon"])
        if self._en:
            where = f"{abs(lat):.6f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.6f}° {'E' if lon >= 0 else 'W'}"
        else:
            north, east = ("北纬" if lat >= 0 else "南纬"), ("东经" if lon >= 0 else "西经")
            where = f"{north} {abs(lat):.6f}°，{east} {abs(lon):.6f}°"
        return f"{where} ({self.pick('来源', 'source')}: {self.source(place.get('source'))})"

    def plain(self, value: Any) -> str:
        """Any other value as text: lists joined, mappings as compact JSON, nothing as "—"."""
        if value is None or value == "" or value == [] or value == {}:
            return "—"
        if isinstance(value, bool):
            return self.yes_no(value)
        if isinstance(value, list | tuple):
            return self.pick("；", "; ").join(self.plain(v) for v in value)
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
        return str(value)
