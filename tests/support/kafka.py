"""Reading and writing raw Kafka records in tests."""

import json
import time
import uuid

from confluent_kafka import Producer as KafkaProducer


def read_topic(bootstrap_servers: str, topic: str, timeout: float = 20.0) -> list[dict]:  # type: ignore[type-arg]
    """Every event in a topic (all partitions), decoded; stops when the end is reached."""

    from confluent_kafka import Consumer, KafkaError

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = len(metadata.topics[topic].partitions) if topic in metadata.topics else 0
    consumer.subscribe([topic])
    events, finished = [], set()
    deadline = time.monotonic() + timeout
    try:
        while partitions and len(finished) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    finished.add(message.partition())
                continue
            key = message.key()
            events.append({"key": key.decode() if key else None, **json.loads(message.value())})
    finally:
        consumer.close()
    return events


def publish_raw(bootstrap_servers: str, records: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    for topic, value in records:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def consume_all(bootstrap_servers: str, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
            if len(values) >= expected:
                break
    finally:
        consumer.close()
    return values
