"""Streaming catch-up: N producer-shaped events through bronze, silver and gold, and the peer on bronze.

The events are what our producer publishes for a sandbox catalogue (per track: its playlist
membership, the track, its audio features, and its artist once), put into a fresh broker's topics with
a bare produce loop. Then, in the same run against the same records:

* ours: `python -m streaming run --available-now` on `local[2]` as its own process; rows/s per layer
  from its progress log (bronze: the bronze query's batch time; silver and gold: the time the silver
  batch function spends on each). Bronze and silver run concurrently on the two cores, as in production.
* the peer: `python -m benchmarks.peer`, a Python consumer writing the bronze table with delta-rs.

    python -m benchmarks.streaming --events 1000000
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Broker, PeakRss, delta_commits, local_broker, rate, ratio, run_worker

TOPIC_PREFIX = "spotify"  # the default topics: spotify.tracks, spotify.artists, ...


def load_topics(broker: Broker, events: int) -> dict[str, Any]:
    """Publish about `events` of our producer's events to the default topics; what was sent."""
    from benchmarks.producer import InMemoryApi, first_poll_records, run_ceiling, settings_for, workload  # noqa: PLC0415

    catalogue, playlists = workload(events)
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for("ceiling", broker.bootstrap_servers, TOPIC_PREFIX, Path(tmp), list(playlists))
        records = first_poll_records(settings, InMemoryApi(catalogue, playlists))
    run_ceiling(settings, records)  # the bare produce loop: the broker holds them all when it returns
    by_topic: dict[str, int] = {}
    for topic, _, _ in records:
        by_topic[topic] = by_topic.get(topic, 0) + 1
    return {
        "events": len(records),
        "tracks": len(catalogue.tracks),
        "by_topic": by_topic,
        "topics": settings.topics,
        "bytes": sum(len(v) for _, _, v in records),
    }


def spark_env(data: Path, broker: Broker) -> dict[str, str | None]:
    return {
        "DATA_DIR": str(data),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SPARK_MASTER": "local[2]",
        "SPARK_UI_ENABLED": "false",
        "SPARK_DRIVER_MEMORY": "2g",
    }


def layer_rates(progress: list[dict[str, Any]], gold_rows: int) -> dict[str, Any]:
    """Rows and rows/s per layer from the progress log's micro-batches. The one ingest query's batches
    (STREAMING_FUSED_INGEST) count for bronze with their bronze append and the query's own bookkeeping (offsets and
    commit logs, as a bronze query's batch includes them), and for silver with their silver writes."""
    from streaming.job import INGEST  # noqa: PLC0415 - pyspark: not for --help

    ingest = [line for line in progress if line["query"] == INGEST]
    bronze = [line for line in progress if line["query"] == "bronze"] + ingest
    silver = [line for line in progress if line["query"] == "silver"] + ingest
    gold = [line for line in progress if line["query"] == "gold"]
    bronze_rows = sum(line["input_rows"] for line in bronze)
    bronze_seconds = sum(bronze_batch_seconds(line) for line in bronze)
    silver_rows = sum(line["input_rows"] for line in silver)
    silver_seconds = sum(line.get("layer_seconds", {}).get("silver", 0) for line in silver)
    gold_seconds = sum(line.get("layer_seconds", {}).get("gold", 0) for line in gold)
    merges: dict[str, float] = {}
    for line in silver + gold:
        for table, seconds in (line.get("merge_seconds") or {}).items():
            merges[table] = round(merges.get(table, 0.0) + seconds, 1)
    return {
        "bronze": {
            "batches": len(bronze),
            "rows": bronze_rows,
            "seconds": round(bronze_seconds, 1),
            "rows_per_second": rate(bronze_rows, bronze_seconds),
        },
        "silver": {
            "batches": len(silver),
            "rows": silver_rows,
            "seconds": round(silver_seconds, 1),
            "rows_per_second": rate(silver_rows, silver_seconds),
        },
        "gold": {
            "batches": len(gold),
            "rows": gold_rows,
            "seconds": round(gold_seconds, 1),
            "rows_per_second": rate(gold_rows, gold_seconds),
            "events_per_second": rate(silver_rows, gold_seconds),
        },
        "merge_seconds": dict(sorted(merges.items(), key=lambda item: -item[1])),
    }


def bronze_batch_seconds(line: dict[str, Any]) -> float:
    """A bronze query's batch: all of it; an ingest batch (its facts hold a bronze layer): its bronze append and what
    is not its foreachBatch."""
    total = float(line["batch_duration_ms"] or 0) / 1000
    if "bronze" not in line.get("layer_seconds", {}):
        return total
    outside = total - float((line.get("durations_ms") or {}).get("addBatch", 0)) / 1000
    return float(line["layer_seconds"]["bronze"]) + max(outside, 0.0)


def catch_up_seconds(progress: list[dict[str, Any]]) -> float:
    """From the first micro-batch's start to the last one's end (Spark's start-up left out)."""
    from datetime import datetime  # noqa: PLC0415

    if not progress:
        return 0.0
    ends = [datetime.fromisoformat(line["time"]).timestamp() for line in progress]
    starts = [end - (line["batch_duration_ms"] or 0) / 1000 for end, line in zip(ends, progress, strict=True)]
    return max(ends) - min(starts)


def gold_rows_written(table: Path) -> int:
    """Rows the gold MERGEs inserted or updated, from the table's Delta log."""
    total = 0
    for commit in delta_commits(table):
        metrics = commit.metrics
        total += int(metrics.get("numTargetRowsInserted", 0)) + int(metrics.get("numTargetRowsUpdated", 0))
    return total


def run(events: int, memory: PeakRss, with_peer: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        with local_broker(Path(tmp) / "broker") as broker:
            memory.watch("broker", broker.pid)
            started = time.monotonic()
            sent = load_topics(broker, events)
            publish_seconds = time.monotonic() - started
            print(
                f"streaming: {sent['events']:,} events in the topics ({publish_seconds:.0f}s); Spark catch-up ...",
                file=sys.stderr,
                flush=True,
            )
            ours = run_worker(
                ["-m", "streaming", "run", "--available-now"], spark_env(data, broker), memory, "streaming"
            )
            from streaming.progress import read_progress  # noqa: PLC0415 - pyspark: not for --help

            progress = read_progress(data / "logs" / "streaming-progress.jsonl")
            tables = data / "tables"
            layers = layer_rates(progress, gold_rows_written(tables / "track_features"))
            bronze_rows = sum(int(c.metrics.get("numOutputRows", 0)) for c in delta_commits(tables / "bronze"))
            catch_up = catch_up_seconds(progress)
            result: dict[str, Any] = {
                "events": sent["events"],
                "tracks": sent["tracks"],
                "mean_event_bytes": round(sent["bytes"] / sent["events"]),
                "spark_master": "local[2]",
                "ours": {
                    "wall_seconds": round(ours.seconds, 1),
                    "end_to_end_events_per_second": rate(sent["events"], ours.seconds),
                    "catch_up_seconds": round(catch_up, 1),
                    "catch_up_events_per_second": rate(sent["events"], catch_up),
                    "bronze_rows_in_table": bronze_rows,
                    "peak_rss_mib": ours.peak_rss_mib,
                    "queries": sorted({line["query"] for line in progress}),
                    "layers": layers,
                },
            }
            if with_peer:
                print("streaming: the peer (confluent-kafka consumer + delta-rs) ...", file=sys.stderr, flush=True)
                peer = run_worker(
                    [
                        "-m",
                        "benchmarks.peer",
                        "--bootstrap",
                        broker.bootstrap_servers,
                        "--table",
                        str(Path(tmp) / "peer-bronze"),
                        "--expected",
                        str(sent["events"]),
                        "--topics",
                        *sent["topics"],
                    ],
                    {},
                    memory,
                    "peer",
                )
                peer_rows = sum(
                    int(c.metrics.get("num_added_rows", c.metrics.get("numOutputRows", 0)))
                    for c in delta_commits(Path(tmp) / "peer-bronze")
                )
                result["peer"] = {
                    **peer.output,
                    "wall_seconds": round(peer.seconds, 1),
                    "bronze_rows_in_table": peer_rows,
                    "peak_rss_mib": peer.peak_rss_mib,
                }
                result["bronze_ratio_ours_to_peer"] = ratio(
                    layers["bronze"]["rows_per_second"], peer.output["rows_per_second"]
                )
            memory.watched.pop("broker", None)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--no-peer", action="store_true", help="leave out the delta-rs peer")
    args = parser.parse_args(argv)
    with PeakRss() as memory:
        result = run(args.events, memory, not args.no_peer)
        result["broker_peak_rss_mib"] = memory.peak_mib("broker")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
