"""The argon2 hash that unknown names are checked against is made when the web app starts, not at import (where it
cost every `evidence` process ~90 ms) and not at the first unknown name (which would then take twice as long as a
wrong password, and tell an outsider that the name does not exist)."""
from __future__ import annotations

import subprocess
import sys


def test_importing_the_catalogue_makes_no_hash_and_the_web_app_makes_it_at_start():
    code = ("from catalog import sign_in\n"
            "print(sign_in._dummy_hash.cache_info().currsize)\n"
            "from catalog import open_catalog\nfrom evidence.web.app import create_app\n"
            "from evidence.web.deps import WebConfig\nfrom storage import LocalStore\nimport tempfile, pathlib\n"
            "home = pathlib.Path(tempfile.mkdtemp())\n"
            "create_app(WebConfig(engine=open_catalog(f'sqlite:///{home}/c.db'), store=LocalStore(home / 'worm')))\n"
            "print(sign_in._dummy_hash.cache_info().currsize)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]
