"""Logins as Spotify hands them out in 2026, against the sandbox over real HTTP (spotipy for real):
refresh tokens rotate (the old one is revoked), redirect URIs are loopback literals registered exactly."""

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline_runtime.broker import free_port
from pipeline_runtime.errors import SetupError
from producers.login import check_redirect_uri, login, wait_for_code
from producers.sandbox.server import SandboxServer
from producers.spotify import LoginExpired, SpotifyApi
from tests.support.spotify import sandbox_login, sandbox_settings, set_faults


def test_processes_sharing_a_token_file_survive_rotation_and_a_copy_is_told_why_it_fails(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox_factory("development")
    settings = sandbox_settings(server, tmp_path / "data", auth="user")
    sandbox_login(settings)
    copy = tmp_path / "copy" / "state" / "spotify-token.json"
    copy.parent.mkdir(parents=True)
    shutil.copy(settings.token_file, copy)
    first, second = SpotifyApi(settings), SpotifyApi(settings)  # two processes on one DATA_DIR
    assert first.get("me")["id"] == second.get("me")["id"] == "sandbox-user"

    set_faults(server, expire_tokens=True)
    before = settings.token_file.read_text()
    assert first.get("me")["id"] == "sandbox-user"  # refreshed: Spotify rotated the refresh token
    assert settings.token_file.read_text() != before
    assert settings.token_file.stat().st_mode & 0o777 == 0o600
    assert second.get("me")["id"] == "sandbox-user", "the second process uses the token the first one wrote"
    # A process that read the file just before the other one refreshed holds a revoked refresh token: under the
    # shared lock it finds its successor in the file instead of spending (and failing with) the revoked one.
    raced = second.auth.refresh_access_token(json.loads(before)["refresh_token"])
    assert raced["refresh_token"] == json.loads(settings.token_file.read_text())["refresh_token"]
    assert len(server.state.refresh_tokens) == 1, "one live refresh token: the last one handed out"
    assert not list(settings.token_file.parent.glob(".*.tmp")), "no temp file left behind"

    stale = SpotifyApi(sandbox_settings(server, tmp_path / "copy", auth="user"))
    set_faults(server, expire_tokens=True)
    with pytest.raises(
        LoginExpired,
        match=r"another process or copy of the token refreshed it: log in again with `python -m producers login`",
    ):
        stale.get("me")

    set_faults(server, expire_tokens=True, invalid_grant=True)  # six months later
    with pytest.raises(LoginExpired, match=r"logins expire after 6 months"):
        first.get("me")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "http://localhost:8888/callback",
            r"localhost.*not allowed since 2025-11-27.*http://127\.0\.0\.1:8888/callback",
        ),
        ("https://example.com/callback", r"must be a loopback address"),
        ("http://127.0.0.1/callback", r"must be a loopback address with a port"),
    ],
)
def test_login_refuses_redirect_uris_spotify_refuses(uri: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=message):
        check_redirect_uri(uri)


def test_login_says_so_before_any_request(sandbox_factory: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_factory("development")
    settings = sandbox_settings(server, tmp_path, redirect_uri="http://localhost:8888/callback")
    with pytest.raises(SetupError, match="Insecure redirect URI"):
        login(settings, open_browser=False, timeout=1)
    assert server.state.requests.total() == 0
    assert check_redirect_uri("http://[::1]:8888/callback") == ("::1", 8888)


def test_the_sandbox_login_registers_its_redirect_uri_and_refuses_localhost(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox_factory("development")
    other = sandbox_settings(server, tmp_path / "a", redirect_uri="http://127.0.0.1:8999/back")
    sandbox_login(other)  # a PRODUCER_REDIRECT_URI of the user's .env: registered as a dashboard would
    assert "http://127.0.0.1:8999/back" in server.state.redirect_uris and other.token_file.is_file()
    with pytest.raises(SetupError, match=r"Insecure redirect URI.*127\.0\.0\.1:8888"):
        sandbox_login(sandbox_settings(server, tmp_path / "b", redirect_uri="http://localhost:8888/callback"))


def test_the_login_address_is_shown_only_once_the_redirect_port_listens() -> None:
    """A browser already logged in to Spotify comes back at once: the redirect must find the port listening the
    moment the address is shown (it found nothing listening when the address came first)."""
    port = free_port()
    browser: list[socket.socket] = []

    def come_back_at_once() -> None:
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)  # refused unless it listens already
        connection.sendall(b"GET /callback?code=the-code&state=the-state HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        browser.append(connection)

    try:
        assert wait_for_code(f"http://127.0.0.1:{port}/callback", "the-state", 10, come_back_at_once) == "the-code"
        assert b"Logged in" in browser[0].recv(4096)
    finally:
        for connection in browser:
            connection.close()
