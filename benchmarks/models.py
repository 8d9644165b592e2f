"""Model quality side by side on the same holdout: ours, the notebook's baseline, the reference model
(scikit-learn), and the catalogue's two ceilings, for each shape of data and each size.

Shapes: `extended` (a pre-2026 app: every field), `development` (a 2026 development-mode app: no
popularity, no artist popularity or followers, ReccoBeats features for ~90 % of tracks; favourites only)
and `catalogue` (a catalogue file such as the Spotify Tracks Dataset: popularity and audio features, no
artist popularity or followers, no favourites; popularity only). Ours is the trainer's own code path
(`prepare_task`, `tune`, `candidate_fitter`) on Spark `local[2]`; nothing is logged to MLflow.

    python -m benchmarks.models --tracks 2000 20000
"""

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pipeline_runtime.contract import GOLD_SCHEMA

SHAPES = ("extended", "development", "catalogue")
TASKS_OF_SHAPE = {"extended": ("popularity", "favourite"), "development": ("favourite",), "catalogue": ("popularity",)}
PRIMARY = {"popularity": "r2", "favourite": "auc_pr"}


def shaped_rows(catalogue: Any, shape: str) -> list[dict[str, Any]]:
    from producers.sandbox.catalogue import gold_rows  # noqa: PLC0415

    if shape == "catalogue":
        rows = gold_rows(catalogue, "extended")
        unknown = {"artist_popularity": None, "artist_followers": None, "is_favourite": False, "updated_at": None}
        return [{**row, **unknown} for row in rows]
    return [{**row, "updated_at": None} for row in gold_rows(catalogue, shape)]


def ceilings(catalogue: Any, task: str, ids: list[str]) -> tuple[float, float]:
    """The catalogue's two ceilings on these tracks: from what the data shows, and knowing every hidden
    variable (the noiseless signal)."""
    from sklearn.metrics import average_precision_score, r2_score  # noqa: PLC0415

    from producers.sandbox.catalogue import noiseless_scores, observable_scores  # noqa: PLC0415

    def score(best: dict[str, tuple[float, float]]) -> float:
        if task == "popularity":
            return float(r2_score([catalogue.tracks[t]["popularity"] for t in ids], [best[t][0] for t in ids]))
        return float(average_precision_score([t in catalogue.favourites for t in ids], [best[t][1] for t in ids]))

    return score(observable_scores(catalogue)), score(noiseless_scores(catalogue))


def bench_task(data: Any, catalogue: Any, task_name: str, tuning: str) -> dict[str, Any]:
    from training.cycle import TASKS, prepare_task  # noqa: PLC0415
    from training.models import baseline_pipeline, candidate_fitter  # noqa: PLC0415
    from training.progress import Steps  # noqa: PLC0415
    from training.reference import reference_scores  # noqa: PLC0415
    from training.selection import evaluate, scores, tune  # noqa: PLC0415
    from training.settings import TrainingSettings  # noqa: PLC0415

    settings = TrainingSettings(_env_file=None, tuning=tuning)
    task, label = TASKS[task_name]
    prepared = prepare_task(data, task_name, settings)
    if isinstance(prepared, str):
        return {"skipped": prepared}
    metric, k = PRIMARY[task_name], settings.precision_at_k
    started = time.monotonic()
    with Steps.show() as steps:
        tuned = tune(task, prepared, label, settings, steps, threading.Event())
    with candidate_fitter(task, tuned.features, label, settings.seed, prepared.train) as fit:
        labels, predicted = scores(fit(tuned.candidate), prepared.holdout, task, label)
    ours = evaluate(task, labels, predicted, tuned.threshold, k)[metric]
    ours_seconds = time.monotonic() - started
    result: dict[str, Any] = {"metric": metric, "ours": round(ours, 4), "ours_model": tuned.candidate.label}
    result["identity_encoded"] = bool(tuned.features.identity)
    if prepared.baseline_features:
        rows = prepared.train.dropna(subset=list(prepared.baseline_features))
        baseline = baseline_pipeline(task, prepared.baseline_features, label, settings.seed).fit(rows)
        labels, predicted = scores(baseline, prepared.holdout, task, label)
        result["baseline"] = round(evaluate(task, labels, predicted, 0.5, k)[metric], 4)
    labels, predicted = reference_scores(
        task, prepared.train, prepared.holdout, prepared.features, label, settings.seed
    )
    result["reference"] = round(evaluate(task, labels, predicted, 0.5, k)[metric], 4)
    ids = [row["track_id"] for row in prepared.holdout.select("track_id").orderBy("track_id").collect()]
    observable, latent = ceilings(catalogue, task_name, ids)
    result["ceiling"], result["latent_ceiling"] = round(observable, 4), round(latent, 4)
    result["ours_minus_reference"] = round(ours - result["reference"], 4)
    result["gap_to_ceiling"] = round(result["ceiling"] - ours, 4)
    result["ours_seconds"] = round(ours_seconds, 1)
    return result


def run(sizes: list[int], tuning: str = "quick", seed: int = 7) -> dict[str, Any]:
    from pipeline_runtime.spark import build_spark_session  # noqa: PLC0415
    from producers.sandbox.catalogue import CatalogueSize, generate_catalogue  # noqa: PLC0415
    from training.data import model_input  # noqa: PLC0415
    from training.settings import TrainingSettings  # noqa: PLC0415

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        local: dict[str, Any] = {"spark_master": "local[2]", "spark_ui_enabled": False, "spark_driver_memory": "3g"}
        settings = TrainingSettings(_env_file=None, data_dir=Path(tmp), **local)  # the trainer's session
        spark = build_spark_session(settings, "benchmark-models")
        try:
            for tracks in sizes:
                size = CatalogueSize(tracks=tracks, artists=max(20, tracks // 10), albums=max(40, tracks // 4))
                catalogue = generate_catalogue(seed, size)
                for shape in SHAPES:
                    frame = spark.createDataFrame(shaped_rows(catalogue, shape), schema=GOLD_SCHEMA)
                    data = model_input(frame).cache()
                    for task_name in TASKS_OF_SHAPE[shape]:
                        print(f"models: {tracks:,} tracks, {shape}, {task_name} ...", file=sys.stderr, flush=True)
                        result: dict[str, Any] = {"tracks": tracks, "shape": shape, "task": task_name}
                        result.update(bench_task(data, catalogue, task_name, tuning))
                        print(f"  {json.dumps(result)}", file=sys.stderr, flush=True)
                        results.append(result)
                    data.unpersist()
        finally:
            spark.stop()
    scored = [r for r in results if "ours" in r]
    return {
        "tuning": tuning,
        "results": results,
        "ours_at_least_reference": all(r["ours_minus_reference"] >= 0 for r in scored),
        "mean_ours_minus_reference": round(sum(r["ours_minus_reference"] for r in scored) / len(scored), 4)
        if scored
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[2_000, 20_000, 100_000])
    parser.add_argument("--tuning", choices=("full", "quick"), default="quick")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.tracks, args.tuning), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
