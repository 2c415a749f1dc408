"""A real evidence package for the report and PREMIS tests: a recorder docked with `evidence ingest`, a case, a stamp
revision and `evidence export`, all through the command line (tests.cli).

The recording is captured at 23:30 agency time (Asia/Shanghai, the default EVIDENCE_STATION_TZ): 15:30 UTC the
same day, the case where a report that printed only the UTC date, or the local date of a UTC time, would be a day
off for captures after 16:00 UTC."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.samples import make_wav
from tests.cli import run_cli

CASE = "AB-2026-00077"
#: The purpose the recording was stamped and linked with at ingest, and the one a clerk's stamp revision set.
FIRST_PURPOSE = "证明无照经营"
SIGNED_PURPOSE = "证明占道经营"
REVISION_REASON = "证明对象填写有误，更正"
#: ZFYINFO.TXT of the recorder: serial A123456, officer 010203 (GBK, as the devices write it).
IDENTITY = "产品序号=A123456\r\n警员编号=010203\r\n".encode("gbk")
#: The capture time the file name carries (agency local time), and the same instant in UTC.
LOCAL_CAPTURE = "2026-11-20 23:30:00"
UTC_CAPTURE = "2026-11-20 15:30:00"


@dataclass(frozen=True)
class Package:
    root: Path  # the bag
    recording_id: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def items(self) -> list[dict[str, Any]]:
        return list(json.loads((self.data / "items.json").read_text(encoding="utf-8"))["items"])

    def events(self) -> list[dict[str, Any]]:
        lines = (self.data / "custody" / "events.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]


def _ok(env: dict[str, str], *args: str) -> Any:
    result = run_cli(env, *args)
    assert result.exit_code == 0, result.output
    return result


def late_evening_package(env: dict[str, str], tmp_path: Path) -> Package:
    """Export case CASE holding one WAV captured at 23:30 local time, whose stamp was revised once (purpose
    FIRST_PURPOSE → SIGNED_PURPOSE, with REVISION_REASON) after it was linked to the case. Needs ffmpeg."""
    device = tmp_path / "recorder"
    device.mkdir()
    (device / "ZFYINFO.TXT").write_bytes(IDENTITY)
    make_wav(device / "RECORD" / "ZFY_A123456_010203_20261120_233000.wav", seconds=0.6)
    ingested = _ok(env, "ingest", str(device), "--case", CASE, "--purpose", FIRST_PURPOSE, "--no-derive", "--json")
    rows = [r for r in json.loads(ingested.stdout)["recordings"] if r["device_path"].endswith(".wav")]
    assert len(rows) == 1, rows
    recording_id = int(rows[0]["id"])
    _ok(env, "case", "create", CASE, "--title", "王某占道经营案", "--type", "penalty-general", "--opened",
        "2026-11-20", "--by", "clerk:李四")
    _ok(env, "tag", str(recording_id), "--purpose", SIGNED_PURPOSE, "--reason", REVISION_REASON, "--by", "clerk:李四")
    out = tmp_path / "package"
    _ok(env, "export", CASE, "--out", str(out), "--by", "clerk:李四", "--reason", "移送法院")
    return Package(out, recording_id)
