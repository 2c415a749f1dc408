"""The web app's /metrics says what the catalogue holds at the moment of the scrape: a state whose count drops to
zero reads 0 (it used to keep its old count: `staged` 7 with none in the database), and the archive-wide backlog
figures (outbox, staged, ingest failures) follow the rows."""
from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog import Recording
from catalog import outbox as catalog_outbox
from catalog.custody import CustodyKind, append_event
from catalog.models import OutboxMessage
from catalog.types import utcnow
from tests.webhelpers import web_login


def _scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def _set_state(engine, state: str, *, hours_ago: float = 0) -> None:
    with Session(engine) as session:
        session.exec(update(Recording).values(state=state,
                                              ingested_at=utcnow() - timedelta(hours=hours_ago)))
        session.commit()


def test_a_state_that_drops_to_zero_reads_zero(web_site):
    client, engine = web_site
    assert web_login(client, "auditor").status_code == 303
    first = _scrape(client)
    # Every state is present from the first scrape, the absent ones at 0
    assert first[("evidence_recordings", (("state", "archived"),))] == 3
    for state in ("staged", "verified", "disposed"):
        assert first[("evidence_recordings", (("state", state),))] == 0

    # When every recording becomes staged, then archived again
    _set_state(engine, "staged", hours_ago=2)
    staged = _scrape(client)
    assert staged[("evidence_recordings", (("state", "staged"),))] == 3
    assert staged[("evidence_recordings", (("state", "archived"),))] == 0
    assert staged[("evidence_catalogue_staged_recordings", ())] == 3
    assert 2 * 3600 - 60 < staged[("evidence_catalogue_staged_oldest_age_seconds", ())] < 2 * 3600 + 60
    assert staged[("evidence_staged_overdue_recordings", ())] == 3

    _set_state(engine, "archived")
    after = _scrape(client)
    # Then the scrape says 0 staged (the old gauge kept 3)
    assert after[("evidence_recordings", (("state", "staged"),))] == 0
    assert after[("evidence_recordings", (("state", "archived"),))] == 3
    assert after[("evidence_catalogue_staged_recordings", ())] == 0
    assert after[("evidence_catalogue_staged_oldest_age_seconds", ())] == 0
    assert after[("evidence_staged_overdue_recordings", ())] == 0


def test_outbox_backlog_and_failures_follow_the_catalogue(web_site):
    client, engine = web_site
    assert web_login(client, "auditor").status_code == 303
    empty = _scrape(client)
    assert empty[("evidence_catalogue_outbox_pending_messages", ())] == 0
    assert empty[("evidence_catalogue_outbox_oldest_age_seconds", ())] == 0
    assert not [k for k in empty if k[0] == "evidence_catalogue_ingest_failures_24h"]

    now = utcnow()
    with Session(engine) as session:
        ids = [r for r in session.exec(select(Recording.id).order_by(col(Recording.id))) if r is not None]
        catalog_outbox.add(session, ids[0], station="station-1", now=now - timedelta(minutes=30), reason="ingest")
        catalog_outbox.add(session, ids[1], station="station-2", now=now - timedelta(minutes=5), reason="ingest")
        append_event(session, CustodyKind.INGEST_FAILED, actor="station:s1", details={"stage": "copy"})
        append_event(session, CustodyKind.INGEST_FAILED, actor="station:s1", details={"stage": "copy"})
        append_event(session, CustodyKind.INGEST_FAILED, actor="worker:s1", recording_id=ids[2],
                     details={"stage": "archive"})
        append_event(session, CustodyKind.INGEST_FAILED, actor="station:s1", details={"reason": "no stage"})
        append_event(session, CustodyKind.INGEST_FAILED, actor="station:s1", details={"stage": "describe"},
                     at=now - timedelta(hours=25))  # older than the window
        session.commit()
    busy = _scrape(client)
    assert busy[("evidence_catalogue_outbox_pending_messages", ())] == 2
    assert 30 * 60 - 60 < busy[("evidence_catalogue_outbox_oldest_age_seconds", ())] < 30 * 60 + 60
    failures = {dict(k[1])["stage"]: v for k, v in busy.items() if k[0] == "evidence_catalogue_ingest_failures_24h"}
    assert failures == {"copy": 2, "archive": 1, "unknown": 1}

    with Session(engine) as session:
        catalog_outbox.mark_sent(session, list(session.exec(select(OutboxMessage))), now=utcnow())
        session.commit()
    sent = _scrape(client)
    assert sent[("evidence_catalogue_outbox_pending_messages", ())] == 0
    assert sent[("evidence_catalogue_outbox_oldest_age_seconds", ())] == 0


def test_metrics_still_need_a_user_or_the_token(web_site):
    client, _ = web_site
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 401
