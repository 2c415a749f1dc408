"""Attacks on the command line's idea of who is calling: a name given with --by (or $USER) is never trusted.

The caller is the archive user bound to the operating-system account running `evidence` (os.getuid()); the
station's own work runs as the account that owns the catalogue. These tests run the real CLI in-process as
this test's OS account, bound or not; other accounts (another uid, root) go through the pure decision.
"""
from __future__ import annotations

import json
import os

import pytest
from sqlmodel import Session, col, select

from catalog import CustodyEvent, PermissionDenied, open_catalog
from catalog.models import StampRevision
from catalog.user_models import User
from catalog.users import OsAccount, add_user, decide_caller, os_account, set_active
from evidence.cli.common import catalogue_owner_uid
from ingest.config import Settings
from tests.cli import bind_caller, invoke, run_cli

ME = os_account()
CASE = "AB-2026-00042"


def _events(env, kind: str) -> list[CustodyEvent]:
    engine = open_catalog(env["EVIDENCE_DATABASE_URL"])
    try:
        with Session(engine) as session:
            return list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == kind)
                                     .order_by(col(CustodyEvent.id))))
    finally:
        engine.dispose()


def _in_catalogue(env, change) -> None:
    engine = open_catalog(env["EVIDENCE_DATABASE_URL"])
    try:
        with Session(engine) as session:
            change(session)
            session.commit()
    finally:
        engine.dispose()


@pytest.fixture
def ingested(samples, env) -> int:
    """A fresh archive ingested with no set-up at all (the station acts as the catalogue's owner); one id."""
    result = invoke(env, "ingest", str(samples.cn_recorder), "--no-derive", "--json")
    assert result.exit_code == 0, result.output
    recordings = json.loads(result.stdout)["recordings"]
    assert _events(env, "copied")[0].actor == "station:station-1"
    return int(recordings[0]["id"])


def _refused(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert f"OS account {ME.login!r} (uid {ME.uid})" in result.stderr or ME.login in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_an_unbound_account_cannot_act_whatever_name_it_gives(ingested, env, tmp_path):
    spoof = {**env, "USER": "admin", "LOGNAME": "admin"}  # $USER is the caller's to set: never believed
    _refused(invoke(spoof, "tag", str(ingested), "--by", "nobody-at-all", "--reason", "x", "--case", CASE),
             "is not bound to an archive user", "may not stamp", f"evidence user bind NAME --os-user {ME.login}")
    _refused(invoke(spoof, "case", "create", CASE, "--title", "t", "--type", "penalty-general", "--by", "nobody"),
             "may not manage_cases")
    _refused(invoke(spoof, "case", "close", CASE, "--by", "nobody"), "may not manage_cases")
    _refused(invoke(spoof, "retention", "approve", "2", "--by", "not-a-user"), "may not approve_disposal")
    _refused(invoke(spoof, "retention", "sweep"), "may not propose_disposal")
    _refused(invoke(spoof, "cat", str(ingested), "--reason", "curious"), "may not play")
    _refused(invoke(spoof, "show", str(ingested)), "may not view")
    _refused(invoke(spoof, "search", "--json"), "may not search")
    _refused(invoke(spoof, "export", str(ingested), "--out", str(tmp_path / "x"), "--reason", "r"), "may not export")
    _refused(invoke(spoof, "user", "add", "mallory", "--role", "clerk"), "may not admin")
    _refused(invoke(spoof, "user", "list"), "may not admin")
    _refused(invoke(spoof, "user", "passwd", "mallory", "--password-stdin", stdin="long enough password\n"),
             "may not admin")
    # nothing was signed into the record in any of those names
    engine = open_catalog(env["EVIDENCE_DATABASE_URL"])
    try:
        with Session(engine) as session:
            actors = set(session.exec(select(CustodyEvent.actor)))
            assert not actors & {"nobody-at-all", "nobody", "not-a-user", "admin", "mallory"}
            assert session.exec(select(StampRevision).where(StampRevision.revision > 1)).first() is None
            assert session.exec(select(User)).first() is None
    finally:
        engine.dispose()
    assert not (tmp_path / "x").exists()


def test_bootstrap_then_only_an_administrator_adds_users(ingested, env):
    # the catalogue's owner (this account: it created the catalogue) adds the first administrator, bound to itself
    first = invoke(env, "user", "add", "admin", "--role", "admin", "--os-user", ME.login)
    assert first.exit_code == 0, first.output
    added = [e for e in _events(env, "user_changed") if e.details["action"] == "added"]
    assert [(e.actor, e.details["user"], e.details["os_user"]) for e in added] == \
        [(f"bootstrap:{ME.login}", "admin", ME.login)]
    # now bound as admin: adds a clerk bound to another login, binds, re-binds, lists
    assert invoke(env, "user", "add", "clerk:李四", "--role", "clerk", "--os-user", "lisi").exit_code == 0
    assert invoke(env, "user", "bind", "clerk:李四", "--os-user", "li.si").exit_code == 0
    listed = json.loads(invoke(env, "user", "list", "--json").stdout)["users"]
    assert {u["name"]: u["os_user"] for u in listed} == {"admin": ME.login, "clerk:李四": "li.si"}
    taken = invoke(env, "user", "add", "clerk:王五", "--role", "clerk", "--os-user", "li.si")
    assert taken.exit_code == 2 and "OS login 'li.si' is already bound to user 'clerk:李四'" in taken.stderr
    bad = invoke(env, "user", "bind", "clerk:李四", "--os-user", "../root")
    assert bad.exit_code == 2 and "OS login '../root' must be" in bad.stderr
    rebinding = [e.details for e in _events(env, "user_changed") if e.details["action"] == "os_user"]
    assert rebinding == [{"user": "clerk:李四", "action": "os_user", "old": "lisi", "new": "li.si"}]
    # the administrator moves to another login; this account becomes the clerk: no longer an administrator, and
    # no second bootstrap while an administrator is bound
    assert invoke(env, "user", "bind", "admin", "--os-user", "boss").exit_code == 0
    _refused(invoke(env, "user", "list"), "is not bound to an archive user")
    bind_caller(env, "clerk:李四")
    _refused(invoke(env, "user", "add", "mallory", "--role", "admin", "--os-user", "mallory"),
             "archive user 'clerk:李四'", "may not admin: that needs one of admin")


def test_inactive_binding_role_and_by_mismatch_are_refused_and_the_good_path_works(ingested, env):
    bind_caller(env, "clerk:李四", roles=("clerk",))
    # --by must name the bound user
    _refused(invoke(env, "tag", str(ingested), "--by", "admin", "--reason", "x", "--case", CASE),
             "--by 'admin' does not match", "is archive user 'clerk:李四'")
    # the good path: the revision and the custody event name the bound user, whatever --by said before
    done = invoke(env, "tag", str(ingested), "--reason", "案件关联", "--case", CASE, "--json")
    assert done.exit_code == 0, done.output
    assert invoke(env, "tag", str(ingested), "--by", "clerk:李四", "--reason", "再次确认", "--purpose", "证明现场",
                  "--json").exit_code == 0
    assert [e.actor for e in _events(env, "restamped")] == ["clerk:李四", "clerk:李四"]
    # a role lacking the action
    _refused(invoke(env, "retention", "approve", "1"), "archive user 'clerk:李四'", "may not approve_disposal",
             "that needs one of admin, supervisor")
    _refused(invoke(env, "user", "list"), "may not admin")
    # an officer works on their own recordings only
    bind_caller(env, "officer:张三", roles=("officer",))
    outside = invoke(env, "tag", str(ingested), "--reason", "x", "--purpose", "y")
    assert outside.exit_code == 2 and f"recording {ingested} is outside what officer:张三" in outside.stderr
    _refused(invoke(env, "case", "close", CASE), "may not manage_cases")
    # deactivated: refused, and told so
    bind_caller(env, "clerk:李四")
    _in_catalogue(env, lambda s: set_active(s, "clerk:李四", False, by="admin"))
    _refused(invoke(env, "tag", str(ingested), "--reason", "x", "--purpose", "z"),
             "is bound to archive user 'clerk:李四', which is inactive")
    _refused(invoke(env, "cat", str(ingested), "--reason", "复核"), "inactive")
    assert len(_events(env, "restamped")) == 2 and _events(env, "accessed") == []


def test_reads_of_evidence_name_the_bound_reader(ingested, env):
    bind_caller(env, "clerk:王五", roles=("clerk",))
    got = invoke(env, "cat", str(ingested), "--reason", "复核录音")
    assert got.exit_code == 0 and got.stdout_bytes
    blank = invoke(env, "cat", str(ingested), "--reason", "  ")
    assert blank.exit_code == 2 and "reason" in blank.stderr
    assert invoke(env, "show", str(ingested), "--json").exit_code == 0
    accessed, viewed = _events(env, "accessed"), _events(env, "viewed")
    assert [(e.actor, e.details["reason"], e.details["os_user"]) for e in accessed] == \
        [("clerk:王五", "复核录音", ME.login)]
    assert [(e.actor, e.details["os_user"]) for e in viewed] == [("clerk:王五", ME.login)]


def test_station_work_runs_as_the_catalogue_owner_and_as_no_one_else(ingested, samples, env):
    # the owner (no binding) anchors, applies retention and verifies as the station
    assert invoke(env, "custody", "anchor", "--force", "--json").exit_code == 0
    assert invoke(env, "retention", "apply", "--json").exit_code == 0
    spoofed = invoke(env, "retention", "apply", "--by", "retention-job")
    assert spoofed.exit_code == 2 and "--by 'retention-job' does not match" in spoofed.stderr
    assert catalogue_owner_uid(Settings.from_env(env)) == os.getuid()
    # a bound officer who owns the catalogue still docks as the station (the ingest is the station's act)
    bind_caller(env, "officer:张三", roles=("officer",))
    again = invoke(env, "ingest", str(samples.cn_recorder), "--no-derive", "--json")
    assert again.exit_code == 0, again.output
    assert {e.actor for e in _events(env, "copied")} == {"station:station-1"}


# -- the decision, for accounts this test cannot become --------------------------------------------------------


def _user(name: str, roles: list[str], *, active: bool = True, os_user: str = "alice") -> User:
    return User(name=name, roles=roles, active=active, os_user=os_user, units=[])


STRANGER = OsAccount(uid=4242, login="mallory")
ROOT = OsAccount(uid=0, login="root")
OWNER = OsAccount(uid=1000, login="evidence")


def _decide(account: OsAccount, action: str, bound: User | None = None, asserted: str | None = None,
            admin_bound: bool = True):
    return decide_caller(account=account, action=action, bound=bound, asserted=asserted, owner_uid=1000,
                         station="station-7", admin_bound=admin_bound)


def test_the_decision_for_other_accounts():
    # the station's work: only the owner (or a bound station/admin user) acts as the station
    assert _decide(OWNER, "operate_station").actor == "station:station-7"
    with pytest.raises(PermissionDenied, match=r"OS account 'mallory' \(uid 4242\) is not bound"):
        _decide(STRANGER, "operate_station")
    with pytest.raises(PermissionDenied, match="is not bound"):
        _decide(ROOT, "operate_station")  # root is no station unless bound
    assert _decide(STRANGER, "operate_station", _user("st", ["station"], os_user="mallory")).actor == \
        "station:station-7"
    assert _decide(STRANGER, "verify", _user("st", ["station"], os_user="mallory")).actor == "station:station-7"
    assert _decide(STRANGER, "verify", _user("aud", ["auditor"], os_user="mallory")).actor == "aud"
    with pytest.raises(PermissionDenied, match="may not play"):
        _decide(STRANGER, "play", _user("st", ["station"], os_user="mallory"))
    # the owner is no person: it reads nothing and changes no stamp unless bound
    with pytest.raises(PermissionDenied, match="may not stamp"):
        _decide(OWNER, "stamp")
    # the first administrator: the owner or root, only while no administrator is bound
    assert _decide(OWNER, "bootstrap_admin", admin_bound=False).actor == "bootstrap:evidence"
    assert _decide(ROOT, "bootstrap_admin", admin_bound=False).actor == "bootstrap:root"
    with pytest.raises(PermissionDenied, match=r"only the account that owns the catalogue \(uid 1000\) or root"):
        _decide(STRANGER, "bootstrap_admin", admin_bound=False)
    with pytest.raises(PermissionDenied, match="is not bound"):
        _decide(OWNER, "bootstrap_admin", admin_bound=True)
    assert _decide(STRANGER, "bootstrap_admin", _user("boss", ["admin"], os_user="mallory")).actor == "boss"
    # inactive, wrong role, mismatched --by
    with pytest.raises(PermissionDenied, match="which is inactive"):
        _decide(STRANGER, "search", _user("x", ["clerk"], active=False, os_user="mallory"))
    with pytest.raises(PermissionDenied, match="may not approve_disposal: that needs one of admin, supervisor"):
        _decide(STRANGER, "approve_disposal", _user("x", ["clerk"], os_user="mallory"))
    with pytest.raises(PermissionDenied, match="--by 'y' does not match"):
        _decide(STRANGER, "search", _user("x", ["clerk"], os_user="mallory"), asserted="y")


def test_the_catalogue_owner_is_read_from_the_file_system(tmp_path):
    not_yet = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "a" / "b")})
    assert catalogue_owner_uid(not_yet) == tmp_path.stat().st_uid  # the nearest existing folder
    server = Settings.from_env({"EVIDENCE_HOME": str(tmp_path),
                                "EVIDENCE_DATABASE_URL": "postgresql+psycopg://x@127.0.0.1:1/none"})
    assert catalogue_owner_uid(server) == tmp_path.stat().st_uid  # EVIDENCE_HOME, where the station key lives


def test_a_test_binding_is_an_ordinary_recorded_change(env):
    run_cli(env, "user", "list", "--json")  # binds this account to `tester` first
    _in_catalogue(env, lambda s: add_user(s, "other", roles=["clerk"], by="admin"))
    changes = [e.details for e in _events(env, "user_changed")]
    assert {"user": "tester", "action": "os_user", "old": None, "new": ME.login} in changes
