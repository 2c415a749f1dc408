"""Recordings that never reach WORM storage raise an alarm everywhere a person looks: the station's status,
`evidence station status`, the web app's /health and statistics page, and a Prometheus gauge."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session

from catalog import Recording
from catalog.alarms import staged_overdue
from catalog.types import utcnow
from evidence.web import WebConfig, create_app
from ingest.pipeline import IngestOptions, ingest_folder
from storage import BackendUnavailable, LocalStore
from tests.cli import run_cli
from tests.conftest import running_station, wait_for
from tests.webhelpers import add_web_users, web_login

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


class _DownStore(LocalStore):
    """The real local store, unreachable."""

    def put_file(self, path, **kw):
        raise BackendUnavailable("local", "archive disk offline")


def _stage_and_age(samples, settings, engine, hours: float) -> list[int]:
    """Ingest while the archive is down (everything stays staged), then let *hours* pass."""
    report = ingest_folder(samples.sidecar_recorder, settings=settings, engine=engine,
                           store=_DownStore(settings.store_path), options=IngestOptions())
    ids = [r["id"] for r in report.recordings]
    assert {r["state"] for r in report.recordings} == {"staged"}
    with Session(engine) as session:
        session.exec(update(Recording).values(ingested_at=utcnow() - timedelta(hours=hours)))
        session.commit()
    return ids


def test_recordings_staged_too_long_raise_the_alarm_in_the_cli_and_the_web_app(samples, settings, engine):
    with Session(engine) as session:
        assert not staged_overdue(session, now=utcnow(), older_than_s=3600).raised
    ids = _stage_and_age(samples, settings, engine, hours=2)
    with Session(engine) as session:
        alarm = staged_overdue(session, now=utcnow(), older_than_s=3600)
        assert (alarm.count, sorted(alarm.recording_ids)) == (len(ids), sorted(ids))
        assert not staged_overdue(session, now=utcnow(), older_than_s=3 * 3600).raised

    env = {"EVIDENCE_HOME": str(settings.home), "EVIDENCE_DATABASE_URL": settings.database_url}
    status = json.loads(run_cli(env, "station", "status", "--json").output)
    assert [a["count"] for a in status["alarms"]] == [len(ids)]
    shown = run_cli(env, "station", "status").output
    assert f"ALARM {len(ids)} recording(s) still staged" in shown
    quiet = json.loads(run_cli({**env, "EVIDENCE_STAGED_ALARM_S": "36000"}, "station", "status", "--json").output)
    assert quiet["alarms"] == []

    add_web_users(engine, {"clerk": "clerk"})
    config = WebConfig(engine=engine, store=LocalStore(settings.store_path), staged_alarm_s=3600)
    with TestClient(create_app(config)) as client:
        health = client.get("/health").json()
        assert health["status"] == "alarm" and health["alarms"][0]["count"] == len(ids)
        # nobody signed in: how many and since when, not which recordings (a review read their ids here)
        assert "recording_ids" not in health["alarms"][0] and "ids " not in health["alarms"][0]["message"]
        web_login(client, "clerk")
        signed_in = client.get("/health").json()["alarms"][0]
        assert sorted(signed_in["recording_ids"]) == sorted(ids)
        metrics = client.get("/metrics").text
        assert f"evidence_staged_overdue_recordings {float(len(ids))}" in metrics
        assert 'id="staged-alarm"' in client.get("/stats").text


def test_the_running_station_shows_the_alarm_in_its_status(samples, station_settings, engine):
    ids = _stage_and_age(samples, station_settings, engine, hours=2)
    with running_station(station_settings) as service:
        wait_for(lambda: service.snapshot()["alarms"], 20, "the station's staged alarm")
        assert service.snapshot()["alarms"][0]["count"] == len(ids)
        wait_for(lambda: json.loads(station_settings.status_path.read_text(encoding="utf-8")).get("alarms"), 20,
                 "the alarm in station-status.json")
