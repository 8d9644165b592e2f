"""The trainer's pure parts: feature choice, metrics, the promotion rule, explanations, the lock."""

import math
from pathlib import Path

import numpy as np
import pytest

from pipeline_runtime.errors import SetupError
from pipeline_runtime.lock import ProcessLock
from producers.sandbox.catalogue import CatalogueSize, generate_catalogue, gold_rows
from training.data import NOTEBOOK_FEATURES, choose_features
from training.explain import Contributions, describe, direction, reasons, summarise
from training.models import (
    best_f1_threshold,
    choose_threshold,
    classification_metrics,
    decide_promotion,
    regression_metrics,
    tuning_grid,
)
from training.recommend import Taste, explain


def test_choose_features_keeps_what_the_data_has_and_says_why_not_the_rest() -> None:
    coverage = {"artist_popularity": 0.0, "energy": 0.9, "tempo": 0.4, "release_year": 1.0}
    used, missing = choose_features(
        coverage, ["artist_popularity", "energy", "tempo", "release_year"], 0.5, exclude=["release_year"]
    )
    assert used == ("energy",)
    assert missing == {
        "artist_popularity": "0% of tracks have it (need 50%)",
        "tempo": "40% of tracks have it (need 50%)",
        "release_year": "excluded by TRAINING_EXCLUDE_FEATURES",
    }


@pytest.mark.parametrize(
    ("task", "candidate", "champion", "promoted"),
    [
        ("regression", 9.0, 10.0, True),  # lower RMSE by 10 %
        ("regression", 9.95, 10.0, False),  # better, but by less than the 1 % margin
        ("regression", 11.0, 10.0, False),  # worse
        ("classification", 0.70, 0.60, True),  # higher AUC-PR
        ("classification", 0.603, 0.60, False),  # within the margin
        ("classification", 0.50, 0.60, False),  # worse
        ("classification", math.nan, 0.60, False),  # broken candidate
    ],
)
def test_promotion_needs_the_margin(task: str, candidate: float, champion: float, promoted: bool) -> None:
    decision, reason = decide_promotion(task, candidate, champion, 0.01, "3")  # type: ignore[arg-type]
    assert decision is promoted
    assert ("v3" in reason) or math.isnan(candidate)


def test_first_candidate_is_promoted() -> None:
    assert decide_promotion("regression", 30.0, None, 0.01, None) == (True, "no champion yet")


def test_regression_metrics() -> None:
    metrics = regression_metrics(np.array([10.0, 20.0, 30.0]), np.array([12.0, 18.0, 30.0]))
    assert metrics["rmse"] == pytest.approx(math.sqrt(8 / 3))
    assert metrics["mae"] == pytest.approx(4 / 3)
    assert metrics["r2"] == pytest.approx(1 - 8 / 200)


def test_classification_metrics_at_a_threshold_and_precision_at_k() -> None:
    labels = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    metrics = classification_metrics(labels, scores, threshold=0.55, k=3)
    assert metrics["precision"] == pytest.approx(3 / 4)
    assert metrics["recall"] == pytest.approx(1.0)
    assert metrics["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert metrics["precision_at_k"] == pytest.approx(2 / 3)
    assert metrics["auc_roc"] == pytest.approx(14 / 15)
    assert best_f1_threshold(labels, scores) == pytest.approx(0.6)


def test_explanations_name_the_shared_artists_and_genres() -> None:
    taste = Taste(4, {"Ada": 2, "Bo": 1, "Cy": 1}, {"jazz": 2, "soul": 1, "rock": 1})
    assert explain(["Bo", "Ada", "Zed"], ["soul", "jazz", "pop"], taste) == (
        "Ada: 2 favourites; Bo: 1 favourite; jazz: 50% of favourites; soul: 25% of favourites"
    )
    assert explain(["Zed"], ["pop"], taste) == "audio features like the favourites'"
    assert explain(["Ada"], [], taste, ["energy (+0.84)"]) == "energy (+0.84); Ada: 2 favourites"


def test_contributions_in_words_strongest_first_with_their_direction() -> None:
    slots = ["energy", "artist_keys__te", "genre:jazz", "primary:rock", "album_key__count_log"]
    inputs = np.array([[0.0, 1.0, 1.0, 0.0, 2.0], [1.0, 0.0, 0.0, 1.0, 2.0], [2.0, 0.5, 1.0, 0.0, 2.0]])
    values = np.array([[-1.0, 0.6, 0.2, 0.0, 0.0], [0.1, -0.6, -0.2, 0.0, 0.0], [1.2, 0.0, 0.2, 0.0, 0.0]])
    explained = Contributions(slots=slots, base=0.5, values=values, inputs=inputs)
    summary = summarise(explained, "classification")
    assert [row["feature"] for row in summary] == ["energy", "artist_keys__te", "genre:jazz"], "no zero slot"
    assert [row["meaning"] for row in summary] == ["energy", "artists: favourite rate", "genre jazz"]
    assert [row["direction"] for row in summary] == ["higher raises the score"] * 3
    assert summary[0]["mean_abs_contribution"] == pytest.approx(2.3 / 3)
    assert reasons(explained, 0, "classification") == ["artists: favourite rate (+0.60)", "genre jazz (+0.20)"]
    assert reasons(explained, 1, "classification", count=1) == ["energy (+0.10)"]
    assert describe("artist_keys__te_max", "regression") == "artists: best usual popularity"
    assert describe("album_key__count_log", "regression") == "album: tracks in gold"
    assert describe("primary:(unseen)", "regression") == "primary genre (unseen)"
    assert describe("duration_min", "regression") == "duration min"
    assert direction(np.array([1.0, 2.0, 3.0]), np.array([0.3, 0.2, 0.1])) == "higher lowers the score"
    assert direction(np.array([1.0, 1.0, 1.0]), np.array([0.3, 0.2, 0.1])) == "flat"
    assert summarise(Contributions(slots, 0.0, np.empty((0, 5)), np.empty((0, 5))), "regression") == []


def test_gold_rows_of_a_development_app_lack_what_spotify_removed() -> None:
    catalogue = generate_catalogue(5, CatalogueSize(tracks=200, artists=30, albums=40, playlists=6))
    extended, development = gold_rows(catalogue, "extended"), gold_rows(catalogue, "development")
    assert len(extended) == len(development) == 200
    assert all(r["popularity"] is not None and r["time_signature"] is not None for r in extended)
    assert all(r["popularity"] is None and r["artist_popularity"] is None for r in development)
    assert all(r["time_signature"] is None for r in development)
    with_features = [r for r in development if r["energy"] is not None]
    assert 150 < len(with_features) < 200  # ReccoBeats knows ~90 % of the tracks
    assert {r["track_id"] for r in extended if r["is_favourite"]} == catalogue.favourites
    assert set(NOTEBOOK_FEATURES) <= set(extended[0])


def test_a_second_holder_of_the_lock_is_refused_with_the_pid(tmp_path: Path) -> None:
    path = tmp_path / "state" / "training.lock"
    with (
        ProcessLock(path, "trainer"),
        pytest.raises(SetupError, match=r"another trainer is already running \(pid \d+"),
        ProcessLock(path, "trainer"),
    ):
        pass
    with ProcessLock(path, "trainer") as lock:  # released: free again
        assert lock.path.read_text().strip().isdigit()


def test_the_precision_objective_picks_the_best_recall_at_the_minimum_precision() -> None:
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0, 1, 0])
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    # precision at each cut: >=0.95 1/1, >=0.9 2/2, >=0.85 2/3, >=0.8 3/4, >=0.7 3/5, >=0.6 4/6 ...
    assert choose_threshold(labels, scores, "precision", 0.75) == pytest.approx(0.8)  # 3 of 5 found, at 3/4
    assert choose_threshold(labels, scores, "precision", 1.0) == pytest.approx(0.9)
    assert choose_threshold(labels, scores, "f1", 0.75) == best_f1_threshold(labels, scores)
    # Nothing reaches the precision asked for: the F1-best threshold.
    assert choose_threshold(np.array([0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6]), "precision", 0.9) == (
        best_f1_threshold(np.array([0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6]))
    )


def test_the_full_grid_puts_both_tree_learners_side_by_side_and_quick_keeps_one_of_each_kind() -> None:
    full = {point.family for point in tuning_grid("full")}
    assert full == {"linear", "gbt", "xgboost"}
    assert [point.family for point in tuning_grid("quick")] == ["linear", "xgboost"]
