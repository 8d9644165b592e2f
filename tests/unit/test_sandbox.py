"""The sandbox: its generated catalogue, and its Web API in both generations, through spotipy over HTTP."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.exceptions import SpotifyException
from spotipy.oauth2 import SpotifyClientCredentials

from producers.sandbox.catalogue import (
    CatalogueSize,
    generate_catalogue,
    observable_favourite,
    observable_popularity,
    roc_auc,
)
from producers.sandbox.server import SandboxServer


def client(server: SandboxServer) -> spotipy.Spotify:
    env = server.env()
    auth = SpotifyClientCredentials(
        env["SPOTIFY_CLIENT_ID"], env["SPOTIFY_CLIENT_SECRET"], cache_handler=MemoryCacheHandler()
    )
    auth.OAUTH_TOKEN_URL = f"{env['SPOTIFY_ACCOUNTS_URL']}/api/token"
    sp = spotipy.Spotify(auth_manager=auth, requests_session=requests.Session())  # no retries: see every answer
    sp.prefix = env["SPOTIFY_API_URL"]
    return sp


def status_of(call: Callable[[], object]) -> int:
    try:
        call()
    except SpotifyException as exc:
        return int(exc.http_status)
    return 200


def test_catalogue_is_reproducible_and_its_model_known() -> None:
    size = CatalogueSize(tracks=800, artists=80, albums=150, playlists=6, favourite_playlists=2)
    first, again = generate_catalogue(11, size), generate_catalogue(11, size)
    assert list(first.tracks) == list(again.tracks) and first.model == again.model
    assert list(generate_catalogue(12, size).tracks) != list(first.tracks)
    model = first.model
    assert 0.1 < len(first.favourites) / len(first.tracks) < 0.3
    assert 0.5 < model["best_popularity_r2"] < 0.95
    assert 0.75 < model["best_favourite_auc"] < 0.99
    # What the data shows (each artist's and album's effect from their other tracks) allows less than knowing
    # every hidden variable, but not much less with several tracks per artist.
    assert model["best_popularity_r2"] - 0.15 < model["observable_popularity_r2"] < model["best_popularity_r2"]
    assert model["best_favourite_auc"] - 0.1 < model["observable_favourite_auc"] < model["best_favourite_auc"]
    assert model["popularity"]["noise_sd"] == 9.0 and model["favourite"]["noise_sd"] == 0.5
    favourite_members = {t for pid in first.favourite_playlist_ids for t in first.playlists[pid]["track_ids"]}
    assert favourite_members == first.favourites
    assert all(0 <= t["popularity"] <= 100 for t in first.tracks.values())


def test_catalogue_is_shaped_like_real_ones(tmp_path: Path) -> None:
    """Who made a track says most about its popularity; artist popularity exists only where Spotify serves it;
    some tracks credit a featured artist; and the sound's effect is not additive."""
    catalogue = generate_catalogue(3, CatalogueSize(tracks=4000, artists=400, albums=1000))
    tracks = list(catalogue.tracks.values())
    expected = np.array([t["expected_popularity"] for t in tracks])
    artist = np.array([t["artist_ids"][0] for t in tracks])
    artist_means = {a: expected[artist == a].mean() for a in set(artist)}
    between_artists = np.var([artist_means[a] for a in artist])
    assert between_artists > 0.5 * np.var(expected), "artist identity carries most of the signal"
    assert 0.08 < np.mean([len(t["artist_ids"]) > 1 for t in tracks]) < 0.25
    # Albums differ in length (singles, EPs, long albums), and none is empty, as on Spotify.
    lengths = [len(album["track_ids"]) for album in catalogue.albums.values()]
    assert min(lengths) == 1 and max(lengths) >= 12 and sum(lengths) == 4000
    instrumental = np.array([catalogue.audio_features[t["id"]]["instrumentalness"] > 0.5 for t in tracks])
    assert expected[instrumental].mean() < expected[~instrumental].mean() - 3
    model = catalogue.model["popularity"]
    assert model["instrumentalness_over_half"] < 0 and model["danceability_x_energy"] != 0
    # An exported catalogue (the Tracks Dataset layout) has popularity but nothing about the artist's.
    catalogue.export_tracks_csv(tmp_path / "tracks.csv")
    header = (tmp_path / "tracks.csv").read_text().splitlines()[0].split(",")
    assert "popularity" in header and not {"artist_popularity", "followers", "artist_followers"} & set(header)


def test_observable_ceilings_never_see_the_track_itself() -> None:
    """The observable estimates use the artist's other tracks: a track's own label never moves its own
    estimate, and an artist with one track gets the prior."""
    rng = np.random.default_rng(0)
    artist = np.repeat(np.arange(50), 4)
    album = artist * 2 + (np.arange(200) % 2)
    known = rng.normal(40, 5, size=200)
    popularity = known + np.repeat(rng.normal(0, 13, size=50), 4) + rng.normal(0, 9, size=200)
    estimate = observable_popularity(popularity, known, artist, album)
    changed = popularity.copy()
    changed[0] += 30
    again = observable_popularity(changed, known, artist, album)
    centre_shift = (again - estimate)[4:].mean()  # the global centre moves a little with any label
    assert abs(again[0] - estimate[0] - centre_shift) < 1e-9
    assert again[1] > estimate[1] + 1, "the artist's other tracks learn from it"
    alone = observable_popularity(popularity[:1], known[:1], np.zeros(1, dtype=int), np.zeros(1, dtype=int))
    assert alone[0] == pytest.approx(popularity[0])  # one track: the prior (the centre is its own)
    favourite = rng.random(200) < 0.3
    liked = observable_favourite(favourite, np.zeros(200), artist)
    flipped = favourite.copy()
    flipped[0] = not flipped[0]
    assert observable_favourite(flipped, np.zeros(200), artist)[0] == pytest.approx(liked[0], abs=1e-12)
    single = observable_favourite(np.array([True, False]), np.zeros(2), np.array([0, 1]))
    assert single[0] == pytest.approx(single[1], abs=1e-12), "an artist with no other tracks gets the prior"


def test_roc_auc() -> None:
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5
    assert roc_auc(np.array([0.9, 0.1]), np.array([1, 0])) == 1.0


def test_development_mode_limits(sandbox_factory: Callable[..., SandboxServer]) -> None:
    server = sandbox_factory("development")
    sp = client(server)
    catalogue = server.state.catalogue
    track, artist = next(iter(catalogue.tracks)), next(iter(catalogue.artists))
    playlist = next(iter(catalogue.playlists))
    assert len(sp.search("tag:new", limit=10, type="album")["albums"]["items"]) == 10
    assert sp.search("tag:new", limit=10)["tracks"]["items"] == [], "tag:new filters album searches only"
    assert len(sp.search("genre:jazz", limit=10)["tracks"]["items"]) == 10
    assert status_of(lambda: sp.search("love", limit=11)) == 400
    assert status_of(lambda: sp.artist_albums(artist, limit=20)) == 400
    assert status_of(lambda: sp.artist_albums(artist, limit=10)) == 200
    assert status_of(lambda: sp.tracks([track])) == 403, "batch endpoints are gone"
    assert "popularity" not in sp.track(track) and "followers" not in sp.artist(artist)
    assert status_of(lambda: sp.playlist_items(playlist)) == 403, "client credentials read no playlist"
    bearer = {"Authorization": f"Bearer {sp.auth_manager.get_access_token(as_dict=False)}"}
    bare = requests.get(f"{server.url}/v1/audio-features", params={"ids": track}, headers=bearer, timeout=10)
    assert bare.status_code == 403 and bare.content == b""


def test_extended_mode_batches_and_pages(sandbox_factory: Callable[..., SandboxServer]) -> None:
    server = sandbox_factory("extended")
    sp = client(server)
    catalogue = server.state.catalogue
    ids = list(catalogue.tracks)
    assert [t["popularity"] for t in sp.tracks(ids[:50])["tracks"]] == [
        catalogue.tracks[i]["popularity"] for i in ids[:50]
    ]
    assert status_of(lambda: sp._get("tracks", ids=",".join(ids[:51]))) == 400  # noqa: SLF001
    assert len(sp.audio_features(ids[:100])) == 100
    playlist = max(catalogue.playlists.values(), key=lambda p: len(p["track_ids"]))
    page = sp._get(f"playlists/{playlist['id']}/tracks", limit=100)  # noqa: SLF001
    seen = [item["track"] for item in page["items"]]
    while page["next"]:
        assert page["next"].startswith("http://127.0.0.1:")
        page = sp.next(page)
        seen += [item["track"] for item in page["items"]]
    tracks = [t["id"] for t in seen if t and t["type"] == "track" and not t["is_local"]]
    if playlist["owner"] == "sandbox-user" and not playlist["favourite"]:  # a mix: a duplicate, a local file ...
        assert None in seen and "episode" in {t["type"] for t in seen if t}
        assert len(tracks) == len(playlist["track_ids"]) + 1 and tracks[-1] == playlist["track_ids"][-1]
    assert list(dict.fromkeys(tracks)) == playlist["track_ids"]


def test_playlist_answers_hold_only_the_fields_asked_for(sandbox_factory: Callable[..., SandboxServer]) -> None:
    """`fields` as the description has it: dots into an object, parentheses into each item, `!` leaves one out; what
    was not asked for is not sent (code that reads more works against the sandbox only if it works live)."""
    server = sandbox_factory("extended")
    sp = client(server)
    playlist = next(iter(server.state.catalogue.playlists))
    meta = sp.playlist(playlist, fields="id,name,snapshot_id,owner(id),collaborative")
    assert set(meta) == {"id", "name", "snapshot_id", "owner", "collaborative"} and set(meta["owner"]) == {"id"}
    wanted = "total,items(added_at,added_by.id,{0}(id,album(!images)))"
    entry = "item" if "item" in sp.playlist_items(playlist, limit=1)["items"][0] else "track"  # spotipy's path
    page = sp.playlist_items(playlist, fields=wanted.format(entry), limit=5)
    assert set(page) == {"total", "items"} and len(page["items"]) == 5
    for item in page["items"]:
        assert set(item) == {"added_at", "added_by", entry}, item
        assert item["added_by"] is None or set(item["added_by"]) == {"id"}
        assert item[entry] is None or set(item[entry]) <= {"id", "album"}
        album = (item[entry] or {}).get("album")
        assert album is None or ("images" not in album and {"id", "name"} <= set(album))
    assert status_of(lambda: sp.playlist(playlist, fields="items(track")) == 400
    assert set(sp.playlist(playlist)) > set(meta), "without fields: the whole object"


def test_reccobeats_omits_unknown_ids(sandbox_factory: Callable[..., SandboxServer]) -> None:
    server = sandbox_factory("development")
    catalogue = server.state.catalogue
    ids = list(catalogue.tracks)[:40]
    answer = requests.get(f"{server.url}/reccobeats/v1/audio-features", params={"ids": ",".join(ids)}, timeout=10)
    content = answer.json()["content"]
    known = [i for i in ids if catalogue.tracks[i]["reccobeats"]]
    assert [item["href"].rsplit("/", 1)[1] for item in content] == known
    assert all("time_signature" not in item for item in content)
    forty_one = ",".join(list(catalogue.tracks)[:41])
    too_many = requests.get(f"{server.url}/reccobeats/v1/audio-features", params={"ids": forty_one}, timeout=10)
    assert too_many.status_code == 400


@pytest.mark.parametrize("fault", [{"rate_limit": 1, "retry_after": 30}, {"rate_limit": 1, "quota_exceeded": True}])
def test_rate_limit_faults(sandbox_factory: Callable[..., SandboxServer], fault: dict[str, object]) -> None:
    server = sandbox_factory("development")
    sp = client(server)
    sp.search("a", limit=1)
    requests.post(f"{server.url}/_sandbox/faults", json=fault, timeout=10)
    with pytest.raises(SpotifyException) as caught:
        sp.search("a", limit=1)
    assert caught.value.http_status == 429
    assert caught.value.headers["Retry-After"] == str(fault.get("retry_after", 1))
    assert (caught.value.reason == "QUOTA_EXCEEDED") == bool(fault.get("quota_exceeded"))
    assert sp.search("a", limit=1)["tracks"] is not None
