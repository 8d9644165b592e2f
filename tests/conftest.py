"""Shared fixtures: one real Kafka broker and one Spark session per test session, a topic per test.

Every setting a test builds is explicit (`_env_file=None`), so a developer's .env or exported
variables never change what the tests do.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker
from pipeline_runtime.kafka_admin import ensure_topics
from pipeline_runtime.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from producers.sandbox.server import SandboxServer
    from producers.settings import ProducerSettings

ROOT = Path(__file__).resolve().parents[1]
JARS_DIR = Path(os.environ.get("JARS_DIR", ROOT / "jars")).resolve()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)
        if "tests/faults/" in item.nodeid:
            item.add_marker(pytest.mark.faults)


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a CLI run in a test: this one, less the pipeline's own settings."""
    prefixes = (
        "DATA_",
        "KAFKA_",
        "LOCAL_KAFKA_",
        "SPARK_",
        "MLFLOW_",
        "SMOKE_",
        "PRODUCER_",
        "STREAMING_",
        "TRAINING_",
        "SPOTIFY_",
        "TABLES_",
        "CHECKPOINTS_",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update({"JARS_DIR": str(JARS_DIR), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    env.update(overrides)
    return env


def local_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a CLI run on a small local stack: its own data dir, a free broker port,
    Spark on 2 cores with 1g, the quick tuning grid."""
    settings = {
        "DATA_DIR": str(data_dir),
        "LOCAL_KAFKA_PORT": "0",
        "SPARK_MASTER": "local[2]",
        "SPARK_SHUFFLE_PARTITIONS": "2",
        "SPARK_UI_ENABLED": "false",
        "SPARK_DRIVER_MEMORY": "1g",
        "TRAINING_TUNING": "quick",
    }
    return clean_env(**{**settings, **overrides})


def run_module(
    module: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> "subprocess.CompletedProcess[str]":
    """`python -m module args...` in `cwd` (where no .env lies), output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


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
        spark_driver_memory="2g",  # one session serves every test: 1g ended in constant garbage collection
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


# --- the Spotify sandbox (the only faked part: Spotify, at the HTTP boundary) ---

SMALL_CATALOGUE = {"tracks": 300, "artists": 40, "albums": 60, "playlists": 6, "favourite_playlists": 2}


@pytest.fixture
def sandbox_factory() -> Iterator["Callable[..., SandboxServer]"]:
    """Start sandboxes (real HTTP on 127.0.0.1, in this process) for a test; all stopped after it."""
    from producers.sandbox.catalogue import CatalogueSize, generate_catalogue
    from producers.sandbox.server import SandboxServer, SandboxState

    servers: list[SandboxServer] = []

    def start(generation: str = "development", seed: int = 3, **size: int) -> SandboxServer:
        catalogue = generate_catalogue(seed, CatalogueSize(**{**SMALL_CATALOGUE, **size}))
        server = SandboxServer(SandboxState(catalogue, generation))  # type: ignore[arg-type]
        server.start_in_thread()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def sandbox_settings(server: "SandboxServer", data_dir: Path, **overrides: object) -> "ProducerSettings":
    """Producer settings pointed at a sandbox, with topics of their own."""
    from producers.settings import ProducerSettings

    env = server.env()
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "data_dir": data_dir,
        "spotify_client_id": env["SPOTIFY_CLIENT_ID"],
        "spotify_client_secret": env["SPOTIFY_CLIENT_SECRET"],
        "spotify_api_url": env["SPOTIFY_API_URL"],
        "spotify_accounts_url": env["SPOTIFY_ACCOUNTS_URL"],
        "reccobeats_api_url": env["RECCOBEATS_API_URL"],
        "playlists": list(server.state.catalogue.playlists),
        "favourite_playlists": server.state.catalogue.favourite_playlist_ids,
        "topic_tracks": f"tracks-{suffix}",
        "topic_artists": f"artists-{suffix}",
        "topic_audio_features": f"features-{suffix}",
        "topic_playlist_membership": f"membership-{suffix}",
        "topic_partitions": 2,
        "http_retries": 2,
        "request_timeout_seconds": 5,
    }
    values.update(overrides)
    return ProducerSettings(_env_file=None, **values)


def sandbox_login(settings: "ProducerSettings") -> None:
    """Log in the sandbox user the way a browser would: follow /authorize, exchange the code (PKCE)."""
    from producers.sandbox.login import log_in_sandbox_user

    log_in_sandbox_user(settings)


def sandbox_stats(server: "SandboxServer", reset: bool = False) -> dict[str, int]:
    import requests

    counts: dict[str, int] = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["requests"]
    counts.pop("_sandbox", None)
    if reset:
        requests.post(f"{server.url}/_sandbox/stats/reset", timeout=10)
    return counts


def set_faults(server: "SandboxServer", **faults: object) -> None:
    import requests

    requests.post(f"{server.url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()


def read_topic(bootstrap_servers: str, topic: str, timeout: float = 20.0) -> list[dict]:  # type: ignore[type-arg]
    """Every event in a topic (all partitions), decoded; stops when the end is reached."""
    import json

    from confluent_kafka import Consumer, KafkaError

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = len(metadata.topics[topic].partitions) if topic in metadata.topics else 0
    consumer.subscribe([topic])
    events, finished = [], set()
    deadline = time.monotonic() + timeout
    try:
        while partitions and len(finished) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    finished.add(message.partition())
                continue
            key = message.key()
            events.append({"key": key.decode() if key else None, **json.loads(message.value())})
    finally:
        consumer.close()
    return events


# --- gold tables for the trainer: the sandbox catalogue as the streaming job would have written it ---


def write_gold(spark: "SparkSession", location: str, rows: list[dict], mode: str = "append") -> None:  # type: ignore[type-arg]
    """Rows of `producers.sandbox.catalogue.gold_rows` into a `track_features` Delta table, stamped now."""
    from pyspark.sql import functions as F  # noqa: N812

    from pipeline_runtime.contract import GOLD_SCHEMA

    frame = spark.createDataFrame([{**row, "updated_at": None} for row in rows], schema=GOLD_SCHEMA)
    frame.withColumn("updated_at", F.current_timestamp()).write.format("delta").mode(mode).save(location)
