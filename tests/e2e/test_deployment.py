"""The Compose deployment is wired to commands and settings that exist.

No Docker engine runs on the test machines, so the containers themselves are not started here; this checks
what can be checked without one: every service command is a valid `evidence` invocation, every EVIDENCE_*
variable is a real setting, the bucket is created with Object Lock, and the image copies what exists.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from evidence.cli.main import main
from ingest.settings_table import SETTINGS_BY_NAME

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))


def test_services_cover_the_production_parts():
    assert {"minio", "minio-init", "postgres", "redis", "worker", "station-worker", "station"} <= set(
        COMPOSE["services"])


def test_every_evidence_command_parses():
    for name in ("worker", "station-worker", "station", "scheduler", "web"):
        command = COMPOSE["services"][name]["command"]
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0, (name, command, result.output)


def test_every_evidence_variable_is_a_real_setting():
    text = (ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8")
    used = set(re.findall(r"\b(EVIDENCE_[A-Z0-9_]+)\s*:", text))
    assert used and used <= set(SETTINGS_BY_NAME), used - set(SETTINGS_BY_NAME)


def test_the_bucket_is_created_with_object_lock_and_versioning():
    init = COMPOSE["services"]["minio-init"]["entrypoint"]
    assert "mc mb --ignore-existing --with-lock" in init and "mc version enable" in init


def test_the_broker_keeps_messages_across_restarts():
    assert "--appendonly yes" in COMPOSE["services"]["redis"]["command"]


def test_the_dock_is_mounted_read_only():
    # read-only (and rslave, so recorders the host mounts later show up inside the container)
    assert any(v.rsplit(":", 2)[1] == "/dock" and "ro" in v.rsplit(":", 2)[2].split(",")
               for v in COMPOSE["services"]["station"]["volumes"])


def test_the_image_copies_only_what_exists():
    for line in (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_systemd_units_run_real_commands():
    units = sorted((ROOT / "deploy").glob("*/*.service"))
    assert {u.name for u in units} >= {"evidence-station.service", "evidence-retention.service"}
    for unit in units:
        line = next(x for x in unit.read_text(encoding="utf-8").splitlines() if x.startswith("ExecStart="))
        args = line.removeprefix("ExecStart=").split()[1:]
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (unit.name, args, result.output)
    timer = (ROOT / "deploy" / "archive" / "evidence-retention.timer").read_text(encoding="utf-8")
    assert "OnCalendar=" in timer and "Persistent=true" in timer
