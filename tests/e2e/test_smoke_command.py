"""The smoke pipeline on the real stack: confluent-kafka -> broker -> Spark Kafka source -> Delta, exactly once."""

from pathlib import Path

from pipeline_runtime.spark import CLASS_ARCHIVE
from tests.support.processes import JARS_DIR, TEST_SHUFFLE_PARTITIONS, TEST_SPARK_MASTER, clean_env, run_module


def test_smoke_command_runs_end_to_end(tmp_path: Path) -> None:
    """`python -m pipeline_runtime smoke`: starts its own broker, reports, stops it. (A later run resuming
    exactly once is tests/component/test_smoke_pipeline.py's; the broker keeping its data across restarts,
    tests/e2e/test_broker_cli.py's.) Its Spark driver starts from the class-data archive `make setup` made:
    the JVM's class-loading log says where Spark's, Delta's and Kafka's classes came from."""
    data_dir = tmp_path / "data"
    loaded = tmp_path / "classes.log"
    env = clean_env(
        DATA_DIR=str(data_dir),
        LOCAL_KAFKA_PORT="0",
        SPARK_MASTER=TEST_SPARK_MASTER,
        SPARK_SHUFFLE_PARTITIONS=str(TEST_SHUFFLE_PARTITIONS),
        SPARK_UI_ENABLED="false",
        SPARK_DRIVER_JAVA_OPTIONS=f"-Xlog:class+load=info:file={loaded}",
    )
    result = run_module("pipeline_runtime", "smoke", "--messages", "2000", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "published 2,000 messages" in result.stdout
    assert "2,000 rows" in result.stdout
    assert "(unchanged)" in result.stdout
    assert (data_dir / "tables" / "smoke_events" / "_delta_log").is_dir()
    assert not (data_dir / "kafka" / "broker.json").exists(), "the broker it started must be stopped"
    archived = {
        line.split()[1].rsplit(".", 1)[0]
        for line in loaded.read_text().splitlines()
        if "source: shared objects file (top)" in line  # the dynamic archive, on top of the JDK's own
    }
    for package in ("org.apache.spark.sql", "org.apache.spark.sql.delta", "org.apache.kafka.clients.consumer"):
        assert package in archived, f"no class of {package} came from {JARS_DIR / CLASS_ARCHIVE}"
