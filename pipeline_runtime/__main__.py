"""Command line for the shared runtime: the local Kafka broker, the smoke pipeline, a set-up check.

python -m pipeline_runtime broker start|stop|status|run|logs
python -m pipeline_runtime smoke [--messages N] [--bootstrap-servers HOST:PORT]
python -m pipeline_runtime doctor
python -m pipeline_runtime class-archive
python -m pipeline_runtime kafka topics|consumer-groups|configs|get-offsets|console-consumer [ARGS...]
"""

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.table import Table

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker, kafka_for_run, port_is_free
from pipeline_runtime.cli import console, install_stop_handlers, run_cli
from pipeline_runtime.errors import SetupError
from pipeline_runtime.java import check_java
from pipeline_runtime.kafka_admin import ensure_topics
from pipeline_runtime.kafka_tools import TOOLS, run_tool
from pipeline_runtime.logs import configure_logging
from pipeline_runtime.settings import KafkaSettings, SparkSettings, ensure_writable_dir
from pipeline_runtime.smoke import (
    SmokeSettings,
    TableState,
    ingest_available,
    publish_messages,
    table_state,
)
from pipeline_runtime.spark import CLASS_ARCHIVE, resolve_spark_jars

log = logging.getLogger(__name__)
T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline_runtime",
        description="Shared runtime of the Spotify pipeline: local Kafka broker, smoke pipeline, set-up check.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = commands.add_parser(
        "broker",
        help="run the local Apache Kafka broker (KRaft, 127.0.0.1)",
        description="The local single-node Kafka broker; its data lives in $DATA_DIR/kafka. "
        "Port: LOCAL_KAFKA_PORT (default 9092, 0 picks a free one).",
    )
    broker.add_argument(
        "action",
        choices=["start", "stop", "status", "run", "logs"],
        help="start: in the background; stop: SIGTERM then SIGKILL; status: exit 0 if running, 3 if not; "
        "run: in the foreground until SIGTERM/Ctrl-C; logs: print the log's tail",
    )
    broker.add_argument("--lines", type=int, default=40, help="with `logs`: how many lines (default 40)")

    smoke = commands.add_parser(
        "smoke",
        help="publish JSON messages and stream them into a Delta table, exactly once",
        description="Publishes SMOKE_MESSAGES JSON messages with confluent-kafka, streams the topic into the "
        "Delta table $DATA_DIR/tables/smoke_events (trigger availableNow, checkpointed), then re-runs the "
        "stream to show nothing is written twice. Starts the local broker unless one runs or "
        "--bootstrap-servers is given.",
    )
    smoke.add_argument("--messages", type=int, help="messages to publish (default: SMOKE_MESSAGES or 10000)")
    smoke.add_argument("--bootstrap-servers", help="use this Kafka cluster instead of the local broker")

    commands.add_parser("doctor", help="check Java, Maven, the jars, the data dir and the broker port")
    commands.add_parser(
        "class-archive",
        help="make the Spark driver's class-data archive (JARS_DIR/spark-classes.jsa): a faster JVM start",
        description="Starts a Spark session that records the classes it loads, exercises Delta, streaming, the "
        "Kafka source and pyspark.ml on a temporary folder, and writes them to JARS_DIR/spark-classes.jsa as the "
        "JVM exits (about a minute, 200 MB). Every Spark session then starts from it (SPARK_CLASS_ARCHIVE). "
        "`make setup` runs it after the jars and the venv change.",
    )
    kafka = commands.add_parser(
        "kafka",
        help="Kafka's admin tools (kafka-topics, kafka-consumer-groups, ...) against KAFKA_BOOTSTRAP_SERVERS",
        description="Runs one of Kafka's own command-line tools from jars/kafka with --bootstrap-server "
        "KAFKA_BOOTSTRAP_SERVERS and the client's security settings (KAFKA_SECURITY_PROTOCOL, SASL, TLS, "
        "KAFKA_CLIENT_PROPERTIES) as its client properties file; the other arguments go to the tool as they are, "
        "e.g. `kafka topics --describe`, `kafka consumer-groups --list`, `kafka topics --help`.",
    )
    kafka.add_argument("tool", choices=sorted(TOOLS), help="which tool")
    kafka.add_argument("args", nargs=argparse.REMAINDER, help="the tool's own arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        broker_settings = BrokerSettings()
        configure_logging(broker_settings.log_level)
        if args.command == "broker":
            return broker_command(args.action, broker_settings, args.lines)
        if args.command == "smoke":
            return smoke_command(broker_settings, args.messages, args.bootstrap_servers)
        if args.command == "class-archive":
            return class_archive_command()
        if args.command == "kafka":
            return run_tool(KafkaSettings(), args.tool, args.args)
        return doctor_command(broker_settings)

    return run_cli(body)


def class_archive_command() -> int:
    from pipeline_runtime.class_archive import build  # noqa: PLC0415 - pyspark's import, only here

    with console.status("recording the classes a Spark session loads ..."):
        archive = build(SparkSettings())
    console.print(f"class-data archive written: {archive} ({archive.stat().st_size // 2**20} MB)")
    return 0


def broker_command(action: str, settings: BrokerSettings, lines: int) -> int:
    broker = LocalKafkaBroker(settings)
    if action == "start":
        running = broker.start(detach=True)
        console.print(
            f"Kafka broker running at [bold]{running.bootstrap_servers}[/] (pid {running.pid}), "
            f"data in {broker.dir}; stop it with `python -m pipeline_runtime broker stop`."
        )
        return 0
    if action == "stop":
        stopped = broker.stop()
        console.print("Kafka broker stopped." if stopped else f"No Kafka broker is running for {broker.dir}.")
        return 0
    if action == "status":
        status = broker.status()
        if status is None:
            console.print(f"Kafka broker: not running (data in {broker.dir}).")
            return 3
        console.print(f"Kafka broker: running at {status.bootstrap_servers} (pid {status.pid}), data in {broker.dir}.")
        return 0
    if action == "logs":
        console.print("\n".join(broker.log_tail(lines)) or f"No broker log in {broker.dir} yet.", highlight=False)
        return 0
    return run_in_foreground(broker)


def run_in_foreground(broker: LocalKafkaBroker) -> int:
    """`broker run`: for supervisors and containers; SIGTERM or Ctrl-C stops the broker cleanly."""
    stop = install_stop_handlers(log, "the broker")
    running = broker.start()
    console.print(f"Kafka broker running at [bold]{running.bootstrap_servers}[/] (pid {running.pid}); Ctrl-C stops it.")
    while not stop.wait(1.0):
        if broker.process is not None and broker.process.poll() is not None:
            console.print(
                f"[bold red]error:[/] the Kafka broker exited (code {broker.process.returncode}); see {broker.log_file}"
            )
            return 1
    broker.stop()
    console.print("Kafka broker stopped.")
    return 0


def step(title: str, action: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    with console.status(title):
        result = action()
    return result, time.monotonic() - started


def smoke_command(broker_settings: BrokerSettings, messages: int | None, bootstrap_servers: str | None) -> int:
    settings = SmokeSettings()
    count = messages or settings.messages
    ensure_writable_dir(settings.data_dir)
    console.rule("Smoke pipeline: confluent-kafka → Kafka → Spark Structured Streaming → Delta Lake")
    with kafka_for_run(broker_settings, bootstrap_servers) as (servers, how):
        console.print(f"✓ Kafka at [bold]{servers}[/] ({how})")
        ensure_topics(servers, [settings.topic])
        confirmed, took = step(
            f"publishing {count:,} messages to {settings.topic}",
            lambda: publish_messages(servers, settings.topic, count),
        )
        console.print(f"✓ published {confirmed:,} messages to [bold]{settings.topic}[/] in {took:.1f}s")

        from pipeline_runtime.spark import build_spark_session  # noqa: PLC0415 - pyspark import is slow

        spark, took = step("starting Spark", lambda: build_spark_session(settings, "smoke-pipeline"))
        console.print(f"✓ Spark {spark.version} on {settings.spark_master} in {took:.1f}s")
        try:

            def ingest() -> TableState:
                ingest_available(spark, servers, settings.topic, settings.table_path, settings.checkpoint_path)
                return table_state(spark, settings.table_path)

            first, took = step("streaming the topic into Delta (availableNow)", ingest)
            console.print(
                f"✓ streamed the topic into Delta in {took:.1f}s: {first.rows:,} rows, "
                f"version {first.version}, table {settings.table_path}"
            )
            second, took = step("re-running the stream with nothing new", ingest)
            unchanged = second == first
            mark, verdict = ("✓", "unchanged") if unchanged else ("✗", "CHANGED")
            console.print(
                f"{mark} re-run with nothing new in {took:.1f}s: Delta version {second.version}, "
                f"{second.rows:,} rows ({verdict})"
            )
        finally:
            spark.stop()
    exactly_once = second.rows == second.distinct_offsets and unchanged
    summary = Table(title="Delta table smoke_events", show_header=True)
    for column in ("rows", "distinct Kafka offsets", "offsets", "Delta version", "exactly once"):
        summary.add_column(column, justify="right")
    summary.add_row(
        f"{second.rows:,}",
        f"{second.distinct_offsets:,}",
        f"{second.min_offset} to {second.max_offset}",
        str(second.version),
        "yes" if exactly_once else "NO",
    )
    console.print(summary)
    return 0 if exactly_once else 1


def doctor_command(settings: BrokerSettings) -> int:
    """Check what the pipeline needs on this machine; exit 0 when all of it is there."""
    checks: list[tuple[str, Callable[[], str]]] = [
        ("Java 17+", lambda: f"Java {check_java(settings.java_home).major}"),
        (
            "Maven",
            lambda: shutil.which("mvn") or _fail("Maven (mvn) not found: install it (apt-get install maven)."),
        ),
        ("Spark jars", lambda: _spark_jars(settings)),
        ("Spark class archive", lambda: class_archive_state(settings.jars_dir)),
        ("Kafka broker jars", lambda: _broker_jars(settings)),
        ("data dir", lambda: str(ensure_writable_dir(settings.data_dir).resolve())),
        ("broker port", lambda: _broker_port(settings)),
    ]
    table = Table(title="pipeline doctor")
    table.add_column("check")
    table.add_column("result")
    failures = 0
    for name, check in checks:
        try:
            table.add_row(name, f"[green]ok[/] {check()}")
        except SetupError as exc:
            failures += 1
            table.add_row(name, f"[red]problem[/] {exc}")
    console.print(table)
    return 1 if failures else 0


def _fail(message: str) -> str:
    raise SetupError(message)


def _spark_jars(settings: BrokerSettings) -> str:
    jars = resolve_spark_jars(settings.jars_dir)
    if jars is None:
        return f"{settings.jars_dir / 'spark'} missing: Spark will download them at start-up (`make jars` to fix)"
    return f"{len(jars)} jars in {settings.jars_dir / 'spark'}"


def class_archive_state(jars_dir: Path) -> str:
    """The class-data archive is a speed-up, not a need: its absence is said, not failed."""
    archive = jars_dir / CLASS_ARCHIVE
    if not archive.is_file():
        return f"{archive} not made: each Spark start takes about 5 s longer (`make class-archive` makes it)"
    return f"{archive} ({archive.stat().st_size // 2**20} MB): Spark's driver starts from it"


def _broker_jars(settings: BrokerSettings) -> str:
    jars = list((settings.jars_dir / "kafka").glob("*.jar"))
    if not any(p.name.startswith("kafka_2.13-") for p in jars):
        raise SetupError(f"The Kafka broker's jars are missing from {settings.jars_dir / 'kafka'}: run `make jars`.")
    return f"{len(jars)} jars in {settings.jars_dir / 'kafka'}"


def _broker_port(settings: BrokerSettings) -> str:
    running = LocalKafkaBroker(settings).status()
    if running is not None:
        return f"broker running at {running.bootstrap_servers}"
    if settings.port and not port_is_free(settings.port):
        raise SetupError(f"Port {settings.port} is in use: set LOCAL_KAFKA_PORT to another port (0 picks a free one).")
    return f"{settings.port or 'a free port'} available"


if __name__ == "__main__":
    sys.exit(main())
