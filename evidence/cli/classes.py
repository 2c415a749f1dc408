"""`evidence class …`: sensitivity classes (公开, 内部, 商业秘密, 个人隐私, 国家秘密) of recordings and cases, and the
per-case grants that open classed recordings to a person (rules: catalog.sensitivity; acts:
catalog.classification). Each change needs --reason and is a custody event. JSON goes to stdout with --json."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from sqlmodel import select

from catalog import get_recording
from catalog.access import cases_clause, visible_case
from catalog.case_models import Case, CaseGrant
from catalog.classification import (
    case_numbers,
    classify_case,
    classify_recordings,
    grant_case_access,
    live_grants,
    revoke_case_access,
)
from catalog.sensitivity import CLASSES, label, parse_class
from evidence.cli.common import caller, catalogue, console, in_scope, parse_time, person, print_json
from evidence.cli.options import by_option, json_option

__all__ = ["class_"]

_CLASS_HELP = "The class: " + ", ".join(f"{n} ({label(n)})" for n in CLASSES) + "; the Chinese or English name too."


def _class(value: str, names: Mapping[str, tuple[str, str]]) -> str:
    try:
        return parse_class(value, names)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None


def _both(name: str, names: Mapping[str, tuple[str, str]]) -> str:
    return f"{label(name, 'zh', names)} ({label(name, 'en', names)})"


def _say(data: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        print_json(data)
    else:
        console().print(text)


@click.group("class")
def class_() -> None:
    """Sensitivity classes and per-case access grants."""


@class_.command("set")
@click.argument("refs", nargs=-1, required=True)
@click.option("--to", "to", required=True, help=_CLASS_HELP)
@click.option("--reason", required=True, help="Why (recorded with the change).")
@by_option
@json_option
def class_set(refs: tuple[str, ...], to: str, reason: str, by: str | None, as_json: bool) -> None:
    """Give recordings (ids or SHA-256 prefixes) a class. Lowering one needs a supervisor or administrator."""
    with catalogue() as (cfg, session):
        wanted = _class(to, cfg.sensitivity_names)
        identity = caller(cfg, session, "classify", by)
        user = person(session, identity)
        recordings = [get_recording(session, ref) for ref in refs]
        ids = [r.id for r in recordings]
        in_scope(session, identity, [i for i in ids if i is not None], "classify")
        changed = classify_recordings(session, user, recordings, to=wanted, reason=reason)
        session.commit()
    _say({"class": wanted, "changed": changed, "unchanged": [i for i in ids if i not in changed]}, as_json,
         f"{_both(wanted, cfg.sensitivity_names)}: recording(s) {', '.join(map(str, changed)) or 'none'} changed")


@class_.command("case")
@click.argument("number")
@click.option("--to", "to", required=True, help=_CLASS_HELP)
@click.option("--reason", required=True, help="Why (recorded with the change).")
@by_option
@json_option
def class_case(number: str, to: str, reason: str, by: str | None, as_json: bool) -> None:
    """Give a case a class; the recordings it holds whose class is lower are raised to it."""
    with catalogue() as (cfg, session):
        wanted = _class(to, cfg.sensitivity_names)
        identity = caller(cfg, session, "classify", by)
        found = visible_case(session, number, identity.scope, actor=identity.actor, via="cli class case")
        raised = classify_case(session, person(session, identity), found, to=wanted, reason=reason)
        session.commit()
    _say({"case": number, "class": wanted, "recordings_raised": raised}, as_json,
         f"case {number}: {_both(wanted, cfg.sensitivity_names)}; recording(s) raised: "
         f"{', '.join(map(str, raised)) or 'none'}")


@class_.command("grant")
@click.argument("number")
@click.argument("user_name")
@click.option("--reason", required=True, help="Why this person needs the case's classed recordings.")
@click.option("--until", default=None, help="ISO 8601 time with a zone when the grant ends (default: until revoked).")
@by_option
@json_option
def class_grant(number: str, user_name: str, reason: str, until: str | None, by: str | None, as_json: bool) -> None:
    """Open a case's classed recordings to USER_NAME (their role and scope still apply)."""
    expires = parse_time(until, "--until")
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "grant_access", by)
        found = visible_case(session, number, identity.scope, actor=identity.actor, via="cli class grant")
        grant = grant_case_access(session, person(session, identity), found, to_user=user_name, reason=reason,
                                  expires_at=expires)
        session.commit()
        data = _grant_json(grant, number)
    _say(data, as_json, f"case {number}: {user_name} granted access (grant {data['grant']}, until "
                        f"{data['expires_at'] or 'revoked'})")


@class_.command("revoke")
@click.argument("number")
@click.argument("user_name")
@click.option("--reason", required=True)
@by_option
@json_option
def class_revoke(number: str, user_name: str, reason: str, by: str | None, as_json: bool) -> None:
    """End USER_NAME's grants on a case."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "grant_access", by)
        found = visible_case(session, number, identity.scope, actor=identity.actor, via="cli class revoke")
        ended = revoke_case_access(session, person(session, identity), found, to_user=user_name, reason=reason)
        session.commit()
    _say({"case": number, "user": user_name, "revoked": ended}, as_json,
         f"case {number}: grant(s) {', '.join(map(str, ended))} of {user_name} revoked")


@class_.command("grants")
@click.argument("user_name")
@by_option
@json_option
def class_grants(user_name: str, by: str | None, as_json: bool) -> None:
    """USER_NAME's live grants."""
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "grant_access", by)
        clause = cases_clause(identity.scope)  # only grants on cases the caller may know of
        visible = None if clause is None else set(session.exec(select(Case.id).where(clause)))
        grants = [g for g in live_grants(session, user_name) if visible is None or g.case_id in visible]
        numbers = case_numbers(session, [g.case_id for g in grants])
        data = [_grant_json(g, numbers[g.case_id]) for g in grants]
    if as_json:
        print_json(data)
        return
    for g in data:
        console().print(f"{g['grant']}  {g['case']}  until {g['expires_at'] or 'revoked'}  by {g['granted_by']}: "
                        f"{g['reason']}")


def _grant_json(grant: CaseGrant, number: str) -> dict[str, Any]:
    return {"grant": grant.id, "case": number, "user": grant.user_name, "granted_by": grant.granted_by,
            "reason": grant.reason, "granted_at": grant.granted_at.isoformat() if grant.granted_at else None,
            "expires_at": grant.expires_at.isoformat() if grant.expires_at else None}
