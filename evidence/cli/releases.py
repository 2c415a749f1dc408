"""`evidence release …`: recordings published (公示) or transferred (移送) in a release that a second person with
the legal-review role (reviewer, 法制审核) decides; each act a custody event on every item, each decision and
withdrawal a signed record in WORM storage (catalog.releases). JSON goes to stdout with --json."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from catalog import get_recording
from catalog.access import user_scope
from catalog.custody_words import RELEASE_KIND_WORDS
from catalog.disposal import Signer
from catalog.releases import (
    RELEASE_KINDS,
    RELEASE_STATES,
    ReleaseRefused,
    decide_release,
    get_release,
    list_releases,
    propose_release,
    release_as_json,
    release_in_scope,
    withdraw_release,
)
from catalog.shares import share_as_json, shares_of
from catalog.signing import load_or_create_key
from catalog.types import utcnow
from evidence.cli.common import caller, catalogue, console, fail, person, print_json
from evidence.cli.options import by_option, json_option
from ingest.services import open_store

__all__ = ["release"]



def _kind(kind: str) -> str:
    zh, en = RELEASE_KIND_WORDS[kind]
    return f"{zh} {en}"


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except ReleaseRefused as exc:
        fail(str(exc), 2)


def _show(data: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        print_json(data)
    else:
        console().print(text, highlight=False)


@click.group("release")
def release() -> None:
    """Releases: publication (公示) and transfer (移送), decided by legal review."""


@release.command("create")
@click.argument("refs", nargs=-1, required=True)
@click.option("--kind", type=click.Choice(RELEASE_KINDS), required=True,
              help="publication (公示, to the public: only what is classed public) or transfer (移送, to a prosecutor "
                   "or court).")
@click.option("--title", required=True, help="What is released (shown in the signed record).")
@click.option("--recipient", required=True, help="Who receives it (the public, a named prosecutor's office, a court).")
@click.option("--basis", "legal_basis", required=True, help="The legal basis (法律依据) of the release.")
@click.option("--reason", required=True, help="Why (recorded on each item).")
@by_option
@json_option
def release_create(refs: tuple[str, ...], kind: str, title: str, recipient: str, legal_basis: str, reason: str,
                   by: str | None, as_json: bool) -> None:
    """Propose recordings (ids or SHA-256 prefixes) for a release; a reviewer decides it."""
    with catalogue() as (_cfg, session), _refusals():
        user = person(session, caller(_cfg, session, "propose_release", by))
        recordings = [get_recording(session, ref) for ref in refs]
        made = propose_release(session, user, kind=kind, title=title, recipient=recipient, legal_basis=legal_basis,
                               recordings=recordings, reason=reason, now=utcnow())
        data = release_as_json(session, made)
    _show(data, as_json, f"release {data['id']} ({_kind(kind)}) of {len(data['items'])} recording(s) to "
                         f"{data['recipient']} proposed; a reviewer (法制审核) decides it: "
                         f"evidence release approve {data['id']} --note …")


def _decide(number: int, by: str | None, as_json: bool, act: Callable[..., Any], action: str, **kwargs: Any) -> None:
    with catalogue() as (cfg, session), _refusals():
        user = person(session, caller(cfg, session, action, by))
        signer = Signer(cfg.station, load_or_create_key(cfg.station_key_path), tsa=cfg)
        done = act(session, open_store(cfg), user, number, signer=signer, now=utcnow(), **kwargs)
        data = release_as_json(session, done)
    _show(data, as_json, f"release {number} is {data['state']}; signed record {data['records'][-1]}")


@release.command("approve")
@click.argument("number", type=int)
@click.option("--note", required=True, help="The legal review's note (recorded and signed).")
@by_option
@json_option
def release_approve(number: int, note: str, by: str | None, as_json: bool) -> None:
    """Approve a proposed release as legal review (not one's own)."""
    _decide(number, by, as_json, decide_release, "approve_release", approve=True, note=note)


@release.command("reject")
@click.argument("number", type=int)
@click.option("--note", required=True, help="Why it is refused (recorded and signed).")
@by_option
@json_option
def release_reject(number: int, note: str, by: str | None, as_json: bool) -> None:
    """Refuse a proposed release as legal review."""
    _decide(number, by, as_json, decide_release, "approve_release", approve=False, note=note)


@release.command("withdraw")
@click.argument("number", type=int)
@click.option("--reason", required=True, help="Why it is withdrawn (recorded and signed).")
@by_option
@json_option
def release_withdraw(number: int, reason: str, by: str | None, as_json: bool) -> None:
    """Withdraw a proposed or approved release."""
    _decide(number, by, as_json, withdraw_release, "releases", reason=reason)


@release.command("show")
@click.argument("number", type=int)
@by_option
@json_option
def release_show(number: int, by: str | None, as_json: bool) -> None:
    """A release: its items, state, decision and signed records."""
    with catalogue() as (cfg, session), _refusals():
        user = person(session, caller(cfg, session, "releases", by))
        found = get_release(session, number)
        if not release_in_scope(session, user_scope(user), found):
            fail(f"release {number} holds recordings outside what {user.name} may see", 2)
        data = release_as_json(session, found)
        data["shares"] = [share_as_json(link) for link in shares_of(session, number)]
    lines = [f"release {data['id']}: {_kind(data['kind'])} \"{data['title']}\" to {data['recipient']} "
             f"({data['legal_basis']}), {data['state']}",
             f"proposed by {data['proposed_by']} at {data['proposed_at']}: {data['reason']}"]
    if data["decided_by"]:
        lines.append(f"decided by {data['decided_by']} at {data['decided_at']}: {data['decision_note']}")
    if data["withdrawn_by"]:
        lines.append(f"withdrawn by {data['withdrawn_by']} at {data['withdrawn_at']}: {data['withdrawal_reason']}")
    lines += [f"  recording {i['recording_id']} {i['name']} ({i['class']}) {i['sha256']}" for i in data["items"]]
    lines += [f"  signed record {key}" for key in data["records"]]
    lines += [f"  share link {link['id']} for {link['recipient']} until {link['expires_at']}"
              + (f", opened {link['opened_at']}" if link["opened_at"] else "")
              + (f", revoked: {link['revoke_reason']}" if link["revoked_at"] else "") for link in data["shares"]]
    _show(data, as_json, "\n".join(lines))


@release.command("list")
@click.option("--state", type=click.Choice(RELEASE_STATES), help="Only releases in this state.")
@by_option
@json_option
def release_list(state: str | None, by: str | None, as_json: bool) -> None:
    """Releases, newest first."""
    with catalogue() as (cfg, session):
        scope = user_scope(person(session, caller(cfg, session, "releases", by)))
        data = [release_as_json(session, r) for r in list_releases(session, state=state)
                if release_in_scope(session, scope, r)]
    _show({"releases": data}, as_json, "\n".join(
        f"{r['id']}\t{r['state']}\t{r['kind']}\t{len(r['items'])} item(s)\t{r['recipient']}\t{r['title']}"
        for r in data) or "no releases")


@release.command("package")
@click.argument("number", type=int)
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="A new folder, or a file ending .zip: the BagIt package (verify it with the verify.py inside).")
@click.option("--language", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="The court report's language.")
@by_option
@json_option
def release_package_command(number: int, out: Path, language: str, by: str | None, as_json: bool) -> None:
    """Hand over an approved release: a signed evidence package of its items with the release's signed records
    and, for a publication, the public summary without personal data (data/release/)."""
    from catalog.package import PackageSigning
    from catalog.release_package import release_package

    with catalogue() as (cfg, session), _refusals():
        actor = caller(cfg, session, "export", by).actor
        signing = PackageSigning(station=cfg.station, station_key=load_or_create_key(cfg.station_key_path),
                                 export_key_path=cfg.export_key_path, settings=cfg)
        result = release_package(session, open_store(cfg), number, out=out, by=actor, now=utcnow(), signing=signing,
                                 organisation=cfg.station_name, language=language)
    _show(result.as_json(), as_json, f"{result.path}: release {number}, {result.items} item(s); tag manifest "
                                     f"SHA-256 {result.tagmanifest_sha256}; signed with export key "
                                     f"{result.export_key_fingerprint}")


@release.command("summary")
@click.argument("number", type=int)
@by_option
@json_option
def release_summary(number: int, by: str | None, as_json: bool) -> None:
    """The public-facing summary of a release (no personal data): what 公示 publishes beside the files."""
    from catalog.release_package import summary_of, summary_text

    with catalogue() as (cfg, session), _refusals():
        caller(cfg, session, "releases", by)
        summary = summary_of(session, get_release(session, number))
    _show(summary, as_json, summary_text(summary))


@release.command("share")
@click.argument("number", type=int)
@click.option("--recipient", required=True, help="The one person it is for (name and office).")
@click.option("--days", type=click.IntRange(1, 90), default=7, show_default=True, help="How long the link lasts.")
@by_option
@json_option
def release_share(number: int, recipient: str, days: int, by: str | None, as_json: bool) -> None:
    """A link to an approved release for one recipient without an account: its path and one-time code are shown
    once (send the code another way than the link); every download is recorded."""
    from catalog.shares import ShareRefused, create_share

    with catalogue() as (cfg, session), _refusals():
        user = person(session, caller(cfg, session, "propose_release", by))
        try:
            made = create_share(session, user, number, recipient=recipient, days=days, now=utcnow())
        except ShareRefused as exc:
            fail(str(exc), 2)
        data = {**share_as_json(made.link), "path": made.path, "code": made.code}
    _show(data, as_json, f"share link {data['id']} for {data['recipient']} until {data['expires_at']}:\n"
                         f"  path  {data['path']}  (on this archive's web address)\n  code  {data['code']}  "
                         "(send it another way; it works once)")


@release.command("unshare")
@click.argument("link", type=int)
@click.option("--reason", required=True, help="Why the link is revoked (recorded).")
@by_option
@json_option
def release_unshare(link: int, reason: str, by: str | None, as_json: bool) -> None:
    """Revoke a share link before its time."""
    from catalog.shares import ShareRefused, revoke_share

    with catalogue() as (cfg, session):
        user = person(session, caller(cfg, session, "releases", by))
        try:
            done = revoke_share(session, user, link, reason=reason, now=utcnow())
        except ShareRefused as exc:
            fail(str(exc), 2)
        data = share_as_json(done)
    _show(data, as_json, f"share link {link} revoked")
