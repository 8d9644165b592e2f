"""The services' `check` commands against the real broker, Spark and MLflow (`--help`: tests/unit/test_help.py)."""

from pathlib import Path

from tests.support.processes import clean_env, run_module


def test_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    env = clean_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DATA_DIR=str(tmp_path))
    result = run_module("producers", "check", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "error: Kafka at 127.0.0.1:1 did not answer" in result.stdout
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_producer_check_masks_the_secret(bootstrap_servers: str, tmp_path: Path) -> None:
    env = clean_env(KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers, SPOTIFY_CLIENT_SECRET="do-not-print-me")
    result = run_module("producers", "check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Kafka at {bootstrap_servers} answers (1 broker(s))" in result.stdout
    assert "do-not-print-me" not in result.stdout + result.stderr
    assert "**********" in result.stdout


def test_streaming_and_training_checks(bootstrap_servers: str, tmp_path: Path) -> None:
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        DATA_DIR=str(tmp_path / "data"),
        SPARK_MASTER="local[1]",
        SPARK_UI_ENABLED="false",
    )
    streaming = run_module("streaming", "check", env=env, cwd=tmp_path)
    assert streaming.returncode == 0, streaming.stdout + streaming.stderr
    assert "with Delta and Kafka" in streaming.stdout
    training = run_module("training", "check", env=env, cwd=tmp_path)
    assert training.returncode == 0, training.stdout + training.stderr
    assert "MLflow tracking at sqlite:///" in training.stdout and "with Delta" in training.stdout
    assert (tmp_path / "data" / "mlflow" / "mlflow.db").is_file()
