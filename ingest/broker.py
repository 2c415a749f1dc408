"""Choose the dramatiq broker: Redis or RabbitMQ by URL, or in-process (the embedded default)."""
from __future__ import annotations

from dramatiq import Broker
from dramatiq.brokers.stub import StubBroker

__all__ = ["make_broker"]


def make_broker(url: str, *, namespace: str = "evidence", heartbeat_timeout_ms: int = 60_000) -> Broker:
    """A broker for *url*; an empty URL gives an in-process StubBroker run by an in-process worker."""
    if url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, namespace=namespace, heartbeat_timeout=heartbeat_timeout_ms)  # type: ignore[no-untyped-call]
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, confirm_delivery=True)
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker
