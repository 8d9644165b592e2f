"""The streaming job on the real stack: Kafka -> bronze -> quarantine/silver/gold, exactly once."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline_runtime.kafka_admin import ensure_topics
from producers.events import make_event, track_payload
from streaming.progress import read_progress
from tests.support.kafka import publish_raw
from tests.support.streaming import streaming_env, streaming_settings, table


def test_long_running_job_streams_keeps_tables_tidy_and_stops_on_sigterm(
    spark: SparkSession, bootstrap_servers: str, tmp_path: Path
) -> None:
    settings = streaming_settings(tmp_path, bootstrap_servers)
    ensure_topics(bootstrap_servers, settings.topics)
    env = streaming_env(settings, STREAMING_TRIGGER_INTERVAL="2 seconds", STREAMING_MAINTENANCE_INTERVAL_SECONDS="10")
    log = (tmp_path / "streaming.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streaming", "run"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        for wave in range(2):  # records that arrive while the job runs are picked up by the next trigger
            events = [
                make_event(
                    "track", f"{wave}{i:021d}", track_payload({"id": f"{wave}{i:021d}", "name": "x"}), "test"
                ).to_bytes()
                for i in range(50)
            ]
            publish_raw(bootstrap_servers, [(settings.topic_tracks, e) for e in events])
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                silver = [x for x in read_progress(settings.progress_file) if x["query"] == "silver"]
                written = sum(x["rows_written"].get("silver_tracks", 0) for x in silver)
                if written >= 50 * (wave + 1):
                    break
                assert process.poll() is None, (tmp_path / "streaming.log").read_text()[-3000:]
                time.sleep(1)
        deadline = time.monotonic() + 120
        history = ""
        while time.monotonic() < deadline and not ("OPTIMIZE" in history and "VACUUM END" in history):
            time.sleep(2)
            rows = spark.sql(f"DESCRIBE HISTORY delta.`{settings.table('silver_tracks')}`").collect()
            history = " ".join(r.operation for r in rows)
        assert "OPTIMIZE" in history and "VACUUM END" in history, history
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0, (tmp_path / "streaming.log").read_text()[-3000:]
        assert time.monotonic() - started < 120
    finally:
        process.kill()
        log.close()
    assert table(spark, settings, "silver_tracks").count() == 100
    assert table(spark, settings, "bronze").count() == 100
    assert table(spark, settings, "track_features").count() == 100, "gold kept up through the upkeep"
    assert "SIGTERM received: stopping after the current batch" in (tmp_path / "streaming.log").read_text()
