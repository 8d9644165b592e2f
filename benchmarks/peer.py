"""The peer a user might pick on one machine: a plain Python confluent-kafka consumer writing the bronze
table with delta-rs (`deltalake`), batch by batch, offsets committed after each write (at-least-once:
a crash between a write and its commit writes that batch again; our Spark job is exactly-once).

    python -m benchmarks.peer --bootstrap 127.0.0.1:9092 --table /tmp/bronze --topics a b c
"""

import argparse
import json
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

BATCH = 100_000  # records per Delta commit: the same as the Spark job's maxOffsetsPerTrigger


def bronze_schema() -> Any:
    import pyarrow as pa  # noqa: PLC0415

    return pa.schema(
        [
            ("key", pa.binary()),
            ("value", pa.binary()),
            ("topic", pa.string()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
            ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
            ("ingested_at", pa.timestamp("us", tz="UTC")),
            ("ingest_date", pa.date32()),
        ]
    )


def write_batch(table: str, messages: list[Any]) -> None:
    import pyarrow as pa  # noqa: PLC0415
    from deltalake import write_deltalake  # noqa: PLC0415

    now = datetime.now(UTC)
    batch = pa.table(
        {
            "key": [m.key() for m in messages],
            "value": [m.value() for m in messages],
            "topic": [m.topic() for m in messages],
            "partition": [m.partition() for m in messages],
            "offset": [m.offset() for m in messages],
            "kafka_timestamp": [m.timestamp()[1] for m in messages],
            "ingested_at": [now] * len(messages),
            "ingest_date": [now.date()] * len(messages),
        },
        schema=bronze_schema(),
    )
    write_deltalake(table, batch, mode="append", partition_by=["ingest_date"])


def consume_all(bootstrap: str, topics: list[str], table: str, expected: int) -> tuple[int, int, float]:
    """(records, commits, seconds) to copy every record of `topics` into the Delta table at `table`."""
    from confluent_kafka import Consumer, KafkaError  # noqa: PLC0415

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"peer-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = sum(len(consumer.list_topics(t, timeout=10).topics[t].partitions) for t in topics)
    consumer.subscribe(topics)
    started = time.perf_counter()
    pending: list[Any] = []
    records = commits = 0
    at_end: set[tuple[str | None, int | None]] = set()
    try:
        while len(at_end) < partitions or records + len(pending) < expected:
            for message in consumer.consume(10_000, timeout=1.0):
                error = message.error()
                if error is None:
                    pending.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    at_end.add((message.topic(), message.partition()))
            if len(pending) >= BATCH or (pending and len(at_end) >= partitions):
                write_batch(table, pending)
                consumer.commit(asynchronous=False)
                records, commits, pending = records + len(pending), commits + 1, []
    finally:
        consumer.close()
    return records, commits, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--table", required=True, help="where the bronze Delta table is written")
    parser.add_argument("--topics", nargs="+", required=True)
    parser.add_argument("--expected", type=int, default=0, help="records to wait for (default: up to the end)")
    args = parser.parse_args(argv)
    records, commits, seconds = consume_all(args.bootstrap, args.topics, args.table, args.expected)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "records": records,
                "delta_commits": commits,
                "seconds": round(seconds, 2),
                "rows_per_second": round(records / seconds),
                "peak_rss_mib": round(peak, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
