"""双随机's second half: reviewers drawn from a pool with a recorded seed, enforcement recordings only, unreadable
files counted as findings, review by the drawn reviewers alone, the sign-off with a signed result in WORM
storage, and a summary to publish that carries no personal data.

Attacked as an insider would: the drawer reviewing their own draw, a reviewer of another check, a pool naming
people who may not review, text records and redacted copies slipped into the population, an outcome changed
after the sign-off, a second sign-off, a summary asked for before one."""
from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from catalog import CustodyEvent, Officer, Recording
from catalog.access import EVERYTHING
from catalog.disposal import Signer
from catalog.models import SpotCheck, SpotCheckItem
from catalog.signing import verify_document
from catalog.spotcheck import SpotCheckCriteria, SpotCheckError, SpotCheckRefused, new_spot_check, record_outcome
from catalog.spotcheck_result import progress, result_name, sign_off, spot_check_summary
from catalog.spotcheck_team import draw_names, reviewer_seed
from catalog.types import utcnow
from catalog.user_models import User
from evidence.web import WebConfig, create_app
from tests.webhelpers import add_web_users, form_token, web_login

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PEOPLE = {"supervisor:王": "supervisor", "supervisor:赵": "supervisor", "supervisor:钱": "supervisor",
          "supervisor:海淀": "supervisor", "admin:孙": "admin", "clerk:李四": "clerk", "officer:张三": "officer"}


def test_the_reviewers_are_the_same_for_the_same_pool_and_seed_in_any_order():
    pool = ["supervisor:赵", "admin:孙", "supervisor:钱", "supervisor:王"]
    chosen = draw_names(pool, 2, "abc/reviewers")
    assert chosen == draw_names(list(reversed(pool)) + pool, 2, "abc/reviewers")  # order and repeats do not matter
    assert len(chosen) == 2 and set(chosen) <= set(pool) and chosen == sorted(chosen)
    assert draw_names(pool, 9, "x") == sorted(pool) and draw_names([], 2, "x") == []
    assert {tuple(draw_names(pool, 2, f"seed-{n}")) for n in range(30)} != {tuple(chosen)}  # the seed decides


@pytest.fixture
def archive(engine):
    """20 videos and photos of officer 010203 (unit U1), one of them not media at all; a text record, a redacted
    copy and a device's housekeeping file that a spot check must never draw; the people of PEOPLE."""
    with Session(engine) as session:
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="朝阳大队"))

        def add(n: int, kind: str, **extra: object) -> Recording:
            recording = Recording(sha256=f"{n:064x}", size_bytes=10, media_kind=kind, original_name=f"张三-{n}.mp4",
                                  station_code="s", time_source="container", captured_start=T0 + timedelta(hours=n),
                                  integrity_status="ok", state="archived", ingested_at=T0, officer_number="010203")
            for name, value in extra.items():
                setattr(recording, name, value)
            session.add(recording)
            session.flush()
            return recording

        for n in range(20):
            add(n, "video" if n % 3 else "photo", **({"integrity_status": "unreadable",
                                                      "integrity_detail": "no media stream"} if n == 7 else {}))
        add(100, "document")
        add(101, "video", redacted_from_id=1)
        add(102, "video", belongs_to_id=2)
        session.commit()
    add_web_users(engine, PEOPLE, units={"supervisor:海淀": ["U2"]})
    return engine


def _items(engine, check_id: int) -> list[SpotCheckItem]:
    with Session(engine) as session:
        return list(session.exec(select(SpotCheckItem).where(SpotCheckItem.check_id == check_id)
                                 .order_by(col(SpotCheckItem.id))))


def test_both_draws_are_recorded_and_only_enforcement_recordings_are_drawn(archive):
    with Session(archive) as session:
        check = new_spot_check(session, SpotCheckCriteria(), 500, by="supervisor:王", now=utcnow(), seed="s1",
                               reviewers=2)
        # never the drawer, nor a supervisor of unit U2 (who could not open a check of U1), nor a clerk or officer
        assert check.reviewer_pool == ["admin:孙", "supervisor:赵", "supervisor:钱"]
        assert check.reviewers == draw_names(check.reviewer_pool, 2, reviewer_seed("s1"))
        assert check.population == 20  # not the text record, the redacted copy or the housekeeping file
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "spot_check_drawn")).one()
        assert (event.details["reviewer_pool"], event.details["reviewer_seed"], event.details["reviewers"]) == (
            check.reviewer_pool, "s1/reviewers", check.reviewers)
        assert event.details["unreadable"] == [8]  # recording 8 is the 8th added: n == 7
        check_id = check.id
        assert check_id is not None
        with pytest.raises(SpotCheckError, match="enforcement recordings"):
            new_spot_check(session, SpotCheckCriteria(kind="document"), 5, by="supervisor:王", now=utcnow())
        with pytest.raises(SpotCheckError, match="'clerk:李四' may not review spot checks"):
            new_spot_check(session, SpotCheckCriteria(), 5, by="supervisor:王", now=utcnow(), reviewers=1,
                           pool=["clerk:李四", "supervisor:赵"])
        with pytest.raises(SpotCheckError, match="'supervisor:王' drew the sample"):
            new_spot_check(session, SpotCheckCriteria(), 5, by="supervisor:王", now=utcnow(), reviewers=1,
                           pool=["supervisor:王"])
        with pytest.raises(SpotCheckError, match="'supervisor:海淀' may not see all of the sample"):
            new_spot_check(session, SpotCheckCriteria(), 5, by="supervisor:王", now=utcnow(), reviewers=1,
                           pool=["supervisor:海淀"])
        with pytest.raises(SpotCheckError, match="'nobody' is not a user"):
            new_spot_check(session, SpotCheckCriteria(), 5, by="supervisor:王", now=utcnow(), reviewers=1,
                           pool=["nobody"])
    unreadable = [i for i in _items(archive, check_id) if i.outcome == "unreadable"]
    assert [(i.recording_id, i.notes) for i in unreadable] == [(8, "no media stream")]
    assert progress(_items(archive, check_id)).findings == 1


def test_only_the_drawn_reviewers_review_and_sign_off_and_then_nothing_changes(archive, store):
    signer = Signer("station-1", Ed25519PrivateKey.generate())
    with Session(archive) as session:
        check = new_spot_check(session, SpotCheckCriteria(), 6, by="supervisor:王", now=utcnow(), seed="s2",
                               reviewers=1, pool=["supervisor:赵", "supervisor:钱"])
        [reviewer] = check.reviewers
        outsider = ({"supervisor:赵", "supervisor:钱"} - {reviewer}).pop()
        check_id = check.id
        assert check_id is not None
    items = _items(archive, check_id)
    first = next(i for i in items if i.outcome == "pending")
    with Session(archive) as session:
        for who in ("supervisor:王", outsider):  # the drawer, and a supervisor the draw passed over
            with pytest.raises(SpotCheckRefused, match=f"{who} is not one of them"):
                record_outcome(session, first.id or 0, outcome="compliant", notes="", by=who, now=utcnow(),
                               scope=EVERYTHING)
        with pytest.raises(SpotCheckError, match="are not reviewed yet"):
            sign_off(session, store, signer, check_id, by=reviewer, scope=EVERYTHING, now=utcnow())
        for item in items:
            if item.outcome == "unreadable":
                with pytest.raises(SpotCheckError, match="not reviewed as footage"):
                    record_outcome(session, item.id or 0, outcome="compliant", notes="", by=reviewer,
                                   now=utcnow(), scope=EVERYTHING)
                continue
            outcome = "issue" if item.id == first.id else "compliant"
            notes = "未佩戴执法记录仪" if outcome == "issue" else ""
            record_outcome(session, item.id or 0, outcome=outcome, notes=notes, by=reviewer, now=utcnow(),
                           scope=EVERYTHING)
        with pytest.raises(SpotCheckRefused, match="for its drawn reviewers to sign off"):
            sign_off(session, store, signer, check_id, by="supervisor:王", scope=EVERYTHING, now=utcnow())
        signed = sign_off(session, store, signer, check_id, by=reviewer, scope=EVERYTHING, now=utcnow())
        assert signed.result_record and signed.result_sha256
        record = store.get_record(signed.result_record)
        assert hashlib.sha256(record).hexdigest() == signed.result_sha256
        body = verify_document(json.loads(record))  # the signature holds
        assert (body["check"], body["seed"], body["reviewer_seed"], body["reviewers"]) == (
            check_id, "s2", "s2/reviewers", [reviewer])
        assert [i["outcome"] for i in body["items"]].count("issue") == 1 and body["signed_off_by"] == reviewer
        with pytest.raises(SpotCheckError, match="signed off already"):
            sign_off(session, store, signer, check_id, by=reviewer, scope=EVERYTHING, now=utcnow())
        with pytest.raises(SpotCheckError, match="its outcomes are final"):
            record_outcome(session, first.id or 0, outcome="compliant", notes="", by=reviewer, now=utcnow(),
                           scope=EVERYTHING)
        refusals = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "access_refused")).all()
        assert sorted((e.actor, e.details["action"]) for e in refusals) == sorted([
            ("supervisor:王", "review spot check"), (outsider, "review spot check"),
            ("supervisor:王", "sign off spot check")])
        kinds = [e.kind for e in session.exec(select(CustodyEvent).order_by(col(CustodyEvent.id)))]
        assert kinds.count("spot_check_signed") == 1


def _signed_check(archive, store) -> tuple[int, str]:
    """A check of 4 drawn by 王 and reviewed and signed off by its one drawn reviewer (of 赵)."""
    signer = Signer("station-1", Ed25519PrivateKey.generate())
    with Session(archive) as session:
        check = new_spot_check(session, SpotCheckCriteria(unit="U1"), 4, by="supervisor:王", now=utcnow(),
                               seed="s3", reviewers=1, pool=["supervisor:赵", "supervisor:钱"])
        assert check.id is not None
        [reviewer] = check.reviewers
        for item in _items(archive, check.id):
            if item.outcome == "pending":
                record_outcome(session, item.id or 0, outcome="issue", notes="张三未表明身份", by=reviewer,
                               now=utcnow(), scope=EVERYTHING)
        sign_off(session, store, signer, check.id, by=reviewer, scope=EVERYTHING, now=utcnow())
        return check.id, check.seed


def test_the_summary_to_publish_holds_counts_and_no_personal_data(archive, store):
    check_id, seed = _signed_check(archive, store)
    with Session(archive) as session:
        check = session.get(SpotCheck, check_id)
        assert check is not None
        summary = spot_check_summary(check, _items(archive, check_id), "Asia/Shanghai")
    assert (summary["sample_size"], summary["reviewed"], summary["findings"], summary["seed"]) == (4, 4, 4, seed)
    assert summary["criteria"] == {"unit": "U1"} and summary["reviewers"] == 1 and summary["result_sha256"]
    assert summary["narrowed_to_officer"] is False
    text = json.dumps(summary, ensure_ascii=False)
    for personal in ("010203", "张三", "supervisor:", ".mp4", "未表明身份"):
        assert personal not in text, personal


def test_the_web_pages_draw_review_sign_off_and_publish(archive, store):
    with TestClient(create_app(WebConfig(engine=archive, store=store, key=Ed25519PrivateKey.generate(),
                                         station="station-1"))) as client:
        web_login(client, "supervisor:王")
        csrf = form_token(client.get("/spot-checks").text)
        drawn = client.post("/spot-checks", data={"csrf": csrf, "size": "3", "reviewers": "1",
                                                  "pool": "supervisor:赵，supervisor:钱", "seed": "web"},
                            follow_redirects=False)
        assert drawn.status_code == 303
        page = drawn.headers["location"]
        check_id = int(page.rsplit("/", 1)[-1])
        with Session(archive) as session:
            check = session.get(SpotCheck, check_id)
            assert check is not None and check.reviewer_pool == ["supervisor:赵", "supervisor:钱"]
            assert check.seed != "web"  # a typed seed would choose the sample: the server draws its own
            [reviewer] = check.reviewers
        assert client.get(f"{page}/summary.json").status_code == 409  # nothing to publish before the sign-off
        refused = client.post(f"{page}/sign-off", data={"csrf": csrf})
        assert refused.status_code == 403 and "只能由抽中的检查人员签署" in refused.text
        client.cookies.clear()
        web_login(client, reviewer)
        shown = client.get(page).text
        csrf = form_token(shown)
        # The server's own seed may draw the archive's unreadable file, which the draw records as a finding at
        # once: the page counts it reviewed and the reviewer never sees it.
        pending = [item for item in _items(archive, check_id) if item.outcome == "pending"]
        assert 'id="review-player"' in shown and "disabled" in shown
        assert f"已复核 {3 - len(pending)} / 3" in shown
        for item in pending:
            client.post(f"{page}/items/{item.id}", data={"csrf": csrf, "outcome": "compliant"})
        assert "已复核 3 / 3" in client.get(page).text
        signed = client.post(f"{page}/sign-off", data={"csrf": csrf}, follow_redirects=False)
        assert signed.status_code == 303
        assert f"抽查 {check_id} 已签署，签名结果已存档。" in client.get(signed.headers["location"]).text
        assert "已签署" in client.get(page).text
        published = client.get(f"{page}/summary.json").json()
        assert (published["check"], published["compliant"], published["findings"]) == (
            check_id, len(pending), 3 - len(pending))
        as_csv = client.get(f"{page}/summary.csv")
        assert as_csv.text.startswith("\ufeff") and "attachment" in as_csv.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(as_csv.text.lstrip("\ufeff"))))
        assert rows[0]["result_sha256"] == published["result_sha256"] and reviewer not in as_csv.text
        listing = client.get("/spot-checks").text
        assert "已复核 3 / 3" in listing


def test_the_one_who_draws_chooses_neither_the_reviewers_nor_themselves(archive):
    """No second draw skipped (0 reviewers), no pool of exactly the friend asked for, nobody reviewing footage
    they recorded, and a check from before reviewers were drawn is not reviewed by whoever drew it."""
    with Session(archive) as session:
        with pytest.raises(SpotCheckError, match="1 to 20 reviewers"):
            new_spot_check(session, SpotCheckCriteria(), 3, by="supervisor:王", now=utcnow(), reviewers=0)
        with pytest.raises(SpotCheckError, match="at least 2 × the reviewers drawn"):
            new_spot_check(session, SpotCheckCriteria(), 3, by="supervisor:王", now=utcnow(), reviewers=1,
                           pool=["supervisor:赵"])
        recorder = session.exec(select(User).where(User.name == "supervisor:钱")).one()
        recorder.officer_number = "010203"  # a supervisor who is also the officer whose footage is drawn
        session.add(recorder)
        session.commit()
        with pytest.raises(SpotCheckError, match="'supervisor:钱' recorded part of the sample"):
            new_spot_check(session, SpotCheckCriteria(), 3, by="supervisor:王", now=utcnow(), reviewers=1,
                           pool=["supervisor:钱", "supervisor:赵"])
        drawn = new_spot_check(session, SpotCheckCriteria(), 3, by="supervisor:王", now=utcnow(), reviewers=1)
        assert "supervisor:钱" not in drawn.reviewer_pool and drawn.reviewer_pool == sorted(drawn.reviewer_pool)
        legacy = new_spot_check(session, SpotCheckCriteria(), 3, by="supervisor:王", now=utcnow(), reviewers=1)
        legacy.reviewers, legacy.reviewer_pool = [], []  # as migration 0027 leaves a check drawn before it
        session.add(legacy)
        session.commit()
        legacy_id = legacy.id
        assert legacy_id is not None
    item = next(i for i in _items(archive, legacy_id) if i.outcome == "pending")
    with Session(archive) as session:
        with pytest.raises(SpotCheckRefused, match="anyone but supervisor:王"):
            record_outcome(session, item.id or 0, outcome="compliant", notes="", by="supervisor:王", now=utcnow(),
                           scope=EVERYTHING)
        record_outcome(session, item.id or 0, outcome="compliant", notes="", by="supervisor:赵", now=utcnow(),
                       scope=EVERYTHING)


def test_a_sign_off_cut_short_after_its_record_is_stored_is_finished_with_that_record(archive, store):
    """The signed result went to WORM storage and the catalogue never heard of it (the process died before the
    commit): the next sign-off adopts that record, once, and never stores a second, different one."""
    signer = Signer("station-1", Ed25519PrivateKey.generate())
    with Session(archive) as session:
        check = new_spot_check(session, SpotCheckCriteria(unit="U1"), 2, by="supervisor:王", now=utcnow(),
                               reviewers=1, pool=["supervisor:赵", "supervisor:钱"])
        [reviewer] = check.reviewers
        check_id = check.id
        assert check_id is not None
        for item in _items(archive, check_id):
            if item.outcome == "pending":
                record_outcome(session, item.id or 0, outcome="compliant", notes="", by=reviewer, now=utcnow(),
                               scope=EVERYTHING)
    first_try = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    with Session(archive) as session:
        sign_off(session, store, signer, check_id, by=reviewer, scope=EVERYTHING, now=first_try)
        session.rollback()  # never reached: the commit inside came first; undo it as a crash would have
    with Session(archive) as session:  # the row as a crash before the commit leaves it
        stale = session.get(SpotCheck, check_id)
        assert stale is not None
        stale.signed_off_by = stale.signed_off_at = stale.result_record = stale.result_sha256 = None
        session.add(stale)
        session.commit()
    stored = store.get_record(result_name(check_id))
    with Session(archive) as session:
        again = sign_off(session, store, signer, check_id, by=reviewer, scope=EVERYTHING, now=utcnow())
        assert (again.signed_off_at, again.result_sha256) == (first_try, hashlib.sha256(stored).hexdigest())
    assert store.list_records("spot-checks/") == [result_name(check_id)]
