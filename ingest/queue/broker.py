"""Choose the dramatiq broker: Redis or RabbitMQ by URL, or in-process (the embedded default).

How a dead worker's messages come back (measured in bench/requeue_after_kill.py):

* Redis: a worker's unacknowledged messages sit in its own ack set. Every broker command stamps the caller's
  heartbeat; with probability `maintenance_chance` / 1,000,000 a command on queue Q also moves the ack sets of
  workers silent for `heartbeat_timeout` back onto Q. An idle worker polls each queue about once a second, so
  a killed worker's messages return after `heartbeat_timeout` plus on average 10⁶ / `maintenance_chance` polls
  of a surviving worker on that queue. dramatiq's defaults (60 s, 1000) make that ~17 minutes on average; ours
  (EVIDENCE_REDIS_HEARTBEAT_S 30, EVIDENCE_REDIS_MAINTENANCE_CHANCE 50000) ~50 s.
* RabbitMQ: the server redelivers a consumer's unacknowledged messages as soon as its connection drops (a
  killed process: at once, the kernel closes the socket); nothing to configure.
"""
from __future__ import annotations

import logging

from dramatiq import Broker
from dramatiq.brokers.stub import StubBroker

from ingest.config import Settings

__all__ = ["DEFAULT_HEARTBEAT_TIMEOUT_MS", "DEFAULT_MAINTENANCE_CHANCE", "make_broker", "make_broker_for"]

#: Our defaults (ingest.config: EVIDENCE_REDIS_HEARTBEAT_S, EVIDENCE_REDIS_MAINTENANCE_CHANCE), not dramatiq's.
DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000
DEFAULT_MAINTENANCE_CHANCE = 50_000
_MAINTENANCE_SCALE = 1_000_000


class _SecondWorkerIsFine(logging.Filter):
    """Drop dramatiq's "middleware of the same type twice" warning for its own per-Worker middleware.

    Every dramatiq.Worker adds one `_WorkerMiddleware` (it starts that worker's consumers for queues declared
    later, filtered by the worker's own queue list). A process running two Workers on one broker (archive and
    derived media, each with its own threads) therefore adds two, as intended; the warning at every start
    said nothing an operator could act on. Any other duplicate middleware is still reported.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("You're adding a middleware of the same type twice"):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and type(args[0]).__name__ == "_WorkerMiddleware")


def _quiet_second_worker(broker: Broker) -> Broker:
    logger = broker.logger
    if not any(isinstance(f, _SecondWorkerIsFine) for f in logger.filters):
        logger.addFilter(_SecondWorkerIsFine())
    return broker


def make_broker(url: str, *, namespace: str = "evidence", heartbeat_timeout_ms: int = DEFAULT_HEARTBEAT_TIMEOUT_MS,
                maintenance_chance: int = DEFAULT_MAINTENANCE_CHANCE) -> Broker:
    """A broker for *url*; an empty URL gives an in-process StubBroker run by an in-process worker.

    *heartbeat_timeout_ms* and *maintenance_chance* (per million commands) set when a Redis broker requeues a
    dead worker's messages (see the module docstring); RabbitMQ redelivers on its own and ignores them.
    """
    if heartbeat_timeout_ms <= 0:
        raise ValueError(f"heartbeat_timeout_ms must be positive, not {heartbeat_timeout_ms}")
    if not 0 < maintenance_chance <= _MAINTENANCE_SCALE:
        raise ValueError(f"maintenance_chance must be in 1..{_MAINTENANCE_SCALE}, not {maintenance_chance}")
    if url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        return _quiet_second_worker(RedisBroker(  # type: ignore[no-untyped-call]
            url=url, namespace=namespace, heartbeat_timeout=heartbeat_timeout_ms,
            maintenance_chance=maintenance_chance))
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return _quiet_second_worker(RabbitmqBroker(url=url, confirm_delivery=True))
    broker = StubBroker()
    broker.emit_after("process_boot")
    return _quiet_second_worker(broker)


def make_broker_for(settings: Settings) -> Broker:
    """The broker *settings* configure: EVIDENCE_BROKER_URL, EVIDENCE_QUEUE_NAMESPACE, EVIDENCE_REDIS_HEARTBEAT_S,
    EVIDENCE_REDIS_MAINTENANCE_CHANCE. Every command that talks to the queue should build its broker here."""
    return make_broker(settings.broker_url, namespace=settings.queue_namespace,
                       heartbeat_timeout_ms=max(1, round(settings.redis_heartbeat_s * 1000)),
                       maintenance_chance=settings.redis_maintenance_chance)
