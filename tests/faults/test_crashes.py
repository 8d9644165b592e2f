"""Crashes for real: the streaming job SIGKILLed mid catch-up, the Kafka broker stopped while the producer
publishes, the producer SIGKILLed mid-poll. Nothing lost, nothing duplicated where it counts.

Each process is killed with its whole process group (the Python driver and Spark's JVM together), as
an OOM kill or a container stop would.
"""

import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker
from pipeline_runtime.contract import SILVER_TABLES
from pipeline_runtime.kafka_admin import ensure_topics
from pipeline_runtime.settings import topic_names
from producers.sandbox.server import SandboxServer
from streaming.job import run_job
from streaming.progress import read_progress
from streaming.settings import StreamingSettings
from tests.support.delivery import (
    accepted_event_ids,
    bronze_event_ids,
    catalogue_counts,
    silver_duplicates,
    topics_of,
    wait_for,
)
from tests.support.kafka import publish_raw
from tests.support.processes import JARS_DIR, kill_group, run_module, start_group
from tests.support.spotify import producer_env, set_faults
from tests.support.streaming import catch_up, catch_up_records, streaming_env, streaming_settings, table

VOLATILE = {"updated_at"}  # when gold was written; everything else comes from the events


def comparable(frame: DataFrame) -> DataFrame:
    return frame.drop(*(c for c in frame.columns if c in VOLATILE))


def differences(left: DataFrame, right: DataFrame) -> int:
    a, b = comparable(left), comparable(right)
    return a.exceptAll(b).count() + b.exceptAll(a).count()


def planned_batches(settings: StreamingSettings) -> int:
    """Micro-batches planned so far by all the job's queries: a query writes a batch's offsets (its write-ahead
    log) before it runs the batch, so a kill after a new one lands in that batch's work or the next."""
    return sum(1 for path in Path(settings.checkpoint_uri("bronze")).parent.glob("*/offsets/*") if path.name.isdigit())


# The property (every record once, silver and gold as a clean run's) does not depend on volume: the suite
# runs it on 4k events with 2 kills; `make test-soak` (`-m soak`) on 100k events with 5 kills.
CRASH_RUNS = [
    pytest.param(1_000, 2, 500, id="4k-events-2-kills"),
    pytest.param(25_000, 5, 8000, id="100k-events-5-kills", marks=[pytest.mark.soak, pytest.mark.timeout(2400)]),
]


@pytest.mark.parametrize(("tracks", "kills", "per_trigger"), CRASH_RUNS)
def test_streaming_sigkilled_during_a_catch_up(
    spark: SparkSession,
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
    tracks: int,
    kills: int,
    per_trigger: int,
) -> None:
    settings = streaming_settings(tmp_path / "killed", bootstrap_servers, max_offsets_per_trigger=per_trigger)
    ensure_topics(bootstrap_servers, settings.topics, partitions=2)
    records = catch_up_records(settings, tracks)
    assert len(records) == 4 * tracks
    publish_raw(bootstrap_servers, records)
    env = streaming_env(
        settings,
        STREAMING_MAX_OFFSETS_PER_TRIGGER=str(per_trigger),
        STREAMING_SILVER_MAX_FILES_PER_TRIGGER="3",
        STREAMING_TRIGGER_INTERVAL="1 second",
    )
    rng = random.Random(int(os.environ.get("FAULTS_SEED", "2026")))
    log = tmp_path / "streaming.log"
    moments = []
    started = time.monotonic()
    for _ in range(kills):  # each time: let it start a micro-batch, then kill it at a random moment of its work
        before, logged = planned_batches(settings), len(read_progress(settings.progress_file))
        process = start_group(["streaming", "run"], env, tmp_path, log)
        launched = time.monotonic()
        wait_for(
            lambda b=before: planned_batches(settings) > b,  # type: ignore[misc]
            "a new micro-batch",
            300,
            process,
            log,
        )
        time.sleep(rng.uniform(0, 4))
        assert process.poll() is None, log.read_text()[-3000:]
        kill_group(process)
        lines = read_progress(settings.progress_file)[logged:]
        moments.append(f"{time.monotonic() - launched:.1f}s ({len(lines)} batch(es) logged)")
    killing = time.monotonic() - started
    # The last run catches up with the default batch sizes (in this process: the same job, without a JVM's
    # start-up); it first replays the batch the last kill cut short.
    catch_up(spark, streaming_settings(tmp_path / "killed", bootstrap_servers, **topics_of(settings)))
    took = time.monotonic() - started

    clean = streaming_settings(tmp_path / "clean", bootstrap_servers, **topics_of(settings))
    catch_up(spark, clean)

    bronze = table(spark, settings, "bronze")
    rows = bronze.count()
    offsets = bronze.select("topic", "partition", "offset").distinct().count()
    event_ids = bronze.select(F.get_json_object(F.col("value").cast("string"), "$.event_id")).distinct().count()
    assert rows == offsets == event_ids == len(records), "every Kafka record exactly once"
    assert table(spark, settings, "quarantine").count() == 0
    silver_rows, mismatched = {}, {}
    for name in (*SILVER_TABLES, "track_features"):
        ours, reference = table(spark, settings, name), table(spark, clean, name)
        silver_rows[name] = ours.count()
        assert silver_rows[name] == reference.count(), name
        mismatched[name] = differences(ours, reference)
    assert mismatched == dict.fromkeys(mismatched, 0), "silver and gold equal a clean run's"
    assert silver_rows["silver_tracks"] == silver_rows["track_features"] == tracks
    remastered = tracks - tracks // 5  # catch_up_records renames all but one track in five
    assert table(spark, settings, "silver_tracks").where(F.col("name").endswith("(remastered)")).count() == remastered
    figures(
        events_sent=len(records),
        kills=kills,
        restarts=kills + 1,
        kill_moments="; ".join(moments),
        bronze_rows=rows,
        distinct_offsets=offsets,
        duplicates=rows - offsets,
        silver_rows=silver_rows,
        rows_differing_from_clean_run=0,
        seconds_killing=round(killing),
        seconds_to_caught_up=round(took),
    )


# --- the producer: broker restart, SIGKILL mid-poll ---


def test_broker_restart_while_the_producer_publishes(
    spark: SparkSession, sandbox_factory: Callable[..., SandboxServer], tmp_path: Path, figures: Callable[..., None]
) -> None:
    server = sandbox_factory(
        "extended", seed=5, tracks=3000, artists=300, albums=600, playlists=12, favourite_playlists=3
    )
    set_faults(server, slow_ms=40)  # a poll takes a while: the broker goes away in the middle of it
    broker = LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=tmp_path / "kafka", jars_dir=JARS_DIR, port=0))
    running = broker.start()
    data_dir = tmp_path / "data"
    env = producer_env(
        server, data_dir, running.bootstrap_servers, PRODUCER_AUTH="client", PRODUCER_KAFKA_TIMEOUT_SECONDS="2"
    )
    log = tmp_path / "producer.log"
    producer = start_group(["producers", "run", "--interval", "1"], env, tmp_path, log)
    try:
        wait_for(lambda: "playlist '" in log.read_text(), "a published playlist", 120, producer, log)
        stopped_after = log.read_text().count("playlist '")
        broker.stop()
        time.sleep(8)  # the producer keeps polling Spotify and publishing into the void meanwhile
        broker.settings = broker.settings.model_copy(update={"port": running.port})
        broker.start()
        restarted_at = len(log.read_text())
        wait_for(
            lambda: "0 failed; published nothing new" in log.read_text()[restarted_at:],
            "a complete poll after the restart",
            300,
            producer,
            log,
        )
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if producer.poll() is None:
            kill_group(producer)
    output = log.read_text()
    failed_units = sum(int(n) for n in re.findall(r"(\d+) failed;", output))

    settings = streaming_settings(
        tmp_path / "stream",
        running.bootstrap_servers,
        **topic_names("spotify"),  # the defaults, as the producer published them
    )
    try:
        assert run_job(settings, True, threading.Event(), spark) == 0
    finally:
        broker.stop()
    accepted = accepted_event_ids(data_dir / "state" / "producer.sqlite")
    records, in_bronze = bronze_event_ids(spark, settings)
    assert len(accepted) == sum(catalogue_counts(server).values()), "the producer finished the catalogue"
    assert accepted <= in_bronze, f"{len(accepted - in_bronze)} accepted event(s) never arrived"
    assert in_bronze == accepted, "nothing arrived that the producer did not account for"
    assert silver_duplicates(spark, settings) == dict.fromkeys(silver_duplicates(spark, settings), 0)
    assert table(spark, settings, "silver_playlist_history").count() == catalogue_counts(server)["playlist_membership"]
    figures(
        units_published_before_the_stop=stopped_after,
        units_failed_while_down=failed_units,
        events_accepted=len(accepted),
        bronze_records=records,
        distinct_event_ids=len(in_bronze),
        re_sent_records_absorbed=records - len(in_bronze),
        missing=len(accepted - in_bronze),
        silver_duplicates=0,
    )


def test_producer_sigkilled_mid_poll_then_restarted(
    spark: SparkSession,
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    server = sandbox_factory(
        "extended", seed=6, tracks=3000, artists=300, albums=600, playlists=12, favourite_playlists=3
    )
    set_faults(server, slow_ms=40)
    settings = streaming_settings(tmp_path / "stream", bootstrap_servers)
    data_dir = tmp_path / "data"
    env = producer_env(
        server,
        data_dir,
        bootstrap_servers,
        PRODUCER_AUTH="client",
        **settings.topic_env(),
    )
    log = tmp_path / "producer.log"
    rng = random.Random(int(os.environ.get("FAULTS_SEED", "2026")))
    producer = start_group(["producers", "run", "--once"], env, tmp_path, log)
    wait_for(lambda: "playlist '" in log.read_text(), "a published playlist", 120, producer, log)
    time.sleep(rng.uniform(0, 1.5))
    assert producer.poll() is None, "killed mid-poll, not after it"
    kill_group(producer)
    done_before_kill = log.read_text().count("playlist '")
    recorded_before_restart = len(accepted_event_ids(data_dir / "state" / "producer.sqlite"))

    restarted = run_module("producers", "run", "--once", env=env, cwd=tmp_path, timeout=300)
    assert restarted.returncode == 0, restarted.stdout[-3000:] + restarted.stderr[-3000:]
    assert run_job(settings, True, threading.Event(), spark) == 0
    accepted = accepted_event_ids(data_dir / "state" / "producer.sqlite")
    records, in_bronze = bronze_event_ids(spark, settings)
    expected = catalogue_counts(server)
    assert len(accepted) == sum(expected.values()) and in_bronze == accepted, "no event missing downstream"
    duplicates = silver_duplicates(spark, settings)
    assert duplicates == dict.fromkeys(duplicates, 0)
    assert table(spark, settings, "silver_tracks").count() == expected["track"]
    assert table(spark, settings, "silver_playlist_members").count() == expected["playlist_membership"]
    assert table(spark, settings, "track_features").count() == expected["track"]
    figures(
        units_done_before_the_kill=done_before_kill,
        events_recorded_before_the_kill=recorded_before_restart,
        events_expected=sum(expected.values()),
        bronze_records=records,
        distinct_event_ids=len(in_bronze),
        re_sent_records_absorbed=records - len(in_bronze),
        silver_duplicates=0,
    )
