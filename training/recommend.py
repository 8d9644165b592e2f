"""Recommendations: the champion favourite model scores every track that is not already a favourite.

Each recommendation carries its explanation: what raises its score the most to the model (its SHAP values:
"energy (+0.84)", "artists: favourite rate (+0.52)"), then which of its artists and genres the favourites share
("Velvet Echo: 3 favourites", "jazz: 24% of favourites"). The trainer writes the ranking to the
`recommendations` Delta table every cycle; `python -m training recommend` prints the top of it live.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Window
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.errors import SetupError, first_line
from training import registry
from training.data import model_input
from training.explain import track_reasons

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.sql import DataFrame, SparkSession

SCHEMA = (
    "rank INT, track_id STRING, name STRING, artist_names ARRAY<STRING>, genres ARRAY<STRING>, score DOUBLE, "
    "because STRING, model_name STRING, model_version STRING, gold_version BIGINT, generated_at TIMESTAMP"
)


@dataclass(frozen=True)
class Taste:
    """What the favourites have in common: how many favourites each artist and genre has."""

    favourites: int
    artists: Mapping[str, int]
    genres: Mapping[str, int]


def favourites_sharing(gold: "DataFrame", artists: set[str], genres: set[str]) -> Taste:
    """The favourites' counts of these artists and genres only, counted by Spark: collecting every
    favourite to count them here cost gigabytes of driver memory at a million tracks."""
    favourites = gold.where(F.col("is_favourite"))

    def counts(column: str, wanted: set[str]) -> dict[str, int]:
        if not wanted:
            return {}
        values = favourites.select(F.explode(F.array_distinct(column)).alias("value"))
        rows = values.where(F.col("value").isin(sorted(wanted))).groupBy("value").count().collect()
        return {row["value"]: int(row["count"]) for row in rows}

    return Taste(favourites.count(), counts("artist_names", artists), counts("genres", genres))


def explain(
    artist_names: list[str] | None, genres: list[str] | None, taste: Taste, model_reasons: list[str] | None = None
) -> str:
    """What raises the track's score to the model (`model_reasons`), then the artists and genres of the track
    that the favourites share, strongest first."""
    reasons = [
        (taste.artists[a], f"{a}: {taste.artists[a]} favourite{'s' * (taste.artists[a] != 1)}")
        for a in (artist_names or [])
        if taste.artists.get(a)
    ]
    genre_reasons = [
        (taste.genres[g], f"{g}: {taste.genres[g] / taste.favourites:.0%} of favourites")
        for g in (genres or [])
        if taste.genres.get(g) and taste.favourites
    ]
    ordered = sorted(reasons, key=lambda r: -r[0]) + sorted(genre_reasons, key=lambda r: -r[0])
    return "; ".join([*(model_reasons or []), *(text for _, text in ordered)]) or "audio features like the favourites'"


def score_tracks(model: Any, gold: "DataFrame") -> "DataFrame":
    """Every non-favourite track with the model's favourite probability as `score`."""
    candidates = gold.where(~F.coalesce(F.col("is_favourite"), F.lit(False)))
    scored = model.transform(model_input(candidates))
    ranked: DataFrame = scored.select("track_id", vector_to_array(F.col("probability"))[1].alias("score")).join(
        candidates.select("track_id", "name", "artist_names", "genres"), "track_id"
    )
    return ranked


def at_most_per_artist(ranked: "DataFrame", limit: int) -> "DataFrame":
    """The best `limit` tracks of each primary artist (all of them when `limit` is 0): discovery, not more
    of the same artists."""
    if not limit:
        return ranked
    artist = F.coalesce(F.get(F.col("artist_names"), 0), F.col("track_id"))  # no artist: a group of its own
    order = Window.partitionBy(artist).orderBy(F.col("score").desc(), "track_id")
    return ranked.withColumn("_nth", F.row_number().over(order)).where(F.col("_nth") <= limit).drop("_nth")


def top_recommendations(
    model: Any,
    gold: "DataFrame",
    top: int,
    model_name: str,
    model_version: str,
    gold_version: int,
    max_per_artist: int = 0,
) -> list[dict[str, Any]]:
    """The `top` best-scored non-favourites (at most `max_per_artist` per primary artist), ranked and
    explained (ties broken by track id)."""
    ranked = at_most_per_artist(score_tracks(model, gold), max_per_artist)
    best = ranked.orderBy(F.col("score").desc(), "track_id").limit(top).collect()
    taste = favourites_sharing(
        gold, {a for row in best for a in row["artist_names"] or []}, {g for row in best for g in row["genres"] or []}
    )
    chosen = model_input(gold.where(F.col("track_id").isin([row["track_id"] for row in best])))
    model_reasons = track_reasons(model, chosen, "classification") if best else {}
    return [
        {
            "rank": rank,
            "track_id": row["track_id"],
            "name": row["name"],
            "artist_names": list(row["artist_names"] or []),
            "genres": list(row["genres"] or []),
            "score": float(row["score"]),
            "because": explain(row["artist_names"], row["genres"], taste, model_reasons.get(row["track_id"])),
            "model_name": model_name,
            "model_version": model_version,
            "gold_version": gold_version,
        }
        for rank, row in enumerate(best, start=1)
    ]


def write_recommendations(spark: "SparkSession", rows: list[dict[str, Any]], location: str) -> None:
    """Replace the table's contents with this ranking (older rankings stay readable by time travel)."""
    frame = spark.createDataFrame([{**row, "generated_at": None} for row in rows], schema=SCHEMA).withColumn(
        "generated_at", F.current_timestamp()
    )
    frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(location)


def champion_recommendations(
    client: "MlflowClient", gold: "DataFrame", gold_version: int, top: int, max_per_artist: int = 0
) -> tuple[str, list[dict[str, Any]]] | None:
    """The favourite champion's version and its `top` recommendations among `gold`'s tracks (the one path
    of the trainer's cycle and of `python -m training recommend`); None when no model is champion yet."""
    name = registry.model_name("favourite")
    champion = registry.version_by_alias(client, name, registry.CHAMPION)
    if champion is None:
        return None
    version = str(champion.version)
    model = load_champion(name, version)
    return version, top_recommendations(model, gold, top, name, version, gold_version, max_per_artist)


def load_champion(name: str, version: str) -> Any:
    """The champion of model `name` (version `version`, for the message), or one line saying why it cannot load."""

    try:
        return registry.load_champion_model(name)
    except Exception as exc:  # noqa: BLE001 - files gone or unreadable: one line, not a traceback
        raise SetupError(
            f"the favourite champion ({name} v{version}) cannot be loaded: {first_line(exc, 200)}. Check "
            "that MLflow's artifact store is reachable from here, or train again (`python -m training run --once`)"
        ) from None
