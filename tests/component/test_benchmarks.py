"""The benchmarks measure what they say: every side publishes or writes every record, the API counts hold.

Nothing here asserts a speed (the numbers are measurements: `make bench`); these tests keep the
benchmark code from rotting, on small sizes, against the real broker, Spark and Delta.
"""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.latency import gold_latencies, silver_latencies
from benchmarks.trainer import write_gold
from pipeline_runtime.contract import GOLD_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_gold_written_by_delta_rs_is_the_table_spark_reads(spark: "SparkSession", tmp_path: Path) -> None:
    location = tmp_path / "track_features"
    write_gold(location, 300)
    gold = spark.read.format("delta").load(str(location))
    expected = spark.createDataFrame([], GOLD_SCHEMA).schema
    assert [(f.name, f.dataType) for f in gold.schema] == [(f.name, f.dataType) for f in expected]
    assert gold.count() == 300
    assert gold.where("is_favourite").count() > 0 and gold.where("popularity IS NULL").count() == 0


def test_latency_is_measured_from_observed_at_to_the_first_commit_holding_the_row(
    spark: "SparkSession", tmp_path: Path
) -> None:
    location = tmp_path / "silver_tracks"
    sent = datetime.now(UTC) - timedelta(seconds=10)
    spark.createDataFrame([("a", sent), ("b", sent)], "track_id STRING, observed_at TIMESTAMP").write.format(
        "delta"
    ).save(str(location))
    time.sleep(1)
    spark.createDataFrame([("a", sent), ("c", sent)], "track_id STRING, observed_at TIMESTAMP").write.format(
        "delta"
    ).mode("append").save(str(location))
    latencies = silver_latencies(location)
    assert len(latencies) == 3, "a, b, then c: a's second copy is not counted again"
    assert all(10 <= value < 60 for value in latencies), latencies
    assert latencies[2] >= latencies[0] + 0.9, "c became readable in the later commit"

    gold = tmp_path / "track_features"
    spark.createDataFrame([("a",)], "track_id STRING").write.format("delta").save(str(gold))
    time.sleep(1)
    spark.createDataFrame([("a",), ("c",)], "track_id STRING").write.format("delta").mode("append").save(str(gold))
    to_gold = gold_latencies(gold, location)
    assert len(to_gold) == 2 and all(10 <= value < 60 for value in to_gold), to_gold
    assert to_gold[1] >= to_gold[0] + 0.9, "c reached gold in the later commit; b never did"
