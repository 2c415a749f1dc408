"""Medium 4: what `verify --all` did not see. Rows hidden from it by setting `state` to `disposed` or `staged`, a
recording row deleted outright (its events, manifests and object remain), and a case's composition and type edited
in the database: each is named (exit 4), and none of it lets the application's disposal destroy evidence.

The attacks are direct SQL on SQLite and PostgreSQL against a catalogue filled through `evidence ingest`,
`evidence case …` and `evidence retention sweep|approve`; the checks run `evidence verify --all`.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from catalog.case_models import Case, CaseLink, Disposal
from catalog.models import Recording
from catalog.types import utcnow
from ingest.samples import make_wav
from tests.cli import run_cli
from tests.helpers.cli_archive import ingest_recorder, problems_of, store_of, sweep_and_approve, verify_all
from tests.helpers.insider import LONG_AGO, PAST, rewrite_retention_record, sql
from tests.helpers.retention import archived, wait_past

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def _delete_row(db, recording_id: int) -> None:
    """Remove a recording row outright, with every row that refers to it (as an attacker must)."""
    for table in ("stamp_revision", "sighting", "integrity_check", "case_link", "derived_media", "spot_check_item"):
        sql(db, f"DELETE FROM {table} WHERE recording_id = :id", id=recording_id)
    sql(db, "DELETE FROM recording WHERE id = :id", id=recording_id)


def _lawfully_disposed(env, engine, tmp_path: Path, n: int) -> Recording:
    """A recording archived with a two-second lock, past it, swept by one clerk and disposed on a supervisor's
    approval: its tombstone, `disposed` event and signed disposal record exist."""
    with Session(engine) as session:
        lawful = archived(session, store_of(env), tmp_path, n, retain_until=timedelta(seconds=2),
                          captured_end=datetime(2025, 1, 1, tzinfo=UTC))
        wait_past(lawful.retain_until)
    outcome, code = sweep_and_approve(env)
    assert code == 0 and [(o["recording_id"], o["result"]) for o in outcome["outcome"]] == [(lawful.id, "disposed")]
    return lawful


def test_rows_hidden_as_disposed_or_staged_and_a_deleted_row_are_named(env, engine, tmp_path):
    hidden_disposed, hidden_staged, deleted = (ingest_recorder(env, tmp_path, n)[0] for n in ("d", "s", "gone"))
    # A recording lawfully disposed of (its tombstone, `disposed` event and signed record exist) stays quiet.
    lawful = _lawfully_disposed(env, engine, tmp_path, 9)
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    with Session(engine) as session:  # every row is checked, the disposed one too
        assert report["recordings"] == len(session.exec(select(Recording.id)).all()) >= 4

    sql(engine, "UPDATE recording SET state = 'disposed' WHERE id = :id", id=hidden_disposed["id"])
    sql(engine, "UPDATE recording SET state = 'staged' WHERE id = :id", id=hidden_staged["id"])
    _delete_row(engine, deleted["id"])

    code, report = verify_all(env)
    assert code == 4
    on_disposed = problems_of(report, hidden_disposed["id"])
    # (the first `verify --all` read every stored recording back whole: the chain says they became `verified`)
    assert any(p.startswith("[catalog] state: the catalogue row says 'disposed', the custody chain says "
                            "'verified'") for p in on_disposed), on_disposed
    assert "[catalog] marked disposed but has no tombstone" in on_disposed
    assert "[catalog] marked disposed but the custody chain has no `disposed` event for it" in on_disposed
    assert any(p.startswith("[catalog] no disposal batch names it, so no signed disposal record can vouch for it")
               for p in on_disposed)
    on_staged = problems_of(report, hidden_staged["id"])
    assert any(p.startswith("[catalog] state: the catalogue row says 'staged', the custody chain says "
                            "'verified'") and "hidden from checks of what the store holds" in p
               for p in on_staged), on_staged
    assert not any(str(hidden_staged["id"]) in line and "not in the store yet" in line for line in report["skipped"])
    gone = problems_of(report, deleted["id"])
    assert len(gone) == 1 and gone[0].startswith("[catalog] the custody chain has ")
    assert "but the catalogue has no row: deleted behind the application's back" in gone[0]
    assert problems_of(report, lawful.id) == []

    # The lawful tombstone removed, and its row's sha256 changed, are named as well.
    sql(engine, "DELETE FROM disposal WHERE recording_id = :id", id=lawful.id)
    code, report = verify_all(env)
    assert code == 4 and "[catalog] marked disposed but has no tombstone" in problems_of(report, lawful.id)


def test_case_type_and_links_edited_in_the_database_are_named_and_cannot_release_evidence(env, engine,
                                                                                           tmp_path):
    first, second, third = (ingest_recorder(env, tmp_path, n)[0] for n in ("one", "two", "three"))
    number = "AB-2026-00555"
    created = run_cli(env, "case", "create", number, "--title", "重大案件", "--type", "major", "--opened", "2026-01-05",
                      "--by", "clerk-li", "--json")
    assert created.exit_code == 0, created.output
    for r in (first, second):
        linked = run_cli(env, "case", "link", number, str(r["id"]), "--purpose", "证明违法事实", "--by", "clerk-li",
                         "--json")
        assert linked.exit_code == 0, linked.output
    code, report = verify_all(env)
    assert code == 0, problems_of(report)

    with Session(engine) as session:
        case_id = session.exec(select(Case.id).where(Case.number == number)).one()
    # The case becomes a short, closed, summary case; one link is ended and one deleted; a recording is slipped in;
    # a case nobody opened appears.
    sql(engine, "UPDATE case_file SET case_type = 'penalty-summary', status = 'closed', closed_on = :day "
                "WHERE id = :id", day=datetime(2000, 1, 1).date(), id=case_id)
    sql(engine, "UPDATE case_link SET unlinked_at = :at, unlinked_by = 'x', unlink_reason = 'x' "
                "WHERE recording_id = :id", at=utcnow(), id=second["id"])
    sql(engine, "DELETE FROM case_link WHERE recording_id = :id", id=first["id"])
    sql(engine, "INSERT INTO case_link (case_id, recording_id, purpose, source, linked_by, linked_at) "
                "VALUES (:case, :rec, '证明', 'manual', 'clerk-li', :at)", case=case_id, rec=third["id"], at=utcnow())
    sql(engine, "INSERT INTO case_file (number, title, case_type, unit, status, opened_on, created_by, created_at) "
                "VALUES ('AB-2026-00556', 't', 'inspection', '', 'open', :day, 'x', :at)",
        day=datetime(2026, 1, 5).date(), at=utcnow())

    code, report = verify_all(env)
    assert code == 4
    cases = {p["detail"] for p in report["problems"] if p["subject"].startswith("case ")}
    assert "case_type: the case row says 'penalty-summary', the custody chain says 'major' (changed behind the " \
           "application's back; retention follows the chain)" in cases
    assert "status: the case row says 'closed', the custody chain says 'open' (changed behind the application's " \
           "back; retention follows the chain)" in cases
    assert any(d.startswith("the catalogue has a case row that no case_opened event") for d in cases)
    links = {p["recording_id"]: p["detail"] for p in report["problems"] if p["kind"] == "case" and p["recording_id"]}
    assert links[first["id"]].startswith(f"case {number}: the catalogue has 0 link row(s), 0 active []; the custody "
                                         "chain has 1 case_linked event(s), 1 still active ['证明违法事实']")
    assert links[second["id"]].startswith(f"case {number}: the catalogue has 1 link row(s), 0 active []; the custody "
                                          "chain has 1 case_linked event(s), 1 still active")
    assert links[third["id"]].startswith(f"case {number}: the catalogue has 1 link row(s), 1 active ['证明']; the "
                                         "custody chain has 0 case_linked event(s)")

    # With its hold and dates gone too (row and store), the permanently kept recording is still not destroyed.
    store = store_of(env)
    sql(engine, "UPDATE recording SET retain_until = :until, legal_hold = false, captured_end = :end, "
                "archived_at = :end, ingested_at = :end WHERE id = :id", until=PAST, end=LONG_AGO, id=first["id"])
    rewrite_retention_record(store, first["sha256"], retain_until=PAST, legal_hold=False)
    outcome, code = sweep_and_approve(env)
    [item] = outcome["outcome"]
    assert (item["recording_id"], item["result"], code) == (first["id"], "refused", 1)
    assert f"case {number}: case_type: the case row says 'penalty-summary', the custody chain says 'major'" \
        in item["reason"]
    assert store.exists(first["sha256"])
    with Session(engine) as session:
        assert session.exec(select(Disposal)).first() is None
        kept = session.get(Recording, first["id"])
        assert kept is not None and kept.state in ("archived", "verified")
        assert len(session.exec(select(CaseLink)).all()) == 2


def test_verify_of_named_ids_checks_their_cases_and_json_lists_every_problem(env, engine, tmp_path):
    [row] = ingest_recorder(env, tmp_path, "ids")
    sql(engine, "UPDATE recording SET legal_hold = true WHERE id = :id", id=row["id"])
    result = run_cli(env, "verify", str(row["id"]), "--json", "--by", "auditor-zhao")
    assert result.exit_code == 4
    report = json.loads(result.stdout)
    assert any(p.startswith("[retention] legal_hold: the catalogue row says True, the custody chain says False")
               for p in problems_of(report, row["id"]))


def test_a_tombstone_and_its_batch_rewritten_in_the_database_are_named(env, engine, tmp_path):
    """A review rewrote a lawful disposal's tombstone (operator, approver, rule, retain-until, note, stamp) and its
    batch (proposer, approver): `evidence show` and `retention batches` printed the forgery and verify passed. The
    `disposed` custody event and the signed disposal record in WORM storage say otherwise."""
    ingest_recorder(env, tmp_path, "kept")  # the station's first start adopts the retention terms
    lawful = _lawfully_disposed(env, engine, tmp_path, 11)
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    with Session(engine) as session:
        [tombstone] = session.exec(select(Disposal).where(Disposal.recording_id == lawful.id)).all()
        batch_id = tombstone.batch_id
    sql(engine, "UPDATE disposal SET operator = 'clerk:ghost', approver = 'supervisor:王', rule = 'court order', "
                "retain_until = :until, note = 'authorised', stamp = :stamp WHERE recording_id = :id",
        id=lawful.id, until=datetime(2027, 1, 1, tzinfo=UTC), stamp=json.dumps({"case_number": "X-2026-9"}))
    sql(engine, "UPDATE disposal_batch SET created_by = 'clerk:ghost', approved_by = 'supervisor:李' WHERE id = :id",
        id=batch_id)
    code, report = verify_all(env)
    assert code == 4
    named = problems_of(report, lawful.id)
    for field in ("operator is 'clerk:ghost'", "approver is 'supervisor:王'", "rule is 'court order'",
                  "note is 'authorised'", "retain-until is 2027-01-01", "stamp is {'case_number': 'X-2026-9'}"):
        assert any(field in p for p in named), (field, named)
    assert any("the signed disposal record says" in p for p in named)
    batch = [p for p in report["problems"] if p.get("subject") == f"disposal batch {batch_id}"]
    assert {p["detail"].split(",")[0] for p in batch} == {"its proposer is 'clerk:ghost'",
                                                         "its approver is 'supervisor:李'"}, batch


def test_a_cases_title_unit_and_people_rewritten_in_the_database_are_named(env, engine, tmp_path):
    """A review rewrote a closed case's title, unit, opener and closer with one UPDATE: verify passed, and the
    forged title and unit went into the court package. The case's custody events said otherwise."""
    [row] = ingest_recorder(env, tmp_path, "titled")
    number = "AB-2026-00777"
    created = run_cli(env, "case", "create", number, "--title", "无照经营", "--type", "penalty-summary", "--unit",
                      "一中队", "--opened", "2026-01-05", "--by", "clerk-li", "--json")
    assert created.exit_code == 0, created.output
    linked = run_cli(env, "case", "link", number, str(row["id"]), "--purpose", "证明违法事实", "--by", "clerk-li")
    assert linked.exit_code == 0, linked.output
    closed = run_cli(env, "case", "close", number, "--on", "2026-02-01", "--by", "clerk-li")
    assert closed.exit_code == 0, closed.output
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    sql(engine, "UPDATE case_file SET title = 'changed title', unit = '其他单位', created_by = 'nobody', "
                "closed_by = 'ghost' WHERE number = :number", number=number)
    code, report = verify_all(env)
    assert code == 4
    said = {p["detail"].split(" (")[0] for p in report["problems"] if p["subject"] == f"case {number}"}
    assert said == {"title: the case row says 'changed title', the custody chain says '无照经营'",
                    "unit: the case row says '其他单位', the custody chain says '一中队'",
                    "created_by: the case row says 'nobody', the custody chain says 'clerk-li'",
                    "closed_by: the case row says 'ghost', the custody chain says 'clerk-li'"}, said
    out = tmp_path / "package"  # the forged title and unit would go into the court package: refused
    exported = run_cli(env, "export", number, "--out", str(out), "--by", "clerk-li", "--reason", "移送法院")
    assert exported.exit_code == 2 and not out.exists(), exported.output
    assert f"case {number}: title: the case row says 'changed title', the custody chain says '无照经营'" \
        in exported.output


def test_a_derived_file_replaced_in_the_store_is_named(env, engine, tmp_path):
    """A review copied another recording's proxy and thumbnail over this one's: the page played the other
    recording and every check passed. Each derived file is re-hashed against its row."""
    import hashlib

    from catalog.models import DerivedMedia

    rows = [ingest_recorder(env, tmp_path, name)[0] for name in ("mine", "other")]
    store = store_of(env)
    with Session(engine) as session:
        for row, data in zip(rows, (b"proxy of mine " * 500, b"proxy of the other " * 400), strict=True):
            path = tmp_path / f"{row['id']}.m4a"
            path.write_bytes(data)
            key = store.put_derived(row["sha256"], "proxy.m4a", path, content_type="audio/mp4")
            session.add(DerivedMedia(recording_id=row["id"], derived_from_sha256=row["sha256"], kind="proxy", key=key,
                                     sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                                     content_type="audio/mp4", created_at=utcnow()))
        session.commit()
    code, report = verify_all(env)
    assert code == 0, problems_of(report)
    mine, other = rows
    with store.open_derived(other["sha256"], "proxy.m4a") as fh:
        theirs = fh.read()
    swapped = tmp_path / "swapped.m4a"
    swapped.write_bytes(theirs)
    store.put_derived(mine["sha256"], "proxy.m4a", swapped, content_type="audio/mp4")  # what the store allows
    code, report = verify_all(env)
    assert code == 4
    [named] = problems_of(report, mine["id"])
    assert named.startswith("[derived] its proxy (derived/") and f"holds {len(theirs)} bytes with sha256 " \
        f"{hashlib.sha256(theirs).hexdigest()}" in named and "replaced behind the application's back" in named
    assert problems_of(report, other["id"]) == []


def test_users_and_the_officer_list_edited_in_the_database_are_named(env, engine, tmp_path):
    """A review inserted an administrator bound to another OS account, widened a supervisor's scope and moved an
    officer to another unit, one SQL statement each: verify passed, and the officer's recordings went to another
    unit's supervisor. Users and the officer list are compared with their user_changed and registry_changed
    events: the station's own, when it makes an officer from a device's data or fills an empty field, too."""
    from catalog.registry import OfficerForm, save_officer
    from catalog.users import add_user

    ingest_recorder(env, tmp_path, "registry")  # officer 010203 made from the device's own number (its event)
    device = tmp_path / "named-recorder"  # a second recorder of 010203 says their name and unit: filled (an event)
    make_wav(device / "RECORD" / "ZFY_B765432_010203_20261120_090000_named.wav", seconds=0.7)
    (device / "ZFYINFO.TXT").write_bytes("产品序号=B765432\r\n警员编号=010203\r\n警员姓名=张三\r\n"
                                         "单位编号=110105001\r\n单位名称=朝阳执法局\r\n".encode("gbk"))
    assert run_cli(env, "ingest", str(device), "--no-derive").exit_code == 0
    with Session(engine) as session:
        add_user(session, "sup-u1", roles=["supervisor"], by="admin", units=["U1"])
        save_officer(session, OfficerForm(number="040506", name="钱七", unit_number="U1", unit_name="一中队"),
                     by="admin")
        save_officer(session, OfficerForm(number="050607", name="孙八"), by="admin")  # unit left to the device
        session.commit()
    sql(engine, "UPDATE officer SET unit_number = 'U9', unit_name = '九中队' WHERE number = '050607'")  # as before
    code, report = verify_all(env)  # a field the last event left empty: filled by a device before it said so
    assert code == 0, problems_of(report)

    sql(engine, "INSERT INTO app_user (name, display_name, roles, active, created_at, failed_logins, units, os_user) "
                "VALUES ('mallory', 'M', :roles, :yes, :at, 0, '[]', 'nobody')",
        roles=json.dumps(["admin", "clerk"]), yes=True, at=utcnow())
    sql(engine, "UPDATE app_user SET units = '[]' WHERE name = 'sup-u1'")
    sql(engine, "UPDATE officer SET unit_number = '999', unit_name = '其他' WHERE number = '040506'")
    sql(engine, "UPDATE officer SET name = '赵六' WHERE number = '010203'")  # the station's event vouches for it
    code, report = verify_all(env)
    assert code == 4
    said = {(p["subject"], p["detail"].split(" (")[0]) for p in report["problems"]}
    assert ("user mallory", "no user_changed event added this user: the row was inserted behind the application's "
                            "back") in said
    assert ("user sup-u1", "units: the row says [], the custody chain says ['U1']") in said
    for field, held, stated in (("unit_number", "999", "U1"), ("unit_name", "其他", "一中队")):
        assert ("officer 040506", f"{field}: the officer list says {held!r}, its last registry_changed event "
                                  f"{stated!r}") in said
    assert ("officer 010203", "name: the officer list says '赵六', its last registry_changed event '张三'") in said
    assert not any(subject == "officer 050607" for subject, _detail in said), said
