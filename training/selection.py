"""Model selection: score a fitted pipeline, tune the candidate on validation rows, score the champion.

The grid (`training.models.tuning_grid`) is fitted on 75 % of the training side and scored on the other
25 % (split by hash, so the same rows on every run); the champion is scored on the cycle's holdout.
"""

import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.errors import first_line
from training import registry
from training.data import TaskData, holdout_flag
from training.models import (
    PRIMARY_METRIC,
    Candidate,
    Task,
    best_f1_threshold,
    candidate_fitter,
    classification_metrics,
    regression_metrics,
    tuning_grid,
)
from training.progress import Steps
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.sql import DataFrame


log = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.25


class Stopped(Exception):
    """A stop was requested while a cycle was running."""


def score_column(task: Task) -> Any:
    return vector_to_array(F.col("probability"))[1] if task == "classification" else F.col("prediction")


def scores(model: Any, rows: "DataFrame", task: Task, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of `rows`, in track id order so ties rank the same on every run."""
    frame = (
        model.transform(rows)
        .select("track_id", F.col(label).alias("label"), score_column(task).alias("score"))
        .orderBy("track_id")
        .toPandas()
    )
    return frame["label"].to_numpy(dtype=float), frame["score"].to_numpy(dtype=float)


def evaluate(task: Task, labels: np.ndarray, predicted: np.ndarray, threshold: float, k: int) -> dict[str, float]:
    if task == "regression":
        return regression_metrics(labels, predicted)
    return classification_metrics(labels.astype(int), predicted, threshold, k)


def tune(
    task: Task, prepared: TaskData, label: str, settings: TrainingSettings, steps: Steps, stop: threading.Event
) -> tuple[Candidate, float, list[dict[str, Any]]]:
    """Each grid point fitted on 75 % of the training side, scored on the other 25 % (split by hash);
    returns the best point, the F1-best threshold on validation (classification), and the table."""
    inner = holdout_flag(settings.seed + 1, VALIDATION_FRACTION)
    fit_rows, validation = prepared.train.where(~inner), prepared.train.where(inner)
    metric, higher_is_better = PRIMARY_METRIC[task]
    results: list[dict[str, Any]] = []
    best: tuple[Candidate, float, float] | None = None
    with candidate_fitter(task, prepared.features, label, settings.seed, fit_rows) as fit:
        for point in tuning_grid(settings.tuning):
            if stop.is_set():
                raise Stopped
            with steps.step(f"{label}: tune {point.label}"):
                labels, predicted = scores(fit(point), validation, task, label)
            threshold = best_f1_threshold(labels.astype(int), predicted) if task == "classification" else 0.0
            value = evaluate(task, labels, predicted, threshold, settings.precision_at_k)[metric]
            results.append({"candidate": point.label, f"validation_{metric}": value})
            if best is None or (value > best[1] if higher_is_better else value < best[1]):
                best = (point, value, threshold)
    assert best is not None  # noqa: S101 - the grid is never empty
    return best[0], best[2], results


def champion_metrics(
    client: "MlflowClient", task: Task, name: str, label: str, holdout: "DataFrame", k: int
) -> tuple[str | None, dict[str, float] | None, str]:
    """The current champion's version and its metrics on the current holdout ('' or why it could not score)."""
    import mlflow.spark  # noqa: PLC0415

    version = registry.version_by_alias(client, name, registry.CHAMPION)
    if version is None:
        return None, None, ""
    try:
        model = mlflow.spark.load_model(f"models:/{name}@{registry.CHAMPION}")
    except Exception as exc:  # noqa: BLE001 - its files are gone or unreadable: broken, and said so
        return (
            str(version.version),
            None,
            f"champion v{version.version} is broken: it cannot be loaded ({first_line(exc, 200)})",
        )
    try:
        threshold = client.get_run(str(version.run_id)).data.metrics.get("threshold", 0.5)
        labels, predicted = scores(model, holdout, task, label)
    except Exception as exc:  # noqa: BLE001 - a champion that cannot score today's data is replaced
        return (
            str(version.version),
            None,
            f"champion v{version.version} cannot score the current data ({first_line(exc, 200)})",
        )
    return str(version.version), evaluate(task, labels, predicted, threshold, k), ""
