"""Running `evidence` in tests (the `env` fixture, in tests/conftest.py, points it at the test catalogue).

The command line takes its caller from the operating system (catalog.users.identify): `run_cli` first binds this
test process's OS account to the archive user named with `--by` (created with every role if missing), or to
`tester` when no `--by` is given and the account is bound to nobody. `invoke` runs the command as it is.
"""
from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from sqlmodel import Session, select

from catalog import CatalogError, open_catalog
from catalog.user_models import User
from catalog.users import ROLES, add_user, os_account, set_os_user
from evidence.cli.main import main
from ingest.config import Settings
from ingest.errors import ConfigInvalid


def bind_caller(env: dict[str, str], name: str | None, *, roles: tuple[str, ...] = ROLES) -> None:
    """Bind this process's OS login to archive user *name* in the catalogue of *env* (creating it with *roles*
    if it does not exist); with *name* None, to `tester` only if the login is bound to nobody yet."""
    login = os_account().login
    try:
        engine = open_catalog(Settings.from_env(env).database_url)
    except (ConfigInvalid, CatalogError):  # the command itself is to say what is wrong
        return
    try:
        with Session(engine) as session:
            bound = session.exec(select(User).where(User.os_user == login)).first()
            if name is None:
                if bound is not None:
                    return
                name = "tester"
            if bound is not None and bound.name == name:
                return
            if session.exec(select(User).where(User.name == name)).first() is None:
                add_user(session, name, roles=list(roles), by="test-setup")
                session.flush()
            if bound is not None:
                set_os_user(session, bound.name, None, by="test-setup")
                session.flush()
            set_os_user(session, name, login, by="test-setup")
            session.commit()
    finally:
        engine.dispose()


def invoke(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    """`evidence ARGS` in-process with *env* as its whole environment, as this process's OS account is bound."""
    return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    """`evidence ARGS` in-process with *env* as its whole environment (and *stdin* as its input), run by the
    archive user named with `--by` (see the module's docstring)."""
    by = args[args.index("--by") + 1] if "--by" in args else None
    bind_caller(env, by)
    return invoke(env, *args, stdin=stdin)


def station_adopts_policy(env: dict[str, str]) -> None:
    """What the station's first start does on a new catalogue: adopt the retention policy of *env*
    (catalog.policy_adoption); commands that write retention are refused until something is adopted."""
    from catalog.policy_adoption import ensure_policy

    settings = Settings.from_env(env)
    engine = open_catalog(settings.database_url)
    try:
        with Session(engine) as session:
            ensure_policy(session, settings.policy_terms, command="the station", adopt_as="station:test")
    finally:
        engine.dispose()
