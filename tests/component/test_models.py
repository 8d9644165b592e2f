"""XGBoost's Spark estimators as a grid point (training.models), on the session's real Spark, saved with real
MLflow: a raw row scores the same after loading, the importances line up with the feature names, the SHAP values
add up to the score, and the same seed fits the same trees."""

from pathlib import Path
from typing import TYPE_CHECKING

import mlflow.spark
import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F  # noqa: N812

from training.cycle import pip_requirements
from training.data import FeatureSet
from training.encoding import TargetEncoderModel
from training.explain import contributions, reasons, summarise
from training.models import Candidate, candidate_fitter, importances, slot_names, tuning_grid

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SCHEMA = "track_id STRING, artist_keys ARRAY<STRING>, energy DOUBLE, noise DOUBLE, popularity DOUBLE, favourite INT"
XGBOOST = next(point for point in tuning_grid("quick") if point.family == "xgboost")
LINEAR = next(point for point in tuning_grid("quick") if point.family == "linear")


def training_rows(spark: "SparkSession") -> "DataFrame":
    # popularity: a threshold on energy (trees find it; a line does not) plus who the artist is; noise is noise.
    data = [
        (
            f"t{i}",
            [f"artist{i % 8}"],
            (i % 10) / 10,
            ((i * 7) % 13) / 13,
            40.0 * ((i % 10) >= 6) + (i % 8),
            int(i % 10 >= 6),
        )
        for i in range(160)
    ]
    return spark.createDataFrame(data, SCHEMA)


def test_an_xgboost_pipeline_saves_with_mlflow_and_scores_raw_rows_the_same(
    spark: "SparkSession", tmp_path: Path
) -> None:
    training = training_rows(spark).withColumn("weight", F.lit(1.0))
    raw = spark.createDataFrame(
        [("n1", ["artist3"], 0.9, 0.5, None, None), ("n2", ["nobody"], 0.1, 0.5, None, None)], SCHEMA
    ).drop("popularity", "favourite")
    features = FeatureSet(numeric=("energy", "noise"), genres=False, identity=("artists",))

    # The regressor: the threshold on energy is learnt, the same seed fits the same trees, and the importances
    # give one value per named slot, summing to 1, with the noise column below energy.
    with candidate_fitter("regression", features, "popularity", 7, training) as fit:
        regressor, again = fit(XGBOOST), fit(XGBOOST)
    assert isinstance(regressor.stages[0], TargetEncoderModel)
    assert type(regressor.stages[-1]).__name__ == "SparkXGBRegressorModel"
    predicted = [r["prediction"] for r in regressor.transform(raw).collect()]
    assert predicted[0] > 40 and predicted[1] < 10
    assert [r["prediction"] for r in again.transform(raw).collect()] == predicted
    names, weights = slot_names(regressor), importances(regressor)
    assert len(names) == len(weights) and sum(weights) == pytest.approx(1.0)
    by_name = dict(zip(names, weights, strict=True))
    assert by_name["energy"] > by_name["noise"]
    # SHAP values: the base plus each slot's contribution is the prediction, and energy explains most of it.
    explained = contributions(regressor, raw)
    assert explained.slots == names and explained.values.shape == (2, len(names))
    assert explained.base + explained.values.sum(axis=1) == pytest.approx(predicted, abs=1e-3)
    assert reasons(explained, 0, "regression")[0].startswith("energy (+")
    (first, *_) = summarise(contributions(regressor, training), "regression")
    assert (first["feature"], first["direction"]) == ("energy", "higher raises the score")
    # A linear model's are each coefficient times the slot's distance from the mean: exact, too.
    with candidate_fitter("regression", features, "popularity", 7, training) as fit:
        linear = fit(LINEAR)
    explained = contributions(linear, raw)
    linear_predicted = [r["prediction"] for r in linear.transform(raw).collect()]
    assert explained.base + explained.values.sum(axis=1) == pytest.approx(linear_predicted, abs=1e-6)
    # pyspark.ml's boosted trees (the full grid's) through the same TreeSHAP.
    with candidate_fitter("regression", features, "popularity", 7, training) as fit:
        trees = fit(Candidate("gbt", {"maxDepth": 3, "maxIter": 5, "stepSize": 0.3}))
    explained = contributions(trees, raw)
    trees_predicted = [r["prediction"] for r in trees.transform(raw).collect()]
    assert explained.base + explained.values.sum(axis=1) == pytest.approx(trees_predicted, abs=1e-3)
    assert reasons(explained, 0, "regression")[0].startswith("energy (+")

    # The classifier (weighted, as the favourite model is): saved with MLflow's Spark flavour and loaded back,
    # a raw row gets the same probability.
    with candidate_fitter("classification", features, "favourite", 7, training) as fit:
        classifier = fit(XGBOOST)
    assert type(classifier.stages[-1]).__name__ == "SparkXGBClassifierModel"
    before = [r["probability"][1] for r in classifier.transform(raw).collect()]
    assert before[0] > 0.9 and before[1] < 0.1
    # The requirements the trainer logs (MLflow would otherwise infer them by loading the model in a new Spark).
    requirements = pip_requirements("xgboost")
    assert any(r.startswith("xgboost-cpu==") for r in requirements)
    mlflow.spark.save_model(classifier, str(tmp_path / "model"), pip_requirements=requirements)
    loaded = mlflow.spark.load_model(str(tmp_path / "model"))
    assert isinstance(loaded, PipelineModel)
    assert [r["probability"][1] for r in loaded.transform(raw).collect()] == before
    # The loaded model names its slots as the fitted one and explains its log-odds.
    explained = contributions(loaded, raw)
    assert explained.slots == slot_names(classifier)
    log_odds = explained.base + explained.values.sum(axis=1)
    assert 1 / (1 + np.exp(-log_odds)) == pytest.approx(before, abs=1e-4)
