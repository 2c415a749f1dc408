"""`evidence keys …`: the agency root and the keys it certifies (docs/keys.md).

An administrator runs the commands that use the root key (`init-root`, `certify`, `export-key init`, `rotate`,
`revoke`); `keys list` is for anyone who verifies (auditors, administrators, the station's own account). The
root key file is read only for the command that needs it and never copied; when it is encrypted its passphrase
is asked for (or read from the environment variable `--passphrase-env` names).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.certificates import ROOT_YEARS, CertificateInvalid
from catalog.key_certs import KEY_DAYS, KeysRefused, certify_export_key, certify_station, revoke_key
from catalog.key_files import KeyFileError, PassphraseNeeded, read_private_key
from catalog.key_lifecycle import create_root, init_export_key, rotate_station_key
from catalog.key_listing import list_keys
from catalog.key_models import KeyCertificate
from catalog.types import utcnow
from evidence.cli.common import caller, catalogue, fail, parse_time, print_json, print_result, settings
from evidence.cli.options import by_option, json_option
from ingest.services import open_store

__all__ = ["keys"]

_MANAGE = "manage_keys"

root_key_option = click.option("--root-key", "root_key_path", type=click.Path(path_type=Path), required=True,
                               help="The agency root's private key file (made by `keys init-root`).")
passphrase_env_option = click.option(
    "--passphrase-env", metavar="NAME", help="Read the root key's passphrase from environment variable NAME "
    "(for scripts); otherwise it is asked for when the key file is encrypted.")
days_option = click.option("--days", type=click.IntRange(1, 36500), default=KEY_DAYS, show_default=True,
                           help="How long the new certificate is valid.")


@contextmanager
def _refusals() -> Iterator[None]:
    """Exit 2, with the reason, when a key operation is refused."""
    try:
        yield
    except (KeysRefused, KeyFileError, CertificateInvalid) as exc:
        fail(str(exc), 2)


def _passphrase(env_name: str | None) -> bytes | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise KeyFileError(f"--passphrase-env names {env_name}, which is not set or empty")
    return value.encode()


def _root_key(path: Path, env_name: str | None) -> Ed25519PrivateKey:
    """The root key in *path*; its passphrase from *env_name*, else asked for when the file is encrypted."""
    try:
        return read_private_key(path, passphrase=_passphrase(env_name))
    except PassphraseNeeded:
        typed = click.prompt(f"passphrase of {path}", hide_input=True, err=True)
        return read_private_key(path, passphrase=str(typed).encode())


def _cert_json(row: KeyCertificate) -> dict[str, Any]:
    return {"fingerprint": row.fingerprint, "role": row.role, "subject": row.subject, "serial": row.serial,
            "certifier": row.issuer_fingerprint, "not_before": row.not_before.isoformat() if row.not_before else None,
            "not_after": row.not_after.isoformat() if row.not_after else None, "record": row.record_name}



def _certified_text(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"certified {r['role']} key {r['fingerprint']} ({r['subject']}) until {r['not_after']}, "
                     f"serial {r['serial']}" for r in rows)


@click.group()
def keys() -> None:
    """The agency root key and the station and export keys it certifies (X.509, Ed25519)."""


@keys.command("init-root")
@click.option("--name", required=True, help="The agency's name: the root certificate's common name (≤ 64 chars).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Where to write the root's private key (a new file, 0600; keep it offline).")
@click.option("--years", type=click.IntRange(1, 100), default=ROOT_YEARS, show_default=True,
              help="How long the root certificate is valid.")
@click.option("--passphrase", "ask_passphrase", is_flag=True, help="Encrypt the key file with a passphrase (asked).")
@passphrase_env_option
@by_option
@json_option
def keys_init_root(name: str, out: Path, years: int, ask_passphrase: bool, passphrase_env: str | None,
                   by: str | None, as_json: bool) -> None:
    """Create the agency root key and its self-signed certificate (once per archive; never overwrites a file)."""
    with _refusals(), catalogue() as (cfg, session):
        actor = caller(cfg, session, _MANAGE, by).actor
        passphrase = _passphrase(passphrase_env)
        if ask_passphrase and passphrase is None:
            passphrase = str(click.prompt("passphrase for the root key", hide_input=True, confirmation_prompt=True,
                                          err=True)).encode()
        row = create_root(session, open_store(cfg), path=out, name=name, by=actor, now=utcnow(),
                          passphrase=passphrase, years=years)
        data = {"root": {**_cert_json(row), "name": name, "key_file": str(out)}}
    print_result(data, as_json, f"agency root {data['root']['fingerprint']} ({name}), valid until "
         f"{data['root']['not_after']}; private key in {out} (keep it offline; certify each station with "
         "`evidence keys certify --station CODE`)")


@keys.command("certify")
@click.option("--station", help="Certify this station's current key(s).")
@click.option("--export", "export_key", is_flag=True, help="Certify the export key (EVIDENCE_EXPORT_KEY).")
@click.option("--renew", is_flag=True, help="Issue a new certificate even if the key has a valid one.")
@root_key_option
@passphrase_env_option
@days_option
@by_option
@json_option
def keys_certify(station: str | None, export_key: bool, renew: bool, root_key_path: Path,
                 passphrase_env: str | None, days: int, by: str | None, as_json: bool) -> None:
    """Certify a station's key (only one the archive already trusts) or the export key with the root key."""
    if bool(station) == export_key:
        raise click.UsageError("give --station CODE or --export")
    with _refusals(), catalogue() as (cfg, session):
        actor = caller(cfg, session, _MANAGE, by).actor
        root_key = _root_key(root_key_path, passphrase_env)
        store = open_store(cfg)
        if station:
            rows = certify_station(session, store, root_key, station, by=actor, now=utcnow(), days=days, renew=renew)
        else:
            public = read_private_key(cfg.export_key_path).public_key()
            rows = [certify_export_key(session, store, root_key, public, by=actor, now=utcnow(), days=days,
                                       renew=renew)]
        session.commit()
        certified = [_cert_json(r) for r in rows]
    print_result({"certified": certified}, as_json, _certified_text(certified))


@keys.group("export-key")
def export_key_group() -> None:
    """The export key: evidence packages are signed with it."""


@export_key_group.command("init")
@root_key_option
@passphrase_env_option
@days_option
@by_option
@json_option
def export_key_init(root_key_path: Path, passphrase_env: str | None, days: int, by: str | None,
                    as_json: bool) -> None:
    """Create the export key at EVIDENCE_EXPORT_KEY (never over an existing file) and certify it."""
    with _refusals(), catalogue() as (cfg, session):
        actor = caller(cfg, session, _MANAGE, by).actor
        root_key = _root_key(root_key_path, passphrase_env)
        row = init_export_key(session, open_store(cfg), root_key, path=cfg.export_key_path, by=actor, now=utcnow(),
                              days=days)
        certified = [_cert_json(row)]
    print_result({"certified": certified, "key_file": str(cfg.export_key_path)}, as_json,
         f"{_certified_text(certified)}; private key in {cfg.export_key_path}")


@keys.command("rotate")
@click.option("--station", required=True, help="The station whose key is replaced.")
@root_key_option
@passphrase_env_option
@days_option
@by_option
@json_option
def keys_rotate(station: str, root_key_path: Path, passphrase_env: str | None, days: int, by: str | None,
                as_json: bool) -> None:
    """Give a station a new, certified key; its former keys are retired (what they sign from now on is named by
    `evidence verify`). Run it where the station's key file is, then restart the station's services."""
    with _refusals(), catalogue() as (cfg, session):
        actor = caller(cfg, session, _MANAGE, by).actor
        root_key = _root_key(root_key_path, passphrase_env)
        rotation = rotate_station_key(session, open_store(cfg), root_key, station=station,
                                      key_path=settings(station).station_key_path, by=actor, now=utcnow(), days=days)
        certificate = _cert_json(rotation.certificate)
    kept = str(rotation.old_key_kept_as) if rotation.old_key_kept_as else None
    print_result({"station": station, "retired": rotation.retired, "new_fingerprint": rotation.new_fingerprint,
          "certificate": certificate, "key_file": str(rotation.key_path),
          "old_key_kept_as": kept}, as_json,
         f"station {station}: new key {rotation.new_fingerprint} in {rotation.key_path}; retired "
         f"{', '.join(rotation.retired) or 'nothing'}" + (f" (old file kept as {kept})" if kept else "")
         + "; restart the station's services")


@keys.command("revoke")
@click.argument("fingerprint")
@click.option("--reason", required=True, help="Why (recorded in the root's signed statement and the custody log).")
@click.option("--since", help="ISO 8601 time the key stopped being trustworthy (default: now).")
@root_key_option
@passphrase_env_option
@by_option
@json_option
def keys_revoke(fingerprint: str, reason: str, since: str | None, root_key_path: Path, passphrase_env: str | None,
                by: str | None, as_json: bool) -> None:
    """Revoke a station or export key (a fingerprint, or at least 8 of its first hex digits) from --since on."""
    effective = parse_time(since, "--since")
    with _refusals(), catalogue() as (cfg, session):
        actor = caller(cfg, session, _MANAGE, by).actor
        root_key = _root_key(root_key_path, passphrase_env)
        done = revoke_key(session, open_store(cfg), root_key, fingerprint, reason=reason, by=actor, now=utcnow(),
                          since=effective)
        session.commit()
    print_result({"revoked": {"fingerprint": done.fingerprint, "role": done.role, "subject": done.subject,
                      "effective_at": done.effective_at.isoformat(), "record": done.record}}, as_json,
         f"revoked {done.role} key {done.fingerprint} ({done.subject}) from {done.effective_at.isoformat()}")


@keys.command("list")
@by_option
@json_option
def keys_list(by: str | None, as_json: bool) -> None:
    """Every key with its fingerprint (SHA-256 of the raw public key), validity, certifier and standing."""
    with _refusals(), catalogue() as (cfg, session):
        caller(cfg, session, "verify", by)
        data = list_keys(session, open_store(cfg), now=utcnow())
    if as_json:
        print_json(data)
        return
    root = data["root"]
    click.echo(f"root     {root['fingerprint']}  {root['name']}  until {root['not_after']}"
               + ("" if root["trusted"] else f"  NOT TRUSTED: {root['problem']}") if root else "root     none")
    for key in data["keys"]:
        click.echo(f"{key['role']:8s} {key['fingerprint']}  {key['subject']:16s} {key['status']:12s} "
                   f"until {key['not_after'] or '-'}" + (f"  ({key['why_not']})" if key["why_not"] else ""))
    for problem in data["problems"]:
        click.echo(f"PROBLEM {problem['subject']}: {problem['detail']}")
