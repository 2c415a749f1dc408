"""The queue: the broker (Redis, RabbitMQ or in-process), the actors that wrap plain functions, open_queue
(connection) that builds both for a command, the workers that run them, and the relay that hands the catalogue's
outbox to the broker."""
