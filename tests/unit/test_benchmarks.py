"""The benchmarks' arithmetic and their markdown: what a reader of the README's table relies on."""

from pathlib import Path

import pytest

from benchmarks.common import percentile, ratio
from benchmarks.report import README_END, README_START, markdown, update_readme
from benchmarks.streaming import catch_up_seconds, layer_rates
from benchmarks.trainer import growth, slowest_steps


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    assert ratio(30, 40) == 0.75 and ratio(1, 0) is None


def test_layer_rates_and_catch_up_from_progress_lines() -> None:
    progress = [
        {"query": "bronze", "time": "2026-01-01T00:00:10+00:00", "input_rows": 1000, "batch_duration_ms": 2000},
        {"query": "bronze", "time": "2026-01-01T00:00:14+00:00", "input_rows": 500, "batch_duration_ms": 1000},
        {
            "query": "silver",
            "time": "2026-01-01T00:00:20+00:00",
            "input_rows": 1500,
            "batch_duration_ms": 9000,
            "layer_seconds": {"silver": 3.0},
        },
        {
            "query": "gold",
            "time": "2026-01-01T00:00:26+00:00",
            "input_rows": 1200,
            "batch_duration_ms": 6000,
            "layer_seconds": {"gold": 5.0},
        },
    ]
    layers = layer_rates(progress, gold_rows=400)
    assert layers["bronze"] == {"batches": 2, "rows": 1500, "seconds": 3.0, "rows_per_second": 500}
    assert layers["silver"]["rows_per_second"] == 500
    assert layers["gold"]["rows_per_second"] == 80 and layers["gold"]["events_per_second"] == 300
    assert layers["gold"]["batches"] == 1 and layers["silver"]["batches"] == 1
    assert catch_up_seconds(progress) == 18.0  # from 00:00:08 (first start) to 00:00:26 (last end)


def test_layer_rates_of_the_one_ingest_query() -> None:
    """An ingest batch counts for bronze with its append and the query's own bookkeeping (what is not its
    foreachBatch), for silver with its silver writes."""
    ingest = {
        "query": "ingest",
        "time": "2026-01-01T00:00:20+00:00",
        "input_rows": 3000,
        "batch_duration_ms": 10_000,
        "durations_ms": {"addBatch": 9_500},
        "layer_seconds": {"bronze": 1.5, "silver": 7.5},
    }
    gold = {"query": "gold", "time": "2026-01-01T00:00:26+00:00", "input_rows": 900, "batch_duration_ms": 4000}
    layers = layer_rates([ingest, {**gold, "layer_seconds": {"gold": 3.0}}], gold_rows=600)
    assert layers["bronze"] == {"batches": 1, "rows": 3000, "seconds": 2.0, "rows_per_second": 1500}
    assert layers["silver"] == {"batches": 1, "rows": 3000, "seconds": 7.5, "rows_per_second": 400}
    assert layers["gold"]["rows_per_second"] == 200


def test_trainer_growth_and_slowest_steps() -> None:
    sizes = [{"tracks": 10_000, "full_cycle_seconds": 50.0}, {"tracks": 100_000, "full_cycle_seconds": 75.0}]
    assert growth(sizes) == [{"from": 10_000, "to": 100_000, "rows_x": 10.0, "time_x": 1.5}]
    log = "[1] INFO     popularity: tuning linear: done in 3.5 s\n[2] INFO     recommendations: done in 9.0 s\n"
    assert slowest_steps(log) == [("recommendations", 9.0), ("popularity: tuning linear", 3.5)]


RESULTS = {
    "mode": "quick",
    "machine": {"date": "2026-11-25 03:00 UTC", "commit": "abc1234", "cpus": 2, "memory_gib": 23.5, "python": "3.11.7"},
    "total_seconds": 321.0,
    "producer": {
        "events": 20000,
        "mean_event_bytes": 444,
        "rounds": 1,
        "events_per_second": {"ceiling": 80000, "confluent-kafka": 40000, "kafka-python": 8000},
        "ratio_to_ceiling": {"confluent-kafka": 0.5, "kafka-python": 0.1},
    },
    "api": {
        "extended": {
            "playlists": 6,
            "new_tracks": 300,
            "first_poll": {"requests_per_new_track": 0.08},
            "changed_poll": {"requests_per_changed_playlist": 4.0},
            "unchanged_poll": {"requests_per_unchanged_playlist": 1.0, "events_republished": 0},
        }
    },
    "streaming": {
        "events": 50000,
        "tracks": 16000,
        "mean_event_bytes": 440,
        "ours": {
            "catch_up_events_per_second": 3000,
            "end_to_end_events_per_second": 2000,
            "wall_seconds": 25.0,
            "queries": ["gold", "ingest"],
            "layers": {
                "bronze": {"rows_per_second": 9000},
                "silver": {"rows_per_second": 6000},
                "gold": {"rows": 16000, "rows_per_second": 4000, "events_per_second": 12000},
            },
        },
        "peer": {"rows_per_second": 45000, "wall_seconds": 2.0},
        "bronze_ratio_ours_to_peer": 0.2,
    },
    "latency": {"error": "the streaming job made no progress in time"},
    "trainer": {
        "tuning": "quick",
        "sizes": [
            {
                "tracks": 2000,
                "full_cycle_seconds": 60.0,
                "full_cycle_peak_rss_mib": 3000.0,
                "skip_cycle_seconds": 3.0,
                "skip_cycle_peak_rss_mib": 150.0,
            }
        ],
        "growth": [],
    },
    "models": {
        "results": [
            {
                "tracks": 2000,
                "shape": "catalogue",
                "task": "popularity",
                "metric": "r2",
                "baseline": 0.12,
                "reference": 0.6057,
                "ours": 0.6983,
                "ceiling": 0.74,
                "latent_ceiling": 0.77,
            },
            {"tracks": 2000, "shape": "development", "task": "popularity", "skipped": "no popularity"},
        ],
    },
    "peak_rss_mib": {"broker": 900.0, "producer-confluent-kafka": 200.0, "streaming": 2500.0},
}


def test_markdown_has_every_section_with_ratios_and_failures() -> None:
    text = markdown(RESULTS)
    assert "quick run, 2026-11-25 03:00 UTC, commit abc1234" in text
    assert "| ours, confluent-kafka (the default) | 40,000 | 0.50x |" in text
    assert "| extended | 6 | 300 | 0.08 | 4 | 1 | 0 |" in text
    assert "| bronze (Kafka → Delta, exactly once) | 9,000 | 45,000 | 0.20x |" in text
    assert "`--available-now` runs the ingest query (each batch appends to bronze, then writes silver;" in text
    assert "Latency benchmark failed: the streaming job made no progress in time" in text
    assert "| 2,000 | 60 s | 3,000 MiB | - | 3 s | 150 MiB |" in text
    assert "| Kafka broker (JVM, 1 GiB heap) | 900 MiB |" in text
    assert "| 2,000 | catalogue | popularity (r2) | 0.120 | 0.606 | 0.698 | 0.740 | 0.770 |" in text
    assert "development" not in text.split("**Models**")[1].split("**Peak memory**")[0].split("|", 1)[1]


def test_update_readme_replaces_only_the_marked_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_START}\nold table\n{README_END}\n\n## Next\n")
    update_readme(readme, "new table")
    assert readme.read_text() == f"# Title\n\n{README_START}\nnew table\n{README_END}\n\n## Next\n"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, "x")


def test_memory_counts_processes_not_their_threads() -> None:
    import os
    import threading

    import psutil

    from benchmarks.common import is_process, tree_rss

    done = threading.Event()
    worker = threading.Thread(target=done.wait)
    worker.start()
    try:
        thread_ids = [t.id for t in psutil.Process().threads() if t.id != os.getpid()]
        assert thread_ids and not any(is_process(t) for t in thread_ids)
        assert is_process(os.getpid())
        pids = [int(key.split()[0]) for key in tree_rss(psutil.Process())]  # this process and any children
        assert os.getpid() in pids and not set(thread_ids) & set(pids)
    finally:
        done.set()
        worker.join()
