"""`python -m producers login`: authorization code with PKCE, the redirect caught on localhost.

The refresh token is kept in DATA_DIR/state/spotify-token.json (mode 0600); the producer then reads
the user's own playlists and saved tracks. Nothing secret is printed.
"""

import logging
import secrets
import threading
import webbrowser
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import spotipy
from spotipy.exceptions import SpotifyOauthError

from pipeline_runtime.cli import console
from pipeline_runtime.errors import SetupError
from producers.settings import DEFAULT_REDIRECT_URI, ProducerSettings
from producers.spotify import http_session, login_scopes, user_auth

log = logging.getLogger(__name__)


def check_redirect_uri(redirect_uri: str) -> tuple[str, int]:
    """The host and port of a redirect URI Spotify accepts for a local login: a loopback literal with a port."""
    target = urlsplit(redirect_uri)
    if target.hostname == "localhost":
        raise SetupError(
            f"Spotify refuses the redirect URI {redirect_uri} (INVALID_CLIENT: Insecure redirect URI; `localhost` "
            f"is not allowed since 2025-11-27): set PRODUCER_REDIRECT_URI={DEFAULT_REDIRECT_URI} and "
            "register exactly that URI in your app's settings on developer.spotify.com."
        )
    if target.scheme != "http" or target.hostname not in ("127.0.0.1", "::1") or not target.port:
        raise SetupError(
            f"The redirect URI {redirect_uri} must be a loopback address with a port, "
            "http://127.0.0.1:PORT/... or http://[::1]:PORT/..., registered exactly in your app's settings: "
            "set PRODUCER_REDIRECT_URI."
        )
    return target.hostname, target.port


def wait_for_code(redirect_uri: str, expected_state: str, timeout: float, announce: Callable[[], None]) -> str:
    """Serve one request on the redirect URI's host and port; return the `code` it carries. `announce` (print the
    login address, open the browser) runs once the port listens: a browser already logged in to Spotify comes back
    at once, and found nothing listening when the address was shown first."""
    host, port = check_redirect_uri(redirect_uri)
    result: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
            result.update(query)
            ok = query.get("state") == expected_state and "code" in query
            body = b"Logged in: you can close this tab." if ok else b"Login failed: see the terminal."
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    try:
        server = HTTPServer((host, port), Handler)
    except OSError as exc:
        raise SetupError(
            f"Cannot listen on {host}:{port} for the login redirect ({exc.strerror}): "
            "free the port or set PRODUCER_REDIRECT_URI to another one."
        ) from None
    try:
        announce()
        server.timeout = timeout
        thread = threading.Thread(target=server.handle_request, daemon=True)
        thread.start()
        thread.join(timeout + 1)
    finally:
        server.server_close()
    if "error" in result:
        raise SetupError(f"Spotify refused the login ({result['error']}).")
    if result.get("state") != expected_state or "code" not in result:
        raise SetupError(
            f"No login arrived at {redirect_uri} within {timeout:.0f}s: run `python -m producers login` again."
        )
    return result["code"]


def login(settings: ProducerSettings, open_browser: bool, timeout: float) -> str:
    """Run the PKCE flow; returns the display name of the user who logged in."""
    check_redirect_uri(settings.redirect_uri)
    session = http_session(settings, Counter())
    auth = user_auth(settings, session, login_scopes(settings))
    auth.get_pkce_handshake_parameters()
    state = secrets.token_urlsafe(16)
    url = auth.get_authorize_url(state)

    def announce() -> None:
        console.print("Open this address to log in to Spotify (it redirects back here):", highlight=False)
        console.print(url, highlight=False, soft_wrap=True)
        if open_browser:
            webbrowser.open(url)

    code = wait_for_code(settings.redirect_uri, state, timeout, announce)
    try:
        auth.get_access_token(code, check_cache=False)
    except SpotifyOauthError as exc:
        raise SetupError(
            f"Spotify did not accept the login ({exc.error}): run `python -m producers login` again."
        ) from None
    me = spotipy.Spotify(auth_manager=auth, requests_session=session)
    me.prefix = settings.spotify_api_url.rstrip("/") + "/"
    user = me.me()
    settings.token_file.chmod(0o600)
    return str(user.get("display_name") or user.get("id"))
