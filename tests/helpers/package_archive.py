"""An archive to export evidence packages from, through the `evidence` command line (tests.cli): a case with three
stamped clips, their GPS sidecars, the recorder's identity file and a PDF, another case's recordings ingested in
between (so the package's stretch of the custody chain holds events that are not its own), and optionally an
agency root that certifies the station key and the export key (docs/keys.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import ensure_station, ensure_station_key
from catalog.users import add_user
from ingest.config import Settings
from ingest.samples import SampleSet
from storage import LocalStore
from tests.cli import run_cli
from tests.helpers.documents import pdf_bytes
from tests.helpers.recordings import archive_recording

CASE = "AB-2026-00042"
OTHER_CASE = "AB-2026-00099"
STATION = "station-1"
CLERK = "clerk:李四"


def ok(env: dict[str, str], *args: str) -> Any:
    """`evidence ARGS`, which must succeed; its result."""
    result = run_cli(env, *args)
    assert result.exit_code == 0, result.output
    return result


def make_archive(samples: SampleSet, env: dict[str, str], tmp_path: Path) -> LocalStore:
    """Case CASE with the sidecar recorder's files and a PDF; between its ingest and its case events, another
    recorder's files for OTHER_CASE. clerk:李四 may export, officer:张三 may not. The archive's store."""
    ok(env, "ingest", str(samples.sidecar_recorder), "--case", CASE, "--purpose", "证明无照经营", "--no-derive")
    ok(env, "ingest", str(samples.cn_recorder), "--case", OTHER_CASE, "--purpose", "另案", "--no-derive")
    ok(env, "case", "create", CASE, "--title", "张某无照经营案", "--type", "penalty-general", "--opened",
       "2026-11-01", "--by", CLERK)
    pdf = tmp_path / "询问笔录.pdf"
    pdf.write_bytes(pdf_bytes())
    ok(env, "case", "attach", CASE, str(pdf), "--title", "询问笔录", "--by", CLERK)
    # clerk:李四 exists: the commands above ran as them (tests.cli.run_cli)
    ok(env, "user", "add", "officer:张三", "--role", "officer", "--by", "admin")
    return LocalStore(Settings.from_env(env).store_path)


def set_up_root(env: dict[str, str], tmp_path: Path) -> str:
    """An agency root (key file kept in *tmp_path*), the station's key and the export key certified by it, as an
    administrator does it (docs/keys.md). The root's fingerprint."""
    root = tmp_path / "offline" / "root.ed25519.pem"
    created = json.loads(ok(env, "keys", "init-root", "--name", "某市城市管理综合执法局", "--out", str(root),
                            "--json", "--by", "admin").stdout)
    ok(env, "keys", "certify", "--station", STATION, "--root-key", str(root), "--by", "admin")
    ok(env, "keys", "export-key", "init", "--root-key", str(root), "--by", "admin")
    fingerprint: str = created["root"]["fingerprint"]
    return fingerprint


def export(env: dict[str, str], out: Path, *subject: str, by: str = CLERK, language: str = "zh") -> dict[str, Any]:
    """`evidence export SUBJECT --out OUT --json` (default: the case), which must succeed; its JSON."""
    result = ok(env, "export", *(subject or (CASE,)), "--out", str(out), "--by", by, "--reason", "移送法院",
                "--language", language, "--json")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def small_archive(engine: Engine, store: Any, tmp_path: Path, count: int = 2) -> tuple[Ed25519PrivateKey, list[int]]:
    """Without the command line or ffmpeg: *count* recordings archived as ingest leaves them, signed with a new
    station key of STATION, and user `clerk` who may export. The key and the recording ids."""
    key = Ed25519PrivateKey.generate()
    with Session(engine) as session:
        ensure_station(session, STATION)
        ensure_station_key(session, STATION, key, actor=f"station:{STATION}", store=store)
        recordings = [archive_recording(session, store, tmp_path, n, key) for n in range(1, count + 1)]
        add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        return key, [r.id for r in recordings if r.id is not None]
