"""Benchmarks: producer, API efficiency, streaming, latency, trainer, model quality and memory, side by side
with peers (the models with a reference model).

    python -m benchmarks            # the full run (about 25 minutes on 2 cores); updates the README's table
    python -m benchmarks --quick    # small sizes, a few minutes: checks that every benchmark works

Writes benchmarks/results/<mode>.json and <mode>.md (<mode>-<parts>.* for a run of some parts only).
Each comparison runs both sides in the same run on the same machine and reports their ratio. These are
measurements, not tests: nothing here fails on a slow number.
"""

import argparse
import json
import logging
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks import api, latency, models, streaming, trainer
from benchmarks.common import BenchmarkFailed, PeakRss, local_broker, ratio, run_worker
from benchmarks.report import markdown, update_readme
from pipeline_runtime.cli import console

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("producer", "api", "streaming", "latency", "trainer", "models")


@dataclass(frozen=True)
class Sizes:
    producer_events: int
    producer_rounds: int
    api_tracks: int
    streaming_events: int
    latency_seconds: float
    trainer_tracks: tuple[int, ...]
    model_tracks: tuple[int, ...]


FULL = Sizes(200_000, 3, 2000, 1_000_000, 120.0, (10_000, 100_000, 1_000_000), (2_000, 20_000))
QUICK = Sizes(20_000, 1, 1000, 50_000, 30.0, (2_000, 10_000), (2_000,))


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or None,
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def bench_producer(sizes: Sizes, memory: PeakRss) -> dict[str, Any]:
    """Ceiling and ours alternate, `rounds` times each (medians reported); kafka-python once."""
    rates: dict[str, list[float]] = {"ceiling": [], "confluent-kafka": [], "kafka-python": []}
    rss: dict[str, float] = {}
    mean_bytes = None
    with tempfile.TemporaryDirectory() as tmp, local_broker(Path(tmp)) as broker:
        memory.watch("broker", broker.pid)
        warm = ["-m", "benchmarks.producer", "--side", "ceiling", "--events", "20000", "--bootstrap"]
        run_worker([*warm, broker.bootstrap_servers], {}, memory, "warm-up")  # the broker's JIT and topics
        order = ["ceiling", "confluent-kafka"] * sizes.producer_rounds + ["kafka-python"]
        for side in order:
            console.print(f"producer: {side} ({sizes.producer_events:,} events) ...", highlight=False)
            args = [
                "-m",
                "benchmarks.producer",
                "--side",
                side,
                "--events",
                str(sizes.producer_events),
                "--bootstrap",
                broker.bootstrap_servers,
            ]
            result = run_worker(args, {}, memory, f"producer-{side}")
            rates[side].append(result.output["events_per_second"])
            rss[side] = max(rss.get(side, 0.0), result.peak_rss_mib or 0.0)
            mean_bytes = result.output.get("mean_event_bytes") or mean_bytes
            events = result.output["events"]
        memory.watched.pop("broker", None)
    medians = {side: round(statistics.median(values)) for side, values in rates.items()}
    return {
        "events": events,
        "mean_event_bytes": mean_bytes,
        "rounds": sizes.producer_rounds,
        "events_per_second": medians,
        "all_rounds": rates,
        "ratio_to_ceiling": {
            side: ratio(medians[side], medians["ceiling"]) for side in ("confluent-kafka", "kafka-python")
        },
        "peak_rss_mib": rss,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes instead of about 25")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run these only")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results", help="output folder")
    parser.add_argument("--no-readme", action="store_true", help="do not update the README's table (full runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("spotipy.client").setLevel(logging.CRITICAL)  # the development API's expected 403s
    sizes = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"
    results: dict[str, Any] = {"mode": mode, "machine": machine(), "sizes": sizes.__dict__}
    started = time.monotonic()
    steps: dict[str, Callable[[PeakRss], Any]] = {
        "producer": lambda memory: bench_producer(sizes, memory),
        "api": lambda _memory: api.run(sizes.api_tracks),
        "streaming": lambda memory: streaming.run(sizes.streaming_events, memory),
        "latency": lambda memory: latency.run(half_of_max(results), sizes.latency_seconds, latency.TRIGGER, memory),
        "trainer": lambda memory: trainer.run(list(sizes.trainer_tracks), "quick", memory),
        "models": lambda _memory: models.run(list(sizes.model_tracks)),
    }
    with PeakRss() as memory:
        for name in args.only:
            console.print(f"[bold]{name}[/bold]")
            begun = time.monotonic()
            try:
                results[name] = steps[name](memory)
            except BenchmarkFailed as exc:
                console.print(f"[red]{name} failed:[/red] {exc}", highlight=False)
                results[name] = {"error": str(exc)[-2000:]}
            results.setdefault("seconds", {})[name] = round(time.monotonic() - begun, 1)
        results["peak_rss_mib"] = {name: memory.peak_mib(name) for name in sorted(memory.peak)}
        results["peak_rss_processes_mib"] = {name: memory.breakdown_mib(name) for name in sorted(memory.peak)}
    results["total_seconds"] = round(time.monotonic() - started, 1)
    everything = set(args.only) == set(SECTIONS)
    name = mode if everything else f"{mode}-{'-'.join(args.only)}"  # a partial run keeps the full results
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.results / f"{name}.md").write_text(table)
    if mode == "full" and everything and not args.no_readme:
        update_readme(ROOT / "README.md", table)
    console.print(table, markup=False, highlight=False)
    console.print(f"results: {args.results / name}.json and .md ({results['total_seconds']:.0f}s)")
    return 1 if any("error" in results.get(name, {}) for name in args.only) else 0


def half_of_max(results: dict[str, Any]) -> float:
    """Half the end-to-end catch-up rate the streaming benchmark measured (1000/s without it)."""
    measured = results.get("streaming", {}).get("ours", {}).get("catch_up_events_per_second")
    return round(measured / 2) if measured else 1000.0


if __name__ == "__main__":
    sys.exit(main())
