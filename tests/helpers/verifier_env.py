"""A Python that holds nothing but `cryptography`: where verify.py runs in the tests, as on an examiner's machine.

`python -m venv --without-pip` gives a bare interpreter; a .pth file adds one folder of symbolic links to the test
venv's cryptography, cffi and _cffi_backend (the compiled parts are built for this same Python version). Nothing
of this project, bagit or rfc8785 is importable there, and `-I` keeps PYTHONPATH, the user's site-packages and the
current folder out: a verify.py that imports anything else fails its own tests.
"""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ONLY", "files", "make_verifier_env", "named", "run_verifier", "verifier_python", "verify_json"]

#: What the bare interpreter may import besides the standard library.
ONLY = ("cryptography", "cffi", "_cffi_backend")


def make_verifier_env(folder: Path) -> Path:
    """Create the bare environment in *folder*; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True,
                   capture_output=True)
    python = folder / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    links = folder / "only-cryptography"
    links.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in sorted(ours.iterdir()):
        if entry.name in ONLY or (entry.name.startswith("_cffi_backend") and entry.suffix in (".so", ".pyd")):
            (links / entry.name).symlink_to(entry)
    (site / "only-cryptography.pth").write_text(f"{links}\n")
    return python


@pytest.fixture(scope="session")
def verifier_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bare interpreter (session-wide: made once)."""
    return make_verifier_env(tmp_path_factory.mktemp("verifier-env"))


def run_verifier(python: Path, verify_py: Path, *args: str | Path,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -I verify.py ARGS` as an examiner runs it (a bounded run: a hang fails the test)."""
    command: Sequence[str] = [str(python), "-I", str(verify_py), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=600)


def verify_json(python: Path, bag: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """`verify.py --json ARGS BAG` with the bag's own verify.py: its exit code (0 or 1) and its parsed report."""
    done = run_verifier(python, bag / "verify.py", "--json", *args, bag, env=env)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["ok"] is (done.returncode == 0)
    return done.returncode, result


def named(result: dict[str, Any]) -> list[str]:
    """Each finding as "file: what"."""
    return [f"{f['file']}: {f['what']}" for f in result["findings"]]


def files(result: dict[str, Any]) -> set[str]:
    """The files the findings name."""
    return {f["file"] for f in result["findings"]}
