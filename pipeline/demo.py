"""`python -m pipeline demo`: every stage once, on one machine, then a summary and an HTML report.

1. Kafka: the local broker (started for the run and stopped after it, unless one already runs);
2. Spotify: with SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET the live API, else the offline sandbox in
   this process (its catalogue's noise and best reachable scores are in DATA_DIR/sandbox/model.json);
3. the producer polls once (and backfills a catalogue file when one is given);
4. the streaming job catches up (`availableNow`) into bronze, silver and gold;
5. the trainer runs one cycle (skipped when gold has nothing new since the last one);
6. with the sandbox, after a cycle that wrote recommendations: they go into the sandbox user's playlist, its
   simulated listener plays (some of them, as its hidden taste says) while the producer polls, the streaming job
   catches up and the trainer counts how many landed (training.acceptance);
7. the report is written to DATA_DIR/report/index.html and the summary printed.

Everything it started is stopped at the end, also on Ctrl-C. Re-running it is cheap: the producer
publishes only what changed, the streaming job reads only new offsets and the trainer skips.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from pipeline.settings import PipelineSettings
from pipeline_runtime.broker import BrokerSettings, kafka_for_run
from pipeline_runtime.cli import console
from pipeline_runtime.contract import GOLD, TABLES
from pipeline_runtime.errors import SetupError, first_line
from pipeline_runtime.settings import ensure_writable_dir
from producers.settings import ProducerSettings
from streaming.settings import StreamingSettings
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from producers.sandbox.server import SandboxServer
    from training.cycle import CycleReport

log = logging.getLogger(__name__)


@dataclass
class DemoReport:
    phases: list[tuple[str, float, str]] = field(default_factory=list)
    topics: dict[str, int] = field(default_factory=dict)
    tables: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    cycle: "CycleReport | None" = None
    report_path: Path | None = None
    models: list[Any] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    landed: str | None = None  # how many of the published recommendations landed (training.acceptance.describe)


@contextmanager
def phase(report: DemoReport, title: str) -> Iterator[dict[str, str]]:
    """A phase with a live spinner; its duration and outcome go into the summary."""
    started = time.monotonic()
    outcome = {"text": ""}
    with console.status(f"[bold]{title}[/] ..."):
        yield outcome
    seconds = time.monotonic() - started
    report.phases.append((title, seconds, outcome["text"]))
    console.print(
        f"[green]✓[/] {title} ({seconds:.0f} s){': ' + outcome['text'] if outcome['text'] else ''}", highlight=False
    )


def start_sandbox(settings: PipelineSettings) -> "SandboxServer":
    from producers.sandbox.catalogue import CatalogueSize, generate_catalogue  # noqa: PLC0415
    from producers.sandbox.server import SandboxServer, SandboxState  # noqa: PLC0415

    tracks = settings.sandbox_tracks
    size = CatalogueSize(tracks=tracks, artists=max(20, tracks // 10), albums=max(40, tracks // 4))
    catalogue = generate_catalogue(settings.sandbox_seed, size)
    catalogue.save(ensure_writable_dir(settings.data_dir / "sandbox", "sandbox folder"))
    server = SandboxServer(SandboxState(catalogue, settings.sandbox_generation))
    server.start_in_thread()
    return server


def topic_counts(bootstrap_servers: str, topics: list[str]) -> dict[str, int]:
    """Records in each topic (sum of the partitions' high watermarks less their low ones)."""
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": "demo-summary", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        counts = {}
        for topic in topics:
            partitions = metadata.topics.get(topic)
            if partitions is None or partitions.error is not None:
                counts[topic] = 0
                continue
            total = 0
            for partition in partitions.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += high - low
            counts[topic] = total
        return counts
    finally:
        consumer.close()


def table_states(spark: "SparkSession", settings: StreamingSettings) -> dict[str, tuple[int, int] | None]:
    """(version, rows) of each table, None for one that does not exist."""
    from pipeline_runtime.delta_log import table_version  # noqa: PLC0415

    states: dict[str, tuple[int, int] | None] = {}
    for name in TABLES:
        location = settings.table_uri(name)
        version = table_version(spark, location)
        states[name] = None if version is None else (version, int(spark.read.format("delta").load(location).count()))
    return states


# The demo's listener: rounds of tracks tried from the playlist, each round read by a poll (Spotify shows the last 50
# plays only). At most the playlist's 50 tracks change in gold, fewer than TRAINING_MIN_NEW_ROWS: a second demo's
# trainer still has nothing to learn.
LISTENING_ROUNDS = 3
PLAYS_PER_ROUND = 50


def listen_to_recommendations(
    producer_settings: ProducerSettings,
    server: "SandboxServer",
    streaming: StreamingSettings,
    training: TrainingSettings,
    spark: "SparkSession",
    stop: threading.Event,
) -> "CycleReport":
    """The champion's recommendations into the sandbox user's playlist; the sandbox's listener plays (some of them,
    as its taste says) while the producer polls; the streaming job catches up; the trainer's cycle counts how many
    of them landed."""
    from producers.playlist import publish_command  # noqa: PLC0415
    from producers.service import poll_once  # noqa: PLC0415
    from streaming.job import run_job  # noqa: PLC0415
    from training.cycle import run_cycle  # noqa: PLC0415

    log.info("%s", publish_command(producer_settings).summary)
    listener = server.state.listener
    listener.recommended_share = 1.0  # the user puts the new playlist on: each play is one of its tracks, tried
    for _ in range(LISTENING_ROUNDS):
        listener.listen(PLAYS_PER_ROUND)
        poll_once(producer_settings, stop)
        if stop.is_set():
            raise KeyboardInterrupt
    run_job(streaming, available_now=True, stop=stop, spark=spark)
    if stop.is_set():
        raise KeyboardInterrupt
    return run_cycle(spark, training, stop)  # counts the acceptance; too few changed rows to train again


def run_demo(settings: PipelineSettings, catalogue_file: Path | None, stop: threading.Event) -> DemoReport:  # noqa: PLR0915
    from pipeline_runtime.mlflow_setup import configure_mlflow  # noqa: PLC0415
    from pipeline_runtime.spark import build_spark_session  # noqa: PLC0415
    from producers.service import backfill, poll_once  # noqa: PLC0415
    from streaming.job import run_job  # noqa: PLC0415
    from training.acceptance import describe  # noqa: PLC0415
    from training.cycle import cancel_on_stop, run_cycle  # noqa: PLC0415
    from training.report import write_report  # noqa: PLC0415
    from training.summary import model_summaries, recommendation_rows  # noqa: PLC0415

    ensure_writable_dir(settings.data_dir)
    report = DemoReport()
    configured = ProducerSettings()
    live = configured.has_credentials
    with ExitStack() as stack:
        with phase(report, "Kafka broker") as outcome:
            given = None if settings.local_broker else settings.kafka_bootstrap_servers
            servers, how = stack.enter_context(kafka_for_run(BrokerSettings(), given))
            outcome["text"] = f"{servers} ({how})"
        if live:
            producer_settings = configured.model_copy(update={"kafka_bootstrap_servers": servers})
            report.phases.append(("Spotify", 0.0, "the live Web API (SPOTIFY_CLIENT_ID is set)"))
        else:
            with phase(report, "Spotify sandbox") as outcome:
                server = start_sandbox(settings)
                stack.callback(server.server_close)
                stack.callback(server.shutdown)
                producer_settings = server.producer_settings(kafka_bootstrap_servers=servers)
                from producers.sandbox.login import log_in_sandbox_user  # noqa: PLC0415

                # The sandbox's user logs in (user playlists in a 2026 app; the listening history and the
                # recommendations playlist in both generations), as after `python -m producers login`.
                ensure_writable_dir(producer_settings.state_dir, "producer state folder")
                log_in_sandbox_user(producer_settings)
                from producers.sandbox.catalogue import ceilings_text  # noqa: PLC0415

                outcome["text"] = (
                    f"{server.url}, {settings.sandbox_generation} API, {len(server.state.catalogue.tracks):,} tracks "
                    f"({ceilings_text(server.state.catalogue.model)})"
                )
        with phase(report, "producer: one poll") as outcome:
            ensure_writable_dir(producer_settings.state_dir, "producer state folder")
            outcome["text"] = poll_once(producer_settings, stop).summary()
        if catalogue_file is not None:
            with phase(report, f"backfill of {catalogue_file.name}"):
                backfill(producer_settings, catalogue_file)
        if stop.is_set():
            raise KeyboardInterrupt
        streaming = StreamingSettings(kafka_bootstrap_servers=servers)
        training = TrainingSettings()
        configure_mlflow(training)
        with phase(report, "Spark session") as outcome:
            spark = build_spark_session(streaming, "demo")
            stack.callback(spark.stop)
            outcome["text"] = f"Spark {spark.version} on {streaming.spark_master}"
        with phase(report, "streaming: catch up") as outcome:
            run_job(streaming, available_now=True, stop=stop, spark=spark)
            if stop.is_set():
                raise KeyboardInterrupt
            report.tables = table_states(spark, streaming)
            gold = report.tables.get(GOLD)
            outcome["text"] = f"gold at version {gold[0]} with {gold[1]:,} tracks" if gold else "no gold table"
        cancel_on_stop(spark, stop)
        with phase(report, "trainer: one cycle") as outcome:
            report.cycle = run_cycle(spark, training, stop)
            outcome["text"] = (
                report.cycle.skipped or f"{len(report.cycle.models)} models in {report.cycle.seconds:.0f} s"
            )
        if not live and report.cycle.recommendations:
            with phase(report, "listener: recommendations into Spotify") as outcome:
                recount = listen_to_recommendations(producer_settings, server, streaming, training, spark, stop)
                report.landed = describe(recount.acceptance)
                outcome["text"] = report.landed or "nothing published"
        with phase(report, "report") as outcome:
            report.tables = table_states(spark, streaming)
            report.report_path = write_report(spark, training)
            report.models = model_summaries(training)
            report.recommendations = recommendation_rows(spark, training, 10)
            outcome["text"] = str(report.report_path)
        report.topics = topic_counts(servers, streaming.topics)
    return report


def print_summary(report: DemoReport) -> None:
    topics = Table(title="Kafka topics")
    topics.add_column("topic")
    topics.add_column("events", justify="right")
    for topic, count in report.topics.items():
        topics.add_row(topic, f"{count:,}")
    console.print(topics)

    tables = Table(title="Delta tables")
    for column in ("table", "version", "rows"):
        tables.add_column(column, justify="left" if column == "table" else "right")
    for name, state in report.tables.items():
        tables.add_row(name, *(("-", "-") if state is None else (str(state[0]), f"{state[1]:,}")))
    console.print(tables)
    quarantined = report.tables.get("quarantine")
    console.print(f"rows quarantined: {quarantined[1] if quarantined else 0:,}", highlight=False)

    models = Table(title="models on their holdout: ours (champion) vs the notebook's method and a reference")
    for column in ("model", "metric", "notebook baseline", "reference", "ours", "champion version"):
        models.add_column(column)
    for summary in report.models:
        if summary.version is None:
            models.add_row(summary.task, "-", "-", "-", summary.note, "-")
            continue
        for metric, (baseline, ours) in summary.metrics.items():
            models.add_row(
                summary.task,
                metric,
                "-" if baseline is None else f"{baseline:.3f}",
                "-" if metric not in summary.reference else f"{summary.reference[metric]:.3f}",
                f"{ours:.3f}",
                f"v{summary.version}",
            )
    console.print(models)
    for summary in report.models:
        if summary.contributions:
            question = "popular" if summary.task == "popularity" else "a favourite"
            top = ", ".join(row["meaning"] for row in summary.contributions[:3])
            console.print(
                f"what makes a song {question} to the {summary.task} champion: {top}", highlight=False, soft_wrap=True
            )

    recommendations = Table(title="top 10 recommendations (not yet favourites)")
    for column in ("#", "track", "artists", "score", "because"):
        recommendations.add_column(column, overflow="fold")
    for row in report.recommendations:
        recommendations.add_row(
            str(row["rank"]), row["name"], ", ".join(row["artist_names"]), f"{row['score']:.3f}", row["because"]
        )
    console.print(recommendations)
    if report.landed:
        console.print(report.landed, highlight=False, soft_wrap=True)
    total = sum(seconds for _, seconds, _ in report.phases)
    console.print(f"demo took {total:.0f} s; report: {report.report_path}", highlight=False)


def demo(settings: PipelineSettings, catalogue_file: Path | None, stop: threading.Event) -> int:
    if catalogue_file is not None and not catalogue_file.is_file():
        raise SetupError(f"the catalogue file {catalogue_file} does not exist: give the path of a CSV or Parquet file")
    try:
        report = run_demo(settings, catalogue_file, stop)
    except (SetupError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if stop.is_set():  # a stop cancels Spark jobs and the producer's work: they end in errors
            raise KeyboardInterrupt from None
        log.exception("the demo failed")
        first = first_line(exc)
        raise SetupError(f"the demo failed: {first} (the full error is above)") from None
    if stop.is_set():
        raise KeyboardInterrupt
    print_summary(report)
    return 0
