"""More like this: the tracks nearest to a seed (a track, or a playlist's tracks) in the favourite champion's eyes.

The champion's pipeline, up to its learner, turns each gold row into the vector it scores (audio features,
identity encodings, genres, scaled). Two tracks are alike when their vectors are close on the slots the
champion relies on: the distance weighs each slot by the champion's feature importance, so what the model
learnt matters decides what "alike" means. The seed is the track, or the centre of a playlist's tracks; the
seed's own tracks and the known favourites are left out, and each result says what it shares with the seed.
"""

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.errors import SetupError
from training.data import model_input
from training.models import importances

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_REFERENCE = re.compile(
    r"(?:spotify:(track|playlist):|open\.spotify\.com/(?:intl-\w+/)?(track|playlist)/)([0-9A-Za-z]+)"
)
_ID = re.compile(r"^[0-9A-Za-z]{22}$")


@dataclass(frozen=True)
class Seed:
    kind: str  # "track", "playlist" or "" (a bare id: a track if gold has it, else a playlist)
    spotify_id: str


def parse_seed(reference: str) -> Seed:
    """A track or playlist from an id, a `spotify:track:` / `spotify:playlist:` URI or an open.spotify.com URL."""
    text = reference.strip()
    match = _REFERENCE.search(text)
    if match:
        return Seed(match.group(1) or match.group(2), match.group(3))
    if _ID.match(text):
        return Seed("", text)
    raise SetupError(f"{reference!r} is not a Spotify track or playlist id, URI or URL (ids are 22 letters and digits)")


def seed_tracks(seed: Seed, gold: "DataFrame", members: "DataFrame | None") -> list[str]:
    """The gold tracks the seed stands for; a clear error when there are none."""
    if seed.kind in ("track", "") and gold.where(F.col("track_id") == seed.spotify_id).limit(1).count():
        return [seed.spotify_id]
    if seed.kind in ("playlist", "") and members is not None:
        rows = members.where((F.col("playlist_id") == seed.spotify_id) & F.col("is_member")).select("track_id")
        in_gold = rows.join(gold.select("track_id"), "track_id").distinct().collect()
        if in_gold:
            return sorted(row["track_id"] for row in in_gold)
    what = {"track": "track", "playlist": "playlist"}.get(seed.kind, "track or playlist")
    raise SetupError(
        f"{what} {seed.spotify_id} is not in gold: the producer has not seen it (follow a playlist that holds it, "
        "PRODUCER_PLAYLISTS), or the streaming job has not caught up yet"
    )


def weighted_distance(vector: Any, centre: list[float], weights: list[float]) -> Any:
    """sqrt(sum_i w_i (x_i - c_i)^2) as a Spark column over the array column `vector`."""
    diffs = F.zip_with(vector, F.array(*[F.lit(float(c)) for c in centre]), lambda x, c: x - c)
    weighted = F.zip_with(diffs, F.array(*[F.lit(float(w)) for w in weights]), lambda d, w: w * d * d)
    return F.sqrt(F.aggregate(weighted, F.lit(0.0), lambda total, v: total + v))


def shared_with(row: Any, artists: set[str], genres: set[str]) -> str:
    same_artists = [a for a in row["artist_names"] or [] if a in artists]
    same_genres = [g for g in row["genres"] or [] if g in genres]
    reasons = [f"same artist: {', '.join(same_artists)}"] if same_artists else []
    reasons += [f"genre: {', '.join(same_genres[:3])}"] if same_genres else []
    return "; ".join(reasons) or "sounds alike (audio features close where the model looks)"


def similar_tracks(
    model: Any, gold: "DataFrame", members: "DataFrame | None", seed: Seed, top: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """The seed's tracks and the `top` non-favourite tracks nearest to them, nearest first, with reasons."""
    seeds = seed_tracks(seed, gold, members)
    prepare = PipelineModel(stages=model.stages[:-1])
    vectors = prepare.transform(model_input(gold)).select(
        "track_id", vector_to_array(F.col("features")).alias("vector")
    )
    seed_vectors = [row["vector"] for row in vectors.where(F.col("track_id").isin(seeds)).collect()]
    centre = [sum(column) / len(seed_vectors) for column in zip(*seed_vectors, strict=True)]
    weights = importances(model)
    if len(weights) != len(centre) or not sum(weights):
        weights = [1.0] * len(centre)  # a model without usable importances: every slot alike
    candidates = gold.where(~F.coalesce(F.col("is_favourite"), F.lit(False)) & ~F.col("track_id").isin(seeds))
    nearest = (
        vectors.join(candidates.select("track_id", "name", "artist_names", "genres"), "track_id")
        .withColumn("distance", weighted_distance(F.col("vector"), centre, weights))
        .orderBy("distance", "track_id")
        .limit(top)
        .collect()
    )
    described = gold.where(F.col("track_id").isin(seeds)).select("artist_names", "genres").collect()
    artists = {a for row in described for a in row["artist_names"] or []}
    genres = {g for row in described for g in row["genres"] or []}
    return seeds, [
        {
            "rank": rank,
            "track_id": row["track_id"],
            "name": row["name"],
            "artist_names": list(row["artist_names"] or []),
            "genres": list(row["genres"] or []),
            "distance": float(row["distance"]),
            "because": shared_with(row, artists, genres),
        }
        for rank, row in enumerate(nearest, start=1)
    ]
