"""A Kafka cluster of three KRaft brokers (replication 3, `min.insync.replicas` 2) loses one broker while the
producer publishes and the streaming job reads: nothing the producer had confirmed is lost, nothing is
duplicated, and the streaming job's queries keep running. The pipeline reaches the cluster through settings
alone (`KAFKA_BOOTSTRAP_SERVERS` naming the three brokers, `KAFKA_SECURITY_PROTOCOL` and the SASL/PLAIN login the
cluster asks every client for, as a secured cluster does; the topics get the cluster's default replication).
"""

import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pipeline_runtime.kafka_clients import librdkafka_config
from pipeline_runtime.settings import KafkaSettings, topic_names
from producers.sandbox.server import SandboxServer
from streaming.job import run_job
from tests.support import delivery
from tests.support.kafka_cluster import bootstrap, kafka_cluster
from tests.support.processes import kill_group, start_group
from tests.support.spotify import producer_env, set_faults
from tests.support.streaming import catch_up, streaming_settings, table

pytestmark = pytest.mark.cluster

PASSWORD = "cluster-s3cret-of-the-test"
LOGIN = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "PLAIN",
    "KAFKA_SASL_USERNAME": "pipeline",
    "KAFKA_SASL_PASSWORD": PASSWORD,
}


def replicas_and_isr(settings: KafkaSettings, topics: list[str]) -> dict[str, tuple[int, int]]:
    """(replicas, in-sync replicas) of each topic's first partition, as the cluster's metadata says."""
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient(librdkafka_config(settings)).list_topics(timeout=10)
    found = {}
    for name in topics:
        partition = metadata.topics[name].partitions[0]
        found[name] = (len(partition.replicas), len(partition.isrs))
    return found


def test_one_broker_of_three_stopped_while_the_producer_publishes_and_streaming_reads(
    spark: SparkSession, sandbox_factory: Callable[..., SandboxServer], tmp_path: Path, figures: Callable[..., None]
) -> None:
    server = sandbox_factory("extended", seed=5, tracks=600, artists=80, albums=150, playlists=6, favourite_playlists=2)
    set_faults(server, slow_ms=60)  # a poll takes a while: the broker goes away in the middle of it
    with kafka_cluster(tmp_path / "kafka", sasl_users={"pipeline": PASSWORD}) as nodes:
        servers = bootstrap(nodes)
        env = producer_env(
            server, tmp_path / "data", servers, PRODUCER_AUTH="client", PRODUCER_KAFKA_TIMEOUT_SECONDS="10", **LOGIN
        )
        settings = streaming_settings(
            tmp_path / "stream",
            servers,
            trigger_interval="2 seconds",
            **topic_names("spotify"),
            **{name.lower(): value for name, value in LOGIN.items()},
        )
        topics = list(delivery.topics_of(settings).values())
        log = tmp_path / "producer.log"
        producer = start_group(["producers", "run", "--interval", "1"], env, tmp_path, log)
        stop, outcome = threading.Event(), {}

        def stream() -> None:
            try:
                outcome["code"] = run_job(settings, False, stop, spark)
            except Exception as exc:  # noqa: BLE001 - the assertion below says what it was
                outcome["error"] = exc

        job = threading.Thread(target=stream, name="streaming")
        try:
            delivery.wait_for(lambda: "playlist '" in log.read_text(), "a published playlist", 120, producer, log)
            job.start()
            before = replicas_and_isr(settings, topics)
            stopped_at, published_before = time.monotonic(), log.read_text().count("playlist '")
            nodes[1].stop()
            after_stop = len(log.read_text())
            delivery.wait_for(
                lambda: "0 failed; published nothing new" in log.read_text()[after_stop:],
                "a complete poll with one broker down",
                300,
                producer,
                log,
            )
            recovered_in = round(time.monotonic() - stopped_at, 1)
            producer.send_signal(signal.SIGTERM)
            assert producer.wait(60) == 0, log.read_text()[-3000:]
            time.sleep(6)  # a few more of the streaming job's triggers with the broker down
            stop.set()
            job.join(300)
            assert not job.is_alive(), "the streaming job did not stop"
            assert outcome == {"code": 0}, f"the streaming job failed with a broker down: {outcome}"
            catch_up(spark, settings)  # what was left, read with the broker still down
            during = replicas_and_isr(settings, topics)
        finally:
            stop.set()
            if producer.poll() is None:
                kill_group(producer)
    output = log.read_text()
    failed_units = sum(int(n) for n in re.findall(r"(\d+) failed;", output[after_stop:]))
    accepted = delivery.accepted_event_ids(tmp_path / "data" / "state" / "producer.sqlite")
    records, in_bronze = delivery.bronze_event_ids(spark, settings)
    assert before == dict.fromkeys(topics, (3, 3)), f"every topic has 3 replicas, all in sync: {before}"
    assert during == dict.fromkeys(topics, (3, 2)), f"one replica out of sync while its broker is down: {during}"
    counts, duplicates = delivery.catalogue_counts(server), delivery.silver_duplicates(spark, settings)
    assert len(accepted) == sum(counts.values()), "the producer finished the catalogue"
    assert accepted == in_bronze, f"{len(accepted - in_bronze)} lost, {len(in_bronze - accepted)} unaccounted for"
    assert duplicates == dict.fromkeys(duplicates, 0), f"duplicated in silver: {duplicates}"
    assert table(spark, settings, "silver_playlist_history").count() == counts["playlist_membership"]
    figures(
        brokers=3,
        login="SASL_PLAINTEXT, PLAIN",
        replication=3,
        min_insync_replicas=2,
        playlists_published_before_the_stop=published_before,
        units_failed_after_the_stop=failed_units,
        seconds_from_stop_to_a_complete_poll=recovered_in,
        events_accepted=len(accepted),
        bronze_records=records,
        missing=len(accepted - in_bronze),
        duplicated_in_silver=sum(duplicates.values()),
    )
