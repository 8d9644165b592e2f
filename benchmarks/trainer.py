"""Trainer cost against gold size: a full cycle at each size, then a skip cycle on the same gold version.

The gold table (`track_features`, as the streaming job writes it) is made from a sandbox catalogue of
the size asked for and written with delta-rs, then `python -m training run --once` runs as its own
process (Spark `local[2]`, MLflow on SQLite under the temporary data dir) while the peak RSS of its
process tree (Python driver + JVM) is sampled.

    python -m benchmarks.trainer --tracks 10000 100000
"""

import argparse
import itertools
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PeakRss, run_worker


def gold_table(tracks: int, seed: int = 5) -> Any:
    """A `track_features` pyarrow table of `tracks` rows (extended API: every feature present)."""
    import pyarrow as pa  # noqa: PLC0415

    from pipeline_runtime.contract import GOLD_SCHEMA, ddl_columns  # noqa: PLC0415
    from producers.sandbox.catalogue import CatalogueSize, generate_catalogue, gold_rows  # noqa: PLC0415

    size = CatalogueSize(tracks=tracks, artists=max(20, tracks // 10), albums=max(40, tracks // 4))
    rows = gold_rows(generate_catalogue(seed, size))
    arrow_types = {
        "STRING": pa.string(),
        "INT": pa.int32(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
        "DATE": pa.date32(),
        "ARRAY<STRING>": pa.list_(pa.string()),
    }
    ddl = (column.split(" ", 1) for column in ddl_columns(GOLD_SCHEMA))
    fields = [pa.field(name, arrow_types[kind.upper()]) for name, kind in ddl]
    schema = pa.schema(fields)
    now = int(time.time() * 1_000_000)
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema if f.name != "updated_at"}
    columns["updated_at"] = [now] * len(rows)
    return pa.table(columns, schema=schema)


def write_gold(location: Path, tracks: int) -> None:
    from deltalake import write_deltalake  # noqa: PLC0415

    write_deltalake(str(location), gold_table(tracks), mode="overwrite")


def bench_size(tracks: int, tuning: str, memory: PeakRss) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        started = time.monotonic()
        write_gold(data / "tables" / "track_features", tracks)
        write_seconds = time.monotonic() - started
        env = {
            "DATA_DIR": str(data),
            "SPARK_MASTER": "local[2]",
            "SPARK_UI_ENABLED": "false",
            "TRAINING_TUNING": tuning,
            "MLFLOW_TRACKING_URI": None,
        }
        full = run_worker(["-m", "training", "run", "--once"], env, memory, f"trainer-{tracks}")
        skip = run_worker(["-m", "training", "run", "--once"], env, memory, f"trainer-skip-{tracks}")
    return {
        "tracks": tracks,
        "tuning": tuning,
        "gold_write_seconds": round(write_seconds, 1),
        "full_cycle_seconds": round(full.seconds, 1),
        "full_cycle_peak_rss_mib": full.peak_rss_mib,
        "skip_cycle_seconds": round(skip.seconds, 1),
        "skip_cycle_peak_rss_mib": skip.peak_rss_mib,
        "skip_reason": next(
            (line.strip() for line in (skip.stdout + skip.stderr).splitlines() if "skipped" in line), None
        ),
        "slowest_steps": slowest_steps(full.stdout + full.stderr),
    }


def slowest_steps(log: str, top: int = 6) -> list[tuple[str, float]]:
    """The cycle's steps that took longest, from its log ("<step>: done in <n> s")."""
    found = re.findall(r"INFO\s+(.+?): done in ([\d.]+) s", log)
    steps = [(name.strip(), float(seconds)) for name, seconds in found]
    return sorted(steps, key=lambda step: step[1], reverse=True)[:top]


def run(sizes: list[int], tuning: str, memory: PeakRss) -> dict[str, Any]:
    results = []
    for tracks in sizes:
        print(f"trainer: {tracks:,} tracks ({tuning} grid) ...", file=sys.stderr, flush=True)
        results.append(bench_size(tracks, tuning, memory))
        print(f"  {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    return {"tuning": tuning, "sizes": results, "growth": growth(results)}


def growth(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Between consecutive sizes: how many times the rows and the full cycle's wall time grew."""
    steps = []
    for small, large in itertools.pairwise(results):
        rows, seconds = large["tracks"] / small["tracks"], large["full_cycle_seconds"] / small["full_cycle_seconds"]
        steps.append(
            {"from": small["tracks"], "to": large["tracks"], "rows_x": round(rows, 1), "time_x": round(seconds, 2)}
        )
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--tuning", choices=("full", "quick"), default="quick")
    args = parser.parse_args(argv)
    with PeakRss() as memory:
        print(json.dumps(run(args.tracks, args.tuning, memory), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
