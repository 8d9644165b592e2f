"""Shared fixtures: one real Kafka broker and one Spark session per test session, a topic per test.

Every setting a test builds is explicit (`_env_file=None`), so a developer's .env or exported
variables never change what the tests do.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker, ensure_topics
from pipeline_runtime.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[1]
JARS_DIR = Path(os.environ.get("JARS_DIR", ROOT / "jars")).resolve()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a CLI run in a test: this one, less the pipeline's own settings."""
    prefixes = ("DATA_", "KAFKA_", "LOCAL_KAFKA_", "SPARK_", "MLFLOW_", "SMOKE_", "PRODUCER_", "STREAMING_",
                "TRAINING_", "SPOTIFY_", "TABLES_", "CHECKPOINTS_")  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update({"JARS_DIR": str(JARS_DIR), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    env.update(overrides)
    return env


def run_module(
    module: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> "subprocess.CompletedProcess[str]":
    """`python -m module args...` in `cwd` (where no .env lies), output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="session")
def broker_settings(tmp_path_factory: pytest.TempPathFactory) -> BrokerSettings:
    return BrokerSettings(_env_file=None, data_dir=tmp_path_factory.mktemp("broker"), jars_dir=JARS_DIR, port=0)


@pytest.fixture(scope="session")
def kafka_broker(broker_settings: BrokerSettings) -> Iterator[LocalKafkaBroker]:
    """A real Apache Kafka broker for the whole session, on a free port of 127.0.0.1."""
    broker = LocalKafkaBroker(broker_settings)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def bootstrap_servers(kafka_broker: LocalKafkaBroker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture
def topic(bootstrap_servers: str) -> str:
    """A fresh topic for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    ensure_topics(bootstrap_servers, [name])
    return name


@pytest.fixture(scope="session")
def spark_settings(tmp_path_factory: pytest.TempPathFactory) -> SparkSettings:
    return SparkSettings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("spark"),
        jars_dir=JARS_DIR,
        spark_master="local[2]",
        spark_driver_memory="1g",
        spark_shuffle_partitions=2,
        spark_ui_enabled=False,
    )


@pytest.fixture(scope="session")
def spark(spark_settings: SparkSettings) -> Iterator["SparkSession"]:
    """One real Spark session with Delta and the Kafka connector (local[2], UI off)."""
    from pipeline_runtime.spark import build_spark_session

    session = build_spark_session(spark_settings, "tests")
    yield session
    session.stop()
