"""Shared fixtures: one real Kafka broker and one Spark session per test session, a topic per test.

Every setting a test builds is explicit (`_env_file=None`), so a developer's .env or exported
variables never change what the tests do.
"""

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker
from pipeline_runtime.kafka_admin import ensure_topics
from pipeline_runtime.settings import SparkSettings
from tests.support.figures import FIGURES
from tests.support.processes import JARS_DIR, TEST_SHUFFLE_PARTITIONS, TEST_SPARK_MASTER
from tests.support.spotify import SMALL_CATALOGUE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from producers.sandbox.server import SandboxServer


# Spark's sessions run in UTC (spark.sql.session.timeZone); PySpark hands timestamps to Python in the process's
# own zone: the tests compare them with UTC times, so the test processes (and their children) run in UTC too.
os.environ["TZ"] = "UTC"
time.tzset()

TIERS = ("unit", "component", "e2e", "faults")  # folders of tests/, cheapest first; each test's marker


# Fixtures too expensive to build twice, and the modules whose tests use them. Under pytest-xdist (make test runs
# two workers) each of these groups is one unit of work, so its run is built once per session as without workers;
# every other test is a unit of its own. (xdist's own `xdist_group` marks do not group anything under pytest 9:
# xdist 3.8 renames `item._nodeid`, which pytest 9 no longer reads.)
SHARED_RUN_MODULES = {
    "tests/e2e/test_demo.py": "demo_run",
    "tests/e2e/test_training_cli.py": "demo_run",
    "tests/faults/test_trainer_faults.py": "trainer_pair",
    "tests/faults/test_security.py": "trainer_pair",
    "tests/component/test_kafka_security.py": "sasl_broker",
    "tests/component/test_training.py": "first_cycle",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class SharedRunScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """One unit of work per test, except one per shared run (SHARED_RUN_MODULES); the biggest units first."""

        def _split_scope(self, nodeid: str) -> str:
            return SHARED_RUN_MODULES.get(nodeid.split("::", 1)[0], nodeid)

    return SharedRunScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker runs under `python -c`: its __main__ has neither __spec__ nor __file__, which
    pyspark's Spark Connect check (imported by mlflow.spark when it saves a model) takes for a doctest run
    and answers with sys.exit(0) when grpc is absent. Give the worker's __main__ the file it runs from."""
    main = sys.modules["__main__"]
    if hasattr(config, "workerinput") and main.__spec__ is None and not hasattr(main, "__file__"):
        main.__file__ = pytest.__file__  # an importable file without side effects, should a child re-import it


def tier_of(item: pytest.Item) -> str:
    tier = item.nodeid.split("/")[1] if item.nodeid.startswith("tests/") else ""
    return tier if tier in TIERS else ""


def with_workers(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) or hasattr(config, "workerinput")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if tier := tier_of(item):
            item.add_marker(getattr(pytest.mark, tier))
        module = item.nodeid.split("::", 1)[0]
        for run in set(SHARED_RUN_MODULES.values()) & set(getattr(item, "fixturenames", ())):
            if SHARED_RUN_MODULES.get(module) != run:
                raise pytest.UsageError(
                    f"{item.nodeid} uses {run}: add {module} to SHARED_RUN_MODULES in tests/conftest.py, so that "
                    "pytest-xdist runs it where that run is built instead of building it twice"
                )
    if with_workers(config):
        # Longest first, so no worker is left with an 8-minute fault test while the other has nothing to do:
        # the tiers from the most expensive (a stable sort keeps each file's order).
        items.sort(key=lambda item: -TIERS.index(tier_of(item)) if tier_of(item) else 0)
    # Soak runs (the same property at full volume) only when asked for by name: `-m soak` (make test-soak).
    if "soak" not in (config.option.markexpr or ""):
        soak = [item for item in items if item.get_closest_marker("soak")]
        if soak:
            config.hook.pytest_deselected(items=soak)
            items[:] = [item for item in items if not item.get_closest_marker("soak")]


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
        spark_master=TEST_SPARK_MASTER,
        spark_driver_memory="2g",  # one session serves every test: 1g ended in constant garbage collection
        spark_shuffle_partitions=TEST_SHUFFLE_PARTITIONS,
        spark_ui_enabled=False,
    )


@pytest.fixture(scope="session")
def spark(spark_settings: SparkSettings) -> Iterator["SparkSession"]:
    """One real Spark session with Delta and the Kafka connector (local[2], UI off)."""
    from pipeline_runtime.spark import build_spark_session

    session = build_spark_session(spark_settings, "tests")
    yield session
    session.stop()


# --- the fault tier's figures, gathered from the reports (a worker's module state never reaches the summary) ---


FIGURES_SEEN: list[str] = []  # filled in the process that reports (the controller under pytest-xdist)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        FIGURES_SEEN.extend(str(value) for key, value in report.user_properties if key == FIGURES)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES_SEEN:
        terminalreporter.section("fault tolerance and security: what each test checked")
        for line in FIGURES_SEEN:
            terminalreporter.write_line(line)


# --- the Spotify sandbox (the only faked part: Spotify, at the HTTP boundary) ---


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


# --- object storage: an S3-compatible server (moto's, in this process, real HTTP on 127.0.0.1) ---


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket, and the environment that points delta-rs (and boto3) at the server, as a user's would."""
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


# --- gold tables for the trainer: the sandbox catalogue as the streaming job would have written it ---
