"""The smoke pipeline on the real stack: confluent-kafka -> broker -> Spark Kafka source -> Delta, exactly once."""

from pathlib import Path

from tests.support.processes import clean_env, run_module


def test_smoke_command_runs_end_to_end(tmp_path: Path) -> None:
    """`python -m pipeline_runtime smoke`: starts its own broker, reports, stops it. (A later run resuming
    exactly once is tests/component/test_smoke_pipeline.py's; the broker keeping its data across restarts,
    tests/e2e/test_broker_cli.py's.)"""
    data_dir = tmp_path / "data"
    env = clean_env(
        DATA_DIR=str(data_dir),
        LOCAL_KAFKA_PORT="0",
        SPARK_MASTER="local[2]",
        SPARK_UI_ENABLED="false",
    )
    result = run_module("pipeline_runtime", "smoke", "--messages", "2000", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "published 2,000 messages" in result.stdout
    assert "2,000 rows" in result.stdout
    assert "(unchanged)" in result.stdout
    assert (data_dir / "tables" / "smoke_events" / "_delta_log").is_dir()
    assert not (data_dir / "kafka" / "broker.json").exists(), "the broker it started must be stopped"
