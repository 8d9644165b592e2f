"""docs/events.md shows one valid example of each event, with exactly the fields the producer writes."""

import json
import re

from producers.events import (
    EVENT_TYPES,
    artist_payload,
    audio_features_payload,
    membership_payload,
    play_payload,
    top_track_payload,
    track_payload,
)
from tests.support.processes import ROOT

ENVELOPE = {"schema_version", "event_id", "event_type", "source", "observed_at", "payload"}
PAYLOAD_FIELDS = {
    "track": set(track_payload({"id": "x"})),
    "artist": set(artist_payload({"id": "x"})),
    "audio_features": set(audio_features_payload("x", {}, "spotify")),
    "playlist_membership": set(membership_payload("p", None, "t", "added", None, False)),
    "play": set(play_payload({"track": {"id": "t"}, "played_at": "2026-01-01T00:00:00Z"})),
    "top_track": set(top_track_payload("t", "short_term", 1, "2026-01-01")),
}


def test_every_event_type_has_a_matching_example() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]
    assert {e["event_type"] for e in examples} == set(EVENT_TYPES)
    for example in examples:
        assert set(example) == ENVELOPE
        assert example["schema_version"] == 1
        assert set(example["payload"]) == PAYLOAD_FIELDS[example["event_type"]], example["event_type"]
        for field in PAYLOAD_FIELDS[example["event_type"]]:
            assert f"`{field}`" in text, f"{field} is not described"
