"""One set of Kafka settings in each client's words: what a secured cluster needs reaches confluent-kafka,
Spark's Kafka source and kafka-python, and the password shows nowhere else."""

from pathlib import Path

import pytest

from pipeline_runtime.kafka_admin import resilience_warnings
from pipeline_runtime.kafka_clients import java_client_config, kafka_python_config, librdkafka_config
from pipeline_runtime.settings import KafkaSettings, settings_rows


def test_plaintext_by_default_and_the_cluster_decides_the_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_REPLICATION_FACTOR", "KAFKA_CLIENT_PROPERTIES"):
        monkeypatch.delenv(name, raising=False)
    settings = KafkaSettings(_env_file=None, kafka_bootstrap_servers="a:9092,b:9092")
    assert settings.kafka_replication_factor is None
    assert librdkafka_config(settings) == {"bootstrap.servers": "a:9092,b:9092", "security.protocol": "PLAINTEXT"}
    assert java_client_config(settings) == {"security.protocol": "PLAINTEXT"}
    assert kafka_python_config(settings) == {
        "bootstrap_servers": ["a:9092", "b:9092"],
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_from_the_environment_in_each_clients_words(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", 'p"w\\d')
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", str(ca))
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KAFKA_CLIENT_PROPERTIES", '{"client.rack": "eu-1a"}')
    settings = KafkaSettings(_env_file=None)
    assert settings.kafka_replication_factor == 3

    rd = librdkafka_config(settings)
    assert rd["security.protocol"] == "SASL_SSL" and rd["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (rd["sasl.username"], rd["sasl.password"], rd["ssl.ca.location"]) == ("svc", 'p"w\\d', str(ca))
    assert rd["client.rack"] == "eu-1a"

    java = java_client_config(settings)
    assert java["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" password="p\\"w\\\\d";'
    )
    assert (java["ssl.truststore.type"], java["ssl.truststore.location"]) == ("PEM", str(ca))
    assert java["client.rack"] == "eu-1a" and "bootstrap.servers" not in java

    kp = kafka_python_config(settings)
    assert (kp["sasl_mechanism"], kp["sasl_plain_username"], kp["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "svc",
        'p"w\\d',
    )
    assert kp["ssl_cafile"] == str(ca) and kp["client_rack"] == "eu-1a"

    shown = dict(settings_rows(settings))
    assert 'p"w' not in repr(settings) and 'p"w' not in str(shown) and shown["kafka_sasl_password"] == "**********"


def test_an_unknown_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL")
    with pytest.raises(ValueError, match="KAFKA_SECURITY_PROTOCOL"):
        KafkaSettings(_env_file=None)


def test_topics_that_cannot_lose_a_broker_are_named() -> None:
    topics = {"ok": (3, 2), "single": (1, 1), "stuck": (2, 2)}
    warnings = resilience_warnings(3, topics)
    assert [w.split()[1] for w in warnings] == ["single", "stuck"]
    assert "KAFKA_REPLICATION_FACTOR=3" in warnings[0] and "min.insync.replicas 2" in warnings[1]
    assert resilience_warnings(1, topics) == [], "a single broker cannot do better"


def test_kafka_tools_get_the_cluster_and_the_client_properties_unless_told_otherwise(tmp_path: Path) -> None:
    from pipeline_runtime.kafka_tools import properties_text, tool_command

    settings = KafkaSettings(_env_file=None, kafka_bootstrap_servers="k1:9093,k2:9093", jars_dir=tmp_path)
    config = tmp_path / "client.properties"
    command = tool_command(settings, "topics", ["--list"], config)
    assert command[command.index("-cp") + 1] == f"{tmp_path.resolve()}/kafka/*"
    assert command[3:] == [
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        "k1:9093,k2:9093",
        "--command-config",
        str(config),
        "--list",
    ]
    mine = tool_command(settings, "console-consumer", ["--bootstrap-server=other:1", "--topic", "t"], config)
    assert mine[3:] == [
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--consumer.config",
        str(config),
        "--bootstrap-server=other:1",
        "--topic",
        "t",
    ]
    assert properties_text({"sasl.jaas.config": 'x required password="a=b:c";', "b": "1"}) == (
        'b=1\nsasl.jaas.config=x required password\\="a\\=b\\:c";\n'
    )
