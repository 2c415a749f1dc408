"""What every `evidence` command shares: error → exit-code mapping, settings, output helpers."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, NoReturn

import click
from rich.console import Console

from catalog import (
    CaseInvalid,
    CaseNotFound,
    CaseStateError,
    CatalogUnavailable,
    DisposalError,
    ExportFailed,
    PermissionDenied,
    PolicyInvalid,
    RecordingNotFound,
    SignatureInvalid,
    StampInvalid,
    UserInvalid,
)
from device_profiles import ProfileError
from ingest.config import Settings
from ingest.errors import ConfigInvalid, DeviceGone, IngestError
from storage import BucketNotWorm, HashMismatch, RetentionRefused, StorageError

__all__ = ["console", "errors", "fail", "parse_date", "parse_time", "print_json", "settings", "who"]

_USER_ERRORS = (ConfigInvalid, StampInvalid, ProfileError, DeviceGone, RecordingNotFound, IngestError, CaseInvalid,
                CaseNotFound, CaseStateError, DisposalError, PolicyInvalid, RetentionRefused, ExportFailed,
                PermissionDenied, UserInvalid)
#: Evidence that fails a check: the command must say so loudly and exit non-zero.
_INTEGRITY_ERRORS = (SignatureInvalid, HashMismatch)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Exit 2 on bad input, 4 on failed integrity, 3 when the catalog or store is unavailable."""
    try:
        yield
    except (*_USER_ERRORS, BucketNotWorm) as exc:
        fail(str(exc), 2)
    except _INTEGRITY_ERRORS as exc:
        fail(f"INTEGRITY: {exc}", 4)
    except (CatalogUnavailable, StorageError) as exc:
        fail(str(exc), 3)


def settings(station: str | None = None) -> Settings:
    env = dict(os.environ)
    if station:
        env["EVIDENCE_STATION"] = station
    return Settings.from_env(env)


def who(by: str | None) -> str:
    """The person named with --by, else the login name (recorded in the custody log)."""
    return by or os.environ.get("USER", "cli")


def console() -> Console:
    # Piped output keeps whole rows (no terminal width to fit).
    return Console(highlight=False, width=None if sys.stdout.isatty() else 220)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no zone; add Z or +08:00", param_hint=option)
    return parsed


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None
