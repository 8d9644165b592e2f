"""The smoke pipeline on the real stack: confluent-kafka -> broker -> Spark Kafka source -> Delta, exactly once."""

from pathlib import Path

from pyspark.sql import SparkSession

from pipeline_runtime.smoke import ingest_available, publish_messages, table_state


def test_stream_into_delta_exactly_once(
    spark: SparkSession, bootstrap_servers: str, topic: str, tmp_path: Path
) -> None:
    table = str(tmp_path / "events")
    checkpoint = str(tmp_path / "checkpoint")

    assert publish_messages(bootstrap_servers, topic, 10_000) == 10_000
    ingest_available(spark, bootstrap_servers, topic, table, checkpoint)
    first = table_state(spark, table)
    assert first.rows == 10_000
    assert (first.min_offset, first.max_offset, first.distinct_offsets) == (0, 9_999, 10_000)
    rows = spark.read.format("delta").load(table)
    assert sorted(r.offset for r in rows.select("offset").collect()) == list(range(10_000))
    sample = rows.where("offset = 42").first()
    assert sample is not None
    assert sample.topic == topic and sample.partition == 0 and sample.key == "42"
    assert '"seq": 42' in sample.value

    # Nothing new: the query commits nothing, the table keeps its version.
    ingest_available(spark, bootstrap_servers, topic, table, checkpoint)
    assert table_state(spark, table) == first

    assert publish_messages(bootstrap_servers, topic, 500, first=10_000) == 500
    ingest_available(spark, bootstrap_servers, topic, table, checkpoint)
    third = table_state(spark, table)
    assert third.rows == 10_500
    assert (third.min_offset, third.max_offset, third.distinct_offsets) == (0, 10_499, 10_500)
    assert third.version == first.version + 1
