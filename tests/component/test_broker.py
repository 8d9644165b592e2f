"""The real local Kafka broker: clients of both libraries, the CLI life cycle, restarts, failures."""

import os
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer

from pipeline_runtime.broker import BrokerSettings, BrokerStartError, LocalKafkaBroker
from tests.support.kafka import consume_all
from tests.support.processes import JARS_DIR


def test_both_client_libraries(bootstrap_servers: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for i in range(50):
        producer.produce(topic, value=f"confluent-{i}".encode())
    assert producer.flush(30) == 0

    legacy = KafkaProducer(bootstrap_servers=bootstrap_servers)
    for i in range(50):
        legacy.send(topic, f"kafka-python-{i}".encode())
    legacy.flush(30)
    legacy.close()

    values = consume_all(bootstrap_servers, topic, 100)
    assert sorted(values) == sorted(
        [f"confluent-{i}".encode() for i in range(50)] + [f"kafka-python-{i}".encode() for i in range(50)]
    )

    reader = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        group_id=None,
    )
    assert len([record.value for record in reader]) == 100
    reader.close()


def test_failed_start_shows_the_log_tail(tmp_path: Path) -> None:
    bogus_jars = tmp_path / "jars"
    (bogus_jars / "kafka").mkdir(parents=True)
    (bogus_jars / "kafka" / "kafka_2.13-0.0.0.jar").write_bytes(b"not a jar")
    broker = LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=tmp_path / "data", jars_dir=bogus_jars, port=0))
    with pytest.raises(BrokerStartError) as caught:
        broker.start()
    assert "failed" in str(caught.value)
    assert "kafka.tools.StorageTool" in str(caught.value)  # the JVM's own words: main class not found


def test_start_timeout_kills_the_broker(tmp_path: Path) -> None:
    settings = BrokerSettings(_env_file=None, data_dir=tmp_path / "data", jars_dir=JARS_DIR, port=0, start_timeout=0.3)
    broker = LocalKafkaBroker(settings)
    with pytest.raises(BrokerStartError, match=r"did not accept clients within 0s; last lines of"):
        broker.start()
    assert broker.status() is None
    assert broker.process is None
    assert not (tmp_path / "data" / "kafka" / "broker.json").exists()


def test_stop_kills_a_broker_that_ignores_sigterm(tmp_path: Path) -> None:
    settings = BrokerSettings(_env_file=None, data_dir=tmp_path / "data", jars_dir=JARS_DIR, port=0, stop_timeout=1)
    broker = LocalKafkaBroker(settings)
    running = broker.start()
    os.kill(running.pid, signal.SIGSTOP)  # a frozen JVM cannot act on SIGTERM
    started = time.monotonic()
    assert broker.stop()
    assert time.monotonic() - started < 15
    assert not Path(f"/proc/{running.pid}").exists()
    assert broker.status() is None
