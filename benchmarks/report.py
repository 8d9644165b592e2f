"""The benchmark results as markdown tables, and the README's section that shows the latest full run."""

from pathlib import Path
from typing import Any

README_START = "<!-- benchmarks:start -->"
README_END = "<!-- benchmarks:end -->"


def num(value: Any, suffix: str = "") -> str:
    """Thousands separated; fractions kept only below 10 (2 digits) and 100 (1 digit)."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer() and abs(value) < 100:
        return f"{value:,.{2 if abs(value) < 10 else 1}f}{suffix}"
    return f"{round(value):,}{suffix}"


def times(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def producer_rows(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"Producer benchmark failed: {result['error'][:200]}"]
    rates, ratios = result["events_per_second"], result["ratio_to_ceiling"]
    head = (
        f"**Producer publish rate** into the local broker: {num(result['events'])} events of "
        f"{num(result['mean_event_bytes'])} bytes on average (median of {result['rounds']} round(s)); the "
        "ceiling is a bare confluent-kafka `produce` loop of the same pre-serialized events with the same "
        "client settings (idempotent, acks=all, lz4)."
    )
    rows = [
        ["ceiling: bare `produce` loop", num(rates["ceiling"]), "1.00x"],
        ["ours, confluent-kafka (the default)", num(rates["confluent-kafka"]), times(ratios["confluent-kafka"])],
        ["ours, kafka-python", num(rates["kafka-python"]), times(ratios["kafka-python"])],
    ]
    return [head, "", *table(["publisher", "events/s", "of the ceiling"], rows)]


def api_rows(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"API benchmark failed: {result['error'][:200]}"]
    rows = []
    for generation, r in result.items():
        rows.append(
            [
                generation,
                num(r["playlists"]),
                num(r["new_tracks"]),
                num(r["first_poll"]["requests_per_new_track"]),
                num(r["changed_poll"]["requests_per_changed_playlist"]),
                num(r["unchanged_poll"]["requests_per_unchanged_playlist"]),
                num(r["unchanged_poll"]["events_republished"]),
            ]
        )
    head = (
        "**API efficiency** against the sandbox (requests it answered, tokens included; a changed playlist "
        "had 1 track removed and 2 added):"
    )
    header = [
        "API generation",
        "playlists",
        "new tracks",
        "requests per new track",
        "per changed playlist",
        "per unchanged playlist (target 1)",
        "events re-published, nothing changed (target 0)",
    ]
    return [head, "", *table(header, rows)]


def streaming_rows(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"Streaming benchmark failed: {result['error'][:200]}"]
    ours, layers = result["ours"], result["ours"]["layers"]
    peer = result.get("peer", {})
    queries = (
        "the ingest query (each batch appends to bronze, then writes silver; bronze's rate counts its appends and "
        "the query's own offset and commit logs), then gold (from silver's change feed)"
        if "ingest" in ours.get("queries", [])
        else "bronze, then silver, then gold (from silver's change feed), each over all the data"
    )
    head = (
        f"**Streaming catch-up**: {num(result['events'])} events ({num(result['tracks'])} tracks, "
        f"{num(result['mean_event_bytes'])} bytes on average) already in Kafka, `local[2]`; `--available-now` "
        f"runs {queries}. The "
        "peer is a plain Python confluent-kafka consumer writing the same bronze table with delta-rs "
        "(`deltalake`), 100k records per commit, alone on the machine and at-least-once."
    )
    rows = [
        [
            "bronze (Kafka → Delta, exactly once)",
            num(layers["bronze"]["rows_per_second"]),
            num(peer.get("rows_per_second")),
            times(result.get("bronze_ratio_ours_to_peer")),
        ],
        ["silver (parse, validate, quarantine, MERGE 5 tables)", num(layers["silver"]["rows_per_second"]), "-", "-"],
        [
            f"gold (rebuild {num(layers['gold']['rows'])} rows of changed tracks, from silver's change feed)",
            f"{num(layers['gold']['rows_per_second'])} rows/s ({num(layers['gold']['events_per_second'])} events/s)",
            "-",
            "-",
        ],
        ["catch-up, all layers (first batch to last)", num(ours["catch_up_events_per_second"]), "-", "-"],
        [
            "the whole command, Spark start-up included",
            f"{num(ours['end_to_end_events_per_second'])} ({num(ours['wall_seconds'])} s)",
            f"{num(peer.get('rows_per_second'))} ({num(peer.get('wall_seconds'))} s)",
            "-",
        ],
    ]
    return [head, "", *table(["layer", "ours, rows/s", "peer, rows/s", "ours / peer"], rows)]


def latency_rows(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"Latency benchmark failed: {result['error'][:200]}"]
    head = (
        f"**End-to-end latency**, producer send → row readable in silver (its Delta commit written): "
        f"{num(result['target_events_per_second'])} events/s (half the measured catch-up rate) for "
        f"{num(result['sent']['seconds'])} s, trigger interval {result['trigger_interval']} (the job's default "
        f"is 30 seconds), {num(result['tracks_found_in_silver'])} tracks measured."
    )
    quantiles = ("p50", "p95", "p99", "max")
    rows = [["send → readable in silver", *(num(result[f"{q}_seconds"], " s") for q in quantiles)]]
    if "to_bronze" in result:
        rows.append(["of which send → in bronze", *(num(result["to_bronze"][f"{q}_seconds"], " s") for q in quantiles)])
    if "to_gold" in result:
        rows.append(
            [
                "send → readable in gold (own trigger)",
                *(num(result["to_gold"][f"{q}_seconds"], " s") for q in quantiles),
            ]
        )
    return [head, "", *table(["", *quantiles], rows)]


def trainer_rows(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"Trainer benchmark failed: {result['error'][:200]}"]
    head = (
        f"**Trainer**: `python -m training run --once` on gold tables of each size (`{result['tuning']}` grid, "
        "`local[2]`, MLflow on SQLite); then the same command again, which skips (gold unchanged)."
    )
    growth = {step["to"]: step for step in result["growth"]}
    rows = []
    for size in result["sizes"]:
        step = growth.get(size["tracks"])
        rows.append(
            [
                num(size["tracks"]),
                num(size["full_cycle_seconds"], " s"),
                num(round(size["full_cycle_peak_rss_mib"]), " MiB"),
                f"{step['time_x']}x for {step['rows_x']:g}x rows" if step else "-",
                num(size["skip_cycle_seconds"], " s"),
                num(round(size["skip_cycle_peak_rss_mib"]), " MiB"),
            ]
        )
    header = ["tracks", "full cycle", "peak RSS", "growth", "skip cycle", "skip peak RSS"]
    return [head, "", *table(header, rows)]


def model_rows(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"Model benchmark failed: {result['error'][:200]}"]
    head = (
        "**Models** on the same holdout (R² for popularity, AUC-PR for favourites; `quick` grid): ours, the "
        "notebook's baseline, the reference model (scikit-learn HistGradientBoosting + TargetEncoder), and the "
        "catalogue's two ceilings: from what the data shows (each artist's and album's effect estimated from "
        "their other tracks) and knowing every hidden variable (only the noise left). Shapes: `extended` "
        "(pre-2026 app), `development` (2026 app: no popularity fields), `catalogue` (a catalogue file: no artist "
        "popularity, no favourites)."
    )
    rows = [
        [
            num(r["tracks"]),
            r["shape"],
            f"{r['task']} ({r.get('metric', '-')})",
            *(
                "-" if r.get(key) is None else f"{r[key]:.3f}"
                for key in ("baseline", "reference", "ours", "ceiling", "latent_ceiling")
            ),
        ]
        for r in result["results"]
        if "ours" in r
    ]
    header = [
        "tracks",
        "shape",
        "model (metric)",
        "notebook baseline",
        "reference",
        "ours",
        "observable ceiling",
        "latent ceiling",
    ]
    return [head, "", *table(header, rows)]


def memory_rows(results: dict[str, Any]) -> list[str]:
    peaks = results.get("peak_rss_mib", {})

    def peak(*names: str, prefix: str | None = None) -> str:
        values = [v for k, v in peaks.items() if (k in names or (prefix and k.startswith(prefix))) and v is not None]
        return num(round(max(values)), " MiB") if values else "-"

    trainer_sizes = [int(k.split("-")[1]) for k in peaks if k.startswith("trainer-") and k.split("-")[1].isdigit()]

    rows = [
        ["Kafka broker (JVM, 1 GiB heap)", peak("broker")],
        ["producer, confluent-kafka", peak("producer-confluent-kafka")],
        ["producer, kafka-python", peak("producer-kafka-python")],
        ["streaming driver + JVM, catch-up", peak("streaming")],
        ["streaming driver + JVM, steady load", peak("streaming-steady")],
        ["peer (consumer + delta-rs)", peak("peer")],
        [
            f"trainer driver + JVM, full cycle ({num(max(trainer_sizes, default=None))} tracks)",
            peak(f"trainer-{max(trainer_sizes, default=0)}"),
        ],
        ["trainer, skip cycle", peak(prefix="trainer-skip")],
    ]
    head = (
        "**Peak memory** (resident set of each process tree, shared pages counted once (PSS), sampled every "
        "0.5 s during the runs above):"
    )
    return [head, "", *table(["process", "peak RSS"], rows)]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Benchmarks ({results['mode']} run, {m['date']}, commit {m['commit']}): {m['cpus']} cores, "
        f"{m['memory_gib']} GiB, Python {m['python']}; {num(results.get('total_seconds'))} s in all. "
        "Reproduce: `make bench` (or `make bench-quick`).",
        "",
    ]
    sections = [
        ("producer", producer_rows),
        ("api", api_rows),
        ("streaming", streaming_rows),
        ("latency", latency_rows),
        ("trainer", trainer_rows),
        ("models", model_rows),
    ]
    for name, render in sections:
        if name in results:
            lines += [*render(results[name]), ""]
    lines += [*memory_rows(results), ""]
    return "\n".join(lines)


def update_readme(readme: Path, section: str) -> None:
    """Replace what stands between the README's benchmark markers with `section`."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} markers")
    readme.write_text(f"{text[: start + len(README_START)]}\n{section}\n{text[end:]}")
