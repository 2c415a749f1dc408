"""What an insider with database rights (and the store account's rights on the local store) changes behind the
application: SQL straight on the catalogue, and the local store's sealed files made writable and rewritten."""
from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from storage import LocalStore, object_key

#: The dates the attacks write: a capture long ago, and a retention that ran out before today.
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)
PAST = datetime(2024, 7, 2, tzinfo=UTC)


@contextmanager
def writable(*paths: Path) -> Iterator[None]:
    """What an attacker with the store account's rights does: make the sealed files and folders writable, and put
    the seals back afterwards (so the store's own seal check sees nothing)."""
    modes = {p: stat.S_IMODE(os.lstat(p).st_mode) for p in paths}
    try:
        for p in paths:
            os.chmod(p, modes[p] | stat.S_IWUSR)
        yield
    finally:
        for p in reversed(paths):
            os.chmod(p, modes[p])


def rewrite_retention_record(store: LocalStore, sha256: str, *, retain_until: datetime, legal_hold: bool) -> None:
    """Rewrite the local store's retention record of *sha256* behind the store's back (seals put back)."""
    record = store.root / "retention" / f"{object_key(sha256)}.json"
    folders = [p for p in (record.parent, *record.parent.parents) if p != store.root and store.root in p.parents]
    with writable(*reversed(folders), record):
        record.write_text(json.dumps({"retain_until": retain_until.isoformat(), "legal_hold": legal_hold}),
                          encoding="utf-8")
    assert store.head(sha256).retain_until == retain_until and store.head(sha256).legal_hold is legal_hold


def sql(engine: Engine, statement: str, **values: Any) -> None:
    """One SQL statement straight on the database, as an insider with its rights runs it."""
    with engine.begin() as conn:
        conn.execute(text(statement), values)
