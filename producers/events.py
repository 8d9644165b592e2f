"""The event contract (docs/events.md): a versioned JSON envelope around one entity's payload.

Pure functions only. The same content always gives the same `event_id`, so a re-sent event (after a
crash between Kafka's confirmation and the poll state's commit) is recognisably the same event.
"""

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

SCHEMA_VERSION = 1
EventType = Literal["track", "artist", "audio_features", "playlist_membership"]
EVENT_TYPES: tuple[EventType, ...] = ("track", "artist", "audio_features", "playlist_membership")
_NAMESPACE = uuid.UUID("6f1c2b52-8d0e-4a7e-9a51-3c2f4e1d9b70")

AUDIO_FEATURES = (
    "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
    "instrumentalness", "liveness", "valence", "tempo", "time_signature",
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One envelope, ready to publish: `key` is the Kafka key (the entity id)."""

    event_type: EventType
    key: str
    content_hash: str
    envelope: dict[str, Any]

    def to_bytes(self) -> bytes:
        return json.dumps(self.envelope, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(payload: Mapping[str, Any]) -> str:
    """A stable hash of the payload, independent of key order: 'did this entity change?'."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:32]


def event_id(event_type: EventType, key: str, payload_hash: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{event_type}|{key}|{payload_hash}"))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    event_type: EventType, key: str, payload: Mapping[str, Any], source: str, observed_at: str | None = None
) -> Event:
    payload_hash = content_hash(payload)
    envelope = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(event_type, key, payload_hash),
        "event_type": event_type,
        "source": source,
        "observed_at": observed_at or utc_now(),
        "payload": dict(payload),
    }
    return Event(event_type, key, payload_hash, envelope)


# --- payloads from Spotify Web API objects (either API generation) ---


def track_payload(track: Mapping[str, Any], genres: list[str] | None = None) -> dict[str, Any]:
    """A track object (full or from a playlist item) as the `track` payload; fields the 2026 API
    removed (popularity) are None when absent."""
    album = track.get("album") or {}
    artists = track.get("artists") or []
    return {
        "track_id": track["id"],
        "name": track.get("name"),
        "artist_ids": [a.get("id") for a in artists],
        "artist_names": [a.get("name") for a in artists],
        "album_id": album.get("id"),
        "album_name": album.get("name"),
        "release_date": album.get("release_date"),
        "duration_ms": track.get("duration_ms"),
        "explicit": track.get("explicit"),
        "popularity": track.get("popularity"),
        "isrc": (track.get("external_ids") or {}).get("isrc"),
        "genres": genres,
    }


def artist_payload(artist: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "artist_id": artist["id"],
        "name": artist.get("name"),
        "genres": list(artist.get("genres") or []),
        "popularity": artist.get("popularity"),
        "followers": (artist.get("followers") or {}).get("total"),
    }


def audio_features_payload(track_id: str, features: Mapping[str, Any], provider: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"track_id": track_id, "provider": provider}
    for name in AUDIO_FEATURES:
        value = features.get(name)
        payload[name] = (
            None if value is None else (int(value) if name in ("key", "mode", "time_signature") else float(value))
        )
    return payload


def membership_payload(
    playlist_id: str,
    playlist_name: str | None,
    track_id: str,
    action: Literal["added", "removed"],
    snapshot_id: str | None,
    is_favourite: bool,
) -> dict[str, Any]:
    return {
        "playlist_id": playlist_id,
        "playlist_name": playlist_name,
        "track_id": track_id,
        "action": action,
        "snapshot_id": snapshot_id,
        "is_favourite_playlist": is_favourite,
    }


def diff_members(old: set[str], new: set[str]) -> tuple[list[str], list[str]]:
    """(added, removed) track ids between two versions of a playlist, sorted for stable output."""
    return sorted(new - old), sorted(old - new)
