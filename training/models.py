"""The models: the notebook's baselines, our pipelines and their tuning grid, metrics and the promotion rule.

Pure functions apart from `fit`/`transform` inside the callers: nothing here reads a table or talks
to MLflow. Metrics are computed with scikit-learn on the collected holdout (label, score) pairs, so
baseline, candidate and champion are scored by the same code on the same rows.
"""

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import CountVectorizer, Imputer, OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, LinearRegression
from sklearn import metrics as skm

from training.data import IDENTITY_FEATURES, NOTEBOOK_SCALED, FeatureSet
from training.encoding import TargetEncoder, encoded_column

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Task = Literal["regression", "classification"]
GENRE_MIN_TRACKS = 5.0  # a genre becomes a feature when at least this many training tracks have it


@dataclass(frozen=True)
class Candidate:
    """One point of the tuning grid: a model family and its hyper-parameters."""

    family: str  # "linear", "gbt" (pyspark.ml's boosted trees) or "xgboost" (XGBoost's Spark estimators)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.family}(" + ", ".join(f"{k}={v}" for k, v in sorted(self.params.items())) + ")"


XGBOOST_COMMON: dict[str, Any] = {"learning_rate": 0.05, "subsample": 0.8, "colsample_bytree": 0.8}


def tuning_grid(tuning: str) -> list[Candidate]:
    """A regularised linear model (the signal is often additive) and boosted trees. `quick`: one point of
    each, with XGBoost's trees (one Spark job for all the boosting rounds, where pyspark.ml's GBT runs a job
    per tree level); `full`: three linear points, pyspark.ml's GBT and XGBoost side by side, and the best on
    validation wins."""
    if tuning == "quick":
        return [
            Candidate("linear", {"regParam": 0.01}),
            Candidate("xgboost", {"max_depth": 4, "n_estimators": 300, **XGBOOST_COMMON}),
        ]
    return [
        *(Candidate("linear", {"regParam": reg}) for reg in (0.0, 0.01, 0.1)),
        *(Candidate("gbt", {"maxDepth": depth, "maxIter": 50, "stepSize": 0.1}) for depth in (3, 5)),
        *(
            Candidate("xgboost", {"max_depth": depth, "n_estimators": trees, **XGBOOST_COMMON})
            for depth, trees in ((3, 400), (4, 300), (6, 200))
        ),
    ]


def xgboost_estimator(task: Task, params: dict[str, Any], label: str, seed: int, weighted: bool) -> Any:
    """XGBoost's pyspark.ml estimator: one barrier task trains every round (`num_workers=1`: gold fits one
    worker), and it saves and loads inside a PipelineModel like any pyspark.ml stage (MLflow's Spark flavour).
    Its Python worker needs xgboost installed where the executors run."""
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)  # the booster's params at INFO, every fit
    from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor  # noqa: PLC0415 - a heavy import, on use

    kwargs: dict[str, Any] = {
        "features_col": "features",
        "label_col": label,
        "random_state": seed,
        "num_workers": 1,
        "verbose": False,
        **params,
    }
    if weighted:
        kwargs["weight_col"] = "weight"
    return SparkXGBRegressor(**kwargs) if task == "regression" else SparkXGBClassifier(**kwargs)


def estimator(task: Task, candidate: Candidate, label: str, seed: int, weighted: bool) -> Any:
    """The pyspark.ml estimator of one grid point, reading `features` and writing `prediction`."""
    if candidate.family == "xgboost":
        return xgboost_estimator(task, candidate.params, label, seed, weighted)
    common: dict[str, Any] = {"featuresCol": "features", "labelCol": label}
    if weighted:
        common["weightCol"] = "weight"
    linear: dict[str, Any] = {**common, "elasticNetParam": 0.0, "maxIter": 200, **candidate.params}
    trees: dict[str, Any] = {**common, "seed": seed, **candidate.params}
    if task == "regression":
        return LinearRegression(**linear) if candidate.family == "linear" else GBTRegressor(**trees)
    return LogisticRegression(**linear) if candidate.family == "linear" else GBTClassifier(**trees)


def identity_columns(features: FeatureSet) -> list[str]:
    """The target encoder's outputs a model reads: mean, max (several keys per track) and log count."""
    columns = []
    for name in features.identity:
        key = IDENTITY_FEATURES[name]
        encodings = ("te", "count_log") if name == "album" else ("te", "te_max", "count_log")
        columns += [encoded_column(key, encoding) for encoding in encodings]
    return columns


def feature_stages(features: FeatureSet) -> list[Any]:
    """Impute missing numbers (median), add the identity encodings, multi-hot the genres, one-hot the
    primary genre, standardise."""
    stages: list[Any] = []
    vectors: list[str] = []
    if features.numeric:
        imputed = [f"{name}__imputed" for name in features.numeric]
        stages.append(Imputer(inputCols=list(features.numeric), outputCols=imputed, strategy="median"))
        vectors += imputed
    vectors += identity_columns(features)
    if features.genres:
        stages += [
            CountVectorizer(inputCol="genres", outputCol="genres__vec", binary=True, minDF=GENRE_MIN_TRACKS),
            StringIndexer(inputCol="primary_genre", outputCol="primary_genre__index", handleInvalid="keep"),
            OneHotEncoder(inputCol="primary_genre__index", outputCol="primary_genre__vec", handleInvalid="keep"),
        ]
        vectors += ["genres__vec", "primary_genre__vec"]
    stages += [
        VectorAssembler(inputCols=vectors, outputCol="features__raw"),
        StandardScaler(inputCol="features__raw", outputCol="features", withMean=False, withStd=True),
    ]
    return stages


@contextmanager
def candidate_fitter(
    task: Task, features: FeatureSet, label: str, seed: int, rows: "DataFrame"
) -> Iterator[Callable[[Candidate], PipelineModel]]:
    """Fits grid points on `rows`. What comes before the learner is fitted once for all points: the identity
    keys' target encoding (each row out of fold: its own label never in its own encoding) and the feature
    stages (`feature_stages`), whose output every point's learner is fitted on. Each returned model is the
    encoder fitted on all `rows`, the feature stages and the point's learner, so a raw gold row is scored
    exactly as in training."""
    encoder = None
    if features.identity:
        encoder = TargetEncoder(inputCols=features.key_columns, labelCol=label, seed=seed).fit(rows)
    training = (rows if encoder is None else encoder.transform_out_of_fold(rows)).persist()
    assembled = None
    weighted = task == "classification"
    try:
        prepared = Pipeline(stages=feature_stages(features)).fit(training)
        assembled = prepared.transform(training).persist()
        assembled.count()  # cached with every column of `training`: that one need not stay cached beside it
        training.unpersist()

        def fit(candidate: Candidate) -> PipelineModel:
            learner = estimator(task, candidate, label, seed, weighted).fit(assembled)
            return PipelineModel(stages=[*([encoder] if encoder else []), *prepared.stages, learner])

        yield fit
    finally:
        if assembled is not None:
            assembled.unpersist()
        training.unpersist()


def baseline_pipeline(task: Task, audio: Sequence[str], label: str, seed: int) -> Pipeline:
    """The notebook's method: StandardScaler on 4 of the audio features, all of them assembled, a default
    GBT (only the seed is set, from settings)."""
    scaled = [name for name in NOTEBOOK_SCALED if name in audio]
    rest = [name for name in audio if name not in scaled]
    stages: list[Any] = []
    inputs = list(rest)
    if scaled:
        stages += [
            VectorAssembler(inputCols=scaled, outputCol="scaled__raw"),
            StandardScaler(inputCol="scaled__raw", outputCol="scaled__vec"),
        ]
        inputs.insert(0, "scaled__vec")
    stages.append(VectorAssembler(inputCols=inputs, outputCol="features"))
    model = GBTRegressor if task == "regression" else GBTClassifier
    stages.append(model(featuresCol="features", labelCol=label, seed=seed))
    return Pipeline(stages=stages)


def slot_names(model: Any) -> list[str]:
    """The assembled vector's slots of a fitted pipeline, from its own stages (so a model loaded back from
    MLflow names them as training did): numeric features, the identity encodings, `genre:x`, `primary:x`."""
    stages = {type(stage).__name__: stage for stage in model.stages}
    names: list[str] = []
    for column in stages["VectorAssembler"].getInputCols():
        if column == "genres__vec":
            names += [f"genre:{g}" for g in stages["CountVectorizerModel"].vocabulary]
        elif column == "primary_genre__vec":
            # StringIndexer(keep) adds an index for unseen genres; the encoder keeps its slot (dropLast drops its own)
            names += [f"primary:{g}" for g in stages["StringIndexerModel"].labels] + ["primary:(unseen)"]
        else:
            names.append(column.removesuffix("__imputed"))
    return names


def importances(model: Any) -> list[float]:
    """Feature importance of the last stage: GBT's importances, XGBoost's total gain per slot (normalised to
    sum to 1, as GBT's are), or |coefficient| of a linear model (on standardised features, so comparable)."""
    last = model.stages[-1]
    if hasattr(last, "get_booster"):
        booster = last.get_booster()
        gain = booster.get_score(importance_type="total_gain")  # {"f3": ...}, only the slots a split used
        values = [float(gain.get(f"f{slot}", 0.0)) for slot in range(booster.num_features())]
        total = sum(values)
        return [v / total for v in values] if total > 0 else values
    if hasattr(last, "featureImportances"):
        return [float(v) for v in last.featureImportances.toArray()]
    return [abs(float(v)) for v in last.coefficients.toArray()]


# --- metrics ---


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(math.sqrt(skm.mean_squared_error(actual, predicted))),
        "mae": float(skm.mean_absolute_error(actual, predicted)),
        "r2": float(skm.r2_score(actual, predicted)),
    }


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the best F1 (chosen on validation data, never on the holdout)."""
    precision, recall, thresholds = skm.precision_recall_curve(labels, scores)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(precision), where=total > 0)
    best = int(np.argmax(f1[:-1])) if len(thresholds) else 0
    return float(thresholds[best]) if len(thresholds) else 0.5


def choose_threshold(labels: np.ndarray, scores: np.ndarray, objective: str, min_precision: float) -> float:
    """The favourite model's operating point, on validation data: the F1-best threshold (`f1`), or the one
    with the best recall among those whose precision is at least `min_precision` (`precision`: fewer poor
    recommendations, as the notebook's author wanted); the F1-best one when no threshold reaches it."""
    if objective == "f1":
        return best_f1_threshold(labels, scores)
    precision, recall, thresholds = skm.precision_recall_curve(labels, scores)
    reaching = np.flatnonzero(precision[:-1] >= min_precision)
    if not len(reaching):
        return best_f1_threshold(labels, scores)
    best = reaching[np.argmax(recall[reaching])]  # recall falls as the threshold rises: the lowest that reaches
    return float(thresholds[best])


def classification_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float, k: int) -> dict[str, float]:
    predicted = (scores >= threshold).astype(int)
    top = np.argsort(-scores, kind="stable")[: min(k, len(scores))]
    return {
        "auc_roc": float(skm.roc_auc_score(labels, scores)),
        "auc_pr": float(skm.average_precision_score(labels, scores)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision_at_k": float(labels[top].mean()) if len(top) else 0.0,
        "threshold": float(threshold),
    }


# --- promotion ---

PRIMARY_METRIC: dict[Task, tuple[str, bool]] = {"regression": ("rmse", False), "classification": ("auc_pr", True)}


def decide_promotion(
    task: Task, candidate: float, champion: float | None, margin: float, champion_version: str | None = None
) -> tuple[bool, str]:
    """Whether the candidate becomes champion, and why, on the primary metric of the task (both scored on the
    same holdout). The gate is MLflow's model validation: `mlflow.validate_evaluation_results` with a
    `MetricThreshold` that asks for the relative margin over the champion."""
    from mlflow.models import MetricThreshold  # noqa: PLC0415
    from mlflow.models.evaluation import EvaluationResult  # noqa: PLC0415
    from mlflow.models.evaluation.validation import (  # noqa: PLC0415
        ModelValidationFailedException,
        validate_evaluation_results,
    )

    metric, higher_is_better = PRIMARY_METRIC[task]
    if champion is None or champion_version is None:
        return True, "no champion yet"
    if not math.isfinite(candidate):
        return False, f"the candidate's {metric} is not a number"
    threshold = MetricThreshold(  # type: ignore[no-untyped-call]
        min_relative_change=float(margin), greater_is_better=higher_is_better
    )
    try:
        results = [EvaluationResult({metric: value}, {}) for value in (candidate, champion)]  # type: ignore[no-untyped-call]
        validate_evaluation_results({metric: threshold}, *results)
        better = True
    except ModelValidationFailedException:
        better = False
    needed = champion + (1 if higher_is_better else -1) * margin * abs(champion)
    comparison = f"{metric} {candidate:.4f} vs champion v{champion_version} {champion:.4f} (needs {needed:.4f})"
    return better, ("beats the champion: " if better else "does not beat the champion by the margin: ") + comparison
