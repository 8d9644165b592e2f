"""What makes a song popular (or a favourite): each feature's contribution to a model's score, with SHAP.

For one track, SHAP values split the model's raw score (the popularity; the favourite model's log-odds) into
a base value (the average score) plus one contribution per slot of the assembled feature vector, and they sum
exactly to the score. XGBoost's and pyspark.ml's boosted trees go through shap's TreeExplainer (TreeSHAP),
linear models through its LinearExplainer (each coefficient times the slot's distance from the mean). The
vectors are computed by the fitted pipeline itself (target encodings, imputation, scaling), collected for at
most `SAMPLE_ROWS` tracks, and explained on the driver.

Pure functions apart from the one `toPandas` that collects the vectors.
"""

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from training.data import IDENTITY_FEATURES
from training.models import slot_names

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SAMPLE_ROWS = 1000  # tracks whose contributions summarise a model (a sample of the holdout)
TOP_FEATURES = 10  # in the summary logged with each model and shown in the report
REASONS = 3  # per recommendation
CONTRIBUTIONS_FILE = "contributions.json"  # logged with each candidate model
CONTRIBUTION_UNITS = {"regression": "popularity points", "classification": "log-odds"}

# The target encoder's outputs in words: the identity's name (`artists` for `artist_keys`), the encoding's meaning
KEY_WORDS = {key: name for name, key in IDENTITY_FEATURES.items()}
ENCODING_WORDS = {
    "regression": {"te": "usual popularity", "te_max": "best usual popularity", "count_log": "tracks in gold"},
    "classification": {"te": "favourite rate", "te_max": "best favourite rate", "count_log": "tracks in gold"},
}


@dataclass(frozen=True)
class Contributions:
    """SHAP values of some tracks: `values[i, j]` is slot `slots[j]`'s share of track i's raw score, and
    `base + values[i].sum()` is that score."""

    slots: list[str]
    base: float
    values: np.ndarray  # (tracks, slots)
    inputs: np.ndarray  # (tracks, slots): what the model read (standardised)


def describe(slot: str, task: str) -> str:
    """A slot in words: `artist_keys__te` is the artists' favourite rate (or usual popularity)."""
    key, _, encoding = slot.partition("__")
    if encoding and key in KEY_WORDS:
        return f"{KEY_WORDS[key]}: {ENCODING_WORDS[task].get(encoding, encoding)}"
    if slot.startswith("genre:"):
        return f"genre {slot.removeprefix('genre:')}"
    if slot.startswith("primary:"):
        return f"primary genre {slot.removeprefix('primary:')}"
    return slot.replace("_", " ")


def feature_vectors(model: Any, frame: "DataFrame") -> tuple[list[str], np.ndarray]:
    """The track ids of `frame` and the vectors the model's last stage reads for them, as a (rows, slots)
    matrix."""
    from pyspark.ml import PipelineModel  # noqa: PLC0415
    from pyspark.ml.functions import vector_to_array  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: N812, PLC0415

    prefix = PipelineModel(stages=model.stages[:-1])
    vectors = prefix.transform(frame).select("track_id", vector_to_array(F.col("features")).alias("f"))
    collected: Any = vectors.toPandas()
    if collected.empty:
        return [], np.empty((0, len(slot_names(model))))
    return [str(t) for t in collected["track_id"]], np.vstack(collected["f"].to_numpy()).astype(float)


def explain_vectors(last_stage: Any, inputs: np.ndarray, slots: list[str]) -> Contributions:
    """SHAP values of `inputs` for a fitted XGBoost, pyspark.ml GBT or linear (regression or logistic) stage."""
    with warnings.catch_warnings():  # shap's colour maps use matplotlib calls it deprecates
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap  # noqa: PLC0415 - a heavy import (numba), on use

    if hasattr(last_stage, "get_booster"):
        explainer: Any = shap.TreeExplainer(last_stage.get_booster())
    elif hasattr(last_stage, "trees"):
        explainer = shap.TreeExplainer(last_stage)
    else:
        coefficients = last_stage.coefficients.toArray()
        explainer = shap.LinearExplainer((coefficients, float(last_stage.intercept)), inputs)
    values = np.asarray(explainer.shap_values(inputs), dtype=float).reshape(len(inputs), len(slots))
    base = float(np.ravel(explainer.expected_value)[0])
    return Contributions(slots=slots, base=base, values=values, inputs=inputs)


def explain_tracks(model: Any, frame: "DataFrame") -> tuple[list[str], Contributions]:
    """The track ids of `frame` and their SHAP values for a fitted pipeline, in the same order."""
    ids, inputs = feature_vectors(model, frame)
    return ids, explain_vectors(model.stages[-1], inputs, slot_names(model))


def contributions(model: Any, frame: "DataFrame", rows: int = SAMPLE_ROWS, seed: int = 1) -> Contributions:
    """SHAP values of at most `rows` of `frame`'s tracks (a seeded sample) for a fitted pipeline."""
    total = frame.count()
    sample = frame if total <= rows else frame.sample(fraction=min(1.0, 1.2 * rows / total), seed=seed).limit(rows)
    return explain_tracks(model, sample)[1]


def track_reasons(model: Any, frame: "DataFrame", task: str, count: int = REASONS) -> dict[str, list[str]]:
    """Each of `frame`'s tracks (a few: the recommendations) with what raises its score the most."""
    ids, explained = explain_tracks(model, frame)
    return {track: reasons(explained, row, task, count) for row, track in enumerate(ids)}


def direction(inputs: np.ndarray, values: np.ndarray) -> str:
    """How a slot moves the score: the sign of the correlation between its value and its contribution."""
    if len(inputs) < 3 or np.ptp(inputs) == 0 or np.ptp(values) == 0:
        return "flat"
    correlation = float(np.corrcoef(inputs, values)[0, 1])
    if math.isnan(correlation) or abs(correlation) < 0.2:
        return "mixed"
    return "higher raises the score" if correlation > 0 else "higher lowers the score"


def summarise(explained: Contributions, task: str, top: int = TOP_FEATURES) -> list[dict[str, Any]]:
    """The `top` slots by mean |SHAP value| (the score's units), each with its words and direction."""
    if not len(explained.values):
        return []
    mean_abs = np.abs(explained.values).mean(axis=0)
    order = [int(j) for j in np.argsort(-mean_abs, kind="stable")[:top] if mean_abs[j] > 0]
    return [
        {
            "feature": explained.slots[j],
            "meaning": describe(explained.slots[j], task),
            "mean_abs_contribution": round(float(mean_abs[j]), 6),
            "direction": direction(explained.inputs[:, j], explained.values[:, j]),
        }
        for j in order
    ]


def reasons(explained: Contributions, row: int, task: str, count: int = REASONS) -> list[str]:
    """The slots that raise track `row`'s score the most, in words with their contribution."""
    values = explained.values[row]
    order = [int(j) for j in np.argsort(-values, kind="stable")[:count] if values[j] > 0]
    return [f"{describe(explained.slots[j], task)} (+{values[j]:.2f})" for j in order]
