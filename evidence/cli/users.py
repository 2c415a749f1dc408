"""`evidence user …`: archive users, their roles and scope, and the operating-system login each is bound to.

An administrator runs these; while no administrator is bound to an OS
account, the catalogue's owner or root may add the first one
(catalog.users.BOOTSTRAP).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
from sqlmodel import Session

from catalog import UserInvalid
from catalog.access import user_scope
from catalog.users import (
    ALL_ROLES,
    BOOTSTRAP,
    Identity,
    add_user,
    list_users,
    set_active,
    set_os_user,
    set_password,
    set_roles,
    set_scope,
)
from evidence.cli.common import caller, catalogue, errors, print_json
from evidence.cli.options import by_option, json_option
from ingest.services import catalog_engine

__all__ = ["user"]


@click.group()
def user() -> None:
    """Users and their roles."""


def _as_admin(by: str | None, change: Callable[[Session, Identity], object], done: str) -> None:
    """*change* a user as the calling administrator (exit 2 for anyone else), commit, and say *done*."""
    with catalogue() as (cfg, session):
        change(session, caller(cfg, session, "admin", by))
        session.commit()
        click.echo(done)


@user.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ALL_ROLES))
@click.option("--display-name", default="")
@click.option("--officer-number", help="An officer's own number (警号): their recordings are theirs to see and tag.")
@click.option("--unit", "units", multiple=True, help="A supervisor's unit (number or name); repeat. None: all units.")
@click.option("--os-user", help="The operating-system login whose `evidence` commands act as this user.")
@by_option
def user_add(name: str, roles: tuple[str, ...], display_name: str, officer_number: str | None, units: tuple[str, ...],
             os_user: str | None, by: str | None) -> None:
    """Add a user with one or more roles (an administrator does; while no administrator is bound to an OS
    account, the catalogue's owner or root may add the first one, with --os-user)."""
    with catalogue() as (cfg, session):
        first_admin = "admin" in roles and os_user is not None
        actor = caller(cfg, session, BOOTSTRAP if first_admin else "admin", by).actor
        added = add_user(session, name, roles=list(roles), display_name=display_name, by=actor,
                         officer_number=officer_number, units=list(units), os_user=os_user)
        session.commit()
        bound = f"; OS login {added.os_user}" if added.os_user else ""
        click.echo(f"user {added.name}: {', '.join(added.roles)}; sees {user_scope(added).describe()}{bound}")


@user.command("bind")
@click.argument("name")
@click.option("--os-user", required=True, help="The operating-system login whose `evidence` commands act as NAME.")
@by_option
def user_bind(name: str, os_user: str, by: str | None) -> None:
    """Bind (or re-bind) a user to an operating-system login; recorded with the old one."""
    with catalogue() as (cfg, session):
        actor = caller(cfg, session, BOOTSTRAP if _is_admin(session, name) else "admin", by).actor
        changed = set_os_user(session, name, os_user, by=actor)
        session.commit()
        click.echo(f"user {changed.name}: OS login {changed.os_user}")


@user.command("unbind")
@click.argument("name")
@by_option
def user_unbind(name: str, by: str | None) -> None:
    """Unbind a user from their operating-system login (they can no longer use the command line)."""
    _as_admin(by, lambda session, admin: set_os_user(session, name, None, by=admin.actor), f"user {name}: no OS login")


@user.command("deactivate")
@click.argument("name")
@by_option
def user_deactivate(name: str, by: str | None) -> None:
    """Deactivate a user: refused on the command line and the web; their web sessions end."""
    def deactivate(session: Session, admin: Identity) -> None:
        if admin.user == name:
            raise UserInvalid("you cannot deactivate yourself (another administrator can)")
        set_active(session, name, False, by=admin.actor)
    _as_admin(by, deactivate, f"user {name}: inactive")


@user.command("activate")
@click.argument("name")
@by_option
def user_activate(name: str, by: str | None) -> None:
    """Re-activate a user (web sessions ended by the deactivation stay ended)."""
    _as_admin(by, lambda session, admin: set_active(session, name, True, by=admin.actor), f"user {name}: active")


def _is_admin(session: Session, name: str) -> bool:
    found = next((u for u in list_users(session) if u.name == name), None)
    return found is not None and found.active and "admin" in found.roles


@user.command("scope")
@click.argument("name")
@click.option("--officer-number", help="The officer's own number (omit to clear).")
@click.option("--unit", "units", multiple=True, help="A supervisor's unit; repeat (omit all to clear: every unit).")
@by_option
def user_scope_command(name: str, officer_number: str | None, units: tuple[str, ...], by: str | None) -> None:
    """Set which recordings a user sees: an officer's own number, a supervisor's units."""
    with catalogue() as (cfg, session):
        changed = set_scope(session, name, officer_number=officer_number, units=list(units),
                            by=caller(cfg, session, "admin", by).actor)
        session.commit()
        click.echo(f"user {changed.name} sees {user_scope(changed).describe()}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@by_option
def user_passwd(name: str, password_stdin: bool, by: str | None) -> None:
    """Set a user's password (argon2id hash; forgives failed sign-ins and ends the user's web sessions)."""
    # who is asking first: a refused caller is not prompted for a password
    with catalogue() as (cfg, session):
        caller(cfg, session, "admin", by)
    password = (sys.stdin.readline().rstrip("\n") if password_stdin
                else click.prompt("password", hide_input=True, confirmation_prompt=True))
    with errors(), catalog_engine(cfg) as engine, Session(engine) as session:
        set_password(session, name, password, by=caller(cfg, session, "admin", by).actor)
        session.commit()
    click.echo(f"password set for {name}")


@user.command("role")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ALL_ROLES))
@by_option
def user_role(name: str, roles: tuple[str, ...], by: str | None) -> None:
    """Replace a user's roles."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "admin", by)
        if identity.user == name and "admin" not in roles:
            raise UserInvalid("you cannot take the admin role from yourself (another administrator can)")
        changed = set_roles(session, name, list(roles), by=identity.actor)
        session.commit()
        click.echo(f"user {changed.name}: {', '.join(changed.roles)}")


@user.command("list")
@by_option
@json_option
def user_list(by: str | None, as_json: bool) -> None:
    """Every user with roles, scope and OS login (for administrators)."""
    with catalogue() as (cfg, session):
        caller(cfg, session, "admin", by)
        rows: list[dict[str, Any]] = [
            {"name": u.name, "display_name": u.display_name, "roles": u.roles, "active": u.active,
             "officer_number": u.officer_number, "units": u.units, "sees": user_scope(u).describe(),
             "os_user": u.os_user}
            for u in list_users(session)]
    if as_json:
        print_json({"users": rows})
    else:
        for r in rows:
            click.echo(f"{r['name']:24s} {', '.join(r['roles']):28s} {r['os_user'] or '-':16s} {r['sees']}"
                       f"{'' if r['active'] else ' (inactive)'}")
