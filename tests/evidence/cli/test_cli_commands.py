"""The `evidence` group imports each command's module only when that command runs (evidence.cli.main.COMMANDS):
every command must still be there, under its name, and `evidence ingest` must not pay for the others' imports."""
from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import click
from click.testing import CliRunner

import evidence.cli
from evidence.cli.main import COMMANDS, main


def _top_level_commands() -> set[str]:
    """The names of the click commands defined in evidence.cli's modules that no group of theirs holds."""
    found: dict[int, click.Command] = {}
    for info in pkgutil.iter_modules(evidence.cli.__path__, "evidence.cli."):
        module = importlib.import_module(info.name)
        found.update({id(v): v for v in vars(module).values() if isinstance(v, click.Command)})
    held = {id(sub) for command in found.values() if isinstance(command, click.Group)
            for sub in command.commands.values()}
    return {command.name for key, command in found.items() if key not in held and command is not main
            and command.name is not None}


def test_every_command_module_command_is_listed_and_answers_help():
    assert set(COMMANDS) == _top_level_commands()
    runner = CliRunner()
    listed = runner.invoke(main, ["--help"])
    assert listed.exit_code == 0
    for name in COMMANDS:
        assert f"\n  {name} " in listed.output, name
        shown = runner.invoke(main, [name, "--help"])
        assert shown.exit_code == 0 and "Usage: main " + name in shown.output, (name, shown.output)
    unknown = runner.invoke(main, ["no-such-command"])
    assert unknown.exit_code == 2 and "No such command 'no-such-command'" in unknown.output


def test_running_ingest_does_not_import_the_other_commands_modules():
    code = ("import sys\nfrom evidence.cli.main import main\n"
            "try:\n    main(['ingest', '--help'])\nexcept SystemExit:\n    pass\n"
            "import json\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('evidence.cli.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "evidence.cli.ingest" in loaded
    assert not {"evidence.cli.cases", "evidence.cli.verify", "evidence.cli.serve", "evidence.cli.keys"} & set(loaded)
