"""`evidence verify`, `evidence custody …`, `evidence export` and `evidence user …`: proof for auditors and courts.

`verify` exits 4 when it finds any problem, and prints each with the values
that show it. `export` writes a BagIt package and needs a user whose role
may export.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import click
from sqlmodel import Session, select

from catalog import (
    Case,
    CustodyKind,
    UserInvalid,
    append_event,
    get_recording,
    load_or_create_key,
)
from catalog.access import user_scope
from catalog.anchors import write_anchor
from catalog.export import export_package
from catalog.fixity import record_results
from catalog.types import utcnow
from catalog.users import (
    ALL_ROLES,
    BOOTSTRAP,
    add_user,
    list_users,
    set_active,
    set_os_user,
    set_password,
    set_roles,
    set_scope,
)
from catalog.verification import select_recordings, verify_archive
from evidence.cli.common import caller, errors, print_json, settings
from ingest.anchoring import anchor_chain, anchor_periodically
from ingest.services import catalog_engine, open_store

__all__ = ["custody", "export", "serve", "user", "verify"]


@click.command()
@click.argument("refs", nargs=-1)
@click.option("--all", "everything", is_flag=True,
              help="Every recording row (whatever its state), every case, and recordings the chain names but the "
                   "catalogue lost.")
@click.option("--sample", type=click.IntRange(1), help="A random sample of N recordings.")
@click.option("--no-chain", is_flag=True, help="Skip the custody chain and anchor check.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Objects read at once.")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def verify(refs: tuple[str, ...], everything: bool, sample: int | None, no_chain: bool, workers: int,
           by: str | None, as_json: bool) -> None:
    """Re-read and re-hash stored objects; check them against the catalogue and the signed manifests; replay the
    custody chain into what each row, case and store lock must say (retain-until, legal hold, state, integrity,
    capture times, case links and types) and compare; walk the custody chain and compare it with the signed anchors
    in WORM storage. Exit 4 on any problem."""
    if sum(bool(x) for x in (refs, everything, sample)) != 1:
        raise click.UsageError("give recording ids, --all, or --sample N")
    with errors():
        cfg = settings()
        store = open_store(cfg)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            actor = caller(cfg, session, "verify", by).actor  # refused before any object is read
            ids = ([r.id for r in (get_recording(session, ref) for ref in refs) if r.id is not None] if refs
                   else select_recordings(session, sample=sample))
            report = verify_archive(session, store, ids, chain=not no_chain, workers=workers, everything=everything,
                                    policy=cfg.retention_policy)
            record_results(session, report, actor=actor, now=utcnow(), how="evidence verify: re-hashed from the "
                                                                          "store, manifests and signatures checked")
            append_event(session, CustodyKind.VERIFICATION_RUN, actor=actor, details={
                "recordings": report.recordings, "bytes_read": report.bytes_read, "events": report.events,
                "anchors": report.anchors, "problems": len(report.problems),
                "scope": "ids" if refs else ("all" if everything else f"sample {sample}")})
            session.commit()
            anchor_chain(cfg, engine, store, reason="evidence verify", actor=actor, create_key=False)
    if as_json:
        print_json(report.as_json())
    else:
        click.echo(f"checked {report.recordings} recording(s), {report.bytes_read / 2**20:.1f} MiB re-hashed, "
                   f"{report.manifests} manifest(s), {report.events} custody event(s), {report.anchors} anchor(s)")
        for line in report.skipped:
            click.echo(f"  skipped {line}")
        for problem in report.problems:
            click.echo(f"PROBLEM {problem}")
        click.echo("all checks passed" if report.ok else f"{len(report.problems)} problem(s) found")
    if not report.ok:
        sys.exit(4)


@click.group()
def custody() -> None:
    """The custody chain's anchors in WORM storage."""


@custody.command("anchor")
@click.option("--force", is_flag=True, help="Write one even if the head is already anchored.")
@click.option("--json", "as_json", is_flag=True)
def custody_anchor(force: bool, as_json: bool) -> None:
    """Write the chain head, signed, to the WORM store now (`evidence worker --schedule` does it periodically)."""
    with errors():
        cfg = settings()
        store = open_store(cfg)
        key = load_or_create_key(cfg.station_key_path)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            actor = caller(cfg, session, "operate_station").actor
            row = write_anchor(session, store, station=cfg.station, key=key, actor=actor,
                               now=utcnow(), force=force)
            data: dict[str, Any] | None = None if row is None else {
                "record": row.record_name, "last_event_id": row.last_event_id, "last_hash": row.last_hash}
    if as_json:
        print_json({"anchor": data})
    elif data is None:
        click.echo("the chain head is already anchored (or the chain is empty)")
    else:
        click.echo(f"anchored event {data['last_event_id']} ({data['last_hash'][:16]}…) in {data['record']}")


@click.command()
@click.argument("subject", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="A new folder, or FILE.zip.")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account; it needs "
              "the clerk, supervisor, auditor or admin role).")
@click.option("--recordings", "as_recordings", is_flag=True,
              help="SUBJECT is recording ids even if one looks like a case number.")
@click.option("--reason", default="", help="Why the evidence is handed over (调阅事由; required, recorded per item).")
@click.option("--json", "as_json", is_flag=True)
def export(subject: tuple[str, ...], out: Path, by: str | None, as_recordings: bool, reason: str,
           as_json: bool) -> None:
    """Write a BagIt evidence package: `export CASE` (its recordings and documents) or `export ID ...`. Needs the
    rights and scope to download every item, and a stated reason (exit 2 otherwise, naming the refused ids)."""
    with errors():
        cfg = settings()
        store = open_store(cfg)
        with catalog_engine(cfg) as engine, Session(engine) as session:
            actor = caller(cfg, session, "export", by).actor
            is_case = (not as_recordings and len(subject) == 1
                       and session.exec(select(Case.id).where(Case.number == subject[0])).first() is not None)
            if not is_case:
                for ref in subject:  # each must be a recording (RecordingNotFound names the one that is not)
                    get_recording(session, ref)
            result = export_package(session, store, out=out, by=actor, now=utcnow(), reason=reason,
                                    case_number=subject[0] if is_case else None,
                                    refs=None if is_case else list(subject), organisation=cfg.station_name)
    if as_json:
        print_json(result.as_json())
    else:
        click.echo(f"{result.path}: {result.items} item(s), {result.payload_bytes / 2**20:.1f} MiB of originals; "
                   f"tag manifest SHA-256 {result.tagmanifest_sha256}")


@click.group()
def user() -> None:
    """Users and their roles."""


@user.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ALL_ROLES))
@click.option("--display-name", default="")
@click.option("--officer-number", help="An officer's own number (警号): their recordings are theirs to see and tag.")
@click.option("--unit", "units", multiple=True, help="A supervisor's unit (number or name); repeat. None: all units.")
@click.option("--os-user", help="The operating-system login whose `evidence` commands act as this user.")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def user_add(name: str, roles: tuple[str, ...], display_name: str, officer_number: str | None, units: tuple[str, ...],
             os_user: str | None, by: str | None) -> None:
    """Add a user with one or more roles (an administrator does; while no administrator is bound to an OS
    account, the catalogue's owner or root may add the first one, with --os-user)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
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
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def user_bind(name: str, os_user: str, by: str | None) -> None:
    """Bind (or re-bind) a user to an operating-system login; recorded with the old one."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            actor = caller(cfg, session, BOOTSTRAP if _is_admin(session, name) else "admin", by).actor
            changed = set_os_user(session, name, os_user, by=actor)
            session.commit()
            click.echo(f"user {changed.name}: OS login {changed.os_user}")


@user.command("unbind")
@click.argument("name")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def user_unbind(name: str, by: str | None) -> None:
    """Unbind a user from their operating-system login (they can no longer use the command line)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            set_os_user(session, name, None, by=caller(cfg, session, "admin", by).actor)
            session.commit()
            click.echo(f"user {name}: no OS login")


@user.command("deactivate")
@click.argument("name")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def user_deactivate(name: str, by: str | None) -> None:
    """Deactivate a user: refused on the command line and the web; their web sessions end."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "admin", by)
            if identity.user == name:
                raise UserInvalid("you cannot deactivate yourself (another administrator can)")
            set_active(session, name, False, by=identity.actor)
            session.commit()
            click.echo(f"user {name}: inactive")


@user.command("activate")
@click.argument("name")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def user_activate(name: str, by: str | None) -> None:
    """Re-activate a user (web sessions ended by the deactivation stay ended)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            set_active(session, name, True, by=caller(cfg, session, "admin", by).actor)
            session.commit()
            click.echo(f"user {name}: active")


def _is_admin(session: Session, name: str) -> bool:
    found = next((u for u in list_users(session) if u.name == name), None)
    return found is not None and found.active and "admin" in found.roles


@user.command("scope")
@click.argument("name")
@click.option("--officer-number", help="The officer's own number (omit to clear).")
@click.option("--unit", "units", multiple=True, help="A supervisor's unit; repeat (omit all to clear: every unit).")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def user_scope_command(name: str, officer_number: str | None, units: tuple[str, ...], by: str | None) -> None:
    """Set which recordings a user sees: an officer's own number, a supervisor's units."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            changed = set_scope(session, name, officer_number=officer_number, units=list(units),
                                by=caller(cfg, session, "admin", by).actor)
            session.commit()
            click.echo(f"user {changed.name} sees {user_scope(changed).describe()}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def user_passwd(name: str, password_stdin: bool, by: str | None) -> None:
    """Set a user's password (argon2id hash; forgives failed sign-ins and ends the user's web sessions)."""
    with errors():  # who is asking first: a refused caller is not prompted for a password
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
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
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
def user_role(name: str, roles: tuple[str, ...], by: str | None) -> None:
    """Replace a user's roles."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
            identity = caller(cfg, session, "admin", by)
            if identity.user == name and "admin" not in roles:
                raise UserInvalid("you cannot take the admin role from yourself (another administrator can)")
            changed = set_roles(session, name, list(roles), by=identity.actor)
            session.commit()
            click.echo(f"user {changed.name}: {', '.join(changed.roles)}")


@click.command("serve")
@click.option("--host", help="Default from EVIDENCE_WEB_ADDR.")
@click.option("--port", type=click.IntRange(0, 65535), help="Default from EVIDENCE_WEB_ADDR.")
def serve(host: str | None, port: int | None) -> None:
    """Run the web application (pages and the JSON API; OpenAPI at /api/openapi.json)."""
    import uvicorn

    from evidence.web import WebConfig, create_app
    from ingest.documents import document_attacher

    with errors():
        cfg = settings()
        store = open_store(cfg)
        key = load_or_create_key(cfg.station_key_path)
        with catalog_engine(cfg) as engine:
            app = create_app(WebConfig(engine=engine, store=store, secure_cookies=cfg.web_secure_cookies,
                                       station=cfg.station, key=key, case_pattern=cfg.case_pattern,
                                       access_reason=cfg.access_reason, zone=cfg.station_tz,
                                       policy=cfg.retention_policy,
                                       disposal_approval=cfg.disposal_approval == "required",
                                       attach=document_attacher(cfg, store, key),
                                       staged_alarm_s=cfg.staged_alarm_s,
                                       metrics_token=str(cfg.metrics_token)))
            # Web activity (views, stamps, case links, sign-ins) is anchored even where no station or scheduler runs.
            stop = threading.Event()
            threading.Thread(target=anchor_periodically, args=(cfg, engine, store),
                             kwargs={"key": key, "who": "evidence serve", "stop": stop}, name="anchor",
                             daemon=True).start()
            try:
                # X-Forwarded-For/-Proto are believed only from EVIDENCE_WEB_TRUSTED_PROXIES (the reverse proxy):
                # the client address they give is what sign-in backoff counts and the custody log records.
                uvicorn.run(app, host=host or cfg.web_addr[0], port=port if port is not None else cfg.web_addr[1],
                            log_level="info", log_config=None,  # our timestamped handler (evidence.cli.main)
                            proxy_headers=bool(cfg.web_trusted_proxies),
                            forwarded_allow_ips=list(cfg.web_trusted_proxies))
            finally:
                stop.set()


@user.command("list")
@click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")
@click.option("--json", "as_json", is_flag=True)
def user_list(by: str | None, as_json: bool) -> None:
    """Every user with roles, scope and OS login (for administrators)."""
    with errors():
        cfg = settings()
        with catalog_engine(cfg) as engine, Session(engine) as session:
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
