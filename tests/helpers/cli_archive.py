"""An archive run through the `evidence` command line, as the attack tests use it: recorders docked with `evidence
ingest`, `evidence verify --all`, and two-person disposal (`evidence retention sweep` and `approve`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.config import Settings
from ingest.samples import make_wav
from storage import LocalStore
from tests.cli import run_cli

#: ZFYINFO.TXT of the recorder these tests dock: serial A123456, officer 010203 (GBK, as the devices write it).
IDENTITY = "产品序号=A123456\r\n警员编号=010203\r\n".encode("gbk")


def store_of(env: dict[str, str]) -> LocalStore:
    """The local WORM store the `evidence` commands of *env* use."""
    return LocalStore(Settings.from_env(env).store_path)


def ingest_recorder(env: dict[str, str], tmp_path: Path, name: str, *, extra: tuple[str, ...] = ()
                    ) -> list[dict[str, Any]]:
    """Dock a recorder holding one WAV (its length, and so its bytes, set by *name*) and ingest it with
    `evidence ingest`; the new recordings' JSON."""
    seconds = 0.5 + sum(name.encode()) % 97 / 50
    device = tmp_path / f"recorder-{name}"
    device.mkdir(parents=True)
    (device / "ZFYINFO.TXT").write_bytes(IDENTITY)
    make_wav(device / "RECORD" / f"ZFY_A123456_010203_20261120_0800{len(name):02d}_{name}.wav", seconds=seconds)
    result = run_cli(env, "ingest", str(device), "--no-derive", "--json", *extra)
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.stdout)["recordings"] if r["ingest"] == "new"
            and r["device_path"].endswith(".wav")]
    assert rows and all(r["state"] in ("archived", "verified") for r in rows)
    return rows


def verify_all(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """`evidence verify --all --json` by an auditor: its exit code and its report."""
    result = run_cli(env, "verify", "--all", "--json", "--by", "auditor-zhao")
    return result.exit_code, json.loads(result.stdout)


def problems_of(report: dict[str, Any], recording_id: int | None = None) -> list[str]:
    """The report's problems (of *recording_id* only, when given) as `[kind] detail` lines."""
    return [f"[{p['kind']}] {p['detail']}" for p in report["problems"]
            if recording_id is None or p["recording_id"] == recording_id]


def sweep_and_approve(env: dict[str, str]) -> tuple[dict[str, Any], int]:
    """`evidence retention sweep` by one clerk and `approve` by a supervisor: the approval's JSON and exit code."""
    proposed = run_cli(env, "retention", "sweep", "--by", "clerk-li", "--json")
    assert proposed.exit_code == 0, proposed.output
    batch = json.loads(proposed.stdout)
    assert batch["status"] == "awaiting_approval", batch
    approved = run_cli(env, "retention", "approve", str(batch["batch"]), "--by", "supervisor-wang", "--json")
    return json.loads(approved.stdout), approved.exit_code
