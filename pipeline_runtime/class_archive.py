"""The Spark driver's class-data archive: a JVM that starts from it maps Spark's, Delta's and Kafka's classes
already parsed and verified instead of reading them from their jars (Java's AppCDS, a dynamic archive).

`python -m pipeline_runtime class-archive` (run by `make setup`) starts a Spark session that records the
classes it loads, exercises what the services do (Delta writes, MERGE, the Change Data Feed, streaming with
foreachBatch, the Kafka source, pyspark.ml), and the JVM writes them to JARS_DIR/spark-classes.jsa when it
exits. `build_spark_session` then starts every driver from it (SPARK_CLASS_ARCHIVE, on by default). The
archive is tied to the Java and the classpath it was made with: after an upgrade of either the JVM skips it
without a word, and `make setup` makes it again (it depends on the jars and the venv).
"""

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker
from pipeline_runtime.errors import SetupError
from pipeline_runtime.settings import SparkSettings
from pipeline_runtime.spark import CLASS_ARCHIVE, QUIET_CLASS_SHARING, build_spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

JVM_EXIT_SECONDS = 300  # writing the archive (about 200 MB) as the JVM exits


def exercise(spark: "SparkSession", folder: Path, bootstrap_servers: str) -> None:
    """Load the classes the services load: Delta tables written, merged, read, compacted and vacuumed, their
    Change Data Feed, a Delta stream into foreachBatch and into a Delta sink, Kafka's producer, admin and
    consumer (a topic written and streamed into Delta), pyspark.ml."""
    from delta.tables import DeltaTable  # noqa: PLC0415
    from pyspark.ml import Pipeline, PipelineModel  # noqa: PLC0415
    from pyspark.ml.feature import (  # noqa: PLC0415
        CountVectorizer,
        Imputer,
        OneHotEncoder,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )
    from pyspark.ml.regression import LinearRegression  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: N812, PLC0415

    table, sink = str(folder / "table"), str(folder / "sink")
    rows = spark.range(200).select(
        F.col("id").cast("string").alias("key"),
        (F.col("id") % 7).cast("double").alias("x"),
        F.array(F.lit("a"), (F.col("id") % 3).cast("string")).alias("tags"),
        F.current_timestamp().alias("at"),
    )
    spark.sql(
        f"CREATE TABLE delta.`{table}` (key STRING, x DOUBLE, tags ARRAY<STRING>, at TIMESTAMP) USING DELTA "
        "TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')"
    )
    rows.write.format("delta").mode("append").save(table)

    def merge(batch: "DataFrame", _batch_id: int) -> None:
        target = DeltaTable.forPath(spark, table).alias("t")
        target.merge(batch.alias("s"), "t.key = s.key").whenMatchedUpdateAll(condition="s.x >= t.x").execute()

    changes = spark.readStream.format("delta").option("readChangeFeed", "true").load(table)
    query = (
        changes.where(F.col("_change_type") != "update_preimage")
        .select("key", "x", "tags", "at")
        .writeStream.foreachBatch(merge)
        .option("checkpointLocation", str(folder / "merge-checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    query = (
        spark.readStream.format("delta")
        .load(table)
        .writeStream.format("delta")
        .option("checkpointLocation", str(folder / "sink-checkpoint"))
        .trigger(availableNow=True)
        .start(sink)
    )
    query.awaitTermination()
    spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0).load(table).count()
    spark.read.format("delta").load(sink).groupBy("key").agg(F.max("x")).collect()
    delta = DeltaTable.forPath(spark, table)
    delta.history().collect()
    delta.optimize().executeCompaction()
    delta.vacuum().collect()
    rows.selectExpr("key", "CAST(x AS STRING) AS value").write.format("kafka").option(
        "kafka.bootstrap.servers", bootstrap_servers
    ).option("topic", "events").save()
    query = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", "events")
        .option("startingOffsets", "earliest")
        .load()
        .writeStream.format("delta")
        .option("checkpointLocation", str(folder / "kafka-checkpoint"))
        .trigger(availableNow=True)
        .start(str(folder / "bronze"))
    )
    query.awaitTermination()

    stages: list[Any] = [
        Imputer(inputCols=["x"], outputCols=["x_imputed"], strategy="median"),
        CountVectorizer(inputCol="tags", outputCol="tags_vec", binary=True),
        StringIndexer(inputCol="key", outputCol="key_index", handleInvalid="keep"),
        OneHotEncoder(inputCol="key_index", outputCol="key_vec", handleInvalid="keep"),
        VectorAssembler(inputCols=["x_imputed", "tags_vec", "key_vec"], outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features", withMean=False, withStd=True),
        LinearRegression(featuresCol="features", labelCol="x", maxIter=5, regParam=0.1),
    ]
    model = Pipeline(stages=stages).fit(spark.read.format("delta").load(table))
    model.write().overwrite().save(str(folder / "model"))
    PipelineModel.load(str(folder / "model")).transform(rows).select("prediction").toPandas()


def build(settings: SparkSettings) -> Path:
    """Make JARS_DIR/spark-classes.jsa (replacing one made before, only once the new one is complete)."""
    from pyspark import SparkContext  # noqa: PLC0415

    archive = settings.jars_dir / CLASS_ARCHIVE
    partial = archive.with_name(f"{archive.name}.partial")
    partial.unlink(missing_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="class-archive-") as folder:
        recording = settings.model_copy(
            update={
                "data_dir": Path(folder),
                "spark_class_archive": False,  # a dynamic archive is recorded on the JVM's own base archive only
                "spark_ui_enabled": False,
                "spark_driver_java_options": f"{settings.spark_driver_java_options} "
                f"-XX:ArchiveClassesAtExit={partial.resolve()} {QUIET_CLASS_SHARING}",
            }
        )
        broker = LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=Path(folder), port=0))
        running = broker.start()
        try:
            spark = build_spark_session(recording, "class-archive")
            jvm = SparkContext._gateway.proc  # type: ignore[union-attr]  # noqa: SLF001 - pyspark's own JVM
            try:
                exercise(spark, Path(folder), running.bootstrap_servers)
            finally:
                spark.stop()
                jvm.stdin.close()  # the gateway JVM exits when its stdin closes, and writes the archive as it does
                jvm.wait(JVM_EXIT_SECONDS)
        finally:
            broker.stop()
    if not partial.is_file() or partial.stat().st_size == 0:
        raise SetupError(
            f"the JVM wrote no class-data archive at {partial} (Java {os.environ.get('JAVA_HOME') or 'on PATH'}): "
            "Spark works without it, only its start is slower: check that this is a HotSpot JVM (OpenJDK), then run "
            "`make class-archive` again"
        )
    partial.replace(archive)
    log.info(
        "class-data archive %s: %d MB in %.0f s", archive, archive.stat().st_size // 2**20, time.monotonic() - started
    )
    return archive
