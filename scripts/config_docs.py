"""Write docs/configuration.md from the settings table (ingest/settings_table.py).

    python scripts/config_docs.py          # rewrite docs/configuration.md
    python scripts/config_docs.py --check  # exit 1 if it is not what the table makes now

tests/ingest/test_config.py fails while the file is out of date.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.settings_table import settings_markdown  # noqa: E402

#: The generated page.
TARGET = ROOT / "docs" / "configuration.md"


def main(argv: list[str]) -> int:
    wanted = settings_markdown()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != wanted:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run python scripts/config_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted, encoding="utf-8")
    print(f"Wrote {TARGET.relative_to(ROOT)} ({len(wanted.splitlines())} lines).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
