"""Log in the sandbox's user the way a browser would, for the development API (user playlists need a login)."""

from collections import Counter

import requests

from pipeline_runtime.errors import SetupError
from producers.settings import DEFAULT_REDIRECT_URI, ProducerSettings
from producers.spotify import http_session, login_scopes, user_auth


def log_in_sandbox_user(settings: ProducerSettings) -> None:
    """Register the producer's redirect URI with the sandbox (as an app's owner does in Spotify's dashboard),
    follow its /authorize redirect and exchange the code (PKCE); the token lands in the producer's token
    file, as after `python -m producers login`."""
    accounts = settings.spotify_accounts_url.rstrip("/")
    requests.post(f"{accounts}/_sandbox/redirect-uris", json={"uri": settings.redirect_uri}, timeout=10)
    auth = user_auth(settings, http_session(settings, Counter()), login_scopes(settings))
    auth.get_pkce_handshake_parameters()
    answer = requests.get(auth.get_authorize_url("state"), allow_redirects=False, timeout=10)
    if "Location" not in answer.headers:
        message = answer.json().get("error", {}).get("message", answer.text[:200])
        raise SetupError(
            f"The sandbox refused the login ({message}): set PRODUCER_REDIRECT_URI to {DEFAULT_REDIRECT_URI}, "
            "a loopback address as Spotify requires."
        )
    code = answer.headers["Location"].split("code=")[1].split("&")[0]
    auth.get_access_token(code, check_cache=False)
