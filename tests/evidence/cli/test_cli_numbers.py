"""Numbers no row can have, typed where the command line takes an id or a reference: past PostgreSQL's integer,
past any integer, zero. Each is answered as "no such …" (exit 2), never a database error."""
from __future__ import annotations

import pytest

from tests.cli import run_cli, station_adopts_policy

#: Every command that looks a row up by a number or a reference, with what else it needs to get that far.
COMMANDS = [
    ("show", "{n}"),
    ("cat", "{n}", "--reason", "复核"),
    ("tag", "{n}", "--reason", "补充", "--purpose", "证明"),
    ("manifest", "{n}"),
    ("redact", "{n}", "--box", "0,0,8,8", "--reason", "公示"),
    ("redact-job", "{n}"),
    ("integrity", "check", "{n}"),
    ("integrity", "history", "{n}"),
    ("class", "set", "{n}", "--to", "personal", "--reason", "含个人信息"),
    ("release", "create", "{n}", "--kind", "transfer", "--title", "移送", "--recipient", "检察院", "--basis", "法",
     "--reason", "移送"),
    ("release", "approve", "{n}", "--note", "同意"),
    ("release", "reject", "{n}", "--note", "不同意"),
    ("release", "withdraw", "{n}", "--reason", "撤回"),
    ("release", "show", "{n}"),
    ("release", "summary", "{n}"),
    ("release", "share", "{n}", "--recipient", "王检察官"),
    ("release", "unshare", "{n}", "--reason", "改期"),
    ("retention", "show", "{n}"),
    ("retention", "approve", "{n}"),
    ("station", "tag", "--session", "{n}", "--purpose", "证明"),
]


@pytest.mark.parametrize("number", ["99999999999", "9" * 30, "0", "²", "9" * 5000])
def test_no_command_fails_on_a_number_no_row_can_have(env, tmp_path, number):
    station_adopts_policy(env)
    crashed: list[tuple[object, ...]] = []
    answered = 0
    for command in COMMANDS:
        args = [part.format(n=number) for part in command]
        try:  # run_cli lets what the command did not handle through
            result = run_cli(env, *args, "--by", "admin")
        except Exception as error:  # noqa: BLE001 - each crash is listed, not only the first
            crashed.append((args[:2], f"{type(error).__name__}: {str(error)[:120]}"))
            continue
        named = number in ("0", "²") or number.lstrip("0")[:11] in result.stderr  # it names what was asked for
        if result.exit_code != 2 or not named:
            crashed.append((args[:2], result.exit_code, result.stderr[-200:]))
        answered += 1
    assert crashed == [], "\n".join(map(str, crashed))
    assert answered == len(COMMANDS)
