"""What every `evidence` command shares: error → exit-code mapping, settings, output helpers, and who is
calling (`caller`: the archive user bound to the caller's operating-system account, catalog.users.identify)."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlmodel import Session

from catalog import (
    CaseInvalid,
    CaseNotFound,
    CaseStateError,
    CatalogUnavailable,
    DisposalError,
    ExportFailed,
    PermissionDenied,
    PolicyInvalid,
    PolicyNotAdopted,
    RecordingNotFound,
    SignatureInvalid,
    StampInvalid,
    UserInvalid,
)
from catalog.access import can_see, record_refusal
from catalog.errors import SnapshotRefused
from catalog.policy_adoption import adopted_policy, ensure_policy
from catalog.registry import RegistryInvalid
from catalog.retention import RetentionPolicy
from catalog.user_models import User
from catalog.users import Identity, bound_user, get_user, identify, os_account
from device_profiles import ProfileError
from ingest.config import Settings
from ingest.errors import ConfigInvalid, DeviceGone, IngestError
from ingest.services import catalog_engine
from storage import BucketNotWorm, HashMismatch, RetentionRefused, StorageError

__all__ = [
    "caller",
    "catalogue",
    "catalogue_owner_uid",
    "console",
    "errors",
    "fail",
    "in_force",
    "in_scope",
    "parse_date",
    "parse_time",
    "person",
    "pinned",
    "print_json",
    "print_result",
    "settings",
    "station_operator",
]

_USER_ERRORS = (ConfigInvalid, StampInvalid, ProfileError, DeviceGone, RecordingNotFound, IngestError, CaseInvalid,
                CaseNotFound, CaseStateError, DisposalError, PolicyInvalid, PolicyNotAdopted, RetentionRefused,
                ExportFailed, PermissionDenied, UserInvalid, SnapshotRefused, RegistryInvalid)
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


@contextmanager
def catalogue(*, policy: bool = False) -> Iterator[tuple[Settings, Session]]:
    """How most commands begin: errors() mapping what the body raises to exit codes, this installation's settings
    and a session on its catalogue (`with catalogue() as (cfg, session):`). With *policy* (the commands that write
    retention), the retention policy of this environment must be the one the catalogue adopted (`pinned`)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            if policy:
                pinned(session, cfg)
            yield cfg, session


def pinned(session: Session, cfg: Settings) -> None:
    """This command may write retention only under the policy the catalogue adopted: exit 2 naming both terms and
    every difference, or that none is adopted yet (a user's command never adopts one:
    catalog.policy_adoption.ensure_policy)."""
    ensure_policy(session, cfg.policy_terms, command=_command_name())


def in_force(session: Session, cfg: Settings) -> RetentionPolicy:
    """The retention policy to show and plan by: the adopted one, or this environment's while none is adopted
    (reading commands never adopt and never refuse)."""
    adopted = adopted_policy(session)
    return adopted.terms.policy() if adopted is not None else cfg.retention_policy


def _command_name() -> str:
    context = click.get_current_context(silent=True)
    return f"`{' '.join(['evidence', *context.command_path.split()[1:]])}`" if context is not None else "this command"



def catalogue_owner_uid(cfg: Settings) -> int | None:
    """The uid that owns the catalogue: the SQLite file's owner (the nearest existing parent's before it is
    created), else the owner of EVIDENCE_HOME, where the station's signing key lives. None if nothing exists."""
    url = make_url(cfg.database_url)
    path = cfg.home
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).absolute()
    for candidate in (path, *path.parents):
        try:
            return candidate.stat().st_uid
        except FileNotFoundError:
            continue
    return None


def caller(cfg: Settings, session: Session, action: str, by: str | None = None) -> Identity:
    """Who runs this command, from the operating system (never from $USER or --by): the active archive user
    bound to the caller's OS login whose roles allow *action* (--by, if given, must name that user), or the
    station service for the catalogue's owner. PermissionDenied (exit 2) names the account and what is missing."""
    account = os_account()
    try:
        return identify(session, action, account=account, asserted=by, owner_uid=catalogue_owner_uid(cfg),
                        station=cfg.station)
    except PermissionDenied as exc:  # recorded as the web's refusals are (catalog.access.record_refusal)
        bound = bound_user(session, account.login)
        record_refusal(session, bound.name if bound is not None else f"os:{account.login}", action=action,
                       why="role", details={"roles": list(bound.roles) if bound is not None else [], "via": "cli",
                                            "os_user": account.login, "refused": str(exc)[:500]})
        raise


def station_operator(cfg: Settings) -> Identity:
    """The caller, if they may operate this station (the station's own account, or a bound station/admin user)."""
    with catalog_engine(cfg) as engine, Session(engine) as session:
        return caller(cfg, session, "operate_station")


def in_scope(session: Session, identity: Identity, recording_ids: list[int], action: str) -> None:
    """PermissionDenied naming the first recording outside what the caller may *action*."""
    for recording_id in recording_ids:
        if not can_see(session, identity.scope, recording_id):
            raise PermissionDenied(f"recording {recording_id} is outside what {identity.actor} ({identity.account}) "
                                   f"may {action}: {identity.scope.describe()}")


def person(session: Session, identity: Identity) -> User:
    """The archive user behind *identity* (reads of evidence are a person's, never the station's)."""
    if identity.user is None:
        raise PermissionDenied(f"{identity.account} acts as {identity.actor}, not as an archive user: reading "
                               "evidence needs a person bound to an OS account (`evidence user bind`)")
    return get_user(session, identity.user)


def console() -> Console:
    # Piped output keeps whole rows (no terminal width to fit).
    return Console(highlight=False, width=None if sys.stdout.isatty() else 220)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def print_result(data: Any, as_json: bool, text: str) -> None:
    """*data* as JSON with --json, else *text* for a person."""
    if as_json:
        print_json(data)
    else:
        click.echo(text)


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
