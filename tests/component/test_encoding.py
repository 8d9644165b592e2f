"""The identity target encoder (training.encoding) on the session's real Spark, and saved with real MLflow."""

import math
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow.spark
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import LinearRegression

from training.cycle import pip_requirements
from training.data import FeatureSet
from training.encoding import MAP_KEYS, TargetEncoder, TargetEncoderModel
from training.models import Candidate, candidate_fitter

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SCHEMA = "track_id STRING, artist_keys ARRAY<STRING>, genres ARRAY<STRING>, popularity DOUBLE"
ENCODED = ["artist_keys__te", "artist_keys__te_max", "artist_keys__count_log"]


def rows(spark: "SparkSession", data: list[tuple[str, list[str], list[str], float | None]]) -> "DataFrame":
    return spark.createDataFrame(data, SCHEMA)


def encodings(frame: "DataFrame", column: str = "artist_keys") -> dict[str, tuple[float, float, float]]:
    names = [f"{column}__te", f"{column}__te_max", f"{column}__count_log"]
    return {r["track_id"]: tuple(round(r[n], 6) for n in names) for r in frame.select("track_id", *names).collect()}


# Both ways of looking keys up: joins by key set (large statistics), a map per row (small ones).
LOOKUPS = [pytest.param(0, id="joins"), pytest.param(MAP_KEYS, id="maps")]


@pytest.mark.parametrize("map_keys", LOOKUPS)
def test_the_encoding_is_the_smoothed_mean_and_unseen_or_missing_keys_get_the_prior(
    spark: "SparkSession", map_keys: int
) -> None:
    training = rows(
        spark,
        [
            ("t1", ["a"], ["rock"], 10.0),
            ("t2", ["a"], ["rock"], 20.0),
            ("t3", ["a", "b"], ["pop"], 30.0),
            ("t4", ["b"], ["pop"], 60.0),
            ("t5", ["c"], [], None),  # no label: not counted
        ],
    )
    model = TargetEncoder(
        inputCols=["artist_keys", "genres"], labelCol="popularity", smoothing=2.0, mapKeys=map_keys
    ).fit(training)
    assert model.keys == 4  # artists a and b, genres rock and pop (c's track has no label)
    prior = 30.0  # (10 + 20 + 30 + 60) / 4
    assert model.prior == pytest.approx(prior)
    scoring = rows(spark, [("n1", ["a"], ["rock"], None), ("n2", ["a", "b"], [], None), ("n3", ["zzz"], None, None)])
    scoring = scoring.union(rows(spark, [("n4", [], ["pop"], None), ("n5", ["a", "zzz", None], None, None)]))
    encoded = encodings(model.transform(scoring))
    a = (60 + 2 * prior) / (3 + 2)  # three tracks credit a: 10, 20, 30
    b = (90 + 2 * prior) / (2 + 2)  # two credit b: 30, 60
    assert encoded["n1"] == pytest.approx((a, a, math.log1p(3)), abs=1e-5)
    assert encoded["n2"] == pytest.approx(((a + b) / 2, max(a, b), (math.log1p(3) + math.log1p(2)) / 2), abs=1e-5)
    assert encoded["n3"] == (prior, prior, 0.0)  # an artist never seen in training
    assert encoded["n4"] == (prior, prior, 0.0)  # no artist at all
    # A known and an unknown artist (and a null key, ignored): the unknown one counts as the prior, with count 0.
    assert encoded["n5"] == pytest.approx(((a + prior) / 2, max(a, prior), math.log1p(3) / 2), abs=1e-5)
    assert len(encoded) == 5, "every row scored, once"
    genres = encodings(model.transform(scoring), "genres")
    assert genres["n1"][0] == pytest.approx((30 + 2 * prior) / 4) and genres["n2"] == (prior, prior, 0.0)


@pytest.mark.parametrize("map_keys", LOOKUPS)
def test_a_training_rows_own_label_never_reaches_its_encoding(spark: "SparkSession", map_keys: int) -> None:
    # One track per artist: out of fold, no row has any other evidence than the prior.
    labels = [float(i % 7) * 10 for i in range(60)]
    training = rows(spark, [(f"t{i}", [f"artist{i}"], ["rock"], labels[i]) for i in range(60)])
    model = TargetEncoder(inputCols=["artist_keys"], labelCol="popularity", folds=5, seed=3, mapKeys=map_keys)
    model = model.fit(training)
    prior = sum(labels) / len(labels)
    out_of_fold = encodings(model.transform_out_of_fold(training))
    assert len(out_of_fold) == 60
    assert all(value == pytest.approx((prior, prior, 0.0)) for value in out_of_fold.values())
    # ... while the full statistics, for scoring new rows, know each artist's one track.
    full = encodings(model.transform(training))
    assert len({v[0] for v in full.values()}) == 7

    # Two tracks per artist on different folds: each sees only the other one's label (auto smoothing: n=1 -> it).
    pairs = rows(spark, [(f"p{i}", [f"artist{i // 2}"], [], float(i)) for i in range(40)])
    paired = TargetEncoder(inputCols=["artist_keys"], labelCol="popularity", folds=5, seed=3, mapKeys=map_keys)
    paired = paired.fit(pairs)
    encoded = encodings(paired.transform_out_of_fold(pairs))
    folds = {r["track_id"]: r["fold"] for r in pairs.select("track_id", paired.fold_column().alias("fold")).collect()}
    for i in range(40):
        partner = i + 1 if i % 2 == 0 else i - 1
        if folds[f"p{i}"] != folds[f"p{partner}"]:
            assert encoded[f"p{i}"][0] == pytest.approx(float(partner))
        else:
            assert encoded[f"p{i}"][0] == pytest.approx(19.5)  # the prior: the pair shares a fold


def test_a_fitted_pipeline_scores_raw_rows_the_same_after_saving_with_mlflow(
    spark: "SparkSession", tmp_path: Path
) -> None:
    data = [(f"t{i}", [f"artist{i % 9}"], [f"g{i % 4}"], float((i % 9) * 7 + i % 4)) for i in range(120)]
    training = rows(spark, data)
    features = FeatureSet(numeric=(), genres=False, identity=("artists", "genres"))
    with candidate_fitter("regression", features, "popularity", 1, training) as fit:
        model = fit(Candidate("linear", {"regParam": 0.0}))
    assert isinstance(model.stages[0], TargetEncoderModel)
    raw = rows(spark, [("n1", ["artist3"], ["g1"], None), ("n2", ["nobody"], [], None)]).drop("track_id", "popularity")
    before = [r["prediction"] for r in model.transform(raw).collect()]

    # The requirements the trainer logs (MLflow would otherwise infer them by loading the model in a new Spark).
    mlflow.spark.save_model(model, str(tmp_path / "model"), pip_requirements=pip_requirements("linear"))
    loaded = mlflow.spark.load_model(str(tmp_path / "model"))
    assert isinstance(loaded, PipelineModel) and isinstance(loaded.stages[0], TargetEncoderModel)
    assert loaded.stages[0].keys == model.stages[0].keys == 9 + 4  # its lookup (a map per row) is the same
    assert [r["prediction"] for r in loaded.transform(raw).collect()] == pytest.approx(before, abs=1e-9)
    assert before[0] == pytest.approx(3 * 7 + 1, abs=2.0)  # artist3 on g1: the signal is the identity
    # The same seed gives the same metrics: test_training's cycle, run twice.


def test_an_encoder_inside_a_plain_pipeline_persists(spark: "SparkSession", tmp_path: Path) -> None:
    training = rows(spark, [(f"t{i}", [f"a{i % 3}"], [], float(i % 3)) for i in range(30)])
    pipeline = Pipeline(
        stages=[
            TargetEncoder(inputCols=["artist_keys"], labelCol="popularity"),
            VectorAssembler(inputCols=ENCODED, outputCol="features"),
            LinearRegression(labelCol="popularity"),
        ]
    )
    fitted = pipeline.fit(training)
    fitted.write().overwrite().save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline"))
    assert encodings(loaded.transform(training)) == encodings(fitted.transform(training))
