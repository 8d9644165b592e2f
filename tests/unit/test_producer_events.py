"""The event contract and the producer's pure helpers."""

import pytest

from pipeline_runtime.errors import SetupError
from producers.events import (
    AUDIO_FEATURES,
    audio_features_payload,
    content_hash,
    diff_members,
    make_event,
    track_payload,
)
from producers.settings import ProducerSettings
from producers.spotify import parse_id

PLAYLIST = "37i9dQZF1DXcBWIGoYBM5M"


@pytest.mark.parametrize(
    "reference",
    [
        PLAYLIST,
        f"spotify:playlist:{PLAYLIST}",
        f"https://open.spotify.com/playlist/{PLAYLIST}?si=abc123",
        f"https://open.spotify.com/intl-de/playlist/{PLAYLIST}",
        f"  {PLAYLIST}  ",
    ],
)
def test_playlist_references(reference: str) -> None:
    assert parse_id("playlist", reference) == PLAYLIST


@pytest.mark.parametrize("reference", ["", "not-an-id", "spotify:track:abc", "https://example.com/x"])
def test_bad_references_say_what_is_expected(reference: str) -> None:
    with pytest.raises(SetupError, match="is not a Spotify playlist id, URI or URL"):
        parse_id("playlist", reference)


def test_content_hash_ignores_key_order_and_sees_changes() -> None:
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_event_ids_are_deterministic() -> None:
    first = make_event("artist", "a1", {"artist_id": "a1", "genres": ["pop"]}, "spotify-api/development")
    again = make_event("artist", "a1", {"genres": ["pop"], "artist_id": "a1"}, "spotify-api/development")
    changed = make_event("artist", "a1", {"artist_id": "a1", "genres": ["rock"]}, "spotify-api/development")
    assert first.envelope["event_id"] == again.envelope["event_id"] != changed.envelope["event_id"]
    assert set(first.envelope) == {"schema_version", "event_id", "event_type", "source", "observed_at", "payload"}
    assert first.envelope["schema_version"] == 1 and first.key == "a1"
    assert first.envelope["observed_at"].endswith("Z")


def test_track_payload_of_a_2026_track_has_nulls_for_removed_fields() -> None:
    track = {
        "id": "t" * 22,
        "name": "Song",
        "artists": [{"id": "a" * 22, "name": "Artist"}],
        "album": {"id": "b" * 22, "name": "Album", "release_date": "2024-05-01"},
        "duration_ms": 200_000,
        "explicit": False,
        "external_ids": {"isrc": "GBX"},
    }
    payload = track_payload(track)
    assert payload["popularity"] is None
    assert payload["artist_ids"] == ["a" * 22] and payload["release_date"] == "2024-05-01"
    assert payload["isrc"] == "GBX"


def test_audio_features_payload_types() -> None:
    payload = audio_features_payload("t1", {"danceability": "0.5", "key": 5.0, "mode": 1, "tempo": 120}, "reccobeats")
    assert payload["danceability"] == 0.5 and payload["key"] == 5 and isinstance(payload["key"], int)
    assert payload["time_signature"] is None and payload["provider"] == "reccobeats"
    assert set(AUDIO_FEATURES) <= set(payload)


def test_diff_members() -> None:
    assert diff_members({"a", "b", "c"}, {"b", "c", "d", "e"}) == (["d", "e"], ["a"])
    assert diff_members(set(), set()) == ([], [])


def test_list_settings_take_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_PLAYLISTS", f"{PLAYLIST}, spotify:playlist:{PLAYLIST}")
    monkeypatch.setenv("PRODUCER_SEARCH_QUERIES", '["tag:new", "genre:jazz year:2024"]')
    settings = ProducerSettings(_env_file=None)
    assert settings.playlists == [PLAYLIST, f"spotify:playlist:{PLAYLIST}"]
    assert settings.search_queries == ["tag:new", "genre:jazz year:2024"]
    monkeypatch.setenv("PRODUCER_AUDIO_FEATURE_PROVIDERS", "reccobeats,lastfm")
    with pytest.raises(ValueError, match="unknown audio-feature providers"):
        ProducerSettings(_env_file=None)
