"""A CSV or Parquet track catalogue (the "Spotify Tracks Dataset" layout, REFERENCE §6) as events.

Used two ways: `python -m producers backfill --file PATH` publishes it as track and audio-feature
events, and the `catalogue` audio-features provider looks tracks up in it.
"""

import math
from pathlib import Path
from typing import Any

from pipeline_runtime.contract import AUDIO_FEATURES
from pipeline_runtime.errors import SetupError
from producers.events import Event, audio_features_payload, make_event

REQUIRED = ("track_id", "track_name", "artists")


def read_catalogue(path: Path) -> Any:
    """The file as a pandas DataFrame; SetupError naming what is wrong with it."""
    import pandas as pd  # noqa: PLC0415 - heavy import, only for catalogue work

    if not path.is_file():
        raise SetupError(f"Catalogue file {path} not found: give the path of a CSV or Parquet file.")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is one line for the user
        raise SetupError(
            f"Could not read {path} as {'Parquet' if path.suffix == '.parquet' else 'CSV'}: {exc}"
        ) from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SetupError(
            f"{path} lacks the column(s) {', '.join(missing)} (expected the Spotify Tracks Dataset layout)."
        )
    return frame


def _value(row: dict[str, Any], name: str) -> Any:
    value = row.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def catalogue_rows(frame: Any) -> dict[str, dict[str, Any]]:
    """One entry per track id (ids repeat across genres): the first row's fields plus all its genres."""
    tracks: dict[str, dict[str, Any]] = {}
    for row in frame.to_dict("records"):
        track_id = str(row["track_id"])
        entry = tracks.setdefault(track_id, {**row, "genres": []})
        genre = _value(row, "track_genre")
        if genre and genre not in entry["genres"]:
            entry["genres"].append(genre)
    return tracks


def catalogue_events(tracks: dict[str, dict[str, Any]], source: str) -> list[Event]:
    events = []
    for track_id, row in tracks.items():
        artist_names = [a for a in str(_value(row, "artists") or "").split(";") if a]
        explicit = _value(row, "explicit")
        payload = {
            "track_id": track_id,
            "name": _value(row, "track_name"),
            "artist_ids": [],
            "artist_names": artist_names,
            "album_id": None,
            "album_name": _value(row, "album_name"),
            "release_date": None,
            "duration_ms": _value(row, "duration_ms"),
            "explicit": None if explicit is None else str(explicit).lower() in ("true", "1"),
            "popularity": _value(row, "popularity"),
            "isrc": None,
            "genres": row["genres"] or None,
        }
        events.append(make_event("track", track_id, payload, source))
        if any(_value(row, f) is not None for f in AUDIO_FEATURES):
            features = {f: _value(row, f) for f in AUDIO_FEATURES}
            events.append(
                make_event("audio_features", track_id, audio_features_payload(track_id, features, "catalogue"), source)
            )
    return events


class CatalogueFeatures:
    """The `catalogue` audio-features provider: lookups in a catalogue file, read once."""

    def __init__(self, path: Path) -> None:
        self.tracks = catalogue_rows(read_catalogue(path))

    def lookup(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        found = {}
        for track_id in ids:
            row = self.tracks.get(track_id)
            if row is not None and _value(row, "danceability") is not None:
                found[track_id] = {f: _value(row, f) for f in AUDIO_FEATURES}
        return found
