"""The session the builder makes really has Delta and the Kafka source, from the local jars."""

from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from pipeline_runtime.delta_log import table_id, table_version
from pipeline_runtime.spark import artifact_name, has_data_source, resolve_spark_jars
from tests.support.processes import JARS_DIR, TEST_SHUFFLE_PARTITIONS, TEST_SPARK_MASTER


def test_session_has_delta_and_kafka(spark: SparkSession) -> None:
    assert has_data_source(spark, "delta")
    assert has_data_source(spark, "kafka")
    assert not has_data_source(spark, "no-such-format")
    assert spark.conf.get("spark.sql.shuffle.partitions") == str(TEST_SHUFFLE_PARTITIONS)
    assert spark.sparkContext.master == TEST_SPARK_MASTER
    assert "spark.jars.packages" not in dict(spark.sparkContext.getConf().getAll())


def test_delta_round_trip_and_time_travel(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "numbers")
    spark.range(5).write.format("delta").save(path)
    spark.range(5, 8).write.format("delta").mode("append").save(path)
    assert sorted(r.id for r in spark.read.format("delta").load(path).collect()) == list(range(8))
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 5


def test_version_and_id_from_the_log_agree_with_delta_and_fall_back_to_spark(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A local table's version and id come from its log without a Spark job; they are Delta's own (its history
    and DESCRIBE DETAIL), also once the commit that set the metadata is gone after a checkpoint (Spark tells)."""
    path = str(tmp_path / "numbers")
    assert (table_version(spark, path), table_id(spark, path)) == (None, None)
    for start in range(0, 12):
        spark.range(start, start + 1).write.format("delta").mode("append").save(path)
    table = DeltaTable.forPath(spark, path)
    delta_id = table.detail().first()["id"]  # type: ignore[index]
    assert (table_version(spark, path), table_id(spark, path)) == (table.history(1).first()["version"], delta_id)
    assert table_version(spark, path) == 11
    (tmp_path / "numbers" / "_delta_log" / "00000000000000000000.json").unlink()  # checkpointed at version 10
    assert table_id(spark, f"file:{path}") == delta_id


def test_fetched_jars_are_used_without_duplicates() -> None:
    jars = resolve_spark_jars(JARS_DIR)
    assert jars is not None, "run `make jars` first"
    names = {artifact_name(jar.name) for jar in jars}
    assert {"delta-spark_4.2_2.13", "delta-storage", "spark-sql-kafka-0-10_2.13", "kafka-clients"} <= names
    assert "spark-token-provider-kafka-0-10_2.13" in names and "commons-pool2" in names
    # pyspark ships these already; a second, older copy would shadow or conflict.
    assert not names & {"jackson-databind", "slf4j-api", "scala-library", "hadoop-client-runtime", "spark-tags_2.13"}
