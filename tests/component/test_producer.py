"""The producer against the sandbox over real HTTP (spotipy for real), into the real broker."""

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from producers.sandbox.listener import iso
from producers.sandbox.server import SandboxServer
from producers.service import EXIT_TEMPFAIL, Producer, open_producer, run_service
from producers.settings import ProducerSettings
from tests.support.kafka import read_topic
from tests.support.playlist import not_favourites, write_recommendations, writes
from tests.support.spotify import sandbox_login, sandbox_settings, sandbox_stats, set_faults

EVENT_TOPICS = ("topic_tracks", "topic_artists", "topic_audio_features", "topic_playlist_membership")


@pytest.fixture
def producers() -> Iterator[Callable[[ProducerSettings], Producer]]:
    made: list[Producer] = []

    def make(settings: ProducerSettings) -> Producer:
        made.append(open_producer(settings))
        return made[-1]

    yield make
    for producer in made:
        producer.close()


def events_by_topic(settings: ProducerSettings) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    return {name: read_topic(settings.kafka_bootstrap_servers, getattr(settings, name)) for name in EVENT_TOPICS}


def readable_playlists(server: SandboxServer, generation: str) -> dict[str, dict]:  # type: ignore[type-arg]
    playlists = server.state.catalogue.playlists
    return {pid: p for pid, p in playlists.items() if generation == "extended" or p["owner"] == "sandbox-user"}


def check_envelopes(events: list[dict]) -> None:  # type: ignore[type-arg]
    for event in events:
        assert event["schema_version"] == 1
        assert {"event_id", "event_type", "source", "observed_at", "payload"} <= set(event)
    assert len({e["event_id"] for e in events}) == len(events), "no event is published twice"


def test_extended_app_publishes_everything_once(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
) -> None:
    server = sandbox_factory("extended")
    catalogue = server.state.catalogue
    settings = sandbox_settings(server, tmp_path, kafka_bootstrap_servers=bootstrap_servers, auth="client")
    producer = producers(settings)
    assert producer.api.generation == "extended"
    assert sandbox_stats(server, reset=True) == {"token": 1, "search": 1}, "one request tells the generation"
    report = producer.poller.poll_once()

    playlists = readable_playlists(server, "extended")
    expected_tracks = {t for p in playlists.values() for t in p["track_ids"]}
    expected_artists = {a for t in expected_tracks for a in catalogue.tracks[t]["artist_ids"]}
    events = events_by_topic(settings)
    for topic_events in events.values():
        check_envelopes(topic_events)
    tracks = {e["key"]: e for e in events["topic_tracks"]}
    assert set(tracks) == expected_tracks
    assert {e["key"] for e in events["topic_artists"]} == expected_artists
    sample = next(iter(tracks.values()))
    assert sample["source"] == "spotify-api/extended"
    assert sample["payload"]["popularity"] == catalogue.tracks[sample["key"]]["popularity"]
    features = events["topic_audio_features"]
    assert {e["key"] for e in features} == expected_tracks
    assert {e["payload"]["provider"] for e in features} == {"spotify"}
    membership = events["topic_playlist_membership"]
    assert len(membership) == sum(len(p["track_ids"]) for p in playlists.values())
    favourite_flags = {e["payload"]["playlist_id"]: e["payload"]["is_favourite_playlist"] for e in membership}
    assert favourite_flags == {pid: p["favourite"] for pid, p in playlists.items()}
    assert {e["payload"]["action"] for e in membership} == {"added"}

    requests_made = sum(sandbox_stats(server).values())
    print(
        f"\nextended: {requests_made} requests for {len(expected_tracks)} new tracks "
        f"= {requests_made / len(expected_tracks):.3f} per track"
    )
    assert report.requests == requests_made
    assert report.events["track"] == len(expected_tracks)


def test_development_app_with_login(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = sandbox_factory("development")
    catalogue = server.state.catalogue
    unfollowed = next(p for p, v in catalogue.playlists.items() if v["owner"] != "sandbox-user")
    server.state.unfollowed.add(unfollowed)  # named in PRODUCER_PLAYLISTS, not followed: its metadata tells
    csv = tmp_path / "catalogue.csv"
    catalogue.export_tracks_csv(csv)
    settings = sandbox_settings(
        server,
        tmp_path,
        kafka_bootstrap_servers=bootstrap_servers,
        catalogue_file=csv,
        include_saved_tracks=False,
        include_listening=False,  # its own test: test_listening_history_...
    )
    sandbox_login(settings)
    assert settings.token_file.stat().st_mode & 0o777 == 0o600
    producer = producers(settings)
    assert producer.api.generation == "development" and producer.api.user
    sandbox_stats(server, reset=True)
    with caplog.at_level(logging.INFO):
        first = producer.poller.poll_once()
        stats = sandbox_stats(server, reset=True)
        first_poll_requests = sum(stats.values())
        second = producer.poller.poll_once()
        second_stats = sandbox_stats(server)

    own = readable_playlists(server, "development")
    assert len(own) < len(catalogue.playlists), "the catalogue has playlists of other users"
    assert first.failed_units == 0 and second.failed_units == 0
    # Unchanged: one request per owned playlist, none for the followed ones of other users (reported once).
    assert second_stats == {"me/playlists": 1, "playlists/{id}": len(own)}, second_stats
    assert stats["playlists/{id}/items"] == sum(1 + (len(p["track_ids"]) + 3) // 50 for p in own.values())
    expected_tracks = {t for p in own.values() for t in p["track_ids"]}
    events = events_by_topic(settings)
    membership = Counter(
        (e["payload"]["playlist_id"], e["payload"]["track_id"]) for e in events["topic_playlist_membership"]
    )
    assert set(membership.values()) == {1} and set(membership) == {(p, t) for p in own for t in own[p]["track_ids"]}
    tracks = {e["key"]: e["payload"] for e in events["topic_tracks"]}
    assert set(tracks) == expected_tracks
    assert all(t["popularity"] is None for t in tracks.values()), "development mode has no popularity"
    assert all(e["payload"]["followers"] is None for e in events["topic_artists"])
    providers = Counter(e["payload"]["provider"] for e in events["topic_audio_features"])
    unknown_to_reccobeats = {t for t in expected_tracks if not catalogue.tracks[t]["reccobeats"]}
    assert providers == {
        "reccobeats": len(expected_tracks) - len(unknown_to_reccobeats),
        "catalogue": len(unknown_to_reccobeats),
    }
    assert unknown_to_reccobeats, "some tracks come from the catalogue file"

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("audio-features" in w for w in warnings) == 1, "a removed endpoint is reported once"
    assert stats["audio-features"] == 1 and "audio-features" not in second_stats, "and never asked again"
    for pid in set(catalogue.playlists) - set(own):
        assert sum(pid in w and "not by you" in w for w in warnings) == 1
    assert stats["playlists/{id}"] == len(own) + 1, "metadata of the one not listed, once; none of the listed"
    mixes = [p for p in own.values() if not p["favourite"]]
    skipped = [r.getMessage() for r in caplog.records if "skipped 1 episode, 1 gone, 1 local file" in r.getMessage()]
    assert mixes and len(skipped) == len(mixes), "episodes, local files and null entries: skipped and counted"

    assert first.requests == first_poll_requests
    print(
        f"\ndevelopment: {first_poll_requests} requests for {len(expected_tracks)} new tracks "
        f"= {first_poll_requests / len(expected_tracks):.3f} per track"
    )
    assert "tracks" not in stats and "artists" not in stats, "no batch endpoints in development mode"
    assert stats["artists/{id}"] == len({a for t in expected_tracks for a in catalogue.tracks[t]["artist_ids"]})


@pytest.mark.parametrize("generation", ["extended", "development"])
def test_unchanged_playlist_costs_one_request_and_changes_are_diffed(
    generation: str,
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
) -> None:
    server = sandbox_factory(generation)
    catalogue = server.state.catalogue
    playlist_id = catalogue.favourite_playlist_ids[0]
    settings = sandbox_settings(
        server,
        tmp_path,
        kafka_bootstrap_servers=bootstrap_servers,
        playlists=[playlist_id],
        favourite_playlists=[playlist_id],
        include_my_playlists=False,
        include_saved_tracks=False,
        include_listening=False,
    )
    if generation == "development":
        sandbox_login(settings)
    producer = producers(settings)
    first = producer.poller.poll_once()
    assert first.events["playlist_membership"] == len(catalogue.playlists[playlist_id]["track_ids"])
    sandbox_stats(server, reset=True)

    second = producer.poller.poll_once()
    assert sandbox_stats(server, reset=True) == {"playlists/{id}": 1}
    assert second.unchanged_playlists == 1 and sum(second.events.values()) == 0

    members = catalogue.playlists[playlist_id]["track_ids"]
    outsiders = [t for t in catalogue.tracks if t not in members][:2]
    requests.post(
        f"{server.url}/_sandbox/playlists/{playlist_id}", json={"add": outsiders, "remove": [members[0]]}, timeout=10
    )
    third = producer.poller.poll_once()
    membership = read_topic(bootstrap_servers, settings.topic_playlist_membership)
    latest = [
        e["payload"] for e in membership if e["payload"]["snapshot_id"] != membership[0]["payload"]["snapshot_id"]
    ]
    assert sorted((p["action"], p["track_id"]) for p in latest) == sorted(
        [("added", outsiders[0]), ("added", outsiders[1]), ("removed", members[0])]
    )
    assert third.events["track"] == 2, "only the two new tracks were not published before"

    # A restart (new process, same data dir) resumes: nothing is published again.
    producer.close()
    again = open_producer(settings)
    try:
        assert sum(again.poller.poll_once().events.values()) == 0
    finally:
        again.close()


def test_kafka_python_client_publishes_the_same(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
) -> None:
    server = sandbox_factory("extended")
    settings = sandbox_settings(
        server, tmp_path, kafka_bootstrap_servers=bootstrap_servers, auth="client", kafka_client="kafka-python"
    )
    report = producers(settings).poller.poll_once()
    tracks = read_topic(bootstrap_servers, settings.topic_tracks)
    expected = {t for p in server.state.catalogue.playlists.values() for t in p["track_ids"]}
    assert {e["key"] for e in tracks} == expected
    assert len(tracks) == len(expected) == report.events["track"]


def test_rate_limit_is_scheduled_not_slept(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = sandbox_factory("extended")
    settings = sandbox_settings(server, tmp_path, kafka_bootstrap_servers=bootstrap_servers, auth="client")
    producer = producers(settings)
    set_faults(server, rate_limit=1, retry_after=7200)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        report = producer.poller.poll_once()
    assert time.monotonic() - started < 10, "the 429 came back at once, nothing slept inside a call"
    assert report.rate_limited == 1 and report.resume_at is not None
    assert 7190 < report.resume_at - time.time() <= 7200
    assert any(
        "rate limited: Retry-After 7200s" in r.getMessage() and "no requests until" in r.getMessage()
        for r in caplog.records
    )

    set_faults(server, rate_limit=1, retry_after=60, quota_exceeded=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        producer.poller.poll_once()
    assert any("QUOTA_EXCEEDED" in r.getMessage() for r in caplog.records)

    # After the wait, the poll goes on where it was and publishes every track once.
    producer.poller.poll_once()
    tracks = read_topic(bootstrap_servers, settings.topic_tracks)
    expected = {t for p in server.state.catalogue.playlists.values() for t in p["track_ids"]}
    assert {e["key"] for e in tracks} == expected and len(tracks) == len(expected)


def test_server_errors_malformed_json_and_expired_tokens(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
) -> None:
    server = sandbox_factory("extended")
    settings = sandbox_settings(server, tmp_path, kafka_bootstrap_servers=bootstrap_servers, auth="client")
    producer = producers(settings)
    set_faults(server, server_errors=2)  # a burst shorter than the retries: absorbed inside the session
    set_faults(server, expire_tokens=True)  # the next call gets 401 and a new token
    report = producer.poller.poll_once()
    assert report.failed_units == 0
    assert sandbox_stats(server)["token"] == 2

    first_playlist = next(iter(server.state.catalogue.playlists.values()))
    requests.post(
        f"{server.url}/_sandbox/playlists/{first_playlist['id']}",
        json={"remove": first_playlist["track_ids"][:1]},
        timeout=10,
    )
    set_faults(server, malformed=1)  # the first request of the next poll: that playlist's unit fails
    broken = producer.poller.poll_once()
    assert broken.failed_units == 1
    healed = producer.poller.poll_once()
    assert healed.failed_units == 0 and healed.events["playlist_membership"] == 1
    membership = read_topic(bootstrap_servers, settings.topic_playlist_membership)
    assert len({e["event_id"] for e in membership}) == len(membership)


def test_timeouts_fail_the_unit_not_the_producer(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
) -> None:
    server = sandbox_factory("extended")
    two_playlists = list(server.state.catalogue.playlists)[:2]
    settings = sandbox_settings(
        server,
        tmp_path,
        kafka_bootstrap_servers=bootstrap_servers,
        auth="client",
        request_timeout_seconds=0.3,
        http_retries=0,
        playlists=two_playlists,
        favourite_playlists=[],
        include_my_playlists=False,
    )
    producer = producers(settings)
    set_faults(server, slow_ms=1000)
    report = producer.poller.poll_once()
    assert report.failed_units == 2 and sum(report.events.values()) == 0
    set_faults(server, slow_ms=0)
    assert producer.poller.poll_once().failed_units == 0


@pytest.mark.parametrize("generation", ["extended", "development"])
def test_searches_artists_and_saved_tracks(
    generation: str,
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
) -> None:
    server = sandbox_factory(generation)
    catalogue = server.state.catalogue
    artist = max(catalogue.artists, key=lambda a: sum(a in al["artist_ids"] for al in catalogue.albums.values()))
    settings = sandbox_settings(
        server,
        tmp_path,
        kafka_bootstrap_servers=bootstrap_servers,
        playlists=[],
        favourite_playlists=[],
        include_my_playlists=False,
        search_queries=["genre:pop", "tag:new"],  # a track search with a filter, and an album search
        search_max_results=25,
        artists=[f"spotify:artist:{artist}"],
        include_listening=False,
    )
    sandbox_login(settings)
    producer = producers(settings)
    sandbox_stats(server, reset=True)
    producer.poller.poll_once()
    stats = sandbox_stats(server, reset=True)
    from producers.sandbox.server import search_catalogue

    pop = search_catalogue(catalogue, "genre:pop")["track"][:25]
    new_albums = search_catalogue(catalogue, "tag:new")["album"][:25]
    assert len(pop) == 25 and len(new_albums) == 20
    # 10 results a call in development mode: 3 calls for 25 tracks, 2 for 20 albums
    assert stats["search"] == (5 if generation == "development" else 2)
    albums = [a for a in catalogue.albums.values() if artist in a["artist_ids"]]
    assert stats["albums/{id}/tracks"] == len({a["id"] for a in albums} | set(new_albums))
    saved = sorted(catalogue.favourites)[:60]
    expected = set(saved) | {t for a in albums for t in a["track_ids"]} | set(pop)
    expected |= {t for a in new_albums for t in catalogue.albums[a]["track_ids"]}
    tracks = read_topic(bootstrap_servers, settings.topic_tracks)
    assert {e["key"] for e in tracks} == expected and len(tracks) == len(expected)
    album = albums[0]
    album_track = next(e["payload"] for e in tracks if e["key"] == album["track_ids"][0])
    assert album_track["release_date"] == album["release_date"] and album_track["album_id"] == album["id"]
    membership = read_topic(bootstrap_servers, settings.topic_playlist_membership)
    assert sorted(e["payload"]["track_id"] for e in membership) == saved
    assert all(e["payload"]["is_favourite_playlist"] for e in membership)

    # Again: saved tracks are read down to the cursor, albums are fresh, nothing is new.
    report = producer.poller.poll_once()
    stats = sandbox_stats(server)
    assert sum(report.events.values()) == 0
    assert "albums/{id}/tracks" not in stats and stats["me/tracks"] == 1


def test_nothing_is_recorded_until_kafka_confirms(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker
    from tests.support.processes import JARS_DIR

    server = sandbox_factory("extended")
    broker = LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=tmp_path / "kafka", jars_dir=JARS_DIR, port=0))
    running = broker.start()
    playlist = server.state.catalogue.favourite_playlist_ids[0]
    settings = sandbox_settings(
        server,
        tmp_path,
        kafka_bootstrap_servers=running.bootstrap_servers,
        auth="client",
        playlists=[playlist],
        favourite_playlists=[],
        kafka_timeout_seconds=1,
    )
    producer = open_producer(settings)
    try:
        broker.stop()
        report = producer.poller.poll_once()
        assert report.failed_units == 1 and sum(report.events.values()) == 0
        assert producer.state.snapshot(playlist) is None and producer.state.counts() == {}
        broker.settings = broker.settings.model_copy(update={"port": running.port})
        broker.start()
        report = producer.poller.poll_once()
        assert report.failed_units == 0 and producer.state.snapshot(playlist) is not None
        members = read_topic(running.bootstrap_servers, settings.topic_playlist_membership)
        expected = server.state.catalogue.playlists[playlist]["track_ids"]
        assert {e["payload"]["track_id"] for e in members} == set(expected)
        assert len({e["event_id"] for e in members}) == len(expected), "a re-send is the same event"
    finally:
        producer.close()
        broker.stop()


def test_once_with_events_kafka_refused_exits_75_and_says_so(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker refuses every track event (the topic takes no message that big): `run --once` exits 75, its last
    line says Kafka did not confirm, and the next run, once the topic takes them, publishes each track once."""
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    server = sandbox_factory("extended")
    settings = sandbox_settings(server, tmp_path, kafka_bootstrap_servers=bootstrap_servers, auth="client")
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    topic = settings.topic_tracks
    admin.create_topics([NewTopic(topic, 2, 1, config={"max.message.bytes": "64"})])[topic].result(30)

    with caplog.at_level(logging.INFO):
        code = run_service(settings, once=True, interval=None)
    assert code == EXIT_TEMPFAIL
    last = caplog.records[-1].getMessage()
    assert "Kafka did not confirm" in last and "sends them again" in last, last
    assert read_topic(bootstrap_servers, topic) == []

    resource = ConfigResource("topic", topic, set_config={"max.message.bytes": "1048588"})
    admin.alter_configs([resource])[resource].result(30)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_service(settings, once=True, interval=None) == 0
    assert "Kafka confirmed everything" in [r.getMessage() for r in caplog.records][-1]
    tracks = read_topic(bootstrap_servers, topic)
    expected = {t for p in server.state.catalogue.playlists.values() for t in p["track_ids"]}
    assert {e["key"] for e in tracks} == expected and len(tracks) == len(expected)


def test_run_puts_new_recommendations_in_the_playlist_and_never_polls_it(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`run` after each poll: a new version of the recommendations table goes into the user's playlist (once), and
    that playlist, listed in /me/playlists like any other of the user's, is never read as a source."""
    server = sandbox_factory("development")
    settings = sandbox_settings(server, tmp_path, kafka_bootstrap_servers=bootstrap_servers, include_saved_tracks=False)
    sandbox_login(settings)
    picks = not_favourites(server, 40)
    write_recommendations(settings, picks[:25])
    with caplog.at_level(logging.INFO):
        assert run_service(settings, once=True, interval=None) == 0
    created = [p for p in server.state.catalogue.playlists.values() if p["name"] == settings.playlist_name]
    assert len(created) == 1 and created[0]["track_ids"] == picks[:25]
    playlist = created[0]["id"]
    assert any(f"({playlist}) holds the top 25 recommendations of favourite v3" in m for m in caplog.messages)

    sandbox_stats(server, reset=True)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_service(settings, once=True, interval=None) == 0
    stats = sandbox_stats(server, reset=True)
    assert writes(stats) == {} and stats["playlists/{id}"] == len(readable_playlists(server, "development")) - 1, (
        "the same table version: Spotify is not even asked about the playlist; the poll skips it"
    )
    write_recommendations(settings, picks[15:], version="4")
    assert run_service(settings, once=True, interval=None) == 0
    assert created[0]["track_ids"] == picks[15:]
    assert writes(sandbox_stats(server)) == {"PUT playlists/{id}/items": 1}
    members = read_topic(bootstrap_servers, settings.topic_playlist_membership)
    assert members and all(e["payload"]["playlist_id"] != playlist for e in members), "recommendations are no labels"


@pytest.mark.parametrize("generation", ["development", "extended"])
def test_listening_history_each_play_once_across_restarts_and_the_top_lists_once_a_day(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    producers: Callable[..., Producer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    generation: str,
) -> None:
    server = sandbox_factory(generation)
    listener = server.state.listener
    settings = sandbox_settings(
        server,
        tmp_path,
        kafka_bootstrap_servers=bootstrap_servers,
        playlists=[],
        favourite_playlists=[],
        include_my_playlists=False,
        include_saved_tracks=False,
        publish_playlist=False,
    )
    sandbox_login(settings)

    def plays() -> list[tuple[str, str]]:  # in time order (the topic keeps order per partition, by track)
        return sorted(
            (e["payload"]["played_at"], e["payload"]["track_id"])
            for e in read_topic(bootstrap_servers, settings.topic_plays)
        )

    def window() -> list[tuple[str, str]]:  # what Spotify still shows, oldest first
        return [(iso(p.played_at_ms), p.track_id) for p in reversed(listener.recent())]

    # First poll: every play Spotify still shows (its last 50), oldest first; each top list with its ranks.
    shown = window()
    first = producers(settings).poller.poll_once()
    assert first.failed_units == 0 and first.events["play"] == len(shown) == 50
    assert plays() == shown
    top = read_topic(bootstrap_servers, settings.topic_top_tracks)
    for time_range in ("short_term", "medium_term", "long_term"):
        listed = [e["payload"] for e in top if e["payload"]["time_range"] == time_range]
        ranked = sorted(listed, key=lambda p: p["rank"])
        assert [p["track_id"] for p in ranked] == listener.top_tracks(time_range, int(time.time() * 1000))
        assert [p["rank"] for p in ranked] == list(range(1, len(ranked) + 1)) and len(ranked) == 50
    assert {p["day"] for p in (e["payload"] for e in top)} == {time.strftime("%Y-%m-%d", time.gmtime())}
    tracks = {e["key"] for e in read_topic(bootstrap_servers, settings.topic_tracks)}
    assert {t for _, t in shown} | {e["key"] for e in top} <= tracks, "played and top tracks are published too"

    # Restarted (a new producer on the same state) after 20 more plays: those 20 only, and no top list (once a day).
    with server.state.lock:
        listener.listen(20)
    restarted = producers(settings)
    second = restarted.poller.poll_once()
    assert second.events["play"] == 20 and second.events["top_track"] == 0
    assert plays() == shown + window()[-20:]
    assert len(set(plays())) == len(plays()), "each play once"
    # Nothing new: one request, for the plays since the last one.
    sandbox_stats(server, reset=True)
    quiet = restarted.poller.poll_once()
    assert sum(quiet.events.values()) == 0 and sandbox_stats(server) == {"me/player/recently-played": 1}

    # More plays than Spotify keeps between two polls: the 50 it shows, and a warning that older ones are gone.
    with server.state.lock:
        listener.listen(60)
    with caplog.at_level(logging.WARNING):
        third = producers(settings).poller.poll_once()
    assert third.events["play"] == 50 and plays()[-50:] == window()
    assert "60 plays" not in caplog.text and "50 plays since the last poll" in caplog.text
    assert "poll more often (PRODUCER_POLL_INTERVAL_SECONDS)" in caplog.text

    # A login from before the listening scopes: one line that says what to do, and the rest of the poll goes on.
    older = sandbox_settings(
        server, tmp_path / "older", kafka_bootstrap_servers=bootstrap_servers, publish_playlist=False
    )
    sandbox_login(older.model_copy(update={"include_listening": False}))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report = producers(older).poller.poll_once()
    assert report.failed_units == 0 and report.events["play"] == 0 and report.events["playlist_membership"] > 0
    warnings = [r.getMessage() for r in caplog.records if "listening" in r.getMessage()]
    assert warnings == [
        "the saved Spotify login does not grant user-read-recently-played and user-top-read, so the listening "
        "history is not read: run `python -m producers login` again, or set PRODUCER_INCLUDE_LISTENING=false"
    ]
