"""`evidence class …` on real ingested media: a class is set with a reason, shown and searched; a person outside
what the class allows is refused the original (and the refusal says why); a grant on the case opens it; a state
secret never leaves in a package, whoever asks (issue 18, part 1)."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import text

from catalog import open_catalog
from ingest.config import Settings
from tests.cli import bind_caller, invoke, run_cli, station_adopts_policy

CASE = "京朝城管罚字〔2026〕第00123号"


def _json(env: dict[str, str], *args: str) -> Any:
    result = run_cli(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _as(env: dict[str, str], name: str, roles: tuple[str, ...], *args: str) -> Any:
    bind_caller(env, name, roles=roles)
    return invoke(env, *args)


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_class_is_set_shown_searched_enforced_and_opened_by_a_grant(samples, env, tmp_path) -> None:
    station_adopts_policy(env)
    rows = _json(env, "ingest", str(samples.dcim_camera), "--no-derive")["recordings"]
    rid = str(rows[0]["id"])
    # A clerk classes it personal privacy (by its Chinese name), with a reason
    bind_caller(env, "clerk", roles=("clerk",))
    set_ = json.loads(invoke(env, "class", "set", rid, "--to", "个人隐私", "--reason", "拍到未成年人", "--json").stdout)
    assert set_ == {"class": "personal", "changed": [int(rid)], "unchanged": []}
    # and may not lower it again
    lowered = invoke(env, "class", "set", rid, "--to", "public", "--reason", "误设")
    assert lowered.exit_code == 2 and "may not lower recording" in lowered.stderr
    # It is shown and searchable by class
    assert _json(env, "show", rid)["sensitivity"] == "personal"
    found = _json(env, "search", "--class", "personal")["recordings"]
    assert [r["id"] for r in found] == [int(rid)]
    assert _json(env, "search", "--class", "internal")["recordings"] != []
    # A supervisor (in scope, allowed to play) is refused the original, and told why
    refused = _as(env, "supervisor", ("supervisor",), "cat", rid, "--reason", "抽检")
    assert refused.exit_code != 0 and "personal privacy (个人隐私)" in refused.stderr and refused.stdout_bytes == b""
    # An administrator, who may not play it either, may not link it to a case (a grant there would open it)
    bind_caller(env, "admin", roles=("admin",))
    run = invoke(env, "case", "create", CASE, "--title", "无照经营", "--type", "penalty-general", "--unit", "城管",
                 "--opened", "2026-11-01")
    assert run.exit_code == 0, run.output
    refused = invoke(env, "case", "link", CASE, rid, "--purpose", "现场")
    assert refused.exit_code == 2 and f"may not link recording {rid}" in refused.stderr, refused.output
    # The clerk (the custodian) links it; the administrator grants the supervisor access to the case
    linked = _as(env, "clerk", ("clerk",), "case", "link", CASE, rid, "--purpose", "现场")
    assert linked.exit_code == 0, linked.output
    bind_caller(env, "admin", roles=("admin",))
    granted = json.loads(invoke(env, "class", "grant", CASE, "supervisor", "--reason", "督察抽检",
                                "--until", "2099-01-01T00:00:00+08:00", "--json").stdout)
    assert granted["user"] == "supervisor" and granted["expires_at"].startswith("2098-12-31T16:00")
    opened = _as(env, "supervisor", ("supervisor",), "cat", rid, "--reason", "抽检")
    assert opened.exit_code == 0, opened.stderr
    assert hashlib.sha256(opened.stdout_bytes).hexdigest() == rows[0]["sha256"]
    # Raised to state secret, it never leaves in a package, not even for the administrator with a grant
    bind_caller(env, "admin", roles=("admin",))
    itself = invoke(env, "class", "grant", CASE, "admin", "--reason", "定密管理")
    assert itself.exit_code == 2 and "may not grant themselves" in itself.stderr
    assert _as(env, "supervisor", ("supervisor",), "class", "grant", CASE, "admin", "--reason", "定密管理"
               ).exit_code == 0
    # A supervisor of another unit may not grant on a case that holds nothing of theirs
    bind_caller(env, "U9-supervisor", roles=("supervisor",))
    bind_caller(env, "admin", roles=("admin",))
    scoped = invoke(env, "user", "scope", "U9-supervisor", "--unit", "U9")
    assert scoped.exit_code == 0, scoped.output
    refused = _as(env, "U9-supervisor", ("supervisor",), "class", "grant", CASE, "clerk", "--reason", "x")
    assert refused.exit_code == 2 and "outside" in refused.stderr, refused.output
    bind_caller(env, "admin", roles=("admin",))
    assert invoke(env, "class", "case", CASE, "--to", "国家秘密", "--reason", "定密").exit_code == 0
    export = invoke(env, "export", CASE, "--out", str(tmp_path / "pkg"), "--reason", "移送")
    assert export.exit_code != 0 and "never leaves the archive" in export.stderr, export.output
    assert not (tmp_path / "pkg").exists()
    # The custody log tells the whole story
    kinds = [e["kind"] for e in _json(env, "show", rid)["custody"]]
    assert kinds.count("classified") == 2 and "access_refused" in kinds and "accessed" in kinds


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_state_secret_declassified_in_sql_is_named_by_verify(samples, env) -> None:
    station_adopts_policy(env)
    rows = _json(env, "ingest", str(samples.dcim_camera), "--no-derive")["recordings"]
    rid = str(rows[0]["id"])
    bind_caller(env, "admin", roles=("admin",))
    assert invoke(env, "class", "set", rid, "--to", "state_secret", "--reason", "定密").exit_code == 0
    clean = run_cli(env, "verify", rid, "--no-chain")
    assert clean.exit_code == 0, clean.output
    # When someone with database access makes it public behind the application's back
    engine = open_catalog(Settings.from_env(env).database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE recording SET sensitivity = 'public' WHERE id = :i"), {"i": int(rid)})
    engine.dispose()
    # Then verify names the row, the class the chain set and the event, and exits 4
    found = run_cli(env, "verify", rid, "--no-chain")
    assert found.exit_code == 4, found.output
    assert "sensitivity: the catalogue row says 'public', the custody chain says 'state_secret'" in found.output
    # and a grant written into the catalogue in SQL is named by a whole verify
    assert invoke(env, "case", "create", CASE, "--title", "无照经营", "--type", "penalty-general", "--unit", "城管",
                  "--opened", "2026-11-01").exit_code == 0
    engine = open_catalog(Settings.from_env(env).database_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO case_grant (case_id, user_name, granted_by, granted_at, reason) "
                          "SELECT id, 'clerk', 'admin', opened_on, '伪造' FROM case_file"))
    engine.dispose()
    whole = run_cli(env, "verify", "--all", "--no-chain")
    assert whole.exit_code == 4 and "access grant 1" in whole.output and "no access_granted event" in whole.output


@pytest.mark.usefixtures("ffmpeg_available")
def test_the_agencys_names_for_the_classes_are_taken_and_shown(samples, env, tmp_path) -> None:
    names = tmp_path / "classes.toml"
    names.write_text('[state_secret]\nzh = "涉密"\nen = "classified"\n', encoding="utf-8")
    env = {**env, "EVIDENCE_SENSITIVITY_NAMES": str(names)}
    station_adopts_policy(env)
    rows = _json(env, "ingest", str(samples.dcim_camera), "--no-derive")["recordings"]
    rid = str(rows[0]["id"])
    bind_caller(env, "admin", roles=("admin",))
    said = invoke(env, "class", "set", rid, "--to", "涉密", "--reason", "定密")
    assert said.exit_code == 0 and "涉密 (classified)" in said.stdout, said.output
    # A file with a mistake stops the command at start, naming the setting, the file and the problem
    names.write_text('[secret]\nzh = "机密"\nen = "secret"\n', encoding="utf-8")
    bad = invoke(env, "class", "set", rid, "--to", "public", "--reason", "x")
    assert bad.exit_code == 2 and "EVIDENCE_SENSITIVITY_NAMES" in bad.stderr and "[secret] is no class" in bad.stderr
