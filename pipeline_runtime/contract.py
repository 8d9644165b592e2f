"""The vocabulary the services share without importing each other: audio-feature names, table names and
the gold table's columns. The event contract itself is documented in docs/events.md."""

import re

# Spotify's 12 audio features, in the notebook's order (REFERENCE §7).
AUDIO_FEATURES = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
)
# The integer-coded ones (pitch class, major/minor, beats per bar) ...
CODED_AUDIO_FEATURES = ("key", "mode", "time_signature")
# ... and the measurements (doubles), in the order of the silver and gold columns: the 0-1 scores first,
# then loudness (dB) and tempo (BPM).
MEASURED_AUDIO_FEATURES = (
    "danceability",
    "energy",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "loudness",
    "tempo",
)

# The Delta tables of the streaming job (bronze -> quarantine, silver -> gold) and of the trainer.
BRONZE = "bronze"
QUARANTINE = "quarantine"
SILVER_ENTITY_TABLES = {
    "track": "silver_tracks",
    "artist": "silver_artists",
    "audio_features": "silver_audio_features",
}
SILVER_MEMBERS = "silver_playlist_members"
SILVER_HISTORY = "silver_playlist_history"
# The listening history: every play once (insert only), and each day's top lists (a rank per time range).
SILVER_PLAYS = "silver_plays"
SILVER_TOP_TRACKS = "silver_top_tracks"
SILVER_TABLES = (*SILVER_ENTITY_TABLES.values(), SILVER_MEMBERS, SILVER_HISTORY, SILVER_PLAYS, SILVER_TOP_TRACKS)
GOLD = "track_features"
RECOMMENDATIONS = "recommendations"
# Every recommendation list the producer put into the user's playlist (appended by the producer, with delta-rs), and
# how often each landed: its tracks the user played, saved or added to a favourite playlist within a window
# (rewritten by the trainer every cycle).
PUBLICATIONS = "publications"
ACCEPTANCE = "acceptance"
STREAMING_TABLES = (BRONZE, QUARANTINE, *SILVER_TABLES, GOLD)
TABLES = (*STREAMING_TABLES, RECOMMENDATIONS, PUBLICATIONS, ACCEPTANCE)

# The pseudo-playlist of the user's saved tracks ("Liked Songs") in playlist_membership events.
SAVED_TRACKS = "me:saved-tracks"

# The user's top lists (Spotify's time ranges): about 4 weeks, 6 months, about a year.
TIME_RANGES = ("short_term", "medium_term", "long_term")

# The gold columns from the listening history: how often and when last the user played the track, and its best rank
# in any of their top lists (null: never listed) with the last day it was listed. Never model features: the
# favourite label can come from them (TRAINING_FAVOURITE_LABEL).
LISTENING_COLUMNS = ("play_count BIGINT", "last_played_at TIMESTAMP", "top_rank INT", "top_listed_on DATE")


def ddl_columns(ddl: str) -> list[str]:
    """The columns of a DDL column list ("a INT, b ARRAY<STRING>, c MAP<STRING, INT>" -> three), each as
    "name TYPE"."""
    return [column.strip() for column in re.split(r",\s*(?![^<]*>)", ddl) if column.strip()]


# The gold table's columns (DDL), as the streaming job writes them and the trainer reads them.
GOLD_SCHEMA = ", ".join(
    [
        "track_id STRING, name STRING, primary_artist_id STRING, artist_names ARRAY<STRING>, album_name STRING",
        "release_date STRING, release_year INT, duration_ms BIGINT, explicit BOOLEAN, popularity INT",
        "artist_name STRING, artist_popularity INT, artist_followers BIGINT, features_provider STRING",
        *(f"{name} DOUBLE" for name in MEASURED_AUDIO_FEATURES),
        *(f"{name} INT" for name in CODED_AUDIO_FEATURES),
        "is_favourite BOOLEAN, playlist_count BIGINT, genres ARRAY<STRING>",
        *LISTENING_COLUMNS,
        "updated_at TIMESTAMP",
    ]
)
