"""From the gold `track_features` table to model inputs: pure DataFrame functions, no I/O.

* `model_input` turns gold rows into the columns the models read (one row per track, numbers as
  doubles, the labels beside them). A logged model's signature is these columns.
* `holdout_flag` puts each track on one side of the train/holdout split by a seeded hash of its id, so
  the side a track is on never changes as the table grows: a champion trained on an older version never
  saw the current holdout's tracks, and each track is on exactly one side (no leakage).
* `choose_features` keeps the features the data has (a development-mode app has no popularity and
  maybe no audio features) and says which are missing.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.contract import AUDIO_FEATURES
from pipeline_runtime.delta_log import read_version
from pipeline_runtime.errors import SetupError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from training.settings import TrainingSettings

# The notebook's 12 audio features, and the 4 it standardised (REFERENCE §7).
NOTEBOOK_FEATURES = AUDIO_FEATURES
NOTEBOOK_SCALED = ("instrumentalness", "key", "liveness", "speechiness")
# Ours: everything known about a track before anyone listens to it (labels and playlist counts are not).
TRACK_FEATURES = (
    "artist_popularity",
    "artist_followers_log",
    "release_year",
    "duration_min",
    "explicit",
    *NOTEBOOK_FEATURES,
)
GENRE_FEATURES = ("genres", "primary_genre")
# Who made the track, as keys for target encoding (training.encoding): feature name -> key column. Artists
# are keyed by name because that is the one identity every source has (a catalogue file has no ids).
IDENTITY_FEATURES = {"artists": "artist_keys", "album": "album_key", "genres": "genres"}
POPULARITY = "popularity"
FAVOURITE = "favourite"
HOLDOUT_BUCKETS = 10_000


@dataclass(frozen=True)
class FeatureSet:
    """The numeric columns a model uses and whether it uses the genre encodings."""

    numeric: tuple[str, ...]
    genres: bool
    identity: tuple[str, ...] = ()  # of IDENTITY_FEATURES: target-encoded

    @property
    def key_columns(self) -> list[str]:
        return [IDENTITY_FEATURES[name] for name in self.identity]

    @property
    def columns(self) -> list[str]:
        keys = [key for key in self.key_columns if key not in GENRE_FEATURES]
        return [*self.numeric, *(GENRE_FEATURES if self.genres or "genres" in self.identity else ()), *keys]


def one_row_per_track(gold: "DataFrame") -> "DataFrame":
    """One row per track id: a track in any favourite playlist is a favourite, never also a negative (the
    notebook appended per playlist and its dedup kept both). The streaming job's gold is already one row
    per track; this guards tables written by other means."""
    order = Window.partitionBy("track_id").orderBy(
        F.col("is_favourite").desc_nulls_last(), F.col("updated_at").desc_nulls_last()
    )
    return gold.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


LISTENING = ("play_count", "top_rank")  # the gold columns a favourite label from listening reads


def with_favourite_label(gold: "DataFrame", label: str, min_plays: int) -> "DataFrame":
    """Gold with `is_favourite` as TRAINING_FAVOURITE_LABEL says: `playlists` (as the streaming job wrote it: in a
    favourite playlist, or saved), `listening` (played at least `min_plays` times, or in a top list), `either`."""
    if label == "playlists":
        return gold
    listened = (F.coalesce(F.col("play_count"), F.lit(0)) >= min_plays) | F.col("top_rank").isNotNull()
    favourite = listened if label == "listening" else F.coalesce(F.col("is_favourite"), F.lit(False)) | listened
    return gold.withColumn("is_favourite", favourite)


def model_input(gold: "DataFrame") -> "DataFrame":
    """One row per track with the model columns: numbers as doubles, genres as an array and the primary
    genre, the identity keys (lower-cased artist names; album and first artist), plus both labels
    (`popularity` is also a feature of the favourite model)."""
    numbers: dict[str, Column] = {
        "artist_popularity": F.col("artist_popularity"),
        "artist_followers_log": F.log1p(F.col("artist_followers")),
        "release_year": F.col("release_year"),
        "duration_min": F.col("duration_ms") / 60_000,
        "explicit": F.col("explicit").cast("int"),
        **{name: F.col(name) for name in NOTEBOOK_FEATURES},
    }
    no_keys = F.array().cast("array<string>")
    genres = F.coalesce(F.col("genres"), no_keys)
    names = F.filter(
        F.transform(F.coalesce(F.col("artist_names"), no_keys), lambda name: F.lower(F.trim(name))),
        lambda name: name.isNotNull() & (name != ""),
    )
    artist_keys = F.when(F.size(names) > 0, names).otherwise(
        F.filter(F.array(F.col("primary_artist_id")), lambda key: key.isNotNull())
    )
    album = F.lower(F.trim(F.col("album_name")))  # album names repeat across artists: keyed with the first
    album_key = F.when(album.isNotNull() & (album != ""), F.array(F.concat_ws("|", album, F.get(names, 0))))
    return gold.select(
        "track_id",
        *[value.cast("double").alias(name) for name, value in numbers.items()],
        genres.alias("genres"),
        F.coalesce(F.get(genres, 0), F.lit("unknown")).alias("primary_genre"),
        artist_keys.alias("artist_keys"),
        F.coalesce(album_key, no_keys).alias("album_key"),
        F.col("popularity").cast("double").alias(POPULARITY),
        F.col("is_favourite").cast("double").alias(FAVOURITE),
    )


def holdout_flag(seed: int, fraction: float) -> Column:
    """True for the tracks in the holdout: a seeded hash of the track id, stable across table versions."""
    bucket = F.pmod(F.xxhash64(F.col("track_id"), F.lit(seed)), F.lit(HOLDOUT_BUCKETS))
    return bucket < F.lit(round(fraction * HOLDOUT_BUCKETS))


def coverage_expressions(columns: Iterable[str], among: Column | None = None) -> list[Column]:
    """One aggregate per column: the share of rows (of those where `among` holds) with a value, for `agg`."""

    def share(name: str) -> Column:
        has_value = F.col(name).isNotNull().cast("double")
        return F.avg(has_value if among is None else F.when(among, has_value))

    return [share(name).alias(name) for name in columns]


def choose_features(
    coverage: Mapping[str, float], candidates: Iterable[str], min_coverage: float, exclude: Iterable[str] = ()
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The candidate features with enough values, and why each other one is left out."""
    excluded = set(exclude)
    used: list[str] = []
    missing: dict[str, str] = {}
    for name in candidates:
        share = coverage.get(name, 0.0)
        if name in excluded:
            missing[name] = "excluded by TRAINING_EXCLUDE_FEATURES"
        elif share < min_coverage:
            missing[name] = f"{share:.0%} of tracks have it (need {min_coverage:.0%})"
        else:
            used.append(name)
    return tuple(used), missing


def complete_rows(rows: "DataFrame", columns: Iterable[str]) -> Column:
    """True where every one of `columns` has a value."""
    condition = F.lit(True)
    for name in columns:
        condition = condition & F.col(name).isNotNull()
    return condition


def with_class_weights(rows: "DataFrame", label: str, positive_share: float) -> "DataFrame":
    """A `weight` column that gives both classes the same total weight (the favourites are the few)."""
    positive = 0.5 / positive_share
    negative = 0.5 / (1 - positive_share)
    return rows.withColumn("weight", F.when(F.col(label) == 1, positive).otherwise(negative))


@dataclass
class TaskData:
    """One task's rows split for training and holdout, the features chosen, and what was left out (why)."""

    train: "DataFrame"
    holdout: "DataFrame"
    features: FeatureSet
    baseline_features: tuple[str, ...]
    missing: dict[str, str]
    train_rows: int
    holdout_rows: int
    positive_share: float | None


def read_gold(spark: "SparkSession", settings: "TrainingSettings", location: str, version: int) -> "DataFrame":
    """Gold at `version`, one row per track, with the favourite label TRAINING_FAVOURITE_LABEL asks for."""
    gold = read_version(spark, location, version)
    if settings.favourite_label != "playlists" and not set(LISTENING) <= set(gold.columns):
        raise SetupError(
            f"TRAINING_FAVOURITE_LABEL={settings.favourite_label} reads gold's listening columns "
            f"({', '.join(LISTENING)}), which the gold table {location} does not have yet: start the streaming job "
            "once (it adds them), or set TRAINING_FAVOURITE_LABEL=playlists"
        )
    return one_row_per_track(with_favourite_label(gold, settings.favourite_label, settings.favourite_min_plays))
