"""The Kafka admin calls the services make of any cluster, local or remote: is it there, and create the
topics that are missing. The local broker process itself (dev and test infrastructure) is
`pipeline_runtime.broker`.

`config` is the client's configuration (`kafka_clients.librdkafka_config`: bootstrap servers, security);
a plain bootstrap string serves a local broker without security."""

import logging
import socket
from collections.abc import Mapping
from typing import Any

from pipeline_runtime.errors import SetupError

log = logging.getLogger(__name__)

# librdkafka's error codes that mean "the broker answered, but the handshake failed".
AUTHENTICATION, SSL = -169, -181


def admin_client(config: Mapping[str, str] | str, errors: list[Any] | None = None) -> Any:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    conf: dict[str, Any] = {"bootstrap.servers": config} if isinstance(config, str) else dict(config)
    conf["log_level"] = 0
    if errors is not None:
        conf["error_cb"] = errors.append
    return AdminClient(conf)


def servers_of(config: Mapping[str, str] | str) -> str:
    return config if isinstance(config, str) else config["bootstrap.servers"]


def count_brokers(config: Mapping[str, str] | str, timeout: float) -> int:
    """How many brokers the cluster's metadata lists (registered and unfenced); raises KafkaException."""
    return len(admin_client(config).list_topics(timeout=timeout).brokers)


def broker_registered(config: Mapping[str, str] | str, timeout: float = 2.0) -> bool:
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        return count_brokers(config, timeout) > 0
    except KafkaException:
        return False


def handshake_failure(errors: list[Any]) -> str | None:
    """What went wrong when the broker answered but refused the login or the TLS handshake, else None."""
    for error in errors:
        code = error.code() if hasattr(error, "code") else None
        if code == AUTHENTICATION:
            return (
                f"refused the login ({error.str()}): check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and "
                "KAFKA_SASL_MECHANISM"
            )
        if code == SSL:
            return f"failed the TLS handshake ({error.str()}): check KAFKA_SECURITY_PROTOCOL and KAFKA_SSL_CA_LOCATION"
    return None


def any_port_open(servers: str, timeout: float = 1.0) -> bool:
    """Whether any of the bootstrap servers takes a TCP connection."""
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def require_kafka(config: Mapping[str, str] | str, timeout: float = 10.0) -> int:
    """The number of brokers, or SetupError saying how to get a cluster that answers."""
    from confluent_kafka import KafkaException  # noqa: PLC0415

    errors: list[Any] = []
    admin = admin_client(config, errors)
    try:
        brokers = len(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        brokers = 0
    if not brokers:
        admin.poll(0.5)  # the error callback is served here: what the broker said during the handshake
    if not brokers:
        servers = servers_of(config)
        failure = handshake_failure(errors)
        if failure:
            raise SetupError(f"Kafka at {servers} {failure}.")
        protocol = "PLAINTEXT" if isinstance(config, str) else config.get("security.protocol", "PLAINTEXT")
        if any_port_open(servers):
            raise SetupError(
                f"Kafka at {servers} accepts connections but did not answer a {protocol} client within "
                f"{timeout:.0f}s: if the cluster needs TLS or SASL, set KAFKA_SECURITY_PROTOCOL (SSL, SASL_SSL, "
                "SASL_PLAINTEXT) and its KAFKA_SASL_* / KAFKA_SSL_CA_LOCATION settings; else check the brokers' logs."
            )
        raise SetupError(
            f"Kafka at {servers} did not answer within {timeout:.0f}s: start the local broker "
            "(`make broker-start`) or set KAFKA_BOOTSTRAP_SERVERS to your cluster."
        )
    return brokers


def ensure_topics(
    config: Mapping[str, str] | str,
    topics: list[str],
    partitions: int = 1,
    timeout: float = 30.0,
    replication_factor: int | None = None,
) -> None:
    """Create the topics that do not exist yet, with `replication_factor` replicas (None: the cluster's
    `default.replication.factor`)."""
    from confluent_kafka import KafkaError, KafkaException  # noqa: PLC0415
    from confluent_kafka.cimpl import NewTopic  # noqa: PLC0415

    admin = admin_client(config)
    existing = set(admin.list_topics(timeout=timeout).topics)
    replicas = replication_factor or -1
    missing = [name for name in topics if name not in existing]
    wanted = [NewTopic(name, num_partitions=partitions, replication_factor=replicas) for name in missing]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        log.info("created topic %s", name)


def resilience_warnings(brokers: int, topics: dict[str, tuple[int, int]]) -> list[str]:
    """What cannot take the loss of one broker, for topics given as {name: (replicas, min.insync.replicas)};
    nothing on a single broker, which cannot do better."""
    if brokers < 2:
        return []
    warnings = []
    for name, (replicas, min_isr) in sorted(topics.items()):
        if replicas < 2:
            warnings.append(
                f"topic {name} has 1 replica on a {brokers}-broker cluster: while its broker is down nothing can "
                "be published to or read from it; create the topics with KAFKA_REPLICATION_FACTOR=3 (or add "
                "replicas with kafka-reassign-partitions)"
            )
        elif min_isr >= replicas:
            warnings.append(
                f"topic {name} has {replicas} replicas and min.insync.replicas {min_isr}: with acks=all nothing "
                "can be published while one broker is down; keep min.insync.replicas below the replicas (e.g. 2 of 3)"
            )
    return warnings


def topic_replication(
    config: Mapping[str, str] | str, topics: list[str], timeout: float = 10.0
) -> tuple[int, dict[str, tuple[int, int]]]:
    """The number of brokers, and (replicas, min.insync.replicas) of each topic that exists."""
    from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]  # noqa: PLC0415

    admin = admin_client(config)
    metadata = admin.list_topics(timeout=timeout)
    present = [name for name in topics if name in metadata.topics]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in present]
    described = admin.describe_configs(resources, request_timeout=timeout) if resources else {}
    replication = {}
    for resource, future in described.items():
        entries = future.result(timeout=timeout)
        partitions = metadata.topics[resource.name].partitions.values()
        replicas = min((len(p.replicas) for p in partitions), default=0)
        replication[resource.name] = (replicas, int(entries["min.insync.replicas"].value))
    return len(metadata.brokers), replication
