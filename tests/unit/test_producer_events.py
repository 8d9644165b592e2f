"""The event contract and the producer's pure helpers."""

import json
import re
import uuid
from datetime import UTC, datetime

import pytest

from pipeline_runtime.contract import AUDIO_FEATURES
from pipeline_runtime.errors import SetupError
from producers.events import (
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


def test_event_ids_are_the_uuid5_of_type_key_and_hash() -> None:
    """The fast event_id must give the ids that uuid.uuid5 gave (re-sent events keep their ids across versions)."""
    namespace = uuid.UUID("6f1c2b52-8d0e-4a7e-9a51-3c2f4e1d9b70")
    for key in ("a1", "Ünïcode-κλειδί", "x" * 300):
        event = make_event("track", key, {"track_id": key, "n": 1.5}, "test")
        expected = uuid.uuid5(namespace, f"track|{key}|{event.content_hash}")
        assert event.envelope["event_id"] == str(expected)
        assert uuid.UUID(event.envelope["event_id"]).version == 5


def test_event_bytes_are_the_envelope_as_json() -> None:
    payload = {"name": 'quote " and ü', "nested": {"b": [1, None, True], "a": 0.1}, "big": 10**20}
    event = make_event("track", "k", payload, 'src "x"', "2026-01-02T03:04:05.678Z")
    data = event.to_bytes()
    assert json.loads(data) == event.envelope
    assert b"\xc3\xbc" in data, "UTF-8 as it is, not escaped"
    assert data.endswith(b',"payload":' + event.payload_json.encode() + b"}"), "the hashed JSON is what is published"


def test_observed_at_is_utc_with_milliseconds() -> None:
    before = datetime.now(UTC)
    stamp = make_event("track", "k", {}, "test").envelope["observed_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((moment - before).total_seconds()) < 5


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
