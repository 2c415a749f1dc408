"""A station's health: Prometheus gauges and alarms on its own endpoint, the broker probe, and liveness.

`station watch` owns one `StationMetrics`. Its ingest threads report what happens as it happens (`failure`,
`bytes_copied`), the outbox relay reports each attempt (`relay_result`), and the main loop calls `refresh` every
rescan period to read what the catalogue and the broker hold for this station. `render` answers GET /metrics;
`alarms` goes into the station status JSON. Every alarm kind always has a value (1 raised, 0 clear), decided afresh
each time its condition is evaluated, so a gauge never keeps an old value after the condition clears; when the
catalogue cannot be read, only `catalogue_unreachable` changes and the catalogue's figures keep their last known
values (they are not known to be wrong, only not re-read).

`liveness` is the reader's side: a status whose heartbeat is older than three beats is a station that died without
saying so (SIGKILL, power loss), however it last described itself.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from catalog import CatalogUnavailable
from catalog import outbox as catalog_outbox
from catalog.alarms import staged_overdue, station_backlog
from catalog.errors import PolicyInvalid
from catalog.policy_adoption import PolicyTerms, adopted_policy, policy_differences
from catalog.types import utcnow
from ingest.config import Settings
from ingest.errors import first_line
from ingest.queue.actors import queue_names
from ingest.station.partial_copies import PartialCopies, partial_copies

__all__ = ["ALARM_KINDS", "BYTES_WINDOW_S", "PROBE_TIMEOUT_S", "STAGES", "BrokerProbe", "StationMetrics",
           "liveness", "probe_broker", "queue_depths"]

logger = logging.getLogger(__name__)

#: The alarm kinds (`evidence_alarm{kind=...}` and the status JSON's "alarms").
ALARM_KINDS = ("broker_unreachable", "catalogue_unreachable", "staged_overdue", "outbox_backlog", "partial_copy_idle",
               "retention_terms_differ")
#: Failure stages shown at 0 from the start, so `increase()` sees the first failure (others appear when they occur).
STAGES = ("copy", "describe", "catalogue", "archive", "manifest", "device")
#: `evidence_ingest_bytes_per_second` is the bytes copied in this many seconds, divided by it.
BYTES_WINDOW_S = 10.0
#: Socket timeouts of the broker probe: a dead or black-holed broker never holds up the station longer.
PROBE_TIMEOUT_S = 2.0
#: `outbox_backlog` is raised when the oldest unsent outbox message is older than this (default of `refresh`).
OUTBOX_BACKLOG_ALARM_S = 300.0
#: `partial_copy_idle`: a partial copy not written for this long (default of `refresh`; EVIDENCE_PARTIAL_ALARM_S).
PARTIAL_ALARM_S = 86400.0

#: The broker probe `refresh` calls: (reachable, messages waiting per queue name).
BrokerProbe = Callable[[], tuple[bool, dict[str, int]]]

#: Errors that mean "the catalogue cannot be read now" (a refused connection is an OperationalError; a catalogue
#: left unmigrated by a start during an outage fails the same way, and equally needs a person).
_CATALOGUE_DOWN = (SQLAlchemyError, CatalogUnavailable)


def liveness(status: dict[str, Any], now: datetime, heartbeat_s: float) -> dict[str, Any]:
    """*status* (as read from station-status.json) with "stale": a station whose "heartbeat_at" is missing,
    unreadable or older than 3 × *heartbeat_s* at *now* is not running, whatever "running" it last wrote. Pure; an
    empty status (the station never ran) is returned as it is."""
    if not status:
        return dict(status)
    beat: datetime | None = None
    try:
        beat = datetime.fromisoformat(str(status["heartbeat_at"]).replace("Z", "+00:00"))
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
    except (KeyError, ValueError, TypeError):
        beat = None
    stale = beat is None or now - beat > timedelta(seconds=3 * heartbeat_s)
    result = dict(status, stale=stale)
    if stale:
        result["running"] = False
    return result


# -- the broker probe ------------------------------------------------------------------------------------
def queue_depths(settings: Settings, *, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, int]:
    """Messages waiting in this station's queues (its archive queue, the shared derive and verify queues), each with
    its delay queue. Raises (redis / pika / OSError) when the broker does not answer within *timeout_s*; {} when no
    broker is configured (the in-process broker keeps nothing between runs)."""
    names = sorted(set(queue_names(settings.queue_namespace, settings.station).values()))
    url = settings.broker_url
    if url.startswith(("redis://", "rediss://")):
        return _redis_depths(url, settings.queue_namespace, names, timeout_s)
    if url.startswith(("amqp://", "amqps://")):
        return _rabbitmq_depths(url, names, timeout_s)
    return {}


def _redis_depths(url: str, namespace: str, names: list[str], timeout_s: float) -> dict[str, int]:
    """dramatiq's RedisBroker keeps a queue as the list `<namespace>:<queue>` of message ids (its lua `enqueue`
    RPUSHes there) and delayed messages in the list `<namespace>:<queue>.DQ`; messages a worker holds are in its
    ack set and are not counted (they are not waiting)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                  retry=Retry(NoBackoff(), 0))
    try:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(f"{namespace}:{name}")
            pipe.llen(f"{namespace}:{name}.DQ")
        counts = pipe.execute()
    finally:
        client.close()
    return {name: int(counts[2 * i]) + int(counts[2 * i + 1]) for i, name in enumerate(names)}


_probing = threading.local()
#: pika logs every failed connection at ERROR with a traceback; a probe's failure is reported by the gauges instead.
_PIKA_LOGGERS = ("pika.adapters.utils.connection_workflow", "pika.adapters.utils.io_services_utils",
                 "pika.adapters.blocking_connection")


class _NotWhileProbing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_probing, "active", False)


_PIKA_FILTER = _NotWhileProbing()


def _quiet_pika() -> None:
    """Drop pika's connection errors logged by a probing thread (other threads' pika logs are kept)."""
    for name in _PIKA_LOGGERS:
        found = logging.getLogger(name)
        if _PIKA_FILTER not in found.filters:
            found.addFilter(_PIKA_FILTER)


def _rabbitmq_depths(url: str, names: list[str], timeout_s: float) -> dict[str, int]:
    """A passive queue_declare answers a queue's ready message count (RabbitmqBroker's queue and its `.DQ`); a queue
    not declared yet (404, which closes the channel) holds 0."""
    import pika
    import pika.exceptions

    params = pika.URLParameters(url)
    params.socket_timeout = timeout_s
    params.stack_timeout = timeout_s
    params.blocked_connection_timeout = timeout_s
    params.connection_attempts = 1
    params.retry_delay = 0
    _quiet_pika()
    _probing.active = True
    try:
        connection = pika.BlockingConnection(params)
    finally:
        _probing.active = False
    try:
        depths: dict[str, int] = {}
        channel = connection.channel()
        for name in names:
            depths[name] = 0
            for queue in (name, f"{name}.DQ"):
                try:
                    depths[name] += int(channel.queue_declare(queue=queue, passive=True).method.message_count)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = connection.channel()
        return depths
    finally:
        connection.close()


def probe_broker(settings: Settings, *, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, dict[str, int]]:
    """(reachable, depths) for `StationMetrics.refresh`: never raises; (True, {}) when no broker is configured."""
    if not settings.broker_url:
        return True, {}
    try:
        return True, queue_depths(settings, timeout_s=timeout_s)
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, the broker did not answer
        logger.debug("Broker probe failed: %s", exc)
        return False, {}


# -- the metrics ----------------------------------------------------------------------------------------
class StationMetrics:
    """The gauges of one station (label station=<code>) in a registry of their own, and its alarms."""

    def __init__(self, station: str, *, broker_configured: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.station = station
        self.broker_configured = broker_configured
        self._clock = clock
        self._lock = threading.RLock()
        self._bytes: deque[tuple[float, int]] = deque()
        self._raised: dict[str, dict[str, Any]] = {}  # kind -> the alarm's JSON (with "since")
        self._relay_error: str | None = None
        self._probe_reachable = True
        self._outbox_pending = 0
        self._held_partial: PartialCopies | None = None
        self.registry = registry = CollectorRegistry()
        labels = ["station"]

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels + list(extra), registry=registry)

        def own(name: str, doc: str) -> Gauge:  # a gauge of this station alone
            return gauge(name, doc).labels(station)

        own("evidence_station_up", "1 while the station process answers").set(1)
        self._heartbeat = own("evidence_station_heartbeat_timestamp_seconds",
                              "Unix time of the station main loop's last beat")
        self._outbox = own("evidence_outbox_pending_messages",
                           "Outbox messages of this station not yet handed to the broker")
        self._outbox_age = own("evidence_outbox_oldest_age_seconds",
                               "Age of this station's oldest unsent outbox message (0: none)")
        self._broker = own("evidence_broker_reachable", "1 when the broker answers (or none is configured), 0 when not")
        self._catalogue = own("evidence_catalogue_reachable", "1 when the catalogue answers, 0 when not")
        self._queue = gauge("evidence_queue_depth",
                            "Messages waiting in a queue this station uses (with its delay queue)", ("queue",))
        self._staged = own("evidence_staged_recordings", "This station's recordings still staged (not in WORM storage)")
        self._staged_age = own("evidence_staged_oldest_age_seconds",
                               "Age of this station's oldest staged recording (0: none)")
        self._docks = own("evidence_dock_sessions_open", "This station's dock sessions not yet ended")
        self._partial = own("evidence_partial_copies",
                            "Resumable partial copies in this station's staging (*.part: a copy cut short)")
        self._partial_bytes = own("evidence_partial_copy_bytes", "Bytes held in this station's partial copies")
        self._partial_idle = own("evidence_partial_copy_oldest_idle_seconds",
                                 "Seconds since the least recently written partial copy was written (0: none)")
        self._media_pending = own("evidence_media_work_pending",
                                  "Archived recordings still without their thumbnail, proxy or decode check after "
                                  "this station's last render pass (counted up to 1,000)")
        self._media_failures = Counter("evidence_media_work_failures",
                                       "Thumbnails, proxies and decode checks this process recorded as impossible "
                                       "for the media", labels, registry=registry).labels(station)
        self._alarm = gauge("evidence_alarm", "1 while the alarm is raised, 0 when clear", ("kind",))
        self._failures = Counter("evidence_ingest_failures", "Ingest failures in this process, by stage",
                                 [*labels, "stage"], registry=registry)
        self._bytes_total = Counter("evidence_ingest_bytes", "Bytes copied off devices by this process", labels,
                                    registry=registry).labels(station)
        gauge("evidence_ingest_bytes_per_second",
              f"Bytes copied per second over the last {BYTES_WINDOW_S:g} s").labels(station).set_function(self._rate)
        for stage in STAGES:
            self._failures.labels(station, stage)
        for kind in ALARM_KINDS:
            self._alarm.labels(station, kind).set(0)
        self._broker.set(1)
        self._catalogue.set(1)
        self.heartbeat()

    # -- what the station reports -----------------------------------------------------------------------
    def heartbeat(self, now: datetime | None = None) -> None:
        """The main loop is alive (call it every tick, or with every status write)."""
        self._heartbeat.set((now or utcnow()).timestamp())

    def failure(self, stage: str) -> None:
        """One ingest failure at *stage* (copy, describe, catalogue, archive, manifest, device, ...)."""
        self._failures.labels(self.station, stage or "unknown").inc()

    def bytes_copied(self, n: int) -> None:
        if n <= 0:
            return
        self._bytes_total.inc(n)
        with self._lock:
            self._bytes.append((self._clock(), n))
            self._trim()

    def _trim(self) -> None:
        cutoff = self._clock() - BYTES_WINDOW_S
        while self._bytes and self._bytes[0][0] < cutoff:
            self._bytes.popleft()

    def _rate(self) -> float:
        with self._lock:
            self._trim()
            return sum(n for _, n in self._bytes) / BYTES_WINDOW_S

    def media_work(self, *, pending: int, failed: int) -> None:
        """After a render pass: *pending* recordings still with media work, *failed* kinds recorded as impossible."""
        self._media_pending.set(pending)
        if failed > 0:
            self._media_failures.inc(failed)

    def relay_result(self, ok: bool, error: str | None = None, *, waiting: int | None = None) -> None:
        """The outbox relay's last attempt: a failure marks the broker unreachable (and raises broker_unreachable
        while messages wait) until a relay succeeds. *waiting*: messages still unsent after the attempt."""
        with self._lock:
            self._relay_error = None if ok else (error or "the relay failed")
            if waiting is not None:
                self._outbox_pending = waiting
            self._decide_broker()

    # -- what the station reads -------------------------------------------------------------------------
    def partial(self, staging: Path, *, idle_alarm_s: float = PARTIAL_ALARM_S, now: datetime | None = None) -> None:
        """Count the partial copies in *staging* (ingest.station.partial_copies) and decide `partial_copy_idle`:
        raised while one has not been written for more than *idle_alarm_s*. Needs neither catalogue nor broker."""
        now = now or utcnow()
        try:
            held = partial_copies(staging, now=now.timestamp())
        except OSError as exc:
            logger.warning("Partial copies not counted (cannot list %s: %s); figures kept.", staging, exc)
            return
        self._partial.set(held.count)
        self._partial_bytes.set(held.size_bytes)
        self._partial_idle.set(held.oldest_idle_s)
        with self._lock:
            self._held_partial = held
        self._set("partial_copy_idle", held.idle_over(idle_alarm_s), held.message(staging, idle_alarm_s), now,
                  held.as_json())

    def partial_copies(self) -> dict[str, Any] | None:
        """The last count of partial copies, for the status JSON (None before the first)."""
        with self._lock:
            return None if self._held_partial is None else self._held_partial.as_json()

    def refresh(self, engine: Engine, *, staged_alarm_s: float,
                outbox_backlog_alarm_s: float = OUTBOX_BACKLOG_ALARM_S, broker_probe: BrokerProbe | None = None,
                staging: Path | None = None, partial_alarm_s: float = PARTIAL_ALARM_S,
                terms: PolicyTerms | None = None, now: datetime | None = None) -> None:
        """Read this station's figures from its staging (with *staging*: `partial`), the broker and the catalogue
        and decide every alarm (with *terms*, this station's retention terms: `retention_terms_differ`). Never raises
        for an unreachable catalogue or broker: that is what the alarms are for."""
        now = now or utcnow()
        if staging is not None:
            self.partial(staging, idle_alarm_s=partial_alarm_s, now=now)
        if broker_probe is not None:
            reachable, depths = broker_probe()
            with self._lock:
                self._probe_reachable = reachable
            for queue, depth in depths.items():
                self._queue.labels(self.station, queue).set(depth)
        try:
            with Session(engine) as session:
                held = station_backlog(session, self.station)
                waiting = catalog_outbox.backlog(session, station=self.station)
                overdue = staged_overdue(session, now=now, older_than_s=staged_alarm_s, station=self.station)
                if terms is not None:
                    self._decide_terms(session, terms, now)
        except _CATALOGUE_DOWN as exc:
            self._set("catalogue_unreachable", True,
                      f"the catalogue does not answer: {first_line(exc, None)}; copies are staged and journaled "
                      "until it does; check the database server and the network to it", now)
            self._catalogue.set(0)
            with self._lock:
                self._decide_broker(now)
            return
        self._catalogue.set(1)
        self._set("catalogue_unreachable", False, "", now)
        self._staged.set(held.staged)
        self._staged_age.set(held.staged_age_s(now))
        self._docks.set(held.docks_open)
        self._outbox.set(waiting.count)
        age = waiting.age_s(now)
        self._outbox_age.set(age)
        self._set("staged_overdue", overdue.raised, overdue.message(), now, overdue.as_json())
        self._set("outbox_backlog", waiting.count > 0 and age > outbox_backlog_alarm_s,
                  f"{waiting.count} archive message(s) not handed to the broker, the oldest for {age:.0f} s "
                  f"(over {outbox_backlog_alarm_s:g} s); check the broker and this station's log", now,
                  {"count": waiting.count, "oldest_age_s": round(age, 1)})
        with self._lock:
            self._outbox_pending = waiting.count
            self._decide_broker(now)

    def _decide_terms(self, session: Session, terms: PolicyTerms, now: datetime) -> None:
        """`retention_terms_differ`: raised while the catalogue's adopted retention terms are not this station's (it
        was left running after an administrator adopted new ones: it decides by the adopted terms, and should be
        restarted with them), or while the adoption event cannot be read (edited behind the application's back)."""
        try:
            adopted = adopted_policy(session)
        except PolicyInvalid as exc:  # (adopted_policy states every unreadable adoption so)
            self._set("retention_terms_differ", True, f"the adopted retention policy cannot be read: {exc}; this "
                      "station decides by its own terms until it is put right (`evidence verify` names the edit)", now)
            return
        differ = adopted is not None and adopted.terms != terms
        self._set("retention_terms_differ", differ, "" if not differ or adopted is None else (
            f"this station runs with retention terms {terms.fingerprint[:12]}, but the catalogue adopted "
            f"{adopted.terms.fingerprint[:12]} (custody event {adopted.event_id}, {adopted.by}, "
            f"{adopted.at.isoformat(timespec='seconds')}): it decides by the adopted terms; restart the station and "
            f"its worker with them ({'; '.join(policy_differences(adopted.terms, terms))})"), now,
            None if adopted is None else {"adopted": adopted.terms.fingerprint, "here": terms.fingerprint})

    def refresh_forever(self, engine: Engine, stop: threading.Event, *, every_s: float, staged_alarm_s: float,
                        outbox_backlog_alarm_s: float = OUTBOX_BACKLOG_ALARM_S,
                        broker_probe: BrokerProbe | None = None, staging: Path | None = None,
                        partial_alarm_s: float = PARTIAL_ALARM_S, terms: PolicyTerms | None = None) -> None:
        """`refresh` every *every_s* until *stop* is set: run it on a thread of its own, so a slow catalogue or
        broker (each read can take its connect timeout) never delays the main loop's heartbeat."""
        while True:
            try:
                self.refresh(engine, staged_alarm_s=staged_alarm_s, outbox_backlog_alarm_s=outbox_backlog_alarm_s,
                             broker_probe=broker_probe, staging=staging, partial_alarm_s=partial_alarm_s,
                             terms=terms)
            except Exception:
                logger.exception("Refreshing the station metrics failed.")
            if stop.wait(every_s):
                return

    def _decide_broker(self, now: datetime | None = None) -> None:
        """Broker reachability from the probe and the relay together (caller holds the lock)."""
        if not self.broker_configured:
            self._broker.set(1)
            self._set("broker_unreachable", False, "", now or utcnow())
            return
        reachable = self._probe_reachable and self._relay_error is None
        self._broker.set(1 if reachable else 0)
        why = self._relay_error or "the broker probe got no answer"
        self._set("broker_unreachable", not reachable and self._outbox_pending > 0,
                  f"the broker does not answer ({why}) and {self._outbox_pending} archive message(s) wait in the "
                  "outbox; ingest goes on and they are sent when it returns; check the broker", now or utcnow(),
                  {"waiting": self._outbox_pending})

    def _set(self, kind: str, raised: bool, message: str, now: datetime, extra: dict[str, Any] | None = None) -> None:
        """Decide alarm *kind* now: the gauge is written either way (1 or 0), the JSON kept only while raised."""
        with self._lock:
            self._alarm.labels(self.station, kind).set(1 if raised else 0)
            before = self._raised.pop(kind, None)
            if not raised:
                if before is not None:
                    logger.warning("Alarm %s cleared.", kind)
                return
            alarm = dict(extra or {})
            alarm.update(kind=kind, raised=True, message=message,
                         since=before["since"] if before else now.isoformat(timespec="seconds"))
            self._raised[kind] = alarm
        if before is None:
            logger.error("ALARM %s: %s", kind, message)

    # -- what the station shows -------------------------------------------------------------------------
    def alarms(self) -> list[dict[str, Any]]:
        """The raised alarms, in ALARM_KINDS order, for the status JSON."""
        with self._lock:
            raised = dict(self._raised)
        return [dict(raised[kind]) for kind in ALARM_KINDS if kind in raised]

    def render(self) -> bytes:
        """Prometheus text exposition of every gauge."""
        return generate_latest(self.registry)
