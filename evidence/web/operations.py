"""What operators and their tools read: `/health` (liveness with the alarms), `/metrics` (Prometheus) and the
API description (`/api/openapi.json`, `/api/docs`).

/metrics and the API description are for a signed-in user or a scraper sending `Authorization: Bearer
<EVIDENCE_METRICS_TOKEN>`; /health is open (it says only whether the catalogue answers and what alarms).
Every figure comes from the catalogue (catalog.statistics, catalog.alarms, catalog.outbox).
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from sqlmodel import Session

from catalog import outbox as catalog_outbox
from catalog.access import user_scope
from catalog.alarms import failures_by_stage, staged_overdue
from catalog.device_alerts import alert_counts, device_alerts
from catalog.models import RecordingState
from catalog.statistics import check_catalogue, recordings_by_state, staged_backlog
from catalog.types import utcnow
from evidence.web.deps import DB, WebConfig, caller

__all__ = ["Metrics", "router"]

router = APIRouter()

#: How long a scrape reuses the recorder alerts counted for an earlier one (seconds).
DEVICE_ALERTS_EVERY_S = 60.0


@dataclass(frozen=True)
class Metrics:
    """One app's Prometheus registry and its instruments (each app has its own: tests build many)."""

    registry: CollectorRegistry
    requests_total: Counter
    recordings: Gauge
    staged_overdue: Gauge
    outbox_pending: Gauge
    outbox_age: Gauge
    staged_count: Gauge
    staged_age: Gauge
    failures: Gauge
    device_alerts: Gauge
    # (monotonic time, counts by kind) of the last alert reckoning: it reads every recorder's docks (seconds at
    # thousands of recorders), and alerts move by days, so a scrape reuses it for DEVICE_ALERTS_EVERY_S
    alerts_reckoned: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests_total=Counter("evidence_http_requests_total", "HTTP requests", ["method", "status"],
                                   registry=registry),
            recordings=Gauge("evidence_recordings", "Recordings in the catalogue", ["state"], registry=registry),
            staged_overdue=Gauge("evidence_staged_overdue_recordings",
                                 "Recordings still staged (not in WORM storage) longer than EVIDENCE_STAGED_ALARM_S",
                                 registry=registry),
            # Archive-wide figures from the catalogue (each station's own endpoint has the same per station, with
            # station="..." and without the `catalogue_` part of the name).
            outbox_pending=Gauge("evidence_catalogue_outbox_pending_messages",
                                 "Outbox messages of every station not yet handed to the broker", registry=registry),
            outbox_age=Gauge("evidence_catalogue_outbox_oldest_age_seconds",
                             "Age of the oldest unsent outbox message (0: none)", registry=registry),
            staged_count=Gauge("evidence_catalogue_staged_recordings",
                               "Recordings still staged (not in WORM storage), all stations", registry=registry),
            staged_age=Gauge("evidence_catalogue_staged_oldest_age_seconds",
                             "Age of the oldest staged recording, all stations (0: none)", registry=registry),
            failures=Gauge("evidence_catalogue_ingest_failures_24h",
                           "ingest_failed custody events in the last 24 hours, by stage", ["stage"],
                           registry=registry),
            device_alerts=Gauge("evidence_device_alerts", "Recorder alerts now, by kind (catalog.device_alerts)",
                                ["kind"], registry=registry))

    def refresh(self, session: Session, config: WebConfig) -> None:
        """Set every gauge afresh: a state no recording is in any more reads 0 (it kept its last count before),
        a failure stage with none left in the last 24 hours disappears."""
        now = utcnow()
        counts = recordings_by_state(session)
        for state in {s.value for s in RecordingState} | set(counts):
            self.recordings.labels(state).set(counts.get(state, 0))
        self.staged_overdue.set(staged_overdue(session, now=now, older_than_s=config.staged_alarm_s).count)
        waiting = catalog_outbox.backlog(session)
        self.outbox_pending.set(waiting.count)
        self.outbox_age.set(waiting.age_s(now))
        staged = staged_backlog(session)
        self.staged_count.set(staged.count)
        self.staged_age.set(staged.age_s(now))
        self.failures.clear()
        for stage, n in failures_by_stage(session, since=now - timedelta(hours=24)).items():
            self.failures.labels(stage).set(n)
        if not self.alerts_reckoned or time.monotonic() - self.alerts_reckoned[-1][0] > DEVICE_ALERTS_EVERY_S:
            self.alerts_reckoned[:] = [(time.monotonic(),
                                        alert_counts(device_alerts(session, config.device_rules, now)))]
        for kind, n in self.alerts_reckoned[-1][1].items():
            self.device_alerts.labels(kind).set(n)


def _bearer_ok(request: Request) -> bool:
    """Whether the request sends `Authorization: Bearer <EVIDENCE_METRICS_TOKEN>` (a token is configured)."""
    token_wanted: str = request.app.state.config.metrics_token
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return bool(token_wanted) and scheme.lower() == "bearer" and \
        secrets.compare_digest(token.strip().encode(), token_wanted.encode())


def operator(request: Request, session: Session, action: str | None = None) -> Response | None:
    """None when the caller may read operational data (/metrics, the API description): a signed-in user (whose
    roles allow *action*, when given: archive-wide figures are `statistics`), or `Authorization: Bearer
    <EVIDENCE_METRICS_TOKEN>` when a token is configured; else a 401 naming both (403 for a role)."""
    if _bearer_ok(request):
        return None
    sent = request.headers.get("authorization", "")
    who = caller(request, session)
    if who is not None:
        if action is None or who.may(action):
            return None
        return JSONResponse({"error": f"your roles ({', '.join(who.user.roles)}) do not allow {action}"},
                            status_code=403)
    why = "a wrong bearer token" if sent else "no session and no bearer token"
    return JSONResponse({"error": f"sign in, or send Authorization: Bearer <EVIDENCE_METRICS_TOKEN> ({why})"},
                        status_code=401, headers={"WWW-Authenticate": 'Bearer realm="evidence"'})


@router.get("/health", tags=["operations"])
def health(request: Request, session: DB) -> dict[str, Any]:
    """Liveness (200 while the catalogue answers) with the alarms a person must act on: `status` is `alarm`
    when recordings have waited in staging longer than EVIDENCE_STAGED_ALARM_S. Without a session or the metrics
    token the alarm says how many and since when, not which recordings (a review read staged ids here)."""
    config: WebConfig = request.app.state.config
    check_catalogue(session)
    alarm = staged_overdue(session, now=utcnow(), older_than_s=config.staged_alarm_s)
    # which recordings: for the metrics token and those who see archive-wide figures over the whole archive; anyone
    # else (a supervisor of some units too: a review read other units' staged ids here) how many, since when
    who = caller(request, session)
    names_them = _bearer_ok(request) or (who is not None and who.may("statistics") and user_scope(who.user).everything)
    shown = alarm.as_json(with_ids=names_them)
    return {"status": "alarm" if alarm.raised else "ok", "database": "ok", "store": config.store.name,
            "alarms": [shown] if alarm.raised else []}


@router.get("/api/openapi.json", include_in_schema=False)
def openapi_description(request: Request, session: DB) -> Response:
    return operator(request, session) or JSONResponse(request.app.openapi())


@router.get("/api/docs", include_in_schema=False)
def api_docs(request: Request, session: DB) -> Response:
    """Swagger UI over /api/openapi.json, served from the package's own copy (static/vendor/swagger-ui, from npm
    by scripts/vendor_npm.py): it works without internet access, under the same policy as every page."""
    if (refused := operator(request, session)) is not None:
        return refused
    page: Response = request.app.state.templates.TemplateResponse(request, "api_docs.html", {})
    return page


@router.get("/metrics", tags=["operations"], response_class=Response)
def metrics(request: Request, session: DB) -> Response:
    """Prometheus metrics, for a signed-in user or a scraper sending `Authorization: Bearer
    <EVIDENCE_METRICS_TOKEN>`. Every gauge is set afresh at each scrape: a state no recording is in any more
    reads 0 (it kept its last count before), a failure stage with none left in the last 24 hours disappears. The
    figures are archive-wide: a signed-in user's roles must allow `statistics` (an officer's do not)."""
    if (refused := operator(request, session, "statistics")) is not None:
        return refused
    figures: Metrics = request.app.state.metrics
    figures.refresh(session, request.app.state.config)
    return Response(generate_latest(figures.registry), media_type=CONTENT_TYPE_LATEST)
