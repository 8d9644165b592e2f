"""The reference model: a standard scikit-learn model on the same training rows, scored on the same holdout.

It is what a data scientist would try first on a table like gold: `HistGradientBoosting{Regressor,
Classifier}` on the numeric features, with the primary artist and the primary genre through
`sklearn.preprocessing.TargetEncoder` (cross-fitted, so a training row's own label never reaches its
own encoding). Ours has to beat it to be worth its Spark pipeline; the cycle logs it as its own MLflow
run and its metrics beside the candidate's (`reference_*`).

The rows are collected to the driver: the reference is a yardstick, not a model we serve.
"""

from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.sql import functions as F  # noqa: N812

from training.data import FeatureSet
from training.models import Task

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

CATEGORIES = ("primary_artist", "primary_genre")
MODEL = "HistGradientBoosting + TargetEncoder(primary_artist, primary_genre)"


def reference_frame(rows: "DataFrame", features: FeatureSet, label: str) -> Any:
    """The reference's inputs as pandas, in track id order (the order `training.selection.scores` uses)."""
    return (
        rows.select(
            "track_id",
            *features.numeric,
            F.coalesce(F.get(F.col("artist_keys"), 0), F.lit("")).alias("primary_artist"),
            F.coalesce(F.col("primary_genre"), F.lit("unknown")).alias("primary_genre"),
            F.col(label).alias("label"),
        )
        .orderBy("track_id")
        .toPandas()
    )


def reference_model(task: Task, numeric: tuple[str, ...], seed: int) -> Any:
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415 - heavy imports, only when training
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: PLC0415
    from sklearn.model_selection import KFold, StratifiedKFold  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import TargetEncoder  # noqa: PLC0415

    regression = task == "regression"
    folds = (KFold if regression else StratifiedKFold)(n_splits=5, shuffle=True, random_state=seed)  # its default
    encoder = TargetEncoder(target_type="continuous" if regression else "binary", cv=folds)
    columns = ColumnTransformer(
        [
            ("identity", encoder, list(CATEGORIES)),
            ("numbers", "passthrough", list(numeric)),  # HistGradientBoosting handles missing values
        ]
    )
    learner = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    return make_pipeline(columns, learner(random_state=seed))


def reference_scores(
    task: Task, train: "DataFrame", holdout: "DataFrame", features: FeatureSet, label: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of the holdout from the reference fitted on the training rows."""
    fitting = reference_frame(train, features, label)
    scoring = reference_frame(holdout, features, label)
    inputs = [*CATEGORIES, *features.numeric]
    model = reference_model(task, features.numeric, seed)
    model.fit(fitting[inputs], fitting["label"].to_numpy(dtype=float if task == "regression" else int))
    frame = scoring[inputs]
    predicted = model.predict(frame) if task == "regression" else model.predict_proba(frame)[:, 1]
    return scoring["label"].to_numpy(dtype=float), np.asarray(predicted, dtype=float)
