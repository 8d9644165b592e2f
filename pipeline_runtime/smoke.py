"""The smoke pipeline: JSON messages -> Kafka -> Spark Structured Streaming -> Delta, exactly once.

It proves the stack on this machine works end to end (broker, Spark, the Kafka connector, Delta), with
nothing of the services: `python -m pipeline_runtime smoke` (`make smoke`). `make demo` runs the services.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SmokeSettings(SparkSettings):
    """`SMOKE_MESSAGES`, `SMOKE_TOPIC`; the table and checkpoint live under the data dir."""

    model_config = SettingsConfigDict(env_prefix="SMOKE_")

    messages: int = Field(10_000, ge=1, description="How many JSON messages one run publishes.")
    topic: str = Field("smoke.events", description="Kafka topic the smoke pipeline uses.")

    @property
    def table_path(self) -> str:
        return self.table_uri("smoke_events")

    @property
    def checkpoint_path(self) -> str:
        return self.checkpoint_uri("smoke_events")


@dataclass(frozen=True)
class TableState:
    version: int
    rows: int
    min_offset: int | None
    max_offset: int | None
    distinct_offsets: int


def smoke_message(sequence: int, produced_at: str) -> bytes:
    return json.dumps({"seq": sequence, "produced_at": produced_at, "kind": "smoke"}).encode()


def publish_messages(bootstrap_servers: str, topic: str, count: int, first: int = 0) -> int:
    """Publish `count` JSON messages with an idempotent confluent-kafka producer; returns how many the
    broker confirmed. Raises RuntimeError naming the first delivery error."""
    from confluent_kafka import KafkaError, Message, Producer  # noqa: PLC0415

    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "logger": logging.getLogger("librdkafka"),
        }
    )
    confirmed = 0
    errors: list[str] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        nonlocal confirmed
        if error is None:
            confirmed += 1
        else:
            errors.append(str(error))

    produced_at = datetime.now(UTC).isoformat()
    for sequence in range(first, first + count):
        while True:
            try:
                producer.produce(
                    topic,
                    key=str(sequence).encode(),
                    value=smoke_message(sequence, produced_at),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then retry this message
                producer.poll(0.5)
        producer.poll(0)
    remaining = producer.flush(60)
    if errors or remaining:
        raise RuntimeError(f"{len(errors) + remaining} of {count} messages not delivered: {errors[:1]}")
    return confirmed


def with_kafka_columns(records: "DataFrame") -> "DataFrame":
    """Kafka source rows as table rows: key and value as text, the record's coordinates, ingest time."""
    from pyspark.sql import functions as F  # noqa: N812, PLC0415

    return records.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
    )


def ingest_available(
    spark: "SparkSession", bootstrap_servers: str, topic: str, table_path: str, checkpoint_path: str
) -> None:
    """Stream what is in `topic` now into the Delta table and stop (trigger availableNow).

    The checkpoint records the offsets each committed batch covered, and the Delta sink writes a batch
    id once: a re-run starts where the last one ended and never writes a record twice."""
    records = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .load()
    )
    query = (
        with_kafka_columns(records)
        .writeStream.format("delta")
        .queryName(f"smoke-{topic}")
        .option("checkpointLocation", checkpoint_path)
        .trigger(availableNow=True)
        .start(table_path)
    )
    query.awaitTermination()


def table_state(spark: "SparkSession", table_path: str) -> TableState:
    from pyspark.sql import functions as F  # noqa: N812, PLC0415

    from pipeline_runtime.delta_log import table_version  # noqa: PLC0415

    version = table_version(spark, table_path)
    stats = (
        spark.read.format("delta")
        .load(table_path)
        .agg(F.count("*"), F.min("offset"), F.max("offset"), F.countDistinct("partition", "offset"))
        .first()
    )
    if version is None or stats is None:
        raise RuntimeError(f"{table_path} has no Delta history")
    return TableState(version, int(stats[0]), stats[1], stats[2], int(stats[3]))
