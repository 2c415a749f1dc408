"""A redacted copy exported in an evidence package (the form a release to a court or the public takes): the package
must verify with its own verify.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import bind_caller, invoke, run_cli, station_adopts_policy
from tests.helpers.verifier_env import named, verifier_python, verify_json
from tests.ingest.test_redaction_copies import _device

__all__ = ["verifier_python"]


def _json(env, *args):
    result = run_cli(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_package_of_a_redacted_copy_verifies(env, tmp_path: Path, verifier_python: Path) -> None:
    station_adopts_policy(env)
    rows = _json(env, "ingest", str(_device(tmp_path / "card")), "--no-derive")["recordings"]
    clip = next(r for r in rows if r["original_name"] == "MVI_0001.MP4")
    bind_caller(env, "clerk", roles=("clerk",))
    made = json.loads(invoke(env, "redact", str(clip["id"]), "--box", "1-2:96,64,96,96", "--reason", "公示前遮蔽",
                             "--json").stdout)
    out = tmp_path / "package"
    done = invoke(env, "export", str(made["recording_id"]), "--out", str(out), "--reason", "移送", "--json")
    assert done.exit_code == 0, done.output
    code, result = verify_json(verifier_python, out)
    assert code == 0, named(result)
