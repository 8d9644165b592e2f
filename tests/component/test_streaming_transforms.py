"""The streaming job's pure transforms on batch DataFrames (real Spark): parsing, quarantine reasons,
latest-wins, the gold row."""

import json
from datetime import UTC, datetime

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812

from producers.events import (
    artist_payload,
    audio_features_payload,
    make_event,
    membership_payload,
    play_payload,
    top_track_payload,
    track_payload,
)
from streaming.transforms import (
    entity_rows,
    event_pattern,
    latest_per_key,
    member_rows,
    parse_events,
    track_features,
    well_formed,
)

TOPICS = {
    "t.tracks": "track",
    "t.artists": "artist",
    "t.features": "audio_features",
    "t.members": "playlist_membership",
    "t.plays": "play",
    "t.top": "top_track",
}
TRACK = {
    "id": "T" * 22,
    "name": "Song",
    "artists": [{"id": "A" * 22, "name": "Artist"}],
    "album": {"id": "B" * 22, "name": "Album", "release_date": "2019-05-01"},
    "duration_ms": 1000,
    "explicit": False,
    "popularity": 40,
}


def good_event(observed_at: str = "2026-01-01T00:00:00.000Z", **track: object) -> bytes:
    return make_event("track", "T" * 22, track_payload({**TRACK, **track}), "test", observed_at).to_bytes()


def envelope(**changes: object) -> bytes:
    event = json.loads(good_event())
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return json.dumps(event).encode()


def payload_with(**changes: object) -> bytes:
    event = json.loads(good_event())
    event["payload"].update(changes)
    return json.dumps(event).encode()


def features_with(**changes: object) -> bytes:
    payload = audio_features_payload("T" * 22, {"energy": 0.5, "key": 5, "mode": 1}, "spotify")
    return make_event("audio_features", "T" * 22, {**payload, **changes}, "test").to_bytes()


def artist_event(**artist: object) -> bytes:
    values = {"id": "A" * 22, "name": "Artist", "genres": ["pop"], "popularity": 50, "followers": {"total": 10}}
    return make_event("artist", "A" * 22, artist_payload({**values, **artist}), "test").to_bytes()


def play_event(played_at: str = "2026-01-01T12:00:00.000Z", **changes: object) -> bytes:
    payload = {**play_payload({"track": {"id": "T" * 22}, "played_at": played_at}), **changes}
    return make_event("play", "T" * 22, payload, "test").to_bytes()


def top_event(time_range: str = "short_term", rank: int = 1, day: str = "2026-01-02", **changes: object) -> bytes:
    payload = {**top_track_payload("T" * 22, time_range, rank, day), **changes}
    return make_event("top_track", "T" * 22, payload, "test").to_bytes()


def membership_event(action: str = "added") -> bytes:
    payload = membership_payload("P" * 22, "Favourites", "T" * 22, action, "snap", True)  # type: ignore[arg-type]
    return make_event("playlist_membership", "P" * 22, payload, "test").to_bytes()


def forged_track() -> bytes:
    """A track without `track_id`, with a key `release_date: STRING, track_id` (unquoted, the text of its JSON types
    would read as a good track's)."""
    event = json.loads(good_event())
    del event["payload"]["track_id"], event["payload"]["release_date"]
    event["payload"]["release_date: STRING, track_id"] = "T" * 22
    return json.dumps(event).encode()


POISON = [
    (b"not json at all", "t.tracks", "not JSON"),
    (good_event()[:40], "t.tracks", "not JSON"),
    (b"\xff\xfe\x00garbage", "t.tracks", "invalid UTF-8"),
    (b"[1, 2, 3]", "t.tracks", "not a JSON object"),
    (envelope(schema_version=7), "t.tracks", "unknown schema_version 7"),
    (envelope(schema_version="one"), "t.tracks", "wrong type of schema_version (expected int)"),
    (envelope(event_type="podcast"), "t.tracks", "unknown event_type podcast"),
    (good_event(), "t.artists", "event_type track on topic t.artists"),
    (envelope(event_id=None), "t.tracks", "missing field event_id"),
    (envelope(observed_at="yesterday"), "t.tracks", "observed_at is not a timestamp"),
    (envelope(observed_at=1767225600), "t.tracks", "wrong type of observed_at (expected timestamp)"),
    (envelope(payload=None), "t.tracks", "missing field payload"),
    (payload_with(track_id=None), "t.tracks", "missing field payload.track_id"),
    (payload_with(duration_ms="long"), "t.tracks", "wrong type of payload.duration_ms (expected bigint)"),
    (payload_with(track_id=12345), "t.tracks", "wrong type of payload.track_id (expected string)"),
    (payload_with(artist_ids="A"), "t.tracks", "wrong type of payload.artist_ids (expected array<string>)"),
    (b"{" + b'"x": "' + b"y" * 3000 + b'"}', "t.tracks", "oversize: 3009 bytes > 2048"),
    # A field is checked by its JSON type, not by whether Spark can cast it: these were accepted as 42, 1, 1
    # (popularity), true (explicit), ["1", "2"], version 1.
    (payload_with(popularity="42"), "t.tracks", "wrong type of payload.popularity (expected int)"),
    (payload_with(popularity=1.5), "t.tracks", "wrong type of payload.popularity (expected int)"),
    (payload_with(popularity=True), "t.tracks", "wrong type of payload.popularity (expected int)"),
    (payload_with(explicit=1), "t.tracks", "wrong type of payload.explicit (expected boolean)"),
    (payload_with(explicit="true"), "t.tracks", "wrong type of payload.explicit (expected boolean)"),
    (payload_with(artist_ids=[1, 2]), "t.tracks", "wrong type of payload.artist_ids (expected array<string>)"),
    (envelope(schema_version="1"), "t.tracks", "wrong type of schema_version (expected int)"),
    (envelope(schema_version=1.5), "t.tracks", "wrong type of schema_version (expected int)"),
    (envelope(payload="track"), "t.tracks", "wrong type of payload (expected object)"),
    (features_with(energy="0.5"), "t.features", "wrong type of payload.energy (expected double)"),
    (features_with(mode=False), "t.features", "wrong type of payload.mode (expected int)"),
    (payload_with(popularity=2**31), "t.tracks", "payload.popularity out of range for int"),
    (payload_with(duration_ms=2**63), "t.tracks", "payload.duration_ms out of range for bigint"),
    (payload_with(duration_ms=10**40), "t.tracks", "payload.duration_ms out of range for bigint"),
    (features_with(tempo=1e300).replace(b"1e+300", b"1e400"), "t.features", "payload.tempo out of range for double"),
    # Well-typed, but outside what the Web API's description allows: the expectations.
    (
        payload_with(popularity=140),
        "t.tracks",
        "expectation popularity_0_100 failed: payload.popularity is 140, expected 0 to 100",
    ),
    (
        payload_with(duration_ms=0),
        "t.tracks",
        "expectation duration_positive failed: payload.duration_ms is 0, expected at least 1",
    ),
    (
        artist_event(followers={"total": -5}),
        "t.artists",
        "expectation followers_non_negative failed: payload.followers is -5, expected at least 0",
    ),
    (
        features_with(energy=0.5, valence=1.5),
        "t.features",
        "expectation audio_score_0_1 failed: payload.valence is 1.5, expected 0 to 1",
    ),
    (features_with(key=12), "t.features", "expectation key_pitch_class failed: payload.key is 12, expected -1 to 11"),
    (
        features_with(tempo=-3.5),
        "t.features",
        "expectation tempo_non_negative failed: payload.tempo is -3.5, expected at least 0",
    ),
    (
        features_with(time_signature=9),
        "t.features",
        "expectation time_signature_0_7 failed: payload.time_signature is 9, expected 0 to 7",
    ),
    # A wrong type is said as such, before any range.
    (payload_with(popularity="140"), "t.tracks", "wrong type of payload.popularity (expected int)"),
    # The listening history: times are ISO 8601 strings, ranks count from 1, Spotify's three time ranges.
    (play_event("last night"), "t.plays", "payload.played_at is not a timestamp"),
    (play_event(played_at=1700000000000), "t.plays", "wrong type of payload.played_at (expected timestamp)"),
    (top_event(day="2026-13-40"), "t.top", "payload.day is not a date"),
    (top_event("all_time"), "t.top", "unknown time_range all_time"),
    (top_event(rank=0), "t.top", "expectation rank_positive failed: payload.rank is 0, expected at least 1"),
    (top_event(rank=None), "t.top", "missing field payload.rank"),
    (top_event(rank=2**31), "t.top", "payload.rank out of range for int"),
    (membership_event("renamed"), "t.members", "unknown action renamed"),
    (forged_track(), "t.tracks", "missing field payload.track_id"),
]


def bronze_frame(spark: SparkSession, records: list[tuple[bytes, str]]):  # type: ignore[no-untyped-def]
    rows = [
        (None, value, topic, 0, offset, datetime(2026, 1, 1, tzinfo=UTC))
        for offset, (value, topic) in enumerate(records)
    ]
    return spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, kafka_timestamp timestamp"
    )


def test_every_kind_of_poison_gets_its_reason(spark: SparkSession) -> None:
    records = [(value, topic) for value, topic, _ in POISON] + [(good_event(), "t.tracks")]
    parsed = parse_events(bronze_frame(spark, records), TOPICS, max_bytes=2048)
    reasons = [row.reason for row in parsed.orderBy("offset").collect()]
    assert reasons == [reason for _, _, reason in POISON] + [None]


def test_the_producers_events_are_told_good_at_once(spark: SparkSession) -> None:
    """Every kind of event the producer sends takes parsing's fast path (`well_formed`). A key written to make the
    text of the JSON types read as a good event's is quoted in that text, so the event takes the checks, which give
    its reason (see POISON)."""
    good = [
        (good_event(), "t.tracks"),
        (payload_with(popularity=None, genres=[], artist_ids=[None]), "t.tracks"),
        (artist_event(), "t.artists"),
        (features_with(energy=1, tempo=120.5, loudness=-7.25), "t.features"),
        (membership_event("removed"), "t.members"),
        (play_event(), "t.plays"),
        (top_event(rank=50), "t.top"),
        (good_event(), "t.unknown"),  # a topic outside the map: the event type decides
    ]
    forged = (forged_track(), "t.tracks")
    parsed = parse_events(bronze_frame(spark, [*good, forged]), TOPICS, 2048).orderBy("offset")
    fast = well_formed(tuple(TOPICS.items()), 2048)
    rows = parsed.select(
        fast.alias("fast"), "reason", F.schema_of_variant("doc").rlike(event_pattern("track")).alias("reads_as_track")
    ).collect()
    assert [(row.fast, row.reason) for row in rows] == [(True, None)] * len(good) + [
        (False, "missing field payload.track_id")
    ]
    assert not rows[-1].reads_as_track


def test_edge_values_the_contract_allows_parse_as_they_were_sent(spark: SparkSession) -> None:
    records = [
        (payload_with(popularity=None, explicit=None, genres=None, artist_ids=[], duration_ms=2**63 - 1), "t.tracks"),
        (good_event().replace(b'"popularity":40', b'"popularity":40.0'), "t.tracks"),
        (good_event().replace(b'"popularity":40', b'"popularity":4e1'), "t.tracks"),
        (features_with(energy=1, tempo=-0.0, loudness=-1e300), "t.features"),
        # The expectations' bounds themselves: popularity 0 and 100, the scores 0 and 1, no key (-1), no mode
        # (-1), time signature 0 (catalogues taken from the API hold it), tempo 0, no followers.
        (payload_with(popularity=0), "t.tracks"),
        (payload_with(popularity=100, duration_ms=1), "t.tracks"),
        (features_with(energy=0, valence=1, key=-1, mode=-1, time_signature=0, tempo=0), "t.features"),
        (artist_event(popularity=100, followers={"total": 0}), "t.artists"),
    ]
    parsed = parse_events(bronze_frame(spark, records), TOPICS, 2048)
    assert [row.reason for row in parsed.orderBy("offset").collect()] == [None] * len(records)
    tracks = entity_rows(parsed, "track").orderBy("popularity").collect()
    assert [(t.popularity, t.duration_ms, t.artist_ids) for t in tracks] == [
        (None, 2**63 - 1, []),
        (0, 1000, ["A" * 22]),
        (40, 1000, ["A" * 22]),
        (40, 1000, ["A" * 22]),
        (100, 1, ["A" * 22]),
    ]
    features = entity_rows(parsed, "audio_features").orderBy("energy").collect()
    assert [(f.energy, f.loudness, f.mode, f.key, f.time_signature) for f in features] == [
        (0.0, None, -1, -1, 0),
        (1.0, -1e300, 1, 5, None),
    ]


def test_schema_version_2_with_an_extra_field_is_read_as_version_1(spark: SparkSession) -> None:
    event = json.loads(payload_with(mood="happy"))
    event["schema_version"] = 2
    event["trace"] = {"hop": 1}
    parsed = parse_events(bronze_frame(spark, [(json.dumps(event).encode(), "t.tracks")]), TOPICS, 2048)
    rows = entity_rows(parsed, "track").collect()
    assert len(rows) == 1 and rows[0].track_id == "T" * 22 and rows[0].schema_version == 2
    assert "mood" not in rows[0].asDict()


def test_latest_observation_wins_within_a_batch(spark: SparkSession) -> None:
    records = [
        (good_event("2026-01-02T00:00:00.000Z", name="new"), "t.tracks"),
        (good_event("2026-01-01T00:00:00.000Z", name="old"), "t.tracks"),
        (good_event("2026-01-02T00:00:00.000Z", name="new"), "t.tracks"),
    ]
    parsed = parse_events(bronze_frame(spark, records), TOPICS, 2048)
    rows = latest_per_key(entity_rows(parsed, "track"), ["track_id"]).collect()
    assert [r.name for r in rows] == ["new"]


@pytest.mark.parametrize(
    ("actions", "is_member"), [(["added"], True), (["added", "removed"], False), (["removed", "added"], True)]
)
def test_membership_follows_the_latest_action(spark: SparkSession, actions: list[str], is_member: bool) -> None:
    records = []
    for day, action in enumerate(actions, start=1):
        payload = membership_payload("P" * 22, "Favs", "T" * 22, action, f"snap{day}", True)  # type: ignore[arg-type]
        event = make_event("playlist_membership", "P" * 22, payload, "test", f"2026-01-0{day}T00:00:00.000Z")
        records.append((event.to_bytes(), "t.members"))
    parsed = parse_events(bronze_frame(spark, records), TOPICS, 2048)
    members = member_rows(entity_rows(parsed, "playlist_membership")).collect()
    assert [(m.is_member, m.last_action) for m in members] == [(is_member, actions[-1])]


def test_gold_row_joins_artist_features_and_label(spark: SparkSession) -> None:
    artist = make_event(
        "artist",
        "A" * 22,
        artist_payload({"id": "A" * 22, "name": "Artist", "genres": ["jazz"], "popularity": 70}),
        "test",
    )
    features = make_event(
        "audio_features", "T" * 22, audio_features_payload("T" * 22, {"energy": 0.5}, "reccobeats"), "test"
    )
    member = make_event(
        "playlist_membership", "P" * 22, membership_payload("P" * 22, "Favs", "T" * 22, "added", "s1", True), "test"
    )
    records = [
        (good_event(), "t.tracks"),
        (artist.to_bytes(), "t.artists"),
        (features.to_bytes(), "t.features"),
        (member.to_bytes(), "t.members"),
        (play_event("2026-01-01T12:00:00.000Z"), "t.plays"),
        (play_event("2026-01-03T08:30:00Z"), "t.plays"),  # Spotify's times may come without milliseconds
        (top_event("short_term", 4), "t.top"),
        (top_event("long_term", 2, "2026-01-05"), "t.top"),
    ]
    parsed = parse_events(bronze_frame(spark, records), TOPICS, 4096)
    assert parsed.where("reason IS NOT NULL").count() == 0
    gold = track_features(
        entity_rows(parsed, "track"),
        entity_rows(parsed, "artist"),
        entity_rows(parsed, "audio_features"),
        member_rows(entity_rows(parsed, "playlist_membership")),
        entity_rows(parsed, "play"),
        entity_rows(parsed, "top_track"),
    ).collect()
    assert len(gold) == 1
    row = gold[0]
    assert (row.genres, row.artist_popularity, row.energy, row.features_provider) == (["jazz"], 70, 0.5, "reccobeats")
    assert row.is_favourite is True and row.release_year == 2019 and row.popularity == 40
    # The listening: two plays, the last one's time; the best rank in any top list, and the last day listed.
    assert (row.play_count, row.last_played_at) == (2, datetime(2026, 1, 3, 8, 30))
    assert (row.top_rank, str(row.top_listed_on)) == (2, "2026-01-05")


def test_release_dates_of_every_precision_give_the_year(spark: SparkSession) -> None:
    from streaming.transforms import release_year

    dates = ["1967", "1981-03", "2019-05-01", None, "0000"]
    frame = spark.createDataFrame([(d,) for d in dates], "release_date string")
    years = [row.year for row in frame.select(release_year("release_date").alias("year")).collect()]
    assert years == [1967, 1981, 2019, None, None]
