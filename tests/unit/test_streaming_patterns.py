"""The fast path of parsing: the `schema_of_variant` text a well-formed event has (pure; Python's `re` reads these
patterns as Java's does)."""

import re

import pytest

from streaming.transforms import event_pattern, object_pattern

PATTERN = object_pattern([("b", "BIGINT", True), ("a", "STRING", False), ("c", "BOOLEAN", False)])


@pytest.mark.parametrize(
    ("schema", "matches"),
    [
        ("OBJECT<b: BIGINT>", True),
        ("OBJECT<a: STRING, b: BIGINT>", True),
        ("OBJECT<a: VOID, b: BIGINT, c: BOOLEAN>", True),  # an optional field may be null
        ("OBJECT<b: BIGINT, c: VOID>", True),
        ("OBJECT<a: STRING>", False),  # the required field is missing
        ("OBJECT<b: VOID>", False),  # ... or null
        ("OBJECT<b: STRING>", False),  # ... or of another type
        ("OBJECT<b: BIGINT, d: STRING>", False),  # a field the contract does not have
        ("OBJECT<c: BOOLEAN, b: BIGINT>", False),  # not in Spark's order (by name)
        ("OBJECT<a: STRING, , b: BIGINT>", False),
    ],
)
def test_an_object_pattern_takes_exactly_the_fields_it_names(schema: str, matches: bool) -> None:
    assert bool(re.fullmatch(PATTERN, schema)) is matches


def test_a_pattern_needs_a_required_field() -> None:
    with pytest.raises(ValueError, match="required"):
        object_pattern([("a", "STRING", False)])


def test_every_event_type_has_a_pattern_of_its_envelope_and_payload() -> None:
    track = (
        "OBJECT<event_id: STRING, event_type: STRING, observed_at: STRING, payload: OBJECT<artist_ids: ARRAY<STRING>, "
        "duration_ms: BIGINT, genres: ARRAY<VOID>, popularity: BIGINT, track_id: STRING>, schema_version: BIGINT, "
        "source: STRING>"
    )
    assert re.search(event_pattern("track"), track)
    assert not re.search(event_pattern("artist"), track)
    # A double may be infinite and an integral number may be written 1.0: both go through the checks one by one.
    features = "OBJECT<energy: {}, provider: STRING, track_id: STRING>"
    envelope = "OBJECT<event_id: STRING, event_type: STRING, observed_at: STRING, payload: {}, schema_version: BIGINT>"
    assert re.search(event_pattern("audio_features"), envelope.format(features.format("DECIMAL(4,4)")))
    assert not re.search(event_pattern("audio_features"), envelope.format(features.format("DOUBLE")))
