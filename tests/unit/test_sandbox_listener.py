"""The sandbox's simulated listener (producers.sandbox.listener) over real HTTP: recently played with Spotify's
cursors and 50-play window, top tracks, saves, and recommendations accepted as often as the hidden taste says."""

import time
from collections.abc import Callable

import requests

from producers.sandbox.server import EPISODE_ID, SandboxServer
from tests.support.openapi import pkce_login
from tests.support.playlist import not_favourites

LISTENING = "user-read-recently-played user-top-read user-library-read playlist-modify-private"


def get(server: SandboxServer, path: str, token: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def listen(server: SandboxServer, plays: int) -> dict:  # type: ignore[type-arg]
    answer = requests.post(f"{server.url}/_sandbox/listen", json={"plays": plays}, timeout=30)
    answer.raise_for_status()
    return dict(answer.json())


def test_recently_played_walks_forward_with_the_after_cursor_each_play_once(
    sandbox_factory: Callable[..., SandboxServer],
) -> None:
    server = sandbox_factory("development")
    token = pkce_login(server, scope=LISTENING)["access_token"]
    assert get(server, "/v1/me/player/recently-played", pkce_login(server)["access_token"]).status_code == 403
    newest = get(server, "/v1/me/player/recently-played?limit=50", token).json()
    assert len(newest["items"]) == 50 and newest["next"] is None, "the history holds more: only 50 are shown"
    times = [item["played_at"] for item in newest["items"]]
    assert times == sorted(times, reverse=True), "newest first"
    cursor = newest["cursors"]["after"]
    listen(server, 23)
    seen: list[str] = []
    page = get(server, f"/v1/me/player/recently-played?after={cursor}&limit=10", token).json()
    while True:
        seen += [item["played_at"] for item in page["items"]]
        if page["next"] is None:
            break
        page = requests.get(page["next"], headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    plays = server.state.listener.plays
    assert sorted(seen) == [f"{p}" for p in sorted(seen)] and len(set(seen)) == len(seen), "each play once"
    assert len(seen) == len([p for p in plays if p.played_at_ms > int(cursor)]) == 23, "no gap, nothing twice"
    both = get(server, f"/v1/me/player/recently-played?after={cursor}&before={cursor}", token)
    assert both.status_code == 400


def test_top_tracks_rank_the_plays_of_the_time_range(sandbox_factory: Callable[..., SandboxServer]) -> None:
    server = sandbox_factory("development")
    token = pkce_login(server, scope=LISTENING)["access_token"]
    assert get(server, "/v1/me/top/tracks?time_range=yesterday", token).status_code == 400
    top = get(server, "/v1/me/top/tracks?time_range=short_term&limit=50", token).json()
    ids = [t["id"] for t in top["items"]]
    since = (time.time() - 28 * 86400) * 1000  # short_term: the last 4 weeks of a history of 30 days
    plays = [p for p in server.state.listener.plays if p.played_at_ms >= since]
    counts = {t: sum(p.track_id == t for p in plays) for t in ids}
    assert ids and list(counts.values()) == sorted(counts.values(), reverse=True), "by plays, most first"
    liked = sum(server.state.catalogue.tracks[t]["liking"] for t in ids) / len(ids)
    everything = server.state.catalogue.tracks.values()
    assert liked > 2 * sum(t["liking"] for t in everything) / len(everything), "what the listener likes"


def test_a_well_liked_playlist_is_accepted_more_often_than_a_random_one(
    sandbox_factory: Callable[..., SandboxServer],
) -> None:
    """The same listener (same seed) given the 30 best-liked non-favourites, or 30 others at random."""
    rates = {}
    for kind in ("good", "random"):
        server = sandbox_factory("development", seed=11)
        token = pkce_login(server, scope=LISTENING)["access_token"]
        catalogue = server.state.catalogue
        pool = not_favourites(server, len(catalogue.tracks))
        picks = sorted(pool, key=lambda t: -catalogue.tracks[t]["liking"])[:30] if kind == "good" else pool[::7][:30]
        headers = {"Authorization": f"Bearer {token}"}
        created = requests.post(
            f"{server.url}/v1/me/playlists", json={"name": "picks", "public": False}, headers=headers, timeout=10
        ).json()
        # An episode among the tracks, as the API lets a playlist hold: the listener tries tracks only.
        uris = {"uris": [f"spotify:track:{t}" for t in picks] + [f"spotify:episode:{EPISODE_ID}"]}
        put = requests.put(f"{server.url}/v1/playlists/{created['id']}/items", json=uris, headers=headers, timeout=10)
        assert put.status_code == 200, put.text
        figures = listen(server, 3000)
        tried, accepted = figures["tried"][created["id"]], figures["accepted"][created["id"]]
        expected = figures["expected_acceptance"][created["id"]]
        assert abs(accepted / tried - expected) < 0.06, (accepted, tried, expected)
        rates[kind] = accepted / tried
        played = {
            i["track"]["id"] for i in get(server, "/v1/me/player/recently-played?limit=50", token).json()["items"]
        }
        saved = [i["track"]["id"] for i in get(server, "/v1/me/tracks?limit=50", token).json()["items"]]
        assert played & set(picks), "recommended tracks show up among the plays"
        assert set(saved[: len(server.state.listener.saved)]) <= set(picks), "saves while listening are the newest"
    assert rates["good"] > rates["random"] + 0.2, rates
