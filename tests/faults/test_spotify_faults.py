"""Spotify misbehaving, for real: `python -m producers run` against the sandbox while its fault flags change
at run time: 429 storms (a short and a multi-hour Retry-After, QUOTA_EXCEEDED), an outage longer than the
client's retries, timeouts, malformed JSON, expired access tokens, a refused refresh (invalid_grant) and
403/404 from removed endpoints.

Each test checks that the process stays up, says each condition once in plain words and once that it is
over, stops on SIGTERM within seconds, and that in the end every expected event is in Kafka exactly once.
"""

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from pipeline_runtime.contract import SAVED_TRACKS
from producers.sandbox.server import SandboxServer
from tests.support.kafka import read_topic
from tests.support.processes import run_module
from tests.support.spotify import (
    TOPICS,
    ProducerProcess,
    change_playlist,
    fault_env,
    sandbox_login,
    sandbox_settings,
    sandbox_stats,
    set_faults,
)

STOP_WITHIN = 10.0  # seconds from SIGTERM to exit, also in a multi-hour wait


def faults_answered(server: SandboxServer) -> dict[str, int]:
    answered: dict[str, int] = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["faults"]
    return answered


def outsiders(server: SandboxServer, playlist_id: str, n: int) -> list[str]:
    members = server.state.catalogue.playlists[playlist_id]["track_ids"]
    return [t for t in server.state.catalogue.tracks if t not in members][:n]


def readable(server: SandboxServer, generation: str) -> dict[str, list[str]]:
    """Current members of each playlist the producer can read (development mode: the user's own only)."""
    playlists = server.state.catalogue.playlists
    return {
        pid: list(p["track_ids"])
        for pid, p in playlists.items()
        if generation == "extended" or p["owner"] == "sandbox-user"
    }


def check_kafka(
    bootstrap_servers: str, env: dict[str, str], members: set[tuple[str, str]], tracks: set[str]
) -> dict[str, int]:
    """Every topic: distinct event ids == events; each membership added (and removed) once, the members
    left == `members`; every track of `tracks` once, nothing else; artists once each."""
    events = {name: read_topic(bootstrap_servers, env[name]) for name in TOPICS}
    for name, topic_events in events.items():
        assert len({e["event_id"] for e in topic_events}) == len(topic_events), f"an event twice in {name}"
    membership = [e["payload"] for e in events["KAFKA_TOPIC_PLAYLIST_MEMBERSHIP"]]
    added = Counter((p["playlist_id"], p["track_id"]) for p in membership if p["action"] == "added")
    removed = Counter((p["playlist_id"], p["track_id"]) for p in membership if p["action"] == "removed")
    assert set(added.values()) | set(removed.values()) <= {1}, "a membership change published twice"
    assert set(added) - set(removed) == members
    track_keys = Counter(e["key"] for e in events["KAFKA_TOPIC_TRACKS"])
    assert set(track_keys) == tracks and set(track_keys.values()) == {1}
    artist_keys = Counter(e["key"] for e in events["KAFKA_TOPIC_ARTISTS"])
    assert artist_keys and set(artist_keys.values()) == {1}
    return {
        "membership_events": len(membership),
        "track_events": len(events["KAFKA_TOPIC_TRACKS"]),
        "artist_events": len(events["KAFKA_TOPIC_ARTISTS"]),
        "audio_feature_events": len(events["KAFKA_TOPIC_AUDIO_FEATURES"]),
        "duplicates": 0,
    }


def all_members(playlists: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {(pid, t) for pid, tracks in playlists.items() for t in tracks}


def times_seen(producer: ProducerProcess, label: str) -> int:
    """How often a condition happened, from the one line saying it is over."""
    match = re.search(rf"no more {label}, seen (\d+) time", producer.output)
    assert match, producer.output[-4000:]
    return int(match.group(1))


def no_traceback(producer: ProducerProcess) -> None:
    assert "Traceback" not in producer.output, producer.output[-4000:]


# --- 429s ---


def test_a_429_storm_mid_poll_is_reported_once_and_the_poll_resumes_where_it_was(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    server = sandbox_factory("extended")
    set_faults(server, slow_ms=150)  # the first poll takes seconds: the storm starts in the middle of it
    env = fault_env(server, tmp_path / "data", bootstrap_servers, PRODUCER_AUTH="client")
    producer = ProducerProcess(env, tmp_path, "--interval", "1")
    try:
        producer.wait_for(r"playlist '")
        set_faults(server, rate_limit=6, retry_after=1, slow_ms=0)
        done_before = producer.count(r"playlist '")
        started = producer.wait_for(r"rate limited: Retry-After 1s; no requests until")
        resumed = producer.wait_for(r"resumed after .*: no more Spotify rate limiting \(429\)", started)
        producer.wait_for(r"poll: .* 0 failed; published nothing new", resumed)
        producer.assert_alive("after the storm")
        stop_seconds = producer.terminate()
    finally:
        producer.kill()
    no_traceback(producer)
    answered = faults_answered(server)["429"]
    assert answered == 6
    assert producer.count(r"rate limited") == 1, "the storm is reported once, not at every 429"
    assert producer.count(r"resumed after") == 1
    times = times_seen(producer, r"Spotify rate limiting \(429\)")
    assert times == answered, "every 429 of the storm counted in the one 'resumed' line"
    assert stop_seconds < STOP_WITHIN
    playlists = readable(server, "extended")
    found = check_kafka(bootstrap_servers, env, all_members(playlists), {t for p in playlists.values() for t in p})
    figures(
        answered_429=answered,
        retry_after_s=1,
        units_done_before_the_storm=done_before,
        storm_warnings=1,
        resumed_lines=1,
        **found,
        sigterm_to_exit_s=round(stop_seconds, 1),
    )


@pytest.mark.parametrize("when", ["at start", "mid-poll"])
def test_a_multi_hour_quota_wait_asks_nothing_and_sigterm_ends_it_at_once(
    when: str,
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    """Moved here from the producer CLI tests (a 3-hour Retry-After at start), with
    QUOTA_EXCEEDED and a storm that starts in the middle of a poll; a restart afterwards finishes the job."""
    server = sandbox_factory("extended")
    storm = {"rate_limit": 1000, "retry_after": 3 * 3600, "quota_exceeded": True}
    set_faults(server, **(storm if when == "at start" else {"slow_ms": 150}))
    env = fault_env(server, tmp_path / "data", bootstrap_servers, PRODUCER_AUTH="client")
    producer = ProducerProcess(env, tmp_path, "--interval", "1")
    try:
        if when == "mid-poll":
            producer.wait_for(r"playlist '")
            set_faults(server, **storm, slow_ms=0)
        waiting = producer.wait_for(r"QUOTA_EXCEEDED\): Retry-After 10800s; no requests until .* \(in 3:00:00\)")
        requests_before = sum(sandbox_stats(server).values())
        time.sleep(3)
        producer.assert_alive("during the wait")
        requests_during_wait = sum(sandbox_stats(server).values()) - requests_before
        stop_seconds = producer.terminate()
    finally:
        producer.kill()
    no_traceback(producer)
    assert requests_during_wait == 0, "nothing is asked of Spotify while the wait lasts"
    assert producer.count(r"QUOTA_EXCEEDED") == 1, "said once, with when Spotify may be asked again"
    assert "(in 3:00:00)" in producer.lines[waiting - 1]
    assert stop_seconds < STOP_WITHIN
    answered = faults_answered(server)["429"]

    set_faults(server, rate_limit=0, quota_exceeded=False)
    again = run_module("producers", "run", "--once", env=env, cwd=tmp_path, timeout=180)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    playlists = readable(server, "extended")
    found = check_kafka(bootstrap_servers, env, all_members(playlists), {t for p in playlists.values() for t in p})
    figures(
        retry_after_s=3 * 3600,
        answered_429=answered,
        quota_warnings=1,
        requests_during_3s_of_wait=requests_during_wait,
        sigterm_to_exit_s=round(stop_seconds, 1),
        **found,
    )


# --- 5xx, timeouts, malformed JSON ---


def test_an_outage_longer_than_the_retries_is_reported_once_over_several_polls(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    server = sandbox_factory("extended")
    set_faults(server, slow_ms=150)
    env = fault_env(server, tmp_path / "data", bootstrap_servers, PRODUCER_AUTH="client", PRODUCER_HTTP_RETRIES="1")
    producer = ProducerProcess(env, tmp_path, "--interval", "1")
    try:
        producer.wait_for(r"playlist '")
        set_faults(server, outage_seconds=8, slow_ms=0)
        started = producer.wait_for(r"Spotify answered 503 after retries \(playlist \w+\): the producer keeps running")
        resumed = producer.wait_for(r"resumed after .*: no more 'Spotify answered 503 after retries'", started)
        producer.wait_for(r"poll: .* 0 failed; published nothing new", resumed)
        stop_seconds = producer.terminate()
    finally:
        producer.kill()
    no_traceback(producer)
    playlists = readable(server, "extended")
    failed = times_seen(producer, r"'Spotify answered 503 after retries'")
    assert failed > len(playlists), "the outage lasted more than one poll"
    outage_lines = [line for line in producer.lines if "answered 503" in line]
    assert len(outage_lines) == 2, f"one line when it began, one when it was over: {outage_lines}"
    assert stop_seconds < STOP_WITHIN
    found = check_kafka(bootstrap_servers, env, all_members(playlists), {t for p in playlists.values() for t in p})
    figures(
        outage_s=8,
        answered_503=faults_answered(server)["outage"],
        units_failed=failed,
        outage_lines=2,
        **found,
        sigterm_to_exit_s=round(stop_seconds, 1),
    )


def test_timeouts_then_malformed_json_are_each_reported_once(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    server = sandbox_factory("extended")
    env = fault_env(
        server,
        tmp_path / "data",
        bootstrap_servers,
        PRODUCER_AUTH="client",
        PRODUCER_HTTP_RETRIES="0",
        PRODUCER_REQUEST_TIMEOUT_SECONDS="2",
    )
    playlist_ids = list(server.state.catalogue.playlists)
    producer = ProducerProcess(env, tmp_path, "--interval", "1")
    try:
        first = producer.wait_for(r"poll: .* 0 failed; published \d+")
        metas = sandbox_stats(server)["playlists/{id}"]
        # Every answer comes after the client gave up. A 2 s timeout: a loaded CI once took a healthy answer past 1 s.
        set_faults(server, slow_ms=3000)
        change_playlist(server, playlist_ids[0], outsiders(server, playlist_ids[0], 2), [])
        slow = producer.wait_for(r"Spotify did not answer within 2s \(timeout\) \(playlist \w+\)", first)
        deadline = time.monotonic() + 120
        while sandbox_stats(server)["playlists/{id}"] < metas + 2 * len(playlist_ids):  # two polls timed out
            producer.assert_alive("while requests time out")
            assert time.monotonic() < deadline, producer.output[-3000:]
            time.sleep(0.5)
        set_faults(server, slow_ms=0)
        recovered = producer.wait_for(r"resumed after .*: no more 'Spotify did not answer within 2s \(timeout\)'", slow)
        producer.wait_for(r"playlist '.*2 added, 0 removed", first)

        set_faults(server, malformed=3)
        change_playlist(server, playlist_ids[1], outsiders(server, playlist_ids[1], 1), [])
        broken = producer.wait_for(r"Spotify's answer was not valid JSON \(playlist \w+\)", recovered)
        producer.wait_for(r"resumed after .*: no more 'Spotify's answer was not valid JSON'", broken)
        producer.wait_for(r"playlist '.*1 added, 0 removed", recovered)
        stop_seconds = producer.terminate()
    finally:
        producer.kill()
    no_traceback(producer)
    timeouts = times_seen(producer, r"'Spotify did not answer within 2s \(timeout\)'")
    assert timeouts >= 2 * len(playlist_ids) - 1
    assert producer.count(r"did not answer") == 2 and producer.count(r"not valid JSON") == 2, "once each way"
    playlists = readable(server, "extended")
    found = check_kafka(bootstrap_servers, env, all_members(playlists), {t for p in playlists.values() for t in p})
    figures(
        units_timed_out=timeouts,
        timeout_lines=2,
        malformed_answers=faults_answered(server)["malformed"],
        malformed_lines=2,
        **found,
        sigterm_to_exit_s=round(stop_seconds, 1),
    )


# --- tokens and logins ---


def test_expired_tokens_and_an_expired_login_keep_the_producer_up_until_a_new_login(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    server = sandbox_factory("development")
    data_dir = tmp_path / "data"
    settings = sandbox_settings(server, data_dir)
    sandbox_login(settings)
    # The playlists and saved tracks only: the listening history has its own tests (tests/component).
    env = fault_env(server, data_dir, bootstrap_servers, PRODUCER_INCLUDE_LISTENING="false")
    own = next(iter(readable(server, "development")))
    dropped = server.state.catalogue.playlists[own]["track_ids"][:1]
    producer = ProducerProcess(env, tmp_path, "--interval", "1")
    try:
        first = producer.wait_for(r"poll: .* 0 failed; published \d+")
        tokens_before = sandbox_stats(server)["token"]
        set_faults(server, expire_tokens=True)
        renewed = producer.wait_for(r"access token expired: getting a new one", first)
        producer.wait_for(r"poll: .* 0 failed; published nothing new", renewed)
        refreshes = sandbox_stats(server)["token"] - tokens_before
        assert settings.token_file.stat().st_mode & 0o777 == 0o600, "still private after the refresh"

        set_faults(server, invalid_grant=True, expire_tokens=True)
        expired = producer.wait_for(
            r"no longer accepts the saved login \(invalid_grant.*run `python -m producers "
            r"login` again\. Until then the producer keeps running",
            renewed,
        )
        change_playlist(server, own, outsiders(server, own, 2), dropped)
        requests_before = sum(sandbox_stats(server).values())
        time.sleep(4)
        producer.assert_alive("with an expired login")
        requests_while_expired = sum(sandbox_stats(server).values()) - requests_before

        set_faults(server, invalid_grant=False)
        sandbox_login(settings)  # what `python -m producers login` does: a new token file
        back = producer.wait_for(r"a new Spotify login is in .*: polling resumed", expired)
        producer.wait_for(r"playlist '.*2 added, 1 removed", back)

        set_faults(server, invalid_grant=True, expire_tokens=True)  # expired again: SIGTERM while it waits
        producer.wait_for(r"no longer accepts the saved login", back)
        time.sleep(1)
        stop_seconds = producer.terminate()
    finally:
        producer.kill()
    no_traceback(producer)
    assert requests_while_expired == 0, "nothing is asked of Spotify while the login is expired"
    assert producer.count(r"access token expired") == 3, "one line per expiry"
    assert producer.count(r"no longer accepts the saved login") == 2 and producer.count(r"new Spotify login") == 1
    assert stop_seconds < STOP_WITHIN
    catalogue = server.state.catalogue
    playlists = readable(server, "development")
    saved = sorted(catalogue.favourites)[:60]
    members = all_members(playlists) | {(SAVED_TRACKS, t) for t in saved}
    tracks = {t for _, t in members} | set(dropped)
    found = check_kafka(bootstrap_servers, env, members, tracks)
    figures(
        token_refreshes=refreshes,
        expiry_lines=3,
        login_expired_lines=2,
        new_login_lines=1,
        requests_while_login_expired=requests_while_expired,
        **found,
        sigterm_to_exit_s=round(stop_seconds, 1),
    )


# --- removed endpoints ---


def test_removed_endpoints_are_reported_once_and_used_again_when_back(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    server = sandbox_factory("development")
    data_dir = tmp_path / "data"
    sandbox_login(sandbox_settings(server, data_dir))
    set_faults(server, removed={"me/tracks": 404, "search": 403})
    env = fault_env(
        server,
        data_dir,
        bootstrap_servers,
        PRODUCER_API_GENERATION="development",
        PRODUCER_SEARCH_QUERIES="genre:pop",
        PRODUCER_SEARCH_MAX_RESULTS="15",
        PRODUCER_INCLUDE_LISTENING="false",
    )
    producer = ProducerProcess(env, tmp_path, "--interval", "1")
    try:
        producer.wait_for(
            r"Spotify answered 404 \(Service not found\) for me/tracks \(saved tracks\): this app may "
            r"not use it"
        )
        producer.wait_for(r"Spotify answered 403 \(Forbidden\) for search \(search 'genre:pop'\)")
        deadline = time.monotonic() + 120
        while sandbox_stats(server).get("me/tracks", 0) < 3:  # three polls
            producer.assert_alive("with endpoints gone")
            assert time.monotonic() < deadline, producer.output[-3000:]
            time.sleep(0.5)
        polls_refused = sandbox_stats(server)["me/tracks"]
        set_faults(server, removed={})
        back = producer.wait_for(r"resumed after .*: no more 404 answers for me/tracks")
        producer.wait_for(r"resumed after .*: no more 403 answers for search")
        producer.wait_for(r"poll: .* 0 failed; published nothing new", back)
        stop_seconds = producer.terminate()
    finally:
        producer.kill()
    no_traceback(producer)
    assert producer.count(r"me/tracks") == 2 and producer.count(r"for search") == 2, "once each way"
    assert producer.count(r"audio-features") == 1, "Spotify's audio features (403 for new apps): once, then never"
    assert sandbox_stats(server)["audio-features"] == 1
    catalogue = server.state.catalogue
    others = [pid for pid, p in catalogue.playlists.items() if p["owner"] != "sandbox-user"]
    assert all(producer.count(pid) == 1 for pid in others), "a playlist of another user: one line each"
    from producers.sandbox.server import search_catalogue

    playlists = readable(server, "development")
    saved = sorted(catalogue.favourites)[:60]
    members = all_members(playlists) | {(SAVED_TRACKS, t) for t in saved}
    tracks = {t for _, t in members} | set(search_catalogue(catalogue, "genre:pop")["track"][:15])
    found = check_kafka(bootstrap_servers, env, members, tracks)
    figures(
        answered_403_404=faults_answered(server)["removed"],
        polls_with_endpoints_gone=polls_refused,
        lines_per_endpoint=2,
        unreadable_playlists=len(others),
        lines_per_playlist=1,
        **found,
        sigterm_to_exit_s=round(stop_seconds, 1),
    )
