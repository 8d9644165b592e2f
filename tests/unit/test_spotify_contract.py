"""The sandbox against the Web API's published description (../shared/spotify-openapi/, via tests.support.openapi).

Every endpoint the sandbox serves is called over real HTTP in both generations, and each answer (status,
headers, body: objects, paging with absolute links, errors) is validated by openapi-core against the
matching file: development-2026-05-31.yml for a 2026 app, extended-2025-10-03.yml for the pre-2026 shape.
In development mode exactly the field removals of REFERENCE.md §4 are allowed, nothing else. The accounts
service (token answers) is not in the description: its answers are checked against RFC 6749 §5.
"""

import re
from collections.abc import Iterator

import pytest
import requests

from producers.sandbox.catalogue import SANDBOX_USER
from producers.sandbox.server import ROUTES, SandboxServer
from tests.support.openapi import (
    DEVELOPMENT_REMOVALS,
    ContractChecker,
    assert_token_answer,
    assert_token_error,
    contract_checker,
    pkce_login,
)

GENERATIONS = ("development", "extended")


@pytest.fixture(scope="module", params=GENERATIONS)
def checked(request: pytest.FixtureRequest) -> Iterator[tuple[SandboxServer, ContractChecker]]:
    from producers.sandbox.catalogue import CatalogueSize, generate_catalogue
    from producers.sandbox.server import SandboxState
    from tests.support.spotify import SMALL_CATALOGUE

    generation = request.param
    server = SandboxServer(SandboxState(generate_catalogue(5, CatalogueSize(**SMALL_CATALOGUE)), generation))
    server.start_in_thread()
    yield server, contract_checker(server, generation)
    server.shutdown()
    server.server_close()


def user_token(server: SandboxServer) -> str:
    """A user token that may read playlists, saved tracks and listening (not change playlists)."""
    scope = "playlist-read-private user-library-read user-read-recently-played user-top-read"
    return pkce_login(server, scope=scope)["access_token"]


def client_token(server: SandboxServer) -> str:
    answer = requests.post(
        f"{server.url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=(server.state.client_id, server.state.client_secret),
        timeout=10,
    )
    assert_token_answer(answer, refresh=False)
    return str(answer.json()["access_token"])


def mixed_playlist(server: SandboxServer) -> str:
    """The user's own playlist that holds local files, an episode and a null item besides tracks."""
    return next(
        p for p, v in server.state.catalogue.playlists.items() if v["owner"] == "sandbox-user" and not v["favourite"]
    )


def calls(server: SandboxServer, generation: str) -> list[tuple[str, str]]:
    """(token kind, path and query) of every endpoint the sandbox serves, with its ids from the catalogue."""
    catalogue = server.state.catalogue
    track = next(iter(catalogue.tracks))
    artist = next(iter(catalogue.artists))
    album = next(iter(catalogue.albums))
    owned = mixed_playlist(server)
    foreign = next(p for p, v in catalogue.playlists.items() if v["owner"] != "sandbox-user")
    paths = [
        ("user", "/v1/me"),
        ("user", "/v1/me/playlists?limit=5"),
        ("user", "/v1/me/playlists?limit=5&offset=5"),
        ("user", "/v1/me/tracks?limit=10"),
        ("user", "/v1/me/tracks?limit=10&offset=10"),
        ("user", "/v1/me/player/recently-played?limit=10"),
        ("user", "/v1/me/player/recently-played?limit=5&before=9999999999999"),
        ("user", "/v1/me/player/recently-played?after=9999999999999"),
        ("user", "/v1/me/top/tracks?time_range=short_term&limit=5"),
        ("user", "/v1/me/top/tracks?limit=5&offset=5"),
        ("user", f"/v1/playlists/{owned}"),
        ("user", f"/v1/playlists/{foreign}"),
        ("client", f"/v1/playlists/{owned}"),
        ("user", f"/v1/playlists/{owned}/items?limit=20"),
        *(("user", f"/v1/playlists/{owned}/items?limit=20&offset={at}") for at in range(20, 400, 20)),
        ("user", f"/v1/tracks/{track}"),
        ("client", f"/v1/artists/{artist}"),
        ("client", f"/v1/artists/{artist}/albums"),
        ("client", f"/v1/artists/{artist}/albums?limit=2&offset=1"),
        ("client", f"/v1/albums/{album}"),
        ("client", f"/v1/albums/{album}/tracks?limit=2"),
        ("client", "/v1/search?q=love&type=track&limit=5"),
        ("client", "/v1/search?q=genre:jazz&type=track&limit=5&offset=5"),
        ("client", "/v1/search?q=tag:new&type=album&limit=5"),
        ("client", "/v1/search?q=year:2020-2026&type=track,album"),
    ]
    if generation == "extended":
        ids = ",".join(list(catalogue.tracks)[:3])
        paths += [
            ("user", f"/v1/playlists/{owned}/tracks?limit=30"),
            ("user", f"/v1/playlists/{foreign}/tracks"),
            ("client", f"/v1/tracks?ids={ids}"),
            ("client", f"/v1/artists?ids={','.join(list(catalogue.artists)[:3])}"),
            ("client", f"/v1/albums?ids={','.join(list(catalogue.albums)[:2])}"),
            ("client", f"/v1/audio-features?ids={ids}"),
        ]
    return paths


def test_every_answer_of_every_endpoint_validates(checked: tuple[SandboxServer, ContractChecker]) -> None:
    server, checker = checked
    tokens = {"user": user_token(server), "client": client_token(server)}
    statuses: dict[str, int] = {}
    for kind, path in calls(server, checker.generation):
        answer = checker.get(path, tokens[kind])
        statuses[f"{kind} {path}"] = answer.status_code
    assert set(statuses.values()) == {200}, {k: v for k, v in statuses.items() if v != 200}
    served = {name for method, pattern, name, _ in ROUTES if method == "GET" and pattern.startswith("/v1/")}
    gone = {"tracks", "artists", "albums", "audio-features", "playlists/{id}/tracks"}  # 2026: 403 or 404
    expected = served - gone if checker.generation == "development" else served
    called = {name for method, pattern, name, _ in ROUTES for path in checker.seen if re.fullmatch(pattern, path)}
    assert called >= expected, f"endpoints the sandbox serves but this test does not call: {expected - called}"


def test_paging_links_are_absolute_and_walk_both_ways(checked: tuple[SandboxServer, ContractChecker]) -> None:
    server, checker = checked
    token = user_token(server)
    owned = next(p for p, v in server.state.catalogue.playlists.items() if v["owner"] == "sandbox-user")
    first = checker.get(f"/v1/playlists/{owned}/items?limit=10", token).json()
    assert first["next"] and first["next"].startswith(server.url)
    second = checker.get_url(first["next"], token).json()
    assert second["offset"] == 10 and second["previous"].startswith(server.url)
    back = checker.get_url(second["previous"], token).json()
    assert back["items"] == first["items"]


def test_error_answers_validate(checked: tuple[SandboxServer, ContractChecker]) -> None:
    server, checker = checked
    token = client_token(server)
    assert checker.get("/v1/tracks/0000000000000000000000", token).status_code == 404
    assert checker.get("/v1/me", "not-a-token").status_code == 401
    assert checker.get("/v1/search?q=x&type=track&limit=51", token).status_code == 400
    if checker.generation == "development":
        assert checker.get("/v1/artists/x/albums?limit=11", token).status_code in (400, 404)
        assert checker.get("/v1/tracks?ids=a,b", token).status_code == 403
        owned = next(iter(server.state.catalogue.playlists))
        assert checker.get(f"/v1/playlists/{owned}/items", token).status_code == 403
    requests.post(f"{server.url}/_sandbox/faults", json={"rate_limit": 1, "retry_after": 7}, timeout=10)
    limited = checker.get("/v1/search?q=love&type=track", token)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"


def test_development_answers_omit_exactly_the_removed_fields(checked: tuple[SandboxServer, ContractChecker]) -> None:
    server, checker = checked
    token = client_token(server)
    track = checker.get(f"/v1/tracks/{next(iter(server.state.catalogue.tracks))}", token).json()
    artist = checker.get(f"/v1/artists/{next(iter(server.state.catalogue.artists))}", token).json()
    album = checker.get(f"/v1/albums/{next(iter(server.state.catalogue.albums))}", token).json()
    served = {"track": set(track), "artist": set(artist), "album": set(album)}
    removed = {kind: set(fields) for kind, fields in DEVELOPMENT_REMOVALS.items()}
    if checker.generation == "development":
        assert all(not served[kind] & removed[kind] for kind in served), served
        assert {"external_ids", "external_urls", "href", "disc_number", "is_local"} <= served["track"]
    else:
        assert all(removed[kind] - {"linked_from"} <= served[kind] for kind in served), served


def refresh(server: SandboxServer, refresh_token: str) -> requests.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": server.state.client_id}
    return requests.post(f"{server.url}/api/token", data=form, timeout=10)


def test_token_answers_rotate_the_refresh_token(checked: tuple[SandboxServer, ContractChecker]) -> None:
    server, _ = checked
    first = pkce_login(server)
    assert first["refresh_token"] and first["scope"]
    refreshed = refresh(server, first["refresh_token"])
    assert_token_answer(refreshed, refresh=True)
    assert refreshed.json()["refresh_token"] != first["refresh_token"]  # rotated
    again = refresh(server, first["refresh_token"])
    assert_token_error(again, "invalid_grant")
    assert again.json()["error_description"] == "Refresh token revoked"
    assert_token_answer(refresh(server, refreshed.json()["refresh_token"]), refresh=True)  # the new one works


def test_redirect_uris_are_registered_loopback_literals(checked: tuple[SandboxServer, ContractChecker]) -> None:
    server, _ = checked
    for uri, message in (
        ("http://localhost:8888/callback", "INVALID_CLIENT: Insecure redirect URI"),
        ("http://127.0.0.1:9999/callback", "INVALID_CLIENT: Invalid redirect URI"),
    ):
        query = {"client_id": server.state.client_id, "response_type": "code", "redirect_uri": uri}
        query |= {"code_challenge_method": "S256", "code_challenge": "x" * 43}
        answer = requests.get(f"{server.url}/authorize", params=query, allow_redirects=False, timeout=10)
        assert answer.status_code == 400 and message in answer.text, (uri, answer.text)
    server.state.redirect_uris.append("http://[::1]:9999/callback")
    assert pkce_login(server, "http://[::1]:9999/callback")["refresh_token"]


def test_playlist_writes_validate_and_need_the_scope(checked: tuple[SandboxServer, ContractChecker]) -> None:
    """Creating the user's playlist and replacing or adding to its items, as each generation's description has
    them (2026: POST /me/playlists and /items; pre-2026: POST /users/{id}/playlists and /tracks)."""
    server, checker = checked
    extended = checker.generation == "extended"
    token = pkce_login(server, scope="playlist-read-private playlist-modify-private")["access_token"]
    reader = user_token(server)  # no playlist-modify scope
    body = {"name": "Picks", "description": "from the champion", "public": False}
    create = f"/v1/users/{SANDBOX_USER}/playlists" if extended else "/v1/me/playlists"
    assert checker.send("POST", create, reader, body).status_code == 403, "Insufficient client scope"
    assert checker.send("POST", create, token, {**body, "public": True}).status_code == 403, "public: -public"
    created = checker.send("POST", create, token, body)
    assert created.status_code == 201 and created.json()["public"] is False
    playlist = created.json()["id"]
    items = f"/v1/playlists/{playlist}/{'tracks' if extended else 'items'}"
    tracks = [f"spotify:track:{t}" for t in list(server.state.catalogue.tracks)[:150]]
    replaced = checker.send("PUT", items, token, {"uris": tracks[:100]})
    added = checker.send("POST", items, token, {"uris": tracks[100:]})
    assert (replaced.status_code, added.status_code) == (200, 201)
    assert replaced.json()["snapshot_id"] != added.json()["snapshot_id"]
    assert checker.send("PUT", items, token, {"uris": tracks[:101]}).status_code == 400, "at most 100 a request"
    assert checker.send("POST", items, reader, {"uris": tracks[:1]}).status_code == 403
    foreign = next(p for p, v in server.state.catalogue.playlists.items() if v["owner"] != SANDBOX_USER)
    assert checker.send("PUT", f"/v1/playlists/{foreign}/items", token, {"uris": tracks[:1]}).status_code == 403
    page = checker.get(f"{items}?limit=50&offset=100", token).json()
    assert [entry["track" if extended else "item"]["uri"] for entry in page["items"]] == tracks[100:]
    if not extended:  # 2026: /tracks is gone for reads and writes alike
        assert checker.send("PUT", f"/v1/playlists/{playlist}/tracks", token, {"uris": tracks[:1]}).status_code == 404


def test_playlist_items_reorder_and_remove_as_described(checked: tuple[SandboxServer, ContractChecker]) -> None:
    """PUT with `range_start`/`insert_before`/`range_length` moves a range, DELETE removes every occurrence of
    each URI (`items` in 2026 under /items, `tracks` before under /tracks) or only those at its `positions`;
    the requests and answers validate, a snapshot of another playlist is refused."""
    server, checker = checked
    extended = checker.generation == "extended"
    token = pkce_login(server, scope="playlist-read-private playlist-modify-private")["access_token"]
    create = f"/v1/users/{SANDBOX_USER}/playlists" if extended else "/v1/me/playlists"
    playlist = checker.send("POST", create, token, {"name": "Order", "public": False}).json()["id"]
    path, key, entry = (
        (f"/v1/playlists/{playlist}/tracks", "tracks", "track")
        if extended
        else (f"/v1/playlists/{playlist}/items", "items", "item")
    )
    a, b, c, d, e = (f"spotify:track:{t}" for t in list(server.state.catalogue.tracks)[:5])
    first = checker.send("PUT", path, token, {"uris": [a, b, c, d, e, a]}).json()["snapshot_id"]

    def uris() -> list[str]:
        return [row[entry]["uri"] for row in checker.get(f"{path}?limit=50", token).json()["items"]]

    moved = checker.send("PUT", path, token, {"range_start": 1, "range_length": 2, "insert_before": 5})
    assert moved.status_code == 200 and moved.json()["snapshot_id"] != first
    assert uris() == [a, d, e, b, c, a]
    assert checker.send("PUT", path, token, {"range_start": 5, "insert_before": 0, "snapshot_id": first}).ok
    assert uris() == [a, a, d, e, b, c]
    past_the_end = {"range_start": 4, "range_length": 3, "insert_before": 0}
    assert checker.send("PUT", path, token, past_the_end).status_code == 400
    removed = checker.send("DELETE", path, token, {key: [{"uri": a}, {"uri": b}]})
    assert removed.status_code == 200 and uris() == [d, e, c]
    assert checker.send("DELETE", path, token, {key: [{"uri": e, "positions": [1]}]}).ok and uris() == [d, c]
    assert checker.send("DELETE", path, token, {key: [{"uri": d, "positions": [1]}]}).status_code == 400
    other = checker.send("POST", create, token, {"name": "Other", "public": False}).json()["snapshot_id"]
    assert checker.send("DELETE", path, token, {key: [{"uri": c}], "snapshot_id": other}).status_code == 400
    assert checker.send("DELETE", path, user_token(server), {key: [{"uri": c}]}).status_code == 403
    assert uris() == [d, c]
    # "can be track or episode URIs": the description's own example episode (the catalogue's one) goes in and out.
    episode = "spotify:episode:512ojhOuo1ktJprKbVcKyQ"
    assert checker.send("POST", path, token, {"uris": [episode], "position": 1}).status_code == 201
    assert uris() == [d, episode, c]
    unknown = checker.send("POST", path, token, {"uris": ["spotify:episode:0zLhl3WsOCQHbe1BPTiHgr"]})
    assert unknown.status_code == 400 and "Invalid episode uri" in unknown.json()["error"]["message"]
    assert checker.send("DELETE", path, token, {key: [{"uri": episode, "positions": [1]}]}).ok
    assert uris() == [d, c]
    if not extended:  # 2026: /tracks is gone for removals too
        gone = checker.send("DELETE", f"/v1/playlists/{playlist}/tracks", token, {"tracks": [{"uri": c}]})
        assert gone.status_code == 404
