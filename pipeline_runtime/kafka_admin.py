"""The Kafka admin calls the services make of any cluster, local or remote: is it there, and create the
topics that are missing. The local broker process itself (dev and test infrastructure) is
`pipeline_runtime.broker`."""

import logging

from pipeline_runtime.errors import SetupError

log = logging.getLogger(__name__)


def count_brokers(bootstrap_servers: str, timeout: float) -> int:
    """How many brokers the cluster's metadata lists (registered and unfenced); raises KafkaException."""
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    return len(admin.list_topics(timeout=timeout).brokers)


def broker_registered(bootstrap_servers: str, timeout: float = 2.0) -> bool:
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        return count_brokers(bootstrap_servers, timeout) > 0
    except KafkaException:
        return False


def require_kafka(bootstrap_servers: str, timeout: float = 10.0) -> int:
    """The number of brokers, or SetupError saying how to get a cluster that answers."""
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        brokers = count_brokers(bootstrap_servers, timeout)
    except KafkaException:
        brokers = 0
    if not brokers:
        raise SetupError(
            f"Kafka at {bootstrap_servers} did not answer within {timeout:.0f}s: start the local broker "
            "(`make broker-start`) or set KAFKA_BOOTSTRAP_SERVERS to your cluster."
        )
    return brokers


def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int = 1, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (replication factor 1 is for a single local broker)."""
    from confluent_kafka import KafkaError, KafkaException  # noqa: PLC0415
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415
    from confluent_kafka.cimpl import NewTopic  # noqa: PLC0415

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(name, num_partitions=partitions, replication_factor=1) for name in topics if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        log.info("created topic %s", name)
