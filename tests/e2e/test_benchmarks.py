"""The benchmarks measure what they say: every side publishes or writes every record, the API counts hold.

Nothing here asserts a speed (the numbers are measurements: `make bench`); these tests keep the
benchmark code from rotting, on small sizes, against the real broker, Spark and Delta.
"""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from benchmarks import streaming
from benchmarks.common import PeakRss
from tests.support.processes import JARS_DIR, ROOT, TEST_DRIVER_JAVA_OPTIONS, run_module

if TYPE_CHECKING:
    pass


def test_quick_producer_and_api_benchmarks(tmp_path: Path) -> None:
    env = {**os.environ, "JARS_DIR": str(JARS_DIR)}
    result = run_module(
        "benchmarks", "--quick", "--only", "producer", "api", "--results", str(tmp_path), env=env, cwd=ROOT, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "quick-producer-api.json").read_text())

    producer = results["producer"]
    print(f"\nproducer events/s: {producer['events_per_second']}, of the ceiling: {producer['ratio_to_ceiling']}")
    assert producer["events"] >= 18_000, "about 20k events of the first poll of 500-track playlists"
    assert all(rate > 0 for rate in producer["events_per_second"].values())
    assert set(producer["ratio_to_ceiling"]) == {"confluent-kafka", "kafka-python"}
    assert 350 < producer["mean_event_bytes"] < 700, "events of realistic size"

    for generation in ("extended", "development"):
        api = results["api"][generation]
        print(f"{generation}: {api}")
        assert api["unchanged_poll"]["requests_per_unchanged_playlist"] == 1.0
        assert api["unchanged_poll"]["events_republished"] == 0
        assert api["changed_poll"]["events"]["playlist_membership"] == 3 * 3, "3 playlists: 1 removed, 2 added"
        assert api["changed_poll"]["events"]["track"] == 3 * 2, "only the added tracks are new"
        assert api["first_poll"]["requests_per_new_track"] > 0
    assert (
        results["api"]["development"]["first_poll"]["requests_per_new_track"]
        > (results["api"]["extended"]["first_poll"]["requests_per_new_track"])
    ), "no batch endpoints in development mode"

    table = (tmp_path / "quick-producer-api.md").read_text()
    assert "| ours, confluent-kafka (the default) |" in table and "| development |" in table
    assert results["peak_rss_mib"]["broker"] > 100


def test_streaming_benchmark_both_sides_write_every_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's JVM as every command a test runs has it (clean_env): the benchmark passes this process's
    # environment on.
    monkeypatch.setenv("SPARK_DRIVER_JAVA_OPTIONS", TEST_DRIVER_JAVA_OPTIONS)
    with PeakRss() as memory:
        result = streaming.run(1500, memory)  # any volume will do: `make bench` measures speed
    print(f"\nstreaming: {json.dumps(result)}")
    events = result["events"]
    assert 1450 <= events <= 1650  # the workload has at least 500 tracks
    assert result["ours"]["bronze_rows_in_table"] == events
    assert result["peer"]["bronze_rows_in_table"] == result["peer"]["records"] == events
    layers = result["ours"]["layers"]
    assert layers["bronze"]["rows"] == layers["silver"]["rows"] == events
    assert layers["gold"]["rows"] >= result["tracks"], "every track reaches gold at least once"
    # Both sides' memory was sampled (the figure is `make bench`'s, not a test's: the peer runs for about 1.5 s, so
    # the sampler's 0.5 s ticks may see it only while it starts, under 20 MiB).
    assert result["ours"]["peak_rss_mib"] > 200 and result["peer"]["peak_rss_mib"] > 0
