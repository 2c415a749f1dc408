"""`evidence user add|passwd|role|scope|list`: people, their roles and what they may see."""
from __future__ import annotations

import json

from sqlmodel import Session, select

from catalog import CustodyEvent, open_catalog
from catalog.sign_in import authenticate
from catalog.types import utcnow
from tests.cli import run_cli


def _users(env):
    listed = run_cli(env, "user", "list", "--json")
    assert listed.exit_code == 0, listed.output
    return {u["name"]: u for u in json.loads(listed.output)["users"]}


def test_users_are_added_scoped_and_given_passwords_on_the_command_line(env):
    added = run_cli(env, "user", "add", "officer:张三", "--role", "officer", "--officer-number", "010203",
                    "--by", "admin")
    assert added.exit_code == 0 and "sees officer 010203" in added.output
    run_cli(env, "user", "add", "sup:王", "--role", "supervisor", "--unit", "一中队", "--unit", "U2", "--by", "admin")
    users = _users(env)
    assert users["officer:张三"]["officer_number"] == "010203" and users["sup:王"]["units"] == ["U2", "一中队"]
    assert users["sup:王"]["sees"] == "unit U2, unit 一中队"

    widened = run_cli(env, "user", "scope", "sup:王", "--by", "admin")  # no unit: the whole agency
    assert widened.exit_code == 0 and "the whole archive" in widened.output
    too_long = run_cli(env, "user", "scope", "sup:王", "--officer-number", "x" * 40, "--by", "admin")
    assert too_long.exit_code != 0 and "must be 1-32 characters" in too_long.output
    assert run_cli(env, "user", "role", "sup:王", "--role", "supervisor", "--role", "auditor", "--by",
                   "admin").exit_code == 0
    assert _users(env)["sup:王"]["roles"] == ["auditor", "supervisor"]

    short = run_cli(env, "user", "passwd", "officer:张三", "--password-stdin", "--by", "admin", stdin="short\n")
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    done = run_cli(env, "user", "passwd", "officer:张三", "--password-stdin", "--by", "admin",
                   stdin="a long enough password\n")
    assert done.exit_code == 0
    engine = open_catalog(env["EVIDENCE_DATABASE_URL"])
    try:
        with Session(engine) as session:
            signed = authenticate(session, "officer:张三", "a long enough password", now=utcnow())
            assert signed.officer_number == "010203"
            changes = [e.details["action"] for e in session.exec(select(CustodyEvent).where(
                CustodyEvent.kind == "user_changed", CustodyEvent.actor != "test-setup"))]
    finally:
        engine.dispose()
    assert changes == ["added", "added", "scope", "roles", "password set"]
