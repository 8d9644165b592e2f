"""Publishing events to Kafka with delivery confirmation, through either client library.

`publish()` queues; `confirm()` waits until the broker acknowledged everything queued so far and
raises DeliveryFailed if anything was not. Both clients are idempotent with acks=all.
"""

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pipeline_runtime.kafka_admin import ensure_topics, require_kafka, resilience_warnings, topic_replication
from pipeline_runtime.kafka_clients import kafka_python_config, librdkafka_config
from pipeline_runtime.settings import KafkaSettings

if TYPE_CHECKING:
    from producers.settings import ProducerSettings

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """Kafka did not confirm some events; nothing after them is recorded as published."""


class Publisher(Protocol):
    def publish(self, topic: str, key: str, value: bytes) -> None: ...
    def confirm(self, timeout: float) -> int: ...
    def close(self) -> None: ...


class ConfluentPublisher:
    def __init__(self, settings: KafkaSettings) -> None:
        from confluent_kafka import Producer  # noqa: PLC0415

        self.producer = Producer(
            {
                **librdkafka_config(settings),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
                "message.timeout.ms": 120_000,
                "logger": logging.getLogger("librdkafka"),
            }
        )
        self.confirmed = 0
        self.queued = 0
        self.errors: list[str] = []

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is None:
            self.confirmed += 1
        else:
            self.errors.append(str(error))

    def publish(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key.encode(), value=value, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then try again
                self.producer.poll(0.5)
        self.queued += 1
        if self.queued % 1000 == 0:  # serve delivery reports now and then (flush serves the rest)
            self.producer.poll(0)

    def confirm(self, timeout: float) -> int:
        remaining = self.producer.flush(timeout)
        if remaining or self.errors:
            errors, self.errors = self.errors, []
            raise DeliveryFailed(f"Kafka did not confirm {remaining + len(errors)} event(s): {errors[:1] or 'timeout'}")
        confirmed, self.confirmed = self.confirmed, 0
        return confirmed

    def close(self) -> None:
        self.producer.flush(10)


class KafkaPythonPublisher:
    def __init__(self, settings: KafkaSettings) -> None:
        from kafka import KafkaProducer  # noqa: PLC0415

        self.producer = KafkaProducer(
            **kafka_python_config(settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=20,
            retries=2**31 - 1,
            delivery_timeout_ms=120_000,
        )
        self.pending: list[Any] = []

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.pending.append(self.producer.send(topic, key=key.encode(), value=value))

    def confirm(self, timeout: float) -> int:
        self.producer.flush(timeout)
        pending, self.pending = self.pending, []
        failed = [f for f in pending if not f.is_done or f.failed()]
        if failed:
            first = failed[0].exception if failed[0].is_done else "timeout"
            raise DeliveryFailed(f"Kafka did not confirm {len(failed)} event(s): {first}")
        return len(pending)

    def close(self) -> None:
        self.producer.flush(10)
        self.producer.close(10)


PUBLISHERS: dict[str, Callable[[KafkaSettings], Publisher]] = {
    "confluent-kafka": ConfluentPublisher,
    "kafka-python": KafkaPythonPublisher,
}


def open_publisher(settings: "ProducerSettings") -> Publisher:
    """Check the cluster answers (a clear error within the Kafka timeout), create missing topics, open the
    configured client."""
    started = time.monotonic()
    servers, timeout, config = (
        settings.kafka_bootstrap_servers,
        settings.kafka_timeout_seconds,
        librdkafka_config(settings),
    )
    require_kafka(config, timeout)
    ensure_topics(
        config,
        settings.topics,
        partitions=settings.topic_partitions,
        timeout=timeout,
        replication_factor=settings.kafka_replication_factor,
    )
    for warning in resilience_warnings(*topic_replication(config, settings.topics, timeout)):
        log.warning(warning)
    publisher: Publisher = PUBLISHERS[settings.kafka_client](settings)
    log.info("publishing with %s to %s (ready in %.1fs)", settings.kafka_client, servers, time.monotonic() - started)
    return publisher
