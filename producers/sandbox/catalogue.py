"""The sandbox's generated music catalogue and the statistical model behind it.

Everything is drawn from one seeded generator, so the same seed and sizes give the same catalogue. The
model is shaped like real catalogues (the Spotify Tracks Dataset, a listener's library): who made a track
says most about how popular it is, the sound says less, and not additively. Its parameters are written to
`model.json` beside the catalogue.

* Artists: a primary genre (of GENRES), 1-3 genres in all, and a hidden fame `Normal(0, ARTIST_SD)` in
  popularity points. Famous artists release more albums and are featured more. Spotify's artist
  popularity (`ARTIST_POPULARITY_BASE + fame + genre effect + Normal(0, 3)`) and followers are served to
  extended-quota apps only: a development-mode app and an exported catalogue never see them.
* Albums: one artist each, of varying length, released mostly in recent years, with a hidden effect
  `Normal(0, ALBUM_SD)`. Tracks: one album each; FEATURED_SHARE of them credit a featured artist too.
  Audio features are drawn around the genre's centre: `feature = clip(centre[genre][f] + Normal(0, 0.15))`
  for the [0, 1] features, `loudness ~ Normal(-8 + 4 * (energy - 0.5), 2)`,
  `tempo ~ Normal(tempo_centre[genre], 20)`, `key ~ Uniform{0..11}`, `mode ~ Bernoulli(0.6)`,
  `time_signature` 4 (90 %) or 3.
* Popularity: `clip(round(intercept + fame[artist] + album effect + FEATURED_WEIGHT * fame[featured]
  + genre effect + recency(year) + sum_f beta_f * z_f + DANCE_ENERGY_POINTS * z_dance * z_energy
  + thresholds (instrumental, longer than 5 min, explicit) + Normal(0, POPULARITY_NOISE_SD)), 0, 100)`, with
  `z_f` the feature standardised over the catalogue and `recency` a step around RECENCY_YEAR.
* Favourite: the listener's hidden taste; `logit = bias + taste[artist] + genre_taste[genre]
  + sum_f w_f * z_f + VALENCE_ENERGY_TASTE * z_valence * z_energy + SPOKEN_TASTE * (speechiness > 0.5)
  + Normal(0, TASTE_NOISE_SD)` and `favourite ~ Bernoulli(sigmoid(logit))`, with `bias` set so that about
  FAVOURITE_SHARE of the tracks are favourites.
* Two ceilings, in model.json and per track (hidden fields, never served): knowing every latent variable
  (`best_popularity_r2`, `best_popularity_rmse`, `best_favourite_auc`: only the noise is left), and knowing
  only what the data shows (`observable_popularity_r2`, `observable_favourite_auc`: each artist's and
  album's effect estimated from their other tracks).
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
# The model's parameters (popularity in points of 0-100; taste in logits).
POPULARITY_INTERCEPT = 28.0
ARTIST_SD = 13.0
ALBUM_SD = 5.0
GENRE_POPULARITY_SD = 6.0
ARTIST_POPULARITY_BASE = 40.0
FAME_REACH = 0.05  # per point of fame, the log of how much more an artist releases and is featured
FEATURED_SHARE = 0.15
FEATURED_WEIGHT = 0.35
RECENCY_POINTS = 10.0
RECENCY_YEAR = 2012
DANCE_ENERGY_POINTS = 3.0
INSTRUMENTAL_POINTS = -7.0
LONG_TRACK_POINTS = -4.0
EXPLICIT_POINTS = 3.0
POPULARITY_NOISE_SD = 9.0
ARTIST_TASTE_SD = 1.2
GENRE_TASTE_SD = 0.8
VALENCE_ENERGY_TASTE = 0.6
SPOKEN_TASTE = -1.5
TASTE_NOISE_SD = 0.5
FAVOURITE_SHARE = 0.18
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


def add_artists(
    catalogue: Catalogue, rng: np.random.Generator, genre_popularity: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The artists, each with a hidden fame (most of what makes their tracks popular): their ids, primary
    genres, fame, and how often each releases or is featured (famous artists more)."""
    count = catalogue.size.artists
    artist_ids = [spotify_id(rng) for _ in range(count)]
    artist_genre = rng.integers(0, len(GENRES), size=count)
    fame = rng.normal(0, ARTIST_SD, size=count)
    reach = np.exp(FAME_REACH * fame)
    artist_popularity = np.clip(
        np.round(ARTIST_POPULARITY_BASE + fame + genre_popularity[artist_genre] + rng.normal(0, 3, count)), 0, 100
    ).astype(int)
    for i, aid in enumerate(artist_ids):
        extra = rng.choice(len(GENRES), size=int(rng.integers(0, 3)), replace=False)
        genres = [GENRES[artist_genre[i]]] + [GENRES[g] for g in extra if g != artist_genre[i]]
        catalogue.artists[aid] = {
            "id": aid,
            "name": f"The {title(rng, 2)}" if rng.random() < 0.3 else title(rng, 2),
            "genres": genres,
            "popularity": int(artist_popularity[i]),  # served to extended-quota apps only
            "followers": int(np.exp(7 + 0.12 * fame[i] + rng.normal(0, 0.6))),
        }
    return artist_ids, artist_genre, fame, reach / reach.sum()


def add_albums(
    catalogue: Catalogue, rng: np.random.Generator, artist_ids: list[str], fame: np.ndarray, reach: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The albums, each by one artist (every artist has one, famous artists more), released mostly in recent
    years: their ids, artists, hidden effects and the popularity their release year brings."""
    count, artists = catalogue.size.albums, len(artist_ids)
    album_ids = [spotify_id(rng) for _ in range(count)]
    album_artist = np.concatenate(
        [np.arange(min(artists, count)), rng.choice(artists, size=max(0, count - artists), p=reach)]
    )
    album_effect = rng.normal(0, ALBUM_SD, size=count)
    released = [
        date(max(1960, 2025 - int(rng.exponential(14))), 1, 1) + timedelta(days=int(rng.integers(0, 365)))
        for _ in range(count)
    ]
    recency = RECENCY_POINTS * sigmoid((np.array([day.year for day in released]) - RECENCY_YEAR) / 3.0)
    for i, alid in enumerate(album_ids):
        catalogue.albums[alid] = {
            "id": alid,
            "name": title(rng, int(rng.integers(1, 4))),
            "artist_ids": [artist_ids[album_artist[i]]],
            "release_date": released[i].isoformat(),
            "label": f"{title(rng, 1)} Records",
            "popularity": int(
                np.clip(ARTIST_POPULARITY_BASE + fame[album_artist[i]] + album_effect[i] + rng.normal(0, 4), 0, 100)
            ),
            "track_ids": [],
        }
    return album_ids, album_artist, album_effect, recency


def draw_sound(rng: np.random.Generator, centres: np.ndarray, tempo_centres: np.ndarray) -> np.ndarray:
    """The tracks' MODEL_FEATURES (columns) around their genres' centres."""
    unit = np.clip(centres + rng.normal(0, 0.15, size=centres.shape), 0, 1)
    energy = unit[:, UNIT_FEATURES.index("energy")]
    loudness = np.clip(rng.normal(-8 + 4 * (energy - 0.5), 2), -40, 0)
    tempo = np.clip(rng.normal(tempo_centres, 20), 50, 220)
    return np.column_stack([unit, loudness, tempo])


def of_sound(
    raw: np.ndarray, z: np.ndarray, weights: np.ndarray, pair: tuple[str, str, float], step: tuple[str, float]
) -> np.ndarray:
    """An effect of the sound: linear in the standardised features, one interaction (`pair`: two features and
    its weight) and one threshold (`step`: a [0, 1] feature above one half, and its weight)."""
    at = MODEL_FEATURES.index
    first, second, product = pair
    feature, points = step
    result: np.ndarray = (
        z @ weights + product * z[:, at(first)] * z[:, at(second)] + points * (raw[:, at(feature)] > 0.5)
    )
    return result


def draw_featured(rng: np.random.Generator, track_artist: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Per track, the featured artist (FEATURED_SHARE of tracks, famous artists more often), or -1."""
    featured = np.where(
        rng.random(len(track_artist)) < FEATURED_SHARE, rng.choice(len(reach), size=len(track_artist), p=reach), -1
    )
    featured[featured == track_artist] = -1
    return featured


def album_of_tracks(rng: np.random.Generator, tracks: int, albums: int) -> np.ndarray:
    """Each track's album: one track for every album first (Spotify has no empty album; with fewer tracks than
    albums, as many albums as tracks get one), the rest by album length, Gamma(1.5) weights (singles, EPs and long
    albums), in a random order."""
    length = rng.gamma(1.5, size=albums)
    first = rng.permutation(albums)[: min(tracks, albums)]
    rest = rng.choice(albums, size=tracks - len(first), p=length / length.sum())
    return rng.permutation(np.concatenate([first, rest]).astype(int))


def generate_catalogue(seed: int = 42, size: CatalogueSize | None = None) -> Catalogue:
    size = size or CatalogueSize()
    rng = np.random.default_rng(seed)
    catalogue = Catalogue(seed=seed, size=size)
    n_genres = len(GENRES)

    # Genre centres of the [0, 1] features and tempo; genre effects on popularity and taste.
    centres = rng.uniform(0.1, 0.9, size=(n_genres, len(UNIT_FEATURES)))
    tempo_centres = rng.uniform(80, 160, size=n_genres)
    genre_popularity = rng.normal(0, GENRE_POPULARITY_SD, size=n_genres)
    genre_taste = rng.normal(0, GENRE_TASTE_SD, size=n_genres)

    artist_ids, artist_genre, fame, reach = add_artists(catalogue, rng, genre_popularity)
    artist_taste = rng.normal(0, ARTIST_TASTE_SD, size=size.artists)

    album_ids, album_artist, album_effect, recency = add_albums(catalogue, rng, artist_ids, fame, reach)

    # Tracks: an album each (albums differ in length, none is empty), 15 % with a featured artist, audio features
    # around the genre's centre.
    track_ids = [spotify_id(rng) for _ in range(size.tracks)]
    track_album = album_of_tracks(rng, size.tracks, size.albums)
    track_artist = album_artist[track_album]
    track_genre = artist_genre[track_artist]
    featured = draw_featured(rng, track_artist, reach)
    raw = draw_sound(rng, centres[track_genre], tempo_centres[track_genre])
    z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    duration_ms = np.clip(rng.normal(210_000, 50_000, size=size.tracks), 60_000, 600_000).astype(int)
    explicit = rng.random(size.tracks) < 0.15

    # Popularity: who made it first, then genre, era, and the sound (with an interaction and thresholds).
    beta = rng.normal(0, 2.0, size=len(MODEL_FEATURES))
    sound = (
        of_sound(
            raw, z, beta, ("danceability", "energy", DANCE_ENERGY_POINTS), ("instrumentalness", INSTRUMENTAL_POINTS)
        )
        + LONG_TRACK_POINTS * (duration_ms > 300_000)
        + EXPLICIT_POINTS * explicit
    )
    featured_effect = np.where(featured >= 0, FEATURED_WEIGHT * fame[featured], 0.0)
    known = POPULARITY_INTERCEPT + genre_popularity[track_genre] + recency[track_album] + sound + featured_effect
    hidden = fame[track_artist] + album_effect[track_album]
    popularity_signal = known + hidden
    popularity = np.clip(np.round(popularity_signal + rng.normal(0, POPULARITY_NOISE_SD, size.tracks)), 0, 100)
    expected = np.clip(popularity_signal, 0, 100)
    observable = observable_popularity(popularity, known, track_artist, track_album)

    # Favourites: the hidden taste: artists first, then genre and sound (an interaction and a threshold).
    taste = rng.normal(0, 0.7, size=len(MODEL_FEATURES))
    taste_known = (
        of_sound(raw, z, taste, ("valence", "energy", VALENCE_ENERGY_TASTE), ("speechiness", SPOKEN_TASTE))
        + genre_taste[track_genre]
    )
    taste_signal = taste_known + artist_taste[track_artist]
    bias = expected_share_bias(taste_signal, TASTE_NOISE_SD, FAVOURITE_SHARE)
    logit = bias + taste_signal + rng.normal(0, TASTE_NOISE_SD, size=size.tracks)
    favourite = rng.random(size.tracks) < sigmoid(logit)
    liking = sigmoid(bias + taste_signal)
    observable_liking = observable_favourite(favourite, bias + taste_known, track_artist)

    for i, tid in enumerate(track_ids):
        album = catalogue.albums[album_ids[track_album[i]]]
        album["track_ids"].append(tid)
        credits = [artist_ids[track_artist[i]]] + ([artist_ids[featured[i]]] if featured[i] >= 0 else [])
        catalogue.tracks[tid] = {
            "id": tid,
            "name": title(rng, int(rng.integers(1, 4))),
            "album_id": album["id"],
            "artist_ids": credits,
            "duration_ms": int(duration_ms[i]),
            "explicit": bool(explicit[i]),
            "popularity": int(popularity[i]),
            "isrc": f"SB{seed % 100:02d}{i:08d}",
            "track_number": len(album["track_ids"]),
            "reccobeats": bool(rng.random() < 0.9),  # ReccoBeats knows ~90 % of the tracks
            # Hidden (never served): the hidden taste's chance that the listener likes it, and the expected
            # popularity, knowing every latent variable and knowing only what the data shows.
            "liking": round(float(liking[i]), 4),
            "expected_popularity": round(float(expected[i]), 3),
            "observable_popularity": round(float(observable[i]), 3),
            "observable_liking": round(float(observable_liking[i]), 4),
        }
        features = {name: round(float(raw[i, j]), 4) for j, name in enumerate(UNIT_FEATURES)}
        features.update(
            loudness=round(float(raw[i, -2]), 3),
            tempo=round(float(raw[i, -1]), 3),
            key=int(rng.integers(0, 12)),
            mode=int(rng.random() < 0.6),
            time_signature=4 if rng.random() < 0.9 else 3,
        )
        catalogue.audio_features[tid] = features
        if favourite[i]:
            catalogue.favourites.add(tid)

    add_playlists(catalogue, rng, track_ids)
    labels = favourite.astype(int)
    catalogue.model = {
        "seed": seed,
        "size": asdict(size),
        "genres": list(GENRES),
        "features": list(MODEL_FEATURES),
        "feature_means": dict(zip(MODEL_FEATURES, raw.mean(axis=0).round(4).tolist(), strict=True)),
        "feature_sds": dict(zip(MODEL_FEATURES, raw.std(axis=0).round(4).tolist(), strict=True)),
        "popularity": {
            "intercept": POPULARITY_INTERCEPT,
            "artist_fame_sd": ARTIST_SD,
            "album_sd": ALBUM_SD,
            "featured_artist_weight": FEATURED_WEIGHT,
            "genre_effect": dict(zip(GENRES, genre_popularity.round(3).tolist(), strict=True)),
            "recency": {"points": RECENCY_POINTS, "midpoint_year": RECENCY_YEAR},
            "feature_weights": dict(zip(MODEL_FEATURES, beta.round(3).tolist(), strict=True)),
            "danceability_x_energy": DANCE_ENERGY_POINTS,
            "instrumentalness_over_half": INSTRUMENTAL_POINTS,
            "longer_than_5_min": LONG_TRACK_POINTS,
            "explicit": EXPLICIT_POINTS,
            "noise_sd": POPULARITY_NOISE_SD,
        },
        "favourite": {
            "bias": round(bias, 4),
            "artist_taste_sd": ARTIST_TASTE_SD,
            "genre_taste": dict(zip(GENRES, genre_taste.round(3).tolist(), strict=True)),
            "feature_weights": dict(zip(MODEL_FEATURES, taste.round(3).tolist(), strict=True)),
            "valence_x_energy": VALENCE_ENERGY_TASTE,
            "speechiness_over_half": SPOKEN_TASTE,
            "noise_sd": TASTE_NOISE_SD,
            "target_share": FAVOURITE_SHARE,
            "share": round(float(favourite.mean()), 4),
        },
        # Knowing every latent variable (each artist's fame and the listener's taste for them, each album's
        # effect): the noise is all that is left.
        "best_popularity_r2": round(r2(popularity, expected), 4),
        "best_popularity_rmse": round(float(math.sqrt(((popularity - expected) ** 2).mean())), 3),
        "best_favourite_auc": round(roc_auc(liking, labels), 4),
        # Knowing only what the data shows: the model's form and each track's own fields, with each artist's
        # and album's effect estimated from their other tracks (leave-one-out, exact Bayes). A featured
        # artist's effect counts as known (so this is a little optimistic); an extended-quota app's artist
        # popularity tells more about fame than the other tracks do when an artist has few.
        "observable_popularity_r2": round(r2(popularity, observable), 4),
        "observable_favourite_auc": round(roc_auc(observable_liking, labels), 4),
    }
    return catalogue


def r2(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - ((actual - predicted) ** 2).sum() / ((actual - actual.mean()) ** 2).sum())


def observable_popularity(
    popularity: np.ndarray, known: np.ndarray, artist: np.ndarray, album: np.ndarray
) -> np.ndarray:
    """Each track's popularity as predicted from its own fields and the popularity of the artist's other
    tracks: the posterior mean of its artist's and album's effects given the others (a Gaussian model with
    the catalogue's own variances), added to the known part and clipped."""
    residual = popularity - known
    centre = residual.mean()
    estimate = np.zeros_like(residual)
    order = np.argsort(artist, kind="stable")
    bounds = np.flatnonzero(np.diff(artist[order])) + 1
    for tracks in np.split(order, bounds):
        same_album = (album[tracks][:, None] == album[tracks][None, :]).astype(float)
        covariance = ARTIST_SD**2 + ALBUM_SD**2 * same_album + POPULARITY_NOISE_SD**2 * np.eye(len(tracks))
        precision = np.linalg.inv(covariance)
        values = residual[tracks] - centre
        # E[y_i | y_-i] for a zero-mean Gaussian vector: y_i - (P y)_i / P_ii.
        estimate[tracks] = values - (precision @ values) / np.diag(precision)
    result: np.ndarray = np.clip(known + centre + estimate, 0, 100)
    return result


def observable_favourite(favourite: np.ndarray, known_logit: np.ndarray, artist: np.ndarray) -> np.ndarray:
    """Each track's chance of being a favourite from its own fields and whether the artist's other tracks
    are: the listener's taste for the artist integrated over its posterior given the others (on a grid)."""
    grid = np.linspace(-4 * ARTIST_TASTE_SD, 4 * ARTIST_TASTE_SD, 81)
    log_prior = -0.5 * (grid / ARTIST_TASTE_SD) ** 2
    # The logit's own noise, integrated out (the probit approximation of a logistic-normal mean).
    spread = math.sqrt(1 + math.pi * TASTE_NOISE_SD**2 / 8)
    chance = np.clip(sigmoid((known_logit[:, None] + grid[None, :]) / spread), 1e-9, 1 - 1e-9)
    labels = favourite[:, None]
    log_likelihood = np.where(labels, np.log(chance), np.log1p(-chance))
    per_artist = np.zeros((int(artist.max()) + 1, len(grid)))
    np.add.at(per_artist, artist, log_likelihood)
    log_posterior = log_prior[None, :] + per_artist[artist] - log_likelihood  # leave the track itself out
    weights = np.exp(log_posterior - log_posterior.max(axis=1, keepdims=True))
    result: np.ndarray = (weights * chance).sum(axis=1) / weights.sum(axis=1)
    return result


def add_playlists(catalogue: Catalogue, rng: np.random.Generator, track_ids: list[str]) -> None:
    """Favourites owned by the sandbox user, other own playlists, and other users' ones."""
    size = catalogue.size
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
    """Per track: (expected popularity, favourite probability) knowing every latent variable: the best any
    model could predict, to compare a trained model with on the same tracks."""
    return {tid: (t["expected_popularity"], t["liking"]) for tid, t in catalogue.tracks.items()}


def observable_scores(catalogue: Catalogue) -> dict[str, tuple[float, float]]:
    """Per track: (popularity, favourite probability) predicted from what the data shows (the model's form,
    the track's own fields, and its artist's and album's other tracks): the ceiling a model can hope for."""
    return {tid: (t["observable_popularity"], t["observable_liking"]) for tid, t in catalogue.tracks.items()}


def ceilings_text(model: dict[str, Any]) -> str:
    """The catalogue's two ceilings in words, for the sandbox's and the demo's first lines."""
    return (
        f"best reachable: popularity R² {model['observable_popularity_r2']} from what the data shows "
        f"({model['best_popularity_r2']} knowing every hidden variable), favourite AUC "
        f"{model['observable_favourite_auc']} ({model['best_favourite_auc']})"
    )
