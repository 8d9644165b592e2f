"""The event contract (docs/events.md): a versioned JSON envelope around one entity's payload.

Pure functions only. The same content always gives the same `event_id`, so a re-sent event (after a
crash between Kafka's confirmation and the poll state's commit) is recognisably the same event.
"""

import functools
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, Literal

from pipeline_runtime.contract import AUDIO_FEATURES

SCHEMA_VERSION = 1
EventType = Literal["track", "artist", "audio_features", "playlist_membership", "play", "top_track"]
EVENT_TYPES: tuple[EventType, ...] = ("track", "artist", "audio_features", "playlist_membership", "play", "top_track")
# Events that record something that happened (a track added, a play, a day's top list), not an entity's current
# state: each is published once when seen, never compared with what was published before.
HAPPENINGS: tuple[EventType, ...] = ("playlist_membership", "play", "top_track")
_NAMESPACE = uuid.UUID("6f1c2b52-8d0e-4a7e-9a51-3c2f4e1d9b70").bytes
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Event:
    """One envelope, ready to publish: `key` is the Kafka key (the entity id)."""

    event_type: EventType
    key: str
    content_hash: str
    envelope: dict[str, Any]
    payload_json: str  # the payload's canonical JSON, hashed and published as it is

    def to_bytes(self) -> bytes:
        """The envelope as compact JSON. The payload is spliced in from the JSON already made for its hash
        and the header written directly: serializing both again was a third of the producer's time."""
        envelope = self.envelope
        return (
            f'{{"schema_version":{envelope["schema_version"]:d},"event_id":"{envelope["event_id"]}",'
            f'"event_type":"{envelope["event_type"]}","source":{encode_basestring(envelope["source"])},'
            f'"observed_at":{encode_basestring(envelope["observed_at"])},"payload":{self.payload_json}}}'
        ).encode()


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the same content always gives the same text."""
    return str(_CANONICAL.encode(value))


def content_hash(payload: Mapping[str, Any]) -> str:
    """A stable hash of the payload, independent of key order: 'did this entity change?'."""
    return hash_json(canonical_json(payload))


def hash_json(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def event_id(event_type: EventType, key: str, payload_hash: str) -> str:
    """uuid5(namespace, "type|key|hash"), computed without the UUID object (the same text, half the time)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE + f"{event_type}|{key}|{payload_hash}".encode()).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc_now() -> str:
    """Now in UTC as ISO 8601 with milliseconds and a Z; formatted once per millisecond."""
    return _iso_millis(time.time_ns() // 1_000_000)


@functools.lru_cache(maxsize=1)
def _iso_millis(millis: int) -> str:
    moment = datetime.fromtimestamp(millis // 1000, UTC).replace(microsecond=millis % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    event_type: EventType, key: str, payload: Mapping[str, Any], source: str, observed_at: str | None = None
) -> Event:
    payload_json = canonical_json(payload)
    payload_hash = hash_json(payload_json)
    envelope = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(event_type, key, payload_hash),
        "event_type": event_type,
        "source": source,
        "observed_at": observed_at or utc_now(),
        "payload": dict(payload),
    }
    return Event(event_type, key, payload_hash, envelope, payload_json)


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


def play_payload(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item of `GET /me/player/recently-played` (a track played to the end, or for 30 s or more) as the
    `play` payload: when it was played and where from (a playlist, an album, an artist; none outside one)."""
    context = item.get("context") or {}
    return {
        "track_id": item["track"]["id"],
        "played_at": item["played_at"],
        "context_type": context.get("type"),
        "context_uri": context.get("uri"),
    }


def top_track_payload(track_id: str, time_range: str, rank: int, day: str) -> dict[str, Any]:
    """A track's place (1 = most listened) in the user's top tracks of a time range, as listed on `day`."""
    return {"track_id": track_id, "time_range": time_range, "rank": rank, "day": day}


def diff_members(old: set[str], new: set[str]) -> tuple[list[str], list[str]]:
    """(added, removed) track ids between two versions of a playlist, sorted for stable output."""
    return sorted(new - old), sorted(old - new)
