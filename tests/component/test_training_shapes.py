"""The trainer on data of other shapes than the first cycle's (tests/component/test_training.py): a development-mode
app's, without audio features, an extended app's; the favourite label, one row per track, recommendations' rules.
A module of its own, so pytest-xdist runs these beside the first cycle rather than after it."""

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline_runtime.contract import GOLD_SCHEMA
from pipeline_runtime.errors import SetupError
from producers.sandbox.catalogue import Catalogue, gold_rows
from tests.support.training import alias_version, candidate_runs, training_settings, write_gold
from training.cycle import TASKS, prepare_task, run_cycle
from training.data import NOTEBOOK_FEATURES, model_input, one_row_per_track, read_gold, with_favourite_label
from training.report import read_tracks, render
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_development_mode_data_trains_what_it_can(spark: "SparkSession", tmp_path: Path, catalogue: Catalogue) -> None:
    settings = training_settings(tmp_path)
    write_gold(spark, settings.table_uri("track_features"), gold_rows(catalogue, "development"))

    report = run_cycle(spark, settings, threading.Event())

    popularity, favourite = report.models
    assert popularity.skipped is not None and "development-mode Spotify app gets no popularity" in popularity.skipped
    assert popularity.version is None and alias_version(MlflowClient(), "popularity", "champion") is None
    assert favourite.skipped is None and favourite.promoted
    assert set(favourite.missing) == {"artist_popularity", "artist_followers_log", "time_signature", "popularity"}
    assert "energy" in favourite.features and "genres" in favourite.features
    assert favourite.baseline is not None and favourite.candidate["auc_roc"] > favourite.baseline["auc_roc"]
    (run,) = candidate_runs(MlflowClient(), "favourite")
    left_out = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/feature_set.json")["left_out"]
    assert set(left_out) == set(favourite.missing)
    assert report.recommendations > 0


def test_without_audio_features_the_baseline_is_skipped_and_ours_uses_the_rest(
    spark: "SparkSession", catalogue: Catalogue
) -> None:
    rows = [{**row, **dict.fromkeys(NOTEBOOK_FEATURES)} for row in gold_rows(catalogue, "development")]
    gold = spark.createDataFrame([{**r, "updated_at": None} for r in rows], schema=GOLD_SCHEMA)
    prepared = prepare_task(model_input(gold), "favourite", TrainingSettings(_env_file=None))
    assert not isinstance(prepared, str)
    assert prepared.baseline_features == ()
    assert prepared.features.numeric == ("release_year", "duration_min", "explicit")
    assert prepared.features.genres
    assert set(NOTEBOOK_FEATURES) <= set(prepared.missing)
    assert prepared.train_rows + prepared.holdout_rows == 2000
    skipped = prepare_task(model_input(gold), "popularity", TrainingSettings(_env_file=None))
    assert isinstance(skipped, str) and skipped.startswith("only 0 of 2000 tracks have a popularity")


def test_an_extended_app_s_artist_popularity_and_followers_are_features(
    spark: "SparkSession", catalogue: Catalogue
) -> None:
    """What a pre-2026 extended-quota app gets about the artist is used when it is there (the module's full cycle
    trains on a catalogue file's shape, without it; the demo trains on an extended app's data end to end)."""
    gold = spark.createDataFrame(
        [{**r, "updated_at": None} for r in gold_rows(catalogue, "extended")], schema=GOLD_SCHEMA
    )
    for task in TASKS:
        prepared = prepare_task(model_input(gold), task, TrainingSettings(_env_file=None))
        assert not isinstance(prepared, str)
        assert {"artist_popularity", "artist_followers_log"} <= set(prepared.features.numeric), task
        assert "artist_popularity" not in prepared.missing


def test_the_favourite_label_comes_from_playlists_listening_or_either(spark: "SparkSession", tmp_path: Path) -> None:
    rows = [  # track, in a favourite playlist, plays, best top-list rank
        ("in-a-playlist", True, 0, None),
        ("played-often", False, 3, None),
        ("played-once", False, 1, None),
        ("a-top-track", False, 0, 7),
        ("never-played", False, None, None),  # a gold row written before the listening columns
    ]
    gold = spark.createDataFrame(
        [{"track_id": t, "is_favourite": f, "play_count": n, "top_rank": r, "updated_at": None} for t, f, n, r in rows],
        schema=GOLD_SCHEMA,
    )
    labels = {
        label: {r.track_id for r in with_favourite_label(gold, label, 3).collect() if r.is_favourite}
        for label in ("playlists", "listening", "either")
    }
    assert labels == {
        "playlists": {"in-a-playlist"},
        "listening": {"played-often", "a-top-track"},
        "either": {"in-a-playlist", "played-often", "a-top-track"},
    }
    # The report counts the favourites the trainer learns from, and says which label that is.
    settings = training_settings(tmp_path / "labelled", favourite_label="listening")
    location = settings.table_uri("track_features")
    gold.write.format("delta").save(location)
    tracks = read_tracks(spark, settings, location, 0)
    assert set(tracks.loc[tracks["is_favourite"], "track_id"]) == labels["listening"]
    page = render(tracks, 0, [], {}, [], datetime.now(UTC), settings.label_description)
    assert "Favourites: listening (3+ plays or a top track)" in page
    assert ">2 (40%)<" in page, "the favourites card counts the listening label's favourites"

    # A gold table from before the listening columns: the listening label says what to do, in one line.
    settings = training_settings(tmp_path / "older", favourite_label="listening")
    location = settings.table_uri("track_features")
    gold.drop("play_count", "last_played_at", "top_rank", "top_listed_on").write.format("delta").save(location)
    with pytest.raises(SetupError, match=r"start the streaming job once \(it adds them\)"):
        read_gold(spark, settings, location, 0)
    assert read_gold(spark, settings.model_copy(update={"favourite_label": "playlists"}), location, 0).count() == 5


def test_a_track_listed_twice_is_one_row_and_a_favourite(spark: "SparkSession", catalogue: Catalogue) -> None:
    rows = gold_rows(catalogue, "extended")[:3]
    twice = {**rows[0], "is_favourite": not rows[0]["is_favourite"]}
    schema = GOLD_SCHEMA
    gold = spark.createDataFrame([{**r, "updated_at": None} for r in [*rows, twice]], schema=schema)
    tracks = {r["track_id"]: r["is_favourite"] for r in one_row_per_track(gold).collect()}
    assert tracks == {
        rows[0]["track_id"]: True,
        rows[1]["track_id"]: rows[1]["is_favourite"],
        rows[2]["track_id"]: rows[2]["is_favourite"],
    }


def test_recommendations_are_explained_by_what_the_favourites_share(spark: "SparkSession") -> None:
    from training.recommend import Taste, favourites_sharing

    gold = spark.createDataFrame(
        [
            (["Ada", "Bo", "Ada"], ["jazz", "soul"], True),
            (["Ada"], ["jazz"], True),
            (["Cy"], ["rock"], True),
            (None, None, True),
            (["Ada", "Cy"], ["jazz", "rock"], False),
        ],
        "artist_names ARRAY<STRING>, genres ARRAY<STRING>, is_favourite BOOLEAN",
    )
    taste = favourites_sharing(gold, {"Ada", "Zed"}, {"jazz", "rock", "pop"})
    assert taste == Taste(4, {"Ada": 2}, {"jazz": 2, "rock": 1}), "only the asked names; a track counts once"
    assert favourites_sharing(gold, set(), set()) == Taste(4, {}, {})


def test_recommendations_keep_at_most_n_tracks_per_artist(spark: "SparkSession") -> None:
    from training.recommend import at_most_per_artist

    ranked = spark.createDataFrame(
        [
            ("a1", ["Ada"], 0.99),
            ("a2", ["Ada", "Bo"], 0.98),
            ("a3", ["Ada"], 0.97),
            ("b1", ["Bo", "Ada"], 0.90),
            ("n1", None, 0.80),
            ("n2", [], 0.70),
        ],
        "track_id STRING, artist_names ARRAY<STRING>, score DOUBLE",
    )
    kept = at_most_per_artist(ranked, 2).orderBy("score", ascending=False).collect()
    assert [r["track_id"] for r in kept] == ["a1", "a2", "b1", "n1", "n2"]  # a3 is Ada's third; no artist: alone
    assert at_most_per_artist(ranked, 0).count() == 6
