"""End-to-end latency: a steady load through the long-running streaming job, send → readable in silver and gold.

The streaming job runs as in production (`python -m streaming run`, processing-time trigger) while this
process publishes our producer's events at a fixed rate, each new track's event stamped with its send
time (`observed_at`). A track is readable in silver when the Delta commit that first holds its row in
`silver_tracks` is written (the log file's time), so latency = that time - `observed_at`; readable in gold
when the first `track_features` commit holding its row is written (gold runs on its own trigger).

    python -m benchmarks.latency --rate 1500 --seconds 120 --trigger "5 seconds"
"""

import argparse
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import Broker, PeakRss, delta_commits, local_broker, percentile, worker_env
from benchmarks.streaming import TOPIC_PREFIX, spark_env
from pipeline_runtime.settings import topic_names

TRIGGER = "5 seconds"  # the job's default is 30 seconds: latency then waits for the trigger


def wait_for_job(progress: Path, process: "subprocess.Popen[bytes]", log: Path, timeout: float = 180.0) -> None:
    """Until the job's queries made their first progress in its `progress` log (the tables exist and the trigger
    runs); else what the job's log (`log`) ends with."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the streaming job exited {process.returncode} before it started:\n{log_tail(log)}")
        if progress.is_file() and progress.stat().st_size > 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the streaming job made no progress in {timeout:.0f} s:\n{log_tail(log)}")


def log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else ""


def send_steady(broker: Broker, rate: float, seconds: float) -> dict[str, Any]:
    """Publish our producer's events at `rate` per second for `seconds`; track events carry their send
    time as observed_at. Returns what was sent."""
    from confluent_kafka import Producer  # noqa: PLC0415

    from benchmarks.producer import InMemoryApi, first_poll_records, settings_for, workload  # noqa: PLC0415
    from producers.events import make_event, utc_now  # noqa: PLC0415

    catalogue, playlists = workload(int(rate * seconds) + 1000)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for("ceiling", broker.bootstrap_servers, TOPIC_PREFIX, Path(tmp), list(playlists))
        records = first_poll_records(settings, InMemoryApi(catalogue, playlists))
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "linger.ms": 5,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "lz4",
            "logger": logging.getLogger("librdkafka"),
        }
    )
    started = time.monotonic()
    sent = tracks = 0
    while sent < len(records):
        due = int((time.monotonic() - started) * rate)
        if due >= rate * seconds:
            break
        while sent < min(due, len(records)):
            topic, key, value = records[sent]
            if topic == settings.topic_tracks:  # re-stamp: observed_at = the moment it is sent
                envelope = json.loads(value)
                event = make_event("track", key.decode(), envelope["payload"], envelope["source"], utc_now())
                value = event.to_bytes()
                tracks += 1
            producer.produce(topic, key=key, value=value)
            sent += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(60)
    return {"events": sent, "track_events": tracks, "seconds": round(time.monotonic() - started, 1)}


def first_commits(table: Path, columns: list[str]) -> dict[str, tuple[float, dict[str, Any]]]:
    """Each track's first commit in a local Delta table: when it became visible, and the row it added."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    found: dict[str, tuple[float, dict[str, Any]]] = {}
    for commit in delta_commits(table):
        for path in commit.added_files:
            for row in pq.read_table(table / path, columns=["track_id", *columns]).to_pylist():
                found.setdefault(row["track_id"], (commit.visible_at, row))
    return found


def observed_times(silver: dict[str, tuple[float, dict[str, Any]]]) -> dict[str, float]:
    """Each track's observed_at in its first silver_tracks commit, as a Unix time (Spark stores UTC)."""
    return {
        track_id: (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        for track_id, (_, row) in silver.items()
        if (moment := row["observed_at"]) is not None
    }


def silver_latencies(table: Path) -> list[float]:
    """Seconds from each track's observed_at to the first silver_tracks commit holding it."""
    first = first_commits(table, ["observed_at"])
    return [first[track][0] - observed for track, observed in observed_times(first).items()]


def gold_latencies(gold: Path, silver: Path) -> list[float]:
    """Seconds from each track's observed_at (as silver first holds it) to the first gold commit holding it."""
    observed = observed_times(first_commits(silver, ["observed_at"]))
    return [at - observed[track] for track, (at, _) in first_commits(gold, []).items() if track in observed]


def bronze_latencies(table: Path, topic: str) -> list[float]:
    """Seconds from each track event's observed_at to the bronze commit holding its Kafka record."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    latencies = []
    for commit in delta_commits(table):
        for path in commit.added_files:
            columns = pq.read_table(table / path, columns=["topic", "value"]).to_pydict()
            for record_topic, value in zip(columns["topic"], columns["value"], strict=True):
                if record_topic == topic:
                    observed = datetime.fromisoformat(json.loads(value)["observed_at"].replace("Z", "+00:00"))
                    latencies.append(commit.visible_at - observed.timestamp())
    return latencies


def spread(latencies: list[float]) -> dict[str, float | None]:
    found = bool(latencies)
    return {f"p{q}_seconds": round(percentile(latencies, q), 2) if found else None for q in (50, 95, 99)} | {
        "max_seconds": round(max(latencies), 2) if found else None
    }


def run(
    rate: float, seconds: float, trigger: str, memory: PeakRss, job_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`job_env`: more settings of the streaming job (a lever to measure, or STREAMING_PROGRESS_LOG to keep its
    progress log)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        with local_broker(Path(tmp) / "broker") as broker:
            memory.watch("broker", broker.pid)
            env = {**spark_env(data, broker), "STREAMING_TRIGGER_INTERVAL": trigger, **(job_env or {})}
            from pipeline_runtime.kafka_admin import ensure_topics  # noqa: PLC0415

            ensure_topics(
                broker.bootstrap_servers,
                list(topic_names(TOPIC_PREFIX).values()),  # every topic the job subscribes to
                partitions=3,
            )
            # The job's output goes to a file: a pipe nobody reads fills up with Spark's warnings and blocks it.
            log = Path(tmp) / "streaming.log"
            with log.open("wb") as output:
                job = subprocess.Popen(
                    [sys.executable, "-m", "streaming", "run"],
                    env=worker_env(env),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            memory.watch("streaming-steady", job.pid)
            try:
                wait_for_job(
                    Path(env.get("STREAMING_PROGRESS_LOG") or data / "logs" / "streaming-progress.jsonl"), job, log
                )
                print(
                    f"latency: job running (trigger {trigger}); {rate:.0f} events/s for {seconds:.0f}s ...",
                    file=sys.stderr,
                    flush=True,
                )
                sent = send_steady(broker, rate, seconds)
                time.sleep(3 * _trigger_seconds(trigger) + 10)  # the last events through both queries
            finally:
                job.send_signal(signal.SIGTERM)
                try:
                    job.wait(180)
                except subprocess.TimeoutExpired:
                    job.kill()
                memory.watched.pop("streaming-steady", None)
                memory.watched.pop("broker", None)
            latencies = silver_latencies(data / "tables" / "silver_tracks")
            to_bronze = bronze_latencies(data / "tables" / "bronze", f"{TOPIC_PREFIX}.tracks")
            to_gold = gold_latencies(data / "tables" / "track_features", data / "tables" / "silver_tracks")
    return {
        "trigger_interval": trigger,
        **({"job_settings": job_env} if job_env else {}),
        "target_events_per_second": rate,
        "sent": sent,
        "tracks_found_in_silver": len(latencies),
        **spread(latencies),
        "to_bronze": {"tracks_found": len(to_bronze), **spread(to_bronze)},
        "to_gold": {"tracks_found": len(to_gold), **spread(to_gold)},
        "streaming_peak_rss_mib": memory.peak_mib("streaming-steady"),
    }


def _trigger_seconds(trigger: str) -> float:
    number, unit = trigger.split()[:2]
    return float(number) * (60 if unit.startswith("minute") else 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the load lasts (default 120)")
    parser.add_argument("--trigger", default=TRIGGER, help=f'the job\'s trigger interval (default "{TRIGGER}")')
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the streaming job, e.g. STREAMING_GOLD_TRIGGER_INTERVAL='20 seconds' (repeatable)",
    )
    args = parser.parse_args(argv)
    job_env = dict(item.split("=", 1) for item in args.set)
    with PeakRss() as memory:
        print(json.dumps(run(args.rate, args.seconds, args.trigger, memory, job_env), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
