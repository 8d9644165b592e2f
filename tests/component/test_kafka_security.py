"""A Kafka that asks for a login (SASL/PLAIN), as a secured cluster does: the producer's two clients, the
admin calls and Spark's Kafka source reach it with the KAFKA_SECURITY_* settings alone; a wrong password or
a client that does not log in gets one line that says which."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker
from pipeline_runtime.errors import SetupError
from pipeline_runtime.kafka_admin import require_kafka, topic_replication
from pipeline_runtime.kafka_clients import java_client_config, librdkafka_config
from producers.publish import open_publisher
from producers.settings import ProducerSettings
from tests.support.processes import JARS_DIR, clean_env, run_module

PASSWORD = "pl41n-s3cret-of-the-test"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = BrokerSettings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("sasl-broker"),
        jars_dir=JARS_DIR,
        port=0,
        sasl_users={"pipeline": PASSWORD, "reader": "another-password"},
    )
    broker = LocalKafkaBroker(settings)
    broker.start()
    yield broker.bootstrap_servers
    broker.stop()


def producer_settings(tmp_path: Path, servers: str, **overrides: object) -> ProducerSettings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "kafka_bootstrap_servers": servers,
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_sasl_username": "pipeline",
        "kafka_sasl_password": PASSWORD,
        "kafka_timeout_seconds": 8,
        "topic_tracks": "secured-tracks",
    }
    return ProducerSettings(_env_file=None, **{**values, **overrides})


def test_both_producer_clients_and_spark_log_in(sasl_broker: str, spark: SparkSession, tmp_path: Path) -> None:
    sent = 0
    for client in ("confluent-kafka", "kafka-python"):
        settings = producer_settings(tmp_path, sasl_broker, kafka_client=client)
        publisher = open_publisher(settings)
        for i in range(50):
            publisher.publish(settings.topic_tracks, f"{client}-{i}", f'{{"n": {i}}}'.encode())
        assert publisher.confirm(30) == 50
        publisher.close()
        sent += 50

    settings = producer_settings(tmp_path, sasl_broker)
    brokers, replication = topic_replication(librdkafka_config(settings), settings.topics)
    assert brokers == 1 and replication == dict.fromkeys(settings.topics, (1, 1)), "the cluster's default replicas"
    options = {f"kafka.{key}": value for key, value in java_client_config(settings).items()}
    records = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", sasl_broker)
        .option("subscribe", settings.topic_tracks)
        .options(**options)
        .load()
    )
    keys = {row.key.decode() for row in records.select("key").collect()}
    assert len(keys) == sent and {k.split("-")[0] for k in keys} == {"confluent", "kafka"}
    print(f"\n{sent} events through SASL/PLAIN with both clients, all read back by Spark")


def test_a_wrong_password_and_a_missing_login_are_one_line_each(sasl_broker: str, tmp_path: Path) -> None:
    wrong = producer_settings(tmp_path, sasl_broker, kafka_sasl_password="not-the-password")
    with pytest.raises(SetupError) as refused:
        require_kafka(librdkafka_config(wrong), timeout=8)
    message = str(refused.value)
    assert "refused the login" in message and "KAFKA_SASL_PASSWORD" in message
    assert "not-the-password" not in message and "\n" not in message

    plain = producer_settings(tmp_path, sasl_broker, kafka_security_protocol="PLAINTEXT")
    with pytest.raises(SetupError) as unanswered:
        require_kafka(librdkafka_config(plain), timeout=5)
    assert "KAFKA_SECURITY_PROTOCOL" in str(unanswered.value)
    print(f"\nwrong password: {message}\nno login: {unanswered.value}")


def test_kafkas_admin_tools_log_in_with_the_same_settings(sasl_broker: str, tmp_path: Path) -> None:
    """`python -m pipeline_runtime kafka topics ...`: Kafka's own tool from jars/kafka, with the bootstrap servers
    and the SASL login of the settings; the password never on its command line or in its output."""
    env = clean_env(
        DATA_DIR=str(tmp_path),
        JARS_DIR=str(JARS_DIR),
        KAFKA_BOOTSTRAP_SERVERS=sasl_broker,
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="pipeline",
        KAFKA_SASL_PASSWORD=PASSWORD,
    )
    created = run_module(
        "pipeline_runtime", "kafka", "topics", "--create", "--topic", "tool-made", "--partitions", "3",
        env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    described = run_module(
        "pipeline_runtime", "kafka", "topics", "--describe", "--topic", "tool-made", env=env, cwd=tmp_path
    )
    assert described.returncode == 0, described.stdout + described.stderr
    assert "PartitionCount: 3" in described.stdout and described.stdout.count("Partition: ") == 3
    assert PASSWORD not in described.stdout + described.stderr + created.stdout + created.stderr
    settings = producer_settings(tmp_path, sasl_broker)
    assert "tool-made" in topic_replication(librdkafka_config(settings), ["tool-made"])[1]
