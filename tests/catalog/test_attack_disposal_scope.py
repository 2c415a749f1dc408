"""Medium 5 (disposal) and Low: a supervisor limited to units cannot approve a disposal batch that holds recordings
of other units (web and `evidence retention approve`), refused naming the batch, the recordings outside their
scope and their scope; and `/retention` shows such a supervisor nothing of other units' recordings."""
from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from catalog import DisposalBatch, Officer
from catalog.models import Recording
from evidence.web import WebConfig, create_app
from tests.cli import run_cli, station_adopts_policy
from tests.helpers.retention import KEY, POLICY, archived, wait_past
from tests.webhelpers import add_web_users, form_token, web_login

OLD = datetime(2025, 1, 1, tzinfo=UTC)


def _due_in_two_units(engine, store, tmp_path) -> tuple[Recording, Recording]:
    """Two recordings due for disposal: one of an officer of unit U1 (一中队), one of unit U2 (二中队)."""
    with Session(engine, expire_on_commit=False) as session:
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
        rows = []
        for n, officer in ((1, "010203"), (2, "030405")):
            recording = archived(session, store, tmp_path, n, retain_until=timedelta(seconds=2),
                                 captured_end=OLD)
            recording.officer_number, recording.original_name = officer, f"U{n}-现场-{officer}.mp4"
            session.add(recording)
            session.commit()
            rows.append(recording)
        wait_past(*(r.retain_until for r in rows))
    return rows[0], rows[1]


def test_a_unit_supervisor_cannot_approve_a_batch_with_other_units_recordings(engine, store, settings, tmp_path):
    u1, u2 = _due_in_two_units(engine, store, tmp_path)
    add_web_users(engine, {"clerk": "clerk", "supervisor": "supervisor", "unit-2-supervisor": "supervisor"},
                  units={"unit-2-supervisor": ["U2"]})
    config = WebConfig(engine=engine, store=store, key=KEY, station="station-1", policy=POLICY)
    with TestClient(create_app(config)) as client:
        web_login(client, "clerk")
        assert client.post("/retention/sweep", data={"csrf": form_token(client.get("/retention").text)},
                           follow_redirects=False).status_code == 303
        client.cookies.clear()

        web_login(client, "unit-2-supervisor")
        page = client.get("/retention")
        assert page.status_code == 200
        text = html.unescape(page.text)
        assert u2.original_name in text
        assert u1.original_name not in text and "010203" not in text and f'href="/recordings/{u1.id}"' not in text
        assert "1 条不在您的单位范围内" in text and "批准并销毁" not in text and 'id="due">1<' in text
        refused = client.post("/retention/batches/1/approve", data={"csrf": form_token(page.text), "confirm": "yes"})
        assert refused.status_code == 400
        assert (f"销毁批次 1 含有超出 'unit-2-supervisor' 权限范围（单位 U2）的录像 {u1.id}；"
                "须由所辖单位涵盖该批次全部录像的人员批准") in html.unescape(refused.text)
        english = client.post("/retention/batches/1/approve?lang=en",
                              data={"csrf": form_token(page.text), "confirm": "yes"})
        assert (f"disposal batch 1 holds recording(s) {u1.id} outside the scope of 'unit-2-supervisor' (unit U2); "
                "an approver whose units cover every recording of the batch must approve it") \
            in html.unescape(english.text)
        assert store.exists(u1.sha256) and store.exists(u2.sha256)
        with Session(engine) as session:
            batch = session.get(DisposalBatch, 1)
            assert batch is not None and (batch.status, batch.approved_by) == ("awaiting_approval", None)

        # The same refusal from the command line, for the same user bound to this OS account.
        env = {"EVIDENCE_HOME": str(settings.home), "EVIDENCE_DATABASE_URL": settings.database_url}
        station_adopts_policy(env)
        result = run_cli(env, "retention", "approve", "1", "--by", "unit-2-supervisor")
        assert result.exit_code == 2
        assert f"disposal batch 1 holds recording(s) {u1.id} outside the scope of 'unit-2-supervisor' (unit U2)" \
            in result.output
        assert store.exists(u1.sha256) and store.exists(u2.sha256)
        client.cookies.clear()

        web_login(client, "supervisor")  # an agency-wide supervisor covers both units
        page = client.get("/retention")
        assert u1.original_name in html.unescape(page.text) and "不在您的单位范围内" not in page.text
        approved = client.post("/retention/batches/1/approve", data={"csrf": form_token(page.text), "confirm": "yes"},
                               follow_redirects=False)
        assert approved.status_code == 303
        assert not store.exists(u1.sha256) and not store.exists(u2.sha256)
