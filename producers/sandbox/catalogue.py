"""The sandbox's generated music catalogue and the statistical model behind it.

Everything is drawn from one seeded generator, so the same seed and sizes give the same catalogue.

The model (its parameters, noise included, are written to `model.json` beside the catalogue):

* Each artist has a primary genre (of GENRES), 1-3 genres in all, and a popularity
  `artist_popularity = 100 * Beta(2, 3)`.
* Each track belongs to one album of one artist. Its audio features are drawn around the
  genre's centre: `feature = clip(centre[genre][f] + Normal(0, 0.15))` for the [0, 1] features,
  `loudness ~ Normal(-8 + 4 * (energy - 0.5), 2)`, `tempo ~ Normal(tempo_centre[genre], 20)`,
  `key ~ Uniform{0..11}`, `mode ~ Bernoulli(0.6)`, `time_signature` 4 (90 %) or 3.
* Popularity: `clip(round(intercept + a * artist_popularity + genre_effect[genre]
  + sum_f beta_f * z_f + Normal(0, popularity_noise_sd)), 0, 100)`, with `z_f` the feature
  standardised over the catalogue.
* Favourite: a hidden taste profile; `logit = bias + sum_f w_f * z_f + genre_taste[genre]
  + Normal(0, taste_noise_sd)` and `favourite ~ Bernoulli(sigmoid(logit))`, with `bias` set so that
  about `favourite_share` of the tracks are favourites.
* The best scores any model could reach on this catalogue are computed from the noiseless signal and
  written as `best_popularity_r2`, `best_popularity_rmse` and `best_favourite_auc`.
"""

import json
import math
import string
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_runtime.contract import AUDIO_FEATURES

GENRES = (
    "pop",
    "rock",
    "hip hop",
    "electronic",
    "jazz",
    "classical",
    "indie",
    "metal",
    "r&b",
    "country",
    "latin",
    "folk",
    "reggae",
    "blues",
    "ambient",
)
UNIT_FEATURES = ("danceability", "energy", "valence", "acousticness", "instrumentalness", "liveness", "speechiness")
MODEL_FEATURES = (*UNIT_FEATURES, "loudness", "tempo")
BASE62 = string.digits + string.ascii_letters
SANDBOX_USER = "sandbox-user"
OTHER_USER = "someone-else"
WORDS = (
    "midnight",
    "golden",
    "river",
    "electric",
    "paper",
    "velvet",
    "echo",
    "neon",
    "summer",
    "silent",
    "wild",
    "glass",
    "ocean",
    "fire",
    "shadow",
    "crystal",
    "lonely",
    "city",
    "dream",
    "stone",
    "blue",
    "heart",
    "northern",
    "sugar",
    "thunder",
    "satellite",
    "honey",
    "winter",
    "broken",
    "radio",
)


@dataclass(frozen=True)
class CatalogueSize:
    tracks: int = 2000
    artists: int = 200
    albums: int = 500
    playlists: int = 12
    favourite_playlists: int = 3


@dataclass
class Catalogue:
    seed: int
    size: CatalogueSize
    artists: dict[str, dict[str, Any]] = field(default_factory=dict)
    albums: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)
    audio_features: dict[str, dict[str, Any]] = field(default_factory=dict)
    playlists: dict[str, dict[str, Any]] = field(default_factory=dict)
    favourites: set[str] = field(default_factory=set)
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def favourite_playlist_ids(self) -> list[str]:
        return [pid for pid, p in self.playlists.items() if p["favourite"]]

    def save(self, folder: Path) -> None:
        """catalogue.json (what the sandbox serves) and model.json (how it was made) in `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        data = {
            "seed": self.seed,
            "size": asdict(self.size),
            "artists": self.artists,
            "albums": self.albums,
            "tracks": self.tracks,
            "audio_features": self.audio_features,
            "playlists": self.playlists,
            "favourites": sorted(self.favourites),
        }
        (folder / "catalogue.json").write_text(json.dumps(data))
        (folder / "model.json").write_text(json.dumps(self.model, indent=2))

    def export_tracks_csv(self, path: Path) -> None:
        """The catalogue in the "Spotify Tracks Dataset" layout (REFERENCE §6), for backfill tests."""
        import csv  # noqa: PLC0415

        columns = [
            "track_id",
            "artists",
            "album_name",
            "track_name",
            "popularity",
            "duration_ms",
            "explicit",
            *AUDIO_FEATURES,
            "track_genre",
        ]
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for tid, track in self.tracks.items():
                features = self.audio_features[tid]
                artist_names = ";".join(self.artists[a]["name"] for a in track["artist_ids"])
                album = self.albums[track["album_id"]]
                for genre in self.artists[track["artist_ids"][0]]["genres"][:2]:  # ids repeat across genres
                    writer.writerow(
                        [
                            tid,
                            artist_names,
                            album["name"],
                            track["name"],
                            track["popularity"],
                            track["duration_ms"],
                            track["explicit"],
                            *(features[f] for f in columns[7:19]),
                            genre,
                        ]
                    )


def spotify_id(rng: np.random.Generator) -> str:
    return "".join(BASE62[i] for i in rng.integers(0, 62, size=22))


def title(rng: np.random.Generator, words: int) -> str:
    return " ".join(str(w).capitalize() for w in rng.choice(WORDS, size=words, replace=False))


def sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return result


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (tied scores share their mean rank)."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = np.empty(len(scores), dtype=float)
    ranks[np.argsort(scores, kind="mergesort")] = np.arange(1, len(scores) + 1)
    ranks = (np.bincount(inverse, weights=ranks) / counts)[inverse]
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def expected_share_bias(signal: np.ndarray, noise_sd: float, share: float) -> float:
    """The bias at which the expected share of favourites is `share` (bisection; the share grows with it)."""
    draws = np.random.default_rng(0).normal(0, noise_sd, size=(8, len(signal)))
    low, high = -20.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        if sigmoid(middle + signal + draws).mean() < share:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def generate_catalogue(seed: int = 42, size: CatalogueSize | None = None) -> Catalogue:  # noqa: PLR0915
    size = size or CatalogueSize()
    rng = np.random.default_rng(seed)
    catalogue = Catalogue(seed=seed, size=size)
    n_genres = len(GENRES)

    # Genre centres of the [0, 1] features and tempo; genre effects on popularity and taste.
    centres = rng.uniform(0.1, 0.9, size=(n_genres, len(UNIT_FEATURES)))
    tempo_centres = rng.uniform(80, 160, size=n_genres)
    genre_popularity = rng.normal(0, 6, size=n_genres)
    genre_taste = rng.normal(0, 0.8, size=n_genres)

    # Artists.
    artist_ids = [spotify_id(rng) for _ in range(size.artists)]
    artist_genre = rng.integers(0, n_genres, size=size.artists)
    artist_popularity = np.round(100 * rng.beta(2, 3, size=size.artists)).astype(int)
    for i, aid in enumerate(artist_ids):
        extra = rng.choice(n_genres, size=int(rng.integers(0, 3)), replace=False)
        genres = [GENRES[artist_genre[i]]] + [GENRES[g] for g in extra if g != artist_genre[i]]
        catalogue.artists[aid] = {
            "id": aid,
            "name": f"The {title(rng, 2)}" if rng.random() < 0.3 else title(rng, 2),
            "genres": genres,
            "popularity": int(artist_popularity[i]),
            "followers": int(artist_popularity[i] ** 2 * 40 + rng.integers(0, 5000)),
        }

    # Albums: each by one artist.
    album_ids = [spotify_id(rng) for _ in range(size.albums)]
    album_artist = np.concatenate(
        [
            np.arange(min(size.artists, size.albums)),
            rng.integers(0, size.artists, size=max(0, size.albums - size.artists)),
        ]
    )
    start = date(1965, 1, 1)
    for i, alid in enumerate(album_ids):
        released = start + timedelta(days=int(rng.integers(0, 60 * 365)))
        catalogue.albums[alid] = {
            "id": alid,
            "name": title(rng, int(rng.integers(1, 4))),
            "artist_ids": [artist_ids[album_artist[i]]],
            "release_date": released.isoformat(),
            "label": f"{title(rng, 1)} Records",
            "popularity": int(np.clip(artist_popularity[album_artist[i]] + rng.normal(0, 10), 0, 100)),
            "track_ids": [],
        }

    # Tracks and their audio features.
    track_ids = [spotify_id(rng) for _ in range(size.tracks)]
    track_album = rng.integers(0, size.albums, size=size.tracks)
    track_artist = album_artist[track_album]
    track_genre = artist_genre[track_artist]
    unit = np.clip(centres[track_genre] + rng.normal(0, 0.15, size=(size.tracks, len(UNIT_FEATURES))), 0, 1)
    energy = unit[:, UNIT_FEATURES.index("energy")]
    loudness = np.clip(rng.normal(-8 + 4 * (energy - 0.5), 2), -40, 0)
    tempo = np.clip(rng.normal(tempo_centres[track_genre], 20), 50, 220)
    raw = np.column_stack([unit, loudness, tempo])
    z = (raw - raw.mean(axis=0)) / raw.std(axis=0)

    # Popularity.
    intercept, artist_weight, popularity_noise_sd = 8.0, 0.6, 9.0
    beta = rng.normal(0, 3.0, size=len(MODEL_FEATURES))
    popularity_signal = (
        intercept + artist_weight * artist_popularity[track_artist] + genre_popularity[track_genre] + z @ beta
    )
    popularity = np.clip(np.round(popularity_signal + rng.normal(0, popularity_noise_sd, size=size.tracks)), 0, 100)
    expected = np.clip(popularity_signal, 0, 100)
    residual = popularity - expected
    best_r2 = 1 - residual.var() / popularity.var()

    # Favourites: the hidden taste profile.
    taste = rng.normal(0, 1.0, size=len(MODEL_FEATURES))
    taste_noise_sd, favourite_share = 0.5, 0.18
    taste_signal = z @ taste + genre_taste[track_genre]
    bias = expected_share_bias(taste_signal, taste_noise_sd, favourite_share)
    logit = bias + taste_signal + rng.normal(0, taste_noise_sd, size=size.tracks)
    favourite = rng.random(size.tracks) < sigmoid(logit)
    best_auc = roc_auc(sigmoid(bias + taste_signal), favourite.astype(int))

    for i, tid in enumerate(track_ids):
        album = catalogue.albums[album_ids[track_album[i]]]
        album["track_ids"].append(tid)
        catalogue.tracks[tid] = {
            "id": tid,
            "name": title(rng, int(rng.integers(1, 4))),
            "album_id": album["id"],
            "artist_ids": [artist_ids[track_artist[i]]],
            "duration_ms": int(np.clip(rng.normal(210_000, 45_000), 60_000, 600_000)),
            "explicit": bool(rng.random() < 0.15),
            "popularity": int(popularity[i]),
            "isrc": f"SB{seed % 100:02d}{i:08d}",
            "track_number": len(album["track_ids"]),
            "reccobeats": bool(rng.random() < 0.9),  # ReccoBeats knows ~90 % of the tracks
            # the hidden taste's chance that the listener likes it (what a perfect favourite model would say)
            "liking": round(float(sigmoid(bias + taste_signal[i])), 4),
        }
        features = {name: round(float(unit[i, j]), 4) for j, name in enumerate(UNIT_FEATURES)}
        features.update(
            loudness=round(float(loudness[i]), 3),
            tempo=round(float(tempo[i]), 3),
            key=int(rng.integers(0, 12)),
            mode=int(rng.random() < 0.6),
            time_signature=4 if rng.random() < 0.9 else 3,
        )
        catalogue.audio_features[tid] = features
        if favourite[i]:
            catalogue.favourites.add(tid)

    # Playlists: favourites owned by the sandbox user, other own playlists, and other users' ones.
    favourites = [t for t in track_ids if t in catalogue.favourites]
    others = [t for t in track_ids if t not in catalogue.favourites]
    for p in range(size.playlists):
        pid = spotify_id(rng)
        is_favourite = p < size.favourite_playlists
        owned = p < size.favourite_playlists + max(1, (size.playlists - size.favourite_playlists) // 2)
        if is_favourite:
            members = favourites[p :: size.favourite_playlists]
        else:
            pool_size = min(len(track_ids), int(rng.integers(40, 160)))
            members = list(
                rng.choice(others or track_ids, size=min(pool_size, len(others or track_ids)), replace=False)
            )
        catalogue.playlists[pid] = {
            "id": pid,
            "name": ("Favourites " if is_favourite else "Mix ") + title(rng, 2),
            "owner": SANDBOX_USER if owned else OTHER_USER,
            "favourite": is_favourite,
            "track_ids": [str(t) for t in members],
            "version": 1,
        }

    catalogue.model = {
        "seed": seed,
        "size": asdict(size),
        "genres": list(GENRES),
        "features": list(MODEL_FEATURES),
        "feature_means": dict(zip(MODEL_FEATURES, raw.mean(axis=0).round(4).tolist(), strict=True)),
        "feature_sds": dict(zip(MODEL_FEATURES, raw.std(axis=0).round(4).tolist(), strict=True)),
        "popularity": {
            "intercept": intercept,
            "artist_popularity_weight": artist_weight,
            "genre_effect": dict(zip(GENRES, genre_popularity.round(3).tolist(), strict=True)),
            "feature_weights": dict(zip(MODEL_FEATURES, beta.round(3).tolist(), strict=True)),
            "noise_sd": popularity_noise_sd,
        },
        "favourite": {
            "bias": round(bias, 4),
            "genre_taste": dict(zip(GENRES, genre_taste.round(3).tolist(), strict=True)),
            "feature_weights": dict(zip(MODEL_FEATURES, taste.round(3).tolist(), strict=True)),
            "noise_sd": taste_noise_sd,
            "target_share": favourite_share,
            "share": round(float(favourite.mean()), 4),
        },
        "best_popularity_r2": round(float(best_r2), 4),
        "best_popularity_rmse": round(float(math.sqrt((residual**2).mean())), 3),
        "best_favourite_auc": round(best_auc, 4),
    }
    return catalogue


def load_catalogue(folder: Path) -> Catalogue:
    data = json.loads((folder / "catalogue.json").read_text())
    catalogue = Catalogue(seed=data["seed"], size=CatalogueSize(**data["size"]))
    for name in ("artists", "albums", "tracks", "audio_features", "playlists"):
        setattr(catalogue, name, data[name])
    catalogue.favourites = set(data["favourites"])
    catalogue.model = json.loads((folder / "model.json").read_text())
    return catalogue


def gold_rows(catalogue: Catalogue, generation: str = "extended") -> list[dict[str, Any]]:
    """The `track_features` rows the pipeline would build from this catalogue, without running it.

    `extended` has Spotify's audio features and popularity fields for every track; `development` has
    what a 2026 development-mode app gets: no popularity or followers, ReccoBeats features for the
    tracks it knows and no `time_signature`. Every track is included (as if found by search). For
    trainer tests and benchmarks that need a gold table of a chosen size in seconds.
    """
    extended = generation == "extended"
    playlists_of: dict[str, list[dict[str, Any]]] = {}
    for playlist in catalogue.playlists.values():
        for tid in playlist["track_ids"]:
            playlists_of.setdefault(tid, []).append(playlist)
    rows = []
    for tid, track in catalogue.tracks.items():
        artist = catalogue.artists[track["artist_ids"][0]]
        album = catalogue.albums[track["album_id"]]
        has_features = extended or track["reccobeats"]
        features = catalogue.audio_features[tid] if has_features else {}
        member_of = playlists_of.get(tid, [])
        rows.append(
            {
                "track_id": tid,
                "name": track["name"],
                "primary_artist_id": artist["id"],
                "artist_names": [catalogue.artists[a]["name"] for a in track["artist_ids"]],
                "album_name": album["name"],
                "release_date": album["release_date"],
                "release_year": int(album["release_date"][:4]),
                "duration_ms": track["duration_ms"],
                "explicit": track["explicit"],
                "popularity": track["popularity"] if extended else None,
                "artist_name": artist["name"],
                "artist_popularity": artist["popularity"] if extended else None,
                "artist_followers": artist["followers"] if extended else None,
                "features_provider": ("spotify" if extended else "reccobeats") if has_features else None,
                **{name: features.get(name) for name in (*MODEL_FEATURES, "key", "mode")},
                "time_signature": features.get("time_signature") if extended else None,
                "is_favourite": any(p["favourite"] for p in member_of),
                "playlist_count": len(member_of),
                "genres": list(artist["genres"]),
            }
        )
    return rows


def noiseless_scores(catalogue: Catalogue) -> dict[str, tuple[float, float]]:
    """Per track: (expected popularity, favourite probability) from the model without its noise: the
    best any model could predict, to compare a trained model with on the same tracks."""
    model = catalogue.model
    popularity, taste = model["popularity"], model["favourite"]
    scores = {}
    for tid, track in catalogue.tracks.items():
        artist = catalogue.artists[track["artist_ids"][0]]
        genre = artist["genres"][0]
        features = catalogue.audio_features[tid]
        z = {f: (features[f] - model["feature_means"][f]) / model["feature_sds"][f] for f in MODEL_FEATURES}
        expected = (
            popularity["intercept"]
            + popularity["artist_popularity_weight"] * artist["popularity"]
            + popularity["genre_effect"][genre]
            + sum(popularity["feature_weights"][f] * z[f] for f in MODEL_FEATURES)
        )
        logit = (
            taste["bias"]
            + taste["genre_taste"][genre]
            + sum(taste["feature_weights"][f] * z[f] for f in MODEL_FEATURES)
        )
        scores[tid] = (min(max(expected, 0.0), 100.0), float(sigmoid(np.array(logit))))
    return scores
