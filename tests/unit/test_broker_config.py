"""The local broker's configuration and the errors it gives before any JVM starts."""

import re
import socket
from pathlib import Path

import pytest

from pipeline_runtime.broker import (
    BrokerSettings,
    LocalKafkaBroker,
    free_port,
    new_cluster_id,
    port_is_free,
    server_properties,
)
from pipeline_runtime.errors import SetupError


def parse_properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_kraft_combined_mode_on_loopback(tmp_path: Path) -> None:
    props = parse_properties(server_properties(tmp_path / "logs", 9092, 9093))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert props["log.dirs"] == str(tmp_path / "logs")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1"
    assert "zookeeper.connect" not in props


def test_a_broker_that_asks_for_a_sasl_login(tmp_path: Path) -> None:
    props = parse_properties(server_properties(tmp_path / "logs", 9092, 9093, {"svc": "pw1", "other": "pw2"}))
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["inter.broker.listener.name"] == "SASL_PLAINTEXT" and props["sasl.enabled.mechanisms"] == "PLAIN"
    jaas = props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert 'username="svc" password="pw1"' in jaas and 'user_svc="pw1" user_other="pw2";' in jaas


def test_cluster_ids_look_like_kafkas() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", cid) and not cid.startswith("-") for cid in ids)


def settings(tmp_path: Path, **overrides: object) -> BrokerSettings:
    """Settings with a stand-in jar folder: these tests end before Java would start (no `make jars` needed)."""
    jars = tmp_path / "jars"
    (jars / "kafka").mkdir(parents=True, exist_ok=True)
    (jars / "kafka" / "kafka_2.13-4.1.0.jar").touch()
    values: dict[str, object] = {"data_dir": tmp_path / "data", "jars_dir": jars, "port": 0}
    values.update(overrides)
    return BrokerSettings(_env_file=None, **values)


def test_a_free_port_is_never_one_given_out_already() -> None:
    """A restarted broker keeps its controller port, which nothing listens on while it is stopped: the system may
    hand that port out again for the client port, and Kafka then refuses two listeners on one port (seen in CI:
    `PLAINTEXT://127.0.0.1:58849,CONTROLLER://127.0.0.1:58849`)."""
    given: list[int] = []
    for _ in range(200):
        given.append(free_port(avoid=given))
    assert len(set(given)) == len(given)


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(SetupError, match=rf"Port {port} on 127.0.0.1 .* already in use: .*LOCAL_KAFKA_PORT"):
            LocalKafkaBroker(settings(tmp_path, port=port)).start()


def test_missing_broker_jars(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"jars are missing from .*: run `make jars`"):
        LocalKafkaBroker(settings(tmp_path, jars_dir=tmp_path / "nothing")).start()


def test_unwritable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SetupError, match=r"Kafka data folder .* is not writable"):
        LocalKafkaBroker(settings(tmp_path, data_dir=tmp_path / "file")).start()
