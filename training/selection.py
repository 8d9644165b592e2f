"""Model selection: score a fitted pipeline, tune the candidate on validation rows, score the champion.

The grid (`training.models.tuning_grid`) is fitted on 75 % of the training side and scored on the other
25 % (split by hash, so the same rows on every run); the champion is scored on the cycle's holdout.
"""

import logging
import threading
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.errors import first_line
from training import registry
from training.data import FeatureSet, TaskData, holdout_flag
from training.models import (
    PRIMARY_METRIC,
    Candidate,
    Task,
    candidate_fitter,
    choose_threshold,
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


@dataclass(frozen=True)
class Tuned:
    """What tuning chose on validation: the grid point, the features, the threshold, and the table."""

    candidate: Candidate
    features: FeatureSet
    threshold: float
    table: list[dict[str, Any]]


def tune(
    task: Task, prepared: TaskData, label: str, settings: TrainingSettings, steps: Steps, stop: threading.Event
) -> Tuned:
    """Each grid point fitted on 75 % of the training side, scored on the other 25 % (split by hash); then
    the best point once more without the identity encodings, which win only where who made a track
    carries signal. Returns what scored best, with its threshold (classification: `choose_threshold`)."""
    inner = holdout_flag(settings.seed + 1, VALIDATION_FRACTION)
    fit_rows, validation = prepared.train.where(~inner), prepared.train.where(inner)
    metric, higher_is_better = PRIMARY_METRIC[task]
    table: list[dict[str, Any]] = []
    best: tuple[float, Tuned] | None = None

    def validate(model: Any, point: Candidate, features: FeatureSet, name: str) -> None:
        nonlocal best
        labels, predicted = scores(model, validation, task, label)
        threshold = 0.0
        if task == "classification":
            threshold = choose_threshold(
                labels.astype(int), predicted, settings.threshold_objective, settings.min_precision
            )
        value = evaluate(task, labels, predicted, threshold, settings.precision_at_k)[metric]
        table.append({"candidate": name, f"validation_{metric}": value})
        if best is None or (value > best[0] if higher_is_better else value < best[0]):
            best = (value, Tuned(point, features, threshold, table))

    with ExitStack() as fitter:
        with steps.step(f"{label}: prepare the features for the grid"):  # encodings, feature stages: once
            fit = fitter.enter_context(candidate_fitter(task, prepared.features, label, settings.seed, fit_rows))
        for point in tuning_grid(settings.tuning):
            if stop.is_set():
                raise Stopped
            with steps.step(f"{label}: tune {point.label}"):
                validate(fit(point), point, prepared.features, point.label)
    assert best is not None  # noqa: S101 - the grid is never empty
    plain = replace(prepared.features, identity=())
    if prepared.features.identity and (plain.numeric or plain.genres):
        if stop.is_set():
            raise Stopped
        point = best[1].candidate
        with (
            steps.step(f"{label}: tune {point.label} without identity encodings"),
            candidate_fitter(task, plain, label, settings.seed, fit_rows) as fit,
        ):
            validate(fit(point), point, plain, f"{point.label} without identity encodings")
    return best[1]


@dataclass(frozen=True)
class ChampionScore:
    """The current champion on the candidate's holdout: its version, metrics and scores, or why it could not
    score (`problem`)."""

    version: str | None = None
    model_id: str | None = None  # its MLflow 3 LoggedModel
    metrics: dict[str, float] | None = None
    problem: str = ""
    labels: np.ndarray | None = None
    scores: np.ndarray | None = None
    threshold: float = 0.5


def champion_metrics(
    client: "MlflowClient", task: Task, name: str, label: str, holdout: "DataFrame", k: int
) -> ChampionScore:
    """The current champion's version and its metrics on the current holdout (or why it could not score)."""

    version = registry.version_by_alias(client, name, registry.CHAMPION)
    if version is None:
        return ChampionScore()
    number, model_id = str(version.version), None
    try:
        model = registry.load_champion_model(name)
    except Exception as exc:  # noqa: BLE001 - its files are gone or unreadable: broken, and said so
        problem = f"champion v{number} is broken: it cannot be loaded ({first_line(exc, 200)})"
        return ChampionScore(number, model_id, problem=problem)
    try:
        run = client.get_run(str(version.run_id)).data
        threshold, model_id = run.metrics.get("threshold", 0.5), run.tags.get(registry.TAG_LOGGED_MODEL)
        labels, predicted = scores(model, holdout, task, label)
    except Exception as exc:  # noqa: BLE001 - a champion that cannot score today's data is replaced
        problem = f"champion v{number} cannot score the current data ({first_line(exc, 200)})"
        return ChampionScore(number, model_id, problem=problem)
    metrics = evaluate(task, labels, predicted, threshold, k)
    return ChampionScore(number, model_id, metrics, "", labels, predicted, threshold)
