"""Retention and disposal in the browser: what is due, a clerk proposes, a second person approves and the
objects go, leaving tombstones and a signed record; nobody approves their own batch."""
from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from catalog import DisposalBatch, link_recording
from evidence.web import WebConfig, create_app
from tests.helpers.retention import KEY, POLICY, archived, open_case, wait_past
from tests.webhelpers import add_web_users, form_token, web_login


def test_a_clerk_proposes_a_supervisor_approves_and_the_due_footage_goes(engine, store, tmp_path):
    with Session(engine) as session:
        old = datetime(2025, 1, 1, tzinfo=UTC)
        due = archived(session, store, tmp_path, 1, retain_until=timedelta(seconds=2), captured_end=old)
        held = archived(session, store, tmp_path, 2, retain_until=timedelta(seconds=2), captured_end=old)
        link_recording(session, open_case(session, "AB-2026-00099"), held, purpose="证明", by="clerk")
        session.commit()
        wait_past(due.retain_until, held.retain_until)
    add_web_users(engine, {"clerk": "clerk", "supervisor": "supervisor", "auditor": "auditor", "admin": "admin"})
    config = WebConfig(engine=engine, store=store, key=KEY, station="station-1", policy=POLICY)
    with TestClient(create_app(config)) as client:
        web_login(client, "auditor")
        page = client.get("/retention")
        assert page.status_code == 200 and 'id="due">1<' in page.text and "案件 AB-2026-00099 尚未结案" in page.text
        assert client.post("/retention/sweep", data={"csrf": form_token(page.text)}).status_code == 403
        client.cookies.clear()

        web_login(client, "clerk")
        token = form_token(client.get("/retention").text)
        assert client.post("/retention/batches/1/approve", data={"csrf": token, "confirm": "yes"}).status_code == 403
        proposed = client.post("/retention/sweep", data={"csrf": token}, follow_redirects=False)
        assert proposed.status_code == 303
        assert store.exists(due.sha256)  # nothing goes before a second person approves
        again = client.post("/retention/sweep", data={"csrf": token})  # the due item is in a batch already
        assert again.status_code == 200 and "没有到期需要销毁的记录" in again.text
        client.cookies.clear()

        web_login(client, "supervisor")
        page = client.get("/retention")
        assert "批准并销毁" in page.text
        token = form_token(page.text)
        unconfirmed = client.post("/retention/batches/1/approve", data={"csrf": token})
        assert unconfirmed.status_code == 400 and "请勾选确认框，确认销毁批次 1" in unconfirmed.text
        approved = client.post("/retention/batches/1/approve", data={"csrf": token, "confirm": "yes"},
                               follow_redirects=False)
        assert approved.status_code == 303
        assert "销毁批次 1 已批准并执行。" in client.get(approved.headers["location"]).text
        assert not store.exists(due.sha256) and store.exists(held.sha256)
        with Session(engine) as session:
            batch = session.get(DisposalBatch, 1)
            assert batch is not None
            assert (batch.status, batch.created_by, batch.approved_by) == ("done", "clerk", "supervisor")
            assert batch.record_key and batch.record_key in client.get("/retention").text
        client.cookies.clear()

        web_login(client, "admin")
        token = form_token(client.get("/retention").text)
        twice = client.post("/retention/batches/1/approve", data={"csrf": token, "confirm": "yes"})
        assert twice.status_code == 400
        assert "销毁批次 1 状态为“已完成”；只有待批准的批次才能批准" in html.unescape(twice.text)
        english = client.post("/retention/batches/1/approve?lang=en", data={"csrf": token, "confirm": "yes"})
        assert english.status_code == 400 and "disposal batch 1 is 'done'; only a batch awaiting approval can be " \
            "approved" in html.unescape(english.text)


def test_disposal_needs_the_signing_key(engine, store, tmp_path):
    with Session(engine) as session:
        due = archived(session, store, tmp_path, 1, retain_until=timedelta(seconds=2),
                       captured_end=datetime(2025, 1, 1, tzinfo=UTC))
        wait_past(due.retain_until)
    add_web_users(engine, {"clerk": "clerk"})
    with TestClient(create_app(WebConfig(engine=engine, store=store, policy=POLICY))) as client:
        web_login(client, "clerk")
        refused = client.post("/retention/sweep", data={"csrf": form_token(client.get("/retention").text)})
        assert refused.status_code == 503 and "no signing key" in refused.json()["error"]
    with Session(engine) as session:
        assert session.exec(select(DisposalBatch)).all() == []
